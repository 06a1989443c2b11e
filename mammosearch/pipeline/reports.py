"""Report inputs and the normalize job's writer: the one place that reads reports.

:func:`iter_report_inputs` reads a ``.txt`` file, a folder of them, a ``.csv``, ``.jsonl`` or
``.parquet`` table as ``(id, text | bytes | error)``; :func:`read_report_file` is the one reader
of a single report file (manifest ``report_path``, ``assess --report-file``) and
:func:`read_gold` of a gold file. Bytes are decoded by
:func:`mammosearch.nlp.decode_report_bytes` (in the worker that normalizes them), so every
record whose encoding was guessed, or whose characters were replaced, carries a warning.

Tables are read as UTF-8 and decided record by record, never from their first bytes only: a
record holding bytes that are not UTF-8 (one legacy row deep in a large file) is handed on as
its own bytes, which are decoded on their own. A table in UTF-16 or UTF-32 (byte-order mark, or
recognised by its NUL bytes) is read in that encoding.
:func:`write_report_lines` writes normalized reports as JSON Lines, atomically, for both engines
(:func:`count_lines` counts them, for it and for the tables' writer).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from importlib import resources
from pathlib import Path
from typing import IO, Any

from mammosearch.errors import InputError, ReportDecodeError, ReportParseError
from mammosearch.nlp import decode_report_bytes
from mammosearch.nlp._decode import sniff_unicode
from mammosearch.nlp.normalizer import ReportLine
from mammosearch.pipeline.parquet import iter_parquet_rows
from mammosearch.pipeline.records import NormalizeSummary

__all__ = [
    "CSV_FIELD_LIMIT",
    "REPORT_INPUT_SUFFIXES",
    "ReportItem",
    "count_lines",
    "iter_report_inputs",
    "open_table",
    "read_gold",
    "read_report_file",
    "read_report_payload",
    "sample_reports_dir",
    "table_text",
    "write_report_lines",
]

logger = logging.getLogger(__name__)

REPORT_INPUT_SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")
# Fields of any size: the largest the csv module takes on every OS (a C long). A report over
# the normalizer's max_chars is refused by the normalizer, as one record.
CSV_FIELD_LIMIT = 2**31 - 1
_SNIFF_BYTES = 4096
ReportItem = tuple[str, "str | bytes | Exception"]


def sample_reports_dir() -> Path:
    """Folder of the bundled sample reports (written for this project; no patient data)."""
    path = Path(str(resources.files("mammosearch.samples").joinpath("reports")))
    if not path.is_dir():  # pragma: no cover - only in a broken install
        raise InputError("the bundled sample reports are missing", fix="reinstall mammosearch")
    return path


def read_report_payload(path: Path) -> bytes | Exception:
    """A report file's bytes, or the error that reading it raised (a batch counts it)."""
    try:
        return path.read_bytes()
    except OSError as e:
        return e


def read_report_file(path: Path) -> str:
    """One report file, decoded by :func:`mammosearch.nlp.decode_report_bytes` (a guessed
    encoding or replaced characters are logged as its warning, without the text).

    Raises:
        InputError: The file cannot be read.
        ReportDecodeError: The file is not text (binary, an image, a document).
    """
    payload = read_report_payload(path)
    if isinstance(payload, Exception):
        reason = getattr(payload, "strerror", None) or type(payload).__name__
        raise InputError(f"the report file cannot be read ({reason})") from None
    text, warning = decode_report_bytes(payload)
    if warning:
        logger.warning("report file: %s", warning)
    return text


def _iter_folder(folder: Path) -> Iterator[ReportItem]:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    stems = Counter(p.stem for p in files)
    for p in files:
        rid = p.stem if stems[p.stem] == 1 else p.relative_to(folder).with_suffix("").as_posix()
        yield rid, read_report_payload(p)


def open_table(path: Path) -> IO[str]:
    """Open a table (CSV, JSON Lines) as text, never deciding its encoding from its first bytes
    alone.

    A table is read as UTF-8; bytes that are not UTF-8 (a legacy row anywhere in the file) are
    kept as lone surrogates (``surrogateescape``), so that :func:`table_text` or the report
    reader can decode each record on its own. A table with a UTF-16/32 byte-order mark, or
    recognised as UTF-16/32 by its NUL bytes (logged as ``W001``), is read in that encoding;
    reading it raises ``UnicodeDecodeError`` where its bytes are not (see :func:`table_error`).
    """
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    found = sniff_unicode(head)
    if found is None or found.codec == "utf-8":
        return path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    if not found.bom:
        logger.warning(
            "W001: the table is not UTF-8 and has no byte-order mark; reading it as %s (guessed)",
            found.codec.upper(),
        )
    raw = path.open("rb")
    raw.seek(found.bom)
    return io.TextIOWrapper(raw, encoding=found.codec, errors="strict", newline="")


def table_error(where: str) -> ReportDecodeError:
    """The error of a UTF-16/32 table whose bytes stop decoding ``where`` ("after row 3")."""
    return ReportDecodeError(
        f"the table is in UTF-16 or UTF-32 but has bytes that are not, {where}",
        fix="re-save the table as UTF-8",
    )


def table_text(value: str, *, what: str) -> str:
    """A text field of a table opened by :func:`open_table`, decoded: its bytes that are not
    UTF-8 by :func:`mammosearch.nlp.decode_report_bytes` (its warning logged with ``what``, a
    place such as "manifest row 3", never the text).

    Raises:
        ReportDecodeError: The field is not text.
    """
    raw = _field(value)
    if isinstance(raw, str):
        return raw
    text, warning = decode_report_bytes(raw, what=what)
    if warning:
        logger.warning("%s: %s", what, warning)
    return text


def _field(value: str) -> str | bytes:
    """A table field as read: its text, or its own bytes when some of them are not UTF-8 (the
    normalizer decodes them, and warns, record by record)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")  # a C-speed test: only lone surrogates fail
    except UnicodeEncodeError:
        pass
    else:
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate written as a JSON escape: kept as it was
        return value


def _id_text(value: str) -> str:
    """An id field as text (an id with bytes that are not UTF-8 is decoded like a report)."""
    raw = _field(value)
    if isinstance(raw, str):
        return raw
    try:
        return decode_report_bytes(raw, what="id")[0]
    except ReportDecodeError:
        return ""


def _iter_csv(path: Path, id_column: str, text_column: str) -> Iterator[ReportItem]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    n = 0
    try:
        with open_table(path) as handle:
            reader = csv.DictReader(handle)
            columns = [_id_text(c) for c in reader.fieldnames or []]
            if text_column not in columns:
                raise InputError(
                    f"the CSV has no column {text_column!r} "
                    f"(columns: {', '.join(columns) or 'none'})",
                    fix="name the report column with --text-column",
                )
            reader.fieldnames = columns
            has_id = id_column in columns
            for n, row in enumerate(reader, start=1):
                rid = _id_text(row.get(id_column) or "").strip() if has_id else ""
                text = row.get(text_column)
                yield rid or f"row-{n}", _field(text) if text is not None else ""
    except UnicodeDecodeError as e:
        raise table_error(f"after row {n}") from e
    except csv.Error as e:
        raise InputError(
            f"the CSV cannot be parsed after row {n} ({e})",
            fix="check the quoting of that row, or export the table again",
        ) from e


def _iter_jsonl(path: Path, id_column: str, text_column: str) -> Iterator[ReportItem]:
    n = 0
    try:
        with open_table(path) as handle:
            for n, line in enumerate(handle, start=1):
                yield from _jsonl_item(n, line, id_column, text_column)
    except UnicodeDecodeError as e:
        raise table_error(f"after line {n}") from e


def _jsonl_item(n: int, line: str, id_column: str, text_column: str) -> Iterator[ReportItem]:
    """The report of line ``n`` of a JSON Lines table (nothing for a blank line)."""
    if not line.strip():
        return
    fallback = f"line-{n}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        yield (
            fallback,
            ReportParseError(
                f"line {n} is not valid JSON ({e.msg})", fix="write one JSON object per line"
            ),
        )
        return
    if not isinstance(obj, dict):
        yield fallback, ReportParseError(f"line {n} is not a JSON object")
        return
    rid = obj.get(id_column)
    text = obj.get(text_column)
    rid = (_id_text(rid) if isinstance(rid, str) else str(rid)) if rid not in (None, "") else ""
    rid = rid or fallback
    if text is None:
        text = ""
    if not isinstance(text, str):
        yield (
            rid,
            ReportParseError(f"line {n}: {text_column!r} is {type(text).__name__}, not text"),
        )
        return
    yield rid, _field(text)


def _iter_parquet(path: Path, id_column: str, text_column: str) -> Iterator[ReportItem]:
    rows = iter_parquet_rows(path, [id_column, text_column], required=[text_column])
    for n, row in enumerate(rows, start=1):
        rid = row.get(id_column)
        rid = ("" if rid is None else str(rid).strip()) or f"row-{n}"
        text = row.get(text_column)
        if text is None:
            text = ""
        if not isinstance(text, str | bytes):
            yield (
                rid,
                ReportParseError(f"row {n}: {text_column!r} is {type(text).__name__}, not text"),
            )
            continue
        yield rid, text


def iter_report_inputs(
    path: Path, *, id_column: str = "id", text_column: str = "text"
) -> Iterator[ReportItem]:
    """Read reports as ``(id, text | bytes | error)`` from a file or folder.

    Args:
        path: A ``.txt`` file (one report, id = file stem), a folder of ``.txt`` files
            (id = file stem), a ``.csv`` with ``id_column``/``text_column``, or a ``.jsonl`` of
            ``{"id", "text"}`` objects, or a ``.parquet`` table with ``id_column``/``text_column``
            (needs pyarrow).
        id_column: Column or key of the report id.
        text_column: Column or key of the report text.

    Raises:
        InputError: The path is missing or of an unknown kind, or a CSV lacks the text column.
    """
    if path.is_dir():
        return _iter_folder(path)
    if not path.exists():
        raise InputError(f"input {str(path)!r} not found", fix="check the path")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return iter([(path.stem, read_report_payload(path))])
    if suffix == ".csv":
        return _iter_csv(path, id_column, text_column)
    if suffix in (".jsonl", ".ndjson"):
        return _iter_jsonl(path, id_column, text_column)
    if suffix == ".parquet":
        return _iter_parquet(path, id_column, text_column)
    raise InputError(
        f"unknown input kind {suffix or '(no suffix)'!r}",
        fix="pass a .txt file, a folder of .txt files, a .csv, a .jsonl or a .parquet",
    )


def count_lines(
    lines: Iterable[ReportLine], summary: NormalizeSummary, *, progress: bool, stack: ExitStack
) -> Iterator[ReportLine]:
    """Yield each line after counting it in ``summary`` (with ``progress``, a bar on stderr that
    ``stack`` closes)."""
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = stack.enter_context(tqdm(unit="report", desc="normalize", dynamic_ncols=True))
    for line in lines:
        summary.add(line)
        if bar is not None:
            bar.update(1)
        yield line


def write_report_lines(
    lines: Iterable[ReportLine], output_path: Path, *, progress: bool = False
) -> NormalizeSummary:
    """Write normalized report lines (in order) to a JSON Lines file, atomically, and count them.

    The one writer of ``normalize``'s JSON Lines, for both engines (tables:
    :func:`~.tables.write_table_lines`).
    """
    summary = NormalizeSummary()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ExitStack() as stack:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{output_path.name}.", suffix=".tmp", dir=output_path.parent
        )
        stack.callback(_remove_quietly, Path(tmp_name))
        out = stack.enter_context(os.fdopen(fd, "w", encoding="utf-8", newline="\n"))
        for line in count_lines(lines, summary, progress=progress, stack=stack):
            out.write(line.json + "\n")
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(tmp_name, output_path)
    summary.seconds = time.perf_counter() - started
    logger.debug(
        "normalized %d reports (%d failed) in %.1f s",
        summary.total,
        summary.failed,
        summary.seconds,
    )
    return summary


def _remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def read_gold(path: Path) -> list[dict[str, Any]]:
    """Read a gold JSON Lines file (one object with an ``id`` per line), decoded by
    :func:`mammosearch.nlp.decode_report_bytes` like a report (a guessed encoding is logged).

    Raises:
        InputError: The file is missing or not text, or a line is not a JSON object with an
            ``id``.
    """
    if not path.is_file():
        raise InputError(f"gold file {str(path)!r} not found", fix="pass a .jsonl gold file")
    payload = read_report_payload(path)
    if isinstance(payload, Exception):
        reason = getattr(payload, "strerror", None) or type(payload).__name__
        raise InputError(f"the gold file cannot be read ({reason})") from None
    text, warning = decode_report_bytes(payload, what="gold file")
    if warning:
        logger.warning("gold file: %s", warning)
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                f"gold line {n} is not valid JSON ({e.msg})",
                fix="write one JSON object per line (see 'mammosearch evaluate reports --help')",
            ) from e
        if not isinstance(row, dict) or "id" not in row:
            raise InputError(
                f"gold line {n} is not an object with an 'id'",
                fix="give every gold line an 'id' (see 'mammosearch evaluate reports --help')",
            )
        rows.append(row)
    return rows

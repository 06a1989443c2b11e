"""Report inputs and the normalize job's writer: the one place that reads reports.

:func:`iter_report_inputs` reads a ``.txt`` file, a folder of them, a ``.csv``, ``.jsonl`` or
``.parquet`` table as ``(id, text | bytes | error)``; :func:`read_report_file` is the one reader
of a single report file (manifest ``report_path``, ``assess --report-file``, gold texts); text
is decoded by :func:`mammosearch.nlp.decode_report_bytes` in the worker that normalizes it.
:func:`write_report_lines` writes normalized reports as JSON Lines, atomically, for both engines.
"""

from __future__ import annotations

import codecs
import csv
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

from mammosearch.errors import InputError, ReportParseError
from mammosearch.nlp import decode_report_bytes
from mammosearch.nlp.normalizer import ReportLine
from mammosearch.pipeline.parquet import iter_parquet_rows
from mammosearch.pipeline.records import NormalizeSummary

__all__ = [
    "REPORT_INPUT_SUFFIXES",
    "ReportItem",
    "iter_report_inputs",
    "read_gold",
    "read_report_file",
    "read_report_payload",
    "sample_reports_dir",
    "write_report_lines",
]

logger = logging.getLogger(__name__)

REPORT_INPUT_SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")
_CSV_FIELD_LIMIT = 16 * 1024 * 1024
_SNIFF_BYTES = 1 << 20
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
    """One report file, decoded (UTF-8, with the legacy-encoding fallback of
    :func:`mammosearch.nlp.decode_report_bytes`).

    Raises:
        InputError: The file cannot be read.
    """
    payload = read_report_payload(path)
    if isinstance(payload, Exception):
        reason = getattr(payload, "strerror", None) or type(payload).__name__
        raise InputError(f"the report file cannot be read ({reason})") from None
    return decode_report_bytes(payload)[0]


def _iter_folder(folder: Path) -> Iterator[ReportItem]:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    stems = Counter(p.stem for p in files)
    for p in files:
        rid = p.stem if stems[p.stem] == 1 else p.relative_to(folder).with_suffix("").as_posix()
        yield rid, read_report_payload(p)


def _open_text(path: Path) -> IO[str]:
    """Open a table of reports as text: UTF-8 when its first MiB is UTF-8, else cp1252."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        encoding = "cp1252"
        logger.warning("W001: input table is not UTF-8; reading it as cp1252")
    # errors="replace": a stray bad byte later in a huge file costs one character, not the job.
    return path.open("r", encoding=encoding, errors="replace", newline="")


def _iter_csv(path: Path, id_column: str, text_column: str) -> Iterator[ReportItem]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if text_column not in columns:
            raise InputError(
                f"the CSV has no column {text_column!r} (columns: {', '.join(columns) or 'none'})",
                fix="name the report column with --text-column",
            )
        has_id = id_column in columns
        for n, row in enumerate(reader, start=1):
            rid = (row.get(id_column) or "").strip() if has_id else ""
            text = row.get(text_column)
            yield rid or f"row-{n}", text if text is not None else ""


def _iter_jsonl(path: Path, id_column: str, text_column: str) -> Iterator[ReportItem]:
    with _open_text(path) as handle:
        for n, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fallback = f"line-{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield (
                    fallback,
                    ReportParseError(
                        f"line {n} is not valid JSON ({e.msg})",
                        fix="write one JSON object per line",
                    ),
                )
                continue
            if not isinstance(obj, dict):
                yield fallback, ReportParseError(f"line {n} is not a JSON object")
                continue
            rid = obj.get(id_column)
            text = obj.get(text_column)
            rid = str(rid) if rid not in (None, "") else fallback
            if text is None:
                text = ""
            if not isinstance(text, str):
                yield (
                    rid,
                    ReportParseError(
                        f"line {n}: {text_column!r} is {type(text).__name__}, not text"
                    ),
                )
                continue
            yield rid, text


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


def write_report_lines(
    lines: Iterable[ReportLine], output_path: Path, *, progress: bool = False
) -> NormalizeSummary:
    """Write normalized report lines (in order) to a JSON Lines file, atomically, and count them.

    The one writer of ``normalize`` output, for both engines.
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
        bar: Any = None
        if progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(unit="report", desc="normalize", dynamic_ncols=True))
        for line in lines:
            out.write(line.json + "\n")
            summary.add(line)
            if bar is not None:
                bar.update(1)
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
    """Read a gold JSON Lines file (one object with an ``id`` per line).

    Raises:
        InputError: The file is missing, or a line is not a JSON object with an ``id``.
    """
    if not path.is_file():
        raise InputError(f"gold file {str(path)!r} not found", fix="pass a .jsonl gold file")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"gold line {n} is not valid JSON ({e.msg})") from e
            if not isinstance(row, dict) or "id" not in row:
                raise InputError(f"gold line {n} is not an object with an 'id'")
            rows.append(row)
    return rows

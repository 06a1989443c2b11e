"""Orchestration of batch jobs: read inputs, run the subpackages, write outputs.

Report normalization (:func:`normalize_reports`, ``mammosearch normalize``) and its evaluation
(:func:`evaluate_reports`); the case index (:func:`build_index`, :func:`remove_cases`,
:func:`search_cases`, :func:`assess_image`, :func:`iter_assessments`,
:func:`iter_exam_assessments`, :func:`exam_density`, :func:`evaluate_retrieval`, implemented
in :mod:`mammosearch._cases`); density models (:func:`load_density_model`,
:func:`train_density`, :func:`evaluate_density`, :func:`evaluate_probe`,
:func:`evaluate_zero_shot`, implemented in :mod:`mammosearch._density`); :class:`CaseEngine`
(an index opened once for many queries: the UI) and :func:`demo_index` (the demo's cached
index).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mammosearch._cases import (
    BuildReport,
    assess_image,
    build_index,
    evaluate_retrieval,
    exam_density,
    iter_assessments,
    iter_exam_assessments,
    load_density_model,
    migrate_index,
    open_density_model,
    open_index,
    read_manifest,
    remove_cases,
    search_cases,
)
from mammosearch._demo import demo_index
from mammosearch._density import (
    evaluate_density,
    evaluate_probe,
    evaluate_zero_shot,
    train_density,
)
from mammosearch._engine import CaseEngine, QueryResult, QueryView
from mammosearch.config import Settings
from mammosearch.errors import InputError, ReportParseError
from mammosearch.index import SearchFilters
from mammosearch.nlp import Normalizer
from mammosearch.nlp.evaluation import ReportScores, score_reports
from mammosearch.nlp.normalizer import ReportLine

if TYPE_CHECKING:
    from mammosearch.distributed import RayOptions

__all__ = [
    "REPORT_INPUT_SUFFIXES",
    "BuildReport",
    "CaseEngine",
    "QueryResult",
    "QueryView",
    "SearchFilters",
    "demo_index",
    "assess_image",
    "build_index",
    "evaluate_density",
    "evaluate_probe",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "exam_density",
    "iter_assessments",
    "iter_exam_assessments",
    "load_density_model",
    "migrate_index",
    "open_density_model",
    "open_index",
    "read_manifest",
    "remove_cases",
    "search_cases",
    "train_density",
    "NormalizeSummary",
    "evaluate_reports",
    "read_gold",
    "iter_report_inputs",
    "normalize_reports",
    "scrub_item",
    "splice_scrub",
    "write_report_lines",
    "sample_reports_dir",
]

logger = logging.getLogger(__name__)

REPORT_INPUT_SUFFIXES = (".txt", ".csv", ".jsonl", ".parquet")
_CSV_FIELD_LIMIT = 16 * 1024 * 1024
_SNIFF_BYTES = 1 << 20

ReportItem = tuple[str, "str | bytes | Exception"]


@dataclass(slots=True)
class NormalizeSummary:
    """What a normalization job did.

    Attributes:
        total: Records read.
        ok: Records normalized.
        failed: Records that could not be read or parsed (written with ``error``).
        errors: Failure counts by error code (``E022`` …).
        with_density: Reports with a density category.
        with_birads: Reports with a BI-RADS category.
        languages: Reports per detected language (``None`` when unclear).
        seconds: Wall time of the job.
        shards: With ``engine="ray"``: ``{"total", "computed", "reused"}`` shard counts.
    """

    total: int = 0
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    with_density: int = 0
    with_birads: int = 0
    languages: Counter[str | None] = field(default_factory=Counter)
    seconds: float = 0.0
    shards: dict[str, int] = field(default_factory=dict)

    def add(self, line: ReportLine) -> None:
        """Count one output record."""
        self.total += 1
        if line.error is not None:
            self.failed += 1
            self.errors[line.error.split(":", 1)[0]] += 1
            return
        self.ok += 1
        self.with_density += line.has_density
        self.with_birads += line.has_birads
        self.languages[line.language] += 1

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


def sample_reports_dir() -> Path:
    """Folder of the bundled sample reports (written for this project; no patient data)."""
    path = Path(str(resources.files("mammosearch.samples").joinpath("reports")))
    if not path.is_dir():  # pragma: no cover - only in a broken install
        raise InputError("the bundled sample reports are missing", fix="reinstall mammosearch")
    return path


def _read_text_file(path: Path) -> str | bytes | Exception:
    try:
        return path.read_bytes()
    except OSError as e:
        return e


def _iter_folder(folder: Path) -> Iterator[ReportItem]:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    stems = Counter(p.stem for p in files)
    for p in files:
        rid = p.stem if stems[p.stem] == 1 else p.relative_to(folder).with_suffix("").as_posix()
        yield rid, _read_text_file(p)


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
    from mammosearch._parquet import iter_parquet_rows

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
        raise InputError(f"input not found: {path.name}", fix="check the path")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return iter([(path.stem, _read_text_file(path))])
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


def normalize_reports(
    input_path: Path,
    output_path: Path,
    *,
    settings: Settings,
    workers: int | None = None,
    id_column: str = "id",
    text_column: str = "text",
    progress: bool = False,
    scrub: bool = False,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> NormalizeSummary:
    """Normalize every report of ``input_path`` into JSON Lines at ``output_path``.

    Output is in input order, one object per report with every key of the contract; a record
    that cannot be read or parsed is written with ``error`` set and the job goes on. The file
    appears atomically when the job completes. Both engines write the same file.

    Args:
        input_path: See :func:`iter_report_inputs`.
        output_path: The ``.jsonl`` to write.
        settings: Run settings (``workers``, ``max_report_chars``).
        workers: Worker processes of the local engine (overrides ``settings.workers``).
        id_column: Column or key of the report id (CSV, JSONL, Parquet).
        text_column: Column or key of the report text (CSV, JSONL, Parquet).
        progress: Show a progress bar on stderr.
        scrub: Scrub PHI from each report first (:mod:`mammosearch.nlp.scrub`); each record
            then also carries ``text`` (the scrubbed report its evidence spans index) and
            ``phi`` (spans replaced, by kind).
        engine: ``local`` (this machine's processes) or ``ray`` (a Ray cluster:
            :mod:`mammosearch.distributed`, resumable Parquet shards).
        ray: Options of the Ray engine (cluster address, work folder).

    Raises:
        InputError: The input cannot be used at all.
        ConfigError: ``engine`` is unknown, or Ray is missing or unreachable.
    """
    from mammosearch.distributed import check_engine

    check_engine(engine)
    if engine == "ray":
        from mammosearch.distributed import RayOptions, normalize_on_ray

        return normalize_on_ray(
            input_path, output_path, settings=settings, id_column=id_column,
            text_column=text_column, progress=progress, scrub=scrub, options=ray or RayOptions(),
        )  # fmt: skip
    items: Iterator[ReportItem] = iter_report_inputs(
        input_path, id_column=id_column, text_column=text_column
    )
    scrubbed: deque[Any] = deque()
    if scrub:
        items = _scrubbed(items, scrubbed, settings.max_report_chars)
    n_process = workers or settings.workers
    normalizer = Normalizer(max_chars=settings.max_report_chars)

    def lines() -> Iterator[ReportLine]:
        for line in normalizer.normalize_lines(items, n_process=n_process):
            yield splice_scrub(line, scrubbed.popleft()) if scrub else line

    return write_report_lines(lines(), output_path, progress=progress)


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


def splice_scrub(line: ReportLine, result: Any) -> ReportLine:
    """A line with the scrubbed ``text`` and ``phi`` counts spliced in (``result`` from
    :func:`scrub_item`; ``None`` leaves the line as it is). The line stays one object."""
    if result is None:
        return line
    extra = json.dumps({"text": result.text, "phi": result.counts}, ensure_ascii=False)
    return line._replace(json=f"{line.json[:-1]}, {extra[1:]}")


def scrub_item(payload: str | bytes | Exception, max_chars: int) -> tuple[Any, Any]:
    """One report scrubbed of PHI: ``(payload to normalize, ScrubResult or None)``.

    ``None`` for a record that failed to read or is too long (the normalizer refuses it).
    """
    from mammosearch.nlp import decode_report_bytes
    from mammosearch.nlp.scrub import scrub

    if isinstance(payload, Exception):
        return payload, None
    text = decode_report_bytes(payload)[0] if isinstance(payload, bytes) else payload
    if len(text) > max_chars:
        return text, None
    result = scrub(text)
    return result.text, result


def _scrubbed(
    items: Iterator[ReportItem], results: deque[Any], max_chars: int
) -> Iterator[ReportItem]:
    """The reports with PHI scrubbed, each result queued in input order (:func:`scrub_item`)."""
    for report_id, payload in items:
        scrubbed, result = scrub_item(payload, max_chars)
        results.append(result)
        yield report_id, scrubbed


def _remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def read_gold(path: Path) -> list[dict[str, Any]]:
    """Read a gold JSON Lines file (one object with an ``id`` per line).

    Raises:
        InputError: The file is missing, or a line is not a JSON object with an ``id``.
    """
    if not path.is_file():
        raise InputError(f"gold file not found: {path.name}", fix="pass a .jsonl gold file")
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


def evaluate_reports(
    gold_path: Path, texts_dir: Path, *, settings: Settings, workers: int | None = None
) -> ReportScores:
    """Normalize the reports of ``texts_dir`` (``<id>.txt``) and score them against gold.

    Args:
        gold_path: Gold JSON Lines in the format of ``../shared/data/reports-examples``.
        texts_dir: Folder with one ``<id>.txt`` per gold row.
        settings: Run settings.
        workers: Worker processes.

    Raises:
        InputError: The gold file or the folder is unusable.
    """
    rows = read_gold(gold_path)
    if not texts_dir.is_dir():
        raise InputError(f"texts folder not found: {texts_dir.name}", fix="pass the folder of .txt")
    items = [(str(r["id"]), _read_text_file(texts_dir / f"{r['id']}.txt")) for r in rows]
    normalizer = Normalizer(max_chars=settings.max_report_chars)
    reports = normalizer.normalize_many(items, n_process=workers or settings.workers)
    return score_reports(rows, {r.id: r for r in reports})

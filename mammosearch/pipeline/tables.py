"""Flat tables of normalized reports: a reports table and a findings table (Parquet or CSV).

``normalize -o OUT.parquet`` (or ``.csv``) writes the reports table ``OUT.parquet`` (one row
per report, :data:`REPORT_COLUMNS`) and the findings table ``OUT.findings.parquet`` (one row
per finding, :data:`FINDING_COLUMNS`), joined on ``report_id = id``. Column names and types
are declared here once; Parquet files carry them as their Arrow schema
(:func:`~._tables.arrow_schema`), CSV files in this order (:mod:`._tables`: streamed, written
whole or not at all). docs/CLI.md lists the columns and what is not represented.

The normalize job never goes through JSON for its tables: :class:`TableRows` (picklable) is
handed to the normalizer, whose worker processes flatten each record they build into its rows
and encode the cells (:class:`~._tables.CellEncoder`), so that the parent process only appends
them to the tables' batches (:func:`write_table_lines`). The Ray engine's shards hold JSON
lines (they make the job resumable), which its driver flattens with the same :class:`TableRows`;
:func:`write_report_tables` does the same for records or a JSON Lines file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mammosearch.nlp.normalizer import ReportLine
from mammosearch.pipeline._tables import (
    CellEncoder,
    Column,
    TableWriter,
    check_table_format,
    commit_tables,
    table_format,
)
from mammosearch.pipeline.records import NormalizeSummary
from mammosearch.pipeline.reports import count_lines, write_report_lines
from mammosearch.records import FindingType, Laterality

__all__ = [
    "FINDING_COLUMNS",
    "PHI_KINDS",
    "REPORT_COLUMNS",
    "ReportRows",
    "TableRows",
    "findings_table_path",
    "flatten_report",
    "json_loads",
    "report_values",
    "table_rows",
    "write_normalized",
    "write_report_tables",
    "write_table_lines",
]

logger = logging.getLogger(__name__)

# the kinds of PHI a scrubbed report counts (mammosearch.nlp.scrub.PHI_KINDS; a test holds them
# equal)
PHI_KINDS = ("NAME", "ID", "DATE", "AGE", "PHONE", "EMAIL", "ADDRESS", "INSTITUTION", "URL")

# the sides of a present-finding count: a finding's laterality, or none stated
_COUNT_SIDES = (*(side.value for side in Laterality), "unsided")
_BY_SIDE = (Laterality.LEFT.value, Laterality.RIGHT.value)

REPORT_COLUMNS: tuple[Column, ...] = (
    ("id", "string"),
    ("language", "string"),
    ("error", "string"),
    ("density", "string"),
    ("density_laterality", "string"),
    ("density_evidence", "string"),
    ("density_start", "int32"),
    ("density_end", "int32"),
    ("density_left", "string"),
    ("density_right", "string"),
    ("birads", "string"),
    ("birads_evidence", "string"),
    ("birads_start", "int32"),
    ("birads_end", "int32"),
    ("birads_left", "string"),
    ("birads_right", "string"),
    ("recommendation", "string"),
    ("warnings", "list<string>"),
    ("n_findings", "int32"),
    *((f"n_{kind.value}_{side}", "int32") for kind in FindingType for side in _COUNT_SIDES),
    ("standardized_text", "string"),
    ("text", "string"),
    *((f"phi_{kind.lower()}", "int32") for kind in PHI_KINDS),
)

_COUNT_KEYS = tuple(f"n_{kind.value}_{side}" for kind in FindingType for side in _COUNT_SIDES)
# (finding type, laterality or None) → its position among the count columns
_COUNT_INDEX = {(kind.value, side if side != "unsided" else None): i for i, (kind, side)
                in enumerate((k, s) for k in FindingType for s in _COUNT_SIDES)}  # fmt: skip

_DESCRIPTOR_LISTS = ("shape", "margin", "mass_density", "calc_morphology", "calc_distribution")

FINDING_COLUMNS: tuple[Column, ...] = (
    ("report_id", "string"),
    ("finding", "int32"),
    ("type", "string"),
    ("laterality", "string"),
    ("negated", "bool"),
    ("uncertain", "bool"),
    ("historical", "bool"),
    *((name, "list<string>") for name in _DESCRIPTOR_LISTS),
    ("asymmetry", "string"),
    ("size_mm", "float64"),
    ("quadrant", "string"),
    ("clock", "string"),
    ("depth", "string"),
    ("evidence", "string"),
    ("evidence_start", "int32"),
    ("evidence_end", "int32"),
)

_REPORT_NAMES = tuple(name for name, _ in REPORT_COLUMNS)
_FINDING_NAMES = tuple(name for name, _ in FINDING_COLUMNS)

_REPORT_KEYS = frozenset({
    "id", "language", "error", "density", "density_by_side", "birads", "birads_by_side",
    "findings", "recommendation", "standardized_text", "warnings", "text", "phi",
})  # fmt: skip


def findings_table_path(path: Path) -> Path:
    """The findings table beside a reports table: ``OUT.parquet`` → ``OUT.findings.parquet``."""
    return path.with_name(f"{path.stem}.findings{path.suffix}")


# --- rows --------------------------------------------------------------------------------------


def _span(value: Mapping[str, Any] | None) -> tuple[Any, Any, Any]:
    if not value:
        return None, None, None
    evidence = value["evidence"]
    return evidence["text"], evidence["start"], evidence["end"]


def _sides(by_side: Mapping[str, str] | None, what: str) -> tuple[str | None, str | None]:
    """``(left, right)`` of a ``*_by_side`` mapping."""
    if not by_side:
        return None, None
    extra = set(by_side) - set(_BY_SIDE)
    if extra:  # the normalizer states sides for left and right only; never drop one silently
        raise ValueError(f"{what}_by_side has a side the tables do not hold: {sorted(extra)}")
    return by_side.get(_BY_SIDE[0]), by_side.get(_BY_SIDE[1])


def report_values(record: Mapping[str, Any]) -> tuple[list[Any], list[list[Any]]]:
    """One normalized report's JSON form → its reports-table values and its findings-table
    values, each in its table's column order (:data:`REPORT_COLUMNS`, :data:`FINDING_COLUMNS`).

    Args:
        record: :meth:`~mammosearch.records.NormalizedReport.to_dict`'s form, with ``text`` and
            ``phi`` when it was scrubbed.

    Raises:
        ValueError: The record has a key or a side that the tables do not hold (so that nothing
            is dropped without notice).
    """
    extra = set(record) - _REPORT_KEYS
    if extra:
        raise ValueError(f"a normalized report has keys the tables do not hold: {sorted(extra)}")
    rid = record["id"]
    density, birads = record.get("density"), record.get("birads")
    findings = record.get("findings") or ()
    counts = [0] * len(_COUNT_KEYS)
    rows = []
    for number, finding in enumerate(findings):
        if not finding["negated"] and not finding["historical"]:
            counts[_COUNT_INDEX[finding["type"], finding["laterality"]]] += 1
        rows.append(_finding_values(rid, number, finding))
    phi = record.get("phi")
    if phi is not None and set(phi) - set(PHI_KINDS):
        raise ValueError(
            f"phi has kinds the tables do not hold: {sorted(set(phi) - set(PHI_KINDS))}"
        )
    row = [
        rid, record.get("language"), record.get("error"),
        density["category"] if density else None,
        density.get("laterality") if density else None,
        *_span(density), *_sides(record.get("density_by_side"), "density"),
        birads["category"] if birads else None,
        *_span(birads), *_sides(record.get("birads_by_side"), "birads"),
        record.get("recommendation"), list(record.get("warnings") or ()), len(findings),
        *counts, record.get("standardized_text"), record.get("text"),
        *((None,) * len(PHI_KINDS) if phi is None else (int(phi.get(k, 0)) for k in PHI_KINDS)),
    ]  # fmt: skip
    return row, rows


def flatten_report(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One normalized report's JSON form → its reports-table row and its findings-table rows,
    as ``{column: value}`` (:func:`report_values`, which raises ``ValueError``)."""
    row, rows = report_values(record)
    return dict(zip(_REPORT_NAMES, row, strict=True)), [
        dict(zip(_FINDING_NAMES, values, strict=True)) for values in rows
    ]


def _finding_values(report_id: str, number: int, finding: Mapping[str, Any]) -> list[Any]:
    d, loc, ev = finding["descriptors"], finding["location"], finding["evidence"]
    return [
        report_id, number, finding["type"], finding["laterality"], finding["negated"],
        finding["uncertain"], finding["historical"], d["shape"], d["margin"], d["mass_density"],
        d["calc_morphology"], d["calc_distribution"], d["asymmetry"], d["size_mm"],
        loc["quadrant"], loc["clock"], loc["depth"], ev["text"], ev["start"], ev["end"],
    ]  # fmt: skip


# --- writers -----------------------------------------------------------------------------------

# one report's rows, encoded: its reports-table cells and its findings-table cells
ReportRows = tuple[list[Any], list[list[Any]]]


class TableRows:
    """A normalized report's JSON form → its encoded rows (:data:`ReportRows`) for one format.

    Picklable: the normalize job hands it to the normalizer's worker processes
    (:meth:`~mammosearch.nlp.Normalizer.normalize_lines`' ``rows``), which flatten and encode
    in parallel.

    Args:
        fmt: ``parquet`` or ``csv``.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.reports = CellEncoder(REPORT_COLUMNS, fmt)
        self.findings = CellEncoder(FINDING_COLUMNS, fmt)

    def __call__(self, record: Mapping[str, Any]) -> ReportRows:
        """The rows of one record (see :func:`report_values`, which raises ``ValueError``)."""
        row, rows = report_values(record)
        return self.reports(row), [self.findings(values) for values in rows]


def table_rows(output_path: Path) -> TableRows | None:
    """The :class:`TableRows` of an output named ``.parquet`` or ``.csv``, else ``None``."""
    fmt = table_format(output_path)
    return TableRows(fmt) if fmt is not None else None


def json_loads() -> Callable[[str | bytes], Any]:
    """orjson's ``loads`` (Gradio's dependency, several times faster), else json's."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with the runtime dependencies
        return json.loads
    return orjson.loads


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    loads = json_loads()
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield loads(line)


class _Tables:
    """The reports and findings tables of one job, committed together (or discarded)."""

    def __init__(self, output_path: Path, fmt: str, stack: ExitStack) -> None:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        self.reports = TableWriter(output_path, REPORT_COLUMNS, fmt)
        stack.callback(self.reports.discard)
        self.findings = TableWriter(findings_table_path(output_path), FINDING_COLUMNS, fmt)
        stack.callback(self.findings.discard)

    def add(self, rows: ReportRows) -> None:
        report, findings = rows
        self.reports.append(report)
        for finding in findings:
            self.findings.append(finding)

    def commit(self) -> tuple[int, int]:
        commit_tables((self.reports, self.findings))
        logger.debug("tables: %d reports, %d findings (%s)", self.reports.count,
                     self.findings.count, self.reports.fmt)  # fmt: skip
        return self.reports.count, self.findings.count


def write_report_tables(
    records: Path | Iterable[Mapping[str, Any]], output_path: Path
) -> tuple[int, int]:
    """Write the reports table at ``output_path`` and the findings table beside it.

    Args:
        records: Normalized reports in their JSON form, or a JSON Lines file of them (as
            ``normalize`` writes), streamed.
        output_path: ``OUT.parquet`` or ``OUT.csv``; the findings go to
            :func:`findings_table_path` of it.

    Returns:
        ``(reports, findings)``: the rows written to each table.

    Raises:
        InputError: The output is not ``.parquet`` or ``.csv``, or pyarrow is missing for
            Parquet.
    """
    fmt = check_table_format(output_path)
    source = _iter_jsonl(records) if isinstance(records, Path) else records
    rows = TableRows(fmt)
    with ExitStack() as stack:
        tables = _Tables(output_path, fmt, stack)
        for record in source:
            tables.add(rows(record))
        return tables.commit()


def write_table_lines(
    lines: Iterable[ReportLine], output_path: Path, *, progress: bool = False
) -> NormalizeSummary:
    """Write normalized report lines that carry their rows (``line.rows``, made by
    :class:`TableRows` of this output's format) as the two tables, atomically, and count them.

    The normalize job's table writer, for both engines.

    Raises:
        InputError: The output is not ``.parquet`` or ``.csv``, or pyarrow is missing.
        ValueError: A line carries no rows.
    """
    fmt = check_table_format(output_path)
    summary = NormalizeSummary()
    started = time.perf_counter()
    with ExitStack() as stack:
        tables = _Tables(output_path, fmt, stack)
        for line in count_lines(lines, summary, progress=progress, stack=stack):
            if line.rows is None:
                raise ValueError("a report line carries no table rows")
            tables.add(line.rows)
        tables.commit()
    summary.seconds = time.perf_counter() - started
    return summary


def write_normalized(
    lines: Iterable[ReportLine], output_path: Path, *, progress: bool = False
) -> NormalizeSummary:
    """The normalize job's output: tables for ``.parquet`` / ``.csv`` (:func:`write_table_lines`),
    JSON Lines otherwise (:func:`~.reports.write_report_lines`)."""
    if table_format(output_path) is not None:
        return write_table_lines(lines, output_path, progress=progress)
    return write_report_lines(lines, output_path, progress=progress)

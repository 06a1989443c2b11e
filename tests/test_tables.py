"""Flat tables of normalized reports: the declared schema, and a round trip that loses nothing.

The reports and findings tables are read back (Parquet with pyarrow, CSV with the standard
library), rebuilt into normalized reports' JSON form, and compared with the JSON Lines that
``normalize`` wrote, field by field; pandas and DuckDB load them as the README shows.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

import mammosearch
from mammosearch.config import load_settings
from mammosearch.errors import InputError
from mammosearch.pipeline import (
    FINDING_COLUMNS,
    REPORT_COLUMNS,
    normalize_reports,
    sample_reports_dir,
    write_report_tables,
)
from mammosearch.pipeline._tables import TableWriter, arrow_schema
from mammosearch.pipeline.tables import PHI_KINDS, findings_table_path, flatten_report
from mammosearch.records import FindingType, Laterality
from mammosearch.samples.reports import generate_reports
from tests.conftest import SHARED_DATA

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DOCS = Path(mammosearch.__file__).parent.parent / "docs" / "CLI.md"
CORPORA = {
    "samples": None,
    "examples": ("reports-examples", "texts"),
    "dmid-en": ("reports-real", "dmid-en", "texts"),
    "paraguay-es": ("reports-real", "paraguay-es", "texts"),
}


def _documented(table: str) -> list[tuple[str, str]]:
    """The ``| column | type | … |`` rows of docs/CLI.md's section on ``table``."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split(f"<!-- columns: {table} -->", 1)[1].split("<!-- end columns -->", 1)[0]
    rows = re.findall(r"^\| `([\w<>{}]+)` \| `([\w<>]+)` \|", section, flags=re.MULTILINE)
    out: list[tuple[str, str]] = []
    for name, kind in rows:  # a templated row stands for every finding type and side
        if name == "n_{type}_{side}":
            sides = (*(s.value for s in Laterality), "unsided")
            out += [(f"n_{t.value}_{s}", kind) for t in FindingType for s in sides]
        elif name == "phi_{kind}":
            out += [(f"phi_{k.lower()}", kind) for k in PHI_KINDS]
        else:
            out.append((name, kind))
    return out


def test_columns_are_the_documented_ones() -> None:
    assert list(REPORT_COLUMNS) == _documented("reports")
    assert list(FINDING_COLUMNS) == _documented("findings")
    assert len({n for n, _ in REPORT_COLUMNS}) == len(REPORT_COLUMNS)


def test_phi_kinds_are_the_scrubbers() -> None:
    from mammosearch.nlp.scrub import PHI_KINDS as SCRUB_KINDS

    assert PHI_KINDS == SCRUB_KINDS


# --- the round trip ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(CORPORA))
def normalized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus normalized to JSON Lines (scrubbed: the ``text`` and ``phi`` columns too)."""
    parts = CORPORA[request.param]
    source = sample_reports_dir() if parts is None else SHARED_DATA.joinpath(*parts)
    if not source.is_dir():
        pytest.skip(f"../shared/data/{'/'.join(parts or ())} is not available on this machine")
    out = tmp_path_factory.mktemp(request.param) / "normalized.jsonl"
    normalize_reports(source, out, settings=load_settings(), workers=1, scrub=True)
    return out


def _typed(value: str, kind: str) -> Any:
    """A CSV cell read back as its declared type (an empty cell is missing)."""
    if value == "":
        return [] if kind == "list<string>" else None
    if kind.startswith("int"):
        return int(value)
    if kind == "float64":
        return float(value)
    if kind == "bool":
        return {"true": True, "false": False}[value]
    if kind == "list<string>":
        return value.split(" | ")  # warnings; descriptors are split again below
    return value


def _read(path: Path, columns: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        assert table.schema == arrow_schema(columns)
        return list(table.to_pylist())
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == [name for name, _ in columns]
        rows = []
        for cells in reader:
            row = {
                name: _typed(cell, kind) for (name, kind), cell in zip(columns, cells, strict=True)
            }
            for name, kind in columns:
                if kind == "list<string>" and name != "warnings":
                    row[name] = [v for value in row[name] for v in value.split("|")]
            rows.append(row)
        return rows


def _span(text: Any, start: Any, end: Any) -> dict[str, Any]:
    return {"text": text, "start": start, "end": end}


def _rebuild(row: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON form of a report from its rows (the inverse of the tables)."""
    density = birads = None
    if row["density"] is not None:
        density = {"category": row["density"], "laterality": row["density_laterality"],
                   "evidence": _span(row["density_evidence"], row["density_start"], row["density_end"])}  # fmt: skip
    if row["birads"] is not None:
        birads = {"category": row["birads"],
                  "evidence": _span(row["birads_evidence"], row["birads_start"], row["birads_end"])}  # fmt: skip
    sides = ("left", "right")
    out = {
        "id": row["id"], "language": row["language"], "density": density,
        "density_by_side": {s: row[f"density_{s}"] for s in sides if row[f"density_{s}"]},
        "birads": birads,
        "birads_by_side": {s: row[f"birads_{s}"] for s in sides if row[f"birads_{s}"]},
        "findings": [{
            "type": f["type"], "laterality": f["laterality"], "negated": f["negated"],
            "uncertain": f["uncertain"], "historical": f["historical"],
            "descriptors": {k: f[k] for k in ("shape", "margin", "mass_density", "calc_morphology",
                                              "calc_distribution", "asymmetry", "size_mm")},
            "location": {k: f[k] for k in ("quadrant", "clock", "depth")},
            "evidence": _span(f["evidence"], f["evidence_start"], f["evidence_end"]),
        } for f in sorted(findings, key=lambda f: f["finding"])],
        "recommendation": row["recommendation"], "standardized_text": row["standardized_text"],
        "warnings": row["warnings"], "error": row["error"],
    }  # fmt: skip
    if row["text"] is not None:
        out["text"] = row["text"]
        out["phi"] = {k: row[f"phi_{k.lower()}"] for k in PHI_KINDS if row[f"phi_{k.lower()}"]}
    return out


def _blank_to_none(value: Any) -> Any:
    """CSV writes an empty string and a missing value alike (docs/CLI.md)."""
    if isinstance(value, dict):
        return {k: _blank_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_to_none(v) for v in value]
    return None if value == "" else value


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_hold_everything_the_json_lines_had(normalized: Path, fmt: str) -> None:
    records = [json.loads(line) for line in normalized.read_text(encoding="utf-8").splitlines()]
    out = normalized.with_name(f"out.{fmt}")
    counts = write_report_tables(normalized, out)
    reports = _read(out, REPORT_COLUMNS)
    findings = _read(findings_table_path(out), FINDING_COLUMNS)
    assert counts == (len(records), sum(len(r["findings"]) for r in records))
    assert [r["id"] for r in reports] == [r["id"] for r in records]  # every report, in order
    by_report: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        by_report.setdefault(finding["report_id"], []).append(finding)
    for record, row in zip(records, reports, strict=True):
        rebuilt = _rebuild(row, by_report.get(record["id"], []))
        expected = {**record, "phi": {k: v for k, v in record.get("phi", {}).items() if v}}
        if "text" not in record:
            del expected["phi"]
        if fmt == "csv":
            expected, rebuilt = _blank_to_none(expected), _blank_to_none(rebuilt)
        assert rebuilt == expected  # field by field: nothing the JSON Lines had is lost
        present = [f for f in record["findings"] if not f["negated"] and not f["historical"]]
        for kind in FindingType:
            for side in ("left", "right", "bilateral", None):
                name = f"n_{kind.value}_{side or 'unsided'}"
                assert row[name] == sum(
                    f["type"] == kind and f["laterality"] == side for f in present
                )
        assert row["n_findings"] == len(record["findings"])


def test_normalize_writes_the_same_tables_and_pandas_and_duckdb_load_them(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    settings = load_settings()
    lines = tmp_path / "n.jsonl"
    normalize_reports(sample_reports_dir(), lines, settings=settings, workers=1)
    expected = tmp_path / "expected.parquet"
    write_report_tables(lines, expected)
    for fmt in ("parquet", "csv"):
        out = tmp_path / "tables" / f"reports.{fmt}"
        summary = normalize_reports(sample_reports_dir(), out, settings=settings, workers=1)
        assert summary.total == 8
        written = {p.name for p in out.parent.iterdir() if p.suffix == f".{fmt}"}
        assert written == {f"reports.{fmt}", f"reports.findings.{fmt}"}
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no JSON Lines left
        # as the README shows
        read = pd.read_parquet if fmt == "parquet" else pd.read_csv
        reports, findings = read(out), read(findings_table_path(out))
        assert len(reports) == 8 and list(reports.columns) == [n for n, _ in REPORT_COLUMNS]
        assert list(findings.columns) == [n for n, _ in FINDING_COLUMNS]
        joined = duckdb.sql(
            f"select r.id, count(f.type) as n from '{out}' r "
            f"left join '{findings_table_path(out)}' f on f.report_id = r.id group by r.id"
        ).fetchall()
        assert sorted(joined) == sorted(reports.groupby("id")["n_findings"].sum().items())
        if fmt == "parquet":  # the job's tables are the conversion of its JSON Lines
            assert pq.read_table(out).equals(pq.read_table(expected))
            assert pq.read_table(findings_table_path(out)).equals(
                pq.read_table(findings_table_path(expected)))  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_the_jobs_tables_are_its_json_lines_converted(tmp_path: Path, workers: int) -> None:
    """The job's workers flatten each record into its rows with no JSON in between: its tables
    are, byte for byte (CSV) and value for value (Parquet), those its JSON Lines convert to."""
    source = tmp_path / "reports.jsonl"
    with source.open("w", encoding="utf-8") as handle:
        for report in generate_reports(120, seed=5):
            handle.write(json.dumps({"id": report.truth["id"], "text": report.text}) + "\n")
        handle.write('{"id": "broken", "text": 3}\nnot json\n')  # two rows with an error
    settings = load_settings()
    lines = tmp_path / "n.jsonl"
    normalize_reports(source, lines, settings=settings, workers=workers, scrub=True)
    for fmt in ("parquet", "csv"):
        expected = tmp_path / "expected" / f"reports.{fmt}"
        write_report_tables(lines, expected)
        out = tmp_path / "job" / f"reports.{fmt}"
        summary = normalize_reports(source, out, settings=settings, workers=workers, scrub=True)
        assert (summary.total, summary.failed) == (122, 2)
        for job, converted in ((out, expected), (findings_table_path(out),
                                                 findings_table_path(expected))):  # fmt: skip
            if fmt == "csv":
                assert job.read_bytes() == converted.read_bytes()
            else:
                assert pq.read_table(job).equals(pq.read_table(converted))
    findings = pq.read_table(findings_table_path(tmp_path / "job" / "reports.parquet"))
    assert findings.num_rows > 120 and any(findings.column("margin").to_pylist())


def test_a_report_with_an_error_is_a_row(tmp_path: Path) -> None:
    record = {"id": "r1", "language": None, "density": None, "density_by_side": {},
              "birads": None, "birads_by_side": {}, "findings": [], "recommendation": None,
              "standardized_text": "", "warnings": [], "error": "E022: empty report"}  # fmt: skip
    out = tmp_path / "t.parquet"
    assert write_report_tables([record], out) == (1, 0)
    row = pq.read_table(out).to_pylist()[0]
    assert row["error"] == "E022: empty report" and row["n_findings"] == 0
    assert row["text"] is None and row["phi_name"] is None


def test_a_field_the_tables_do_not_hold_is_refused_not_dropped() -> None:
    base = {"id": "r", "findings": [], "density_by_side": {}, "birads_by_side": {}}
    with pytest.raises(ValueError, match="new_field"):
        flatten_report({**base, "new_field": 1})
    with pytest.raises(ValueError, match="bilateral"):
        flatten_report({**base, "density_by_side": {"bilateral": "C"}})


def test_streaming_writes_row_groups_and_a_failure_leaves_nothing(tmp_path: Path) -> None:
    rows = ({"report_id": str(i), "finding": i} for i in range(10_000))
    columns = (("report_id", "string"), ("finding", "int32"))
    writer = TableWriter(tmp_path / "big.parquet", columns, "parquet")
    for row in rows:
        writer.write(row)
    writer.close()
    meta = pq.ParquetFile(writer.partial).metadata
    assert meta.num_rows == 10_000 and meta.num_row_groups == 3  # 4096-row batches
    writer.discard()

    def broken() -> Any:
        yield {"id": "ok", "findings": []}
        raise RuntimeError("crash after one record")

    out = tmp_path / "crash.csv"
    with pytest.raises(RuntimeError):
        write_report_tables(broken(), out)
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.parquet or \.csv"):
        write_report_tables([], tmp_path / "out.jsonl")


def test_cli_normalize_to_tables(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mammosearch.cli import app

    out = tmp_path / "out" / "reports.CSV"
    result = CliRunner().invoke(app, ["normalize", "--sample", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and findings_table_path(out).is_file()
    with out.open(encoding="utf-8") as handle:
        assert sum(1 for _ in csv.reader(handle)) == 1 + 8

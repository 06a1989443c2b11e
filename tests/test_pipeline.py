from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammosearch.config import load_settings
from mammosearch.errors import InputError
from mammosearch.pipeline import iter_report_inputs, normalize_reports, sample_reports_dir
from mammosearch.records import Laterality, View


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_txt_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("BI-RADS 2", encoding="utf-8")
    (tmp_path / "a.txt").write_bytes("Mamas densas, BI-RADS 1".encode("cp1252"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("BI-RADS 3", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    items = list(iter_report_inputs(tmp_path))
    assert [i for i, _ in items] == ["a", "b", "sub/a"]  # duplicate stems get their path
    assert [i for i, _ in iter_report_inputs(tmp_path / "b.txt")] == ["b"]


def test_csv_columns_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('id,text\nx1,"BI-RADS 2"\n,ACR C\n', encoding="utf-8")
    assert list(iter_report_inputs(path)) == [("x1", "BI-RADS 2"), ("row-2", "ACR C")]
    path.write_text("study,report\ns1,BI-RADS 4\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column 'text'"):
        list(iter_report_inputs(path))
    items = list(iter_report_inputs(path, id_column="study", text_column="report"))
    assert items == [("s1", "BI-RADS 4")]


def test_jsonl_bad_lines_become_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"id": "a", "text": "BI-RADS 1"}\n'
        "not json\n"
        "\n"
        '[1, 2]\n{"id": "d", "text": 7}\n{"text": "BI-RADS 5"}\n',
        encoding="utf-8",
    )
    items = list(iter_report_inputs(path))
    assert [i for i, _ in items] == ["a", "line-2", "line-4", "d", "line-6"]
    assert [type(p).__name__ for _, p in items] == [
        "str",
        "ReportParseError",
        "ReportParseError",
        "ReportParseError",
        "str",
    ]


@pytest.mark.parametrize("name", ["missing.csv", "reports.xlsx"])
def test_unusable_input(tmp_path: Path, name: str) -> None:
    if name.endswith(".xlsx"):
        (tmp_path / name).write_bytes(b"PK")
    with pytest.raises(InputError):
        iter_report_inputs(tmp_path / name)


def test_normalize_job_writes_every_record_in_order(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [{"id": f"r{i}", "text": f"ACR {'ABCD'[i % 4]}. BI-RADS {i % 3}."} for i in range(20)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(5, "{broken")
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "deep" / "out.jsonl"
    summary = normalize_reports(src, out, settings=load_settings())
    records = _read_jsonl(out)
    assert summary.total == 21 and summary.ok == 20 and summary.failed == 1
    assert summary.errors == {"E022": 1}
    assert summary.with_density == 20 and summary.with_birads == 20
    assert [r["id"] for r in records][:6] == ["r0", "r1", "r2", "r3", "r4", "line-6"]
    assert records[5]["error"].startswith("E022") and records[5]["density"] is None
    assert all(set(r) == set(records[0]) for r in records)
    assert not list(out.parent.glob(".*.tmp"))


def test_failed_job_leaves_no_partial_output(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("wrong,columns\n1,2\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError):
        normalize_reports(src, out, settings=load_settings())
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_legacy_encoded_table(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\nx,Mamas heterogéneamente densas. BI-RADS 2\n".encode("cp1252"))
    out = tmp_path / "out.jsonl"
    normalize_reports(src, out, settings=load_settings())
    (record,) = _read_jsonl(out)
    assert record["density"]["evidence"]["text"] == "heterogéneamente densas"


def test_bundled_samples_exist() -> None:
    samples = sorted(sample_reports_dir().glob("*.txt"))
    assert len(samples) >= 8
    langs = {p.stem.split("-")[2] for p in samples}
    assert {"en", "es"} <= langs


def test_parquet_report_table(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"id": ["x1", None, "x3"], "text": ["BI-RADS 2", "ACR C", None]}), path)
    assert list(iter_report_inputs(path)) == [("x1", "BI-RADS 2"), ("row-2", "ACR C"), ("x3", "")]
    pq.write_table(pa.table({"id": ["a"], "text": [7]}), path)
    (item,) = list(iter_report_inputs(path))
    assert item[0] == "a" and type(item[1]).__name__ == "ReportParseError"
    with pytest.raises(InputError, match="no column 'report'"):
        list(iter_report_inputs(path, text_column="report"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot be read as Parquet"):
        list(iter_report_inputs(tmp_path / "bad.parquet"))
    summary = normalize_reports(
        tmp_path / "r.parquet", tmp_path / "o.jsonl", settings=load_settings()
    )
    assert (summary.total, summary.failed) == (1, 1)


def test_parquet_manifest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from mammosearch.pipeline import read_manifest

    rows = [{"image": "a.png", "case_id": 7, "patient_id": "p", "laterality": "left",
             "view": "cc", "report": None, "density": "B"}]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    (row,) = read_manifest(tmp_path / "m.parquet")
    assert (row.image, row.case_id, row.laterality, row.view, row.report, row.label) == (
        tmp_path / "a.png", "7", Laterality.LEFT, View.CC, None, "B")  # fmt: skip
    odd = [{**rows[0], "laterality": "B", "view": "spot-secret"}]
    pq.write_table(pa.Table.from_pylist(odd), tmp_path / "odd.parquet")
    with caplog.at_level("WARNING", logger="mammosearch"):
        (row,) = read_manifest(tmp_path / "odd.parquet")
    assert (row.laterality, row.view) == (None, None)  # left to the image's own tags and name
    assert "row 1: laterality" in caplog.text and "row 1: unknown view" in caplog.text
    assert "secret" not in caplog.text
    (tmp_path / "m.xlsx").touch()
    with pytest.raises(InputError, match="unknown manifest kind"):
        read_manifest(tmp_path / "m.xlsx")

"""The report reader (pipeline/reports.py) on files in every encoding: report files and folders,
CSV and JSON Lines tables, gold files and manifests. Each file is written by the test; a record
is read as written, decoded with a warning, or refused with its typed error, never silently
corrupted. The sentences are written for these tests."""

from __future__ import annotations

import codecs
import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.errors import InputError, ReportDecodeError
from mammosearch.pipeline import (
    iter_report_inputs,
    normalize_reports,
    read_gold,
    read_manifest,
    read_report_file,
)
from mammosearch.pipeline.stages import row_report_text

SPANISH = (
    "Mamas heterogéneamente densas (ACR c). Nódulo irregular de márgenes espiculados en el "
    "cuadrante ínferoexterno de la mama derecha. Categoría BI-RADS 4C. Se recomienda biopsia."
)
ENGLISH = (
    "Scattered fibroglandular densities \u2013 no change. There\u2019s a group of amorphous "
    "calcifications in the left breast. BI-RADS 4A."
)
MIB = 1 << 20
ENCODINGS = {
    "utf-16-le-bom": codecs.BOM_UTF16_LE + SPANISH.encode("utf-16-le"),
    "utf-16-be-bom": codecs.BOM_UTF16_BE + SPANISH.encode("utf-16-be"),
    "utf-32-bom": codecs.BOM_UTF32_LE + SPANISH.encode("utf-32-le"),
    "utf-8-bom": codecs.BOM_UTF8 + SPANISH.encode("utf-8"),
    "utf-16-no-bom": SPANISH.encode("utf-16-le"),
    "latin-1": SPANISH.encode("latin-1"),
    "iso-8859-1": SPANISH.encode("iso-8859-1"),
}
GUESSED = {"utf-16-no-bom", "latin-1", "iso-8859-1"}


def _records(path: Path) -> dict[str, dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def _what_it_says(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["language"],
        record["density"]["category"],
        record["birads"]["category"],
        [(f["type"], f["laterality"], f["descriptors"]) for f in record["findings"]],
        record["recommendation"],
    )


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_a_report_file_is_read_in_its_encoding(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_bytes(ENCODINGS[name])
    assert read_report_file(path) == SPANISH  # assess --report-file, manifest report_path


def test_a_folder_of_reports_in_every_encoding(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "reference.txt").write_text(SPANISH, encoding="utf-8")
    for name, data in ENCODINGS.items():
        (folder / f"{name}.txt").write_bytes(data)
    (folder / "cp1252.txt").write_bytes(ENGLISH.encode("cp1252"))
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(folder, out, settings=load_settings(None), workers=1)
    assert summary.ok == summary.total == len(ENCODINGS) + 2
    records = _records(out)
    reference = _what_it_says(records["reference"])
    assert reference[1:3] == ("C", "4C") and reference[3]
    for name in ENCODINGS:
        assert _what_it_says(records[name]) == reference, name
        warnings = [w[:4] for w in records[name]["warnings"]]
        assert warnings == (["W001"] if name in GUESSED else []), name
    english = records["cp1252"]
    assert _what_it_says(english)[1:3] == ("B", "4A")
    assert [(f["type"], f["laterality"]) for f in english["findings"]] == [
        ("calcification", "left")
    ]
    assert english["warnings"] == ["W001: input is not UTF-8; decoded as cp1252 (guessed)"]


def _png_bytes(tmp_path: Path) -> bytes:
    from PIL import Image

    Image.new("L", (16, 16), 128).save(tmp_path / "tiny.png")
    return (tmp_path / "tiny.png").read_bytes()


def test_binary_report_files_are_refused_one_by_one(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "good.txt").write_text(SPANISH, encoding="utf-8")
    (folder / "random.txt").write_bytes(os.urandom(2048))
    (folder / "image.txt").write_bytes(_png_bytes(tmp_path))
    for name in ("random", "image"):
        with pytest.raises(ReportDecodeError, match="not text") as caught:
            read_report_file(folder / f"{name}.txt")
        assert str(caught.value).startswith("E023: the report ") and caught.value.fix
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(folder, out, settings=load_settings(None), workers=1)
    assert (summary.ok, summary.failed) == (1, 2)
    records = _records(out)
    assert records["image"]["error"].startswith("E023: the report is a PNG image")
    assert records["random"]["error"].startswith("E023: the report is not text")
    assert records["random"]["language"] is None and records["good"]["error"] is None


def test_a_binary_report_under_scrub_is_an_error_record(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "good.txt").write_text(SPANISH, encoding="utf-8")
    (folder / "image.txt").write_bytes(_png_bytes(tmp_path))
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(folder, out, settings=load_settings(None), workers=1, scrub=True)
    assert (summary.ok, summary.failed) == (1, 1)
    assert _records(out)["image"]["error"].startswith("E023")


def _padding() -> str:
    """More than a MiB of plain ASCII, in a column the reader does not read."""
    return "sin cambios respecto al estudio previo " * (MIB // 38 + 100)


def test_a_latin_1_row_after_the_first_mib_of_a_csv(tmp_path: Path) -> None:
    source = tmp_path / "reports.csv"
    with source.open("wb") as handle:
        handle.write(b"id,text,notes\n")
        handle.write(f"early,ACR B. BI-RADS 1.,{_padding()}\n".encode())
        assert handle.tell() > MIB
        handle.write(f'late,"{SPANISH}",\n'.encode("latin-1"))
        handle.write('last,"Categoría BI-RADS 2.",\n'.encode())
    items = dict(iter_report_inputs(source))
    assert items["early"] == "ACR B. BI-RADS 1." and items["last"] == "Categoría BI-RADS 2."
    assert items["late"] == SPANISH.encode("latin-1")  # its own bytes, decoded on their own
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None), workers=1)
    assert summary.ok == 3
    records = _records(out)
    late = records["late"]
    assert _what_it_says(late)[1:3] == ("C", "4C")
    assert [(f["type"], f["laterality"]) for f in late["findings"]] == [("mass", "right")]
    assert late["warnings"] == ["W001: input is not UTF-8; decoded as cp1252 (guessed)"]
    assert records["early"]["warnings"] == [] and records["last"]["warnings"] == []
    assert "\ufffd" not in out.read_text(encoding="utf-8")


def test_a_latin_1_line_after_the_first_mib_of_a_jsonl(tmp_path: Path) -> None:
    source = tmp_path / "reports.jsonl"
    with source.open("wb") as handle:
        early = {"id": "early", "text": "ACR B. BI-RADS 1.", "notes": _padding()}
        handle.write(json.dumps(early).encode() + b"\n")
        late = json.dumps({"id": "tardío", "text": SPANISH}, ensure_ascii=False)
        handle.write(late.encode("latin-1") + b"\n")
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None), workers=1)
    assert summary.ok == 2
    late_record = _records(out)["tardío"]  # the id is decoded too
    assert _what_it_says(late_record)[1:3] == ("C", "4C")
    assert [w[:4] for w in late_record["warnings"]] == ["W001"]


def test_a_5_mb_report_in_a_csv_field(tmp_path: Path) -> None:
    huge = "Mamas densas, sin hallazgos. " * (5_000_000 // 29 + 1)
    source = tmp_path / "reports.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerow(["before", "ACR A. BI-RADS 1."])
        writer.writerow(["huge", huge])
        writer.writerow(["after", SPANISH])
    assert dict(iter_report_inputs(source))["huge"] == huge  # read whole, no _csv.Error
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None), workers=1)
    assert (summary.ok, summary.failed) == (2, 1)
    records = _records(out)
    assert records["huge"]["error"].startswith("E022: report has 5")
    assert _what_it_says(records["after"])[1:3] == ("C", "4C")


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_a_utf_16_csv(tmp_path: Path, bom: bool, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "reports.csv"
    body = f'id,text\nr1,"{SPANISH}"\nr2,ACR A. BI-RADS 1.\n'.encode("utf-16-le")
    source.write_bytes((codecs.BOM_UTF16_LE if bom else b"") + body)
    with caplog.at_level(logging.WARNING, logger="mammosearch.pipeline.reports"):
        assert list(iter_report_inputs(source)) == [("r1", SPANISH), ("r2", "ACR A. BI-RADS 1.")]
    guessed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("W001")]
    assert guessed == ([] if bom else [guessed[0]]) and SPANISH not in caplog.text


def test_a_utf_16_csv_that_stops_being_utf_16_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "reports.csv"
    body = "id,text\nr1,ACR A. BI-RADS 1.\nr2,ACR B.\n".encode("utf-16-le")
    source.write_bytes(codecs.BOM_UTF16_LE + body + b"\x00\xdc\x41\x00")  # a lone surrogate
    with pytest.raises(ReportDecodeError, match="re-save the table as UTF-8"):
        list(iter_report_inputs(source))


def _gold_and_texts(tmp_path: Path) -> tuple[Path, Path]:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "año-1.txt").write_bytes(SPANISH.encode("latin-1"))
    gold = tmp_path / "gold.jsonl"
    row = {"id": "año-1", "density": "C", "birads": "4C",
           "findings": [{"type": "mass", "laterality": "right", "negated": False}]}  # fmt: skip
    gold.write_bytes(json.dumps(row, ensure_ascii=False).encode("latin-1") + b"\n")
    return gold, texts


def test_a_latin_1_gold_file_is_decoded(tmp_path: Path) -> None:
    gold, texts = _gold_and_texts(tmp_path)
    assert [r["id"] for r in read_gold(gold)] == ["año-1"]
    result = CliRunner().invoke(app, ["evaluate", "reports", str(gold), str(texts), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.splitlines()[-1])
    assert scores["density_accuracy"] == 1.0 and scores["birads_accuracy"] == 1.0


@pytest.mark.parametrize("kind", ["utf-16", "png", "random"])
def test_a_gold_file_that_is_not_utf_8(tmp_path: Path, kind: str) -> None:
    _, texts = _gold_and_texts(tmp_path)
    gold = tmp_path / "gold.jsonl"
    line = json.dumps({"id": "año-1", "density": "C", "birads": "4C"}, ensure_ascii=False)
    data = {
        "utf-16": line.encode("utf-16"),
        "png": _png_bytes(tmp_path),
        "random": os.urandom(4096),
    }[kind]
    gold.write_bytes(data)
    result = CliRunner().invoke(app, ["evaluate", "reports", str(gold), str(texts)])
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or (isinstance(result.exception, SystemExit))
    )
    if kind == "utf-16":
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in read_gold(gold)] == ["año-1"]
    else:
        assert result.exit_code == 1, result.output
        assert "E023: the gold file " in result.output
        with pytest.raises(InputError):
            read_gold(gold)


def test_a_latin_1_manifest_with_reports(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    lines = [
        "image,case_id,patient_id,report",
        f'a.png,C1,P1,"{SPANISH}"',
        "b.png,C2,P2,ACR A. BI-RADS 1.",
        f'c.png,C3,P3,"{"x" * 200_000}"',  # over the csv module's default field limit
    ]
    manifest.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    rows = read_manifest(manifest)
    assert [row_report_text(r) for r in rows] == [SPANISH, "ACR A. BI-RADS 1.", "x" * 200_000]

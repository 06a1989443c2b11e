"""The planted-PHI canary, end to end: fake names and identifiers in DICOM tags (standard and
private), in file names and in report text (record numbers with their label glued on by hyphens
among them) reach no log line, error message, index file, thumbnail, ``search``/``assess`` JSON
or ``normalize --scrub`` output (the worker processes scrub there)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.index import CaseIndex
from mammosearch.samples.phantoms import phantom
from tests.conftest import write_manifest
from tests.test_deid import MRN, NAME, _plant
from tests.test_imaging import write_dicom

PHONE = "(212) 555-0199"
# record numbers written with their label glued on by hyphens, in the header and in the body;
# each part of the value must go (the parts are checked in the texts stored and written)
GLUED = ("MRN-QX-80417", "HC-7730-ZW")
GLUED_PARTS = ("QX", "80417", "7730", "ZW")
SECRETS = (NAME, MRN, "Zebulon", "Ruiz-Canario", "612345678", PHONE, *GLUED, "QX-80417",
           "7730-ZW")  # fmt: skip


def _report(density: str) -> str:
    return (
        f"Patient: Zebulon {NAME}. MRN: {MRN}. NHC 612345678. Tel: {PHONE}. {GLUED[0]}\n"
        f"Bilateral mammography ({GLUED[1]}). ACR {density}. No suspicious mass. BI-RADS 1.\n"
        "Reported by Dra. Lucia Ruiz-Canario, MD."
    )


def _no_glued_part(texts: list[str], where: str) -> None:
    for text in texts:
        for part in GLUED_PARTS:
            assert part not in text, f"a part of a glued record number in {where}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("canary")
    rows = []
    for n, density in enumerate("ABCDABCD"):
        side, view = "RL"[n % 2], ("CC", "MLO")[n // 2 % 2]
        if n < 4:  # DICOMs with PHI in standard, private and nested tags
            name = f"{NAME}_{MRN}_{n}.dcm"
            write_dicom(folder / name, phantom(density, view, side, seed=n)[::4, ::4] / 255.0,
                        laterality=side, view=view)  # fmt: skip
            _plant(folder / name, study_uid=generate_uid(), series_uid=generate_uid())
        else:  # PNGs whose names carry the identity
            name = f"{NAME}_{MRN}_{n}_{side}{view}.png"
            Image.fromarray(phantom(density, view, side, seed=n)).save(folder / name)
        rows.append({"image": name, "case_id": f"E{n // 2}", "patient_id": f"P{n // 2}",
                     "laterality": side, "view": view, "report": _report(density),
                     "density": density})  # fmt: skip
    rows.append({"image": f"{NAME}_missing.dcm", "case_id": "E9", "patient_id": "P9",
                 "laterality": "", "view": "", "report": "", "density": "A"})  # fmt: skip
    burned = folder / f"{NAME}_burned.dcm"
    write_dicom(burned, phantom("C", "CC", "R", seed=99)[::4, ::4] / 255.0)
    _plant(burned, study_uid=generate_uid(), series_uid=generate_uid(), BurnedInAnnotation="YES")
    rows.append({"image": burned.name, "case_id": "E7", "patient_id": "P7", "laterality": "",
                 "view": "", "report": "", "density": "C"})  # fmt: skip
    (folder / f"{NAME}_broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + NAME.encode() * 8)
    rows.append({"image": f"{NAME}_broken.dcm", "case_id": "E8", "patient_id": "P8",
                 "laterality": "", "view": "", "report": "", "density": "A"})  # fmt: skip
    write_manifest(folder / "manifest.csv", rows)
    return folder


def _clean(blob: str | bytes, where: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} in {where}"


def test_no_planted_phi_anywhere(
    archive: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mammosearch.pipeline import assess_image, build_index, open_index, search_cases

    caplog.set_level(logging.DEBUG)
    settings = load_settings(None, cache_dir=tmp_path / "cache")
    index = tmp_path / "index"
    report = build_index(archive / "manifest.csv", index, settings=settings,
                         embedder="radiomics.v1")  # fmt: skip
    assert report.indexed == 8 and report.skipped == 3 and report.with_report == 8
    assert report.reasons == {"E021": 2, "E060": 1}  # missing, broken; burned-in: quarantined
    for path in index.rglob("*"):  # SQLite, FAISS, manifest, build report, thumbnails
        if path.is_file():
            _clean(path.read_bytes(), path.name)
        _clean(str(path), "a file name")
    with CaseIndex(index) as opened_index:
        rows = opened_index.store.get(list(range(1, 12))).values()
        stored = [r.report_text for r in rows if r.report_text]
    assert len(stored) == 8 and all("[ID]" in t for t in stored)
    _no_glued_part(stored, "cases.sqlite")
    dicom = next(archive.glob("*.dcm"))
    found = search_cases(index, image=dicom, text=_report("C"), k=8)
    _clean(json.dumps([n.to_dict() for n in found], default=str), "search JSON")
    opened, embedder = open_index(index)
    try:
        assessed = assess_image(opened, embedder, image=dicom, report=_report("C")).to_dict()
    finally:
        opened.close()
    _clean(json.dumps(assessed, default=str), "assess JSON")
    runner = CliRunner()
    for args in (
        ["-v", "search", str(index), "--image", str(dicom), "--text", _report("B"), "--json"],
        ["-v", "assess", str(index), "--image", str(dicom), "--report", _report("B"), "--json"],
        ["-v", "assess", str(index), "--manifest", str(archive / "manifest.csv")],
        ["-v", "index", "verify", str(index)],
        ["-v", "search", str(index), "--image", str(archive / f"{NAME}_broken.dcm")],
    ):
        result = runner.invoke(app, args, env={"MAMMOSEARCH_CACHE_DIR": str(tmp_path / "cache")})
        assert result.exit_code in (0, 1), result.output
        _clean(result.output, " ".join(args[:2]))
    out = tmp_path / "normalized.jsonl"
    reports = tmp_path / "reports.jsonl"
    reports.write_text("\n".join(json.dumps({"id": f"r{n}", "text": _report(d)})
                                 for n, d in enumerate("ABCD")) + "\n", encoding="utf-8")  # fmt: skip
    for workers in ("1", "2"):  # in this process, and in worker processes
        result = runner.invoke(app, ["normalize", str(reports), "-o", str(out), "--scrub",
                                     "--workers", workers])  # fmt: skip
        assert result.exit_code == 0
        _clean(out.read_text(encoding="utf-8"), "normalize --scrub output")
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["density"]["category"] for r in records] == ["A", "B", "C", "D"]
        _no_glued_part([r["text"] for r in records], "normalize --scrub output")
    _clean("\n".join(r.getMessage() for r in caplog.records), "logs")
    captured = capsys.readouterr()
    _clean(captured.out + captured.err, "stdout/stderr")

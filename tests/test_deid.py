"""DICOM de-identification: planted PHI everywhere, consistency across a study and a patient,
quarantine, the mammography attributes kept, the command line, and the CBIS-DDSM files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.deid import Deidentifier, deidentify_tree
from mammosearch.imaging import read_image
from tests.conftest import PHI_CANARY, shared_path
from tests.test_imaging import phantom, write_dicom

KEY = "0123456789abcdef-test-key"
NAME = "QUIXOTEVANS"  # a part of the canary that must vanish from every output byte
MRN = "99-CANARY-4417"


def _plant(path: Path, **changes: object) -> None:
    """Plant fake PHI in every kind of place a mammogram carries it."""
    ds = pydicom.dcmread(path)
    ds.PatientName = PHI_CANARY
    ds.PatientID = str(changes.pop("patient", MRN))
    ds.PatientBirthDate = "19600102"
    ds.PatientSex, ds.PatientAge = "F", "058Y"
    ds.StudyDate = str(changes.pop("study_date", "20230415"))
    ds.StudyInstanceUID = str(changes.pop("study_uid"))
    ds.SeriesInstanceUID = str(changes.pop("series_uid"))
    ds.AccessionNumber = f"ACC-{NAME}"
    ds.InstitutionName = f"{NAME} Memorial Hospital"
    ds.ReferringPhysicianName = f"Dr^{NAME}"
    ds.OperatorsName = f"Tech^{NAME}"
    ds.StudyDescription = f"MAMMO SCREEN {NAME} {MRN}"
    ds.SeriesDescription = f"L CC {NAME}"
    ds.ImageComments = f"called {NAME} at 555-0100"
    ds.DeviceSerialNumber = f"SN-{NAME}"
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291010, "LO", f"{NAME} MRN {MRN}")
    item = Dataset()
    item.ScheduledPerformingPhysicianName = f"Dr^{NAME}^Nested"
    item.RequestedProcedureID = MRN
    ds.RequestAttributesSequence = DicomSequence([item])
    ds.add_new(0x60003000, "OW", b"\0" * 32)  # an overlay plane
    ds.BurnedInAnnotation = "NO"
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Patient A: a 4-view exam and a prior; patient B: one view; and files to quarantine."""
    source = tmp_path / "archive"
    source.mkdir()
    study1, study2, study3 = generate_uid(), generate_uid(), generate_uid()
    views = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
    for side, view in views:
        path = source / f"{PHI_CANARY}_{side}{view}.dcm"
        write_dicom(path, phantom(64, 48), laterality=side, view=view)
        _plant(path, study_uid=study1, series_uid=generate_uid())
    prior = source / "prior" / f"{NAME}.dcm"
    prior.parent.mkdir()
    write_dicom(prior, phantom(64, 48), laterality="L", view="CC")
    _plant(prior, study_uid=study2, series_uid=generate_uid(), study_date="20220409")
    other = source / "other.dcm"
    write_dicom(other, phantom(64, 48), laterality="R", view="MLO")
    _plant(other, study_uid=study3, series_uid=generate_uid(), patient="OTHER-PATIENT-77")
    burned = source / "burned.dcm"
    write_dicom(burned, phantom(64, 48))
    _plant(burned, study_uid=study1, series_uid=generate_uid(), BurnedInAnnotation="YES")
    screen = source / "screen.dcm"
    write_dicom(screen, phantom(64, 48))
    _plant(screen, study_uid=study1, series_uid=generate_uid(), ConversionType="WSD")
    ct = source / "ct.dcm"
    write_dicom(ct, phantom(64, 48), modality="CT")
    _plant(ct, study_uid=study1, series_uid=generate_uid())
    (source / f"{NAME}.txt").write_text(f"notes about {PHI_CANARY}", encoding="utf-8")
    return source


def _outputs(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))]


def test_phi_is_gone_and_the_mammogram_is_kept(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = deidentify_tree(archive, out, key=KEY)
    assert report.total == 10 and report.written == 6 and report.studies == 3
    assert report.quarantined == {"burned-in annotation": 1, "secondary capture": 1,
                                  "not a mammogram": 1}  # fmt: skip
    assert report.failed == {"not DICOM": 1}
    # not one byte of planted PHI in any output file or name, nor in the report
    for path in out.rglob("*"):
        assert NAME not in str(path) and MRN not in str(path)
        if path.is_file():
            data = path.read_bytes()
            for secret in (NAME.encode(), MRN.encode(), b"19600102", b"555-0100"):
                assert secret not in data, (path.name, secret)
    datasets = _outputs(out)
    for ds in datasets:
        assert ds.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == [
            "113100", "113107", "113108",
        ]  # fmt: skip
        assert not any(element.tag.is_private for element in ds)
        assert not any(0x6000 <= element.tag.group <= 0x60FF for element in ds)
        assert "StudyDescription" not in ds and "DeviceSerialNumber" not in ds
        assert ds.PatientSex == "F" and ds.PatientAge == "058Y"  # option 113108
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # laterality, view and pixels survive: the image reads as before
    originals = {(d.ImageLaterality, d.ViewPosition) for d in datasets}
    assert ("L", "MLO") in originals and ("R", "CC") in originals
    first = sorted(out.rglob("*.dcm"))[0]
    image = read_image(first)
    assert image.laterality is not None and image.view is not None
    assert image.pixels.shape == (64, 48) and np.isfinite(image.pixels).all()


def test_pseudonyms_are_consistent_and_dates_shift_by_patient(
    archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    deidentify_tree(archive, out, key=KEY)
    datasets = _outputs(out)
    patients = {ds.PatientID for ds in datasets}
    assert len(patients) == 2 and MRN not in patients
    by_patient: dict[str, list[pydicom.Dataset]] = {}
    for ds in datasets:
        by_patient.setdefault(ds.PatientID, []).append(ds)
    patient_a = max(by_patient.values(), key=len)
    assert len(patient_a) == 5 and len({str(d.PatientName) for d in patient_a}) == 1
    studies = {d.StudyInstanceUID for d in patient_a}
    assert len(studies) == 2  # the exam's four views share one new study UID, the prior another
    shifted = sorted({date.fromisoformat(f"{d.StudyDate[:4]}-{d.StudyDate[4:6]}-{d.StudyDate[6:]}")
                      for d in patient_a})  # fmt: skip
    assert (shifted[1] - shifted[0]).days == (date(2023, 4, 15) - date(2022, 4, 9)).days
    days = (date(2023, 4, 15) - shifted[1]).days
    assert days == Deidentifier(KEY).shift_days(MRN) and 62 <= days <= 730
    assert patient_a[0].PatientBirthDate != "19600102"
    # the same key gives the same pseudonyms; another key does not
    again = tmp_path / "again"
    deidentify_tree(archive, again, key=KEY)
    assert sorted(p.name for p in again.rglob("*.dcm")) == sorted(
        p.name for p in out.rglob("*.dcm")
    )
    other = tmp_path / "other-key"
    deidentify_tree(archive, other, key="another-key-of-some-length")
    assert not {p.name for p in other.rglob("*.dcm")} & {p.name for p in out.rglob("*.dcm")}


def test_output_inside_input_is_refused(archive: Path) -> None:
    from mammosearch.errors import InputError

    with pytest.raises(InputError, match="inside the input"):
        deidentify_tree(archive, archive / "out", key=KEY)
    with pytest.raises(InputError, match="not a folder"):
        deidentify_tree(archive / "nothing", archive.parent / "out", key=KEY)


def test_deid_command(archive: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    key_file = tmp_path / "deid.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["deid", str(archive), str(out), "--key-file", str(key_file),
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "10 files: 6 de-identified in 3 studies, 3 quarantined" in result.output
    assert NAME not in result.output and MRN not in result.output
    summary = json.loads((out / "deid_report.json").read_text(encoding="utf-8"))
    assert summary["written"] == 6 and summary["failed"] == {"not DICOM": 1}
    short = tmp_path / "short.key"
    short.write_text("tiny", encoding="utf-8")
    refused = runner.invoke(
        app, ["deid", str(archive), str(tmp_path / "o2"), "--key-file", str(short)]
    )
    assert refused.exit_code == 1 and "fewer than 16 characters" in refused.output
    random_key = runner.invoke(app, ["deid", str(archive), str(tmp_path / "o3"), "--no-progress"],
                               env={"MAMMOSEARCH_DEID_KEY": ""})  # fmt: skip
    assert random_key.exit_code == 0 and "random one is used" in random_key.output


@pytest.mark.shared_data
def test_cbis_ddsm_screen_captures(tmp_path: Path) -> None:
    """CBIS-DDSM stores digitised film as secondary captures (WSD): quarantined unless allowed."""
    folder = shared_path("cbis-ddsm", "dicom")
    assert deidentify_tree(folder, tmp_path / "strict", key=KEY).quarantined == {
        "secondary capture": 8
    }
    report = deidentify_tree(folder, tmp_path / "out", key=KEY, allow_secondary_capture=True)
    assert report.written == 8
    before = sorted((read_image(p).laterality, read_image(p).view) for p in folder.rglob("*.dcm"))
    after = sorted((read_image(p).laterality, read_image(p).view)
                   for p in (tmp_path / "out").rglob("*.dcm"))  # fmt: skip
    assert before == after

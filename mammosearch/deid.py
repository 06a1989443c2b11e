"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile,
configured for mammography, over dicognito.

dicognito replaces every UID, person name, ID and date consistently (a keyed hash of the value:
the same original always gives the same replacement under one key). On top of it this module
removes what dicognito keeps and the profile removes (private tags, overlays and curves, free-text
descriptions and comments, device and workflow identifiers, addresses: ``REMOVED``), shifts
dates by a whole number of days per patient (keyed by the patient, 62-730 days back, so the
intervals between one patient's exams survive), and records Patient Identity Removed = YES, the
method and its codes (113100 Basic Profile, 113107 Retain Longitudinal Temporal Information
Modified Dates, 113108 Retain Patient Characteristics: sex and age are kept). Laterality, view,
pixel data and everything else a mammogram needs are kept.

Quarantined, never written: Burned In Annotation = YES, secondary captures of screens
(Conversion Type WSD or SYN, unless the caller allows them: some archives hold digitised film
that way), images of another modality. Nothing here logs or raises with a value from the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError

__all__ = ["DeidReport", "Deidentifier", "REMOVED", "deidentify_tree"]

logger = logging.getLogger(__name__)

# Annex E attributes whose action is removal and which dicognito keeps or fills with dummies:
# a mammography-oriented subset of Table E.1-1 (PatientAge and PatientSex stay: option 113108).
REMOVED = (
    "StudyDescription", "SeriesDescription", "ImageComments", "PatientComments",
    "AdditionalPatientHistory", "StudyComments", "AcquisitionComments", "DerivationDescription",
    "ProtocolName", "RequestedProcedureDescription", "PerformedProcedureStepDescription",
    "ScheduledProcedureStepDescription", "ReasonForStudy", "ReasonForTheRequestedProcedure",
    "ImagingServiceRequestComments", "RequestedProcedureComments",
    "CommentsOnThePerformedProcedureStep", "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence", "FrameComments", "ImagePresentationComments",
    "IdentifyingComments", "TextComments", "TextString", "AcquisitionDeviceProcessingDescription",
    "AcquisitionProtocolDescription", "PatientWeight", "PatientSize", "EthnicGroup",
    "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate",
    "PatientBirthTime", "PatientBirthName", "PatientMotherBirthName", "OtherPatientNames",
    "OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID", "PatientAddress",
    "CountryOfResidence", "RegionOfResidence", "PatientState", "ResponsiblePerson",
    "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "PhysiciansOfRecord", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "RequestingPhysician", "RequestingService", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
    "PerformingPhysicianIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "OperatorIdentificationSequence", "PersonAddress", "PersonTelephoneNumbers", "OrderEnteredBy",
    "OrderEntererLocation", "OrderCallbackPhoneNumber", "DeviceSerialNumber", "DetectorID",
    "PlateID", "CassetteID", "GantryID", "GeneratorID", "PerformedStationName",
    "PerformedLocation", "PerformedStationAETitle", "ScheduledStationName",
    "ScheduledStationAETitle", "ScheduledProcedureStepLocation", "RequestedProcedureLocation",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedPatientAliasSequence",
    "ContentSequence", "AcquisitionContextSequence", "IconImageSequence",
    "DigitalSignaturesSequence", "OriginalAttributesSequence", "ModifiedAttributesSequence",
    "DataSetTrailingPadding", "TimezoneOffsetFromUTC", "AdmissionID", "IssuerOfAdmissionID",
    "ServiceEpisodeID", "ActualHumanPerformersSequence", "HumanPerformerName",
    "HumanPerformerOrganization",
)  # fmt: skip
_SHIFT_DAYS = (62, 730)


@dataclass(slots=True)
class DeidReport:
    """What a de-identification run did (no value from any file)."""

    total: int = 0
    written: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    studies: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "written": self.written,
            "quarantined": dict(self.quarantined),
            "failed": dict(self.failed),
            "studies": self.studies,
        }


class Deidentifier:
    """Applies the profile to datasets, consistently under one key.

    Args:
        key: The secret that makes replacements consistent (same key, same pseudonyms: keep it
            for every batch of one project, never in code or logs). ``None`` draws a random one:
            patients then do not match across runs.
        allow_secondary_capture: Pass secondary captures with Conversion Type WSD/SYN (digitised
            film archived that way) instead of quarantining them.
    """

    def __init__(self, key: str | None = None, *, allow_secondary_capture: bool = False) -> None:
        from dicognito.anonymizer import Anonymizer
        from dicognito.datetimeanonymizer import DateTimeAnonymizer
        from dicognito.unwantedelements import UnwantedElementsStripper

        self._key = (key or secrets.token_hex(32)).encode()
        self.allow_secondary_capture = allow_secondary_capture
        self._anonymizer = Anonymizer(seed=self._key.decode())
        self._dates = DateTimeAnonymizer(0)
        self._anonymizer.add_element_handler(self._dates)  # before dicognito's own date handler
        self._anonymizer.add_element_handler(UnwantedElementsStripper(*REMOVED))

    def shift_days(self, patient_id: str) -> int:
        """Days this patient's dates move back (keyed, 62-730)."""
        digest = hmac.new(self._key, patient_id.encode(), hashlib.sha256).digest()
        low, high = _SHIFT_DAYS
        return low + int.from_bytes(digest[:8], "big") % (high - low + 1)

    def quarantine_reason(self, ds: Any) -> str | None:
        """Why a dataset must not be released, or ``None``."""
        from mammosearch.imaging import is_screen_capture, quarantine_reason

        def value(keyword: str) -> str:
            return str(ds.get(keyword, "") or "")

        return quarantine_reason(
            burned_in_annotation=value("BurnedInAnnotation"),
            modality=value("Modality"),
            screen_capture=is_screen_capture(value("SOPClassUID"), value("ConversionType")),
            allow_secondary_capture=self.allow_secondary_capture,
        )

    def apply(self, ds: Any, name_hint: str | None = None) -> Any:
        """De-identify ``ds`` in place (call :meth:`quarantine_reason` first). On an exception
        the dataset is half-done: never save it.

        Laterality and view that only the descriptions, IDs or file name (``name_hint``) carry
        are written to ImageLaterality and ViewPosition first, since those go.
        """
        import dicognito
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        from mammosearch.imaging import dicom_orientation

        laterality, view, _, _ = dicom_orientation(ds, name_hint)
        if laterality is not None and not ds.get("ImageLaterality"):
            ds.ImageLaterality = laterality.value
        if view is not None and not ds.get("ViewPosition"):
            ds.ViewPosition = view.value
        self._dates.offset = timedelta(days=-self.shift_days(str(ds.get("PatientID", "") or "")))
        ds.remove_private_tags()
        for tag in list(ds.keys()):  # overlays (60xx) and curves (50xx)
            if tag.group % 2 == 0 and (
                0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF
            ):
                del ds[tag]
        self._anonymizer.anonymize(ds)
        # dicognito writes a dummy InstitutionAddress when it replaces the institution name
        ds.walk(lambda d, element: element.keyword in REMOVED and d.__delitem__(element.tag))
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethod = [
            f"dicognito {dicognito.__version__}",
            "mammosearch: PS3.15 E Basic Profile, per-patient date shift",
        ]
        codes = []
        for value, meaning in (
            ("113100", "Basic Application Confidentiality Profile"),
            ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
            ("113108", "Retain Patient Characteristics Option"),
        ):
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(codes)
        if "file_meta" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return ds


def _files(folder: Path) -> Iterator[Path]:
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            yield Path(root) / name


def deidentify_tree(
    source: Path,
    output: Path,
    *,
    key: str | None = None,
    allow_secondary_capture: bool = False,
    progress: bool = False,
) -> DeidReport:
    """De-identify every DICOM file under ``source`` into ``output``.

    Written as ``output/<new Study UID>/<new SOP Instance UID>.dcm`` (no original name or path
    survives); quarantined and failed files are counted by reason, never written; the counts go
    to ``output/deid_report.json``. A file that is not DICOM is counted as failed.

    Raises:
        InputError: ``source`` is not a folder, or ``output`` is inside it.
    """
    import pydicom
    from tqdm import tqdm

    if not source.is_dir():
        raise InputError(f"the input to de-identify, {str(source)!r}, is not a folder",
                         fix="give a folder of DICOMs")  # fmt: skip
    if output.resolve().is_relative_to(source.resolve()):
        raise InputError("the output folder is inside the input", fix="write it somewhere else")
    deid = Deidentifier(key, allow_secondary_capture=allow_secondary_capture)
    report = DeidReport()
    studies: set[str] = set()
    pydicom_logger = logging.getLogger("pydicom")
    level = pydicom_logger.level
    pydicom_logger.setLevel(logging.CRITICAL)  # its warnings quote values, which may be PHI
    try:
        for path in tqdm(list(_files(source)), desc="deid", unit="file", disable=not progress):
            report.total += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = pydicom.dcmread(path)
                    reason = deid.quarantine_reason(ds)
                    if reason is not None:
                        report.quarantined[reason] += 1
                        continue
                    deid.apply(ds, path.name)
                    folder = output / str(ds.StudyInstanceUID)
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / f"{ds.SOPInstanceUID}.dcm"
                    partial = target.with_suffix(".partial")
                    try:
                        ds.save_as(partial, enforce_file_format=True)
                        partial.replace(target)
                    finally:
                        partial.unlink(missing_ok=True)
                except pydicom.errors.InvalidDicomError:
                    report.failed["not DICOM"] += 1
                    continue
                except Exception as e:  # noqa: BLE001 - counted by type; the file is not written
                    report.failed[type(e).__name__] += 1
                    continue
            studies.add(folder.name)
            report.written += 1
    finally:
        pydicom_logger.setLevel(level)
    report.studies = len(studies)
    output.mkdir(parents=True, exist_ok=True)
    (output / "deid_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report

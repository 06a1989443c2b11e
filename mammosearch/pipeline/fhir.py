"""FHIR R4 export of normalized reports: one Bundle per report, validated by ``fhir.resources``.

Each normalized report (its JSON form, as ``normalize`` writes it) becomes a ``collection``
Bundle of a ``DiagnosticReport`` (the mammography report, its standardized text as the
conclusion, the BI-RADS category as the conclusion code), an ``Observation`` for the breast
composition (and one per side stated), one for the BI-RADS assessment category (and one per
side), and one per present finding (neither negated nor historical) with its side as the body
site, its descriptors, location and size as components and its evidence text in a note.

Codes come from LOINC (the report's code, :data:`LOINC_VERSION`) and SNOMED CT
(:data:`SNOMED_VERSION`) where this module lists one, each found in a published source that
docs/CLI.md names, from UCUM for sizes, from HL7's own code systems for categories, and from
the local system :data:`LOCAL_SYSTEM` where no standard code was found: never made up. A
concept with a standard code keeps its local code beside it, so a reader can rely on either. The
patient (and encounter) are references the caller gives, never taken from report text; the
report's text travels (as ``presentedForm``) only when it was scrubbed (``normalize --scrub``).

Resources are built with the R4 line of ``fhir.resources`` (its ``R4B`` models; R4B is FHIR
4.3, whose DiagnosticReport, Observation and Bundle are those of R4 4.0.1 for the elements
used here), which validates each one. ``fhir.resources`` is the ``fhir`` extra.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError
from mammosearch.pipeline.outputs import check_output_file

__all__ = [
    "LOCAL_SYSTEM",
    "LOINC",
    "LOINC_VERSION",
    "SNOMED",
    "SNOMED_VERSION",
    "export_fhir",
    "report_bundle",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mammosearch[fhir]'"
SNOMED = "http://snomed.info/sct"
# the edition the SNOMED CT codes below were checked against (published value sets that expand
# them: HL7 Lithuania's breast IG, ICHOM breast cancer IG)
SNOMED_VERSION = "SNOMED CT International Edition 2025-02-01"
LOINC = "http://loinc.org"
# the LOINC release the code below was checked against: the expansion of HL7's Breast Imaging
# Reporting IG (0.3.0) value set BreastImagingReportTypesVS, the codes of
# BreastImagingReport.code
LOINC_VERSION = "LOINC 2.73"
# LOINC: the breast imaging report, as HL7's breast imaging IG codes it (whatever the exam's
# purpose: the study codes 24606-6 MG Breast Screening and 24605-8 MG Breast Diagnostic are
# narrower, and a normalized report does not say which exam it was)
_REPORT_CODE = (LOINC, "10193-1", "Physical findings of Breasts Narrative")
UCUM = "http://unitsofmeasure.org"
LOCAL_SYSTEM = "https://mammosearch.example/codes"
REPORT_ID_SYSTEM = "https://mammosearch.example/report-id"
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"

# SNOMED CT: breast composition (finding) per ACR category
_DENSITY = {
    "A": ("129716005", "Almost entirely fat breast composition"),
    "B": ("129717001", "Scattered fibroglandular densities"),
    "C": ("129718006", "Heterogeneously dense breast composition"),
    "D": ("129719003", "Extremely dense breast composition"),
}
_DENSITY_CODE = (SNOMED, "733851004", "Breast consistency")
# SNOMED CT: mammography assessment (finding) per BI-RADS category; 4A-4C and 6 are local
_BIRADS = {
    "0": ("397138000", "Mammography assessment (Category 0) - Need additional imaging evaluation"),
    "1": ("397140005", "Mammography assessment (Category 1) - Negative"),
    "2": ("397141009", "Mammography assessment (Category 2) - Benign finding"),
    "3": ("397143007", "Mammography assessment (Category 3) - Probably benign finding"),
    "4": ("397144001", "Mammography assessment (Category 4) - Suspicious abnormality"),
    "5": ("397145000", "Mammography assessment (Category 5) - Highly suggestive of malignancy"),
}
# SNOMED CT: mammographic findings (the findings value set of HL7 Lithuania's breast IG, expanded
# on the edition above); the other finding types are local
_FINDINGS = {
    "mass": ("129788004", "Mammographic breast mass"),
    "calcification": ("697944008", "Mammographic calcification of breast"),
    "architectural_distortion": ("129792006", "Architectural distortion of breast"),
}
_FOCAL_ASYMMETRY = ("129789007", "Focal asymmetric breast tissue finding")
# SNOMED CT body structures
_SIDES = {
    "left": ("80248007", "Left breast structure"),
    "right": ("73056007", "Right breast structure"),
    "bilateral": ("63762007", "Both breasts"),
}
_DESCRIPTORS = ("shape", "margin", "mass_density", "calc_morphology", "calc_distribution")


def _models() -> tuple[Any, Any, Any]:
    """``(Bundle, DiagnosticReport, Observation)`` of fhir.resources' R4 line.

    Raises:
        InputError: fhir.resources is not installed.
    """
    try:
        from fhir.resources.R4B.bundle import Bundle
        from fhir.resources.R4B.diagnosticreport import DiagnosticReport
        from fhir.resources.R4B.observation import Observation
    except ImportError as e:
        raise InputError("FHIR export needs fhir.resources", fix=INSTALL_HINT) from e
    return Bundle, DiagnosticReport, Observation


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _local(code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(LOCAL_SYSTEM, code, display)], "text": display}


def _words(value: str) -> str:
    return value.replace("_", " ")


def _density_value(category: str) -> dict[str, Any]:
    code, display = _DENSITY[category]
    return {"coding": [_coding(SNOMED, code, display),
                       _coding(LOCAL_SYSTEM, f"density-{category}", f"ACR {category}")],
            "text": f"ACR {category}"}  # fmt: skip


def _birads_value(category: str) -> dict[str, Any]:
    codings = [_coding(LOCAL_SYSTEM, f"birads-{category}", f"BI-RADS {category}")]
    if category in _BIRADS:
        codings.insert(0, _coding(SNOMED, *_BIRADS[category]))
    return {"coding": codings, "text": f"BI-RADS {category}"}


def _finding_code(finding: Mapping[str, Any]) -> dict[str, Any]:
    kind = finding["type"]
    concept = _local(f"finding-{kind}", _words(kind))
    standard = _FINDINGS.get(kind)
    if kind == "asymmetry" and finding["descriptors"].get("asymmetry") == "focal":
        standard = _FOCAL_ASYMMETRY  # a focal asymmetry only: the others have no code here
    if standard is not None:
        concept["coding"].insert(0, _coding(SNOMED, *standard))
    return concept


def _body_site(side: str | None) -> dict[str, Any] | None:
    if side is None:
        return None
    code, display = _SIDES[side]
    return {"coding": [_coding(SNOMED, code, display)], "text": f"{side} breast"}


class _Builder:
    """The resources of one report's Bundle, each validated as it is made."""

    def __init__(self, subject: str, encounter: str | None) -> None:
        self.bundle, self.report, self.observation = _models()
        self.subject, self.encounter = {"reference": subject}, encounter
        self.entries: list[dict[str, Any]] = []

    def add(self, model: Any, resource: dict[str, Any]) -> str:
        """Validate ``resource`` with its model and add it; returns its ``urn:uuid`` URL."""
        url = f"urn:uuid:{uuid.uuid4()}"
        self.entries.append({"fullUrl": url, "resource": model.model_validate(resource)})
        return url

    def observation_of(
        self, code: dict[str, Any], value: dict[str, Any] | None, *, side: str | None = None,
        note: str | None = None, components: list[dict[str, Any]] | None = None,
    ) -> str:  # fmt: skip
        resource: dict[str, Any] = {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [_coding(_OBSERVATION_CATEGORY, "imaging", "Imaging")]}],
            "code": code, "subject": self.subject,
        }  # fmt: skip
        if self.encounter:
            resource["encounter"] = {"reference": self.encounter}
        if value is not None:
            resource["valueCodeableConcept"] = value
        site = _body_site(side)
        if site is not None:
            resource["bodySite"] = site
        if note:
            resource["note"] = [{"text": note}]
        if components:
            resource["component"] = components
        return self.add(self.observation, resource)


def _finding_components(finding: Mapping[str, Any]) -> list[dict[str, Any]]:
    descriptors, location = finding["descriptors"], finding["location"]
    out: list[dict[str, Any]] = []
    for name in _DESCRIPTORS:
        for value in descriptors[name]:
            concept = _local(f"{name}-{value}", _words(value))
            out.append({"code": _local(name, _words(name)), "valueCodeableConcept": concept})
    if descriptors.get("asymmetry"):
        kind = descriptors["asymmetry"]
        out.append({"code": _local("asymmetry", "asymmetry"),
                    "valueCodeableConcept": _local(f"asymmetry-{kind}", _words(kind))})  # fmt: skip
    if descriptors.get("size_mm") is not None:
        out.append({"code": _local("size", "size"),
                    "valueQuantity": {"value": descriptors["size_mm"], "unit": "mm",
                                      "system": UCUM, "code": "mm"}})  # fmt: skip
    for name in ("quadrant", "depth"):
        if location.get(name):
            out.append({"code": _local(name, name),
                        "valueCodeableConcept": _local(f"{name}-{location[name]}",
                                                       _words(location[name]))})  # fmt: skip
    if location.get("clock"):
        out.append({"code": _local("clock", "clock face position"),
                    "valueString": str(location["clock"])})  # fmt: skip
    if finding.get("uncertain"):
        out.append({"code": _local("uncertain", "stated with uncertainty"), "valueBoolean": True})
    return out


def report_bundle(
    record: Mapping[str, Any], *, subject: str, encounter: str | None = None
) -> dict[str, Any]:
    """One normalized report (its JSON form) → a validated FHIR R4 ``collection`` Bundle.

    Args:
        record: :meth:`~mammosearch.records.NormalizedReport.to_dict`'s form (with ``text``
            when it was scrubbed).
        subject: The patient reference, e.g. ``Patient/123`` (a placeholder the caller gives).
        encounter: An encounter reference, when the caller has one.

    Returns:
        The Bundle's JSON form; its first entry is the DiagnosticReport.

    Raises:
        InputError: fhir.resources is missing, or ``subject`` is not a reference.
    """
    if not re.fullmatch(r"[A-Za-z]+/[A-Za-z0-9\-.]{1,64}", subject):
        # the value is not echoed: a mistaken one may be a name
        raise InputError("--subject is not a FHIR reference (Type/id)",
                         fix="give a reference such as Patient/123")  # fmt: skip
    builder = _Builder(subject, encounter)
    results: list[str] = []
    density, birads = record.get("density"), record.get("birads")
    density_code = {"coding": [_coding(*_DENSITY_CODE)], "text": "Breast composition"}
    if density:
        results.append(builder.observation_of(
            density_code, _density_value(density["category"]), side=density.get("laterality"),
            note=density["evidence"]["text"]))  # fmt: skip
    for side, category in (record.get("density_by_side") or {}).items():
        results.append(builder.observation_of(density_code, _density_value(category), side=side))
    birads_code = _local("birads-assessment", "BI-RADS assessment category")
    if birads:
        results.append(builder.observation_of(birads_code, _birads_value(birads["category"]),
                                              note=birads["evidence"]["text"]))  # fmt: skip
    for side, category in (record.get("birads_by_side") or {}).items():
        results.append(builder.observation_of(birads_code, _birads_value(category), side=side))
    for finding in record.get("findings") or ():
        if finding["negated"] or finding["historical"]:
            continue
        results.append(builder.observation_of(
            _finding_code(finding), None, side=finding.get("laterality"),
            note=finding["evidence"]["text"], components=_finding_components(finding)))  # fmt: skip
    diagnostic: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": REPORT_ID_SYSTEM, "value": str(record["id"])}],
        "status": "unknown" if record.get("error") else "final",
        "category": [{"coding": [_coding(_DIAGNOSTIC_SERVICE, "RAD", "Radiology")]}],
        "code": {
            "coding": [
                _coding(*_REPORT_CODE),
                _coding(LOCAL_SYSTEM, "mammography-report", "Mammography report"),
            ],
            "text": "Mammography report",
        },  # fmt: skip
        "subject": builder.subject,
        "result": [{"reference": url} for url in results],
    }
    if encounter:
        diagnostic["encounter"] = {"reference": encounter}
    if record.get("error"):
        diagnostic["conclusion"] = f"not normalized: {record['error']}"
    elif record.get("standardized_text"):
        diagnostic["conclusion"] = record["standardized_text"]
    if birads:
        diagnostic["conclusionCode"] = [_birads_value(birads["category"])]
    if record.get("text") is not None:  # only a scrubbed report carries its text
        data = base64.b64encode(str(record["text"]).encode("utf-8")).decode("ascii")
        diagnostic["presentedForm"] = [{"contentType": "text/plain; charset=utf-8",
                                        "data": data, "title": "scrubbed report"}]  # fmt: skip
    if not diagnostic["result"]:
        del diagnostic["result"]
    builder.entries.insert(0, {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
                               "resource": builder.report.model_validate(diagnostic)})  # fmt: skip
    bundle = builder.bundle.model_validate({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"].model_dump(mode="json")}
                  for e in builder.entries],
    })  # fmt: skip
    out: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return out


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise InputError(f"input {str(path)!r} not found",
                         fix="pass the JSON Lines that normalize wrote")  # fmt: skip
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(
                    f"line {number} of {str(path)!r} is not JSON",
                    fix="pass the JSON Lines that normalize wrote",
                ) from None
            if not isinstance(record, dict) or "id" not in record:
                raise InputError(f"line {number} of {str(path)!r} is not a normalized report",
                                 fix="pass the JSON Lines that normalize wrote")  # fmt: skip
            yield record


def export_fhir(
    input_path: Path, output_path: Path, *, subject: str, encounter: str | None = None
) -> int:
    """Write one FHIR R4 Bundle per normalized report of ``input_path`` (NDJSON), atomically.

    Args:
        input_path: The JSON Lines that ``normalize`` wrote.
        output_path: The ``.ndjson`` to write (one Bundle per line, in input order).
        subject: The patient reference of every Bundle (``Patient/ID``).
        encounter: An encounter reference, when there is one.

    Returns:
        The Bundles written.

    Raises:
        InputError: The input is missing or not normalized reports, the output cannot be
            written, ``subject`` is not a reference, or fhir.resources is missing.
    """
    check_output_file(output_path)
    _models()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{output_path.name}.", suffix=".tmp",
                                   dir=output_path.parent)  # fmt: skip
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for record in _iter_records(input_path):
                bundle = report_bundle(record, subject=subject, encounter=encounter)
                out.write(json.dumps(bundle, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, output_path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(partial)
    logger.debug("fhir: %d bundles", count)
    return count

"""FHIR R4 export: every normalized report becomes a Bundle whose resources validate.

Runs on the sample reports and, where ../shared/data is present, the 19 examples and the real
reports; each resource of each Bundle is validated again with fhir.resources' R4 models, and
what the Bundle says is checked against the normalized report it came from.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.errors import InputError
from mammosearch.pipeline import export_fhir, normalize_reports, report_bundle, sample_reports_dir
from mammosearch.pipeline.fhir import LOCAL_SYSTEM, LOINC, SNOMED
from tests.conftest import PHI_CANARY, SHARED_DATA

pytest.importorskip("fhir.resources")
from fhir.resources.R4B.bundle import Bundle  # noqa: E402
from fhir.resources.R4B.diagnosticreport import DiagnosticReport  # noqa: E402
from fhir.resources.R4B.observation import Observation  # noqa: E402

CORPORA = {
    "samples": None,
    "examples": ("reports-examples", "texts"),
    "dmid-en": ("reports-real", "dmid-en", "texts"),
    "paraguay-es": ("reports-real", "paraguay-es", "texts"),
}
MODELS = {"DiagnosticReport": DiagnosticReport, "Observation": Observation}
# (finding type, asymmetry descriptor) → its SNOMED CT code (docs/CLI.md); the rest are local
FINDING_SNOMED = {
    ("mass", None): {"129788004"},
    ("calcification", None): {"697944008"},
    ("architectural_distortion", None): {"129792006"},
    ("asymmetry", "focal"): {"129789007"},
}


@pytest.fixture(scope="module", params=list(CORPORA))
def normalized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts = CORPORA[request.param]
    source = sample_reports_dir() if parts is None else SHARED_DATA.joinpath(*parts)
    if not source.is_dir():
        pytest.skip(f"../shared/data/{'/'.join(parts or ())} is not available on this machine")
    out = tmp_path_factory.mktemp(request.param) / "normalized.jsonl"
    normalize_reports(source, out, settings=load_settings(), workers=1)
    return out


def _codes(concept: dict[str, Any], system: str) -> set[str]:
    return {c["code"] for c in concept.get("coding", ()) if c["system"] == system}


def test_every_report_is_a_valid_bundle(normalized: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in normalized.read_text(encoding="utf-8").splitlines()]
    out = tmp_path / "bundles.ndjson"
    assert export_fhir(normalized, out, subject="Patient/example") == len(records)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records)
    for record, line in zip(records, lines, strict=True):
        data = json.loads(line)
        Bundle.model_validate(data)  # the whole Bundle, then each resource with its own model
        resources = [e["resource"] for e in data["entry"]]
        for resource in resources:
            MODELS[resource["resourceType"]].model_validate(resource)
            assert resource["subject"] == {"reference": "Patient/example"}
        report, observations = resources[0], resources[1:]
        assert report["resourceType"] == "DiagnosticReport"
        assert report["identifier"][0]["value"] == record["id"]
        assert _codes(report["code"], LOINC) == {"10193-1"}
        assert _codes(report["code"], LOCAL_SYSTEM) == {"mammography-report"}
        urls = {e["fullUrl"] for e in data["entry"][1:]}
        assert {r["reference"] for r in report.get("result", ())} == urls
        assert "presentedForm" not in report  # no text unless it was scrubbed
        if record["error"]:
            assert report["status"] == "unknown" and not observations
            continue
        assert report["conclusion"] == record["standardized_text"]
        present = [f for f in record["findings"] if not f["negated"] and not f["historical"]]
        expected = (bool(record["density"]) + len(record["density_by_side"])
                    + bool(record["birads"]) + len(record["birads_by_side"]) + len(present))  # fmt: skip
        assert len(observations) == expected
        findings = [o for o in observations if any(c["code"].startswith("finding-")
                                                   for c in o["code"]["coding"])]  # fmt: skip
        for finding, obs in zip(present, findings, strict=True):
            assert _codes(obs["code"], LOCAL_SYSTEM) == {f"finding-{finding['type']}"}
            assert _codes(obs["code"], SNOMED) == FINDING_SNOMED.get(
                (finding["type"], finding["descriptors"]["asymmetry"]), set())  # fmt: skip
            assert obs["note"] == [{"text": finding["evidence"]["text"]}]
            side = {"left": "80248007", "right": "73056007", "bilateral": "63762007"}
            if finding["laterality"]:
                assert _codes(obs["bodySite"], SNOMED) == {side[finding["laterality"]]}
            else:
                assert "bodySite" not in obs
        if record["birads"]:
            assert _codes(report["conclusionCode"][0], LOCAL_SYSTEM) == {
                f"birads-{record['birads']['category']}"}  # fmt: skip


def test_codes_of_density_and_birads() -> None:
    record = {"id": "r", "density": {"category": "C", "laterality": None,
                                     "evidence": {"text": "ACR C", "start": 0, "end": 5}},
              "density_by_side": {"left": "B"},
              "birads": {"category": "4A", "evidence": {"text": "BI-RADS 4A", "start": 7, "end": 17}},
              "birads_by_side": {"right": "5"}, "findings": [], "standardized_text": "s",
              "warnings": [], "error": None, "recommendation": None, "language": "en"}  # fmt: skip
    bundle = report_bundle(record, subject="Patient/1", encounter="Encounter/2")
    resources = [e["resource"] for e in bundle["entry"]]
    assert resources[0]["encounter"] == {"reference": "Encounter/2"}
    density, left, birads, right = resources[1:]
    assert _codes(density["valueCodeableConcept"], SNOMED) == {"129718006"}
    assert _codes(left["valueCodeableConcept"], SNOMED) == {"129717001"}
    assert _codes(left["bodySite"], SNOMED) == {"80248007"}
    assert _codes(birads["valueCodeableConcept"], SNOMED) == set()  # 4A: a local code only
    assert _codes(birads["valueCodeableConcept"], LOCAL_SYSTEM) == {"birads-4A"}
    assert _codes(right["valueCodeableConcept"], SNOMED) == {"397145000"}


def _finding(kind: str, asymmetry: str | None = None) -> dict[str, Any]:
    return {"type": kind, "laterality": None, "negated": False, "uncertain": False,
            "historical": False, "evidence": {"text": kind, "start": 0, "end": len(kind)},
            "descriptors": {"shape": [], "margin": [], "mass_density": [], "calc_morphology": [],
                            "calc_distribution": [], "asymmetry": asymmetry, "size_mm": None},
            "location": {"quadrant": None, "clock": None, "depth": None}}  # fmt: skip


def test_codes_of_the_report_and_of_findings() -> None:
    kinds = [("mass", None), ("calcification", None), ("architectural_distortion", None),
             ("asymmetry", "focal"), ("asymmetry", "global"), ("lymph_node", None)]  # fmt: skip
    record = {"id": "r", "density": None, "density_by_side": {}, "birads": None,
              "birads_by_side": {}, "findings": [_finding(*k) for k in kinds],
              "standardized_text": "s", "warnings": [], "error": None, "recommendation": None,
              "language": "en"}  # fmt: skip
    resources = [e["resource"] for e in report_bundle(record, subject="Patient/1")["entry"]]
    report, findings = resources[0], resources[1:]
    assert report["code"]["coding"][0] == {
        "system": LOINC,
        "code": "10193-1",
        "display": "Physical findings of Breasts Narrative",
    }
    codes = [_codes(obs["code"], SNOMED) for obs in findings]
    assert codes == [{"129788004"}, {"697944008"}, {"129792006"}, {"129789007"}, set(), set()]
    assert [_codes(obs["code"], LOCAL_SYSTEM) for obs in findings] == [
        {f"finding-{kind}"} for kind, _ in kinds
    ]  # the local code stays beside the standard one


def test_only_scrubbed_text_travels(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "r1.txt").write_text(f"Patient {PHI_CANARY}. ACR B. BI-RADS 2.", encoding="utf-8")
    lines = tmp_path / "n.jsonl"
    normalize_reports(folder, lines, settings=load_settings(), workers=1, scrub=True)
    out = tmp_path / "b.ndjson"
    export_fhir(lines, out, subject="Patient/p1")
    text = out.read_text(encoding="utf-8")
    assert "QUIXOTEVANS" not in text and "CANARY" not in text
    report = json.loads(text)["entry"][0]["resource"]
    form = base64.b64decode(report["presentedForm"][0]["data"]).decode("utf-8")
    assert "[NAME]" in form and "ACR B" in form


def test_cli_export_fhir_and_its_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    lines = tmp_path / "n.jsonl"
    assert runner.invoke(app, ["normalize", "--sample", "-o", str(lines)]).exit_code == 0
    out = tmp_path / "fhir" / "out.ndjson"
    result = runner.invoke(app, ["export", "fhir", str(lines), "-o", str(out),
                                 "--subject", "Patient/example"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 8
    bad = runner.invoke(app, ["export", "fhir", str(lines), "-o", str(tmp_path / "x.ndjson"),
                              "--subject", "Jane Doe"])  # fmt: skip
    assert bad.exit_code == 1 and "not a FHIR reference" in bad.output
    assert "Jane" not in bad.output
    assert not (tmp_path / "x.ndjson").exists()
    missing = runner.invoke(app, ["export", "fhir", "nowhere.jsonl", "-o", str(out),
                                  "--subject", "Patient/1"])  # fmt: skip
    assert missing.exit_code == 1 and "'nowhere.jsonl' not found" in missing.output
    not_reports = tmp_path / "other.jsonl"
    not_reports.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        export_fhir(not_reports, tmp_path / "y.ndjson", subject="Patient/1")
    assert not (tmp_path / "y.ndjson").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

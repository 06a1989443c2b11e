"""The JSON Schemas of the outputs: the checked-in files are what the typed records generate,
real outputs validate against them, and broken records do not."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import mammosearch
from mammosearch.config import load_settings
from mammosearch.nlp import normalize
from mammosearch.pipeline import (
    Assessment,
    DensityDecision,
    ExamAssessment,
    Laterality,
    ModelOpinion,
    SideDensity,
    assess_image,
    build_index,
    exam_density,
    iter_assessments,
    iter_exam_assessments,
    normalize_reports,
    open_index,
    sample_reports_dir,
    search_cases,
)
from mammosearch.pipeline.schemas import SCHEMA_NAMES, json_schemas, schema_text
from mammosearch.records import NormalizedReport
from mammosearch.samples.reports import generate_reports
from tests.conftest import write_manifest
from tests.test_cases import breast_png

SCHEMAS = Path(mammosearch.__file__).parent.parent / "docs" / "schemas"


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(name: str, instance: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator(name).iter_errors(instance)]


def test_checked_in_schemas_are_what_the_records_generate(update_golden: bool) -> None:
    """After an intended change to a record: ``pytest tests/test_schemas.py --update-golden``."""
    generated = json_schemas()
    assert list(generated) == list(SCHEMA_NAMES)
    for name, schema in generated.items():
        path = SCHEMAS / f"{name}.schema.json"
        if update_golden:
            path.write_text(schema_text(schema), encoding="utf-8")
        assert path.read_text(encoding="utf-8") == schema_text(schema), (
            f"{path.name} is stale: run pytest tests/test_schemas.py --update-golden"
        )
    assert sorted(p.name for p in SCHEMAS.iterdir()) == sorted(
        f"{name}.schema.json" for name in SCHEMA_NAMES
    )


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_the_schemas_are_draft_2020_12(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("scrub", [False, True])
def test_normalize_output_validates(tmp_path: Path, scrub: bool) -> None:
    out = tmp_path / "sample.jsonl"
    normalize_reports(sample_reports_dir(), out, settings=load_settings(), scrub=scrub)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 8 and all(("phi" in line) is scrub for line in lines)
    for line in lines:
        assert _errors("normalized-report", line) == [], line["id"]


def test_generated_reports_validate() -> None:
    """Reports with findings of every kind, descriptors, locations and per-side categories."""
    reports = [normalize(r.text, id=f"g{i}").to_dict()
               for i, r in enumerate(generate_reports(40, seed=3))]  # fmt: skip
    findings = [f for r in reports for f in r["findings"]]
    assert findings and any(f["location"]["clock"] for f in findings)  # not vacuous
    assert any(f["descriptors"]["size_mm"] is not None for f in findings)
    failed = NormalizedReport.failed("bad", "E022: not text").to_dict()
    for report in [*reports, failed]:
        assert _errors("normalized-report", report) == [], report["id"]


@pytest.fixture(scope="module")
def assessed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Real ``assess`` outputs over a small radiomics index: manifest rows (one unreadable),
    exams, and one image with a report."""
    folder = tmp_path_factory.mktemp("schema-corpus")
    (folder / "img").mkdir()
    rows = []
    for i in range(12):
        label = "ABCD"[i % 4]
        breast_png(folder / "img" / f"{i}.png", 0.1 + 0.25 * (i % 4), i)
        report = f"ACR {label}. Grouped calcifications in the left UOQ. BI-RADS 3." if i % 3 else ""
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "laterality": "LR"[i % 2], "view": "CC", "report": report, "density": label})  # fmt: skip
    rows.append({"image": "img/missing.png", "case_id": "bad", "patient_id": "pb",
                 "laterality": "", "view": "", "report": "", "density": "A"})  # fmt: skip
    manifest = write_manifest(folder / "manifest.csv", rows)
    index_dir = folder / "idx"
    build_index(manifest, index_dir, settings=load_settings(), embedder="radiomics.v1")
    images = [a.to_dict() for a in iter_assessments(index_dir, manifest)]
    exams = [e.to_dict() for e in iter_exam_assessments(index_dir, manifest)]
    index, embedder = open_index(index_dir)
    try:
        single = assess_image(index, embedder, image=folder / "img" / "1.png",
                              report="Mamas extremadamente densas. BI-RADS 2.")  # fmt: skip
        images.append(single.to_dict())
    finally:
        index.close()
    hits = search_cases(index_dir, text="ACR C. Grouped calcifications. BI-RADS 3.", k=4)
    assert any(hit.report for hit in hits)  # search results carry their reports: in the schema
    images.append(replace(single, neighbours=tuple(hits)).to_dict())
    return {"assessment": images, "exam-assessment": exams}


def _hand_made() -> dict[str, list[dict[str, Any]]]:
    """The forms a small index without a density model does not give: the model's opinions,
    an ensemble's weights, views of unknown side."""
    probs = {"A": 0.1, "B": 0.2, "C": 0.6, "D": 0.1}
    ensemble = Assessment(
        DensityDecision("C", probs, "ensemble", 0.6, weights={"vote": 0.5, "convnext": 0.5}),
        opinions={"convnext": ModelOpinion.of(probs), "probe": ModelOpinion.of(probs)},
        laterality=Laterality.RIGHT, case_id="c9", row=3,
    )  # fmt: skip
    exam = exam_density([ensemble, Assessment(DensityDecision("A", probs, "vote", 0.1)),
                         Assessment.failed("c9", 5, "E021 unreadable")], list(probs))  # fmt: skip
    empty = ExamAssessment(None, {}, 0, 0, {}, case_id="c0")
    side = ExamAssessment("B", {"L": SideDensity("B", probs, 2)}, 2, 0, {"vote": 2})
    return {"assessment": [ensemble.to_dict()],
            "exam-assessment": [exam.to_dict(), empty.to_dict(), side.to_dict()]}  # fmt: skip


@pytest.mark.parametrize("name", ["assessment", "exam-assessment"])
def test_assess_outputs_validate(assessed: dict[str, list[dict[str, Any]]], name: str) -> None:
    outputs = assessed[name] + _hand_made()[name]
    if name == "assessment":  # not vacuous: a failed row, neighbours with reports, a report
        assert any("error" in a for a in outputs)
        assert any(n["report"] for a in outputs for n in a.get("neighbours", []))
        assert any(a.get("report") for a in outputs)
    else:
        assert any(e["images"] and e["by_side"] for e in outputs)
    for output in outputs:
        assert _errors(name, output) == [], output


def _report() -> dict[str, Any]:
    return normalize("Left breast: grouped amorphous calcifications at 2 o'clock, 5 mm. "
                     "Heterogeneously dense (ACR C). BI-RADS 4A.", id="r").to_dict()  # fmt: skip


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(data)
    target = broken
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


_DELETE = object()
BROKEN_REPORTS = [
    ("density category outside A-D", ("density", "category"), "E"),
    ("BI-RADS category 7", ("birads", "category"), "7"),
    ("a key missing", ("warnings",), _DELETE),
    ("an unknown key", ("colour",), "blue"),
    ("an unknown finding type", ("findings", 0, "type"), "tumour"),
    ("a side as its code in a report", ("findings", 0, "laterality"), "L"),
    ("an unknown descriptor", ("findings", 0, "descriptors", "calc_morphology"), ["sparkly"]),
    ("a negative span offset", ("density", "evidence", "start"), -1),
    ("a span offset as text", ("density", "evidence", "end"), "12"),
    ("negated as text", ("findings", 0, "negated"), "no"),
    ("a third language", ("language",), "fr"),
    ("an unknown side in density_by_side", ("density_by_side",), {"top": "C"}),
    ("an unknown recommendation", ("recommendation",), "wait and see"),
    ("a clock that is not a time", ("findings", 0, "location", "clock"), "two"),
    ("an unknown PHI kind", ("phi",), {"SHOE_SIZE": 1}),
]


@pytest.mark.parametrize(
    ("why", "path", "value"), BROKEN_REPORTS, ids=[b[0] for b in BROKEN_REPORTS]
)
def test_a_broken_report_fails(why: str, path: tuple[Any, ...], value: Any) -> None:
    report = _report()
    assert report["density"] and report["birads"] and report["findings"]
    assert _errors("normalized-report", report) == []
    assert _errors("normalized-report", _set(report, path, value)) != [], why


def test_broken_assessments_fail(assessed: dict[str, list[dict[str, Any]]]) -> None:
    good = next(a for a in assessed["assessment"] if "error" not in a and a["neighbours"])
    exam = next(e for e in assessed["exam-assessment"] if e["by_side"])
    broken = [
        _set(good, ("laterality",), "left"),  # results write the code
        _set(good, ("density", "confidence"), 1.5),
        _set(good, ("neighbours", 0, "patient_id"), "p1"),  # never in results
        _set(good, ("neighbours", 0, "view"), "XYZ"),
        _set(good, ("vote",), _DELETE),
        _set(good, ("error",), "E021"),  # an error row has no decision
    ]
    for instance in broken:
        assert _errors("assessment", instance) != []
    for instance in [
        _set(exam, ("by_side", "X"), exam["by_side"][next(iter(exam["by_side"]))]),
        _set(exam, ("density", "method"), "vote"),
        _set(exam, ("views",), -1),
        _set(exam, ("images", 0, "laterality"), "right"),
    ]:
        assert _errors("exam-assessment", instance) != []


def test_the_documented_examples_validate() -> None:
    """The report and the finding shown in docs/CLI.md ("The normalized report") are valid."""
    from tests.test_docs import parse

    shown = [json.loads(b.code) for b in parse("docs/CLI.md")[0] if b.language == "json"]
    report, finding = shown[0], shown[1]
    assert _errors("normalized-report", report) == []
    assert _errors("normalized-report", {**report, "findings": [finding]}) == []

from __future__ import annotations

import json

import pytest

from mammosearch.records import (
    AsymmetryKind,
    BiradsAssessment,
    BiradsCategory,
    CalcMorphology,
    DensityAssessment,
    DensityCategory,
    Depth,
    Finding,
    FindingDescriptors,
    FindingLocation,
    FindingType,
    Laterality,
    Margin,
    NormalizedReport,
    Quadrant,
    Recommendation,
    Shape,
    Span,
    View,
)

CONTRACT_KEYS = {
    "id",
    "language",
    "density",
    "density_by_side",
    "birads",
    "birads_by_side",
    "findings",
    "recommendation",
    "standardized_text",
    "warnings",
    "error",
}


def test_atlas_order_of_birads() -> None:
    order = sorted(BiradsCategory, key=lambda c: c.severity)
    assert [c.value for c in order] == ["1", "2", "3", "6", "0", "4", "4A", "4B", "4C", "5"]
    assert BiradsCategory("4C").meaning == "high suspicion for malignancy"


def test_density_rank() -> None:
    assert [c.rank for c in DensityCategory] == [0, 1, 2, 3]


def test_empty_report_has_every_key() -> None:
    data = NormalizedReport(id="x").to_dict()
    assert set(data) == CONTRACT_KEYS
    assert data["density_by_side"] == {} and data["findings"] == [] and data["warnings"] == []
    assert data["density"] is None and data["birads"] is None and data["error"] is None


def test_failed_record() -> None:
    data = NormalizedReport.failed("r9", "E022: bad").to_dict()
    assert set(data) == CONTRACT_KEYS
    assert data["error"] == "E022: bad"


def test_full_round_trip_through_json() -> None:
    report = NormalizedReport(
        id="r1",
        language="es",
        density=DensityAssessment(DensityCategory.C, Span("TIPO C", 3, 9), Laterality.RIGHT),
        density_by_side={Laterality.RIGHT: DensityCategory.C, Laterality.LEFT: DensityCategory.B},
        birads=BiradsAssessment(BiradsCategory.C4A, Span("BI-RADS 4A", 20, 30)),
        birads_by_side={Laterality.RIGHT: BiradsCategory.C4A},
        findings=(
            Finding(
                FindingType.MASS,
                Span("nódulo", 40, 46),
                Laterality.RIGHT,
                descriptors=FindingDescriptors(
                    shape=(Shape.IRREGULAR,),
                    margin=(Margin.SPICULATED,),
                    calc_morphology=(CalcMorphology.FINE_PLEOMORPHIC,),
                    asymmetry=AsymmetryKind.FOCAL,
                    size_mm=14.0,
                ),
                location=FindingLocation(Quadrant.UOQ, "10:00", Depth.MIDDLE),
            ),
        ),
        recommendation=Recommendation.BIOPSY,
        standardized_text="…",
        warnings=("W1",),
    )
    text = json.dumps(report.to_dict(), ensure_ascii=False)
    back = NormalizedReport.from_dict(json.loads(text))
    assert back == report
    finding = back.to_dict()["findings"][0]
    assert set(finding) == {
        "type",
        "laterality",
        "negated",
        "uncertain",
        "historical",
        "descriptors",
        "location",
        "evidence",
    }
    assert finding["descriptors"]["size_mm"] == 14.0


def test_enums_reject_unknown_values() -> None:
    with pytest.raises(ValueError):
        BiradsCategory("7")
    with pytest.raises(ValueError):
        DensityCategory("E")


@pytest.mark.parametrize(
    ("text", "side"),
    [("L", Laterality.LEFT), ("r", Laterality.RIGHT), (" Left ", Laterality.LEFT),
     ("RIGHT", Laterality.RIGHT), ("both", Laterality.BILATERAL), ("B", Laterality.BILATERAL),
     ("", None), (None, None)],
)  # fmt: skip
def test_one_laterality_reads_codes_and_words(text: str | None, side: Laterality | None) -> None:
    assert Laterality.parse(text) is side
    if side is not None:
        assert Laterality.parse(side.code) is side and Laterality.parse(side.value) is side


def test_laterality_codes_are_dicom_and_unknown_values_are_refused() -> None:
    assert [s.code for s in Laterality] == ["L", "R", "B"]
    for bad in ("X", "LR", "izq", "0"):
        with pytest.raises(ValueError, match="use L, R or B"):
            Laterality.parse(bad)


def test_view_reads_codes_in_any_case() -> None:
    assert View.parse("mlo") is View.MLO and View.parse(" CC ") is View.CC
    assert View.parse("") is None and View.parse(None) is None
    with pytest.raises(ValueError, match="unknown view 'XYZ'"):
        View.parse("XYZ")

"""Consistency warnings about findings: contradictory descriptors (W205), a per-side finding
against a statement for both breasts (W206)."""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize
from mammosearch.nlp.consistency import ConsistencyCheck
from mammosearch.records import (
    Finding,
    FindingDescriptors,
    FindingType,
    Laterality,
    Margin,
    Shape,
    Span,
)


def _finding(
    kind: FindingType,
    side: Laterality | None,
    *,
    negated: bool = False,
    evidence: str = "x",
    descriptors: FindingDescriptors | None = None,
) -> Finding:
    return Finding(
        kind,
        Span(evidence, 0, len(evidence)),
        side,
        negated,
        descriptors=descriptors or FindingDescriptors(),
    )


@pytest.mark.parametrize(
    ("descriptors", "warns"),
    [
        (FindingDescriptors(margin=(Margin.CIRCUMSCRIBED, Margin.SPICULATED)), True),
        (FindingDescriptors(margin=(Margin.CIRCUMSCRIBED, Margin.INDISTINCT)), True),
        (FindingDescriptors(shape=(Shape.OVAL, Shape.IRREGULAR)), True),
        (FindingDescriptors(margin=(Margin.INDISTINCT, Margin.SPICULATED)), False),
        (FindingDescriptors(shape=(Shape.OVAL,), margin=(Margin.CIRCUMSCRIBED,)), False),
    ],
)
def test_contradictory_descriptors(descriptors: FindingDescriptors, warns: bool) -> None:
    out = ConsistencyCheck().finding_warnings(
        [_finding(FindingType.MASS, Laterality.LEFT, descriptors=descriptors)]
    )
    assert any(w.startswith("W205") for w in out) is warns


def test_a_side_against_both_breasts(phi_canary: str) -> None:
    check = ConsistencyCheck()
    absent = _finding(FindingType.CALCIFICATION, Laterality.BILATERAL, negated=True,
                      evidence=f"calcifications {phi_canary}")  # fmt: skip
    present = _finding(FindingType.CALCIFICATION, Laterality.RIGHT, evidence=phi_canary)
    (warning,) = check.finding_warnings([absent, present])
    assert warning.startswith("W206") and "right" in warning
    assert phi_canary not in warning
    qualified = _finding(FindingType.CALCIFICATION, Laterality.BILATERAL, negated=True,
                         evidence="suspicious calcifications")  # fmt: skip
    assert check.finding_warnings([qualified, present]) == []
    other_type = _finding(FindingType.MASS, Laterality.RIGHT)
    assert check.finding_warnings([absent, other_type]) == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Mass with circumscribed and spiculated margins in the right breast.", "W205"),
        ("Nódulo de bordes bien definidos y espiculados en la mama izquierda.", "W205"),
        ("No calcifications in either breast. Left: grouped amorphous calcifications.", "W206"),
        ("Sin microcalcificaciones en ambas mamas. Mama derecha: microcalcificaciones.", "W206"),
    ],
)
def test_warnings_reach_the_report(text: str, code: str) -> None:
    assert any(w.startswith(code) for w in normalize(text).warnings)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Round and irregular nodule in the right breast.", "W205"),
        ("Nódulo ovalado e irregular en la mama derecha.", "W205"),
        (
            "Nódulo circunscrito de márgenes espiculados en el cuadrante superior externo "
            "izquierdo.",
            "W205",
        ),
        (
            "BOTH BREASTS: no masses.\nRIGHT BREAST: a 9 mm oval circumscribed mass at 11 o'clock.",
            "W206",
        ),
        ("AMBAS MAMAS: no se observan nódulos.\nMAMA IZQUIERDA: nódulo ovalado de 8 mm.", "W206"),
    ],
)
def test_more_shapes_warn(text: str, code: str) -> None:
    assert [w[:4] for w in normalize(text).warnings] == [code]


@pytest.mark.parametrize(
    "text",
    [
        "Oval circumscribed mass in the left breast.",
        "Nódulo redondeado de bordes circunscritos en la mama izquierda.",
        # the side statements agree with each other: absent on one side, present on the other
        "Right breast: no calcifications. Left breast: grouped amorphous calcifications.",
        "Mama derecha sin microcalcificaciones. Mama izquierda: microcalcificaciones agrupadas.",
        # "no suspicious ..." for both breasts leaves room for benign ones on one side
        "No suspicious calcifications in either breast. Right breast: vascular calcifications.",
    ],
)
def test_consistent_reports_do_not_warn(text: str) -> None:
    assert not [w for w in normalize(text).warnings if w.startswith(("W205", "W206"))]

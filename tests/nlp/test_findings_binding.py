"""How cues, descriptors, sizes and sides bind to findings, one sentence each.

Written against the survivors of the mutation check over the findings binding
(bench/mutation.py, docs/MUTATION.md); tests/nlp/test_findings.py holds the main tables.
"""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize
from mammosearch.records import Finding


def found(text: str) -> list[Finding]:
    return list(normalize(text).findings)


def flags(text: str) -> set[tuple[str, bool, bool, bool]]:
    return {(f.type.value, f.negated, f.uncertain, f.historical) for f in found(text)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "no change" is a pseudo-cue: its "no" negates nothing, its "change" dates the finding
        ("No change in the calcifications.", {("calcification", False, False, True)}),
        # a terminator ends the negation's scope
        ("No mass but calcifications.", {("mass", True, False, False), ("calcification", False, False, False)}),
        # backward cues negate the whole list before them
        ("Masses, calcifications and distortion are not seen.", {("mass", True, False, False), ("calcification", True, False, False), ("architectural_distortion", True, False, False)}),
        ("Calcifications, a mass and distortion are absent.", {("calcification", True, False, False), ("mass", True, False, False), ("architectural_distortion", True, False, False)}),
        ("Possible mass.", {("mass", False, True, False)}),
        ("Nódulo estable.", {("mass", False, False, True)}),
        # "and new" ends the scope of "stable"; it leaves a negation's alone
        ("Stable mass and new calcifications.", {("mass", False, False, True), ("calcification", False, False, False)}),
        ("Nódulo estable y nuevas calcificaciones.", {("mass", False, False, True), ("calcification", False, False, False)}),
        ("No new masses and no new calcifications.", {("mass", True, False, False), ("calcification", True, False, False)}),
    ],
)  # fmt: skip
def test_context_cues_bind_to_their_findings(
    text: str, expected: set[tuple[str, bool, bool, bool]]
) -> None:
    assert flags(text) == expected


def test_a_negated_descriptor_does_not_bind_to_a_finding_that_is_not() -> None:
    (mass,) = found("Oval mass, no spiculated margins.")
    assert [s.value for s in mass.descriptors.shape] == ["oval"]
    assert mass.descriptors.margin == () and not mass.negated


def test_a_far_descriptor_binds_to_the_only_finding_that_takes_it() -> None:
    (mass,) = found(
        "A mass is seen in the upper outer quadrant of the right breast on the craniocaudal "
        "view with spiculated margins."
    )
    assert [m.value for m in mass.descriptors.margin] == ["spiculated"]
    assert mass.laterality is not None and mass.laterality.value == "right"
    assert mass.location.quadrant is not None and mass.location.quadrant.value == "UOQ"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nódulo en la mama derecha y microcalcificaciones en la mama izquierda.", {("mass", "right"), ("calcification", "left")}),
        ("Mass in the right breast; calcifications in the left breast.", {("mass", "right"), ("calcification", "left")}),
        ("Nódulo en la mama derecha; calcificaciones en la mama izquierda.", {("mass", "right"), ("calcification", "left")}),
        ("Right breast mass and left breast calcifications.", {("mass", "right"), ("calcification", "left")}),
        ("Ganglio axilar derecho y nódulo en mama izquierda.", {("lymph_node", "right"), ("mass", "left")}),
        ("Nódulo en mama derecha, calcificaciones gruesas en ambas mamas.", {("mass", "right"), ("calcification", "bilateral")}),
        ("Calcificaciones en mama izquierda, nódulo de 8 mm en mama derecha.", {("calcification", "left"), ("mass", "right")}),
        # findings joined by "and", each with its side: each takes its own conjunct's
        ("Mass in the right breast and calcifications in the left breast.", {("mass", "right"), ("calcification", "left")}),
        ("Mama derecha con nódulo y mama izquierda con calcificaciones.", {("mass", "right"), ("calcification", "left")}),
        ("Calcifications and a mass in the right breast.", {("calcification", "right"), ("mass", "right")}),
    ],
)  # fmt: skip
def test_each_finding_takes_its_own_side_in_a_sentence_naming_both(
    text: str, expected: set[tuple[str, str]]
) -> None:
    sides = {(f.type.value, f.laterality.value if f.laterality else None) for f in found(text)}
    assert sides == expected


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("Mass 8 cm from the nipple measuring 12 mm.", 12.0),  # a distance, then the size
        ("Nódulo de 1,5 cm.", 15.0),  # a decimal comma
        ("Nódulo de 2 centimetros.", 20.0),
        ("Mass measuring 12.34 mm.", 12.3),  # to a tenth of a millimetre
    ],
)
def test_sizes(text: str, size: float) -> None:
    (finding,) = found(text)
    assert finding.descriptors.size_mm == size


@pytest.mark.parametrize(
    "text",
    ["Excision of a mass in 2019.", "Resección de nódulo.", "Dense tissue may obscure masses."],
)
def test_removed_and_hypothetical_findings_are_not_coded(text: str) -> None:
    assert found(text) == []

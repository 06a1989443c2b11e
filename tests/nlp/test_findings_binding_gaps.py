"""The findings binding at its bounds: cue scopes, lists, competing findings, next sentences.

Each sentence was written for a gap the mutation check left (docs/MUTATION.md, "Findings
binding"): a behaviour no test pinned. The expected values are the clinical reading of the
sentence (which finding is negated or dated, which place, size or shape belongs to which
finding), not the code's output; tests/nlp/test_findings_binding.py holds the first batch.
"""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize
from mammosearch.records import Finding


def by_type(text: str) -> dict[str, Finding]:
    findings = list(normalize(text).findings)
    out = {f.type.value: f for f in findings}
    assert len(out) == len(findings), "one finding of each type expected"
    return out


def flags(text: str) -> dict[str, tuple[bool, bool, bool]]:
    return {k: (f.negated, f.uncertain, f.historical) for k, f in by_type(text).items()}


N, H, PRESENT = (True, False, False), (False, False, True), (False, False, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a forward cue reaches a finding 8 words on (max_gap) ...
        ("No evidence of a new suspicious spiculated or irregular high density mass.", {"mass": N}),
        # ... and not one 9 or more words on, in a clause about something else
        ("Patient without symptoms referred for screening mammography at the local clinic showing a mass in the left breast.", {"mass": PRESENT}),
        # list items 7 words apart (chain_gap) joined by "or" share the negation
        ("No mass or suspicious clustered pleomorphic fine linear branching calcifications.", {"mass": N, "calcification": N}),
        # a semicolon is no list connector: the negation ends with its clause
        ("No masses in the right breast; benign calcifications in the left breast.", {"mass": N, "calcification": PRESENT}),
        # a terminator between the findings and a backward cue keeps the earlier one out
        ("There are benign calcifications but a mass is not seen.", {"calcification": PRESENT, "mass": N}),
        # a backward cue reaches a finding 8 words before it ...
        ("The calcifications described in the outside report of 2024 are not seen.", {"calcification": N}),
        # ... and not one far before it, about which the sentence says something else
        ("Benign calcifications in both breasts; the pectoral muscle on the left mediolateral oblique view is not seen.", {"calcification": PRESENT}),
        # the words naming the finding's place and side are part of it: the cue reaches past them
        ("A mass in the upper outer quadrant of the right breast is not seen.", {"mass": N}),
        ("El nódulo del cuadrante superior externo de la mama derecha descrito en 2023 ya no se observa.", {"mass": N}),
        # a forward list broken inside one sentence: by a word that is no connector ...
        ("No mass in the right breast with benign calcifications in the left breast.", {"mass": N, "calcification": PRESENT}),
        # ... by a connector more than 7 words on, and by a relative clause
        ("No mass in the upper outer quadrant of the right breast, and benign calcifications in the left breast.", {"mass": N, "calcification": PRESENT}),
        ("No masses in the right breast, where benign calcifications persist.", {"mass": N, "calcification": H}),
        ("Sin nódulos en la mama derecha, donde persisten calcificaciones benignas.", {"mass": N, "calcification": H}),
        # a backward list broken inside one sentence
        ("Intramammary lymph node in the right breast with calcifications not seen.", {"lymph_node": PRESENT, "calcification": N}),
        ("Benign calcifications in both breasts with the pectoral muscle on the left mediolateral oblique view not seen.", {"calcification": PRESENT}),
        ("Masses are not seen, only scattered benign calcifications.", {"mass": N, "calcification": PRESENT}),
        ("New lymph node in the right axilla near calcifications unchanged since 2022.", {"lymph_node": PRESENT, "calcification": H}),
        ("Ganglio nuevo en la axila derecha junto a calcificaciones sin cambios desde 2022.", {"lymph_node": PRESENT, "calcification": H}),
        # a generic head with its finding word is one list item
        ("A mass lesion is not seen.", {"mass": N}),
        ("An area of architectural distortion is not seen.", {"architectural_distortion": N}),
        # a cue read both ways that closes its clause looks back; one followed by words does not
        ("Un área de distorsión de la arquitectura no se observa.", {"architectural_distortion": N}),
        ("El nódulo descrito en la mama derecha no se visualiza.", {"mass": N}),
        ("Calcificaciones benignas, no se observan otros hallazgos.", {"calcification": PRESENT}),
        # a bidirectional cue is an adjective of the words next to it: the places between do
        # not bring a far finding into its reach ("compared with the prior examination")
        ("Mass in the upper outer quadrant of the right breast, compared with the prior examination.", {"mass": PRESENT}),
        ("Nódulo en el cuadrante superior externo de la mama derecha, comparado con la mamografía previa.", {"mass": PRESENT}),
        # a backward cue with more words after it in its clause still looks back
        ("Masses are not seen in either breast.", {"mass": N}),
        # places between a forward cue and its finding do not count towards its reach
        ("No se observan en el cuadrante superior externo de la mama derecha nódulos ni calcificaciones.", {"mass": N, "calcification": N}),
        # a backward list broken by a semicolon: only the finding next to the cue is negated
        ("Intramammary lymph node in the right breast; calcifications are not seen.", {"lymph_node": PRESENT, "calcification": N}),
        # a backward list, items 7 words apart joined by "or"
        ("Masses or suspicious clustered pleomorphic fine linear branching calcifications are not seen.", {"mass": N, "calcification": N}),
        # a finding after a backward cue is outside its scope
        ("Masses are not seen; there are scattered benign calcifications.", {"mass": N, "calcification": PRESENT}),
        # a bidirectional (historical) cue: its backward scope stops at the semicolon
        ("Lymph node in the right axilla; calcifications unchanged.", {"lymph_node": PRESENT, "calcification": H}),
        ("Ganglio en la axila derecha; calcificaciones sin cambios.", {"lymph_node": PRESENT, "calcification": H}),
    ],
)  # fmt: skip
def test_cue_scopes_at_their_bounds(
    text: str, expected: dict[str, tuple[bool, bool, bool]]
) -> None:
    assert flags(text) == expected


def quadrants(text: str) -> dict[str, str | None]:
    return {
        k: f.location.quadrant.value if f.location.quadrant else None
        for k, f in by_type(text).items()
    }


def clocks(text: str) -> dict[str, str | None]:
    return {k: f.location.clock for k, f in by_type(text).items()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the nearer of two findings before a place takes it
        ("A lymph node in the axilla and a mass in the upper inner quadrant.", {"lymph_node": None, "mass": "UIQ"}),
        # each clause's place is its own finding's, not the nearer finding's across the comma
        ("A mass in the upper inner quadrant, calcifications in the lower outer quadrant.", {"mass": "UIQ", "calcification": "LOQ"}),
        ("Nódulo en el cuadrante superior interno, calcificaciones en el cuadrante inferior externo.", {"mass": "UIQ", "calcification": "LOQ"}),
        # calcifications inside a mass: the place is the mass's
        ("Mass with calcifications in the upper outer quadrant.", {"mass": "UOQ", "calcification": None}),
        # a place in the next sentence is not this sentence's finding's
        ("A mass in the right breast. Irregular asymmetry in the upper outer quadrant of the left breast.", {"mass": None, "asymmetry": "UOQ"}),
    ],
)  # fmt: skip
def test_each_place_binds_to_its_own_finding(text: str, expected: dict[str, str | None]) -> None:
    assert quadrants(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A mass at 2 o'clock and calcifications at 10 o'clock.", {"mass": "2:00", "calcification": "10:00"}),
        ("A mass at 2 o'clock, calcifications at 10 o'clock.", {"mass": "2:00", "calcification": "10:00"}),
        ("A mass in the right breast. Calcifications at 10 o'clock in the left breast.", {"mass": None, "calcification": "10:00"}),
        ("A 12 mm mass in the right breast. Calcifications at 10 o'clock in the left breast.", {"mass": None, "calcification": "10:00"}),
    ],
)  # fmt: skip
def test_each_clock_position_binds_to_its_own_finding(
    text: str, expected: dict[str, str | None]
) -> None:
    assert clocks(text) == expected


def test_a_descriptor_after_a_negated_one_still_binds() -> None:
    mass = by_type("Mass without spiculated margins, which is oval and circumscribed.")["mass"]
    assert [s.value for s in mass.descriptors.shape] == ["oval"]
    assert [m.value for m in mass.descriptors.margin] == ["circumscribed"]
    assert not mass.negated


def test_a_descriptor_in_the_next_sentence_is_not_this_sentences() -> None:
    found = by_type("A mass in the right breast. Irregular asymmetry in the left breast.")
    assert found["mass"].descriptors.shape == ()
    assert found["mass"].laterality is not None and found["mass"].laterality.value == "right"
    assert found["asymmetry"].laterality is not None
    assert found["asymmetry"].laterality.value == "left"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A 14 mm mass next to calcifications.", {"mass": 14.0, "calcification": None}),
        ("Calcifications near a mass of 9 mm.", {"calcification": None, "mass": 9.0}),
        ("Calcifications and a lymph node of 9 mm.", {"calcification": None, "lymph_node": 9.0}),
        ("Oval mass, 11 mm, and amorphous calcifications.", {"mass": 11.0, "calcification": None}),
        ("Nódulo de 12 mm y calcificaciones.", {"mass": 12.0, "calcification": None}),
        # a size ends its sentence: the finding that starts the next one does not take it
        ("Mass measuring 11 mm. Calcifications.", {"mass": 11.0, "calcification": None}),
        ("Nódulo de 8 mm. Calcificaciones en la mama izquierda.", {"mass": 8.0, "calcification": None}),
        ("NODULO DE 5 MM. DE DIAMETRO EN LA MAMA DERECHA.", {"mass": 5.0}),
        # a size right before a group of calcifications is the group's
        ("A 16 mm group of calcifications next to a mass.", {"calcification": 16.0, "mass": None}),
        ("Un grupo de 16 mm de microcalcificaciones junto a un nódulo.", {"calcification": 16.0, "mass": None}),
        # a size after "mass with calcifications," is the mass's; "de 3 mm" is the calcifications'
        ("Mass with calcifications, 16 mm.", {"mass": 16.0, "calcification": None}),
        ("Nódulo con calcificaciones, de 16 mm.", {"mass": 16.0, "calcification": None}),
        ("Nódulo con calcificaciones de 3 mm.", {"mass": None, "calcification": 3.0}),
        ("A mass at 2 o'clock in the right breast. Calcifications, 4 mm, in the left breast.", {"mass": None, "calcification": 4.0}),
        # a size in the next sentence is that sentence's
        ("A mass in the right breast. Calcifications at 10 o'clock, 4 mm.", {"mass": None, "calcification": 4.0}),
    ],
)  # fmt: skip
def test_each_size_binds_to_its_own_finding(text: str, expected: dict[str, float | None]) -> None:
    assert {k: f.descriptors.size_mm for k, f in by_type(text).items()} == expected


def sides(text: str) -> list[tuple[str, str | None]]:
    return [
        (f.type.value, f.laterality.value if f.laterality else None)
        for f in normalize(text).findings
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a side phrase after each finding is that finding's, at equal distance too
        ("Intramammary lymph node in the left breast next to calcifications of the right breast.", [("lymph_node", "left"), ("calcification", "right")]),
        ("Ganglio intramamario en la mama izquierda junto a calcificaciones de la mama derecha.", [("lymph_node", "left"), ("calcification", "right")]),
        # both sides named together are both breasts
        ("Left and right breasts: benign calcifications.", [("calcification", "bilateral")]),
        ("Benign calcifications in the right and left breasts.", [("calcification", "bilateral")]),
        ("Calcificaciones benignas en las mamas derecha e izquierda.", [("calcification", "bilateral")]),
        # a side after two findings joined by "and" is both findings'
        ("Calcifications in the right breast, a mass and a lymph node in the left breast.", [("calcification", "right"), ("mass", "left"), ("lymph_node", "left")]),
        ("In the right breast a mass, in the left breast calcifications.", [("mass", "right"), ("calcification", "left")]),
        ("Right breast, a mass; left breast, calcifications.", [("mass", "right"), ("calcification", "left")]),
        ("A mass in the right breast near the nipple, with skin thickening of the left breast.", [("mass", "right"), ("skin_thickening", "left")]),
        ("Bilateral benign calcifications and a mass in the right breast.", [("calcification", "bilateral"), ("mass", "right")]),
        # the comma after a finding closes its clause, side and all
        ("Right breast with a mass, left breast normal.", [("mass", "right")]),
        # a finding joined by "and" with no side of its own takes its clause's side
        ("Right breast mass and calcifications, left breast normal.", [("mass", "right"), ("calcification", "right")]),
        # one side named in the sentence is every finding's, however far
        ("In the right breast, compared with the previous study from another institution performed two years ago, there is a new mass.", [("mass", "right")]),
        # a clause without a side takes the nearest side of the sentence
        ("Left breast without findings; in the right breast, an irregular mass.", [("mass", "right")]),
        ("Calcifications in the left breast; in the right breast, behind the nipple, a mass.", [("calcification", "left"), ("mass", "right")]),
        ("Scattered benign calcifications in the left breast; in the upper outer quadrant of the right breast, behind the nipple at a depth of about four centimeters, an oval mass.", [("calcification", "left"), ("mass", "right")]),
        # a side word right before the finding is its own, not one named later for comparison
        ("Right axillary lymph node larger than the left.", [("lymph_node", "right")]),
        ("Ganglio axilar derecho mayor que el izquierdo.", [("lymph_node", "right")]),
        # a finding named only by its descriptor and another side ("... y amorfas en la
        # izquierda") keeps that side, and the findings after it still take theirs
        ("Round calcifications in the right breast and amorphous in the left breast.", [("calcification", "right"), ("calcification", "left")]),
        ("Calcificaciones redondas en la mama derecha y amorfas en la izquierda; nódulo oval en la mama derecha.", [("calcification", "right"), ("calcification", "left"), ("mass", "right")]),
        ("Calcificaciones redondas en la mama derecha y amorfas en la izquierda, con un ganglio axilar derecho.", [("calcification", "right"), ("calcification", "left"), ("lymph_node", "right")]),
    ],
)  # fmt: skip
def test_each_finding_takes_its_own_side(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert sides(text) == expected


def shapes(text: str) -> list[tuple[str, list[str]]]:
    return [
        (f.type.value, [s.value for s in f.descriptors.shape]) for f in normalize(text).findings
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # two masses, each with its own shape: the word next to a mass is that mass's
        ("An oval mass in the right breast and an irregular mass in the left breast.", [("mass", ["oval"]), ("mass", ["irregular"])]),
        ("Nódulo ovalado en la mama derecha y nódulo irregular en la mama izquierda.", [("mass", ["oval"]), ("mass", ["irregular"])]),
        # a shape word next to a lymph node is the node's (which codes no shape), not the mass's
        ("Irregular mass next to an oval lymph node.", [("mass", ["irregular"]), ("lymph_node", [])]),
        ("Nódulo irregular junto a un ganglio ovalado.", [("mass", ["irregular"]), ("lymph_node", [])]),
        # ... and the descriptors after it still bind
        ("An oval lymph node next to an irregular mass.", [("lymph_node", []), ("mass", ["irregular"])]),
    ],
)  # fmt: skip
def test_each_shape_binds_to_its_own_finding(
    text: str, expected: list[tuple[str, list[str]]]
) -> None:
    assert shapes(text) == expected


def test_skin_next_to_skin_thickening_is_no_calcification_morphology() -> None:
    calcification, skin = normalize("No microcalcifications or skin thickening.").findings
    assert calcification.negated and skin.negated
    assert calcification.descriptors.calc_morphology == ()


def test_a_margin_eight_words_from_its_mass_binds_with_another_mass_in_the_sentence() -> None:
    first, second = normalize(
        "A mass seen in the upper inner quadrant, with circumscribed margins; an irregular "
        "mass in the left axillary tail."
    ).findings
    assert [m.value for m in first.descriptors.margin] == ["circumscribed"]
    assert [s.value for s in second.descriptors.shape] == ["irregular"]
    assert second.descriptors.margin == ()


@pytest.mark.parametrize("text", ["Possible oval mass.", "Probable nódulo ovalado."])
def test_a_shape_after_an_uncertainty_cue_binds(text: str) -> None:
    (mass,) = normalize(text).findings
    assert mass.uncertain and not mass.negated
    assert [s.value for s in mass.descriptors.shape] == ["oval"]


def test_calcifications_inside_a_mass_leave_the_place_to_the_mass() -> None:
    got = by_type("Oval mass with central calcifications in the upper outer quadrant.")
    assert got["mass"].location.quadrant is not None
    assert got["mass"].location.quadrant.value == "UOQ"
    assert got["calcification"].location.quadrant is None
    got = by_type("Oval mass with central calcifications at 2 o'clock.")
    assert (got["mass"].location.clock, got["calcification"].location.clock) == ("2:00", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the measure of a finding that codes no size is not the mass's
        ("Skin thickening of 4 mm over a mass.", {"skin_thickening": None, "mass": None}),
        ("Engrosamiento cutáneo de 4 mm sobre un nódulo.", {"skin_thickening": None, "mass": None}),
        ("A 9 mm mass with overlying skin thickening.", {"mass": 9.0, "skin_thickening": None}),
        # a later size in the sentence still binds, and one after a comma is the mass's
        ("Skin thickening of 4 mm over a mass of 12 mm.", {"skin_thickening": None, "mass": 12.0}),
        ("Engrosamiento cutáneo de 4 mm sobre un nódulo de 12 mm.", {"skin_thickening": None, "mass": 12.0}),
        ("Mass with skin retraction, 12 mm.", {"mass": 12.0, "skin_retraction": None}),
    ],
)  # fmt: skip
def test_a_size_next_to_a_finding_without_size(
    text: str, expected: dict[str, float | None]
) -> None:
    assert {k: f.descriptors.size_mm for k, f in by_type(text).items()} == expected


def test_a_far_margin_binds_to_the_one_finding_that_takes_it_among_several() -> None:
    got = by_type(
        "Calcifications and a mass in the upper outer quadrant of the right breast on the "
        "craniocaudal view with spiculated margins."
    )
    assert [m.value for m in got["mass"].descriptors.margin] == ["spiculated"]
    assert got["calcification"].descriptors.calc_morphology == ()

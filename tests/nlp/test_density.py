"""Breast composition: every wording of the issue, in English and Spanish, and what is not one."""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize
from mammosearch.records import Laterality


def density(text: str) -> str | None:
    report = normalize(text)
    return report.density.category.value if report.density else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 5th edition (a-d) and letters
        ("a. The breasts are almost entirely fatty.", "A"),
        ("b. There are scattered areas of fibroglandular density.", "B"),
        ("c. The breasts are heterogeneously dense, which may obscure small masses.", "C"),
        ("d. The breasts are extremely dense, which lowers the sensitivity of mammography.", "D"),
        # 4th edition wording
        ("The breasts are predominantly fatty.", "A"),
        ("Scattered fibroglandular densities are present.", "B"),
        ("Heterogeneously dense breast tissue.", "C"),
        ("Extremely dense breasts.", "D"),
        ("There are scattered fibroglandular elements in both breasts.", "B"),
        # codes: letters, numerals, roman numerals
        ("Breast density: ACR 3.", "C"),
        ("ACR 1", "A"),
        ("ACR C", "C"),
        ("(ACR-B)", "B"),
        ("Density ACR II.", "B"),
        ("ACR tipo C", "C"),
        ("Mamas con densidad tipo B.", "B"),
        ("Patrón 2.", "B"),
        ("patron mamografico tipo 4", "D"),
        ("BIRADS II ACR b", "B"),
        # a letter in brackets after the atlas word it abbreviates
        ("Dense (D). No findings.", "D"),
        ("Mamas densas (C).", "C"),
        ("The breasts are fatty (A).", "A"),
        ("Patrón mamario tipo B.", "B"),
        ("Tipo de mama: D.", "D"),
        # a lower-case letter that ends its statement is a category; Spanish "a" is not
        ("SCREENING. Density a. No masses.", "A"),
        ("Densidad a nivel del CSE aumentada.", None),
        # hyphenated atlas words
        ("The breasts demonstrate heterogeneously-dense fibroglandular tissue.", "C"),
        ("Extremely-dense breasts.", "D"),
        ("Tejido fibro-glandular disperso.", "B"),
        ("Breast density: D.", "D"),
        ("Breast composition: category C.", "C"),
        ("BI-RADS density category B.", "B"),
        ("DENSIDAD MAMARIA: C.", "C"),
        ("densidad mamaria tipo 3", "C"),
        ("LAS MAMAS ESTÁN COMPUESTAS POR TEJIDO ADIPOSO CASI EN SU TOTALIDAD (MAMAS TIPO A).", "A"),
        # Spanish descriptions
        ("Mamas heterogéneamente densas.", "C"),
        ("MAMAS HETEROGENEAMENTE DENSAS", "C"),
        ("Mamas con predominio graso.", "A"),
        ("Tejido fibroglandular disperso.", "B"),
        ("Sectores dispersos de densidad fibroglandular.", "B"),
        ("Mamas extremadamente densas.", "D"),
        ("Las mamas son muy densas, lo que disminuye la sensibilidad mamográfica.", "D"),
        ("Patrón fibroglandular heterogéneamente denso.", "C"),
        ("el parenquima mamario se observa denso heterogeneo", "C"),
        # a code wins over a description that disagrees with it
        ("Predominantly fibro fatty breast parenchyma (ACR B)", "B"),
        ("Sectores dispersos de densidad fibroglandular (mamas tipo c).", "C"),
        # mojibake and markup do not hide it
        ("<p><b>Density:</b> heterogeneously dense</p>", "C"),
        ("mamas heterogÃ©neamente densas", "C"),
    ],
)
def test_stated_density(text: str, expected: str) -> None:
    assert density(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # vague wording is not a category
        "The breasts are dense.",
        "Patrón fibroglandular de densidad media.",
        "Mamas densas.",
        "Mamas fibroadiposas sin evidencia de nódulos dominantes.",
        "Moderada cantidad de tejido adiposo y moderada cantidad de tejido fibroglandular.",
        # prior, negated, template and notification wording
        "Compared to the prior exam (heterogeneously dense), no change.",
        "On the prior study in 2019 the breasts were extremely dense",
        "The breasts are not extremely dense.",
        "Breast composition: {almost entirely fatty | scattered fibroglandular | heterogeneously "
        "dense | extremely dense}.",
        "Density: [a / b / c / d]",
        "Heterogeneously dense or extremely dense breasts can make it harder to find cancer.",
        # not about density at all
        "MAMA SUPERNUMERARIA TIPO IV (CLASIFICACIÓN DE KAJAVA).",
        "Paciente con hepatitis tipo B.",
        "BI-RADS 2 (Según la ACR).",
        "Mass of high density, 12 mm.",
        "ACR BI-RADS Assessment Category 3.",
        "El patrón ecográfico es ecogénico homogéneo.",
        "densidad a nivel del cuadrante superior",
    ],
)
def test_no_current_density(text: str) -> None:
    assert density(text) is None


def test_vague_density_warns() -> None:
    report = normalize("Patrón fibroglandular de densidad media. BIRADS 3.")
    assert report.density is None
    assert any(w.startswith("W101") for w in report.warnings)


def test_per_side_statements_and_denser_overall() -> None:
    report = normalize(
        "RIGHT BREAST: The right breast is heterogeneously dense.\n"
        "LEFT BREAST: Scattered fibroglandular densities.\nBI-RADS 2"
    )
    assert report.density is not None
    assert report.density.category.value == "C"
    assert report.density.laterality is Laterality.RIGHT
    assert {k.value: v.value for k, v in report.density_by_side.items()} == {
        "right": "C",
        "left": "B",
    }


@pytest.mark.parametrize(
    ("text", "sides"),
    [
        ("Mama derecha: ACR tipo d. Mama izquierda: ACR tipo c.", {"right": "D", "left": "C"}),
        ("MD: ACR C\nMI: ACR B", {"right": "C", "left": "B"}),
        (
            "The left breast is extremely dense; the right breast is heterogeneously dense.",
            {"left": "D", "right": "C"},
        ),  # fmt: skip
    ],
)
def test_per_side_forms(text: str, sides: dict[str, str]) -> None:
    report = normalize(text)
    assert {k.value: v.value for k, v in report.density_by_side.items()} == sides
    assert report.density is not None
    assert report.density.category.value == max(sides.values())


def test_both_breasts_is_not_per_side() -> None:
    report = normalize("The tissue of both breasts is predominantly fatty.")
    assert report.density is not None
    assert report.density.laterality is None
    assert report.density_by_side == {}


def test_unilateral_exam_side_from_header() -> None:
    report = normalize("LEFT BREAST: There are scattered fibroglandular densities.")
    assert report.density is not None and report.density.laterality is Laterality.LEFT


def test_conflicting_codes_warn_and_keep_denser() -> None:
    report = normalize("Breast density: ACR B. Impression: ACR C.")
    assert report.density is not None and report.density.category.value == "C"
    assert any(w.startswith("W103") for w in report.warnings)


def test_legend_of_descriptions_is_not_a_statement() -> None:
    report = normalize(
        "a. almost entirely fatty\nb. scattered areas of fibroglandular density\n"
        "c. heterogeneously dense\nd. extremely dense\nBI-RADS 1"
    )
    assert report.density is None


def test_evidence_indexes_the_input() -> None:
    text = "BREAST COMPOSITION: <b>Heterogeneously dense</b> (ACR density C)."
    report = normalize(text)
    assert report.density is not None
    ev = report.density.evidence
    assert text[ev.start : ev.end] == ev.text
    assert ev.text in ("ACR density C", "density C")


def test_codes_make_descriptions_moot_without_changing_the_result() -> None:
    from mammosearch.nlp._text import prepare
    from mammosearch.nlp.density import DensityExtractor, resolve_density
    from mammosearch.nlp.sections import Segmenter

    for text in [
        "Heterogeneously dense (ACR C). The breasts are dense.",
        "Predominantly fibro fatty breast parenchyma (ACR B)",
        "Compared to prior (ACR D): scattered fibroglandular densities.",
        "RIGHT: ACR C\nLEFT: extremely dense",
    ]:
        prepared = prepare(text)
        seg = Segmenter()(prepared.text, prepared.folded)
        extractor = DensityExtractor()
        full = resolve_density(extractor(prepared.text, prepared.folded, seg))
        quick = resolve_density(extractor(prepared.text, prepared.folded, seg, complete=False))
        assert (full.overall, full.by_side) == (quick.overall, quick.by_side)

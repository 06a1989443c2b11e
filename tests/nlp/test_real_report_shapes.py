"""The failure classes of issue 18, each on sentences written for these tests (EN and ES).

None of these sentences comes from a shared report; they are made in the same shapes.
"""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize
from mammosearch.records import NormalizedReport

Key = tuple[str, str | None, bool]


def keys(text: str) -> set[Key]:
    return {
        (f.type.value, f.laterality.value if f.laterality else None, f.negated)
        for f in normalize(text).findings
    }


def report(text: str) -> NormalizedReport:
    return normalize(text)


# 1. A present finding is never swallowed by a negated one ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Left: no suspicious calcifications or masses. Right: a new group of amorphous "
            "calcifications at 2 o'clock, middle depth, 4 mm.",
            {
                ("calcification", "left", True),
                ("mass", "left", True),
                ("calcification", "right", False),
            },
        ),
        (
            "Right breast: no calcifications. Left breast: fine linear calcifications in a "
            "segmental distribution.",
            {("calcification", "right", True), ("calcification", "left", False)},
        ),
        (
            "Mama derecha: sin nódulos ni microcalcificaciones. Mama izquierda: grupo de "
            "microcalcificaciones pleomorfas de 7 mm en el CSE.",
            {
                ("mass", "right", True),
                ("calcification", "right", True),
                ("calcification", "left", False),
            },
        ),
        (
            "No se observan calcificaciones sospechosas. Microcalcificaciones redondas dispersas "
            "bilaterales y unas anulares en la mama izquierda.",
            {
                ("calcification", None, True),
                ("calcification", "bilateral", False),
                ("calcification", "left", False),
            },
        ),
        (
            "Vascular calcifications in both breasts and rim ones in the right breast.",
            {("calcification", "bilateral", False), ("calcification", "right", False)},
        ),
    ],
)
def test_present_and_negated_mentions_stay_apart(text: str, expected: set[Key]) -> None:
    assert keys(text) == expected


def test_the_present_finding_keeps_its_own_descriptors_and_place() -> None:
    r = report(
        "Left: no suspicious calcifications. Right: new grouped amorphous calcifications at "
        "10 o'clock, 6 mm."
    )
    (present,) = [f for f in r.findings if not f.negated]
    (absent,) = [f for f in r.findings if f.negated]
    assert present.laterality.value == "right" and present.location.clock == "10:00"
    assert [v.value for v in present.descriptors.calc_morphology] == ["amorphous"]
    assert absent.descriptors.calc_morphology == () and absent.location.clock is None


# 2. List negation covers every item ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Neither breast shows a dominant mass lesion, a focal asymmetry or an area of "
            "distortion.",
            {
                ("mass", "bilateral", True),
                ("asymmetry", "bilateral", True),
                ("architectural_distortion", "bilateral", True),
            },
        ),
        (
            "There is no suspicious-appearing mass, cluster of calcifications or area of "
            "architectural distortion.",
            {
                ("mass", None, True),
                ("calcification", None, True),
                ("architectural_distortion", None, True),
            },
        ),
        (
            "No skin thickening or retraction.",
            {("skin_thickening", None, True), ("skin_retraction", None, True)},
        ),
        ("Nipples: no inversion or discharge.", {("nipple_retraction", None, True)}),
        (
            "Sin engrosamiento ni retracción cutánea.",
            {("skin_thickening", None, True), ("skin_retraction", None, True)},
        ),
        (
            "No se visualizan nódulos dominantes, así como tampoco microcalcificaciones.",
            {("mass", None, True), ("calcification", None, True)},
        ),
        (
            "En el control actual ya no se identifica el nódulo derecho, así como tampoco la "
            "adenopatía axilar derecha descrita.",
            {("mass", "right", True), ("lymph_node", "right", True)},
        ),
        (
            "No hay nódulo dominante o lesión espiculada microcalcificaciones redondas dispersas.",
            {("mass", None, True), ("calcification", None, False)},
        ),
    ],
)
def test_list_negation_covers_every_item(text: str, expected: set[Key]) -> None:
    assert keys(text) == expected


# 3. Normal nodes and axillae are a negated lymph node ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Nodes in both axillae are of normal appearance.",
        "Unremarkable axillae.",
        "No axillary adenopathy of note.",
        "Las regiones axilares incluidas en el estudio se presentan libres.",
        "Ganglios axilares de aspecto normal.",
        "Normal-appearing axillary lymph nodes bilaterally.",
    ],
)
def test_normal_nodes_are_a_negated_lymph_node(text: str) -> None:
    found = keys(text)
    assert found and all(k[0] == "lymph_node" and k[2] for k in found), found


@pytest.mark.parametrize(
    "text",
    [
        "Benign-appearing axillary nodes on the left.",
        "Adenopatías en la axila izquierda.",
        "Imagen nodular con carácter ganglionar en la región axilar derecha.",
    ],
)
def test_a_node_described_as_a_finding_stays_present(text: str) -> None:
    found = keys(text)
    assert found and all(k[0] == "lymph_node" and not k[2] for k in found), found


# 4. Intramammary nodes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "side"),
    [
        (
            "En el CSI de la mama izquierda se ve una imagen nodular ovalada, isodensa, de 4 mm, "
            "con caracteres de ganglio linfático intramamario.",
            "left",
        ),
        (
            "Two small oval circumscribed nodular opacities in the right upper outer quadrant, "
            "3 and 5 mm, with the characteristics of intramammary lymph nodes.",
            "right",
        ),
        ("Nódulo pequeño con aspecto de GLI en el CSE derecho.", "right"),
        ("An oval mass in the left breast, consistent with an intramammary lymph node.", "left"),
    ],
)
def test_a_nodular_image_with_node_features_is_one_lymph_node(text: str, side: str) -> None:
    assert keys(text) == {("lymph_node", side, False)}


def test_characterised_as_takes_other_types_too() -> None:
    assert keys(
        "Imágenes tubulares retroareolares en ambas mamas, con aspecto de ductos dilatados."
    ) == {("dilated_duct", "bilateral", False)}
    assert keys("Nodular images in the left breast compatible with oil cysts.") == {
        ("other", "left", False)
    }


# 5. Qualifiers kept in the rendering ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        (
            "No suspicious calcifications. Scattered punctate calcifications in both breasts.",
            "No suspicious calcifications",
        ),
        (
            "No se observan microcalcificaciones sospechosas de malignidad. Calcificaciones "
            "vasculares en ambas mamas.",
            "No suspicious calcifications",
        ),
        ("No abnormal microcalcification seen. Few benign calcifications.", "no abnormal"),
        ("No dominant mass.", "No dominant mass"),
        ("No calcifications.", "No calcifications"),
    ],
)
def test_negated_findings_keep_their_qualifier(text: str, rendered: str) -> None:
    assert rendered.lower() in report(text).standardized_text.lower()


# 6. Descriptors and locations bound to the right finding --------------------------------------


def test_a_lesion_keeps_its_place_and_contradictory_margins_warn() -> None:
    r = report(
        "A well-defined irregular soft opacity with spiculated margin and central "
        "microcalcification seen in the upper inner quadrant of the right breast."
    )
    mass = next(f for f in r.findings if f.type.value == "mass")
    calc = next(f for f in r.findings if f.type.value == "calcification")
    assert mass.location.quadrant is not None and mass.location.quadrant.value == "UIQ"
    assert calc.location.quadrant is None
    assert any(w.startswith("W205") for w in r.warnings)


def test_spanish_lesion_with_inner_calcifications_keeps_its_quadrant() -> None:
    r = report(
        "Nódulo irregular con microcalcificaciones en su interior, localizado en el cuadrante "
        "inferior externo de la mama izquierda."
    )
    mass = next(f for f in r.findings if f.type.value == "mass")
    assert mass.location.quadrant is not None and mass.location.quadrant.value == "LOQ"


@pytest.mark.parametrize(
    "text",
    [
        "Nódulo ovalado de márgenes circunscritos y espiculados en la mama derecha.",
        "Oval mass with circumscribed and indistinct margins in the left breast.",
    ],
)
def test_contradictory_margins_warn(text: str) -> None:
    assert any(w.startswith("W205") for w in report(text).warnings)


def test_a_side_statement_against_both_breasts_warns() -> None:
    r = report("No calcifications in either breast. Left breast: grouped amorphous calcifications.")
    assert any(w.startswith("W206") for w in r.warnings)
    r = report("No suspicious calcifications in either breast. Benign calcifications on the right.")
    assert not any(w.startswith("W206") for w in r.warnings)


# 7. Context and recommendations ---------------------------------------------------------------


def test_prior_work_up_is_not_stability() -> None:
    r = report(
        "En el CSE de la mama izquierda se observan calcificaciones amorfas agrupadas, ya "
        "magnificadas en el control de 2023. BI-RADS 4B."
    )
    calc = next(f for f in r.findings if f.type.value == "calcification")
    assert not calc.historical
    assert "stable" not in r.standardized_text.lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BI-RADS 2.\nRECOMENDACIONES:\n- Se sugiere controles.", "routine_screening"),
        (
            "CONCLUSIÓN: quistes según ecografía mamaria previa. BI-RADS 2.\n"
            "RECOMENDACIONES:\n- Se sugieren controles habituales.",
            "routine_screening",
        ),
        ("ultrasonido mamario hallazgos quiste simple birads 2", None),
        ("Ultrasound findings: simple cyst. BI-RADS 2.", None),
        ("BI-RADS 0. Se sugiere ecografía mamaria complementaria.", "additional_imaging"),
    ],
)
def test_recommendations(text: str, expected: str | None) -> None:
    r = report(text)
    assert (r.recommendation.value if r.recommendation else None) == expected


def test_ultrasound_statements_code_no_finding() -> None:
    assert keys("La ecografía del año pasado informó un quiste simple derecho. BI-RADS 2.") == set()
    assert keys("A simple cyst was seen on ultrasound in the right breast.") == set()
    assert keys(
        "Imágenes nodulares en la mama izquierda que, según ecografía previa, corresponderían a "
        "quistes."
    ) == {("mass", "left", False)}


def test_a_removed_thing_is_no_finding() -> None:
    assert keys("Antecedente de cirugía de mama axilar derecha.") == set()
    assert keys("History of excision of a fibroadenoma in the left breast.") == set()


# 8. Category spellings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Assessment code: 4.", "4"),
        ("Final assessment code 3 (probably benign).", "3"),
        ("Clasificación: 2.", "2"),
        ("Categorización final: 4.", "4"),
        ("[Assessment]: 5", "5"),
        ("Overall category:\n1", "1"),
        ("Categorisation: 2", "2"),
        ("Classification (ACR): 0", "0"),
        ("ASSESSMENT CATEGORY:\n3 - Probably benign", "3"),
    ],
)
def test_category_spellings(text: str, category: str) -> None:
    r = report(text)
    assert r.birads is not None and r.birads.category.value == category


def test_a_classification_of_something_else_is_no_category() -> None:
    assert report("Accessory breast tissue, type IV of the Kajava classification.").birads is None


# 9. Words that disagree with the letter ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "density"),
    [
        ("The breasts are extremely dense (ACR C/D).", "D"),
        ("Mamas extremadamente densas (ACR tipo C o D).", "D"),
        ("Scattered areas of fibroglandular density (ACR A-B).", "B"),
    ],
)
def test_atlas_words_choose_among_the_letters_with_a_warning(text: str, density: str) -> None:
    r = report(text)
    assert r.density is not None and r.density.category.value == density
    assert any(w.startswith("W104") for w in r.warnings)


@pytest.mark.parametrize(
    ("text", "density"),
    [
        ("Heterogeneously dense breasts (ACR B).", "B"),
        ("Mamas extremadamente densas (ACR tipo C).", "C"),
    ],
)
def test_a_single_letter_against_the_words_is_kept(text: str, density: str) -> None:
    """The real corpora label the letter ("(TIPO X)", "(ACR X)"), so a lone letter stands."""
    r = report(text)
    assert r.density is not None and r.density.category.value == density
    assert not any(w.startswith("W104") for w in r.warnings)


def test_agreeing_words_and_letter_do_not_warn() -> None:
    r = report("The breasts are heterogeneously dense (ACR C).")
    assert r.density is not None and r.density.category.value == "C"
    assert not any(w.startswith("W104") for w in r.warnings)


# 10. Names and label lines are never corrected into findings -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Informe firmado por la Dra. Ana Quispe. Sin hallazgos. BI-RADS 1.",
        "INFORME REALIZADO POR DRA. QUISPE. BI-RADS 1.",
        "Referring physician: Dr. Massey\nNo findings. BI-RADS 1.",
        "Radiologist: Nodal, J.\nBI-RADS 1.",
        "Tejido accesorio axilar (calsificación pendiente).",
    ],
)
def test_names_and_labels_are_not_findings(text: str) -> None:
    assert not any(k[0] in ("mass", "calcification", "lymph_node") for k in keys(text))


def test_real_typos_are_still_corrected() -> None:
    assert keys("Se observa un nodlo en la mama derecha.") == {("mass", "right", False)}
    assert keys("Grouped microcalcfications in the left breast.") == {
        ("calcification", "left", False)
    }


# More shapes: headers, interpretations, the ultrasound part ------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Axillae: Normal.", {("lymph_node", None, True)}),
        ("Axilas: libres.", {("lymph_node", None, True)}),
        ("The axillary lymph nodes are within normal limits.", {("lymph_node", None, True)}),
        (
            "Coarse popcorn calcification in the right breast, consistent with an involuting "
            "fibroadenoma.",
            {("calcification", "right", False)},
        ),
        (
            "Imagen nodular en mama izquierda, compatible con ganglio intramamario.",
            {("lymph_node", "left", False)},
        ),
    ],
)
def test_more_shapes(text: str, expected: set[Key]) -> None:
    assert keys(text) == expected


def test_the_ultrasound_part_of_a_combined_report_is_not_coded() -> None:
    text = (
        "MAMMOGRAPHY: No suspicious masses or calcifications. BI-RADS 2.\n\n"
        "ULTRASOUND:\nA 6 mm simple cyst at 3 o'clock in the left breast.\n"
    )
    assert ("mass", "left", False) not in keys(text)
    blob = (
        "mamografia bilateral sin nodulos ultrasonido mamario hallazgos quiste simple en la "
        "mama izquierda birads 2"
    )
    assert keys(blob) == {("mass", "bilateral", True)}

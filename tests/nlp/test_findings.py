"""Findings: types, descriptors, typos, laterality, location, context, in English and Spanish."""

from __future__ import annotations

from typing import Any

import pytest

from mammosearch.nlp import normalize
from mammosearch.records import Finding


def findings(text: str) -> list[Finding]:
    return list(normalize(text).findings)


def summary(text: str) -> set[tuple[str, str | None, bool]]:
    return {
        (f.type.value, f.laterality.value if f.laterality else None, f.negated)
        for f in findings(text)
    }


def one(text: str) -> Finding:
    (found,) = [f for f in findings(text) if not f.negated]
    return found


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("There is a mass.", "mass"),
        ("A 9 mm nodule.", "mass"),
        ("Nodular density in the upper outer quadrant.", "mass"),
        ("Se observa un nódulo.", "mass"),
        ("Imagen nodular de 8 mm.", "mass"),
        ("Well-defined soft opacity.", "mass"),
        ("A simple cyst.", "mass"),
        ("Grouped microcalcifications.", "calcification"),
        ("Microcalcificaciones agrupadas.", "calcification"),
        ("Focal asymmetry.", "asymmetry"),
        ("Asymmetrical increased density.", "asymmetry"),
        ("Densidad asimétrica.", "asymmetry"),
        ("Architectural distortion.", "architectural_distortion"),
        ("Distorsión de la arquitectura.", "architectural_distortion"),
        ("Intramammary lymph node.", "lymph_node"),
        ("Axillary adenopathy seen.", "lymph_node"),
        ("IMLN in the upper outer quadrant.", "lymph_node"),
        ("Ganglio intramamario.", "lymph_node"),
        ("Imágenes nodulares con caracteres ganglionares en la región axilar.", "lymph_node"),
        ("Imagen nodular visualizada parcialmente, con carácter ganglionar.", "lymph_node"),
        ("Skin thickening.", "skin_thickening"),
        ("Edema pattern.", "skin_thickening"),
        ("Edematous changes of the breast.", "skin_thickening"),
        ("Engrosamiento cutáneo.", "skin_thickening"),
        ("Skin retraction.", "skin_retraction"),
        ("Nipple retraction.", "nipple_retraction"),
        ("Pezón umbilicado.", "nipple_retraction"),
        ("Dilated ducts.", "dilated_duct"),
        ("Ductal extension toward the nipple.", "dilated_duct"),
        ("Ectasia ductal.", "dilated_duct"),
        ("Silicone implants.", "implant"),
        ("Prótesis mamaria.", "implant"),
        ("Surgical clips.", "post_surgical"),
        ("Post-operative change.", "post_surgical"),
        ("Cambios posquirúrgicos.", "post_surgical"),
        ("Scar from a TRAM flap.", "post_surgical"),
    ],
)
def test_finding_types(text: str, kind: str) -> None:
    assert one(text).type.value == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Irregular mass with spiculated margins.",
            {"shape": ["irregular"], "margin": ["spiculated"]},
        ),
        (
            "Oval circumscribed isodense mass.",
            {"shape": ["oval"], "margin": ["circumscribed"], "mass_density": ["equal"]},
        ),
        ("Round mass with ill-defined margins.", {"shape": ["round"], "margin": ["indistinct"]}),
        (
            "Lobulated mass, microlobulated margins.",
            {"shape": ["lobulated"], "margin": ["microlobulated"]},
        ),
        (
            "Oval mass with obscured margins, high density.",
            {"shape": ["oval"], "margin": ["obscured"], "mass_density": ["high"]},
        ),
        ("Fat-containing oval mass.", {"shape": ["oval"], "mass_density": ["fat_containing"]}),
        ("Lipoma.", {"mass_density": ["fat_containing"]}),
        (
            "Nódulo ovalado de márgenes circunscritos.",
            {"shape": ["oval"], "margin": ["circumscribed"]},
        ),
        (
            "Nódulo irregular espiculado hiperdenso.",
            {"shape": ["irregular"], "margin": ["spiculated"], "mass_density": ["high"]},
        ),
        ("Imagen nodular de bordes mal definidos.", {"margin": ["indistinct"]}),
        ("Lesión espiculada.", {"margin": ["spiculated"]}),
        (
            "Fine pleomorphic calcifications in a segmental distribution.",
            {"calc_morphology": ["fine_pleomorphic"], "calc_distribution": ["segmental"]},
        ),
        ("Fine linear branching calcifications.", {"calc_morphology": ["fine_linear"]}),
        ("Linear branching calcifications.", {"calc_morphology": ["fine_linear"]}),
        (
            "Amorphous calcifications, grouped.",
            {"calc_morphology": ["amorphous"], "calc_distribution": ["grouped"]},
        ),
        (
            "Cluster of punctate calcifications.",
            {"calc_morphology": ["punctate"], "calc_distribution": ["grouped"]},
        ),
        (
            "Scattered vascular calcifications.",
            {"calc_morphology": ["vascular"], "calc_distribution": ["diffuse"]},
        ),
        ("Coarse heterogeneous calcifications.", {"calc_morphology": ["coarse_heterogeneous"]}),
        ("Benign macrocalcification.", {"calc_morphology": ["coarse"]}),
        ("Popcorn calcifications.", {"calc_morphology": ["popcorn"]}),
        ("Rod-like secretory calcifications.", {"calc_morphology": ["rod_like"]}),
        ("Rim calcifications.", {"calc_morphology": ["rim"]}),
        ("Dystrophic calcifications.", {"calc_morphology": ["dystrophic"]}),
        ("Milk of calcium.", {"calc_morphology": ["milk_of_calcium"]}),
        (
            "Round calcifications in a regional distribution.",
            {"calc_morphology": ["round"], "calc_distribution": ["regional"]},
        ),
        (
            "Calcificaciones pleomórficas agrupadas.",
            {"calc_morphology": ["fine_pleomorphic"], "calc_distribution": ["grouped"]},
        ),
        (
            "Microcalcificaciones amorfas de distribución lineal.",
            {"calc_morphology": ["amorphous"], "calc_distribution": ["linear"]},
        ),
        ("Calcificaciones groseras heterogéneas.", {"calc_morphology": ["coarse_heterogeneous"]}),
        ("Developing asymmetry.", {"asymmetry": "developing"}),
        ("Global asymmetry.", {"asymmetry": "global"}),
        ("Asimetría focal.", {"asymmetry": "focal"}),
    ],
)
def test_descriptors(text: str, expected: dict[str, Any]) -> None:
    got = {k: v for k, v in one(text).descriptors.to_dict().items() if v and k != "size_mm"}
    assert got == expected


@pytest.mark.parametrize(
    ("text", "kind", "field", "value"),
    [
        ("Irregular mass with speculated margins.", "mass", "margin", "spiculated"),
        ("Oval circumsribed mass.", "mass", "margin", "circumscribed"),
        ("Focal asymmetrial density.", "asymmetry", None, None),
        ("Grouped mircocalcifications.", "calcification", "calc_distribution", "grouped"),
        ("Pleomorphic calcificaton.", "calcification", "calc_morphology", "fine_pleomorphic"),
        ("Architectural distorton.", "architectural_distortion", None, None),
        ("Nodulo espiculdo.", "mass", "margin", "spiculated"),
        (
            "Microcalcificaciones pleomorifcas.",
            "calcification",
            "calc_morphology",
            "fine_pleomorphic",
        ),
    ],
)
def test_typos_are_read(text: str, kind: str, field: str | None, value: str | None) -> None:
    found = one(text)
    assert found.type.value == kind
    if field:
        assert value in found.descriptors.to_dict()[field]


@pytest.mark.parametrize(
    "text",
    [
        "Se observa el mismo patrón alrededor de la zona.",  # "around" is not "round"
        "The patient speculated about her results.",
        "Clasificación BIRADS II.",
        "Modular design of the report.",
    ],
)
def test_common_words_are_not_corrected_into_findings(text: str) -> None:
    assert findings(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No suspicious masses, calcifications or architectural distortion.",
         {("mass", None, True), ("calcification", None, True), ("architectural_distortion", None, True)}),
        ("No se observan nódulos, distorsiones ni microcalcificaciones sospechosas.",
         {("mass", None, True), ("architectural_distortion", None, True), ("calcification", None, True)}),
        ("Sin evidencia de nódulos dominantes ni distorsión en la arquitectura.",
         {("mass", None, True), ("architectural_distortion", None, True)}),
        ("No hay nódulos.", {("mass", None, True)}),
        ("Negative for masses.", {("mass", None, True)}),
        ("Masses are not seen.", {("mass", None, True)}),
        ("No mass, but grouped calcifications are present.", {("mass", None, True), ("calcification", None, False)}),
        ("No hay nódulos, pero se observan calcificaciones.", {("mass", None, True), ("calcification", None, False)}),
        ("No mass. Calcifications are seen.", {("mass", None, True), ("calcification", None, False)}),
        ("Oval mass without calcifications.", {("mass", None, False), ("calcification", None, True)}),
        ("no hay nodulo dominante o lesion espiculada microcalcificaciones redondas dispersas",
         {("mass", None, True), ("calcification", None, False)}),
        ("The previously seen mass has resolved.", {("mass", None, True)}),
        ("Heterogeneously dense, which may obscure small masses.", set()),
        ("Mamas densas que podrían ocultar algunos nódulos pequeños.", set()),
    ],
)  # fmt: skip
def test_negation_scope(text: str, expected: set[tuple[str, str | None, bool]]) -> None:
    assert summary(text) == expected


@pytest.mark.parametrize(
    ("text", "uncertain", "historical"),
    [
        ("Possible architectural distortion.", True, False),
        ("Probable intramammary lymph node.", True, False),
        ("A mass cannot be excluded.", True, False),
        ("Posible nódulo.", True, False),
        ("No se puede descartar distorsión de la arquitectura.", True, False),
        ("Stable oval mass.", False, True),
        ("The mass is unchanged since 2019.", False, True),
        ("Nódulo sin cambios respecto a estudio previo.", False, True),
        ("Previously biopsied calcifications.", False, True),
        ("The asymmetry in the left breast persists.", False, True),
        # persisting on spot compression views says it is real, not that it was seen before
        (
            "The focal asymmetry in the right breast persists on spot compression views.",
            False,
            False,
        ),
        (
            "Asimetría focal en mama derecha, que persiste en las proyecciones localizadas.",
            False,
            False,
        ),
        ("Persistent focal asymmetry, unchanged since 2019.", False, True),
        # a new finding, whatever the comparison around it
        ("In the right breast there is a 5 mm round mass, new since 2023.", False, False),
        ("A new 9 mm irregular mass compared with the prior study.", False, False),
        ("Oval mass at 2 o'clock, not present on the prior examination.", False, False),
        ("Nódulo de nueva aparición respecto al estudio previo.", False, False),
        ("Microcalcificaciones agrupadas nuevas en relación con el estudio previo.", False, False),
        ("A mass is redemonstrated at 10 o'clock.", False, True),
        ("Re-demonstrated amorphous calcifications.", False, True),
        ("Oval mass.", False, False),
    ],
)
def test_uncertain_and_historical(text: str, uncertain: bool, historical: bool) -> None:
    found = one(text)
    assert (found.uncertain, found.historical) == (uncertain, historical)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RIGHT BREAST: Oval mass.\nLEFT BREAST: No mass.", {("mass", "right", False), ("mass", "left", True)}),
        ("Mama izquierda: nódulo ovalado.", {("mass", "left", False)}),
        ("MD: nódulo.\nMI: sin nódulos.", {("mass", "right", False), ("mass", "left", True)}),
        ("Mass in the right breast, calcifications in the left breast.", {("mass", "right", False), ("calcification", "left", False)}),
        ("Left breast mass.", {("mass", "left", False)}),
        ("Ganglio axilar izquierdo.", {("lymph_node", "left", False)}),
        ("Calcificaciones gruesas bilaterales.", {("calcification", "bilateral", False)}),
        ("No masses in either breast.", {("mass", "bilateral", True)}),
        ("Benign calcifications in both breasts.", {("calcification", "bilateral", False)}),
        ("En ambas mamas se observan calcificaciones.", {("calcification", "bilateral", False)}),
        ("Right breast: no mass. Left breast: no mass.", {("mass", "bilateral", True)}),
        ("LEFT DIAGNOSTIC MAMMOGRAM\nOval mass at 2 o'clock.", {("mass", "left", False)}),
        # "another" stands for a second finding of the kind just named, on the side it names
        ("There is an oval mass in the right breast and another in the left breast.", {("mass", "right", False), ("mass", "left", False)}),
        ("Nódulo ovalado en la mama derecha y otro en la mama izquierda.", {("mass", "right", False), ("mass", "left", False)}),
        ("An oval mass and another irregular mass in the right breast.", {("mass", "right", False)}),
        # abbreviations of other house styles, as headers and inline
        ("R breast: one-view asymmetry.\nL breast: no mass.", {("asymmetry", "right", False), ("mass", "left", True)}),
        ("Bilat: secretory calcifications.", {("calcification", "bilateral", False)}),
        ("R BREAST:\nOval mass.\n\nMAMA IZDA:\nNo mass.", {("mass", "right", False), ("mass", "left", True)}),
        ("Mama dcha: quiste simple.\nMama izda: sin nódulos.", {("mass", "right", False), ("mass", "left", True)}),
        ("Mass in the RT breast. Calcifications in the L breast.", {("mass", "right", False), ("calcification", "left", False)}),
        ("Nódulo de 12 mm en CSE de MI. Quiste en mama dcha. Ganglio axilar izdo.",
         {("mass", "left", False), ("mass", "right", False), ("lymph_node", "left", False)}),
        ("Microcalcificaciones en la MD.", {("calcification", "right", False)}),
        ("En MI, cambios postquirúrgicos con clip metálico.", {("post_surgical", "left", False)}),
        ("Mass discussed with Jane Doe, MD.", {("mass", None, False)}),
        # a present finding named again without its side or anything of its own is the placed one
        ("Right breast: amorphous calcifications.\nLeft breast: negative.\nImpression: stereotactic biopsy of the calcifications is recommended.",
         {("calcification", "right", False)}),
        # one with a place of its own stays
        ("A mass in the upper inner quadrant, with circumscribed margins; an irregular mass in the left axillary tail.",
         {("mass", None, False), ("mass", "left", False)}),
        ("En mi opinión, nódulo probablemente benigno.", {("mass", None, False)}),
        # a unilateral exam named in a line before the findings, not only in the title
        ("Paciente: Ana Pérez, 32 años.\nEstudio: mamografía unilateral izquierda.\nMasa de 30 mm. Engrosamiento de la piel.",
         {("mass", "left", False), ("skin_thickening", "left", False)}),
        ("Paciente: Ana.\nMamografía bilateral.\nMasa de 30 mm.", {("mass", None, False)}),
        # a finding that opens the report is no title naming the exam's side
        ("Mass in the right breast. Lumpectomy scar.", {("mass", "right", False), ("post_surgical", None, False)}),
        # a side header with text on its line covers that line; on a line of its own, the paragraph
        ("Mama izquierda: ganglio intramamario.\nNo se identifican microcalcificaciones.",
         {("lymph_node", "left", False), ("calcification", None, True)}),
        ("LEFT BREAST:\nOval mass.\nNo calcifications.", {("mass", "left", False), ("calcification", "left", True)}),
    ],
)  # fmt: skip
def test_laterality(text: str, expected: set[tuple[str, str | None, bool]]) -> None:
    assert summary(text) == expected


@pytest.mark.parametrize(
    ("text", "quadrant", "clock", "depth"),
    [
        ("Mass in the upper outer quadrant at 10 o'clock, middle depth.", "UOQ", "10:00", "middle"),
        ("Mass in the UIQ, posterior depth.", "UIQ", None, "posterior"),
        ("Mass at 2-3 o'clock.", None, "2:30", None),
        ("Mass in the lower inner quadrant.", "LIQ", None, None),
        ("Subareolar mass.", "retroareolar", None, None),
        ("Mass in the axillary tail.", "axillary_tail", None, None),
        ("Nódulo en el CSE de la mama derecha, tercio posterior.", "UOQ", None, "posterior"),
        ("Nódulo en cuadrante inferior interno, a las 7.", "LIQ", "7:00", None),
        ("Nódulo en QSE.", "UOQ", None, None),
        ("Nódulo retroareolar.", "retroareolar", None, None),
        ("Microcalcificaciones en UCS de mama izquierda.", None, "12:00", None),
        ("Nódulo en UCExt de la mama derecha.", None, "9:00", None),
        ("Nódulo en UCExt de la mama izquierda.", None, "3:00", None),
    ],
)
def test_location(text: str, quadrant: str | None, clock: str | None, depth: str | None) -> None:
    loc = one(text).location
    assert (
        loc.quadrant.value if loc.quadrant else None,
        loc.clock,
        loc.depth.value if loc.depth else None,
    ) == (quadrant, clock, depth)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("A 12 mm oval mass.", 12.0),
        ("Irregular mass measuring 1.4 cm.", 14.0),
        ("Mass of 2.3 x 1.5 cm.", 23.0),
        ("Nódulo de 8 mm.", 8.0),
        ("Mass 8 cm from the nipple.", None),
    ],
)
def test_size(text: str, size: float | None) -> None:
    assert one(text).descriptors.size_mm == size


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        # a finding begins at the descriptors written before it: the size is the cluster's
        ("A 16 mm cluster of amorphous calcifications next to a mass.", {"calcification": 16.0, "mass": None}),
        ("Un grupo de 16 mm de microcalcificaciones amorfas junto a un nódulo.", {"calcification": 16.0, "mass": None}),
        ("A 16 mm mass next to a cluster of amorphous calcifications.", {"calcification": None, "mass": 16.0}),
        # a size between a lesion and what it carries ("con ..."): the lesion's
        ("Imagen nodular de contornos espiculados, de 15 mm, con microcalcificaciones finas en su interior.",
         {"mass": 15.0, "calcification": None}),
        ("Irregular mass, 15 mm, with associated pleomorphic calcifications.", {"mass": 15.0, "calcification": None}),
        ("Oval mass with a 3 mm coarse calcification.", {"mass": None, "calcification": 3.0}),
    ],
)  # fmt: skip
def test_size_of_which_finding(text: str, sizes: dict[str, float | None]) -> None:
    assert {f.type.value: f.descriptors.size_mm for f in findings(text)} == sizes


def test_calcification_abbreviations() -> None:
    assert summary("Left: 4 mm group of punctate calcs UOQ. No suspicious microcalcs.") == {
        ("calcification", "left", False),
        ("calcification", "left", True),  # "Left:" heads the line
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "new" is the adjective of the finding next to it, looking back of the nearest only
        ("Nódulo de 8 mm sin cambios, microcalcificaciones nuevas.",
         {("mass", True), ("calcification", False)}),
        ("Stable oval mass at 2 o'clock, new calcifications at 5 o'clock.",
         {("mass", True), ("calcification", False)}),
        ("New masses and calcifications compared with the prior study.",
         {("mass", False), ("calcification", False)}),
    ],
)  # fmt: skip
def test_new_findings_are_not_historical(text: str, expected: set[tuple[str, bool]]) -> None:
    assert {(f.type.value, f.historical) for f in findings(text)} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a structured report: each finding type a label, its value "none"
        ("Mass: none. Calcifications: none. Architectural distortion: not seen. Asymmetry: nil.",
         {("mass", None, True), ("calcification", None, True),
          ("architectural_distortion", None, True), ("asymmetry", None, True)}),
        ("Masses and calcifications: not seen.", {("mass", None, True), ("calcification", None, True)}),
        ("Nódulos: no. Microcalcificaciones: no se observan. Distorsión: no.",
         {("mass", None, True), ("calcification", None, True), ("architectural_distortion", None, True)}),
        # nodes described as normal are a negated node; nodes seen and described as benign are
        # nodes (the convention of ../shared's findings gold: "few benign looking axillary nodes
        # seen" is a node)
        ("Ganglios intramamarios en ambas mamas, de morfología normal.", {("lymph_node", "bilateral", True)}),
        ("Bilateral axillae: few subcentimetric lymph nodes with preserved fatty hilum.",
         {("lymph_node", "bilateral", False)}),
        ("Left axillary nodes without suspicious features.", {("lymph_node", "left", False)}),
        # "not seen before" says new, not absent
        ("Asimetría focal en la mama izquierda, no visualizada en estudios previos (asimetría en desarrollo).",
         {("asymmetry", "left", False)}),
        ("Focal asymmetry in the left breast, not seen on prior studies (a developing asymmetry).",
         {("asymmetry", "left", False)}),
        ("Enlarged left axillary node with loss of fatty hilum.", {("lymph_node", "left", False)}),
        ("Ganglios axilares izquierdos sin características patológicas.", {("lymph_node", "left", True)}),
        ("Ganglios axilares normales.", {("lymph_node", None, True)}),
        ("Normal axillae.", {("lymph_node", None, True)}),
        ("Se observan adenomegalias axilares izquierdas, la mayor de 25 mm.", {("lymph_node", "left", False)}),
        # a sentinel node biopsy is surgery, not a node; a space-occupying lesion is a mass
        ("Surgical clips in the left axilla from prior sentinel node biopsy.", {("post_surgical", "left", False)}),
        ("Lesión de ocupación de espacio en la mama izquierda, de 2 cm.", {("mass", "left", False)}),
        # dictation without a full stop: each line is a statement
        ("se observa nodulo de 7 mm en mama derecha\nno se observan microcalcificaciones ni distorsion\nbirads 3",
         {("mass", "right", False), ("calcification", None, True), ("architectural_distortion", None, True)}),
        # an older word for a mass: a density with a shape or margin
        ("Within the upper outer left breast there is a circumscribed density measuring 1 cm.", {("mass", "left", False)}),
        # what an ultrasound shows is not coded (DESIGN): named, or said in its own words
        ("Breast ultrasound was subsequently performed, which demonstrated an oval mass at 2 o'clock.", set()),
        ("Additional ultrasonographic imaging of the left breast demonstrates a cyst.", set()),
        ("Oval mass in the left breast.\nA 5 mm hypoechoic mass in the right breast at 10 o'clock.",
         {("mass", "left", False)}),
        # a paragraph that opens with an ultrasound is about it to its end; one that recommends
        # an ultrasound is not
        ("Oval mass in the left breast.\n\nBilateral breast ultrasound was performed, which showed a cyst.\n"
         "This may represent a lipoma in the right breast.\n\nCalcifications in the right breast.",
         {("mass", "left", False), ("calcification", "right", False)}),
        ("Oval mass in the left breast.\n\nUltrasound is recommended for the mass in the right breast.",
         {("mass", "left", False), ("mass", "right", False)}),
        # "SOL" (a space-occupying lesion) of Indian reports
        ("No SOL seen in either breast.", {("mass", "bilateral", True)}),
        # a lesion's skin and nipple signs said in the next sentence take its side
        ("Nódulo espiculado de 18 mm en mama izquierda. Engrosamiento y retracción de la piel.",
         {("mass", "left", False), ("skin_thickening", "left", False), ("skin_retraction", "left", False)}),
        ("Mass in the right breast.\n\nSkin thickening.", {("mass", "right", False), ("skin_thickening", None, False)}),
        ("Masses in both breasts. Nipple retraction.", {("mass", "bilateral", False), ("nipple_retraction", None, False)}),
        # "tampoco" with its verb, and a list without punctuation
        ("No hay masas. Tampoco se observan asimetrías.", {("mass", None, True), ("asymmetry", None, True)}),
        ("no suspicious mass calcification or architectural distortion either breast",
         {("mass", "bilateral", True), ("calcification", "bilateral", True), ("architectural_distortion", "bilateral", True)}),
        # a label whose value names its finding only negated
        ("Lymph nodes: no axillary adenopathy.", {("lymph_node", None, True)}),
        ("Lymph nodes: axillary adenopathy on the left.", {("lymph_node", "left", False)}),
        # a bare "no" that starts a statement negates nothing before the colon
        ("Left breast mass: no change since 2020.", {("mass", "left", False)}),
        ("Calcifications: benign, scattered. Findings: no mass.",
         {("calcification", None, False), ("mass", None, True)}),
    ],
)  # fmt: skip
def test_wording_of_other_house_styles(
    text: str, expected: set[tuple[str, str | None, bool]]
) -> None:
    """Structured labels, normal-node wording, US-only statements, dictation without
    punctuation: what the hand-written house-style sets (data/house_styles) found missing."""
    assert summary(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Recommend routine annual screening mammography.", "routine_screening"),
        ("Se sugiere control anual.", "routine_screening"),
        ("Short-interval follow-up in 6 months.", "short_interval_follow_up"),
        ("Control en 6 meses.", "short_interval_follow_up"),
        ("Se sugiere control ecográfico en 6 meses.", "short_interval_follow_up"),
        ("BI-RADS 0 - mag views.", "additional_imaging"),
        ("Additional views and ultrasound are recommended.", "additional_imaging"),
        ("Se sugiere correlación con ecografía mamaria.", "additional_imaging"),
        ("Ultrasound-guided core biopsy is recommended.", "biopsy"),
        ("Se sugiere caracterización histológica de las calcificaciones.", "biopsy"),
        ("Clinical correlation is recommended.", "clinical_correlation"),
        ("Correlación clínica.", "clinical_correlation"),
        ("No biopsy is needed. Routine screening.", "routine_screening"),
        (
            "HISTORY: Status post biopsy.\nIMPRESSION: Annual screening mammogram.",
            "routine_screening",
        ),
        ("Negative mammogram.", None),
    ],
)
def test_recommendation(text: str, expected: str | None) -> None:
    found = normalize(text).recommendation
    assert (found.value if found else None) == expected


def test_evidence_spans_index_the_input_through_markup() -> None:
    text = "<p>RIGHT BREAST: <b>spiculated</b> mass &amp; pleomorphic calcifications</p>"
    for f in findings(text):
        assert text[f.evidence.start : f.evidence.end] == f.evidence.text


def test_findings_render_in_the_standardized_text() -> None:
    report = normalize(
        "RIGHT BREAST: 14 mm irregular spiculated mass at 10 o'clock. "
        "LEFT BREAST: no masses or calcifications. BI-RADS 5."
    )
    assert "Right breast: Irregular mass, with spiculated margins, 14 mm, at 10:00." in (
        report.standardized_text
    )
    assert "Left breast: No mass or calcifications." in report.standardized_text


def test_suspicious_finding_with_low_category_warns() -> None:
    report = normalize("Irregular mass with spiculated margins. BI-RADS 2.")
    assert any(w.startswith("W203") for w in report.warnings)
    report = normalize("No masses or calcifications. BI-RADS 5.")
    assert any(w.startswith("W204") for w in report.warnings)


@pytest.mark.parametrize(
    ("text", "kind", "asymmetry", "negated"),
    [
        (
            "A focal asymmetry in the upper outer quadrant, not seen on CC view.",
            "asymmetry",
            "focal",
            False,
        ),
        ("Asymmetric breast tissue.", "asymmetry", "global", False),
        ("Focal area of increased density.", "asymmetry", "focal", False),
        ("Calcifications are not seen.", "calcification", None, True),
    ],
)
def test_view_qualifiers_and_cbis_wording(
    text: str, kind: str, asymmetry: str | None, negated: bool
) -> None:
    (found,) = findings(text)
    assert (found.type.value, found.negated) == (kind, negated)
    assert (found.descriptors.asymmetry.value if found.descriptors.asymmetry else None) == asymmetry

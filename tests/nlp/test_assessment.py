"""BI-RADS assessment: every way of writing it, and the mentions that are not the current one."""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize


def category(text: str) -> str | None:
    report = normalize(text)
    return report.birads.category.value if report.birads else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BI-RADS: 1 Negative", "1"),
        ("BIRADS-3", "3"),
        ("Categoría BI-RADS 2", "2"),
        ("Clasificación BIRRADS II.", "2"),
        ("birads : 4", "4"),
        ("Bi-Rads - 4c", "4C"),
        ("BI-RADS 4 A", "4A"),
        ("BI-RADS IVb", "4B"),
        ("BI-RADS IV-C", "4C"),
        ("BI-RADS® 5", "5"),
        ("BI-RADS ® 0 (según la ACR).", "0"),
        ("Bi-rads 6 (según la ACR).", "6"),
        ("ACR BI-RADS Assessment Category 0, incomplete.", "0"),
        ("BIRADS Category: 4C - High suspicion for malignancy", "4C"),
        ("BI-RADS category four.", "4"),
        ("BI-RADS cero.", "0"),
        ("Clasificacion BIRADS I.", "1"),
        ("BI-RADS III", "3"),
        ("BI-RADS: Benign.", "2"),
        ("Final assessment: Probably benign.", "3"),
        ("ASSESSMENT: Category 3 - Probably benign", "3"),
        ("IMPRESSION: BI-RADS 2 - Benign.", "2"),
        ("birads 2    acr c", "2"),
        ("B.I.R.A.D.S. 3", "3"),
        # the most worrisome current statement wins (atlas order)
        ("BIRADS: 3 and 5", "5"),
        ("BIRADS: 4b\nsoft opacity (BIRADS-4a)", "4B"),
        ("BI-RADS 6. BI-RADS 0.", "0"),
        ("BI-RADS 4. Lesion A: BI-RADS 4A.", "4A"),
        # "4 a" is 4A only when the letter is one
        ("birads 4 a la derecha", "4"),
        ("BI-RADS 4 A LA DERECHA", "4"),
        # HL7, HTML, markdown
        ("IMPRESSION:\\.br\\BI-RADS: 2", "2"),
        ("<li><b>BI-RADS 2 (Benign Finding):</b> cyst</li>", "2"),
        ("**BI-RADS:** 3", "3"),
    ],
)
def test_stated_category(text: str, expected: str) -> None:
    assert category(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # prior exam
        ("Comparado con estudio anterior BI-RADS 2. Actualmente BI-RADS 3.", "3"),
        ("Estudio previo BI-RADS 2 hace 12 meses. CONCLUSION: BI-RADS 0.", "0"),
        ("Prior mammogram 2019 was BI-RADS 3. Current BI-RADS 2.", "2"),
        ("COMPARISON: 2021 exam, BI-RADS 4A.\nIMPRESSION: BI-RADS 2.", "2"),
        ("CLINICAL HISTORY: follow-up of BI-RADS 3 mass.\nIMPRESSION: BI-RADS 2", "2"),
        ("Previous BI-RADS 3, now BI-RADS 2.", "2"),
        # negated
        ("Los hallazgos no son sugerentes de BI-RADS 4. Conclusión: BI-RADS 2", "2"),
        ("Findings are not consistent with BI-RADS 4. BI-RADS 3.", "3"),
        ("corresponde a BI-RADS 2. Los hallazgos no son sugerentes de BI-RADS 4.", "2"),
        # explanatory and teaching
        ("Según el sistema BI-RADS 0 indica estudio incompleto. CONCLUSION: BI-RADS 3", "3"),
        ("BI-RADS 3 lesions have less than 2% risk of malignancy. BI-RADS 4", "4"),
        # templates and legends
        ("BI-RADS: {0 | 1 | 2 | 3 | 4 | 5 | 6}. IMPRESSION: BI-RADS 1", "1"),
        ("BI-RADS 1/2/3/4/5 (choose). Final: BI-RADS 2.", "2"),
        ("BI-RADS 0: incomplete. BI-RADS 1: negative. BI-RADS 2: benign. Result: BI-RADS 4A", "4A"),
        # not an assessment
        ("BI-RADS 5th edition lexicon. BI-RADS 1.", "1"),
        ("Breast density: category 3. BI-RADS 2", "2"),
    ],
)
def test_only_the_current_category_counts(text: str, expected: str) -> None:
    assert category(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "No BI-RADS category was assigned.",
        "Estudio previo BI-RADS 2 hace 12 meses.",
        "BI-RADS: ___",
        "BI-RADS: {0 | 1 | 2 | 3 | 4 | 5 | 6}",
        "The BI-RADS atlas, 2013.",
        "Normal mammogram.",
        "",
    ],
)
def test_no_current_category(text: str) -> None:
    assert category(text) is None


def test_explanation_is_used_when_nothing_else_is_stated() -> None:
    report = normalize("BI-RADS 0 indica estudio incompleto; se sugiere ecografía.")
    assert report.birads is not None and report.birads.category.value == "0"
    assert any(w.startswith("W201") for w in report.warnings)


def test_alternatives_keep_the_worst_with_a_warning() -> None:
    report = normalize("BI-RADS 3 or 4.")
    assert report.birads is not None and report.birads.category.value == "4"
    assert any(w.startswith("W202") for w in report.warnings)


@pytest.mark.parametrize(
    ("text", "overall", "sides"),
    [
        ("Right breast: BI-RADS 2. Left breast: BI-RADS 4A.", "4A", {"right": "2", "left": "4A"}),
        ("MAMA DERECHA: BI-RADS 2\nMAMA IZQUIERDA: BI-RADS 5", "5", {"right": "2", "left": "5"}),
        ("BI-RADS derecha 1, izquierda 3", "3", {"right": "1", "left": "3"}),
        ("BI-RADS 4A left breast. BI-RADS 2 right breast.", "4A", {"left": "4A", "right": "2"}),
        ("MD: BI-RADS 3\nMI: BI-RADS 1", "3", {"right": "3", "left": "1"}),
        (
            "BI-RADS 3 (probablemente benigno) para la mama izquierda y BI-RADS 1 para la derecha.",
            "3",
            {"left": "3", "right": "1"},
        ),
        ("BI-RADS 2 both breasts.", "2", {}),
        ("linfonodo intramamario izquierdo birads 2", "2", {}),
    ],
)
def test_per_side_categories(text: str, overall: str, sides: dict[str, str]) -> None:
    report = normalize(text)
    assert report.birads is not None and report.birads.category.value == overall
    assert {k.value: v.value for k, v in report.birads_by_side.items()} == sides


def test_contradiction_warns_and_keeps_stated() -> None:
    report = normalize("Irregular mass with spiculated margins in the right breast. BI-RADS 2.")
    assert report.birads is not None and report.birads.category.value == "2"
    assert any(w.startswith("W203") for w in report.warnings)
    clean = normalize("No spiculated masses or suspicious calcifications. BI-RADS 1.")
    assert not any(w.startswith("W203") for w in clean.warnings)


def test_evidence_spans_the_statement() -> None:
    text = "IMPRESSION: Suspicious.\n<b>BI-RADS 4B</b> - biopsy."
    report = normalize(text)
    assert report.birads is not None
    ev = report.birads.evidence
    assert ev.text == "BI-RADS 4B" and text[ev.start : ev.end] == ev.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "MAMOGRAFÍA: BI-RADS 0.\nECOGRAFÍA: quiste simple.\n"
            "En confrontación mamográfica y ecográfica, corresponde a BI-RADS 2.",
            "2",
        ),  # fmt: skip
        ("Screening: BI-RADS 0. After ultrasound the mass is a cyst: BI-RADS 2.", "2"),
        ("Recategorizado a BI-RADS 3 tras ecografía. Inicialmente BI-RADS 0.", "3"),
        ("BI-RADS 4 (previo). BI-RADS 2.", "2"),
    ],
)
def test_a_final_statement_supersedes(text: str, expected: str) -> None:
    assert category(text) == expected

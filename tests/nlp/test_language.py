from __future__ import annotations

import pytest

from mammosearch.nlp import detect_language, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The breasts are heterogeneously dense. No suspicious masses.", "en"),
        ("Las mamas son heterogéneamente densas. No se observan nódulos.", "es"),
        ("MAMAS HETEROGENEAMENTE DENSAS, SIN NODULOS NI CALCIFICACIONES SOSPECHOSAS", "es"),
        ("mamografia bilateral paciente de 57 anos sin lesiones sospechosas", "es"),
        ("negative bilateral screening mammogram no suspicious findings", "en"),
        ("BIRADS 2 ACR C", None),
        ("BI-RADS 4A", None),
        ("", None),
    ],
)
def test_detect_language(text: str, expected: str | None) -> None:
    assert detect_language(text) == expected


def test_mixed_report_gets_the_dominant_language_and_both_rule_sets() -> None:
    report = normalize(
        "Mamografía bilateral: mamas heterogéneamente densas, sin nódulos ni calcificaciones "
        "sospechosas en ninguna de las dos mamas. Impression: negative, BI-RADS 1."
    )
    assert report.language == "es"
    assert report.density is not None and report.density.category.value == "C"
    assert report.birads is not None and report.birads.category.value == "1"

"""The normalizer on several hundred generated EN/ES reports with known truth.

The generator's phrase bank (mammosearch/samples/phrasebank.json) is written independently of
the normalizer's lexicon; misspellings, case, accents, HL7/HTML wrapping, side headers, negation
lists and prior-exam statements vary.
"""

from __future__ import annotations

import pytest

from mammosearch.nlp import normalize_many
from mammosearch.nlp.evaluation import score_reports
from mammosearch.samples.reports import generate_reports


@pytest.fixture(scope="module")
def scores() -> dict[str, object]:
    reports = generate_reports(400, seed=2026)
    predicted = {r.id: r for r in normalize_many((s.id, s.text) for s in reports)}
    return score_reports([r.truth for r in reports], predicted).to_dict()


def test_density_and_category(scores: dict[str, object]) -> None:
    assert scores["density_accuracy"] >= 0.99
    assert scores["birads_accuracy"] >= 0.99


def test_findings_f1(scores: dict[str, object]) -> None:
    findings = scores["findings"]
    assert isinstance(findings, dict)
    assert findings["f1"] >= 0.97


def test_descriptor_f1(scores: dict[str, object]) -> None:
    descriptors = scores["descriptors"]
    assert isinstance(descriptors, dict)
    assert descriptors["f1"] >= 0.95


def test_recommendation(scores: dict[str, object]) -> None:
    assert scores["recommendation_accuracy"] >= 0.97


def test_both_languages_and_styles_are_generated() -> None:
    reports = generate_reports(200, seed=5)
    assert {r.language for r in reports} == {"en", "es"}
    texts = [r.text for r in reports]
    assert any(t.isupper() for t in texts) and any("~" in t for t in texts)
    assert any("<p>" in t for t in texts)
    assert generate_reports(5, seed=5) == reports[:5]  # reproducible

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
    """A robustness check, not accuracy (the generator and the rules share this project).

    The generator's truth leaves "the axillary regions are unremarkable" uncoded, while DESIGN
    codes normal or unremarkable axillae as a negated lymph node (issue 18): those are the
    only extra findings, so lymph nodes are held to recall and the other types to F1.
    """
    by_type = scores["findings_by_type"]
    assert isinstance(by_type, dict)
    for kind, prf in by_type.items():
        if kind == "lymph_node":
            assert prf["recall"] >= 0.95
        else:
            assert prf["f1"] >= 0.97, kind
    errors = scores["finding_errors"]
    assert isinstance(errors, dict)
    assert all(" lymph_node " in line for line in errors["examples"]), errors["examples"][:5]


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

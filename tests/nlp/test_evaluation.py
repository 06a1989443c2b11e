from __future__ import annotations

from mammosearch.nlp import normalize
from mammosearch.nlp.evaluation import finding_keys, score_reports


def test_finding_keys_fold_like_the_gold() -> None:
    keys = finding_keys(
        [
            {"type": "mass", "laterality": "left", "negated": True},
            {"type": "mass", "laterality": "right", "negated": True},
            {"type": "post_surgical", "laterality": None, "negated": False},
            {"type": "implant", "laterality": "bilateral", "negated": False},
            {"type": "calcification", "laterality": "left", "negated": False},
        ]
    )
    assert keys == {
        ("mass", "bilateral", True),
        ("other", "bilateral", False),
        ("calcification", "left", False),
    }


def test_scores_count_what_they_should() -> None:
    gold = [
        {"id": "a", "density": "C", "birads": "4", "findings": [
            {"type": "mass", "laterality": "right", "negated": False,
             "descriptors": {"shape": ["irregular"], "margin": ["spiculated"]}},
            {"type": "calcification", "laterality": None, "negated": True}]},
        {"id": "b", "density": None, "birads": "2", "recommendation": "routine_screening",
         "findings": []},
    ]  # fmt: skip
    predicted = {
        "a": normalize(
            "ACR C. Right breast: irregular mass with spiculated margins. "
            "No calcifications. BI-RADS 4B.",
            id="a",
        ),  # fmt: skip
        "b": normalize("BI-RADS 3. Routine screening.", id="b"),
    }
    s = score_reports(gold, predicted)
    data = s.to_dict()
    assert data["reports"] == 2
    assert data["density_accuracy"] == 1.0
    assert data["birads_accuracy"] == 0.5  # a gold "4" accepts 4B; b is wrong
    assert data["findings"]["f1"] == 1.0
    assert data["descriptors"]["f1"] == 1.0
    assert data["recommendation_accuracy"] == 1.0
    assert s.misses == ["b: BI-RADS 3 (gold 2)"]


def test_missing_prediction_counts_as_empty() -> None:
    s = score_reports([{"id": "x", "density": "A", "birads": "1"}], {})
    assert s.density_accuracy == 0.0 and "findings" not in s.to_dict()

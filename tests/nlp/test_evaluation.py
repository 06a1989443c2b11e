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


def test_errors_are_sorted_into_classes() -> None:
    from mammosearch.nlp.evaluation import classify_errors

    gold = {
        ("mass", "left", False),
        ("calcification", "bilateral", True),
        ("lymph_node", "right", False),
        ("asymmetry", "left", False),
    }
    predicted = {
        ("mass", "left", True),  # wrong negation
        ("calcification", "bilateral", True),  # right
        ("lymph_node", "left", False),  # wrong side
        ("other", "bilateral", False),  # extra
    }  # asymmetry: missed
    e = classify_errors("r9", gold, predicted)
    assert (e.missed, e.extra, e.wrong_side, e.wrong_negation) == (1, 1, 1, 1)
    assert "r9: wrong_negation mass left present" in e.examples
    assert "r9: wrong_side lymph_node right present" in e.examples
    assert "r9: missed asymmetry left present" in e.examples
    assert "r9: extra other bilateral present" in e.examples


def test_per_type_table_and_text() -> None:
    from mammosearch.nlp import normalize
    from mammosearch.nlp.evaluation import format_scores, score_reports

    gold = [
        {
            "id": "a",
            "density": None,
            "birads": "2",
            "findings": [
                {"type": "calcification", "laterality": "left", "negated": False},
                {"type": "mass", "laterality": None, "negated": True},
            ],
        }
    ]
    text = "BILATERAL MAMMOGRAM.\nBenign calcifications in the right breast. No masses. BI-RADS 2."
    scores = score_reports(gold, {"a": normalize(text, id="a")})
    assert scores.by_type["mass"].tp == 1
    assert scores.by_type["calcification"].fn == 1 and scores.by_type["calcification"].fp == 1
    assert scores.errors.wrong_side == 1
    out = format_scores(scores)
    assert "wrong side 1" in out and "calcification" in out and "a: wrong_side" in out
    assert "Benign" not in out  # counts and ids, never report text
    data = scores.to_dict()
    assert data["finding_errors"]["wrong_side"] == 1
    assert set(data["findings_by_type"]) == {"calcification", "mass"}

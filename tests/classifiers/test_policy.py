from __future__ import annotations

import pytest

from mammosearch.classifiers.policy import ALWAYS_CONVNEXT, decide, tune_policy


def test_tuned_policy_is_never_worse_than_either_path() -> None:
    truth = ["A", "B", "C", "D", "A", "B", "C", "D"]
    vote = ["A", "B", "A", "A", "A", "B", "A", "A"]  # right when confident
    margins = [0.9, 0.8, 0.1, 0.05, 0.95, 0.7, 0.2, 0.1]
    conv = ["B", "A", "C", "D", "B", "A", "C", "D"]  # right when the vote is unsure
    tuned = tune_policy(truth, vote, margins, conv)
    acc = tuned["accuracy"]
    assert acc["combined"] >= max(acc["vote"], acc["convnext"])
    assert acc["combined"] == 1.0 and 0.2 < tuned["vote_margin"] <= 0.7


def test_ties_defer_to_the_model() -> None:
    tuned = tune_policy(["A", "B"], ["A", "B"], [0.5, 0.5], ["A", "B"])
    assert tuned["vote_margin"] == ALWAYS_CONVNEXT


def test_decide_paths() -> None:
    probs = {"A": 0.7, "B": 0.3}
    conv = {"A": 0.2, "B": 0.8}
    vote_only = decide(vote_label="A", vote_margin=0.4, vote_abstains=True,
                       vote_probabilities=probs, convnext_probabilities=None,
                       vote_margin_threshold=None)  # fmt: skip
    assert vote_only.method == "vote" and vote_only.confidence == pytest.approx(0.4)
    assert "no density model" in vote_only.warnings[0]
    trusted = decide(vote_label="A", vote_margin=0.4, vote_abstains=False,
                     vote_probabilities=probs, convnext_probabilities=conv,
                     vote_margin_threshold=0.3)  # fmt: skip
    assert trusted.method == "vote" and trusted.label == "A" and "disagree" in trusted.warnings[0]
    model = decide(vote_label="A", vote_margin=0.2, vote_abstains=False,
                   vote_probabilities=probs, convnext_probabilities=conv,
                   vote_margin_threshold=0.3)  # fmt: skip
    assert (model.method, model.label, model.confidence) == ("convnext", "B", 0.8)

from __future__ import annotations

import numpy as np
import pytest

from mammosearch.classifiers.policy import ALWAYS_MODEL, apply_policy, calibrate, combine, decide

LABELS = ["A", "B", "C", "D"]


def onehot(labels: list[str], strength: float = 0.7) -> np.ndarray:
    out = np.full((len(labels), 4), (1 - strength) / 3)
    out[np.arange(len(labels)), [LABELS.index(x) for x in labels]] = strength
    return out


def test_combine_renormalises_over_available_paths() -> None:
    probs = {"convnext": np.array([[1.0, 0.0]]), "probe": np.array([[0.0, 1.0]])}
    np.testing.assert_allclose(combine(probs, {"convnext": 0.25, "probe": 0.75}), [[0.25, 0.75]])
    np.testing.assert_allclose(combine(probs, {"convnext": 0.5, "vote": 0.5}), [[1.0, 0.0]])
    with pytest.raises(ValueError, match="none of the weighted paths"):
        combine(probs, {"vote": 1.0})


def test_decide_paths() -> None:
    probs = {"A": 0.7, "B": 0.3}
    conv = {"A": 0.2, "B": 0.8}
    vote_only = decide(vote_label="A", vote_margin=0.4, vote_abstains=True,
                       vote_probabilities=probs, model_probabilities={}, policy=None)  # fmt: skip
    assert vote_only.method == "vote" and vote_only.confidence == pytest.approx(0.4)
    assert "no density model" in vote_only.warnings[0]
    policy = {"vote_margin": 0.3, "weights": {"convnext": 1.0}}
    trusted = decide(vote_label="A", vote_margin=0.4, vote_abstains=False,
                     vote_probabilities=probs, model_probabilities={"convnext": conv},
                     policy=policy)  # fmt: skip
    assert trusted.method == "vote" and trusted.label == "A" and "disagree" in trusted.warnings[0]
    model = decide(vote_label="A", vote_margin=0.2, vote_abstains=False,
                   vote_probabilities=probs, model_probabilities={"convnext": conv},
                   policy=policy)  # fmt: skip
    assert (model.method, model.label, model.confidence) == ("convnext", "B", 0.8)
    blend = decide(vote_label="A", vote_margin=0.2, vote_abstains=False, vote_probabilities=probs,
                   model_probabilities={"convnext": conv, "probe": {"A": 0.9, "B": 0.1}},
                   policy={"vote_margin": ALWAYS_MODEL,
                           "weights": {"convnext": 0.5, "probe": 0.5}})  # fmt: skip
    assert blend.method == "ensemble" and blend.label == "A"
    assert blend.probabilities == {"A": 0.55, "B": 0.45}
    # a policy whose probe is missing falls back on the models that are there
    fallback = decide(vote_label="A", vote_margin=0.2, vote_abstains=True,
                      vote_probabilities=probs, model_probabilities={"convnext": conv},
                      policy={"vote_margin": 0.0, "weights": {"probe": 1.0}})  # fmt: skip
    assert fallback.method == "convnext" and fallback.label == "B"
    untuned = decide(vote_label="A", vote_margin=0.01, vote_abstains=False,
                     vote_probabilities=probs, model_probabilities={"convnext": conv},
                     policy=None)  # fmt: skip
    assert untuned.method == "vote"  # untuned: a vote that does not abstain decides


def test_temperatures_calibrate_each_path_before_the_mean() -> None:
    sure = np.array([[0.98, 0.01, 0.01]])  # overconfident
    soft = np.array([[0.2, 0.7, 0.1]])
    np.testing.assert_allclose(calibrate(sure, 1.0), sure)  # T = 1: as it is
    assert calibrate(sure, 4.0)[0, 0] < 0.7 and calibrate(sure, 4.0).sum() == pytest.approx(1)
    policy = {"weights": {"convnext": 0.5, "probe": 0.5}, "vote_margin": ALWAYS_MODEL}
    paths = {"convnext": sure, "probe": soft, "vote": soft}
    assert apply_policy(policy, paths, [0.0], [False]).argmax() == 0
    tempered = policy | {"temperatures": {"convnext": 4.0, "probe": 1.0}}
    assert apply_policy(tempered, paths, [0.0], [False]).argmax() == 1
    chosen = decide(vote_label="B", vote_margin=0.0, vote_abstains=True,
                    vote_probabilities={"A": 0.2, "B": 0.7, "C": 0.1},
                    model_probabilities={"convnext": {"A": 0.98, "B": 0.01, "C": 0.01},
                                         "probe": {"A": 0.2, "B": 0.7, "C": 0.1}},
                    policy=tempered)  # fmt: skip
    assert chosen.label == "B" and chosen.method == "ensemble"

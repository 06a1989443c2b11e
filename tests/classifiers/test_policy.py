from __future__ import annotations

import numpy as np
import pytest

from mammosearch.classifiers.policy import ALWAYS_MODEL, apply_policy, combine, decide, tune_policy

LABELS = ["A", "B", "C", "D"]


def onehot(labels: list[str], strength: float = 0.7) -> np.ndarray:
    out = np.full((len(labels), 4), (1 - strength) / 3)
    out[np.arange(len(labels)), [LABELS.index(x) for x in labels]] = strength
    return out


def _paths(rng: np.random.Generator, n: int) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Truth, paths and vote margins where the vote is right when confident (margin > 0.5), the
    ConvNeXt right 80% of the time throughout, and the probe 60%."""
    truth_idx = rng.integers(0, 4, n)
    margins = rng.uniform(0, 1, n)

    def path(right: np.ndarray) -> np.ndarray:
        wrong = (truth_idx + rng.integers(1, 4, n)) % 4
        return onehot([LABELS[i] for i in np.where(right, truth_idx, wrong)])

    vote = path(rng.uniform(size=n) < np.where(margins > 0.5, 0.95, 0.3))
    conv, probe = path(rng.uniform(size=n) < 0.8), path(rng.uniform(size=n) < 0.6)
    return [LABELS[i] for i in truth_idx], {"vote": vote, "convnext": conv, "probe": probe}, margins


def test_a_tuned_policy_beats_every_path_on_images_it_did_not_see() -> None:
    rng = np.random.default_rng(7)
    truth, paths, margins = _paths(rng, 300)
    tuned = tune_policy(truth, LABELS, paths, margins)  # tuned on these 300 only
    held_truth, held, held_margins = _paths(rng, 300)  # 300 images it never saw
    t = np.array([LABELS.index(x) for x in held_truth])
    combined = apply_policy(tuned, held, held_margins, [False] * 300)
    accuracy = {path: float(np.mean(p.argmax(axis=1) == t)) for path, p in held.items()}
    unseen = float(np.mean(combined.argmax(axis=1) == t))
    assert unseen > max(accuracy.values()) + 0.03, (unseen, accuracy)
    assert 0.3 <= tuned["vote_margin"] <= 0.7  # the vote decides where it is reliable


def test_tuned_policy_fits_a_constructed_case() -> None:
    truth = ["A", "B", "C", "D", "A", "B", "C", "D"]
    vote = onehot(["A", "B", "A", "A", "A", "B", "A", "A"])  # right when confident
    margins = [0.9, 0.8, 0.1, 0.05, 0.95, 0.7, 0.2, 0.1]
    conv = onehot(["B", "A", "C", "D", "B", "A", "C", "D"])  # right when the vote is unsure
    probe = onehot(["B", "B", "B", "B", "B", "B", "B", "B"], 0.4)
    tuned = tune_policy(truth, LABELS, {"vote": vote, "convnext": conv, "probe": probe}, margins)
    assert tuned["accuracy"]["combined"] == 1.0 and 0.2 < tuned["vote_margin"] <= 0.7
    chosen = apply_policy(tuned, {"vote": vote, "convnext": conv, "probe": probe}, margins,
                          [False] * 8)  # fmt: skip
    assert [LABELS[i] for i in chosen.argmax(axis=1)] == truth
    trusted = np.asarray(margins) >= tuned["vote_margin"]
    np.testing.assert_allclose(chosen[trusted], vote[trusted])  # the vote's own where it decides


def test_a_blend_can_beat_every_path_alone() -> None:
    truth = ["A", "B", "A", "B"]
    # each path is unsure on half the images; together they are right
    conv = np.array([[0.6, 0.4, 0, 0], [0.45, 0.55, 0, 0], [0.45, 0.55, 0, 0], [0.3, 0.7, 0, 0]])
    probe = np.array([[0.45, 0.55, 0, 0], [0.3, 0.7, 0, 0], [0.8, 0.2, 0, 0], [0.55, 0.45, 0, 0]])
    vote = np.full((4, 4), 0.25)
    tuned = tune_policy(truth, LABELS, {"vote": vote, "convnext": conv, "probe": probe},
                        [0.0] * 4, [True] * 4)  # fmt: skip
    assert tuned["accuracy"]["combined"] == 1.0 > tuned["accuracy"]["convnext"]
    assert set(tuned["weights"]) >= {"convnext", "probe"}


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

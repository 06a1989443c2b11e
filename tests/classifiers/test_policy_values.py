"""The assess policy on values reasoned by hand: boundaries, defaults, tie-breaks and rounding.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md);
tests/classifiers/test_policy.py holds the behaviour on realistic paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammosearch.classifiers.policy import ALWAYS_MODEL, apply_policy, combine, decide

LABELS = ["A", "B"]


def test_combine_weighs_by_share_of_the_weights_present() -> None:
    probs = {"convnext": np.array([[1.0, 0.0]]), "probe": np.array([[0.0, 1.0]])}
    np.testing.assert_allclose(combine(probs, {"convnext": 1.0, "probe": 3.0}), [[0.25, 0.75]])
    with pytest.raises(ValueError, match="^none of the weighted paths is available$"):
        combine(probs, {"convnext": 0.0, "probe": 0.0})  # zero weights are not weights
    # float32 inputs are blended in float64
    single = {"convnext": np.array([[0.1, 0.9]], np.float32), "probe": np.zeros((1, 2), np.float32)}
    blended = combine(single, {"convnext": 1.0, "probe": 2.0})
    assert blended.dtype == np.float64
    assert blended[0, 0] == np.float64(np.float32(0.1)) / 3


def test_apply_policy_defaults_boundary_and_abstention() -> None:
    probs = {"vote": np.array([[1.0, 0.0]] * 3, np.float32),
             "convnext": np.array([[0.0, 1.0]] * 3, np.float32)}  # fmt: skip
    # untuned: ConvNeXt alone, and no vote reaches the margin of 2
    chosen = apply_policy({}, probs, [1.0, 1.0, 1.0], [False] * 3)
    np.testing.assert_array_equal(chosen, probs["convnext"])
    assert chosen.dtype == np.float32
    # a margin equal to the threshold trusts the vote; an abstaining vote is never trusted
    policy = {"vote_margin": 0.5, "weights": {"convnext": 1.0}}
    chosen = apply_policy(policy, probs, [0.5, 0.49, 0.9], [False, False, True])
    np.testing.assert_array_equal(chosen, [[1, 0], [0, 1], [0, 1]])
    # the tuned weights, not the default
    probe = {**probs, "probe": np.array([[0.5, 0.5]] * 3, np.float32)}
    chosen = apply_policy({"weights": {"probe": 1.0}}, probe, [0.0] * 3, [False] * 3)
    np.testing.assert_array_equal(chosen, probe["probe"])


def _decide(**changes: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(
        vote_label="A",
        vote_margin=0.2,
        vote_abstains=False,
        vote_probabilities={"A": 0.6, "B": 0.4},
        model_probabilities={"convnext": {"A": 0.25, "B": 0.75}},
        policy={"vote_margin": 0.3, "weights": {"convnext": 1.0}},
    )
    args.update(changes)
    return decide(**args)  # type: ignore[arg-type]


def test_decide_vote_alone_without_models() -> None:
    sure = _decide(model_probabilities={}, vote_probabilities={"A": 2 / 3, "B": 1 / 3})
    assert (sure.label, sure.method, sure.confidence, sure.warnings) == ("A", "vote", 0.6667, ())
    assert sure.probabilities == {"A": 0.666667, "B": 0.333333}
    unsure = _decide(model_probabilities={}, vote_abstains=True, vote_margin=1 / 3)
    assert unsure.confidence == 0.3333 and unsure.warnings == (
        "the neighbours' vote is not confident and no density model is available; its best "
        "label is given",
    )
    empty = _decide(model_probabilities={}, vote_label=None, vote_probabilities={})
    assert (empty.label, empty.confidence, empty.probabilities) == (None, 0.0, {})


def test_decide_vote_at_the_threshold_decides_and_warns_of_disagreement() -> None:
    at = _decide(vote_margin=0.3)
    assert (at.label, at.method, at.confidence) == ("A", "vote", 0.6)
    assert at.warnings == ("the neighbours' vote (A) and the density model (B) disagree",)
    assert at.probabilities == {"A": 0.6, "B": 0.4}
    thirds = _decide(vote_margin=0.3, vote_probabilities={"A": 2 / 3, "B": 1 / 3})
    assert thirds.confidence == 0.6667
    below = _decide(vote_margin=0.2999)
    assert (below.label, below.method, below.confidence) == ("B", "convnext", 0.75)
    assert below.probabilities == {"A": 0.25, "B": 0.75}
    assert below.warnings == at.warnings
    abstaining = _decide(vote_margin=0.9, vote_abstains=True)
    assert abstaining.method == "convnext"
    agreeing = _decide(model_probabilities={"convnext": {"A": 0.9, "B": 0.1}})
    assert agreeing.warnings == () and agreeing.method == "convnext"


def test_decide_blends_the_weighted_paths_the_vote_included() -> None:
    blend = _decide(policy={"vote_margin": ALWAYS_MODEL, "weights": {"convnext": 1.0, "vote": 3.0}})
    # (0.25 + 3 * 0.6) / 4 for A
    assert blend.method == "ensemble" and blend.label == "A"
    assert blend.probabilities == {"A": pytest.approx(0.5125), "B": pytest.approx(0.4875)}
    assert blend.confidence == 0.5125
    # a weight of 0 leaves its path out; a missing vote label adds no vote path
    zero = _decide(policy={"vote_margin": ALWAYS_MODEL, "weights": {"convnext": 1.0, "probe": 0.0}},
                   model_probabilities={"convnext": {"A": 0.25, "B": 0.75},
                                        "probe": {"A": 1.0, "B": 0.0}})  # fmt: skip
    assert zero.method == "convnext" and zero.probabilities == {"A": 0.25, "B": 0.75}
    no_vote = _decide(vote_label=None, vote_probabilities={},
                      policy={"weights": {"convnext": 1.0, "vote": 1.0}})  # fmt: skip
    assert (no_vote.method, no_vote.label, no_vote.warnings) == ("convnext", "B", ())
    assert list(no_vote.probabilities) == ["A", "B"]  # the model's labels when the vote has none
    # a third and two thirds, rounded to 6 places (the confidence to 4)
    third = _decide(policy={"vote_margin": ALWAYS_MODEL, "weights": {"convnext": 1.0, "probe": 2.0}},
                    model_probabilities={"convnext": {"A": 1.0, "B": 0.0},
                                         "probe": {"A": 0.0, "B": 1.0}})  # fmt: skip
    assert third.probabilities == {"A": 0.333333, "B": 0.666667} and third.confidence == 0.6667


def test_decide_missing_labels_count_zero() -> None:
    # a model that gives no probability to a label of the vote: 0 for it
    partial = _decide(model_probabilities={"convnext": {"B": 1.0}}, vote_margin=0.0)
    assert partial.probabilities == {"A": 0.0, "B": 1.0}
    # a vote label without probabilities: its path counts 0 everywhere
    empty_vote = _decide(vote_probabilities={}, vote_margin=0.0,
                         policy={"vote_margin": ALWAYS_MODEL,
                                 "weights": {"convnext": 1.0, "vote": 1.0}})  # fmt: skip
    assert empty_vote.probabilities == {"A": 0.125, "B": 0.375}


def test_decide_untuned_and_fallback() -> None:
    # untuned: a vote that does not abstain decides at any margin, else the ConvNeXt alone
    assert _decide(policy=None, vote_margin=0.0).method == "vote"
    untuned = _decide(policy=None, vote_abstains=True,
                      model_probabilities={"convnext": {"A": 0.25, "B": 0.75},
                                           "probe": {"A": 1.0, "B": 0.0}})  # fmt: skip
    assert untuned.method == "convnext" and untuned.probabilities == {"A": 0.25, "B": 0.75}
    # weights naming only absent paths: every model that is here, equally
    both = _decide(policy={"vote_margin": ALWAYS_MODEL, "weights": {"probe": 1.0}},
                   model_probabilities={"convnext": {"A": 0.2, "B": 0.8},
                                        "other": {"A": 0.6, "B": 0.4}})  # fmt: skip
    assert both.method == "ensemble" and both.probabilities == {"A": 0.4, "B": 0.6}
    assert math.isclose(both.confidence, 0.6)


def test_calibrate_is_a_tempered_softmax_of_the_log_probabilities_row_by_row() -> None:
    from mammosearch.classifiers.policy import calibrate

    p = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]], dtype=np.float32)  # a zero, and 2×3
    out = calibrate(p, 2.0)
    assert out.dtype == np.float64 and out.shape == (2, 3)
    root = np.sqrt(p.astype(np.float64) + 1e-6)  # (p + eps) ** (1 / T), eps keeping log finite
    np.testing.assert_allclose(out, root / root.sum(axis=1, keepdims=True), rtol=1e-9)
    assert 0 < out[1, 0] < 2e-3  # a zero stays near zero, and finite
    sharper = calibrate(p, 0.5)  # T < 1 sharpens
    assert sharper[0, 0] > p[0, 0] and np.all(np.isfinite(sharper))

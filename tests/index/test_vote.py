"""The neighbours' density vote and the fit of its parameters, on values reasoned by hand.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md): each
weight, boundary and abstention reason is pinned to the number the formula gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammosearch.index.vote import VoteParams, fit_vote, vote_density
from mammosearch.records import DensityVote, Neighbour

LABELS = ["A", "B", "C", "D"]


def n(i: int, score: float, label: str | None) -> Neighbour:
    return Neighbour(row_id=i, case_id=str(i), patient_id="p", score=score, label=label)


def test_weights_are_a_softmax_of_similarity_over_temperature() -> None:
    vote = vote_density([n(1, 0.9, "C"), n(2, 0.8, "C"), n(3, 0.7, "B")], LABELS,
                        VoteParams(temperature=0.1))  # fmt: skip
    # scores / 0.1 = 9, 8, 7: weights 1, e^-1, e^-2 over their sum
    total = 1 + math.exp(-1) + math.exp(-2)
    c, b = (1 + math.exp(-1)) / total, math.exp(-2) / total
    assert vote.probabilities == pytest.approx({"A": 0.0, "B": b, "C": c, "D": 0.0}, abs=1e-12)
    assert list(vote.probabilities) == LABELS  # the label order
    assert vote.margin == pytest.approx(c - b, abs=1e-12)
    assert (vote.label, vote.abstain, vote.neighbours, vote.reason) == ("C", False, (1, 2), None)
    # a colder vote leans harder on the nearest neighbour
    cold = vote_density([n(1, 0.9, "C"), n(2, 0.8, "C"), n(3, 0.7, "B")], LABELS,
                        VoteParams(temperature=0.01))  # fmt: skip
    assert cold.probabilities["B"] == pytest.approx(math.exp(-20) / (1 + math.exp(-10)), rel=1e-9)


def test_only_the_first_k_labelled_neighbours_of_the_label_set_vote() -> None:
    neighbours = [n(1, 0.9, "C"), n(2, 0.9, None), n(3, 0.9, "X"), n(4, 0.9, "B"), n(5, 0.9, "B")]
    vote = vote_density(neighbours, LABELS, VoteParams(k=4, min_neighbours=2))
    # 5 lies past k; 2 is unlabelled and 3's label is not in the set: C and B share the vote
    assert vote.probabilities == {"A": 0.0, "B": 0.5, "C": 0.5, "D": 0.0}
    assert vote.label == "B" and vote.neighbours == (4,)  # a tie goes to the label order
    assert vote.margin == 0.0 and not vote.abstain


def test_abstention_boundaries_and_reasons() -> None:
    two = [n(1, 0.9, "C"), n(2, 0.9, "C")]
    assert not vote_density(two, LABELS, VoteParams(min_neighbours=2)).abstain
    few = vote_density(two, LABELS, VoteParams(min_neighbours=3))
    assert few.abstain and few.reason == "only 2 labelled neighbours" and few.label == "C"
    split = [n(1, 0.9, "C"), n(2, 0.9, "C"), n(3, 0.9, "C"), n(4, 0.9, "B")]  # margin 0.5
    assert not vote_density(split, LABELS, VoteParams(min_margin=0.5)).abstain
    tight = vote_density(split, LABELS, VoteParams(min_margin=0.55))
    assert tight.abstain and tight.reason == "margin 0.50 below 0.55"
    assert vote_density([], LABELS) == DensityVote(
        None, {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0}, 0.0, True, (), "no neighbours"
    )
    unlabelled = vote_density([n(1, 0.9, None)], LABELS)
    assert unlabelled.reason == "no neighbours" and unlabelled.label is None


def test_a_single_label_set_has_the_full_margin_and_two_labels_the_difference() -> None:
    vote = vote_density([n(1, 0.9, "C")], ["C"], VoteParams(min_neighbours=1))
    assert (vote.label, vote.margin, vote.probabilities) == ("C", 1.0, {"C": 1.0})
    two = vote_density([n(1, 0.9, "C"), n(2, 0.9, "C"), n(3, 0.9, "C"), n(4, 0.9, "D")],
                       ["C", "D"])  # fmt: skip
    assert two.probabilities == {"C": 0.75, "D": 0.25} and two.margin == 0.5


def _equal_rows(counts: list[tuple[int, int]]) -> tuple[np.ndarray, list[list[str]]]:
    """Rows of 10 equally similar neighbours with ``a`` A labels and ``b`` B labels: the vote's
    probabilities are the label shares at every temperature."""
    sims = np.full((len(counts), 10), 0.5, dtype=np.float32)
    return sims, [["A"] * a + ["B"] * b for a, b in counts]


def test_fit_vote_margin_is_the_largest_no_better_than_the_majority() -> None:
    # margins 0, .2, .4, .6, .8, 1 (winners A, A, B, B, A, B; the 5/5 tie goes to A)
    sims, rows = _equal_rows([(5, 5), (6, 4), (3, 7), (2, 8), (9, 1), (0, 10)])
    truth = ["B", "A", "A", "B", "A", "B"]  # right: no, yes, no, yes, yes, yes; majority 0.5
    params, figures = fit_vote(sims, rows, truth, ["A", "B"])
    # accuracy by rising margin: 0, 1/2, 1/3, 2/4, 3/5: the last at or below 0.5 is at margin .6
    assert params.min_margin == pytest.approx(0.6 + 1e-9, abs=1e-12) and params.k == 10
    assert params.temperature == 0.005  # every temperature ties: the first one is kept
    assert figures == {"loo_accuracy": 0.6667, "loo_accuracy_when_not_abstaining": 1.0,
                       "loo_coverage": 0.3333, "majority_rate": 0.5}  # fmt: skip


def test_fit_vote_can_abstain_everywhere_and_counts_the_whole_prefix_but_the_last() -> None:
    sims, rows = _equal_rows([(5, 5), (6, 4), (7, 3), (8, 2), (9, 1), (0, 10)])
    truth = ["B", "B", "A", "B", "A", "B"]  # right: no, no, yes, no, yes, yes; majority 2/3
    params, figures = fit_vote(sims, rows, truth, ["A", "B"])
    # accuracy by rising margin 0, 0, 1/3, 1/4, 2/5 (3/6 over all is not looked at): margin .8
    assert params.min_margin == pytest.approx(0.8 + 1e-9, abs=1e-12)
    assert figures == {"loo_accuracy": 0.5, "loo_accuracy_when_not_abstaining": 1.0,
                       "loo_coverage": 0.1667, "majority_rate": 0.6667}  # fmt: skip
    # right only where the margin is 0: the margin is never above the majority, none is kept
    sims, rows = _equal_rows([(5, 5), (6, 4)])
    params, figures = fit_vote(sims, rows, ["A", "B"], ["A", "B"])
    assert params.min_margin == 0.0 and figures["loo_coverage"] == 1.0


# the nearest neighbour is wrong, two nearly as near are right: right when T > 0.072
NEAR_PAIR = ([0.9, 0.85, 0.85, 0.0], ["B", "A", "A", "B"])
# the nearest is right, three far ones are wrong: right when T < 0.36
FAR_THREE = ([0.9, 0.5, 0.5, 0.5], ["A", "B", "B", "B"])


def _fit(rows: list[tuple[list[float], list[str]]], **kwargs: int) -> tuple[VoteParams, dict]:
    sims = np.array([r[0] for r in rows], dtype=np.float32)
    return fit_vote(sims, [r[1] for r in rows], ["A"] * len(rows), ["A", "B"], **kwargs)


def test_fit_vote_picks_the_temperature_with_most_right_votes_then_the_best_likelihood() -> None:
    # 0.1 and 0.2 get both right; 0.1 has the better summed log-likelihood (-0.65 against
    # -0.84) though the last row alone would choose 0.2 (-0.60 against -0.50)
    params, figures = _fit([FAR_THREE, NEAR_PAIR])
    assert params.temperature == 0.1 and figures["loo_accuracy"] == 1.0
    assert figures["majority_rate"] == 1.0
    # three rows of the first kind tip the sum to 0.2 (-1.83 against -1.86)
    assert _fit([NEAR_PAIR, NEAR_PAIR, NEAR_PAIR, FAR_THREE])[0].temperature == 0.2
    # k=1: only the nearest votes (row 2 wrong at every temperature, with margin 1: the vote
    # abstains everywhere)
    params, figures = _fit([FAR_THREE, NEAR_PAIR], k=1)
    assert params.k == 1 and params.temperature == 0.005
    assert figures["loo_accuracy"] == 0.5 and figures["loo_coverage"] == 0.0


def test_fit_vote_counts_right_votes_before_the_likelihood() -> None:
    # right only at T = 0.005: the nearest against nine nearly as near
    sharp = ([0.9] + [0.88] * 9, ["A"] + ["B"] * 9)
    # right only at T >= 0.2: the nearest is wrong, nine far ones are right; its likelihood
    # at 0.005 is the floor (1e-6), so the likelihood alone would choose 0.5
    broad = ([0.9] + [0.5] * 9, ["B"] + ["A"] * 9)
    assert _fit([sharp, sharp, broad])[0].temperature == 0.005


def test_fit_vote_figures_are_rounded_and_nothing_kept_scores_zero() -> None:
    # right, right, right, wrong, right, wrong by rising margin; majority 4/6: never weak
    sims, rows = _equal_rows([(5, 5), (6, 4), (3, 7), (8, 2), (1, 9), (10, 0)])
    params, figures = fit_vote(sims, rows, ["A", "A", "B", "B", "B", "B"], ["A", "B"])
    assert params.min_margin == 0.0
    assert figures == {"loo_accuracy": 0.6667, "loo_accuracy_when_not_abstaining": 0.6667,
                       "loo_coverage": 1.0, "majority_rate": 0.6667}  # fmt: skip
    # two ties (margin 0), the first wrong: the margin is raised past both, none is kept
    sims, rows = _equal_rows([(5, 5), (5, 5)])
    params, figures = fit_vote(sims, rows, ["B", "A"], ["A", "B"])
    assert params.min_margin == pytest.approx(1e-9, abs=1e-15)
    assert figures["loo_coverage"] == 0.0 and figures["loo_accuracy_when_not_abstaining"] == 0.0


def test_fit_vote_with_one_label_has_margin_one() -> None:
    params, figures = fit_vote(np.ones((3, 4), np.float32), [["A"] * 4] * 3, ["A"] * 3, ["A"])
    assert params.min_margin == pytest.approx(1 + 1e-9, abs=1e-12)
    assert figures["loo_accuracy"] == 1.0


def test_large_similarities_over_small_temperatures_do_not_overflow() -> None:
    # exp(score / T) would overflow: the weights are taken relative to the best score
    vote = vote_density([n(1, 0.9, "C"), n(2, 0.8, "B")], LABELS, VoteParams(temperature=0.001,
                                                                            min_neighbours=1))  # fmt: skip
    assert vote.probabilities["C"] == pytest.approx(1.0) and vote.probabilities["B"] > 0.0
    sims = np.array([[2.0, 1.99, 1.0], [2.0, 1.0, 1.0]], dtype=np.float32)
    params, figures = fit_vote(sims, [["A", "B", "A"], ["A", "B", "B"]], ["A", "A"], ["A", "B"])
    assert figures["loo_accuracy"] == 1.0


def test_fit_vote_without_labelled_images() -> None:
    empty = np.zeros((0, 10), dtype=np.float32)
    assert fit_vote(empty, [], [], LABELS, k=7) == (VoteParams(k=7), {})

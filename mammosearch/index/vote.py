"""Breast-density voting over retrieved neighbours, and fitting its parameters.

A neighbour's vote weighs ``softmax(similarity / temperature)``; the probabilities per label
are the summed weights. The vote abstains when fewer than ``min_neighbours`` labelled
neighbours voted or the winner's margin over the runner-up is below ``min_margin``. Both the
temperature and the margin are fitted on the index's own labelled images, leave one patient
out (:func:`fit_vote`): the temperature with the most correct votes (then the best
likelihood), and the margin under which votes were no better than the majority guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mammosearch.records import DensityVote, Neighbour

__all__ = ["VoteParams", "fit_vote", "vote_density"]

_TEMPERATURES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True, slots=True)
class VoteParams:
    """How the vote weighs and when it abstains (stored in the index manifest)."""

    k: int = 10
    temperature: float = 0.05
    min_neighbours: int = 3
    min_margin: float = 0.0


def vote_density(
    neighbours: Sequence[Neighbour], labels: Sequence[str], params: VoteParams = VoteParams()
) -> DensityVote:
    """Similarity-weighted vote of the neighbours' labels.

    Args:
        neighbours: Retrieved images, best first; unlabelled ones do not vote.
        labels: The label set in its order (the probabilities' keys).
        params: Weighting and abstention.
    """
    voters = [n for n in neighbours[: params.k] if n.label is not None and n.label in labels]
    if not voters:
        return DensityVote(None, {label: 0.0 for label in labels}, 0.0, True, (), "no neighbours")
    scores = np.array([n.score for n in voters], dtype=np.float64) / params.temperature
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    probs = {label: 0.0 for label in labels}
    for n, w in zip(voters, weights, strict=True):
        probs[str(n.label)] += float(w)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    winner = ranked[0][0]
    margin = ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0.0)
    reason = None
    if len(voters) < params.min_neighbours:
        reason = f"only {len(voters)} labelled neighbours"
    elif margin < params.min_margin:
        reason = f"margin {margin:.2f} below {params.min_margin:.2f}"
    carried = tuple(n.row_id for n in voters if n.label == winner)
    return DensityVote(winner, probs, margin, reason is not None, carried, reason)


def fit_vote(
    sims: NDArray[np.float32],
    neighbour_labels: Sequence[Sequence[str]],
    truth: Sequence[str],
    labels: Sequence[str],
    *,
    k: int = 10,
) -> tuple[VoteParams, dict[str, float]]:
    """Fit temperature and abstention margin from leave-one-patient-out neighbours.

    Args:
        sims: ``n×k`` similarities of each labelled image's neighbours (other patients only).
        neighbour_labels: Their labels.
        truth: Each image's own label.
        labels: The label set.
        k: Neighbours that vote.

    Returns:
        The parameters and the leave-one-patient-out figures (accuracy, coverage, majority).
    """
    n = len(truth)
    if n == 0:
        return VoteParams(k=k), {}
    best: tuple[int, float, float] | None = None
    for temperature in _TEMPERATURES:  # most correct votes; then the best likelihood
        loglik = 0.0
        correct_votes = 0
        for i in range(n):
            vote = _vote_row(sims[i], neighbour_labels[i], labels, k, temperature)
            loglik += math.log(max(vote[0].get(truth[i], 0.0), 1e-6))
            correct_votes += vote[1] == truth[i]
        if best is None or (correct_votes, loglik) > best[:2]:
            best = (correct_votes, loglik, temperature)
    temperature = best[2] if best else 0.05
    votes = [_vote_row(sims[i], neighbour_labels[i], labels, k, temperature) for i in range(n)]
    correct = np.array([v[1] == t for v, t in zip(votes, truth, strict=True)])
    margins = np.array([v[2] for v in votes])
    majority = max(truth.count(label) for label in set(truth)) / n
    # abstain below the largest margin under which votes are no better than the majority guess
    min_margin = 0.0
    order = np.argsort(margins)
    prefix_accuracy = np.cumsum(correct[order]) / np.arange(1, n + 1)
    weak = np.flatnonzero(prefix_accuracy[: n - 1] <= majority)
    if weak.size:
        min_margin = float(margins[order[weak[-1]]]) + 1e-9
    kept = margins >= min_margin
    figures = {
        "loo_accuracy": round(float(correct.mean()), 4),
        "loo_accuracy_when_not_abstaining": round(float(correct[kept].mean()), 4)
        if kept.any()
        else 0.0,
        "loo_coverage": round(float(kept.mean()), 4),
        "majority_rate": round(majority, 4),
    }
    return VoteParams(k=k, temperature=temperature, min_margin=min_margin), figures


def _vote_row(
    sims: NDArray[np.float32],
    labels_row: Sequence[str],
    labels: Sequence[str],
    k: int,
    temperature: float,
) -> tuple[dict[str, float], str, float]:
    scores = np.asarray(sims[:k], dtype=np.float64) / temperature
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    probs = {label: 0.0 for label in labels}
    for label, w in zip(labels_row[:k], weights, strict=False):
        probs[label] += float(w)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    margin = ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0.0)
    return probs, ranked[0][0], margin

"""The assess policy: report, then a confident neighbour vote, then the ConvNeXt prediction.

The one tuned parameter is the vote margin above which the vote decides rather than ConvNeXt.
It is chosen on out-of-fold predictions of both paths (patient-level cross-validation on the
training manifest), over a grid that includes "always the vote" and "always ConvNeXt", so on
those folds the combined policy is never worse than the better path alone. It is stored in the
model's ``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Decision", "decide", "tune_policy"]

ALWAYS_CONVNEXT = 2.0  # a margin no vote reaches


@dataclass(frozen=True, slots=True)
class Decision:
    """Which path decided, with what, and what to tell the reader."""

    label: str | None
    method: str
    confidence: float
    probabilities: dict[str, float]
    warnings: tuple[str, ...] = ()


def tune_policy(
    truth: Sequence[str],
    vote_labels: Sequence[str | None],
    vote_margins: Sequence[float],
    convnext_labels: Sequence[str],
) -> dict[str, Any]:
    """The vote margin that maximises accuracy of the combined policy on out-of-fold predictions.

    Returns:
        ``{"vote_margin", "accuracy": {"vote", "convnext", "combined"}, "n"}``.
    """
    t = np.asarray(truth, dtype=object)
    v = np.asarray(vote_labels, dtype=object)
    c = np.asarray(convnext_labels, dtype=object)
    m = np.asarray(vote_margins, dtype=np.float64)
    candidates = sorted({0.0, ALWAYS_CONVNEXT, *np.round(m, 4).tolist()})
    best_margin, best_accuracy = ALWAYS_CONVNEXT, -1.0
    for threshold in candidates:
        combined = np.where((m >= threshold) & (v != None), v, c)  # noqa: E711
        accuracy = float(np.mean(combined == t))
        # ties go to the larger threshold: defer to ConvNeXt unless the vote earns it
        if accuracy > best_accuracy or (accuracy == best_accuracy and threshold > best_margin):
            best_margin, best_accuracy = float(threshold), accuracy
    return {
        "vote_margin": best_margin,
        "n": len(t),
        "accuracy": {
            "vote": round(float(np.mean(v == t)), 4),
            "convnext": round(float(np.mean(c == t)), 4),
            "combined": round(best_accuracy, 4),
        },
    }


def decide(
    *,
    vote_label: str | None,
    vote_margin: float,
    vote_abstains: bool,
    vote_probabilities: Mapping[str, float],
    convnext_probabilities: Mapping[str, float] | None,
    vote_margin_threshold: float | None,
) -> Decision:
    """Vote or ConvNeXt for an image whose report states no density."""
    vote_probs = {k: round(float(p), 6) for k, p in vote_probabilities.items()}
    if convnext_probabilities is None:
        notes: tuple[str, ...] = ()
        if vote_abstains:
            notes = ("the neighbours' vote is not confident and no density model is available; "
                     "its best label is given",)  # fmt: skip
        confidence = round(
            vote_margin if vote_abstains else max(vote_probs.values(), default=0.0), 4
        )
        return Decision(vote_label, "vote", confidence, vote_probs, notes)
    conv = {k: round(float(p), 6) for k, p in convnext_probabilities.items()}
    conv_label = max(conv, key=lambda k: conv[k])
    threshold = ALWAYS_CONVNEXT if vote_margin_threshold is None else vote_margin_threshold
    trust_vote = vote_label is not None and not vote_abstains and vote_margin >= threshold
    warnings: list[str] = []
    if vote_label is not None and vote_label != conv_label:
        warnings.append(
            f"the neighbours' vote ({vote_label}) and the density model ({conv_label}) disagree"
        )
    if trust_vote:
        return Decision(vote_label, "vote", round(max(vote_probs.values()), 4), vote_probs,
                        tuple(warnings))  # fmt: skip
    return Decision(conv_label, "convnext", round(conv[conv_label], 4), conv, tuple(warnings))

"""The assess policy: the report, then a confident neighbour vote, then the image models.

What the policy holds, stored in the density model's ``config.json`` (chosen by
:func:`mammosearch.classifiers.selection.choose_policy`):

- ``rule``: the chosen rule's name (one path alone, a mean, a vote gate, a weighted mean);
- ``temperatures``: each path's temperature; a path's probabilities are calibrated as
  ``softmax(log p / T)`` before they are combined (absent: 1, the probabilities as they are);
- ``vote_margin``: the vote decides alone when its winner-minus-runner-up margin reaches it
  (and it does not abstain); :data:`ALWAYS_MODEL` when it never does;
- ``weights``: otherwise a weighted mean of the calibrated probabilities of the ConvNeXt
  (``convnext``), the linear probe on radiomics vectors (``probe``) and the vote (``vote``).
  One weight of 1 is that path alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Decision", "apply_policy", "calibrate", "combine", "decide"]

ALWAYS_MODEL = 2.0  # a margin no vote reaches: the image models always decide
ALWAYS_CONVNEXT = ALWAYS_MODEL  # the name earlier model files used
PATHS = ("convnext", "probe", "vote")
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Decision:
    """Which path decided, with what, and what to tell the reader."""

    label: str | None
    method: str
    confidence: float
    probabilities: dict[str, float]
    warnings: tuple[str, ...] = ()


def calibrate(probabilities: NDArray[Any], temperature: float) -> NDArray[np.float64]:
    """``softmax(log p / T)`` of each row (``T`` = 1: the probabilities unchanged)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0:
        return p
    z = np.log(p + _EPS) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    out: NDArray[np.float64] = z / z.sum(axis=-1, keepdims=True)
    return out


def _calibrated(
    policy: Mapping[str, Any], probabilities: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[np.float64]]:
    temperatures = policy.get("temperatures") or {}
    return {p: calibrate(v, float(temperatures.get(p, 1.0))) for p, v in probabilities.items()}


def combine(
    probabilities: Mapping[str, NDArray[Any]], weights: Mapping[str, float]
) -> NDArray[np.float64]:
    """Weighted mean of the paths' probabilities (weights of missing paths are dropped and the
    rest renormalised)."""
    present = {p: w for p, w in weights.items() if p in probabilities and w > 0}
    total = sum(present.values())
    if not present:
        raise ValueError("none of the weighted paths is available")
    out = np.zeros_like(np.asarray(next(iter(probabilities.values())), dtype=np.float64))
    for path, weight in present.items():
        out += (weight / total) * np.asarray(probabilities[path], dtype=np.float64)
    return out


def apply_policy(
    policy: Mapping[str, Any],
    probabilities: Mapping[str, NDArray[Any]],
    vote_margin: Sequence[float] | NDArray[Any],
    vote_abstain: Sequence[bool] | NDArray[Any],
) -> NDArray[np.float32]:
    """The probabilities the policy answers with for many images at once (evaluation): the
    vote's where it decides alone, else the weighted mean of the image paths. Their argmax is
    the chosen label."""
    weights = policy.get("weights") or {"convnext": 1.0}
    blended = combine(_calibrated(policy, probabilities), weights)
    threshold = float(policy.get("vote_margin", ALWAYS_MODEL))
    if "vote" not in probabilities:
        return blended.astype(np.float32)
    trust = (np.asarray(vote_margin) >= threshold) & ~np.asarray(vote_abstain, bool)
    vote = np.asarray(probabilities["vote"], dtype=np.float32)
    chosen: NDArray[np.float32] = np.where(trust[:, None], vote, blended).astype(np.float32)
    return chosen


def decide(
    *,
    vote_label: str | None,
    vote_margin: float,
    vote_abstains: bool,
    vote_probabilities: Mapping[str, float],
    model_probabilities: Mapping[str, Mapping[str, float]],
    policy: Mapping[str, Any] | None,
) -> Decision:
    """Vote or image models for an image whose report states no density.

    Args:
        model_probabilities: ``{"convnext": {label: p}, "probe": {...}}`` of the image models
            that are available (none: the vote answers, with a warning when it abstains).
        policy: The chosen ``vote_margin``, ``weights`` and ``temperatures`` (untuned: any
            vote that does not abstain decides, else ConvNeXt alone).
    """
    vote_probs = {k: round(float(p), 6) for k, p in vote_probabilities.items()}
    if not model_probabilities:
        notes: tuple[str, ...] = ()
        if vote_abstains:
            notes = ("the neighbours' vote is not confident and no density model is available; "
                     "its best label is given",)  # fmt: skip
        confidence = round(
            vote_margin if vote_abstains else max(vote_probs.values(), default=0.0), 4
        )
        return Decision(vote_label, "vote", confidence, vote_probs, notes)
    policy = policy or {}  # untuned: a vote that does not abstain decides, else ConvNeXt
    threshold = float(policy.get("vote_margin", 0.0))
    weights = dict(policy.get("weights") or {"convnext": 1.0})
    labels = list(vote_probs) or list(next(iter(model_probabilities.values())))
    paths = {p: np.asarray([float(v.get(lab, 0.0)) for lab in labels])
             for p, v in model_probabilities.items()}  # fmt: skip
    if vote_label is not None:
        paths["vote"] = np.asarray([vote_probs.get(lab, 0.0) for lab in labels])
    used = {p: w for p, w in weights.items() if p in paths and w > 0}
    if not used:  # the weighted paths are missing (e.g. no probe): the models that are here
        used = {p: 1.0 for p in model_probabilities}
    blended = combine(_calibrated(policy, paths), used)
    model_label = labels[int(np.argmax(blended))]
    warnings: list[str] = []
    if vote_label is not None and vote_label != model_label:
        warnings.append(
            f"the neighbours' vote ({vote_label}) and the density model ({model_label}) disagree"
        )
    if vote_label is not None and not vote_abstains and vote_margin >= threshold:
        return Decision(vote_label, "vote", round(max(vote_probs.values()), 4), vote_probs,
                        tuple(warnings))  # fmt: skip
    method = next(iter(used)) if len(used) == 1 else "ensemble"
    probs = {lab: round(float(p), 6) for lab, p in zip(labels, blended, strict=True)}
    return Decision(model_label, method, round(probs[model_label], 4), probs, tuple(warnings))

"""Choosing the assess policy by patient-grouped cross-validation, and scoring the choice by
nested cross-validation.

The rows are out-of-fold predictions of every path (each image scored by path models that never
saw its patient). A *candidate* is a rule with what it fits on its rows:

============  ======================================================  ==========
rule          what decides                                            simplicity
============  ======================================================  ==========
``P``         one path alone                                          1
``mean(..)``  the mean of two or more paths' calibrated probabilities  1
``gate(X)``   the vote where its margin reaches a fitted threshold,     2
              else ``X`` (a model path or the models' mean)
``weighted``  a weighted mean, weights fitted on a grid                 3
============  ======================================================  ==========

Every rule first calibrates each path by temperature scaling fitted on its rows (the argmax of
one path is unchanged; what changes is how much each path counts in a mean). :func:`choose_policy`
scores every candidate on inner folds (fitted on the others, accuracy on the fold), finds the
best mean, and takes the *simplest* candidate whose mean is within one standard error of the
best. A path alone and an equal mean of paths fit nothing but the temperatures, so they are
equally simple; among them (and among gates) the one of *more* paths wins, then the better
mean: when the folds cannot tell the candidates apart, the evidence of every path is averaged
rather than a path dropped on noise (docs/RESULTS.md: over three fold seeds on MIAS, nested,
0.749 against 0.729 when fewer paths won). A path whose own mean is not one standard error
above the majority-class rate carries no evidence and enters no mean; a candidate more than
one standard error below the best gets no weight. :func:`nested_scores` repeats that
choice inside every outer fold on the other folds' rows only, so the outer folds only score.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.classifiers.policy import ALWAYS_MODEL, PATHS, apply_policy
from mammosearch.errors import InputError

__all__ = ["choose_policy", "fit_temperature", "nested_scores", "outer_fold_scores"]

_STEP = 0.1
_EPS = 1e-6
_T_RANGE = (0.05, 100.0)


@dataclass(frozen=True, slots=True)
class _Rows:
    """Out-of-fold predictions of a set of images (``t``: true label indices)."""

    t: NDArray[np.int64]
    probs: dict[str, NDArray[np.float64]]
    margins: NDArray[np.float64]
    abstain: NDArray[np.bool_]

    def take(self, keep: NDArray[Any]) -> _Rows:
        return _Rows(self.t[keep], {p: v[keep] for p, v in self.probs.items()},
                     self.margins[keep], self.abstain[keep])  # fmt: skip


def fit_temperature(probabilities: NDArray[Any], t: NDArray[np.int64]) -> float:
    """The temperature ``T`` that minimises the log-loss of ``softmax(log p / T)`` on these rows
    (``T`` > 1 softens an overconfident path; a path of pure noise goes to the upper bound, near
    uniform)."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.asarray(probabilities, dtype=np.float64) + _EPS)
    rows = np.arange(len(t))

    def loss(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-np.mean(z[rows, t] - np.log(np.exp(z).sum(axis=1))))

    bounds = (math.log(_T_RANGE[0]), math.log(_T_RANGE[1]))
    found = minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-3})
    return round(math.exp(float(found.x)), 4)


def _score(policy: Mapping[str, Any], rows: _Rows) -> tuple[float, float]:
    """Accuracy and mean log-likelihood of the true labels."""
    final = apply_policy(policy, rows.probs, rows.margins, rows.abstain).astype(np.float64)
    accuracy = float(np.mean(final.argmax(axis=1) == rows.t))
    return accuracy, float(np.mean(np.log(final[np.arange(len(rows.t)), rows.t] + _EPS)))


def _simplex(paths: Sequence[str]) -> list[dict[str, float]]:
    steps = round(1 / _STEP)
    out = []
    for combo in itertools.product(range(steps + 1), repeat=len(paths)):
        if sum(combo) == steps:
            out.append({p: round(c * _STEP, 2) for p, c in zip(paths, combo, strict=True) if c})
    return out


def _candidates(paths: Sequence[str]) -> list[tuple[str, tuple[int, int]]]:
    """Every candidate rule's name with its rank, lowest first: (simplicity, minus the number
    of paths it averages; a gate counts the vote)."""
    out: list[tuple[str, tuple[int, int]]] = [(p, (1, -1)) for p in paths]
    for size in range(2, len(paths) + 1):
        out += [(f"mean({', '.join(s)})", (1, -size)) for s in itertools.combinations(paths, size)]
    models = [p for p in paths if p != "vote"]
    if "vote" in paths and models:
        inner = [*models, *([f"mean({', '.join(models)})"] if len(models) > 1 else [])]
        out += [(f"gate({x})", (2, -(1 + x.count(",") + 1))) for x in inner]
    if len(paths) > 1:
        out.append(("weighted", (3, -len(paths))))
    return out


def _weights(rule: str) -> dict[str, float]:
    """The path weights of an ``alone`` or ``mean(..)`` rule."""
    paths = rule[5:-1].split(", ") if rule.startswith("mean(") else [rule]
    return {p: round(1 / len(paths), 6) for p in paths}


def _fit(rule: str, rows: _Rows, calibrated: bool = True) -> dict[str, Any]:
    """The policy of one candidate rule fitted on ``rows``."""
    temperatures = {p: fit_temperature(v, rows.t) if calibrated else 1.0
                    for p, v in rows.probs.items()}  # fmt: skip
    base: dict[str, Any] = {"rule": rule, "temperatures": temperatures, "vote_margin": ALWAYS_MODEL}
    if rule == "weighted":
        grid = [base | {"weights": w} for w in _simplex(list(rows.probs))]
        return max(grid, key=lambda policy: _score(policy, rows))
    if rule.startswith("gate("):
        policy = base | {"weights": _weights(rule[5:-1])}
        cuts = sorted({0.0, *np.round(np.quantile(rows.margins, np.linspace(0.1, 0.9, 9)), 4)})
        return max((policy | {"vote_margin": float(c)} for c in cuts),
                   key=lambda p: (*_score(p, rows), p["vote_margin"]))  # fmt: skip
    return base | {"weights": _weights(rule)}


def _splits(rows: _Rows, patients: NDArray[Any], folds: int, seed: int) -> list[Any]:
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = [len(set(patients[rows.t == c])) for c in set(rows.t.tolist())]
    n_splits = min(folds, *per_class, len(set(patients.tolist())))
    if n_splits < 2:
        raise InputError(
            f"too few patients per class to choose a policy by {folds}-fold cross-validation",
            fix="label more patients of each class, or train with --policy-folds 0",
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(rows.t, rows.t, groups=patients))


def _choose(
    rows: _Rows, patients: NDArray[Any], folds: int, seed: int, calibrated: bool = True
) -> dict[str, Any]:
    splits = _splits(rows, patients, folds, seed)
    table: dict[str, dict[str, Any]] = {}
    ranks = dict(_candidates([p for p in PATHS if p in rows.probs]))
    for rule in ranks:
        scores = [_score(_fit(rule, rows.take(train), calibrated), rows.take(test))[0]
                  for train, test in splits]  # fmt: skip
        sd = float(np.std(scores, ddof=1))
        table[rule] = {"mean": round(float(np.mean(scores)), 4),
                       "se": round(sd / math.sqrt(len(scores)), 4),
                       "folds": [round(s, 4) for s in scores]}  # fmt: skip
    best = max(table, key=lambda r: (table[r]["mean"], [-x for x in ranks[r]]))
    floor = table[best]["mean"] - table[best]["se"]
    majority = float(np.bincount(rows.t).max() / len(rows.t))
    idle = {p for p in rows.probs if table[p]["mean"] - table[p]["se"] <= majority}
    eligible = [r for r in table if not (r.startswith("mean(") and idle & set(_weights(r)))]
    within = [r for r in eligible if table[r]["mean"] >= floor - 1e-9]
    chosen = (min(within, key=lambda r: (ranks[r], -table[r]["mean"])) if within
              else max(eligible, key=lambda r: table[r]["mean"]))  # fmt: skip
    policy = _fit(chosen, rows, calibrated)
    return policy | {"inner_folds": len(splits), "best": best, "floor": round(floor, 4),
                     "idle": sorted(idle), "candidates": table}  # fmt: skip


def _rows(
    truth: Sequence[str],
    labels: Sequence[str],
    probabilities: Mapping[str, NDArray[Any]],
    vote_margin: Sequence[float] | NDArray[Any],
    vote_abstain: Sequence[bool] | NDArray[Any] | None,
) -> _Rows:
    t = np.asarray([list(labels).index(x) for x in truth], dtype=np.int64)
    abstain = np.zeros(len(t), bool) if vote_abstain is None else np.asarray(vote_abstain, bool)
    probs = {p: np.asarray(probabilities[p], dtype=np.float64) for p in PATHS if p in probabilities}
    return _Rows(t, probs, np.asarray(vote_margin, dtype=np.float64), abstain)


def choose_policy(
    truth: Sequence[str],
    labels: Sequence[str],
    probabilities: Mapping[str, NDArray[Any]],
    patients: Sequence[str],
    vote_margin: Sequence[float] | NDArray[Any],
    vote_abstain: Sequence[bool] | NDArray[Any] | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The assess policy chosen by patient-grouped cross-validation on out-of-fold rows.

    Args:
        truth: True labels.
        labels: The label set in its order (probability columns).
        probabilities: ``{path: n×len(labels)}`` out-of-fold probabilities.
        patients: The patient of each row (a patient's rows stay in one fold).
        vote_margin: The vote's margin on each row.
        vote_abstain: Whether the vote abstains on each row.
        folds: Inner folds (fewer when a class has fewer patients).
        seed: Seed of the folds.

    Returns:
        The policy (``rule``, ``weights``, ``vote_margin``, ``temperatures``, fitted on every
        row) with why: ``candidates`` (each rule's accuracy per fold, mean and standard error),
        ``best``, ``floor`` (best mean less its standard error), ``idle`` (the paths not one
        standard error above the majority-class rate, in no mean), ``inner_folds``, ``n`` and
        ``accuracy`` (each path's accuracy on the rows).

    Raises:
        InputError: Too few patients per class for two folds.
    """
    rows = _rows(truth, labels, probabilities, vote_margin, vote_abstain)
    policy = _choose(rows, np.asarray(patients), folds, seed)
    accuracy = {p: round(float(np.mean(v.argmax(axis=1) == rows.t)), 4)
                for p, v in rows.probs.items()}  # fmt: skip
    return policy | {"n": len(rows.t), "accuracy": accuracy}


def nested_scores(
    truth: Sequence[str],
    labels: Sequence[str],
    probabilities: Mapping[str, NDArray[Any]],
    patients: Sequence[str],
    vote_margin: Sequence[float] | NDArray[Any],
    vote_abstain: Sequence[bool] | NDArray[Any] | None,
    outer_fold: Sequence[int] | NDArray[Any],
    *,
    folds: int = 5,
    seed: int = 0,
    calibrated: bool = True,
) -> dict[str, Any]:
    """Nested cross-validation of the policy: for each outer fold, :func:`choose_policy` on the
    other folds' rows only, applied to the fold's rows; each path alone is scored on the same
    folds.

    Args:
        outer_fold: The outer fold of each row (the folds the paths' predictions came from).
        folds: Inner folds of each choice.
        calibrated: Fit temperatures (``False`` only to show what calibration buys).
        (others as :func:`choose_policy`)

    Returns:
        ``combined`` (``n×len(labels)`` probabilities of the policy, each row from the policy
        of its outer fold), ``rules`` (the rule chosen in each outer fold) and ``scores``:
        ``{"combined" | path: {"folds": [accuracy per outer fold], "mean", "sd"}}``.
    """
    rows = _rows(truth, labels, probabilities, vote_margin, vote_abstain)
    groups, outer = np.asarray(patients), np.asarray(outer_fold)
    combined = np.zeros((len(rows.t), len(labels)), dtype=np.float32)
    rules = []
    for fold in sorted(set(outer.tolist())):
        inside, scored = outer != fold, outer == fold
        policy = _choose(rows.take(inside), groups[inside], folds, seed, calibrated)
        rules.append(policy["rule"])
        held = rows.take(scored)
        combined[scored] = apply_policy(policy, held.probs, held.margins, held.abstain)
    scores = outer_fold_scores(rows.t, {"combined": combined, **rows.probs}, outer)
    return {"combined": combined, "rules": rules, "scores": scores}


def outer_fold_scores(
    t: Sequence[int] | NDArray[Any],
    probabilities: Mapping[str, NDArray[Any]],
    outer_fold: Sequence[int] | NDArray[Any],
) -> dict[str, dict[str, Any]]:
    """Each path's accuracy in each outer fold (folds in ascending order), with their mean and
    standard deviation: ``{path: {"folds", "mean", "sd"}}``. ``t``: the true label indices."""
    t, outer = np.asarray(t), np.asarray(outer_fold)
    per_fold = {
        path: [float(np.mean(np.asarray(probs)[outer == fold].argmax(axis=1) == t[outer == fold]))
               for fold in sorted(set(outer.tolist()))]
        for path, probs in probabilities.items()
    }  # fmt: skip
    return {name: {"folds": [round(s, 4) for s in values],
                   "mean": round(float(np.mean(values)), 4),
                   "sd": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)}
            for name, values in per_fold.items()}  # fmt: skip

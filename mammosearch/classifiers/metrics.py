"""Clinical metrics of density predictions, shared by every ``evaluate`` command.

Accuracy, macro-F1, per-class recall, linear and quadratic-weighted Cohen's kappa (scikit-learn),
dense (C/D) vs non-dense (A/B) accuracy when the labels are BI-RADS, the confusion matrix (also
as a PNG plot), and bootstrap 95% confidence intervals that resample patients, not images (the
views of one patient are not independent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["density_metrics", "plot_confusion"]

_BIRADS = ("A", "B", "C", "D")
_BOOTSTRAP = 1000


def _scores(truth: Sequence[int], predicted: Sequence[int], classes: list[int]) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score, f1_score, recall_score

    t, p = np.asarray(truth), np.asarray(predicted)
    # kappa is defined when chance could disagree: two different classes among the rows whose
    # truth and prediction are both labels (a missing prediction is -1); else it is reported 0
    inside = np.isin(t, classes) & np.isin(p, classes)
    kappa_ok = len(set(t[inside].tolist()) | set(p[inside].tolist())) > 1
    return {
        "accuracy": float(np.mean(t == p)),
        "macro_f1": float(f1_score(t, p, average="macro", labels=classes, zero_division=0)),
        "linear_kappa": float(cohen_kappa_score(t, p, weights="linear", labels=classes))
        if kappa_ok
        else 0.0,
        "quadratic_kappa": float(cohen_kappa_score(t, p, weights="quadratic", labels=classes))
        if kappa_ok
        else 0.0,
        "per_class_recall": recall_score(t, p, average=None, labels=classes, zero_division=0),
    }


def density_metrics(
    truth: Sequence[str],
    predicted: Sequence[str | None],
    labels: Sequence[str],
    *,
    patients: Sequence[str] | None = None,
    bootstrap: int = _BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of density predictions against truth.

    Args:
        truth: True labels.
        predicted: Predicted labels (``None`` counts as wrong).
        labels: The label set in its order (kappa weights follow it).
        patients: Patient of each prediction; with it, 95% intervals resample patients.
        bootstrap: Resamples for the intervals (0 for none).
        seed: Seed of the resampling.

    Returns:
        ``n``, ``accuracy``, ``macro_f1``, ``linear_kappa``, ``quadratic_kappa``,
        ``per_class_recall``, ``confusion_matrix`` (rows truth, columns prediction), the
        ``majority_rate``, ``dense_accuracy`` for BI-RADS labels, and ``ci95`` intervals.
    """
    from sklearn.metrics import confusion_matrix

    order = {label: i for i, label in enumerate(labels)}
    t = [order[x] for x in truth]
    p = [order.get(x, -1) if x is not None else -1 for x in predicted]
    classes = list(range(len(labels)))
    base = _scores(t, p, classes)
    out: dict[str, Any] = {
        "n": len(t),
        "labels": list(labels),
        "accuracy": round(base["accuracy"], 4),
        "macro_f1": round(base["macro_f1"], 4),
        "linear_kappa": round(base["linear_kappa"], 4),
        "quadratic_kappa": round(base["quadratic_kappa"], 4),
        "per_class_recall": {
            lab: round(float(v), 4) for lab, v in zip(labels, base["per_class_recall"], strict=True)
        },  # fmt: skip
        "confusion_matrix": confusion_matrix(t, p, labels=classes).tolist(),
        "majority_rate": round(max(t.count(c) for c in set(t)) / len(t), 4) if t else 0.0,
    }
    if set(labels) <= set(_BIRADS):
        dense = {order[x] for x in ("C", "D") if x in order}
        out["dense_accuracy"] = round(
            float(np.mean([(a in dense) == (b in dense) for a, b in zip(t, p, strict=True)])), 4
        )
    if bootstrap and patients is not None and len(set(patients)) > 1:
        out["ci95"] = _bootstrap(t, p, classes, list(patients), bootstrap, seed)
    return out


def _bootstrap(
    t: list[int], p: list[int], classes: list[int], patients: list[str], rounds: int, seed: int
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, patient in enumerate(patients):
        groups.setdefault(patient, []).append(i)
    keys = list(groups)
    members = [np.asarray(groups[key]) for key in keys]
    draws: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "quadratic_kappa": []}
    ta, pa = np.asarray(t), np.asarray(p)
    for _ in range(rounds):
        chosen = rng.choice(len(keys), size=len(keys), replace=True)
        idx = np.concatenate([members[c] for c in chosen])
        for name, value in zip(draws, _resample_scores(ta[idx], pa[idx], len(classes)),
                               strict=True):  # fmt: skip
            draws[name].append(value)
    return {name: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]
            for name, v in draws.items()}  # fmt: skip


def _resample_scores(t: NDArray[np.int64], p: NDArray[np.int64], k: int) -> tuple[float, ...]:
    """Accuracy, macro-F1 and quadratic kappa of one resample, as :func:`_scores` computes them
    with scikit-learn (a test holds them equal), from the counts of ``k`` classes ``0..k-1``
    (a prediction of ``-1`` is none): a thousand resamples in milliseconds instead of seconds of
    scikit-learn's per-call validation."""
    hit = t == p
    tp = np.bincount(t[hit], minlength=k)[:k].astype(np.float64)
    given = p >= 0
    fp = np.bincount(p[given], minlength=k)[:k] - tp
    fn = np.bincount(t, minlength=k)[:k] - tp
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    kappa = 0.0
    inside_t, inside_p = t[given], p[given]
    if len(set(inside_t.tolist()) | set(inside_p.tolist())) > 1:  # as _scores: else 0
        confusion = np.bincount(inside_t * k + inside_p, minlength=k * k).reshape(k, k)
        expected = np.outer(confusion.sum(axis=0), confusion.sum(axis=1)) / confusion.sum()
        weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2
        kappa = float(1 - np.sum(weights * confusion) / np.sum(weights * expected))
    return float(np.mean(hit)), float(f1.mean()), kappa


def plot_confusion(metrics: dict[str, Any], path: Path, *, title: str = "") -> Path:
    """Save the confusion matrix of :func:`density_metrics` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = np.asarray(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4, 4), dpi=120)
    ConfusionMatrixDisplay(matrix, display_labels=metrics["labels"]).plot(
        ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title(title or f"accuracy {metrics['accuracy']:.2f}, κ {metrics['quadratic_kappa']:.2f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

"""Density metrics on values reasoned by hand: edge cases, the patient bootstrap, the plot.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md);
tests/classifiers/test_metrics.py holds the main figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammosearch.classifiers.metrics import (
    _resample_scores,
    _scores,
    density_metrics,
    plot_confusion,
)

BIRADS = ["A", "B", "C", "D"]


def test_one_class_has_no_kappa_and_two_have_one() -> None:
    one = density_metrics(["A", "A"], ["A", "A"], BIRADS, bootstrap=0)
    assert (one["linear_kappa"], one["quadratic_kappa"], one["accuracy"]) == (0.0, 0.0, 1.0)
    two = density_metrics(["A", "B"], ["A", "B"], BIRADS, bootstrap=0)
    assert (two["linear_kappa"], two["quadratic_kappa"]) == (1.0, 1.0)
    # one class left once the missing and unknown answers are set aside: no kappa either (0,
    # not scikit-learn's undefined NaN and its warning)
    rest = density_metrics(["A", "B", "C"], ["A", "X", None], BIRADS, bootstrap=0)
    assert (rest["linear_kappa"], rest["quadratic_kappa"], rest["accuracy"]) == (0.0, 0.0, 0.3333)


def test_linear_kappa_weighs_by_distance_over_the_whole_label_set() -> None:
    # C is never stated: B and D stay two apart, as in the label set
    truth, pred = ["A", "B", "D", "D", "B", "A"], ["A", "D", "D", "B", "B", "B"]
    m = density_metrics(truth, pred, BIRADS, bootstrap=0)
    observed = np.array(m["confusion_matrix"], dtype=float)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    i, j = np.indices(observed.shape)
    for name, weights in (("linear_kappa", np.abs(i - j)), ("quadratic_kappa", (i - j) ** 2)):
        by_hand = 1 - (weights * observed).sum() / (weights * expected).sum()
        assert m[name] == round(by_hand, 4), name  # rounded to 4 places
    assert m["per_class_recall"] == {"A": 0.5, "B": 0.5, "C": 0.0, "D": 0.5}  # C: no truth, 0
    assert (m["linear_kappa"], m["quadratic_kappa"]) == (0.3478, 0.4706)  # not the unweighted 0.25
    thirds = density_metrics(["A", "A", "A", "C", "C", "C"], ["A", "B", "B", "C", "B", "D"], BIRADS,
                             bootstrap=0)  # fmt: skip
    assert thirds["per_class_recall"] == {"A": 0.3333, "B": 0.0, "C": 0.3333, "D": 0.0}
    assert thirds["dense_accuracy"] == 0.8333  # only C -> B crosses the dense line


def test_unknown_and_missing_predictions_are_wrong_and_outside_the_matrix() -> None:
    m = density_metrics(["A", "B", "C", "D"], ["A", "Z", None, "D"], BIRADS, bootstrap=0)
    assert m["n"] == 4 and m["labels"] == BIRADS
    assert m["accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert m["per_class_recall"] == {"A": 1.0, "B": 0.0, "C": 0.0, "D": 1.0}
    assert m["majority_rate"] == 0.25
    assert m["dense_accuracy"] == 0.75  # an unknown or missing answer counts as not dense


def test_figures_are_rounded_to_four_places() -> None:
    m = density_metrics(["A", "B", "C"], ["A", "A", "C"], BIRADS, bootstrap=0)
    assert m["accuracy"] == 0.6667 and m["majority_rate"] == 0.3333
    assert m["macro_f1"] == round(m["macro_f1"], 4) and m["macro_f1"] == pytest.approx(
        (2 / 3 + 0 + 1 + 0) / 4, abs=1e-4
    )


def _patients(n: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` patients of 4 images, predictions right 3 times in 4 on a rotating image."""
    truth, pred, patients = [], [], []
    for p in range(n):
        for i, label in enumerate(BIRADS):
            truth.append(label)
            pred.append(label if (i + p) % 4 else BIRADS[(i + 1) % 4])
            patients.append(f"p{p}")
    return truth, pred, patients


def test_bootstrap_is_seeded_resamples_patients_with_replacement() -> None:
    truth, pred, patients = _patients(12)
    noisy = [label if i % 7 else "A" for i, label in enumerate(pred)]  # patients differ
    first = density_metrics(truth, noisy, BIRADS, patients=patients, bootstrap=100, seed=3)
    again = density_metrics(truth, noisy, BIRADS, patients=patients, bootstrap=100, seed=3)
    assert first["ci95"] == again["ci95"]
    other = density_metrics(truth, noisy, BIRADS, patients=patients, bootstrap=100, seed=4)
    assert other["ci95"] != first["ci95"]
    for low, high in first["ci95"].values():  # resampled with replacement: the intervals open
        assert low < high and round(low, 4) == low and round(high, 4) == high
        assert isinstance(high, float) and 0 < high < 1
    # the default seed is 0
    default = density_metrics(truth, noisy, BIRADS, patients=patients, bootstrap=100)
    assert default["ci95"] == density_metrics(truth, noisy, BIRADS, patients=patients,
                                              bootstrap=100, seed=0)["ci95"]  # fmt: skip
    assert default["ci95"] != first["ci95"]
    assert set(first["ci95"]) == {"accuracy", "macro_f1", "quadratic_kappa"}


def test_bootstrap_needs_two_patients_and_rounds() -> None:
    truth, pred, patients = _patients(3)
    assert "ci95" not in density_metrics(truth, pred, BIRADS, patients=["p"] * 12, bootstrap=50)
    assert "ci95" not in density_metrics(truth, pred, BIRADS, patients=patients, bootstrap=0)
    assert "ci95" not in density_metrics(truth, pred, BIRADS, bootstrap=50)
    assert "ci95" in density_metrics(truth, pred, BIRADS, patients=patients, bootstrap=50)
    two = ["p0"] * 6 + ["p1"] * 6
    assert "ci95" in density_metrics(truth, pred, BIRADS, patients=two, bootstrap=50)


def test_bootstrap_scores_every_resample_over_the_whole_label_set() -> None:
    # perfect predictions; class D only in patient 0 of 10. A resample without patient 0
    # (about 35% of them) has no D, which counts as an F1 of 0: macro-F1 0.75, not 1.
    truth = ["D", "A"] + ["A", "B", "C"] * 9
    patients = ["p0", "p0"] + [f"p{1 + i // 3}" for i in range(27)]
    m = density_metrics(truth, truth, BIRADS, patients=patients, bootstrap=200)
    assert m["ci95"]["macro_f1"] == [0.75, 1.0]
    assert m["ci95"]["accuracy"] == [1.0, 1.0]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_plot_size_colours_title_and_labels(tmp_path: Path) -> None:
    m = density_metrics(["F", "G", "D", "D"], ["F", "D", "D", "G"], ["F", "G", "D"])
    path = plot_confusion(m, tmp_path / "a" / "b" / "cm.png")  # folders are made
    pixels = _pixels(path)
    assert pixels.shape == (480, 480, 3)  # 4 x 4 inches at 120 dpi
    # the fullest cell takes the darkest colour of the Blues map
    assert (np.abs(pixels.astype(int) - [8, 48, 107]).sum(axis=2) <= 3).any()
    default_title = f"accuracy {m['accuracy']:.2f}, κ {m['quadratic_kappa']:.2f}"
    titled = plot_confusion(m, tmp_path / "titled.png", title=default_title)
    np.testing.assert_array_equal(_pixels(titled), pixels)
    other = plot_confusion(m, tmp_path / "other.png", title="another title")
    assert not np.array_equal(_pixels(other), pixels)
    relabelled = plot_confusion({**m, "labels": ["X", "Y", "Z"]}, tmp_path / "xyz.png")
    assert not np.array_equal(_pixels(relabelled), pixels)  # the axes carry the labels
    # no colour bar: it would add a gradient of several hundred shades (about 200 without it)
    colours = {tuple(p) for p in pixels.reshape(-1, 3) if not p[0] == p[1] == p[2]}
    assert len(colours) < 400


def test_resample_scores_are_scikit_learns() -> None:
    """The bootstrap's fast scores equal scikit-learn's (``_scores``) on samples of every kind:
    missing predictions (-1), classes absent from truth or predictions, one class only."""
    rng = np.random.default_rng(5)
    cases = [(np.array([1, 1, 1]), np.array([1, 1, 1])),  # one class: kappa reported 0
             (np.array([0, 2, 2, 1]), np.array([-1, -1, -1, -1])),  # nothing predicted
             (np.array([0, 0, 3]), np.array([0, 1, 3]))]  # fmt: skip
    for _ in range(300):
        n = int(rng.integers(1, 40))
        t = rng.integers(0, 4, n)
        p = np.where(
            rng.random(n) < 0.1, -1, np.where(rng.random(n) < 0.6, t, rng.integers(0, 4, n))
        )
        cases.append((t, p))
    for t, p in cases:
        reference = _scores(t.tolist(), p.tolist(), [0, 1, 2, 3])
        fast = _resample_scores(t, p, 4)
        expected = (reference["accuracy"], reference["macro_f1"], reference["quadratic_kappa"])
        np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-12)

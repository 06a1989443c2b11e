from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammosearch.classifiers.metrics import density_metrics, plot_confusion


def test_perfect_and_known_values() -> None:
    m = density_metrics(["A", "B", "C", "D"], ["A", "B", "C", "D"], ["A", "B", "C", "D"])
    assert (m["accuracy"], m["macro_f1"], m["quadratic_kappa"], m["dense_accuracy"]) == (1, 1, 1, 1)
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_ordinal_kappa_and_dense_split() -> None:
    truth = ["A", "A", "B", "B", "C", "C", "D", "D"]
    near = ["A", "B", "B", "C", "C", "D", "D", "D"]  # off by one at most
    far = ["D", "D", "D", "A", "A", "A", "A", "B"]
    m_near = density_metrics(truth, near, ["A", "B", "C", "D"], bootstrap=0)
    m_far = density_metrics(truth, far, ["A", "B", "C", "D"], bootstrap=0)
    assert m_near["quadratic_kappa"] > m_near["linear_kappa"] > 0 > m_far["quadratic_kappa"]
    assert m_near["dense_accuracy"] == pytest.approx(7 / 8)
    assert m_near["per_class_recall"]["A"] == 0.5


def test_mias_labels_have_no_dense_split_and_none_is_wrong() -> None:
    m = density_metrics(["F", "G", "D"], ["F", None, "D"], ["F", "G", "D"], bootstrap=0)
    assert "dense_accuracy" not in m and m["accuracy"] == pytest.approx(2 / 3, abs=1e-4)


def test_bootstrap_by_patient() -> None:
    truth = ["A", "B", "C", "D"] * 10
    pred = ["A", "B", "C", "C"] * 10
    patients = [f"p{i // 4}" for i in range(40)]
    m = density_metrics(truth, pred, ["A", "B", "C", "D"], patients=patients, bootstrap=200)
    low, high = m["ci95"]["accuracy"]
    assert low <= m["accuracy"] <= high


def test_plot(tmp_path: Path) -> None:
    m = density_metrics(["F", "G", "D", "D"], ["F", "D", "D", "G"], ["F", "G", "D"])
    path = plot_confusion(m, tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_keep_their_given_order_not_the_alphabets() -> None:
    """MIAS runs F < G < D (fatty, glandular, dense): the confusion matrix's rows and columns and
    the kappa weights follow that order, never the sorted one (D, F, G)."""
    truth = ["F", "F", "F", "G", "G", "D", "D", "D"]
    pred = ["F", "G", "G", "G", "G", "D", "D", "F"]
    m = density_metrics(truth, pred, ["F", "G", "D"], bootstrap=0)
    # rows: truth F, G, D; columns: predicted F, G, D
    assert m["confusion_matrix"] == [[1, 2, 0], [0, 2, 0], [1, 0, 2]]
    assert m["per_class_recall"] == {"F": pytest.approx(1 / 3, abs=1e-4), "G": 1.0,
                                     "D": pytest.approx(2 / 3, abs=1e-4)}  # fmt: skip
    # quadratic kappa by hand: weights (i - j)² / (k - 1)² over the F, G, D order
    observed = np.array(m["confusion_matrix"], dtype=float)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    i, j = np.indices(observed.shape)
    weights = (i - j) ** 2 / 4
    by_hand = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert m["quadratic_kappa"] == pytest.approx(by_hand, abs=1e-4)
    reversed_order = density_metrics(truth, pred, ["D", "G", "F"], bootstrap=0)
    assert reversed_order["confusion_matrix"] == [[2, 0, 1], [0, 2, 0], [0, 2, 1]]


def test_dense_split_is_c_and_d_against_a_and_b() -> None:
    truth = ["A", "A", "A", "B", "C", "D"]
    pred = ["B", "B", "B", "C", "D", "C"]  # A→B and C↔D keep the side; B→C crosses it
    m = density_metrics(truth, pred, ["A", "B", "C", "D"], bootstrap=0)
    assert m["accuracy"] == 0.0 and m["dense_accuracy"] == pytest.approx(5 / 6, abs=1e-4)

from __future__ import annotations

from pathlib import Path

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

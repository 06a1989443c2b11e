"""Heads on frozen embeddings: the linear probe and zero-shot prompt ensembles."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from mammosearch.classifiers import LinearProbe, ZeroShotDensity, density_prompts
from mammosearch.cli import app
from mammosearch.embeddings import create_embedder
from mammosearch.errors import InputError, ModelLoadError
from mammosearch.pipeline import evaluate_probe, evaluate_zero_shot
from tests.conftest import write_manifest
from tests.test_cases import breast_png

runner = CliRunner()
LABELS = ["F", "G", "D"]


def separable(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Vectors whose first coordinate carries the class, with noise elsewhere."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 12))
    x[:, 0] += 4.0 * y
    return x.astype(np.float32), [LABELS[i] for i in y], [f"p{i // 2}" for i in range(n)]


def test_probe_learns_saves_and_loads(tmp_path: Path) -> None:
    x, y, patients = separable(90)
    probe = LinearProbe.fit(x, y, patients, LABELS)
    test_x, test_y, _ = separable(60, seed=1)
    accuracy = np.mean(np.asarray(probe.predict(test_x)) == np.asarray(test_y))
    assert accuracy > 0.85  # chance is 1/3; the Bayes rate about 0.9
    assert probe.info["C"] in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0) and probe.info["folds"] == 5
    probe.save(tmp_path)
    again = LinearProbe.load(tmp_path)
    np.testing.assert_allclose(again.predict_proba(test_x), probe.predict_proba(test_x), atol=1e-6)


def test_probe_with_a_class_missing_never_predicts_it() -> None:
    x, y, patients = separable(60)
    keep = [i for i, label in enumerate(y) if label != "G"]
    probe = LinearProbe.fit(x[keep], [y[i] for i in keep], [patients[i] for i in keep], LABELS)
    probs = probe.predict_proba(x)
    assert probs.shape == (60, 3) and np.allclose(probs[:, 1], 0.0)
    assert set(probe.predict(x)) <= {"F", "D"}


def test_probe_errors(tmp_path: Path) -> None:
    x, y, patients = separable(12)
    with pytest.raises(InputError, match="two density classes"):
        LinearProbe.fit(x, ["F"] * 12, patients, LABELS)
    with pytest.raises(InputError, match="outside the label set"):
        LinearProbe.fit(x, ["X"] * 12, patients, LABELS)
    with pytest.raises(InputError, match="12-dimensional"):
        LinearProbe.fit(x, y, patients, LABELS).predict_proba(x[:, :5])
    with pytest.raises(ModelLoadError, match="no linear probe"):
        LinearProbe.load(tmp_path)


def test_prompts_cover_both_label_sets(tmp_path: Path) -> None:
    birads = density_prompts(["A", "B", "C", "D"])
    mias = density_prompts(LABELS)
    assert set(birads) == set("ABCD") and set(mias) == set(LABELS)
    assert all(len(p) >= 12 for p in [*birads.values(), *mias.values()])  # an ensemble each
    assert "extremely dense breasts" in " ".join(birads["D"])
    assert "dense-glandular" in " ".join(mias["D"])
    with pytest.raises(InputError, match="no zero-shot prompts"):
        density_prompts(["low", "high"])
    custom = tmp_path / "p.json"
    custom.write_text(json.dumps({"low": ["a fatty breast"], "high": ["a dense breast"]}))
    assert density_prompts(["low", "high"], custom) == {
        "low": ["a fatty breast"],
        "high": ["a dense breast"],
    }


def test_zero_shot_scores_images_against_class_vectors(tiny_model_dir: Path) -> None:
    embedder = create_embedder("biomedclip.v1", source=f"local-dir:{tiny_model_dir}")
    head = ZeroShotDensity(embedder, ["A", "B", "C", "D"])
    assert head.class_vectors.shape == (4, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(head.class_vectors, axis=1), 1.0, atol=1e-5)
    assert head.logit_scale == pytest.approx(embedder.logit_scale)
    # the random tiny text tower maps all prompts close together: score against distinct vectors
    head.class_vectors = np.eye(4, embedder.dim, dtype=np.float32)
    images = np.eye(4, embedder.dim, dtype=np.float32)[[2, 0, 3]] + 0.1
    assert head.predict(images) == ["C", "A", "D"]
    probs = head.predict_proba(images)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and probs[0, 2] > 0.99


def test_zero_shot_needs_an_image_text_model() -> None:
    with pytest.raises(InputError, match="image-text model"):
        ZeroShotDensity(create_embedder("radiomics.v1"), LABELS)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("heads")
    (folder / "img").mkdir()
    rows = []
    for i in range(30):
        label = LABELS[i % 3]
        breast_png(folder / "img" / f"{i}.png", 0.1 + 0.35 * (i % 3), i)
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "density": label})  # fmt: skip
    write_manifest(folder / "manifest.csv", rows)
    return folder / "manifest.csv"


def test_evaluate_probe_on_radiomics(manifest: Path, tmp_path: Path) -> None:
    scores = evaluate_probe(manifest, embedder="radiomics.v1", folds=3, save=tmp_path / "probe")
    assert scores["n"] == 30 and scores["embedder"] == "radiomics.v1"
    assert scores["accuracy"] > scores["majority_rate"]  # the density signal is learnable
    saved = LinearProbe.load(tmp_path / "probe")
    assert saved.labels == LABELS and saved.info["embedder"] == "radiomics.v1"
    assert len(saved.info["embedder_stats"]["mean"]) == saved.coef.shape[1]


def test_evaluate_zero_shot_and_cli(manifest: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    model = f"local-dir:{tiny_model_dir}"
    scores = evaluate_zero_shot(manifest, embedder="biomedclip.v1", model=model)
    assert scores["n"] == 30 and scores["prompts"] == 3 * 6 * 4
    assert sum(map(sum, scores["confusion_matrix"])) == 30
    plot = tmp_path / "cm.png"
    result = runner.invoke(app, ["evaluate", "zero-shot", str(manifest), "--embedder",
                                 "biomedclip.v1", "--model", model, "--json", "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == scores["accuracy"] and plot.stat().st_size
    result = runner.invoke(app, ["evaluate", "zero-shot", str(manifest), "--embedder",
                                 "radiomics.v1"])  # fmt: skip
    assert result.exit_code != 0 and "image-text model" in result.output
    result = runner.invoke(app, ["evaluate", "probe", str(manifest), "--embedder", "radiomics.v1",
                                 "--folds", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "linear probe" in result.stdout and "quadratic_kappa" in result.stdout


class PromptVectors:
    """A cross-modal stand-in whose prompts map to chosen, far-apart unit vectors."""

    name, model_id, dim, supports_cross_modal, logit_scale = "stub.v1", "stub", 4, True, 10.0
    table = {"fat a": [1, 0, 0, 0], "fat b": [0, 1, 0, 0], "dense a": [0, 0, 1, 0],
             "dense b": [0, 0, 0, 1]}  # fmt: skip

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.asarray([self.table[t] for t in texts], dtype=np.float32)


def test_zero_shot_class_vectors_are_unit_means_and_probabilities_a_scaled_softmax() -> None:
    head = ZeroShotDensity(PromptVectors(), ["low", "high"],
                           {"low": ["fat a", "fat b"], "high": ["dense a", "dense b"]})  # fmt: skip
    half = np.sqrt(0.5)
    np.testing.assert_allclose(head.class_vectors, [[half, half, 0, 0], [0, 0, half, half]],
                               atol=1e-6)  # fmt: skip
    images = np.asarray([[0.8, 0.6, 0, 0], [0, 0.6, 0.8, 0], [0, 0, 0, 1]], dtype=np.float32)
    sims = np.asarray([[1.4 * half, 0], [0.6 * half, 0.8 * half], [0, half]])  # by hand
    expected = np.exp(10 * sims) / np.exp(10 * sims).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head.predict_proba(images), expected, atol=1e-5)
    assert head.predict(images) == ["low", "high", "high"]

"""Training that must learn: ConvNeXt and the linear probe on a small synthetic task.

Synthetic phantoms (:func:`mammosearch.samples.phantoms.phantom`) of two clearly different
densities, BI-RADS A (about 8% fibroglandular tissue) and D (about 85%), labelled "fatty" and
"dense" in that order (not the alphabet's), CC and MLO views of both sides, each a patient of
its own, reduced 4× to 160×120 to keep the test fast. A few epochs must lower the training loss,
change the weights and classify held-out phantoms (other seeds) well above chance (0.5): at
least 14 of 16, which a coin reaches with probability 0.002.

The ConvNeXt is timm's ``test_convnext`` (0.2M parameters, the smallest of the family) so that
four epochs take seconds on two cores; the training loop is the one every architecture runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammosearch.classifiers import LinearProbe
from mammosearch.classifiers.convnext import ConvNeXtDensity, TrainConfig, train_convnext
from mammosearch.samples.phantoms import phantom

Data = tuple[list[np.ndarray], list[str], list[str]]
DENSITY = {"A": "fatty", "D": "dense"}  # phantom class → label
LABELS = ["fatty", "dense"]  # in their order, which is not the alphabet's
HELD_OUT_ACCURACY = 14 / 16
FAST = TrainConfig(arch="test_convnext", image_size=48, patch=0, epochs=4, batch_size=8,
                   init=None, patience=100, drop_path=0.0)  # fmt: skip


def phantoms(n: int, first_seed: int) -> Data:
    images, labels, patients = [], [], []
    for i in range(n):
        density = "AD"[i % 2]
        view, side = ("CC", "MLO")[i // 2 % 2], "RL"[i // 4 % 2]
        pixels = phantom(density, view, side, seed=first_seed + i).astype(np.float32) / 255
        images.append(pixels.reshape(160, 4, 120, 4).mean(axis=(1, 3)))  # 640×480 → 160×120
        labels.append(DENSITY[density])
        patients.append(f"p{first_seed + i}")
    return images, labels, patients


@pytest.fixture(scope="module")
def train() -> Data:
    return phantoms(24, first_seed=0)


@pytest.fixture(scope="module")
def held_out() -> Data:
    return phantoms(16, first_seed=1000)


def accuracy(predicted: list[str], truth: list[str]) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def cross_entropy(probabilities: np.ndarray, truth: list[str]) -> float:
    rows = np.arange(len(truth))
    columns = [LABELS.index(t) for t in truth]
    return float(-np.mean(np.log(np.maximum(probabilities[rows, columns], 1e-12))))


def test_convnext_training_lowers_the_loss_changes_the_weights_and_generalises(
    train: Data, held_out: Data
) -> None:
    from dataclasses import replace

    # zero epochs: the network as it starts (same seed, so the same initial weights)
    start = train_convnext(*train, LABELS, replace(FAST, epochs=0))
    trained = train_convnext(*train, LABELS, FAST)
    history = trained.config["history"]
    assert len(history) == FAST.epochs
    # the loss the loop reports falls, well below chance level (log 2 for two classes)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert history[-1]["loss"] < 0.5 * math.log(2)
    # measured independently: cross-entropy on the training images, without augmentation
    before = cross_entropy(start.predict_proba(train[0]), train[1])
    after = cross_entropy(trained.predict_proba(train[0]), train[1])
    assert after < 0.75 * before, (before, after)
    assert weight_change(start, trained) > 1e-4
    assert accuracy(start.predict(held_out[0]), held_out[1]) < HELD_OUT_ACCURACY  # not by luck
    assert accuracy(trained.predict(held_out[0]), held_out[1]) >= HELD_OUT_ACCURACY


def weight_change(a: ConvNeXtDensity, b: ConvNeXtDensity) -> float:
    """The largest absolute difference of any weight of two networks of one architecture."""
    first, second = a.model.state_dict(), b.model.state_dict()
    assert first.keys() == second.keys()
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def test_linear_probe_on_radiomics_vectors_learns_and_generalises(
    train: Data, held_out: Data
) -> None:
    from mammosearch.embeddings.radiomics import RadiomicsEmbedder

    embedder = RadiomicsEmbedder()
    features = embedder.features(train[0])
    embedder.set_stats({"mean": features.mean(0).tolist(), "std": features.std(0).tolist()})
    vectors = embedder.embed_features(features)
    probe = LinearProbe.fit(vectors, train[1], train[2], LABELS)
    assert probe.coef.shape == (2, vectors.shape[1]) and np.abs(probe.coef).max() > 0
    # the fitted probe's training loss is far below the constant predictor's (log 2)
    assert cross_entropy(probe.predict_proba(vectors), train[1]) < 0.5 * math.log(2)
    test_vectors = embedder.embed_features(embedder.features(held_out[0]))
    assert accuracy(probe.predict(test_vectors), held_out[1]) >= HELD_OUT_ACCURACY
    # the two-class case keeps each label's column: dense phantoms get "dense"'s probability
    probabilities = probe.predict_proba(test_vectors)
    dense = np.asarray(held_out[1]) == "dense"
    assert probabilities[dense, 1].mean() > 0.75 and probabilities[~dense, 0].mean() > 0.75

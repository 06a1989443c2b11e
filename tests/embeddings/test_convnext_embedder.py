"""``convnext.v1`` vectors are the density model's own penultimate features.

The embedder reads the model directory without importing :mod:`mammosearch.classifiers`, so it
repeats the classifier's preprocessing (breast square, pectoral muscle, mean/std); this holds
the two equal: the embedder's vectors must point where the input of the model's last linear
layer points while :meth:`ConvNeXtDensity.predict_proba` runs on the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mammosearch.classifiers.convnext import ConvNeXtDensity, TrainConfig, train_convnext
from mammosearch.embeddings import create_embedder
from mammosearch.imaging import patch_windows, tissue_square
from mammosearch.samples.phantoms import phantom


def breasts(n: int) -> list[np.ndarray]:
    views = [phantom("ABCD"[i % 4], ("CC", "MLO")[i % 2], "R", seed=50 + i) for i in range(n)]
    return [(v.astype(np.float32) / 255).reshape(160, 4, 120, 4).mean(axis=(1, 3)) for v in views]


@pytest.fixture(scope="module", params=[0, 32], ids=["whole", "patches"])
def model_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A density model at its (seeded, random) initial weights: no training needed here; one
    that reads the whole input and one that reads 32 px patches of it."""
    out = tmp_path_factory.mktemp("convnext") / "model"
    images = breasts(4)
    config = TrainConfig(arch="test_convnext", image_size=96, patch=request.param, epochs=0,
                         init=None)  # fmt: skip
    train_convnext(images, ["A", "D"] * 2, ["p0", "p1", "p2", "p3"], ["A", "D"], config, out=out)
    return out


@pytest.mark.parametrize("without_pectoral", [True, False])
def test_vectors_are_the_classifiers_penultimate_features(
    model_dir: Path, without_pectoral: bool
) -> None:
    import json

    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["without_pectoral"] = config["preprocessing"]["without_pectoral"] = without_pectoral
    config_path.write_text(json.dumps(config), encoding="utf-8")
    images = breasts(6)
    classifier = ConvNeXtDensity.load(model_dir)
    captured: list[np.ndarray] = []
    hook = classifier.model.get_classifier().register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach().numpy().copy())
    )
    try:
        classifier.predict_proba(images)
    finally:
        hook.remove()
    features = np.concatenate(captured)
    if classifier.patch:  # one row a window: the image's is the mean of its windows'
        squares = np.stack([tissue_square(i, classifier.image_size, without_pectoral=without_pectoral)
                            for i in images])  # fmt: skip
        owner = patch_windows(torch.from_numpy(squares), classifier.patch)[1].numpy()
        assert len(owner) == len(features) > len(images)
        features = np.stack([features[owner == i].mean(axis=0) for i in range(len(images))])
    embedder = create_embedder("convnext.v1", source=f"local-dir:{model_dir}")
    vectors = embedder.embed_images(images)
    assert vectors.shape == (6, embedder.dim) == features.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosines = np.sum(vectors * unit, axis=1)
    assert np.all(cosines >= 0.999), cosines
    # the images differ to the model: agreement is not an accident of a flat network
    assert np.min(unit @ unit.T) < 0.99

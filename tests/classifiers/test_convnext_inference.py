"""ConvNeXt density inference through the data path of :mod:`mammosearch.accel` computes
what a plain forward computes (on the CPU here; on CUDA, with fp16 autocast, where present)."""

from __future__ import annotations

import numpy as np

from mammosearch.classifiers.convnext import TrainConfig, tissue_inputs, train_convnext

TINY = TrainConfig(image_size=64, patch=0, epochs=1, batch_size=4)  # test_convnext.py's too


def images(n: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Random images of three brightness levels, their labels and patients (two images each)."""
    rng = np.random.default_rng(0)
    imgs = [(rng.random((90, 60)) * (0.3 + 0.3 * (i % 3))).astype(np.float32) for i in range(n)]
    return imgs, ["FGD"[i % 3] for i in range(n)], [f"p{i // 2}" for i in range(n)]


def test_predictions_equal_a_plain_forward_whatever_the_workers_and_batches() -> None:
    """The data path (inputs by worker processes, device batches, one wait) computes what a
    plain forward of the tissue squares computes: softmax of the network, averaged."""
    import torch

    from mammosearch.imaging import tissue_square

    imgs, labels, patients = images(12)
    model = train_convnext(imgs, labels, patients, ["F", "G", "D"], TINY)
    squares = np.stack([tissue_square(i, 64, without_pectoral=model.without_pectoral)
                        for i in imgs])  # fmt: skip
    device = next(model.model.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy((squares[:, None] - 0.5) / 0.25).to(device)
        expected = torch.softmax(model.model.eval()(x), dim=1).cpu().numpy()
    tolerance = 1e-5 if device.type == "cpu" else 5e-3  # fp16 autocast on CUDA
    ours = model.predict_proba(imgs, batch_size=5, workers=2)
    np.testing.assert_allclose(ours, expected, atol=tolerance)
    inputs = tissue_inputs(imgs, 64, model.without_pectoral, workers=2)
    np.testing.assert_array_equal(inputs, squares)
    np.testing.assert_allclose(model.predict_inputs(inputs, batch_size=12), expected,
                               atol=tolerance)  # fmt: skip
    assert model.predict_proba([]).shape == (0, 3)

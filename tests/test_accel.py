"""The data path of the image models (mammosearch.accel), on CPU tensors: the device-side
square fit equals Pillow's, batches keep order and shape, the worker pool keeps order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mammosearch.accel import device_batches, fit_square_batch, parallel_map
from mammosearch.imaging import fit_square


def smooth(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random(shape), 3.0) * 3 - 1
    return np.clip(field, 0, 1).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((512, 512), 224), ((512, 400), 224), ((300, 500), 224), ((512, 512), 128),
     ((100, 80), 224), ((224, 224), 224)],
)  # fmt: skip
def test_fit_square_batch_equals_pillows_fit_square(shape: tuple[int, int], size: int) -> None:
    images = [smooth(shape, seed) for seed in range(3)]
    ours = fit_square_batch(torch.from_numpy(np.stack(images)), size)
    assert ours.shape == (3, 1, size, size)
    for image, square in zip(images, ours[:, 0].numpy(), strict=True):
        np.testing.assert_allclose(square, fit_square(image, size), atol=1e-5)


def test_fit_square_batch_keeps_the_chest_wall_left_and_centres_vertically() -> None:
    image = np.ones((100, 50), dtype=np.float32)
    square = fit_square_batch(torch.from_numpy(image[None]), 20)[0, 0].numpy()
    assert square[:, :10].min() > 0.999 and square[:, 10:].max() == 0.0
    wide = fit_square_batch(torch.from_numpy(np.ones((50, 100), np.float32)[None]), 20)[0, 0]
    assert wide[:5].max() == 0.0 and wide[5:15].min() > 0.999 and wide[15:].max() == 0.0


def test_device_batches_keep_order_and_split_at_shape_changes() -> None:
    arrays = [np.full((4, 4), i, np.float32) for i in range(5)]
    arrays += [np.full((2, 3), i, np.float32) for i in range(5, 7)]
    batches = list(device_batches(arrays, 2, "cpu"))
    assert [tuple(b.shape) for b in batches] == [(2, 4, 4), (2, 4, 4), (1, 4, 4), (2, 2, 3)]
    values = [float(image[0, 0]) for batch in batches for image in batch]
    assert values == list(range(7))
    assert all(b.dtype == torch.float32 for b in batches)
    assert list(device_batches([], 4, "cpu")) == []


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_keeps_order(workers: int) -> None:
    items = list(range(40))
    assert list(parallel_map(_square, items, workers=workers)) == [x * x for x in items]


def _pid(_: int) -> int:
    import os

    return os.getpid()


def test_parallel_map_uses_worker_processes_only_when_worth_it() -> None:
    import os

    assert set(parallel_map(_pid, list(range(20)), workers=2)) - {os.getpid()}
    assert set(parallel_map(_pid, list(range(3)), workers=2)) == {os.getpid()}

"""The ConvNeXt on patches (``TrainConfig.patch``): which windows an image is read on, how their
scores make the image's, what training draws and how it turns them, and that a patch model
learns (the phantom task of ``test_learning.py``) and is read the same by the embedder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mammosearch.classifiers.convnext import (
    ConvNeXtDensity,
    TrainConfig,
    _augment_patches,
    _jitter,
    _patch_origins,
    _patch_scores,
    _patches,
    _probabilities,
    train_convnext,
)
from mammosearch.errors import InputError
from mammosearch.imaging import MIN_PATCH_TISSUE, patch_windows, tissue_square
from tests.classifiers.test_learning import FAST, LABELS, accuracy, cross_entropy, held_out, train

__all__ = ["held_out", "train"]  # the fixtures, imported for pytest

S, P = 64, 16  # input side and patch side: windows on a stride of 8, a 7×7 grid


def square(rows: slice, cols: slice, seed: int = 0) -> np.ndarray:
    """An input with breast (values 0.1–0.9, every pixel different) in ``rows × cols`` only."""
    out = np.zeros((S, S), dtype=np.float32)
    block = out[rows, cols]
    out[rows, cols] = np.random.default_rng(seed).uniform(0.1, 0.9, block.shape)
    return out


def mostly_breast(x: np.ndarray, stride: int) -> list[tuple[int, int]]:
    """Corners of the ``stride`` grid's P×P windows that are at least 80% breast, by hand."""
    return [(r, c) for r in range(0, S - P + 1, stride) for c in range(0, S - P + 1, stride)
            if (x[r : r + P, c : c + P] > 0.02).mean() >= MIN_PATCH_TISSUE]  # fmt: skip


def test_an_image_is_read_on_its_mostly_breast_windows_and_never_on_none() -> None:
    big = square(slice(0, 41), slice(0, 30))  # windows of it are 0%, partly or wholly breast
    small = square(slice(30, 40), slice(30, 40), seed=1)  # no window is 80% breast
    corners = mostly_breast(big, P // 2)
    assert 4 <= len(corners) < 49  # some windows, not all
    windows, owner = patch_windows(torch.from_numpy(np.stack([big, small])), P)
    assert owner.tolist() == [0] * len(corners) + [1]
    expected = np.stack([big[r : r + P, c : c + P] for r, c in corners])
    np.testing.assert_array_equal(windows[: len(corners), 0].numpy(), expected)
    # the small breast: the one window with the most breast (rows and columns 24–40 hold
    # 10×10 of its pixels; the first such window in row-major order)
    shares = [(small[r : r + P, c : c + P] > 0.02).mean() for r in range(0, 49, 8)
              for c in range(0, 49, 8)]  # fmt: skip
    best = int(np.argmax(shares))
    r, c = best // 7 * 8, best % 7 * 8
    np.testing.assert_array_equal(windows[-1, 0].numpy(), small[r : r + P, c : c + P])


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16, 3),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("flip", [False, True])
def test_an_image_scores_the_mean_of_its_windows_log_probabilities(flip: bool) -> None:
    images = [square(slice(0, 41), slice(0, 30)), square(slice(8, 64), slice(0, 64), seed=2)]
    net = network()
    with torch.inference_mode():
        scores = _patch_scores(net, torch.from_numpy(np.stack(images)), flip, P)
        for i, image in enumerate(images):
            windows = torch.from_numpy(np.stack(
                [image[r : r + P, c : c + P] for r, c in mostly_breast(image, P // 2)]
            )[:, None])  # fmt: skip
            x = (windows - 0.5) / 0.25
            log_p = torch.log_softmax(net(x), dim=1)
            if flip:
                log_p = (log_p + torch.log_softmax(net(x.flip(-2)), dim=1)) / 2
            torch.testing.assert_close(scores[i], log_p.mean(dim=0))
        probabilities = _probabilities(net, torch.from_numpy(np.stack(images)), flip, P)
    torch.testing.assert_close(probabilities, torch.softmax(scores, dim=1))


def test_training_draws_mostly_breast_windows_on_an_eighth_patch_grid() -> None:
    big = square(slice(0, 41), slice(0, 30))
    corners = _patch_origins(torch.from_numpy(big), P)
    assert [tuple(c) for c in corners.tolist()] == mostly_breast(big, P // 8)
    small = square(slice(30, 40), slice(30, 40))
    assert _patch_origins(torch.from_numpy(small), P).tolist() == [[24, 24]]  # the first best
    x = torch.from_numpy(np.stack([big, small])[:, None])
    origins = {0: corners, 1: np.array([[24, 24]])}
    idx = np.array([0, 1, 0, 0])
    drawn = _patches(x, idx, origins, P, np.random.default_rng(5))
    replay = np.random.default_rng(5)
    for got, i in zip(drawn, idx, strict=True):
        r, c = origins[i][replay.integers(len(origins[i]))]
        np.testing.assert_array_equal(
            got[0].numpy(), np.stack([big, small])[i, r : r + P, c : c + P]
        )


def test_training_turns_each_patch_by_one_of_the_squares_eight_symmetries() -> None:
    batch = torch.arange(200 * 9, dtype=torch.float32).reshape(200, 1, 3, 3) / 2000
    turned = _augment_patches(batch, np.random.default_rng(3))
    replay = np.random.default_rng(3)
    expected = batch
    for turn in (lambda b: b.flip(-2), lambda b: b.flip(-1), lambda b: b.transpose(-1, -2)):
        chosen = torch.from_numpy(replay.random(200) < 0.5)[:, None, None, None]
        expected = torch.where(chosen, turn(expected), expected)
    torch.testing.assert_close(turned, _jitter(expected, replay))
    # all eight symmetries occur: where the first patch's smallest value went
    positions = {int(p.flatten().argmin()) for p in _augment_patches(
        batch[:1].expand(64, 1, 3, 3), np.random.default_rng(4))}  # fmt: skip
    assert positions == {0, 2, 6, 8}  # a corner, each of the four
    base = batch[0, 0]
    symmetries = {tuple(t.flatten().tolist()) for t in (
        base, base.flip(0), base.flip(1), base.flip(0).flip(1), base.T, base.T.flip(0),
        base.T.flip(1), base.T.flip(0).flip(1))}  # fmt: skip
    assert len(symmetries) == 8


def test_patches_larger_than_the_input_are_refused(train: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match="do not fit"):
        train_convnext(*train, LABELS, replace(FAST, image_size=48, patch=64))


PATCHY = replace(FAST, image_size=64, patch=32, patches_per_image=4, batch_size=16)


def test_a_patch_model_learns_and_generalises(train: tuple, held_out: tuple, tmp_path) -> None:  # type: ignore[no-untyped-def,type-arg]
    start = train_convnext(*train, LABELS, replace(PATCHY, epochs=0))
    trained = train_convnext(*train, LABELS, PATCHY, out=tmp_path / "m")
    history = trained.config["history"]
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    before = cross_entropy(start.predict_proba(train[0]), train[1])
    assert cross_entropy(trained.predict_proba(train[0]), train[1]) < 0.5 * before
    assert accuracy(trained.predict(held_out[0]), held_out[1]) >= 14 / 16
    loaded = ConvNeXtDensity.load(tmp_path / "m")
    assert loaded.patch == 32 and loaded.config["preprocessing"]["patch"] == 32
    np.testing.assert_allclose(loaded.predict_proba(held_out[0]),
                               trained.predict_proba(held_out[0]), atol=1e-5)  # fmt: skip
    # read on its windows: the image's probabilities are the softmax of its windows' mean
    squares = np.stack([tissue_square(i, 64) for i in held_out[0][:3]])
    with torch.inference_mode():
        expected = _probabilities(loaded.model, torch.from_numpy(squares), False, 32)
    np.testing.assert_allclose(loaded.predict_proba(held_out[0][:3]), expected.numpy(), atol=1e-5)


def test_a_model_saved_before_patches_reads_the_whole_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.classifiers.test_convnext_inference import images

    imgs, labels, patients = images(12)
    model = train_convnext(imgs, labels, patients, ["F", "G", "D"],
                           TrainConfig(image_size=64, patch=0, epochs=0))  # fmt: skip
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    del config["patch"], config["preprocessing"]["patch"]  # as an earlier version wrote it
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = ConvNeXtDensity.load(tmp_path)
    assert loaded.patch == 0
    np.testing.assert_allclose(loaded.predict_proba(imgs), model.predict_proba(imgs), atol=1e-6)

"""The ConvNeXt's regularisers for small training sets: mixup, stochastic depth, a moving
average of the weights, and flip test-time augmentation. Each is off by default; each test
checks what the option computes (values against an independent computation), and that training
with all of them on still learns the phantom task of ``test_learning.py``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mammosearch.classifiers.convnext import (
    TrainConfig,
    _build,
    _mixup_loss,
    tissue_inputs,
    train_convnext,
)
from tests.classifiers.test_learning import (
    FAST,
    HELD_OUT_ACCURACY,
    LABELS,
    accuracy,
    held_out,
    phantoms,
    train,
    weight_change,
)

__all__ = ["held_out", "train"]  # the fixtures, imported for pytest


def test_defaults_leave_every_regulariser_but_stochastic_depth_off() -> None:
    d = TrainConfig()  # stochastic depth 0.1 is part of the patch recipe (docs/RESULTS.md)
    assert (d.mixup, d.drop_path, d.ema, d.flip_tta) == (0.0, 0.1, 0.0, False)


def test_mixup_blends_inputs_and_labels_by_one_beta_draw() -> None:
    """Replaying the generator: the model sees ``λ·x + (1-λ)·x[π]`` and the loss is
    ``λ·CE(y) + (1-λ)·CE(y[π])`` (λ ~ Beta(α, α), π a permutation)."""
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.flatten(1)[:, :3] * torch.tensor([1.0, -2.0, 0.5])

    batch = torch.from_numpy(np.random.default_rng(0).random((6, 1, 2, 2), dtype=np.float32))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))
    loss = _mixup_loss(model, loss_fn, batch, target, 0.4, np.random.default_rng(3))
    replay = np.random.default_rng(3)
    share, other = replay.beta(0.4, 0.4), replay.permutation(6)
    mixed = share * batch.numpy() + (1 - share) * batch.numpy()[other]
    np.testing.assert_allclose(seen[0].numpy(), mixed, rtol=1e-6)
    out = model(torch.from_numpy(mixed))
    want = share * loss_fn(out, target) + (1 - share) * loss_fn(out, target[other])
    assert 0.0 < share < 1.0 and not np.array_equal(other, np.arange(6))
    assert abs(float(loss) - float(want)) < 1e-6


def test_stochastic_depth_drops_residual_branches_in_training_only() -> None:
    x = torch.rand(2, 1, 32, 32)
    plain, dropping = _build("test_convnext", 3, None), _build("test_convnext", 3, None, 0.5)
    rates = [m.drop_prob for m in dropping.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == 0.5  # timm's rule: rising with depth to the rate
    assert not any(type(m).__name__ == "DropPath" for m in plain.modules())
    dropping.load_state_dict(plain.state_dict())  # the same weights
    torch.manual_seed(0)
    with torch.no_grad():
        dropping.train()
        assert not torch.equal(dropping(x), dropping(x))  # a new draw of dropped paths each time
        dropping.eval()
        plain.eval()
        assert torch.equal(dropping(x), plain(x))  # evaluated: the network without dropping


def test_the_moving_average_is_what_is_validated_and_kept(train: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """One optimiser step an epoch, decay 0.5: each epoch's checkpoint holds the trained
    network (``w_k``) and the average, which must be ``a_1 = w_1``, ``a_k = (a_(k-1) + w_k) / 2``;
    the model kept is the average at the epoch of the best validation kappa."""
    # a slow rate and seed 1: the validation kappa is best at a later epoch (-0.5, 0.5, 0.5, 1, 1)
    config = replace(FAST, batch_size=len(train[0]), epochs=5, ema=0.5, lr=1e-4, seed=1)
    checkpoint = tmp_path / "checkpoint.pt"
    saved: list[dict[str, Any]] = []

    def keep_last(epoch: int, metrics: dict[str, float]) -> None:
        if checkpoint.is_file():  # the previous epoch's (this one's is written after)
            saved.append(torch.load(checkpoint, weights_only=True))

    model = train_convnext(*train, LABELS, config, out=tmp_path, on_epoch=keep_last)
    saved.append(torch.load(checkpoint, weights_only=True))
    average: dict[str, torch.Tensor] = {}
    for state in saved:
        trained = state["model"]
        average = {n: (average[n] + w) / 2 if average else w.clone() for n, w in trained.items()}
        for name, value in average.items():
            torch.testing.assert_close(state["ema"][f"module.{name}"], value, rtol=1e-5, atol=1e-6)
    history = model.config["history"]
    best = max(range(len(history)), key=lambda e: history[e]["val_quadratic_kappa"])
    assert best > 0, history  # else the average and the network are the same (a_1 = w_1)
    kept = model.model.state_dict()
    for name, value in kept.items():
        torch.testing.assert_close(value, saved[best]["ema"][f"module.{name}"])
    assert max(float((kept[n] - saved[best]["model"][n]).abs().max()) for n in kept) > 1e-5


def test_a_resumed_training_continues_its_average(train: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Resumed for one more step, the average is ``(a_2 + w_3) / 2``: the checkpoint's average
    goes on (a new one would start as ``w_3``)."""
    config = replace(FAST, batch_size=len(train[0]), epochs=2, ema=0.5)
    train_convnext(*train, LABELS, config, out=tmp_path)
    before = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    train_convnext(*train, LABELS, replace(config, epochs=3), out=tmp_path, resume=True)
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert after["epoch"] == 2
    for name, value in after["model"].items():
        earlier = before["ema"][f"module.{name}"]
        torch.testing.assert_close(after["ema"][f"module.{name}"], (earlier + value) / 2)


def test_flip_tta_predicts_the_mean_of_each_film_and_its_vertical_flip() -> None:
    images, _, _ = phantoms(6, first_seed=50)
    model = train_convnext(*phantoms(8, first_seed=0), LABELS, replace(FAST, epochs=1))
    inputs = tissue_inputs(images, model.image_size, model.without_pectoral)
    plain = model.predict_inputs(inputs)
    flipped = model.predict_inputs(np.ascontiguousarray(inputs[:, ::-1]))
    model.config["flip_tta"] = True
    both = model.predict_inputs(inputs)
    np.testing.assert_allclose(both, (plain + flipped) / 2, atol=1e-6)
    assert np.abs(plain - flipped).max() > 1e-4  # the flip is seen: the test can tell


def test_training_with_every_regulariser_still_learns(train: tuple, held_out: tuple) -> None:  # type: ignore[type-arg]
    config = replace(FAST, epochs=6, mixup=0.4, drop_path=0.1, ema=0.8, flip_tta=True)
    model = train_convnext(*train, LABELS, config)
    assert accuracy(model.predict(held_out[0]), held_out[1]) >= HELD_OUT_ACCURACY
    same = train_convnext(*train, LABELS, config)  # same seed, same model, regularisers and all
    assert weight_change(model, same) == 0.0

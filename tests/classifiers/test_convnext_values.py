"""The values of the ConvNeXt density path's parts that compute numbers without training.

The patient split, the augmentation (against an independent bilinear resampling written here),
the input normalisation, the inputs, the ensemble's probabilities (against a plain softmax of
each network), the labels, the model directory's round trip and its errors, the ensemble's
file names and the data hash. The networks are built here (timm's ``test_convnext``, 32 px
inputs, CPU) or are a one-parameter module with logits known by hand; nothing is trained and
nothing reads ``../shared``. Training itself is guarded by ``test_learning.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mammosearch.classifiers.convnext import (
    FORMAT,
    NAME,
    ConvNeXtDensity,
    _augment,
    _member_file,
    _normalise,
    _to_tensor,
    data_hash,
    patient_split,
    tissue_inputs,
)
from mammosearch.errors import ModelLoadError

SIZE = 32
ARCH = "test_convnext"  # timm's smallest ConvNeXt (0.2M parameters)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread for these tiny networks: on a loaded machine a thread pool makes a
    32 px forward about 50 times slower (0.4 s against 0.008 s on 2 shared cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _network(seed: int, classes: int = 3) -> Any:
    import timm
    import torch

    torch.manual_seed(seed)
    return timm.create_model(ARCH, pretrained=False, in_chans=1, num_classes=classes)


def _model(members: int = 0, *, without_pectoral: bool = True) -> ConvNeXtDensity:
    config = {"arch": ARCH, "image_size": SIZE, "without_pectoral": without_pectoral, "note": 7}
    nets = [_network(seed) for seed in range(1 + members)]
    return ConvNeXtDensity(nets[0], ["A", "B", "C"], config, members=nets[1:])


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Breast-like crops: a bright tissue block on the left (the chest wall) over a dark
    background, of different sizes and brightness."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = np.zeros((40 + 4 * i, 30), dtype=np.float32)
        image[:, : 12 + 2 * i] = 0.3 + 0.1 * i + 0.2 * rng.random((40 + 4 * i, 12 + 2 * i))
        out.append(image)
    return out


def _phantoms() -> list[np.ndarray]:
    """Two synthetic MLO films (with a pectoral muscle), as floats in [0, 1]."""
    from mammosearch.samples.phantoms import phantom

    return [(phantom(d, "MLO", "R", seed=i) / 255).astype(np.float32) for i, d in enumerate("AC")]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


# --- patient_split ---------------------------------------------------------------------------


def test_patient_split_sizes_per_first_label_and_whole_patients() -> None:
    """Each label's patients (a patient counted under its first image's label) give
    ``max(1, round(n × fraction))`` to validation, a label with one patient gives none, and a
    patient's images stay on one side; indices in image order."""
    # label A: 5 patients (2 images each), B: 3 (p7's first image B, its second A), C: 1
    patients = [f"p{i // 2}" for i in range(10)] + ["p5", "p6", "p7", "p7", "p5", "p8"]
    labels = ["A"] * 10 + ["B", "B", "B", "A", "B", "C"]
    train, val = patient_split(patients, labels, 0.3, seed=4)
    assert train == sorted(train) and val == sorted(val)
    assert sorted(train + val) == list(range(len(patients)))
    val_patients = {patients[i] for i in val}
    assert val_patients.isdisjoint({patients[i] for i in train})
    first = {"p0": "A", "p1": "A", "p2": "A", "p3": "A", "p4": "A", "p5": "B", "p6": "B",
             "p7": "B", "p8": "C"}  # fmt: skip
    per_label = {label: sum(first[p] == label for p in val_patients) for label in "ABC"}
    assert per_label == {"A": 2, "B": 1, "C": 0}  # round(1.5) = 2; max(1, round(0.9)) = 1
    # a small fraction still sends one patient of each label with two or more
    _, few = patient_split(patients, labels, 0.01, seed=4)
    assert sorted({first[patients[i]] for i in few}) == ["A", "B"]
    assert len({patients[i] for i in few}) == 2
    # two patients of one label and one of another: one to validation, the lone one stays
    train, val = patient_split(["x", "y", "z"], ["A", "A", "B"], 0.2, seed=0)
    assert val in ([0], [1]) and train == [i for i in range(3) if i not in val]


def test_patient_split_is_the_seeded_shuffle() -> None:
    patients = [f"p{i}" for i in range(20)]
    labels = ["A"] * 20
    splits = {seed: patient_split(patients, labels, 0.25, seed) for seed in range(6)}
    assert splits[3] == patient_split(patients, labels, 0.25, 3)  # same seed, same split
    assert len({tuple(v) for _, v in splits.values()}) == 6  # another seed, another split
    assert all(len(v) == 5 and len(t) == 15 for t, v in splits.values())
    assert splits[0][1] == [0, 10, 14, 16, 18]  # pinned: random.Random(0)'s shuffle
    with pytest.raises(ValueError):
        patient_split(patients, labels[:-1], 0.25, 0)


# --- _augment --------------------------------------------------------------------------------


def _bilinear_zeros(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``image`` at pixel coordinates (ys, xs), bilinear, zero outside (grid_sample's
    ``padding_mode="zeros"``)."""
    h, w = image.shape
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    out = np.zeros_like(ys)
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            weight = (1 - np.abs(ys - yi)) * (1 - np.abs(xs - xi))
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            out += np.where(inside, weight * image[yi.clip(0, h - 1), xi.clip(0, w - 1)], 0.0)
    return out


def _expected_augment(batch: np.ndarray, seed: int) -> np.ndarray:
    """What the augmentation should do, written out: each image flipped upside down with
    probability 1/2 (never left-right: the chest wall stays left), then sampled at
    ``R(angle) · p / scale + shift`` (normalised coordinates, pixel centres), then
    ``clamp(x^gamma · contrast, 0, 1)``; the random numbers drawn in that order."""
    rng = np.random.default_rng(seed)
    n, _, h, w = batch.shape

    def draw(low: float, high: float, size: int | tuple[int, int]) -> np.ndarray:
        """As the augmentation draws them: float64, then float32 on the way to torch."""
        return np.asarray(rng.uniform(low, high, size), dtype=np.float32).astype(np.float64)

    flip = np.asarray(rng.random(n)) < 0.5
    angle, scale = draw(-0.17, 0.17, n), draw(0.9, 1.1, n)
    shift, gamma, contrast = draw(-0.05, 0.05, (n, 2)), draw(0.8, 1.25, n), draw(0.9, 1.1, n)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    ny, nx = (2 * ys + 1) / h - 1, (2 * xs + 1) / w - 1
    out = np.zeros((n, 1, h, w))
    for k in range(n):
        image = batch[k, 0, ::-1] if flip[k] else batch[k, 0]
        c, s = np.cos(angle[k]), np.sin(angle[k])
        sx = (c * nx - s * ny) / scale[k] + shift[k, 0]
        sy = (s * nx + c * ny) / scale[k] + shift[k, 1]
        sampled = _bilinear_zeros(image, ((sy + 1) * h - 1) / 2, ((sx + 1) * w - 1) / 2)
        out[k, 0] = np.clip(np.clip(sampled, 0, 1) ** gamma[k] * contrast[k], 0, 1)
    return out


def test_augment_flips_vertically_rotates_scales_shifts_and_jitters_as_written() -> None:
    import torch

    rng = np.random.default_rng(5)
    batch = rng.random((8, 1, 14, 11)).astype(np.float32)
    batch[:, :, :, :4] = 0.995  # bright chest-wall columns: a contrast above 1 clips them to 1
    seed = 21
    got = _augment(torch.from_numpy(batch.copy()), np.random.default_rng(seed))
    assert got.dtype == torch.float32 and tuple(got.shape) == batch.shape
    expected = _expected_augment(batch.astype(np.float64), seed)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-5)
    flips = np.random.default_rng(seed).random(8) < 0.5
    assert 0 < flips.sum() < 8  # both kinds of image in the batch
    assert got.numpy().max() == 1.0 and got.numpy().min() == 0.0  # clipped, and zero padding
    # no jitter or motion can move the bright columns off the left
    assert (
        got.numpy()[..., :3].mean(axis=(1, 2, 3)) > got.numpy()[..., -3:].mean(axis=(1, 2, 3))
    ).all()


def test_augment_clips_to_0_1_before_the_gamma() -> None:
    """Values outside [0, 1] (never made by the inputs, but a caller's batch may hold them)
    are clipped before the gamma: no NaN from a negative base, no gamma of a value above 1."""
    import torch

    batch = np.random.default_rng(8).uniform(-0.5, 1.5, (8, 1, 9, 12)).astype(np.float32)
    got = _augment(torch.from_numpy(batch), np.random.default_rng(2)).numpy()
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, _expected_augment(batch.astype(np.float64), 2), atol=2e-5)


def test_augment_keeps_a_flat_image_flat_in_its_middle() -> None:
    """A uniform image stays uniform where the motion samples inside it: only gamma and
    contrast change its value there."""
    import torch

    batch = torch.full((6, 1, 16, 16), 0.6)
    got = _augment(batch, np.random.default_rng(3)).numpy()
    rng = np.random.default_rng(3)
    rng.random(6), rng.uniform(size=6), rng.uniform(size=6), rng.uniform(size=(6, 2))
    gamma, contrast = rng.uniform(0.8, 1.25, 6), rng.uniform(0.9, 1.1, 6)
    np.testing.assert_allclose(got[:, 0, 6:10, 6:10],
                               np.broadcast_to((0.6**gamma * contrast)[:, None, None], (6, 4, 4)),
                               atol=1e-5)  # fmt: skip


# --- inputs ----------------------------------------------------------------------------------


def test_normalise_is_minus_one_half_over_one_quarter() -> None:
    import torch

    x = torch.tensor([0.0, 0.25, 0.5, 0.875, 1.0])
    assert _normalise(x).tolist() == [-2.0, -1.0, 0.0, 1.5, 2.0]


def test_tissue_inputs_and_to_tensor_are_the_stacked_tissue_squares() -> None:
    import torch

    from mammosearch.imaging import tissue_square

    images = _phantoms()
    for without in (True, False):
        squares = np.stack([tissue_square(i, SIZE, without_pectoral=without) for i in images])
        np.testing.assert_array_equal(tissue_inputs(images, SIZE, without), squares)
        tensor = _to_tensor(images, SIZE, without)
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (2, 1, SIZE, SIZE)
        np.testing.assert_array_equal(tensor.numpy()[:, 0], squares)
    with_muscle = tissue_inputs(images, SIZE, False)
    assert not np.array_equal(tissue_inputs(images, SIZE), with_muscle)  # default: removed
    assert not np.array_equal(_to_tensor(images, SIZE).numpy()[:, 0], with_muscle)
    np.testing.assert_array_equal(tissue_inputs(images, 24, False, workers=2),
                                  np.stack([tissue_square(i, 24, without_pectoral=False)
                                            for i in images]))  # fmt: skip
    empty = tissue_inputs([], 24)
    assert empty.shape == (0, 24, 24) and empty.dtype == np.float32
    assert tuple(_to_tensor([], 24).shape) == (0, 1, 24, 24)


def test_inputs_use_the_models_size_and_pectoral_setting() -> None:
    images = _phantoms()
    inputs = {without: _model(without_pectoral=without).inputs(images) for without in (True, False)}
    for without, made in inputs.items():
        np.testing.assert_array_equal(made, tissue_inputs(images, SIZE, without))
    assert not np.array_equal(inputs[True], inputs[False])  # the muscle is there or not


# --- probabilities and labels ----------------------------------------------------------------


def test_predict_inputs_is_the_mean_softmax_of_every_network() -> None:
    import torch

    inputs = np.random.default_rng(1).random((5, SIZE, SIZE)).astype(np.float32)
    x = torch.from_numpy((inputs[:, None] - 0.5) / 0.25)
    for members in (0, 1, 2):
        model = _model(members)
        for network in (model.model, *model.members):
            network.train()
        with torch.inference_mode():
            each = [torch.softmax(n(x), dim=1).numpy() for n in (model.model, *model.members)]
        expected = np.mean(each, axis=0)
        got = model.predict_inputs(inputs, batch_size=2)  # batches of 2, 2 and 1
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(model.predict_inputs(list(inputs)), expected, rtol=1e-5,
                                   atol=1e-7)  # fmt: skip
        assert not any(n.training for n in (model.model, *model.members))  # eval mode
    # the members differ, so the mean is not any one of them
    assert not np.allclose(each[0], each[1], atol=1e-3)
    empty = _model(1).predict_inputs(np.zeros((0, SIZE, SIZE), dtype=np.float32))
    assert empty.shape == (0, 3) and empty.dtype == np.float32


class _Brightness:
    """A network whose logits are known by hand: ``-50 (mean(x) - centre_k)²`` per class."""

    def __new__(cls, centres: list[float]) -> Any:
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.centres = torch.nn.Parameter(torch.tensor(centres))

            def forward(self, x: Any) -> Any:
                return -50 * (x.mean(dim=(1, 2, 3))[:, None] - self.centres) ** 2

        return Net()


def test_predict_proba_and_predict_by_hand() -> None:
    images = [np.full((20, 20), v, dtype=np.float32) for v in (0.9, 0.1, 0.5, 0.1)]
    means = (np.array([0.9, 0.1, 0.5, 0.1]) - 0.5) / 0.25  # a full square: no background
    centres = [-1.6, 0.0, 1.6]  # A dark, B middle, C bright (normalised)
    model = ConvNeXtDensity(_Brightness(centres), ["A", "B", "C"],
                            {"image_size": 8, "without_pectoral": False})  # fmt: skip
    expected = _softmax(-50 * (means[:, None] - np.array(centres)) ** 2)
    np.testing.assert_allclose(model.predict_proba(images, batch_size=3), expected, atol=1e-6)
    assert model.predict(images) == ["C", "A", "B", "A"]
    model.labels = ["z", "y", "x"]
    assert model.predict(images[:2]) == ["x", "z"]


# --- the model directory ---------------------------------------------------------------------


def test_save_writes_the_weights_and_config_and_load_gives_the_same_model(tmp_path: Path) -> None:
    model = _model(2, without_pectoral=False)
    images = _images(3)
    out = tmp_path / "deep" / "m"
    model.save(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model-1.safetensors", "model-2.safetensors", "model.safetensors"
    ]  # fmt: skip
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config == {
        "arch": ARCH, "image_size": SIZE, "without_pectoral": False, "note": 7,
        "format": FORMAT, "classifier": NAME, "labels": ["A", "B", "C"], "ensemble": 3,
        "preprocessing": {"input": "breast-cropped, chest wall left, grey", "size": SIZE,
                          "mean": 0.5, "std": 0.25, "without_pectoral": False, "patch": 0},
    }  # fmt: skip
    assert FORMAT == "mammosearch.convnext_density.v1" and NAME == "convnext_density.v1"
    loaded = ConvNeXtDensity.load(out)
    assert loaded.labels == ["A", "B", "C"] and loaded.config == config
    assert loaded.probe is None and len(loaded.members) == 2
    assert not loaded.model.training and not any(m.training for m in loaded.members)
    for before, after in zip((model.model, *model.members), (loaded.model, *loaded.members),
                             strict=True):  # fmt: skip
        a, b = before.state_dict(), after.state_dict()
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    np.testing.assert_array_equal(loaded.predict_proba(images), model.predict_proba(images))
    # the registry's factory reads the same directory
    from mammosearch.registry import classifiers

    again = classifiers.create(NAME, directory=out)
    np.testing.assert_array_equal(again.predict_proba(images), model.predict_proba(images))


def test_a_probe_is_saved_beside_the_model_and_loaded_with_it(tmp_path: Path) -> None:
    from mammosearch.classifiers.heads import LinearProbe

    probe = LinearProbe(["A", "B", "C"], np.zeros(2), np.ones(2), np.arange(6.0).reshape(3, 2),
                        np.array([0.5, -0.5, 0.0]))  # fmt: skip
    model = _model()
    model.probe = probe
    model.save(tmp_path)
    assert (tmp_path / "probe.json").is_file()
    loaded = ConvNeXtDensity.load(tmp_path)
    assert loaded.probe is not None
    np.testing.assert_array_equal(loaded.probe.coef, probe.coef)
    np.testing.assert_array_equal(loaded.probe.intercept, probe.intercept)


def test_a_config_without_ensemble_count_is_one_network(tmp_path: Path) -> None:
    model = _model(1)
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    del config["ensemble"]
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = ConvNeXtDensity.load(tmp_path)
    assert loaded.members == []
    images = _images(2)
    alone = ConvNeXtDensity(model.model, model.labels, model.config).predict_proba(images)
    np.testing.assert_array_equal(loaded.predict_proba(images), alone)


def test_load_errors_name_the_folder_and_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "dm"
    _model(1).save(out)
    config = (out / "config.json").read_text(encoding="utf-8")

    def error(match: str) -> ModelLoadError:
        with pytest.raises(ModelLoadError, match=match) as caught:
            ConvNeXtDensity.load(out)
        return caught.value

    (out / "model.safetensors").rename(out / "w")
    e = error(r"^E030: no density model in 'dm' \(config.json and model.safetensors\)")
    assert e.fix == "train one with 'mammosearch train-density'"
    (out / "w").rename(out / "model.safetensors")
    (out / "config.json").unlink()
    error(r"^E030: no density model in 'dm'")
    (out / "config.json").write_text(config.replace(FORMAT, "other.v1"), encoding="utf-8")
    e = error(r"^E030: 'dm' holds another kind of model$")
    assert e.fix is None
    wrong = json.loads(config)
    wrong["labels"] = ["A", "B", "C", "D"]
    (out / "config.json").write_text(json.dumps(wrong), encoding="utf-8")
    e = error(r"^E030: the density model's weights do not match its config$")
    assert isinstance(e.__cause__, RuntimeError)
    (out / "config.json").write_text(config, encoding="utf-8")
    (out / "model-1.safetensors").unlink()
    e = error(r"^E030: the density model's ensemble member model-1.safetensors is missing")
    assert e.fix == "copy the whole model folder, or train it again"


# --- names and hashes ------------------------------------------------------------------------


def test_member_files() -> None:
    assert _member_file("model.safetensors", 0) == "model.safetensors"
    assert _member_file("model.safetensors", 1) == "model-1.safetensors"
    assert _member_file("checkpoint.pt", 12) == "checkpoint-12.pt"
    assert _member_file("a.b.c", 2) == "a-2.b.c"  # at the first dot only


def test_data_hash_is_the_sha256_of_the_sorted_keys_one_a_line() -> None:
    digest = data_hash(["img/2.png", "img/10.png"])
    assert digest == "19e9cabcd5408e159d4e7a44f90e42bf5d4ff1fc284632ac1109bcfbba870dfc"
    assert digest == hashlib.sha256(b"img/10.png\nimg/2.png").hexdigest()
    assert digest == data_hash(["img/10.png", "img/2.png"])  # order of the manifest: same
    assert data_hash(["a", "b"]) != data_hash(["ab"]) != data_hash(["a b"])
    assert data_hash([]) == hashlib.sha256(b"").hexdigest()

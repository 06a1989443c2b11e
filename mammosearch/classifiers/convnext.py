"""ConvNeXt density classifier: image-only, trained on a labelled manifest.

A timm ConvNeXt (``convnext_atto`` … ``convnext_base``) with one grey input channel (timm sums
a pretrained RGB stem into it) and a head for the manifest's label set. Inputs are the
breast-cropped, chest-wall-left images of :mod:`mammosearch.imaging`, fitted to a square with
the pectoral muscle set to background (:func:`mammosearch.imaging.tissue_square`).

By default the network reads patches (``TrainConfig.patch``, 64 px of a 256 px square): density
is a property of the tissue's texture, and a few hundred films give thousands of patches where
they give a few hundred whole images. Training draws random windows that are mostly breast;
an image's scores are the mean log-probabilities of its mostly-breast windows on a half-patch
grid (:func:`mammosearch.imaging.patch_windows`). ``patch=0`` reads the whole square.

Training: patient-level train/validation split, class-weighted loss, mammography-safe
augmentation (whole images: vertical flips, which keep the chest wall on the left, and a small
affine; patches: any of the square's eight flips and turns; both: gamma and contrast jitter, no
colour), AdamW with a cosine schedule, early stopping on validation quadratic-weighted kappa, a
checkpoint every epoch to resume from, determinism with a seed. Regularisers for a few hundred
films (:class:`TrainConfig`): stochastic depth (on by default), and optionally mixup, an
exponential moving average of the weights, flip test-time augmentation.

A model directory holds ``model.safetensors`` and ``config.json`` (architecture, labels and
their order, preprocessing, training-data hash, metrics, the assess policy), an ensemble's other
members as ``model-1.safetensors``, ``model-2.safetensors``, ... (``config.json`` says how
many; each trained with its own seed and validation patients), and may hold the
``probe.json`` of a radiomics probe fitted on the same images; :meth:`ConvNeXtDensity.load`
needs nothing else; the ``convnext.v1`` embedder reads the same format. Training and prediction
run on CUDA when it is present.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.accel import Images, device_batches, parallel_map
from mammosearch.errors import InputError, ModelLoadError
from mammosearch.imaging import MIN_PATCH_TISSUE, patch_windows, window_means, window_shares
from mammosearch.registry import classifiers

__all__ = [
    "ConvNeXtDensity", "TrainConfig", "cross_fitted", "model_files", "patient_split",
    "tissue_inputs", "train_convnext",
]  # fmt: skip

logger = logging.getLogger(__name__)

FORMAT = "mammosearch.convnext_density.v1"
NAME = "convnext_density.v1"  # its name in the classifiers registry
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
_MEAN, _STD = 0.5, 0.25  # grey input normalisation (the images are in [0, 1])


@dataclass(slots=True)
class TrainConfig:
    """How to train (stored in ``config.json``)."""

    arch: str = "convnext_atto"
    image_size: int = 256  # the input square (with patches, the square they are cut from)
    patch: int = 64  # >0: trained on patches of this many px, an image read as the mean of
    #                  its breast patches' log-probabilities; 0: the whole square (RESULTS.md)
    patches_per_image: int = 16  # patches drawn from each training image in an epoch
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    patience: int = 15
    val_fraction: float = 0.2
    seed: int = 0
    ensemble: int = 1  # members trained with seeds seed, seed+1, ... (own validation patients)
    init: str | None = "auto"  # "auto" (cached ImageNet, else none), "imagenet", a file, None
    without_pectoral: bool = True  # the pectoral muscle set to background in the input
    # regularisation for a few hundred films (stochastic depth on by default, with patches; the
    # others off; docs/RESULTS.md, "What the choices bought", says what each did on MIAS)
    mixup: float = 0.0  # Beta(a, a) of mixup (two images and their labels blended); 0: off
    drop_path: float = 0.1  # stochastic depth: timm's drop_path_rate; 0: off
    ema: float = 0.0  # decay of an exponential moving average of the weights, which are then
    #                   validated and saved; 0: off
    flip_tta: bool = False  # predictions average each image and its vertical flip


def _torch() -> Any:
    import torch

    return torch


def _device() -> Any:
    """CUDA when present, else the CPU (training and prediction)."""
    torch = _torch()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def patient_split(
    patients: Sequence[str], labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Train and validation indices with every patient's images on one side only."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    first_label: dict[str, str] = {}
    for patient, label in zip(patients, labels, strict=True):
        first_label.setdefault(patient, label)
    for patient, label in first_label.items():
        by_label.setdefault(label, []).append(patient)
    validation: set[str] = set()
    for group in by_label.values():  # stratified by each patient's first label
        rng.shuffle(group)
        validation.update(group[: max(1, round(len(group) * fraction))] if len(group) > 1 else [])
    train = [i for i, p in enumerate(patients) if p not in validation]
    val = [i for i, p in enumerate(patients) if p in validation]
    return train, val


def _cached_imagenet(arch: str) -> str | None:
    """The ImageNet weights of ``arch`` in the local Hugging Face cache (``HF_HUB_CACHE`` when
    set), without the network."""
    import os

    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if cfg is None or not cfg.hf_hub_id:
        return None
    cache = os.environ.get("HF_HUB_CACHE") or None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=cache)
        if isinstance(found, str):
            return found
    return None


def _build(arch: str, num_classes: int, init: str | None, drop_path: float = 0.0) -> Any:
    """A ConvNeXt with initial weights from ``init``: ``"auto"`` (ImageNet from the local hub
    cache when there, else none), ``"imagenet"`` (from the hub, downloading), a weights file, or
    ``None``/``"none"`` (from scratch); ``drop_path`` is its stochastic-depth rate."""
    import timm

    kwargs: dict[str, Any] = {"in_chans": 1, "num_classes": num_classes}
    if drop_path > 0:
        kwargs["drop_path_rate"] = drop_path
    if init == "auto":
        cached = _cached_imagenet(arch)
        if cached is None:
            logger.info("ConvNeXt %s: initial weights: none (trained from scratch; no ImageNet "
                        "weights in the local hub cache: --init imagenet downloads them, "
                        "--init FILE reads a file)", arch)  # fmt: skip
            return timm.create_model(arch, pretrained=False, **kwargs)
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": cached},
                                  **kwargs)  # fmt: skip
        logger.info("ConvNeXt %s: initial weights: ImageNet (local hub cache)", arch)
        return model
    if init is None or init == "none":
        logger.info("ConvNeXt %s: initial weights: none (trained from scratch)", arch)
        return timm.create_model(arch, pretrained=False, **kwargs)
    if init == "imagenet":
        try:
            model = timm.create_model(arch, pretrained=True, **kwargs)
        except Exception as e:
            raise ModelLoadError(
                f"the ImageNet weights of {arch} cannot be downloaded ({type(e).__name__})",
                fix="pass --init FILE with a local .safetensors/.pth, or train from scratch",
            ) from e
        logger.info("ConvNeXt %s: initial weights: ImageNet (hub)", arch)
        return model
    path = Path(init)
    if not path.is_file():
        raise ModelLoadError(f"initial weights file not found: {path.name}")
    try:
        model = timm.create_model(
            arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
        )
    except Exception as e:
        raise ModelLoadError(f"cannot load initial weights {path.name} ({type(e).__name__})") from e
    logger.info("ConvNeXt %s: initial weights: local file %s", arch, path.name)
    return model


def _augment(batch: Any, rng: np.random.Generator) -> Any:
    """Vertical flip, small rotation/translation/scale, gamma and contrast jitter."""
    torch = _torch()
    import torch.nn.functional as F

    n = batch.shape[0]
    flip = torch.from_numpy(rng.random(n) < 0.5)
    batch = torch.where(flip[:, None, None, None], batch.flip(-2), batch)
    angle = torch.from_numpy(rng.uniform(-0.17, 0.17, n)).float()  # about ±10 degrees
    scale = torch.from_numpy(rng.uniform(0.9, 1.1, n)).float()
    shift = torch.from_numpy(rng.uniform(-0.05, 0.05, (n, 2))).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(angle) / scale
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    batch = F.grid_sample(batch, grid, align_corners=False, padding_mode="zeros")
    return _jitter(batch, rng)


def tissue_inputs(
    images: Sequence[NDArray[np.float32]],
    size: int,
    without_pectoral: bool = True,
    *,
    workers: int = 1,
) -> NDArray[np.float32]:
    """The density models' inputs ``n×size×size``: each breast-cropped image fitted to the
    square with the pectoral muscle set to background (the CPU part, ``workers`` processes)."""
    from mammosearch.imaging import tissue_square

    square = functools.partial(tissue_square, size=size, without_pectoral=without_pectoral)
    if not len(images):
        return np.zeros((0, size, size), dtype=np.float32)
    return np.stack(list(parallel_map(square, images, workers=workers)))


def _to_tensor(
    images: Sequence[NDArray[np.float32]], size: int, without_pectoral: bool = True,
    workers: int = 1,
) -> Any:  # fmt: skip
    inputs = tissue_inputs(images, size, without_pectoral, workers=workers)
    return _torch().from_numpy(inputs[:, None])


def _normalise(batch: Any) -> Any:
    return (batch - _MEAN) / _STD


def _patch_origins(square: Any, patch: int) -> NDArray[np.int64]:
    """Top-left corners ``k×2`` of the windows training draws from one input ``S×S``: those at
    least 80% breast on a stride of an eighth of a patch (the most-breast one when none is)."""
    stride = max(1, patch // 8)
    shares = window_shares(square[None], patch, stride)[0]
    rows, cols = (shares >= MIN_PATCH_TISSUE).nonzero(as_tuple=True)
    if not len(rows):
        best = int(shares.argmax())
        rows, cols = [best // shares.shape[1]], [best % shares.shape[1]]
    return np.stack([np.asarray(rows), np.asarray(cols)], axis=1).astype(np.int64) * stride


def _patches(
    x: Any, idx: NDArray[np.int64], origins: Mapping[int, NDArray[np.int64]], patch: int,
    rng: np.random.Generator,
) -> Any:  # fmt: skip
    """One random training window of each image ``idx`` of inputs ``x`` (``n×1×S×S``)."""
    torch = _torch()
    corners = [origins[i][rng.integers(len(origins[i]))] for i in idx]
    return torch.stack([x[i, :, r : r + patch, c : c + patch]
                        for i, (r, c) in zip(idx, corners, strict=True)])  # fmt: skip


def _jitter(batch: Any, rng: np.random.Generator) -> Any:
    """Gamma and contrast jitter of a batch in [0, 1]."""
    torch = _torch()
    n = batch.shape[0]
    gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (n, 1, 1, 1))).float()
    contrast = torch.from_numpy(rng.uniform(0.9, 1.1, (n, 1, 1, 1))).float()
    return (batch.clamp(0, 1) ** gamma * contrast).clamp(0, 1)


def _augment_patches(batch: Any, rng: np.random.Generator) -> Any:
    """A random one of the eight flips and quarter turns of each patch (texture has no
    orientation within a patch), then gamma and contrast jitter."""
    torch = _torch()
    n = batch.shape[0]
    for turned in ("rows", "columns", "transpose"):
        chosen = torch.from_numpy(rng.random(n) < 0.5)[:, None, None, None]
        other = (
            batch.transpose(-1, -2)
            if turned == "transpose"
            else batch.flip(-2 if turned == "rows" else -1)
        )
        batch = torch.where(chosen, other, batch)
    return _jitter(batch, rng)


@dataclass(slots=True)
class ConvNeXtDensity:
    """A trained density model: predicts label probabilities for breast-cropped images.

    Attributes:
        model: The timm ConvNeXt.
        labels: The label set in its order.
        config: Architecture, preprocessing, training figures and the tuned assess policy.
        probe: A :class:`~mammosearch.classifiers.heads.LinearProbe` on ``radiomics.v1``
            vectors fitted on the same images (``probe.json`` beside the weights), or none.
        members: The ensemble's other ConvNeXts (``model-1.safetensors``, ...); predictions
            are the mean of every network's probabilities.
    """

    model: Any
    labels: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    probe: Any | None = None
    members: list[Any] = field(default_factory=list)

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", 224))

    @property
    def patch(self) -> int:
        """The patch size it reads images on (0: the whole input)."""
        return int(self.config.get("patch", 0))

    @property
    def without_pectoral(self) -> bool:
        return bool(self.config.get("without_pectoral", False))

    def predict_proba(
        self, images: Sequence[NDArray[np.float32]], *, batch_size: int = 16, workers: int = 1
    ) -> NDArray[np.float32]:
        """Probabilities ``n×len(labels)`` for breast-cropped H×W images in [0, 1] (their
        inputs made by ``workers`` processes)."""
        return self.predict_inputs(self.inputs(images, workers=workers), batch_size=batch_size)

    def inputs(
        self, images: Sequence[NDArray[np.float32]], *, workers: int = 1
    ) -> NDArray[np.float32]:
        """:func:`tissue_inputs` of images at this model's size and settings."""
        return tissue_inputs(images, self.image_size, self.without_pectoral, workers=workers)

    def predict_inputs(self, inputs: Images, *, batch_size: int = 16) -> NDArray[np.float32]:
        """Probabilities for inputs already made by :func:`tissue_inputs`: the device's part
        (copies overlapped with the forward passes, fp16 autocast on CUDA, one wait at the end).
        """
        torch = _torch()
        networks = [network.eval() for network in (self.model, *self.members)]
        if not len(inputs):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        cuda = device.type == "cuda"
        flip = bool(self.config.get("flip_tta", False))
        out = []
        with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=cuda):
            for batch in device_batches(inputs, batch_size, device):
                mean = sum(_probabilities(network, batch.to(next(network.parameters()).device),
                                          flip, self.patch).to(device)
                           for network in networks)  # fmt: skip
                out.append(mean / len(networks))
            probabilities = torch.cat(out).cpu().numpy()
        return np.asarray(probabilities, dtype=np.float32)

    def predict(self, images: Sequence[NDArray[np.float32]]) -> list[str]:
        """The most probable label of each image."""
        return [self.labels[int(i)] for i in self.predict_proba(images).argmax(axis=1)]

    def save(self, directory: Path) -> None:
        """Write ``model.safetensors``, ``config.json`` and the probe's ``probe.json``."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        for i, network in enumerate([self.model, *self.members]):
            state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
            save_file(state, str(directory / _member_file(WEIGHTS, i)))
        preprocessing = {"input": "breast-cropped, chest wall left, grey",
                         "size": self.image_size, "mean": _MEAN, "std": _STD,
                         "without_pectoral": self.without_pectoral,
                         "patch": self.patch}  # fmt: skip
        config = dict(self.config, format=FORMAT, classifier=NAME, labels=self.labels,
                      preprocessing=preprocessing, ensemble=1 + len(self.members))  # fmt: skip
        (directory / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        if self.probe is not None:
            self.probe.save(directory)

    @classmethod
    def load(cls, directory: Path) -> ConvNeXtDensity:
        """Load a model directory written by :meth:`save`.

        Raises:
            ModelLoadError: Files are missing or do not match.
        """
        from safetensors.torch import load_file

        config_path, weights = directory / CONFIG, directory / WEIGHTS
        if not config_path.is_file() or not weights.is_file():
            raise ModelLoadError(
                f"no density model in {directory.name!r} (config.json and model.safetensors)",
                fix="train one with 'mammosearch train-density'",
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != FORMAT:
            raise ModelLoadError(f"{directory.name!r} holds another kind of model")
        networks = []
        for i in range(int(config.get("ensemble", 1))):
            path = directory / _member_file(WEIGHTS, i)
            if not path.is_file():
                raise ModelLoadError(
                    f"the density model's ensemble member {path.name} is missing",
                    fix="copy the whole model folder, or train it again",
                )
            model = _build(str(config["arch"]), len(config["labels"]), None)
            try:
                model.load_state_dict(load_file(str(path)))
            except RuntimeError as e:
                raise ModelLoadError("the density model's weights do not match its config") from e
            networks.append(model.eval())
        return cls(networks[0], list(config["labels"]), config, _load_probe(directory),
                   networks[1:])  # fmt: skip


@classifiers.register(NAME)
def load_convnext_density(*, directory: Path) -> ConvNeXtDensity:
    """Factory of :class:`ConvNeXtDensity` (``directory``: what ``train-density`` wrote)."""
    return ConvNeXtDensity.load(directory)


def _member_file(name: str, member: int) -> str:
    """``name`` for an ensemble's first network (``model.safetensors``), ``model-<i>.safetensors``
    for the others (the same for checkpoints)."""
    return name if member == 0 else name.replace(".", f"-{member}.", 1)


def model_files(directory: Path) -> list[str]:
    """The names of the files that make the density model in ``directory`` (its config, every
    ensemble member's weights and its probe, where present): what a copy of it must carry."""
    from mammosearch.classifiers.heads import PROBE_FILE

    config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    members = [_member_file(WEIGHTS, i) for i in range(int(config.get("ensemble", 1)))]
    return [name for name in (CONFIG, *members, PROBE_FILE) if (directory / name).is_file()]


def _load_probe(directory: Path) -> Any | None:
    """The probe saved beside a model, if any."""
    from mammosearch.classifiers.heads import PROBE_FILE, LinearProbe

    return LinearProbe.load(directory) if (directory / PROBE_FILE).is_file() else None


def data_hash(keys: Sequence[str]) -> str:
    """A hash of the training data's identity (never the data itself)."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


@contextlib.contextmanager
def _deterministic(torch: Any) -> Iterator[None]:
    """PyTorch's deterministic algorithms on, then the process's own setting back.

    Without filling new tensors' memory first: that guards against reading memory never
    written, which these networks do not do, and it took half the time of a training step of
    small patches on the CPU (``aten::fill_``)."""
    import torch.utils.deterministic

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]


def train_convnext(
    images: Sequence[NDArray[np.float32]],
    labels: Sequence[str],
    patients: Sequence[str],
    label_order: Sequence[str],
    config: TrainConfig,
    *,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    validation: tuple[list[int], list[int]] | None = None,
    data_keys: Sequence[str] = (),
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    workers: int = 1,
) -> ConvNeXtDensity:
    """Train a ConvNeXt density model (early stopping on validation quadratic kappa).

    With ``config.ensemble`` > 1, that many networks are trained one after another, member
    ``i`` with seed ``config.seed + i`` and so its own validation patients; the model predicts
    the mean of their probabilities.

    Args:
        images: Breast-cropped images.
        labels: Their labels.
        patients: Their patients (the split keeps each patient on one side).
        label_order: The label set in its order.
        config: Architecture and optimisation.
        out: Model directory; a checkpoint per member is written there every epoch.
        resume: Continue from the checkpoints in ``out`` (finished members are not retrained).
        progress: Show a progress bar.
        validation: Explicit (train, validation) indices, for every member.
        data_keys: Identity of the training images (for the data hash).
        on_epoch: Called with each epoch's metrics (the members' epochs one after another).
        workers: Processes that make the inputs (:func:`tissue_inputs`).

    Raises:
        InputError: Fewer than two labels or no validation patients.
    """
    torch = _torch()
    if len(set(labels)) < 2:
        raise InputError("training needs at least two labels", fix="check the manifest")
    if config.ensemble < 1:
        raise InputError("an ensemble needs at least one member", fix="use --ensemble 1 or more")
    if not 0 <= config.patch <= config.image_size:
        raise InputError(f"patches of {config.patch} px do not fit inputs of "
                         f"{config.image_size} px", fix="use --patch 0 (the whole input) or "
                         "a patch no larger than --size")  # fmt: skip
    order = {label: i for i, label in enumerate(label_order)}
    y = np.array([order[label] for label in labels])
    x = _to_tensor(images, config.image_size, config.without_pectoral, workers)
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs * config.ensemble, unit="epoch", desc="train-density")
    networks, summaries = [], []
    try:
        for member in range(config.ensemble):
            seed = config.seed + member
            split = validation or patient_split(patients, labels, config.val_fraction, seed)
            if not split[0] or not split[1]:
                raise InputError(
                    "not enough patients for a validation split", fix="add more patients"
                )
            checkpoint = out / _member_file(CHECKPOINT, member) if out else None
            with _deterministic(torch):  # for this training only, not for the rest of the process
                network, history = _train_member(
                    x, y, split, len(label_order), config, seed,
                    checkpoint=checkpoint, resume=resume, bar=bar, on_epoch=on_epoch,
                )  # fmt: skip
            networks.append(network)
            best = max(history, key=lambda h: h["val_quadratic_kappa"]) if history else {}
            summaries.append({"seed": seed, "history": history, "best": best,
                              "train_images": len(split[0]),
                              "validation_images": len(split[1])})  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    result = ConvNeXtDensity(
        networks[0],
        list(label_order),
        {
            **asdict(config),
            **{k: v for k, v in summaries[0].items() if k != "seed"},
            "members": [{k: v for k, v in m.items() if k != "history"} for m in summaries],
            "training_data_sha256": data_hash(data_keys),
        },
        members=networks[1:],
    )
    if out is not None:
        result.save(out)
    return result


def cross_fitted(models: Sequence[ConvNeXtDensity], data_keys: Sequence[str]) -> ConvNeXtDensity:
    """One ensemble of the networks of cross-validation folds' models (a *cross-fitted* model):
    every network was trained without one fold's patients and scored on them, so the fold's
    out-of-fold predictions describe the very networks that predict; its prediction is the mean
    of all their probabilities. ``data_keys``: the identity of every image the folds drew on.

    Raises:
        InputError: No models, or models of different label sets or settings.
    """
    if not models:
        raise InputError("a cross-fitted model needs the models of two or more folds")
    first = models[0]
    settings = ("arch", "image_size", "patch", "without_pectoral", "flip_tta")
    for model in models[1:]:
        if model.labels != first.labels or any(
            model.config.get(k) != first.config.get(k) for k in settings
        ):
            raise InputError("the folds' models differ in labels or settings")
    per_fold = ("history", "best", "members", "train_images", "validation_images",
                "training_data_sha256")  # fmt: skip
    members = [
        dict(member, fold=fold + 1)
        for fold, model in enumerate(models)
        for member in model.config["members"]
    ]
    config = {
        **{k: v for k, v in first.config.items() if k not in per_fold},
        "cross_fit": len(models),
        "members": members,
        "train_images": len(data_keys),
        "training_data_sha256": data_hash(data_keys),
    }
    networks = [network for model in models for network in (model.model, *model.members)]
    return ConvNeXtDensity(networks[0], list(first.labels), config, members=networks[1:])


def _averaged(model: Any, decay: float) -> Any | None:
    """An exponential moving average of ``model``'s weights (torch's ``AveragedModel``), or
    none when ``decay`` is 0."""
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    average = get_ema_multi_avg_fn(decay)  # type: ignore[no-untyped-call]
    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def _mixup_loss(
    model: Any, loss_fn: Any, batch: Any, target: Any, alpha: float, rng: np.random.Generator
) -> Any:
    """Mixup (Zhang et al., 2018): the batch blended with a shuffled copy of itself, a share
    ``λ ~ Beta(alpha, alpha)`` of each, and the loss blended the same way between the two
    images' labels."""
    share = float(rng.beta(alpha, alpha))
    other = _torch().from_numpy(rng.permutation(len(target))).to(target.device)
    out = model(share * batch + (1 - share) * batch[other])
    return share * loss_fn(out, target) + (1 - share) * loss_fn(out, target[other])


def _probabilities(network: Any, batch: Any, flip: bool, patch: int = 0) -> Any:
    """The network's softmax for inputs ``n×S×S`` (not normalised), or with ``flip`` the mean
    of it and the softmax for their vertical flip (the chest wall stays on the left); with
    ``patch``, the softmax of :func:`_patch_scores`."""
    torch = _torch()
    if patch:
        return torch.softmax(_patch_scores(network, batch, flip, patch), dim=1)
    x = _normalise(batch[:, None])
    probabilities = torch.softmax(network(x).float(), dim=1)
    if flip:
        probabilities = (probabilities + torch.softmax(network(x.flip(-2)).float(), dim=1)) / 2
    return probabilities


def _patch_scores(network: Any, batch: Any, flip: bool, patch: int) -> Any:
    """The mean log-probabilities of each input's :func:`patch_windows` (``n×classes``); with
    ``flip`` each window's are the mean of it and its vertical flip."""
    torch = _torch()
    windows, owner = patch_windows(batch, patch)
    x = _normalise(windows)
    log_p = torch.log_softmax(network(x).float(), dim=1)
    if flip:
        log_p = (log_p + torch.log_softmax(network(x.flip(-2)).float(), dim=1)) / 2
    return window_means(log_p, owner, len(batch))


def _scores(network: Any, batch: Any, flip: bool, patch: int) -> Any:
    """What validation ranks for inputs ``n×S×S``: the logits, or with ``flip`` or ``patch``
    the probabilities' logarithms (:func:`_probabilities`)."""
    if flip or patch:
        return _probabilities(network, batch, flip, patch).log()
    return network(_normalise(batch[:, None]))


def _train_member(
    x: Any,
    y: NDArray[np.int64],
    split: tuple[list[int], list[int]],
    classes: int,
    config: TrainConfig,
    seed: int,
    *,
    checkpoint: Path | None,
    resume: bool,
    bar: Any,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> tuple[Any, list[dict[str, float]]]:
    """One network of :func:`train_convnext`; returns it at its best epoch, and its history."""
    torch = _torch()
    from sklearn.metrics import cohen_kappa_score

    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = split
    device = _device()
    model = _build(config.arch, classes, config.init, config.drop_path).to(device)
    counts = np.bincount(y[train_idx], minlength=classes).astype(np.float64)
    weights = torch.tensor(
        counts.sum() / np.maximum(counts, 1) / classes, dtype=torch.float32, device=device
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    patch = config.patch
    origins = {i: _patch_origins(x[i, 0], patch) for i in train_idx} if patch else {}
    draws = np.repeat(train_idx, config.patches_per_image) if patch else np.asarray(train_idx)
    steps = math.ceil(len(draws) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * steps)
    start, best_kappa, best_state, stale = 0, -math.inf, None, 0
    history: list[dict[str, float]] = []
    saved: dict[str, Any] = {}
    if resume and checkpoint and checkpoint.is_file():
        try:  # weights only: a checkpoint that carries code is refused, never run
            saved = torch.load(checkpoint, weights_only=True, map_location=device)
        except Exception as e:
            raise ModelLoadError(
                f"the checkpoint is not a plain weights file ({type(e).__name__})",
                fix=f"delete {checkpoint.name} from the output folder, or train without --resume",
            ) from None
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        start, best_kappa, stale = (
            int(saved["epoch"]) + 1, float(saved["best_kappa"]), int(saved["stale"])
        )  # fmt: skip
        best_state = saved["best_model"]
        history = json.loads(saved["history"])
        rng = np.random.default_rng(seed + start)
        logger.info("resumed density training at epoch %d", start)
        if bar is not None:
            bar.update(start)
    ema = _averaged(model, config.ema)  # when resumed, from the checkpoint's average if it has one
    if ema is not None and "ema" in saved:
        ema.load_state_dict(saved["ema"])
    judged = model if ema is None else ema.module  # the network validated and kept
    for epoch in range(start, config.epochs):
        if stale >= config.patience:  # stopped early before the pause
            break
        model.train()
        perm = rng.permutation(draws)
        total = 0.0
        for s in range(0, len(perm), config.batch_size):
            idx = perm[s : s + config.batch_size]
            if patch:
                batch = _augment_patches(_patches(x, idx, origins, patch, rng), rng)
            else:
                batch = _augment(x[idx], rng)
            batch = _normalise(batch).to(device)
            target = torch.from_numpy(y[idx]).to(device)
            if config.mixup > 0:
                loss = _mixup_loss(model, loss_fn, batch, target, config.mixup, rng)
            else:
                loss = loss_fn(model(batch), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            total += float(loss.detach()) * len(idx)
        judged.eval()
        with torch.inference_mode():
            batches = (x[val_idx[s : s + 32], 0].to(device) for s in range(0, len(val_idx), 32))
            scores = torch.cat([_scores(judged, batch, config.flip_tta, patch)
                                for batch in batches])  # fmt: skip
        pred = scores.argmax(dim=1).cpu().numpy()
        kappa = (
            float(cohen_kappa_score(y[val_idx], pred, weights="quadratic"))
            if len(set(y[val_idx])) > 1
            else 0.0
        )
        metrics = {"epoch": epoch, "loss": total / len(perm),
                   "val_accuracy": float(np.mean(pred == y[val_idx])),
                   "val_quadratic_kappa": kappa}  # fmt: skip
        history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if bar is not None:
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['val_accuracy']:.2f}",
                            kappa=f"{kappa:.2f}")  # fmt: skip
            bar.update(1)
        if kappa > best_kappa:
            best_kappa, stale = kappa, 0
            best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
        else:
            stale += 1
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "schedule": schedule.state_dict(), "epoch": epoch,
                        "best_kappa": best_kappa, "stale": stale, "best_model": best_state,
                        "history": json.dumps(history),
                        **({} if ema is None else {"ema": ema.state_dict()})},
                       checkpoint)  # fmt: skip
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history

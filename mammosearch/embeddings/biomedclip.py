"""BiomedCLIP (open_clip) image and text embedder, ``biomedclip.v1``.

Loads ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`` (offline from a
populated Hugging Face cache) or ``local-dir:PATH`` (``open_clip_config.json``, weights and
tokenizer files; when the folder also holds the text tower's ``config.json``, the text tower
is read from the folder instead of the hub id the config names). Weights load with
``weights_only`` (safetensors preferred). Images use the model's own preprocessing (size,
mean, std); text uses its context length, with a warning when a text is truncated. Runs in
``torch.inference_mode``, on CUDA in fp16 when a GPU is present; reduced precision on the CPU is
bf16 (its fp16 kernels are slow or missing there).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.accel import device_batches, fit_square_batch
from mammosearch.embeddings.base import LOCAL_DIR, PREPARED_SIZE, l2_normalize, parse_model_source
from mammosearch.errors import ModelLoadError
from mammosearch.imaging import fit_square
from mammosearch.registry import embedders

__all__ = ["DEFAULT_BIOMEDCLIP", "BiomedClipEmbedder"]

logger = logging.getLogger(__name__)

DEFAULT_BIOMEDCLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class BiomedClipEmbedder:
    """BiomedCLIP vectors for breast images and report texts (one shared space).

    Args:
        source: ``hf-hub:ORG/NAME`` or ``local-dir:PATH``.
        device: ``"cpu"``, ``"cuda"``…; default: CUDA when available.
        batch_size: Images or texts per forward pass.
        half: Reduced-precision weights and inputs: fp16 on CUDA, bf16 on the CPU (default: on
            CUDA only). Vectors are returned as float32 either way.

    Raises:
        ConfigError: The source has no ``hf-hub:``/``local-dir:`` prefix.
        ModelLoadError: The model cannot be found or loaded.
    """

    name = "biomedclip.v1"
    supports_cross_modal = True
    prepared_size = PREPARED_SIZE

    def __init__(
        self,
        source: str = DEFAULT_BIOMEDCLIP,
        *,
        device: str | None = None,
        batch_size: int = 16,
        half: bool | None = None,
    ) -> None:
        import torch

        kind, value = parse_model_source(source)
        device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, tokenizer, weights = _load(kind, value, device_)
        self._setup(model, tokenizer, source, weights, device_, batch_size, half)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        device: str = "cpu",
        batch_size: int = 16,
        half: bool | None = None,
    ) -> BiomedClipEmbedder:
        """Wrap an open_clip model already in memory (benchmarks, research code)."""
        import torch

        self = cls.__new__(cls)
        self._setup(model.to(device), tokenizer, model_id, None, torch.device(device), batch_size,
                    half)  # fmt: skip
        return self

    def _setup(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        weights: Path | None,
        device: Any,
        batch_size: int,
        half: bool | None,
    ) -> None:
        import torch

        self.model_id = model_id
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.half = self.device.type == "cuda" if half is None else half
        self.dtype = (
            (torch.float16 if self.device.type == "cuda" else torch.bfloat16)
            if self.half
            else torch.float32
        )
        self._model, self._tokenizer, self.weights_path = model, tokenizer, weights
        self.resize_on_device = self.device.type != "cpu"  # see _image_batches
        self._model = self._model.to(self.dtype).eval()
        cfg = getattr(self._model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", 224)
        self.preprocess = {
            "size": int(size[0] if isinstance(size, (list, tuple)) else size),
            "mean": [float(x) for x in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))],
            "std": [float(x) for x in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))],
        }
        self.context_length = int(getattr(self._tokenizer, "context_length", 256))
        scale = getattr(self._model, "logit_scale", None)
        self.logit_scale = float(scale.exp().item()) if scale is not None else 100.0
        side = int(str(self.preprocess["size"]))
        with torch.inference_mode():
            blank = torch.zeros(1, 3, side, side, device=self.device)
            probe = self._model.encode_image(blank.to(self.dtype))
        self.dim = int(probe.shape[-1])
        self.text_dim = self.dim  # one space for images and texts

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file (for index provenance), when there is one."""
        if self.weights_path is None:
            return None
        digest = hashlib.sha256()
        with open(self.weights_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def _image_batches(self, images: Sequence[NDArray[np.float32]]) -> Iterator[Any]:
        """The model's input batches ``n×3×size×size`` (its dtype, on its device).

        On an accelerator the images travel as they are and are resized and normalised there
        (:mod:`mammosearch.accel`); on the CPU, Pillow resizes each image (faster there), then
        the same normalisation. Both give the same values up to rounding.
        """
        import torch

        size = int(str(self.preprocess["size"]))
        mean = torch.tensor(self.preprocess["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess["std"], device=self.device).view(1, 3, 1, 1)
        if not self.resize_on_device:
            images = [fit_square(np.asarray(img, dtype=np.float32), size) for img in images]
        for batch in device_batches(images, self.batch_size, self.device):
            square = fit_square_batch(batch, size) if self.resize_on_device else batch[:, None]
            yield ((square.expand(-1, 3, -1, -1) - mean) / std).to(self.dtype)

    def embed_images(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Embed breast-cropped H×W float32 images in [0, 1]; returns ``n×dim``."""
        import torch

        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():  # outputs stay on the device until the last batch is done
            out = [self._model.encode_image(batch) for batch in self._image_batches(images)]
            vectors = torch.cat(out).float().cpu().numpy()
        return l2_normalize(vectors)

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts (truncated to the model's context, with a warning); returns ``n×dim``."""
        import torch

        if not len(texts):  # before the tokenizer: Hugging Face's fails on an empty list
            return np.zeros((0, self.dim), dtype=np.float32)
        self._warn_truncation(texts)
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
                out.append(self._model.encode_text(tokens).float().cpu().numpy())
        return l2_normalize(np.concatenate(out))

    def _warn_truncation(self, texts: Sequence[str]) -> None:
        inner = getattr(self._tokenizer, "tokenizer", None)
        if inner is None:
            return
        lengths = [len(ids) for ids in inner(list(texts))["input_ids"]]
        too_long = sum(n > self.context_length for n in lengths)
        if too_long:
            logger.warning(
                "%d of %d texts exceed the %d-token context and were truncated",
                too_long, len(texts), self.context_length,
            )  # fmt: skip


def _load(kind: str, value: str, device: Any) -> tuple[Any, Any, Path | None]:
    import open_clip

    kwargs: dict[str, Any] = {}
    weights: Path | None = None
    name = f"{kind}:{value}"
    if kind == "local-dir":
        folder = Path(value)
        config_path = folder / "open_clip_config.json"
        if not config_path.is_file():
            raise ModelLoadError(
                f"no open_clip_config.json in the model folder {folder.name!r}",
                fix="download the model repository (config, weights, tokenizer) into the folder",
            )
        weights = next((folder / f for f in _WEIGHT_FILES if (folder / f).is_file()), None)
        if weights is None:
            raise ModelLoadError(
                f"no weights ({' or '.join(_WEIGHT_FILES)}) in the model folder {folder.name!r}"
            )
        text_cfg = _local_text_cfg(folder, config_path)
        if text_cfg is not None:
            kwargs["text_cfg"] = text_cfg
    try:
        model, _ = open_clip.create_model_from_pretrained(
            name, device=device, weights_only=True, **kwargs
        )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # hub, file-system, config and state-dict errors all land here
        fix = (
            f"these machines may not reach the Hugging Face Hub: download {value} once and "
            f"pass {LOCAL_DIR}PATH (open_clip_config.json, weights, tokenizer and the text "
            "tower's config.json), or fill the Hugging Face cache"
            if kind == "hf-hub"
            else "check that the folder holds a complete open_clip model"
        )
        raise ModelLoadError(
            f"cannot load the BiomedCLIP model {name} ({type(e).__name__})", fix=fix
        ) from e
    return model, tokenizer, weights


def _local_text_cfg(folder: Path, config_path: Path) -> dict[str, Any] | None:
    """Read the text tower from the folder when it holds its config and the hub id is not local."""
    cfg = json.loads(config_path.read_text(encoding="utf-8"))
    text_cfg = dict(cfg.get("model_cfg", {}).get("text_cfg", {}))
    hf_name = text_cfg.get("hf_model_name")
    if not hf_name or Path(hf_name).is_dir() or not (folder / "config.json").is_file():
        return None
    text_cfg["hf_model_name"] = str(folder)
    text_cfg["hf_tokenizer_name"] = str(folder)
    text_cfg["hf_model_pretrained"] = False  # the CLIP checkpoint carries the weights
    return text_cfg


@embedders.register("biomedclip.v1")
def create_biomedclip(**options: Any) -> BiomedClipEmbedder:
    """Factory of :class:`BiomedClipEmbedder` (``source``, ``device``, ``batch_size``, ``half``)."""
    return BiomedClipEmbedder(**options)

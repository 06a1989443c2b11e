"""``convnext.v1``: penultimate features of a trained ConvNeXt density model as image vectors.

Reads the model directory format that ``mammosearch train-density`` writes (``config.json``
with the architecture and preprocessing, ``model.safetensors``) without importing
:mod:`mammosearch.classifiers`, so one trained model can also drive retrieval. Of an ensemble
it reads the first member (``model.safetensors``): one network, one vector space. Report texts
get the baseline's hashed canonical-term vectors (the model has no text tower).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mammosearch.embeddings.base import PREPARED_SIZE, l2_normalize
from mammosearch.embeddings.radiomics import RadiomicsEmbedder
from mammosearch.errors import ModelLoadError
from mammosearch.imaging import patch_windows, tissue_square, window_means
from mammosearch.registry import embedders

__all__ = ["ConvNeXtEmbedder"]

_FORMAT = "mammosearch.convnext_density.v1"


class ConvNeXtEmbedder:
    """Image vectors from a trained ConvNeXt density model directory.

    Args:
        source: The model directory (``local-dir:PATH`` or a plain path).
        batch_size: Images per forward pass.

    Raises:
        ModelLoadError: The folder is not a ConvNeXt density model.
    """

    name = "convnext.v1"
    supports_cross_modal = False
    prepared_size = PREPARED_SIZE

    def __init__(self, source: str, *, batch_size: int = 16) -> None:
        import timm
        from safetensors.torch import load_file

        folder = Path(source.removeprefix("local-dir:"))
        config_path, weights = folder / "config.json", folder / "model.safetensors"
        if not config_path.is_file() or not weights.is_file():
            raise ModelLoadError(
                f"no ConvNeXt density model in {folder.name!r}",
                fix="pass the directory that 'mammosearch train-density' wrote",
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != _FORMAT:
            raise ModelLoadError(f"{folder.name!r} holds another kind of model")
        self._model: Any = timm.create_model(
            str(config["arch"]), pretrained=False, in_chans=1, num_classes=len(config["labels"])
        )
        try:
            self._model.load_state_dict(load_file(str(weights)))
        except RuntimeError as e:
            raise ModelLoadError("the ConvNeXt weights do not match their config") from e
        self._model.eval()
        prep = config.get("preprocessing", {})
        self.preprocess = {
            "size": int(prep.get("size", config.get("image_size", 224))),
            "mean": float(prep.get("mean", 0.5)),
            "std": float(prep.get("std", 0.25)),
            "without_pectoral": bool(prep.get("without_pectoral", False)),
            "patch": int(prep.get("patch", 0)),
        }
        self.model_id = f"local-dir:{folder}"
        self.weights_path = weights
        self.weights_sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
        self.dim = int(cast("int", self._model.num_features))
        self.batch_size = max(1, batch_size)
        self._text = RadiomicsEmbedder()
        self.text_dim = self._text.text_dim

    def embed_images(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Penultimate (pooled, pre-logit) features of breast-cropped images, ``n×dim``; of a
        model that reads patches, the mean of its patches' features."""
        import torch

        size, patch = int(self.preprocess["size"]), int(self.preprocess["patch"])
        mean, std = float(self.preprocess["mean"]), float(self.preprocess["std"])
        pectoral = bool(self.preprocess["without_pectoral"])
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                squares = torch.from_numpy(np.stack(
                    [tissue_square(img, size, without_pectoral=pectoral)
                     for img in images[i : i + self.batch_size]]
                ))  # fmt: skip
                windows, owner = (patch_windows(squares, patch) if patch
                                  else (squares[:, None], torch.arange(len(squares))))  # fmt: skip
                features = self._model.forward_head(
                    self._model.forward_features((windows - mean) / std), pre_logits=True
                )
                out.append(window_means(features, owner, len(squares)).numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.concatenate(out))

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Hashed canonical-term vectors of report texts (as ``radiomics.v1``)."""
        return self._text.embed_texts(texts)


@embedders.register("convnext.v1")
def create_convnext(**options: Any) -> ConvNeXtEmbedder:
    """Factory of :class:`ConvNeXtEmbedder` (``source``: the model directory)."""
    if "source" not in options:
        raise ModelLoadError(
            "convnext.v1 needs a trained model directory", fix="pass --model DIR (train-density)"
        )
    return ConvNeXtEmbedder(**options)

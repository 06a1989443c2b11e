"""The embedder interface and the helpers every embedder shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import ConfigError

__all__ = ["Embedder", "l2_normalize", "parse_model_source"]

HF_HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"


@runtime_checkable
class Embedder(Protocol):
    """Pixels or text → L2-normalised float32 vectors.

    Attributes:
        name: Registry name (``biomedclip.v1``).
        model_id: The model source or version the vectors come from.
        dim: Vector length.
        supports_cross_modal: Whether text and image vectors share one space.
        preprocess: Input size, mean and std the model expects.
    """

    name: str
    model_id: str
    dim: int
    supports_cross_modal: bool
    preprocess: dict[str, Any]

    def embed_images(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Embed breast-cropped H×W float32 images in [0, 1]; returns ``n×dim``."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns ``n×dim`` (text dimension may differ when not cross-modal)."""
        ...


def l2_normalize(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """Rows scaled to unit length (zero rows stay zero), as float32 ``n×d``."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    out: NDArray[np.float32] = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return out


def parse_model_source(source: str) -> tuple[str, str]:
    """Split ``hf-hub:org/name`` or ``local-dir:PATH`` into (kind, value).

    Raises:
        ConfigError: The string has neither prefix (an ambiguous source is not guessed).
    """
    for prefix in (HF_HUB, LOCAL_DIR):
        if source.startswith(prefix) and source[len(prefix) :].strip():
            return prefix[:-1], source[len(prefix) :].strip()
    raise ConfigError(
        f"model source {source!r} has no 'hf-hub:' or 'local-dir:' prefix",
        fix="write hf-hub:ORG/NAME for the Hugging Face Hub or local-dir:PATH for a folder",
    )

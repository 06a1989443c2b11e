"""The embedder interface and the helpers every embedder shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import ConfigError

__all__ = ["PREPARED_SIZE", "Embedder", "FittedEmbedder", "l2_normalize", "parse_model_source"]

PREPARED_SIZE = 512  # the breast-cropped square every built-in embedder is given
HF_HUB = "hf-hub:"
LOCAL_DIR = "local-dir:"


@runtime_checkable
class Embedder(Protocol):
    """Pixels or text → L2-normalised float32 vectors.

    What the pipeline needs to know of an embedder is said by these attributes, never by its
    name or class (``mammosearch.pipeline`` names no embedder).

    Attributes:
        name: Registry name (``biomedclip.v1``).
        model_id: The model source or version the vectors come from. With
            ``weights_sha256`` set it is a source that loads the same weights again.
        weights_sha256: SHA-256 of the weights file, or ``None`` (weight-free, or built in
            memory).
        dim: Image vector length.
        text_dim: Text vector length (``dim`` when the two share one space).
        supports_cross_modal: Whether text and image vectors share one space.
        prepared_size: The side of the breast-cropped square the pipeline prepares for it.
        preprocess: Input size, mean and std the model expects (they travel with the weights).
    """

    name: str
    model_id: str
    dim: int
    text_dim: int
    supports_cross_modal: bool
    prepared_size: int
    preprocess: dict[str, Any]

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file (index provenance), when there is one."""
        ...

    def embed_images(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Embed breast-cropped H×W float32 images in [0, 1]; returns ``n×dim``."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns ``n×text_dim``."""
        ...


@runtime_checkable
class FittedEmbedder(Embedder, Protocol):
    """An embedder whose vectors depend on statistics fitted on the images of the index itself.

    The pipeline computes each image's :meth:`features` once (the costly part), fits the
    statistics over all of an index's images with :meth:`fit_features` and stores them in the
    index manifest, so that every later query is embedded the same way (:meth:`embed_features`).
    """

    @property
    def stats(self) -> dict[str, list[float]] | None:
        """The fitted statistics (JSON-ready), or ``None`` before fitting."""
        ...

    def features(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float64]:
        """Raw features of breast-cropped images, ``n×dim``."""
        ...

    def fit_features(self, features: NDArray[np.float64]) -> dict[str, list[float]]:
        """Fit the statistics on raw features; returns them."""
        ...

    def embed_features(self, features: NDArray[np.float64]) -> NDArray[np.float32]:
        """Vectors of raw features, with the fitted statistics; ``n×dim``."""
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

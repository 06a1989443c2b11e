"""Pixels or text → L2-normalised float32 vectors.

Embedders are registered under versioned names: ``biomedclip.v1`` (BiomedCLIP through
open_clip, image and text in one space), ``radiomics.v1`` (the weight-free baseline: density and
texture descriptors for images, hashed BI-RADS terms for canonical report text), ``convnext.v1``
(penultimate features of a trained ConvNeXt density model). ``auto`` is BiomedCLIP when its
weights load, else the baseline with a warning.

Example:
    >>> from mammosearch.embeddings import create_embedder
    >>> create_embedder("radiomics.v1").dim
    83
"""

from __future__ import annotations

import logging
from typing import Any

from mammosearch.embeddings.base import Embedder, l2_normalize, parse_model_source
from mammosearch.errors import ModelLoadError
from mammosearch.registry import embedders

__all__ = ["AUTO", "Embedder", "create_embedder", "l2_normalize", "list_embedders",
           "parse_model_source"]  # fmt: skip

logger = logging.getLogger(__name__)

AUTO = "auto"


def _register_builtins() -> None:
    # importing the modules registers their factories (they import torch/open_clip lazily)
    from mammosearch.embeddings import biomedclip, convnext, radiomics  # noqa: F401


def list_embedders() -> list[str]:
    """Registered embedder names (plus ``auto``)."""
    _register_builtins()
    return [AUTO, *embedders.names()]


def create_embedder(name: str = AUTO, /, **options: Any) -> Embedder:
    """Create a registered embedder.

    Args:
        name: ``auto``, ``biomedclip.v1``, ``radiomics.v1`` or another registered name.
        **options: Passed to the factory (``source="local-dir:PATH"`` for BiomedCLIP).

    Raises:
        RegistryError: Unknown name; the message lists the registered ones.
        ModelLoadError: The named model's weights cannot be loaded.
    """
    _register_builtins()
    if name == AUTO:
        biomed_options = {k: v for k, v in options.items() if k != "stats"}
        try:
            embedder: Embedder = embedders.create("biomedclip.v1", **biomed_options)
            return embedder
        except ModelLoadError as e:
            logger.warning(
                "BiomedCLIP weights could not be loaded (%s); using the weight-free "
                "radiomics.v1 baseline",
                e.message,
            )
            stats = options.get("stats")
            fallback: Embedder = embedders.create("radiomics.v1", stats=stats)
            return fallback
    created: Embedder = embedders.create(name, **options)
    return created

"""Pixels or text → L2-normalised float32 vectors.

Embedders are registered under versioned names: ``biomedclip.v1`` (BiomedCLIP through
open_clip, image and text in one space), ``radiomics.v1`` (the weight-free baseline: density and
texture descriptors for images, hashed BI-RADS terms for canonical report text), ``convnext.v1``
(penultimate features of a trained ConvNeXt density model). ``auto`` is BiomedCLIP when its
weights load, else the baseline with a warning. For a hub model, ``auto`` reads the local
Hugging Face cache first and does not wait on a hub it cannot reach.

Example:
    >>> from mammosearch.embeddings import create_embedder
    >>> create_embedder("radiomics.v1").dim
    165
"""

from __future__ import annotations

import logging
from typing import Any

from mammosearch.embeddings.base import (
    PREPARED_SIZE,
    Embedder,
    FittedEmbedder,
    l2_normalize,
    parse_model_source,
)
from mammosearch.errors import ModelLoadError
from mammosearch.registry import embedders

__all__ = ["AUTO", "PREPARED_SIZE", "WEIGHT_FREE", "Embedder", "FittedEmbedder",
           "create_embedder", "l2_normalize", "list_embedders", "open_embedder",
           "parse_model_source"]  # fmt: skip

logger = logging.getLogger(__name__)

AUTO = "auto"
WEIGHT_FREE = "radiomics.v1"  # the baseline that needs no download (and the probe's vectors)
_WITH_STATS = (AUTO, WEIGHT_FREE)  # the names whose embedder may take fitted statistics


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
            embedder: Embedder = _auto_biomedclip(biomed_options)
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


def open_embedder(
    name: str, source: str | None = None, stats: dict[str, list[float]] | None = None
) -> Embedder:
    """The embedder of an index build or query: a name, its model source (ignored by the
    weight-free baseline) and the statistics an index fitted (used by the weight-free one).

    Raises:
        RegistryError: Unknown name.
        ModelLoadError: The model cannot be loaded.
    """
    options: dict[str, Any] = {}
    if source and name != WEIGHT_FREE:
        options["source"] = source
    if name in _WITH_STATS and stats is not None:
        options["stats"] = stats
    return create_embedder(name, **options)


def _auto_biomedclip(options: dict[str, Any]) -> Embedder:
    """BiomedCLIP for ``auto``: a hub model from the local Hugging Face cache when it is there
    (no network), else from the hub when the hub answers; a hub that cannot be reached is
    reported at once instead of after the download client's retries."""
    from mammosearch.embeddings.biomedclip import DEFAULT_BIOMEDCLIP

    source = str(options.get("source") or DEFAULT_BIOMEDCLIP)
    kind, repo = parse_model_source(source)
    if kind != "hf-hub":
        return embedders.create("biomedclip.v1", **options)  # type: ignore[no-any-return]
    cached = _cached_snapshot(repo)
    if cached is not None:
        embedder = embedders.create("biomedclip.v1", **dict(options, source=f"local-dir:{cached}"))
        embedder.model_id = source  # the same weights (their hash is recorded with an index)
        return embedder  # type: ignore[no-any-return]
    if not _hub_reachable():
        raise ModelLoadError(
            f"{repo} is not in the local Hugging Face cache and the hub cannot be reached",
            fix="fill the cache once on a connected machine, or pass --model local-dir:PATH",
        )
    return embedders.create("biomedclip.v1", **options)  # type: ignore[no-any-return]


def _cached_snapshot(repo: str) -> str | None:
    """The local snapshot folder of a hub repository, without the network (``HF_HUB_CACHE``
    when set)."""
    import os

    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(repo, local_files_only=True,
                                     cache_dir=os.environ.get("HF_HUB_CACHE") or None))  # fmt: skip
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (never when HF_HUB_OFFLINE)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False

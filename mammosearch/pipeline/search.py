"""``search``: open an index with the embedder it was built with, embed a query, find cases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mammosearch.config import Settings
from mammosearch.embeddings import Embedder, open_embedder
from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index import CaseIndex, SearchFilters
from mammosearch.nlp import Normalizer
from mammosearch.pipeline.stages import embed_images, embed_texts, prepare_query
from mammosearch.records import Neighbour, NormalizedReport

__all__ = ["Query", "embed_query", "open_index", "search_cases"]


@dataclass(frozen=True, slots=True)
class Query:
    """An embedded query: its image vector, its report's vector and the normalized report."""

    image_vector: NDArray[np.float32] | None
    text_vector: NDArray[np.float32] | None
    report: NormalizedReport | None


def open_index(directory: Path, model: str | None = None) -> tuple[CaseIndex, Embedder]:
    """Open an index and the embedder it was built with (same name, model and statistics).

    Raises:
        InputError: No index there.
        IndexIntegrityError: A checksum fails, or the embedder's dimension differs.
        ModelLoadError: The index's model cannot be loaded.
    """
    index = CaseIndex(directory)
    info = index.manifest.embedder
    # a model whose weights were hashed is loaded again from the source it was built with
    source = model or (info.model_id if info.weights_sha256 is not None else None)
    try:
        made = open_embedder(info.name, source, info.stats)
    except BaseException:
        index.close()
        raise
    if made.name != info.name or made.dim != info.image_dim:
        index.close()
        raise IndexIntegrityError(
            f"the index was built by {info.name} ({info.image_dim}-d); {made.name} "
            f"({made.dim}-d) cannot query it",
            fix="load the index's own model (--model)",
        )
    if source is None and made.model_id != info.model_id:  # a weight-free embedder's revision
        index.close()
        raise IndexIntegrityError(
            f"the index was built by another revision of {info.name} ({info.model_id!r})",
            fix="rebuild it: mammosearch index build MANIFEST -o DIR",
        )
    return index, made


def embed_query(
    embedder: Embedder, image: Path | bytes | None, text: str | None, normalizer: Normalizer
) -> Query:
    """Embed a query image (breast-cropped like indexed ones) and/or a report's canonical text."""
    image_vector = text_vector = None
    normalized = None
    if image is not None:
        _, prepared = prepare_query(image, embedder.prepared_size)
        image_vector = embed_images(embedder, [prepared])[0]
    if text:
        normalized = normalizer.normalize(text)
        text_vector = embed_texts(embedder, [normalized.standardized_text])[0]
    return Query(image_vector, text_vector, normalized)


def search_cases(
    directory: Path,
    *,
    image: Path | bytes | None = None,
    text: str | None = None,
    k: int = 10,
    filters: SearchFilters | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    fusion: str = "weighted",
    model: str | None = None,
    settings: Settings | None = None,
) -> list[Neighbour]:
    """Embed a query image and/or report text and return the most similar cases, best first.

    Raises:
        InputError: Neither an image nor a text; no index there.
        InvalidDicomError: The image cannot be read.
    """
    if image is None and not text:
        raise InputError(
            "give an image, a report text, or both", fix="see 'mammosearch search --help'"
        )
    index, embedder = open_index(directory, model)
    try:
        normalizer = Normalizer(max_chars=(settings.max_report_chars if settings else 200_000))
        query = embed_query(embedder, image, text, normalizer)
        return index.search(
            image_vector=query.image_vector, text_vector=query.text_vector, k=k,
            filters=filters or SearchFilters(), weights=weights, fusion=fusion,
        )  # fmt: skip
    finally:
        index.close()

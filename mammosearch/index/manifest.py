"""The manifest of an index directory and the checksums of its files.

``manifest.json`` records the index's provenance (embedder, settings, versions) and the SHA-256
of every other file; readers check a file against it before they use it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index._recovery import _recover
from mammosearch.index.layout import MANIFEST
from mammosearch.index.vectors import map_rows, shard_names

__all__ = [
    "FORMAT_VERSION",
    "EmbedderInfo",
    "IndexManifest",
    "load_manifest",
    "map_checked",
    "read_checked",
]

FORMAT_VERSION = 1


class EmbedderInfo(BaseModel):
    """Which embedder made the vectors (queries must use the same)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    model_id: str
    weights_sha256: str | None = None
    image_dim: int
    text_dim: int
    cross_modal: bool
    stats: dict[str, list[float]] | None = None


class IndexManifest(BaseModel):
    """``manifest.json``: provenance and checksums of an index directory."""

    model_config = ConfigDict(extra="forbid")

    format_version: int
    package_version: str
    created: str
    updated: str
    embedder: EmbedderInfo
    counts: dict[str, int]
    labels: list[str]
    label_order_source: str
    vote: dict[str, float]
    vote_figures: dict[str, float]
    vectors: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    files: dict[str, str]
    store: dict[str, str] = {"backend": "sqlite"}
    generation: int = 0


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return _digest(handle)


def _digest(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def read_checked(directory: Path, name: str, expected: str) -> bytes:
    """The bytes of an index file, after checking them against the manifest's checksum."""
    data = (directory / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise _mismatch(name)
    return data


def _mismatch(name: str) -> IndexIntegrityError:
    return IndexIntegrityError(
        f"index file {name} does not match its checksum",
        fix="run 'mammosearch index verify' and rebuild the index",
    )


def map_checked(directory: Path, name: str, expected: str) -> NDArray[np.float16]:
    """A re-ranking file memory-mapped, after checking the same open file's checksum (it is
    not read into memory: it can be many times the size of the index)."""
    with (directory / name).open("rb") as handle:
        if _digest(handle) != expected:
            raise _mismatch(name)
        return map_rows(handle)


def _vector_files(manifest: IndexManifest, modality: str, ext: str = "faiss") -> list[str]:
    """The vector (or ``ext="f16"``: re-ranking) files of a modality listed in the manifest
    (one per shard), or ``[]``."""
    names = shard_names(modality, int(manifest.vectors.get(modality, {}).get("shards", 1)), ext)
    return names if all(name in manifest.files for name in names) else []


def _read_manifest(directory: Path) -> IndexManifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise InputError(
            f"no index at {str(directory)!r} (manifest.json is missing)",
            fix="build one with 'mammosearch index build'",
        )
    try:
        manifest = IndexManifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise IndexIntegrityError(
            f"the index manifest is invalid ({e.error_count()} problems)",
            fix="rebuild the index",
        ) from e
    if manifest.format_version != FORMAT_VERSION:
        raise IndexIntegrityError(
            f"index format {manifest.format_version} is not {FORMAT_VERSION}",
            fix="rebuild the index with this version of mammosearch",
        )
    return manifest


def load_manifest(directory: Path) -> IndexManifest:
    """The manifest of an index directory (after repairing an interrupted swap).

    Raises:
        InputError: There is no index there.
        IndexIntegrityError: The manifest is invalid or of another format.
    """
    _recover(directory)
    return _read_manifest(directory)

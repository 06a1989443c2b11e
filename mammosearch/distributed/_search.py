"""Search a sharded vector index with one Ray actor per shard (the shards on a cluster).

Optional: needs ``ray`` (not a dependency of the package). Each actor checks one shard file
against the index manifest's SHA-256, loads it and answers searches with the same allow /
exclude id filters as :class:`~mammosearch.index.vectors.VectorIndex`; the caller fans a batch
out to every actor and merges the per-shard top ``k`` by similarity, as FAISS ``IndexShards``
does in one process. The index directory must be readable at the same path on every node (a
shared file system). Not wired into ``search`` or ``serve`` yet: a Python API for clusters.

Example:
    >>> shards = RaySharded(Path("/shared/index"), "image", address="auto")  # doctest: +SKIP
    >>> scores, ids = shards.search(queries, 10, exclude=[12, 13])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.distributed._cluster import require_ray
from mammosearch.errors import InputError
from mammosearch.index import (
    VectorIndex,
    load_manifest,
    map_checked,
    merge_top_k,
    read_checked,
    shard_names,
)

__all__ = ["RaySharded"]


class _Shard:
    """One shard file (and its re-ranking file), loaded after their checksums are checked
    (runs inside a Ray actor)."""

    def __init__(
        self, directory: str, files: list[tuple[str, str]], info: dict[str, Any], stride: int
    ) -> None:
        """``files``: names and checksums, the shard's ``.faiss`` file first, then its ``.f16``."""
        (name, sha), *rerank = files
        data = read_checked(Path(directory), name, sha)
        rows = [map_checked(Path(directory), name, sha) for name, sha in rerank]
        self.index = VectorIndex.from_bytes(
            [data], dict(info, shards=1), rows=rows or None, stride=stride
        )

    def search(
        self,
        queries: NDArray[np.float32],
        k: int,
        allow: list[int] | None,
        exclude: list[int] | None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        if self.index.ntotal == 0:
            shape = (len(queries), k)
            return np.full(shape, -np.inf, np.float32), np.full(shape, -1, np.int64)
        scores, ids = self.index.search(queries, k, allow=allow, exclude=exclude)
        if ids.shape[1] < k:  # a shard smaller than k
            pad = k - ids.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores, ids

    def ntotal(self) -> int:
        return self.index.ntotal


class RaySharded:
    """One Ray actor per shard of a modality's vector index, searched by fan-out and merge.

    Args:
        directory: The index directory (the same path on every node).
        modality: ``image`` or ``text``.
        address: Ray address (``auto``, ``ray://head:10001``); ``None`` starts a local Ray
            unless one is running.
        cpus_per_shard: CPUs each actor reserves.

    Raises:
        IndexIntegrityError: A shard does not match its checksum (raised by ``search``).
    """

    def __init__(
        self,
        directory: Path,
        modality: str = "image",
        *,
        address: str | None = None,
        cpus_per_shard: float = 1.0,
    ) -> None:
        ray = require_ray()
        manifest = load_manifest(Path(directory))
        info = manifest.vectors.get(modality)
        if info is None:
            raise InputError(
                f"this index has no {modality} vectors", fix="search the image vectors"
            )
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        shards = int(info.get("shards", 1))
        kinds = ("faiss", "f16") if info.get("rerank") else ("faiss",)
        per_shard = zip(*(shard_names(modality, shards, ext) for ext in kinds), strict=True)
        actor = ray.remote(num_cpus=cpus_per_shard)(_Shard)
        self._ray = ray
        self.actors: list[Any] = [
            actor.remote(str(directory), [(n, manifest.files[n]) for n in names], info, shards)
            for names in per_shard
        ]

    def search(
        self,
        queries: NDArray[np.float32],
        k: int,
        *,
        allow: Iterable[int] | None = None,
        exclude: Iterable[int] | None = None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The ``k`` best ids per query over all shards (``-1`` where fewer exist)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        wanted = None if allow is None else [int(i) for i in allow]
        unwanted = None if exclude is None else [int(i) for i in exclude]
        parts = self._ray.get(
            [a.search.remote(queries, int(k), wanted, unwanted) for a in self.actors]
        )
        return merge_top_k([s for s, _ in parts], [i for _, i in parts], int(k))

    @property
    def ntotal(self) -> int:
        """Number of vectors over all shards."""
        return int(sum(self._ray.get([a.ntotal.remote() for a in self.actors])))

    def close(self) -> None:
        """Stop the actors (and the local Ray this object started)."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

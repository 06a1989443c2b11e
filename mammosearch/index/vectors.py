"""FAISS vector indexes with int64 ids (the case store's row ids).

The index type follows the collection's size, as the FAISS guidelines advise: exact inner
product (``IndexFlatIP`` in an ``IndexIDMap2``) up to :data:`EXACT_LIMIT` vectors; above it an
inverted file (``IndexIVFFlat``, ``4·√n`` lists trained on a sample) whose ``nprobe`` is raised
until recall@10 against exact search on held-out queries reaches :data:`TARGET_RECALL`; the
measured recall is kept. Vectors are L2-normalised, so inner product is cosine similarity.
Searches can be restricted to, or exclude, a set of ids (FAISS ``IDSelector``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import IndexIntegrityError

__all__ = ["EXACT_LIMIT", "TARGET_RECALL", "VectorIndex"]

EXACT_LIMIT = 50_000
TARGET_RECALL = 0.95
_RECALL_QUERIES = 200
_NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _faiss() -> Any:
    import faiss

    return faiss


@dataclass(slots=True)
class VectorIndex:
    """A FAISS index of ``dim``-dimensional vectors keyed by int64 ids."""

    dim: int
    index: Any
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        """An exact index with no vectors."""
        faiss = _faiss()
        return cls(dim, faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), {"type": "flat"})

    @classmethod
    def build(
        cls,
        vectors: NDArray[np.float32],
        ids: NDArray[np.int64],
        *,
        exact_limit: int = EXACT_LIMIT,
        seed: int = 0,
    ) -> VectorIndex:
        """Index ``vectors`` (``n×dim``, L2-normalised) under ``ids``, choosing the type by size."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n, dim = vectors.shape
        if n <= exact_limit:
            made = cls.empty(dim)
            made.add(vectors, ids)
            return made
        faiss = _faiss()
        nlist = int(min(65_536, max(16, 4 * math.sqrt(n))))
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(sample)
        ivf.add_with_ids(vectors, ids)
        made = cls(dim, ivf, {"type": "ivf_flat", "nlist": nlist})
        made._tune(vectors, ids, rng)
        return made

    def _tune(
        self, vectors: NDArray[np.float32], ids: NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        """Raise nprobe until recall@10 against exact search reaches the target.

        The queries are indexed vectors whose own hit is left out on both sides, so the
        recall is that of a new image of the same kind, not the trivial self match.
        """
        faiss = _faiss()
        picks = rng.choice(len(vectors), size=min(_RECALL_QUERIES, len(vectors)), replace=False)
        queries = vectors[picks]
        exact = faiss.IndexFlatIP(self.dim)
        exact.add(vectors)
        _, positions = exact.search(queries, 11)
        truth = ids[positions]
        recall = 0.0
        for nprobe in _NPROBES:
            if nprobe > self.index.nlist:
                break
            self.index.nprobe = nprobe
            _, found = self.index.search(queries, 11)
            recall = _recall(_drop_self(found, ids[picks]), _drop_self(truth, ids[picks]))
            if recall >= TARGET_RECALL:
                break
        self.info.update({"nprobe": int(self.index.nprobe), "recall_at_10": round(recall, 4)})

    def add(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Add vectors under ids."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexIntegrityError(
                f"vectors of dimension {vectors.shape[-1]} do not fit this {self.dim}-d index",
                fix="embed with the index's own embedder",
            )
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> int:
        """Remove ids; returns how many were removed."""
        faiss = _faiss()
        wanted = np.asarray(list(ids), dtype=np.int64)
        if wanted.size == 0:
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(wanted)))

    def exact_contents(self) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
        """All ids and vectors of an exact index (insertion order); ``None`` for IVF."""
        faiss = _faiss()
        if not hasattr(self.index, "id_map"):
            return None
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.index.index.reconstruct_n(0, self.index.ntotal)
        return ids, np.asarray(vectors, dtype=np.float32)

    def vector(self, id_: int) -> NDArray[np.float32]:
        """The stored vector of one id."""
        faiss = _faiss()
        if (
            not hasattr(self.index, "id_map")
            and self.index.direct_map.type == faiss.DirectMap.NoMap
        ):
            self.index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return np.asarray(self.index.reconstruct(int(id_)), dtype=np.float32)

    @property
    def ntotal(self) -> int:
        """Number of vectors."""
        return int(self.index.ntotal)

    def ids(self) -> NDArray[np.int64]:
        """All ids, ascending."""
        faiss = _faiss()
        if hasattr(self.index, "id_map"):
            found = faiss.vector_to_array(self.index.id_map)
        else:
            invlists = self.index.invlists
            found = np.concatenate(
                [
                    faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                    for i in range(invlists.nlist)
                    if invlists.list_size(i)
                ]
                or [np.zeros(0, dtype=np.int64)]
            )
        return np.sort(np.asarray(found, dtype=np.int64))

    def search(
        self,
        queries: NDArray[np.float32],
        k: int,
        *,
        allow: Iterable[int] | None = None,
        exclude: Iterable[int] | None = None,
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The ``k`` nearest ids per query (``-1`` where fewer exist) and their similarities."""
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise IndexIntegrityError(
                f"a {queries.shape[1]}-d query does not fit this {self.dim}-d index",
                fix="query with the embedder the index was built with",
            )
        k = max(1, min(int(k), max(self.ntotal, 1)))
        selector = None
        if allow is not None:
            selector = faiss.IDSelectorBatch(np.asarray(list(allow), dtype=np.int64))
        if exclude is not None:
            excluded = np.asarray(list(exclude), dtype=np.int64)
            if excluded.size:
                ex = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
                selector = ex if selector is None else faiss.IDSelectorAnd(selector, ex)
        if selector is None:
            scores, ids = self.index.search(queries, k)
        else:
            if "nprobe" in self.info:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=int(self.info["nprobe"]))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, ids = self.index.search(queries, k, params=params)
        return scores.astype(np.float32), ids.astype(np.int64)

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, info: dict[str, Any]) -> VectorIndex:
        """Load an index from the bytes :meth:`save` wrote (check their checksum first)."""
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as e:
            raise IndexIntegrityError("a vector index file cannot be read") from e
        if "nprobe" in info:
            index.nprobe = int(info["nprobe"])
        return cls(int(index.d), index, dict(info))


def _drop_self(found: NDArray[np.int64], own: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each row's results without the query's own id, cut to 10."""
    return np.stack([[i for i in row if i != me][:10] for row, me in zip(found, own, strict=True)])


def _recall(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    """Fraction of the exact neighbours that the approximate search found."""
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / max(1, truth.size)

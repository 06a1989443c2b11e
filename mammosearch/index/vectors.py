"""FAISS vector indexes with int64 ids (the case store's row ids), in one or several shards.

The index type follows the collection's size, as the FAISS wiki's "Guidelines to choose an
index" advise (``n`` vectors of ``d`` dimensions, L2-normalised, so inner product is cosine):

* ``n`` ≤ :data:`EXACT_LIMIT` (50k): exact inner product (``IndexFlatIP`` in an
  ``IndexIDMap2``); recall 1.
* :data:`EXACT_LIMIT` < ``n`` ≤ :data:`PQ_LIMIT` (1M): ``IndexIVFFlat``, full vectors
  (``4·d + 8`` bytes each: 2 GB for 1M 512-d vectors, which one machine holds). Measured, it
  keeps 10-recall@10 ≈ 1 at a small ``nprobe``, which no code within the byte budget below does
  on clustered 512-d data, so it stays the choice wherever memory allows.
* ``n`` > :data:`PQ_LIMIT`: IVF-PQ with 8-bit codes of ``m`` bytes, ``m`` the largest of 64, 56,
  48, 40, 32, 24, 16, 8 that keeps the index files at most :data:`BYTES_PER_VECTOR` (80) bytes
  per vector, counting the 8-byte id kept in the inverted lists and each shard's copy of the
  coarse centroids, codebooks and rotation. In front (``IndexPreTransform``) goes a rotation
  onto ``2·m`` dimensions: the top singular directions of the (uncentred) training sample, then
  a random rotation that spreads their variance over the sub-quantizers (``svdr``, computed
  with NumPy in seconds). Measured with ``bench/scale.py`` on 100k clustered 512-d vectors
  (docs/SCALING.md): ``svdr`` 10-recall@10 0.858, OPQ to the same 112 dimensions 0.863 but
  15 times the training time (427 s against 29 s), plain PQ64 on 512-d 0.59 (200k). So ``svdr``
  is the default and OPQ (``transform="opq"``) an option where its small gain is worth it.
  Within 80 bytes the codes, not ``nprobe``, limit 10-recall@10 (0.86 at 100k, 0.74 at 1M,
  0.67 at 5M on that data; 1-recall@10 1.0, 0.985, 0.956): the tuning stops where raising
  ``nprobe`` no longer helps, and the manifest says whether the target was met. The 0.95 target
  needs about 540 bytes per vector there (IVF-SQ8), or IVF-Flat, unless the candidates are
  re-ranked (below).
* Re-ranking (IVF-PQ, on by default): the index also writes every vector in float16 to a file
  beside each shard (:func:`shard_names` with ``ext="f16"``: ``2·d`` bytes per vector, on disk;
  row ``id // shards``), which readers memory-map instead of loading. A search takes the
  codes' top ``k·f`` candidates and re-scores them with their float16 vectors (exact inner
  product up to float16 rounding), so RAM holds only the ≤ 80-byte codes while recall is that
  of exact search on the candidates: on the stand-in, 10-recall@10 from the codes alone 0.74
  (1M) and 0.67 (5M), re-ranked 0.977 and 0.968 with ``f`` = 4 (``bench/scale.py``,
  docs/SCALING.md). ``f`` is tuned with ``nprobe``. The shards re-rank their own candidates
  (``k·f`` each) and the best ``k`` are merged.

An IVF index has ``nlist`` = the power of two nearest ``4·√n`` lists (the low end of the
guidelines' 4–16·√n: fewer centroids to keep per shard), trained by k-means (10 iterations) on a
random sample of ``40·nlist`` vectors. Its ``nprobe`` doubles from 1 until recall@10 (overlap of
the top-10 sets) against exact search on held-out queries reaches :data:`TARGET_RECALL`, or
stops gaining; the measured 10-recall@10 and 1-recall@10 and every parameter go into
:attr:`VectorIndex.info` (the index manifest).

Shards: an index may be split into ``N`` shards (parts), each a clone of the one trained empty
index (same coarse quantizer, rotation and codebooks), holding the ids ``id % N == i``. They are
saved as separate files (:func:`shard_names`) and searched together by fan-out and merge with
FAISS ``IndexShards``. Searches can be restricted to, or exclude, a set of ids (``IDSelector``,
passed through ``IndexShards`` and ``IndexPreTransform`` as search parameters).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import IndexIntegrityError

__all__ = [
    "BYTES_PER_VECTOR",
    "EXACT_LIMIT",
    "PQ_LIMIT",
    "TARGET_RECALL",
    "VectorIndex",
    "exact_neighbours",
    "map_rows",
    "merge_top_k",
    "plan_index",
    "recalls",
    "shard_names",
]

logger = logging.getLogger(__name__)

EXACT_LIMIT = 50_000
PQ_LIMIT = 1_000_000
TARGET_RECALL = 0.95
BYTES_PER_VECTOR = 80
_ID_BYTES = 8
_PQ_SIZES = (64, 56, 48, 40, 32, 24, 16, 8)
_DIMS_PER_BYTE = 2
_PQ_MIN_TRAIN = 1_000
_TRANSFORMS = ("svdr", "opq", "none")
_TRAIN_PER_LIST = 40
_KMEANS_ITERATIONS = 10
_RECALL_QUERIES = 200
_PLATEAU = 0.002
_NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_RERANK_FACTORS = (1, 2, 4, 8)
_RERANK_QUERIES = 256  # queries re-ranked at a time (bounds the q×k·f×d gather)

Chunks = Callable[[], Iterable[tuple[NDArray[np.float32], NDArray[np.int64]]]]


def _faiss() -> Any:
    import faiss

    return faiss


def shard_names(modality: str, shards: int, ext: str = "faiss") -> list[str]:
    """The file names of a modality's shards: ``image.faiss``, or ``image.shard-00-of-04.faiss``…

    ``ext="f16"`` names the shards' float16 re-ranking files (``image.f16``…).
    """
    if shards <= 1:
        return [f"{modality}.{ext}"]
    return [f"{modality}.shard-{i:02d}-of-{shards:02d}.{ext}" for i in range(shards)]


def map_rows(handle: BinaryIO) -> NDArray[np.float16]:
    """A re-ranking file (little-endian float16, ``rows×dim`` flattened) memory-mapped
    read-only; pass the handle whose bytes were checked, not the path again."""
    if os.fstat(handle.fileno()).st_size == 0:
        return np.zeros(0, dtype=np.float16)
    return np.memmap(handle, dtype="<f2", mode="r")


@dataclass(slots=True)
class _Rows:
    """One shard's vectors in float16 for re-ranking, row ``id // stride`` (zeros elsewhere).

    Starts from a read-only memory map (a loaded index) or nothing, and becomes a growing
    in-memory array at the first :meth:`put`.
    """

    dim: int
    data: NDArray[np.float16]
    used: int = 0

    @classmethod
    def of(cls, dim: int, flat: NDArray[np.float16] | None = None) -> _Rows:
        if flat is None:
            return cls(dim, np.zeros((0, dim), dtype=np.float16))
        if flat.size % dim:
            raise IndexIntegrityError("a re-ranking file does not hold whole vectors")
        data = flat.reshape(-1, dim)
        return cls(dim, data, len(data))

    def put(self, rows: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        need = int(rows.max()) + 1
        if not self.data.flags.writeable or need > len(self.data):  # mapped, or full
            grown = np.zeros((max(need, len(self.data) * 3 // 2, 1024), self.dim), np.float16)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        self.data[rows] = vectors.astype(np.float16)
        self.used = max(self.used, need)

    def check(self, rows: NDArray[np.int64]) -> None:
        if rows.size and int(rows.max()) >= self.used:
            raise IndexIntegrityError(
                "a vector id has no row in the re-ranking file", fix="rebuild the index"
            )

    def get(self, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        self.check(rows)
        return np.asarray(self.data[rows], dtype=np.float32)

    def save(self, path: Path) -> None:
        np.ascontiguousarray(self.data[: self.used], dtype="<f2").tofile(path)


def plan_index(
    n: int,
    dim: int,
    *,
    shards: int = 1,
    exact_limit: int = EXACT_LIMIT,
    pq_limit: int = PQ_LIMIT,
    transform: str = "svdr",
    rerank: bool = True,
) -> dict[str, Any]:
    """The index type and parameters for ``n`` vectors (module docstring).

    Args:
        n: Collection size.
        dim: Vector dimension.
        shards: Number of shards (each keeps its own copy of the trained parts).
        exact_limit: Exact search up to this size.
        pq_limit: IVF-Flat up to this size, IVF-PQ above.
        transform: IVF-PQ's rotation: ``svdr`` (truncated SVD + random rotation to
            ``2·pq_m`` dimensions), ``opq`` (OPQ to the same size) or ``none``.
        rerank: IVF-PQ keeps float16 vectors on disk and re-ranks its candidates with them.

    Returns:
        ``{"type": "flat"|"ivf_flat"|"ivf_pq", "shards": N, ...}`` with ``nlist`` for IVF and
        ``pq_m`` (code bytes), ``transform``, ``transform_dim`` and ``rerank`` for IVF-PQ.
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    if transform not in _TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}: use one of {_TRANSFORMS}")
    if n <= exact_limit:
        return {"type": "flat", "shards": shards}
    nlist = 2 ** round(math.log2(max(16.0, 4 * math.sqrt(n))))
    nlist = int(min(65_536, nlist, max(1, n // _TRAIN_PER_LIST)))
    if n <= max(pq_limit, _PQ_MIN_TRAIN):  # 8-bit PQ codebooks need a few points per centroid
        return {"type": "ivf_flat", "shards": shards, "nlist": nlist}
    chosen = (min(_PQ_SIZES), dim)
    for m in _PQ_SIZES:
        out = dim if transform == "none" else min(dim, _DIMS_PER_BYTE * m)
        if m > out or out % m:
            continue
        # per shard: coarse centroids, PQ codebooks, the rotation matrix
        fixed = nlist * out * 4 + 256 * out * 4 + (0 if transform == "none" else out * dim * 4)
        if m + _ID_BYTES + shards * fixed / n <= BYTES_PER_VECTOR:
            chosen = (m, out)
            break
    m, out = chosen
    return {
        "type": "ivf_pq",
        "shards": shards,
        "nlist": nlist,
        "pq_m": m,
        "transform": transform,
        "transform_dim": out,
        "rerank": rerank,
    }


def _svd_rotation(sample: NDArray[np.float32], out: int, seed: int) -> Any:
    """A ``LinearTransform`` onto the top ``out`` singular directions, randomly rotated.

    Uncentred (the second moment, not the covariance), so inner products keep their meaning;
    the random rotation spreads the variance evenly over the PQ sub-vectors.
    """
    faiss = _faiss()
    dim = sample.shape[1]
    moment = np.zeros((dim, dim), dtype=np.float64)
    for start in range(0, len(sample), 65_536):  # float64 a block at a time, not a copy of all
        block = np.asarray(sample[start : start + 65_536], dtype=np.float64)
        moment += block.T @ block
    _, vecs = np.linalg.eigh(moment / max(1, len(sample)))
    top = vecs[:, ::-1][:, :out]
    spin, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(out, out)))
    matrix = np.ascontiguousarray((top @ spin).T, dtype=np.float32)
    rotation = faiss.LinearTransform(dim, out, False)
    faiss.copy_array_to_vector(matrix.ravel(), rotation.A)
    rotation.is_trained = True
    rotation.set_is_orthonormal()
    return rotation


def merge_top_k(
    scores: list[NDArray[np.float32]], ids: list[NDArray[np.int64]], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The best ``k`` per query over several ``q×kᵢ`` result sets (chunks or shards).

    Missing results (id ``-1``) rank last; ties keep the order of the sets given.
    """
    all_i = np.concatenate(ids, axis=1).astype(np.int64)
    all_s = np.where(all_i >= 0, np.concatenate(scores, axis=1), -np.inf)
    order = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(all_s, order, axis=1).astype(np.float32),
        np.take_along_axis(all_i, order, axis=1),
    )


def exact_neighbours(
    queries: NDArray[np.float32], chunks: Chunks, k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact top-``k`` (inner product) over vectors given chunk by chunk, merged.

    Args:
        queries: ``q×d`` query vectors.
        chunks: Called once; yields ``(vectors, ids)`` pieces of the collection.
        k: Neighbours per query.

    Returns:
        Similarities and ids, ``q×k`` each, best first (``-1`` where fewer exist).
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for vectors, ids in chunks():
        flat = faiss.IndexFlatIP(queries.shape[1])
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
        s, pos = flat.search(queries, min(k, len(vectors)))
        found = np.where(pos >= 0, np.asarray(ids, dtype=np.int64)[np.maximum(pos, 0)], -1)
        best_s, best_i = merge_top_k([best_s, s], [best_i, found], k)
    return best_s, best_i


def _ivf(part: Any) -> Any:
    """The IVF index inside a part (through an OPQ ``IndexPreTransform``), or ``None``."""
    faiss = _faiss()
    try:
        return faiss.extract_index_ivf(part)
    except RuntimeError:
        return None


@dataclass(slots=True)
class VectorIndex:
    """A FAISS index of ``dim``-dimensional vectors keyed by int64 ids.

    Attributes:
        dim: Vector dimension.
        index: What is searched: the one part, or an ``IndexShards`` over :attr:`parts`.
        info: Type and parameters, measured recall (goes to the index manifest).
        parts: The shards (one FAISS index each; shard ``i`` holds the ids ``id % N == i``).
        rows: Each shard's float16 vectors for re-ranking (IVF-PQ), or empty: no re-ranking.
        stride: The ``N`` of ``id % N`` (row ``id // N`` in :attr:`rows`): the shard count,
            unless this object holds one shard of a larger index (a Ray actor's).
    """

    dim: int
    index: Any
    info: dict[str, Any] = field(default_factory=dict)
    parts: list[Any] = field(default_factory=list)
    rows: list[_Rows] = field(default_factory=list)
    stride: int = 0

    def __post_init__(self) -> None:
        if not self.parts:
            self.parts = [self.index]
        if self.stride <= 0:
            self.stride = len(self.parts)

    @classmethod
    def _of(
        cls, dim: int, parts: list[Any], info: dict[str, Any], rows: list[_Rows] | None = None
    ) -> VectorIndex:
        faiss = _faiss()
        index = parts[0]
        if len(parts) > 1:
            index = faiss.IndexShards(dim, False, False)  # not threaded, keep the ids given
            for part in parts:
                index.add_shard(part)
        return cls(dim, index, info, parts, rows or [])

    @property
    def shards(self) -> int:
        """Number of shards."""
        return len(self.parts)

    @classmethod
    def empty(cls, dim: int, shards: int = 1) -> VectorIndex:
        """An exact index with no vectors."""
        faiss = _faiss()
        parts = [faiss.IndexIDMap2(faiss.IndexFlatIP(dim)) for _ in range(shards)]
        return cls._of(dim, parts, {"type": "flat", "shards": shards})

    @classmethod
    def trained(
        cls, plan: dict[str, Any], dim: int, sample: NDArray[np.float32], *, seed: int = 0
    ) -> VectorIndex:
        """An empty index of a :func:`plan_index` plan, trained on ``sample`` (``s×dim``).

        The trained empty index is cloned once per shard, so every shard shares the same
        coarse quantizer, rotation and codebooks.
        """
        faiss = _faiss()
        shards = int(plan.get("shards", 1))
        if plan["type"] == "flat":
            return cls.empty(dim, shards)
        nlist = int(plan["nlist"])
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if plan["type"] == "ivf_flat":
            ivf: Any = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
            )
            top: Any = ivf
        else:
            m, out, kind = int(plan["pq_m"]), int(plan["transform_dim"]), plan["transform"]
            ivf = faiss.IndexIVFPQ(
                faiss.IndexFlatIP(out), out, nlist, m, 8, faiss.METRIC_INNER_PRODUCT
            )
            if kind == "none":
                top = ivf
            elif kind == "opq":
                top = faiss.IndexPreTransform(faiss.OPQMatrix(dim, m, out), ivf)
            else:
                top = faiss.IndexPreTransform(_svd_rotation(sample, out, seed), ivf)
        ivf.cp.niter = _KMEANS_ITERATIONS
        ivf.cp.seed = seed
        top.train(sample)
        parts = [top] + [faiss.clone_index(top) for _ in range(shards - 1)]
        rows = [_Rows.of(dim) for _ in parts] if plan.get("rerank") else None
        made = cls._of(dim, parts, dict(plan), rows)
        made.info["trained_on"] = len(sample)
        return made

    @classmethod
    def build(
        cls,
        vectors: NDArray[np.float32],
        ids: NDArray[np.int64],
        *,
        exact_limit: int = EXACT_LIMIT,
        pq_limit: int = PQ_LIMIT,
        shards: int = 1,
        seed: int = 0,
        rerank: bool = True,
    ) -> VectorIndex:
        """Index ``vectors`` (``n×dim``, L2-normalised) under ``ids``, choosing the type by size.

        Args:
            vectors: ``n×dim`` vectors.
            ids: ``n`` ids.
            exact_limit: Exact search up to this many vectors.
            pq_limit: IVF-Flat up to this many, IVF-PQ above.
            shards: Number of shards.
            seed: Seed of the training sample and the tuning queries.
            rerank: IVF-PQ keeps float16 vectors for re-ranking (:func:`plan_index`).
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n, dim = vectors.shape
        plan = plan_index(
            n, dim, shards=shards, exact_limit=exact_limit, pq_limit=pq_limit, rerank=rerank
        )
        rng = np.random.default_rng(seed)
        sample = np.zeros((0, dim), dtype=np.float32)
        if plan["type"] != "flat":
            size = min(n, _TRAIN_PER_LIST * int(plan["nlist"]))
            sample = vectors[np.sort(rng.choice(n, size=size, replace=False))]
        made = cls.trained(plan, dim, sample, seed=seed)
        made.add(vectors, ids)
        if plan["type"] != "flat":
            picks = rng.choice(n, size=min(_RECALL_QUERIES, n), replace=False)
            _, truth = exact_neighbours(vectors[picks], lambda: [(vectors, ids)], 11)
            made.tune(vectors[picks], truth, own=ids[picks])
        return made

    def tune(
        self,
        queries: NDArray[np.float32],
        truth: NDArray[np.int64],
        *,
        own: NDArray[np.int64] | None = None,
    ) -> None:
        """Raise nprobe (and the re-ranking factor) until recall@10 reaches the target.

        nprobe doubles from 1; at each, a re-ranking index tries the factors 1, 2, 4, 8
        (candidates re-scored per result). It stops at the target, or where two doublings gain
        less than 0.002 (the code size, not the lists visited, then limits recall), and keeps
        the first setting within 0.002 of the best recall seen. The measured 10-recall@10
        (overlap of top-10 sets), 1-recall@10 and, when re-ranking, the codes' own
        10-recall@10 (factor 1) go into :attr:`info`.

        Args:
            queries: ``q×dim`` held-out queries of the indexed kind.
            truth: ``q×k`` exact neighbour ids (k ≥ 10; k ≥ 11 when ``own`` is given).
            own: Each query's own id when the queries are indexed vectors: the trivial self
                match is left out on both sides, so the recall is that of a new image of the
                same kind.
        """
        own_ids = np.full(len(queries), -1, dtype=np.int64) if own is None else own
        want = _drop_self(truth, own_ids)
        k = 11 if own is not None else 10
        factors = _RERANK_FACTORS if self.rows else (1,)
        tried: list[tuple[float, float, int, int]] = []  # recall, 1-recall, nprobe, factor
        best: list[float] = []  # the best recall at each nprobe
        nlist = int(self.info.get("nlist", 1))
        for nprobe in _NPROBES:
            if nprobe > nlist:
                break
            self.set_nprobe(nprobe)
            for factor in factors:
                if self.rows:
                    self.info["rerank_factor"] = factor
                got = _drop_self(self.search(queries, k)[1], own_ids)
                tried.append((*recalls(got, want), nprobe, factor))
                if tried[-1][0] >= TARGET_RECALL:
                    break
            best.append(max(t[0] for t in tried if t[2] == nprobe))
            if tried[-1][0] >= TARGET_RECALL:
                break
            if len(best) >= 3 and best[-1] - best[-3] < _PLATEAU:
                break  # two doublings bought nothing: the codes, not the lists, limit recall
        if not tried:
            return
        top = max(t[0] for t in tried)
        reached = [t for t in tried if t[0] >= TARGET_RECALL]
        recall, first, nprobe, factor = (
            reached[0] if reached else next(t for t in tried if t[0] >= top - _PLATEAU)
        )
        self.set_nprobe(nprobe)
        if recall < TARGET_RECALL:
            logger.warning(
                "recall@10 %.3f stays below %.2f (nprobe %d)", recall, TARGET_RECALL, nprobe
            )
        self.info.update(
            {
                "nprobe": nprobe,
                "recall_at_10": round(recall, 4),
                "recall_target_met": recall >= TARGET_RECALL,
                "recall_1_at_10": round(first, 4),
                "recall_queries": len(queries),
            }
        )
        if self.rows:
            codes = next(t[0] for t in tried if t[2] == nprobe and t[3] == 1)
            self.info.update({"rerank_factor": factor, "recall_at_10_codes": round(codes, 4)})

    def set_nprobe(self, nprobe: int) -> None:
        """Set how many inverted lists every shard visits."""
        for part in self.parts:
            ivf = _ivf(part)
            if ivf is not None:
                ivf.nprobe = int(nprobe)
        self.info["nprobe"] = int(nprobe)

    def _sync(self) -> None:
        if len(self.parts) > 1:
            self.index.syncWithSubIndexes()

    def add(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Add vectors under ids (to shard ``id % shards``)."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise IndexIntegrityError(
                f"vectors of dimension {vectors.shape[-1]} do not fit this {self.dim}-d index",
                fix="embed with the index's own embedder",
            )
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        home = ids % len(self.parts)  # one shard of a larger index (stride > 1) holds all
        for i, part in enumerate(self.parts):
            mine = home == i
            if mine.any():
                part.add_with_ids(np.ascontiguousarray(vectors[mine]), ids[mine])
                if self.rows:
                    self.rows[i].put(ids[mine] // self.stride, vectors[mine])
        self._sync()

    def remove(self, ids: Iterable[int]) -> int:
        """Remove ids; returns how many were removed."""
        faiss = _faiss()
        wanted = np.asarray(list(ids), dtype=np.int64)
        if wanted.size == 0:
            return 0
        removed = sum(int(part.remove_ids(faiss.IDSelectorBatch(wanted))) for part in self.parts)
        self._sync()
        return removed

    def exact_contents(self) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
        """All ids (ascending) and vectors of an exact index; ``None`` for IVF."""
        faiss = _faiss()
        if not all(hasattr(part, "id_map") for part in self.parts):
            return None
        ids = np.concatenate(
            [faiss.vector_to_array(part.id_map).astype(np.int64) for part in self.parts]
        )
        vectors = np.concatenate(
            [
                np.asarray(part.index.reconstruct_n(0, part.ntotal), dtype=np.float32).reshape(
                    -1, self.dim
                )
                for part in self.parts
            ]
        )
        order = np.argsort(ids, kind="stable")
        return ids[order], vectors[order]

    def vector(self, id_: int) -> NDArray[np.float32]:
        """The stored vector of one id (IVF-PQ: its float16 copy when re-ranking, else its
        reconstruction from the code)."""
        faiss = _faiss()
        shard = int(id_) % len(self.parts)
        if self.rows:
            row = np.asarray([int(id_) // self.stride], dtype=np.int64)
            found: NDArray[np.float32] = self.rows[shard].get(row)[0]
            return found
        part = self.parts[shard]
        ivf = _ivf(part)
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return np.asarray(part.reconstruct(int(id_)), dtype=np.float32)

    def check_rows(self) -> None:
        """Every id has a row in its shard's re-ranking file (when re-ranking).

        Raises:
            IndexIntegrityError: One has none.
        """
        if self.rows:
            ids = self.ids()
            home = ids % len(self.parts)
            for i, rows in enumerate(self.rows):
                rows.check(ids[home == i] // self.stride)

    @property
    def ntotal(self) -> int:
        """Number of vectors."""
        if len(self.parts) == 1:  # each search asks: a generator over one part cost 1-2 µs
            return int(self.parts[0].ntotal)
        return sum(int(part.ntotal) for part in self.parts)

    def ids(self) -> NDArray[np.int64]:
        """All ids, ascending."""
        faiss = _faiss()
        found: list[NDArray[np.int64]] = []
        for part in self.parts:
            if hasattr(part, "id_map"):
                found.append(faiss.vector_to_array(part.id_map).astype(np.int64))
                continue
            invlists = _ivf(part).invlists
            found += [
                faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                for i in range(invlists.nlist)
                if invlists.list_size(i)
            ]
        if not found:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(found).astype(np.int64))

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
        kw: dict[str, Any] = {}
        if selector is not None:
            params: Any
            if "nprobe" in self.info:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=int(self.info["nprobe"]))
                if isinstance(self.parts[0], faiss.IndexPreTransform):
                    params = faiss.SearchParametersPreTransform(index_params=params)
            else:
                params = faiss.SearchParameters(sel=selector)
            kw["params"] = params
        if not self.rows:
            scores, ids = self.index.search(queries, k, **kw)
            return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)
        # each shard's candidates are re-scored with its own rows, then merged: what one Ray
        # actor per shard does too (so a shard never needs another's re-ranking file)
        pool = k * int(self.info.get("rerank_factor", 1))
        found = [
            self._rerank(queries, part.search(queries, pool, **kw)[1].astype(np.int64), rows, k)
            for part, rows in zip(self.parts, self.rows, strict=True)
        ]
        return merge_top_k([s for s, _ in found], [i for _, i in found], k)

    def _rerank(
        self, queries: NDArray[np.float32], candidates: NDArray[np.int64], rows: _Rows, k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The best ``k`` of one shard's candidates per query by inner product with their
        float16 vectors."""
        scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
        for start in range(0, len(queries), _RERANK_QUERIES):
            block = slice(start, start + _RERANK_QUERIES)
            ids = candidates[block]
            real = ids >= 0
            gathered = np.zeros((*ids.shape, self.dim), dtype=np.float32)
            gathered[real] = rows.get(ids[real] // self.stride)
            found = np.einsum("qcd,qd->qc", gathered, queries[block])
            scores[block] = np.where(real, found, -np.inf)
        return merge_top_k([scores], [candidates], k)

    def save(self, directory: Path, modality: str) -> list[str]:
        """Write each shard (and its re-ranking file) to ``directory`` (:func:`shard_names`);
        returns the file names."""
        faiss = _faiss()
        names = shard_names(modality, len(self.parts))
        for part, name in zip(self.parts, names, strict=True):
            ivf = _ivf(part)
            if ivf is not None and ivf.direct_map.type != faiss.DirectMap.NoMap:
                ivf.set_direct_map_type(faiss.DirectMap.NoMap)  # id lookups would be saved too
            faiss.write_index(part, str(directory / name))
        if not self.rows:
            return names
        extra = shard_names(modality, len(self.parts), ext="f16")
        for rows, name in zip(self.rows, extra, strict=True):
            rows.save(directory / name)
        return names + extra

    @classmethod
    def from_bytes(
        cls,
        shards: list[bytes],
        info: dict[str, Any],
        *,
        rows: list[NDArray[np.float16]] | None = None,
        stride: int = 0,
    ) -> VectorIndex:
        """Load an index from the bytes :meth:`save` wrote, one item per shard file in
        :func:`shard_names` order (check their checksums first).

        Args:
            shards: Each shard file's bytes.
            info: The index's manifest entry.
            rows: Each shard's re-ranking file (:func:`map_rows`) where ``info`` says
                ``rerank``.
            stride: The id spread (``id % stride``) when ``shards`` is one shard of a larger
                index; by default ``len(shards)``.
        """
        faiss = _faiss()
        parts = []
        for data in shards:
            try:
                parts.append(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)))
            except RuntimeError as e:
                raise IndexIntegrityError("a vector index file cannot be read") from e
        dims = {int(part.d) for part in parts}
        if len(dims) != 1:
            raise IndexIntegrityError("the shards of a vector index differ in dimension")
        dim = dims.pop()
        if info.get("rerank") and (rows is None or len(rows) != len(parts)):
            raise IndexIntegrityError("the index's re-ranking files are missing")
        kept = [_Rows.of(dim, r) for r in rows] if info.get("rerank") and rows else None
        made = cls._of(dim, parts, dict(info), kept)
        made.stride = stride or len(parts)
        if "nprobe" in info:
            made.set_nprobe(int(info["nprobe"]))
        return made


def _drop_self(found: NDArray[np.int64], own: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each row's results without the query's own id, cut to 10."""
    return np.stack([[i for i in row if i != me][:10] for row, me in zip(found, own, strict=True)])


def recalls(found: NDArray[np.int64], truth: NDArray[np.int64]) -> tuple[float, float]:
    """10-recall@10 (the fraction of the exact top-10 ids that the approximate top-10 holds)
    and 1-recall@10 (the fraction of queries whose exact nearest neighbour is in the top 10).

    Args:
        found: ``q×10`` approximate result ids.
        truth: ``q×10`` exact result ids (``-1`` where fewer exist).
    """
    pairs = list(zip(found.tolist(), truth.tolist(), strict=True))
    hits = sum(len(set(f) & set(t) - {-1}) for f, t in pairs)
    first = float(np.mean([t[0] in f for f, t in pairs]))
    return hits / max(1, int((truth >= 0).sum())), first

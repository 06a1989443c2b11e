"""Vector indexes past one machine: IVF-PQ in one shard vs several, at millions of vectors.

The vectors are a synthetic STAND-IN for real image embeddings (no embedding model runs here):
Gaussian clusters in a 64-d latent space with a decaying spectrum (latent dimension ``i`` has
scale ``i^-0.5``; 2,048 cluster centres, within-cluster spread 0.5 of the centres' scale),
projected to 512-d by a random orthonormal map, plus isotropic Gaussian noise (0.05 per
dimension, about 18% of the energy), L2-normalised. They are generated chunk by chunk from the
seed (100k vectors a chunk), so 5M vectors are never all in memory: training uses the first
``40·nlist`` vectors (the chunks are i.i.d., so that is a random sample), then each chunk is
generated once, added to every index under test and searched exactly for the ground truth
(exact top-10 by inner product, merged chunk by chunk). Queries are held-out vectors of the same
distribution (their own stream), and ``nprobe`` is tuned on another 200 held-out queries.

For each size and shard count it prints: build time (training + adding + tuning, not
generation), the index parameters (:func:`mammosearch.index.vectors.plan_index`), bytes per
vector in RAM (the saved ``.faiss`` shard files / n) and on disk (the float16 re-ranking files
/ n, memory-mapped by readers), queries per second at k=10 (one batch, ``--threads`` threads,
each shard searched and its candidates re-ranked, then merged) with the index loaded back from
its files as ``search`` and ``serve`` load it, 10-recall@10 (overlap of the top-10 sets, the
project's definition) and 1-recall@10 (exact nearest neighbour within the top 10), for the
re-ranked results and for the codes alone. Target: 10-recall@10 >= 0.95 at <= 80 bytes/vector.
The re-ranking files sit in the page cache here (the machine has the RAM to spare): QPS from a
cold disk is bounded by its random reads (``k·f`` rows of ``2·d`` bytes per query).

Usage::

    python bench/scale.py                  # 1M and 5M, 1 vs 4 shards (long; docs/SCALING.md)
    python bench/scale.py --sizes 1000000 --queries 1000
    python bench/scale.py --quick          # 100k, a smoke run of a few minutes
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mammosearch.index.vectors import (
    BYTES_PER_VECTOR,
    TARGET_RECALL,
    VectorIndex,
    exact_neighbours,
    map_rows,
    plan_index,
    recalls,
    shard_names,
)

DIM = 512
LATENT = 64
CLUSTERS = 2048
WITHIN = 0.5
NOISE = 0.05
CHUNK = 100_000
TRAIN_PER_LIST = 40
TUNE_QUERIES = 200


class Synthetic:
    """Clustered unit vectors, reproducible chunk by chunk from a seed (module docstring)."""

    def __init__(self, seed: int, noise: float = NOISE) -> None:
        rng = np.random.default_rng([seed, 0])
        self.seed, self.noise = seed, noise
        self.scale = ((1.0 + np.arange(LATENT)) ** -0.5).astype(np.float32)
        self.centres = (rng.normal(size=(CLUSTERS, LATENT)) * self.scale).astype(np.float32)
        self.basis = np.linalg.qr(rng.normal(size=(DIM, LATENT)))[0].T.astype(np.float32)

    def chunk(self, stream: int, number: int, size: int) -> np.ndarray:
        """``size×512`` vectors: chunk ``number`` of ``stream`` (1 = collection, 2/3 = queries)."""
        rng = np.random.default_rng([self.seed, stream, number])
        pick = rng.integers(0, CLUSTERS, size)
        z = self.centres[pick] + WITHIN * self.scale * rng.standard_normal(
            (size, LATENT), dtype=np.float32
        )
        x = z @ self.basis
        x += self.noise * rng.standard_normal((size, DIM), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def collection(self, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The ``n`` indexed vectors with ids ``0..n-1``, chunk by chunk."""
        for number, start in enumerate(range(0, n, CHUNK)):
            size = min(CHUNK, n - start)
            yield self.chunk(1, number, size), np.arange(start, start + size, dtype=np.int64)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(
    n: int, n_queries: int, shard_counts: list[int], args: argparse.Namespace, workdir: Path
) -> list[str]:
    import faiss

    seed = args.seed
    data = Synthetic(seed, args.noise)
    queries = data.chunk(2, 0, n_queries)
    tuning = data.chunk(3, 0, TUNE_QUERIES)
    both = np.concatenate([queries, tuning])
    plans = {
        s: plan_index(
            n,
            DIM,
            shards=s,
            exact_limit=0,
            pq_limit=0,
            transform=args.transform,
            rerank=not args.no_rerank,
        )  # fmt: skip
        for s in shard_counts
    }
    train_size = min(n, TRAIN_PER_LIST * max(int(p["nlist"]) for p in plans.values()))
    sample = np.concatenate([v for v, _ in _take(data.collection(n), train_size)])[:train_size]
    seconds: dict[int, float] = {}
    indexes: dict[int, VectorIndex] = {}
    for shards, plan in plans.items():
        t = time.perf_counter()
        indexes[shards] = VectorIndex.trained(plan, DIM, sample, seed=seed)
        seconds[shards] = time.perf_counter() - t
        print(f"  n={n:,} shards={shards}: trained in {seconds[shards]:.0f} s", flush=True)
    del sample
    adding = 0.0

    def one_pass() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal adding
        for vectors, ids in data.collection(n):
            for shards, index in indexes.items():
                t = time.perf_counter()
                index.add(vectors, ids)
                seconds[shards] += time.perf_counter() - t
                adding += time.perf_counter() - t
            yield vectors, ids

    t = time.perf_counter()
    _, truth_all = exact_neighbours(both, one_pass, 10)
    truth_seconds = time.perf_counter() - t - adding
    truth, tuning_truth = truth_all[:n_queries], truth_all[n_queries:]
    rows = []
    for shards in list(indexes):
        index = indexes.pop(shards)
        t = time.perf_counter()
        index.tune(tuning, tuning_truth)
        seconds[shards] += time.perf_counter() - t
        info = index.info
        folder = workdir / f"n{n}-s{shards}"
        folder.mkdir()
        index.save(folder, "image")
        del index  # searched below as readers load it: codes in RAM, re-ranking rows mapped
        ram = sum(p.stat().st_size for p in folder.glob("*.faiss")) / n
        disk = sum(p.stat().st_size for p in folder.glob("*.f16")) / n
        loaded, codes = _load(folder, info), _load(folder, info, rerank=False)
        qps, (r10, r1) = _timed(loaded, queries, truth)
        codes_qps, (c10, c1) = _timed(codes, queries, truth)
        rotation = {"svdr": "SVDR", "opq": "OPQ", "none": ""}[info["transform"]]
        kind = f"IVF{info['nlist']},PQ{info['pq_m']}"
        if rotation:
            kind = f"{rotation}{info['transform_dim']},{kind}"
        factor = info.get("rerank_factor", "-")
        rows.append(
            f"| {n:,} | {shards} | {kind} | {info['nprobe']} | {factor} | {seconds[shards]:.0f} "
            f"| {ram:.1f} | {disk:,.0f} | {qps:,.0f} | {r10:.3f} | {r1:.3f} | "
            f"{info['recall_at_10']:.3f} | {codes_qps:,.0f} | {c10:.3f} | {c1:.3f} |"
        )
        print(rows[-1], flush=True)
        sweep = []
        for nprobe in (1, 2, 4, 8, 16, 32, 64):
            codes.set_nprobe(nprobe)
            swept, (r, _) = _timed(codes, queries, truth)
            sweep.append(f"{nprobe}: {r:.3f} @ {swept:,.0f} q/s")
        print(f"  codes alone, n={n:,} shards={shards} (nprobe: 10-recall@10 @ QPS) "
              + "; ".join(sweep))  # fmt: skip
        if loaded.rows:
            sweep = []
            for f in (1, 2, 4, 8, 16):
                loaded.info["rerank_factor"] = f
                swept, (r, _) = _timed(loaded, queries, truth)
                sweep.append(f"{f}: {r:.3f} @ {swept:,.0f} q/s")
            print(f"  re-ranked, n={n:,} shards={shards}, nprobe {info['nprobe']} "
                  "(factor: 10-recall@10 @ QPS) " + "; ".join(sweep))  # fmt: skip
        del loaded, codes
        shutil.rmtree(folder)
    print(
        f"  exact ground truth for {len(both)} queries: {truth_seconds:.0f} s; "
        f"peak RSS {rss_gib():.1f} GiB; threads {faiss.omp_get_max_threads()}",
        flush=True,
    )
    return rows


def _load(folder: Path, info: dict[str, object], *, rerank: bool = True) -> VectorIndex:
    """The saved index as ``CaseIndex`` loads it (``rerank=False``: its codes alone)."""
    shards = int(str(info["shards"]))
    data = [(folder / name).read_bytes() for name in shard_names("image", shards)]
    if not (rerank and info.get("rerank")):
        return VectorIndex.from_bytes(data, {**info, "rerank": False})
    handles = [(folder / name).open("rb") for name in shard_names("image", shards, "f16")]
    rows = [map_rows(handle) for handle in handles]
    for handle in handles:
        handle.close()
    return VectorIndex.from_bytes(data, dict(info), rows=rows)


def _timed(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> tuple[float, tuple]:
    """Queries/second of one batch (after a warm-up) and its recalls."""
    index.search(queries[:10], 10)
    t = time.perf_counter()
    _, found = index.search(queries, 10)
    return len(queries) / (time.perf_counter() - t), recalls(found, truth)


def _take(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]], count: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    got = 0
    for vectors, ids in chunks:
        if got >= count:
            return
        got += len(ids)
        yield vectors, ids


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000", help="comma-separated")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--shards", default="1,4", help="shard counts to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transform", default="svdr", choices=["svdr", "opq", "none"])
    parser.add_argument("--noise", type=float, default=NOISE, help="isotropic noise per dim")
    parser.add_argument("--quick", action="store_true", help="100k vectors, 500 queries")
    parser.add_argument("--no-rerank", action="store_true", help="the codes alone")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries = 500 if args.quick else args.queries
    faiss.omp_set_num_threads(args.threads)
    print(
        "STAND-IN DATA: synthetic clustered 512-d unit vectors (Gaussian clusters in a 64-d "
        f"latent space + isotropic noise {args.noise}), not real embeddings. "
        f"Target: 10-recall@10 >= "
        f"{TARGET_RECALL} at <= {BYTES_PER_VECTOR} bytes/vector; {n_queries} held-out queries, "
        f"k=10, {args.threads} threads.",
        flush=True,
    )
    header = (
        "| n | shards | index | nprobe | re-rank factor | build s | bytes/vector RAM | "
        "bytes/vector disk | QPS | 10-recall@10 | 1-recall@10 | tuned recall | codes alone: "
        "QPS | 10-recall@10 | 1-recall@10 |\n" + "|---" * 15 + "|"
    )
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        for n in sizes:
            rows += run(n, n_queries, [int(s) for s in args.shards.split(",")], args, Path(tmp))
    print("\n" + header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Case-index query latency and throughput against raw FAISS, and approximate-search recall.

For each size N (seeded, clustered 512-d unit vectors standing in for real embeddings; uniformly
random vectors are the worst case for any approximate index), builds a case index with
``IndexWriter`` (exact ``IndexFlatIP`` up to 50k vectors, IVF above, nprobe tuned for recall@10
>= 0.95), then times 500 single queries at k=10 through ``CaseIndex.search`` (SQLite rows,
neighbours) and through raw ``faiss`` on the same index, one after the other for each query
(raw FAISS first for every other query: the second call finds the inverted lists the first one
read still in the CPU cache, so always timing raw FAISS second flattered it), and measures
recall@10 of the index against exact search. The overhead is the ratio of the mean times (and
of the medians, which a busy machine's stalls move less), and of the median CPU times of the
calling thread (``time.thread_time``: time the thread waited for a core while other jobs ran
is left out, so a busy machine moves it least). Before the timed queries, 50 others
warm the reader up as a server's first queries would; at the 32nd search without reports
(``mammosearch.index._hits.COLUMNS_AFTER``) a reader starts loading the shown columns of
every row into memory in a thread of its own, and the bench waits for that load to end (the
wait is printed as ``load wait``) before it times. The timed searches run with one
OpenMP thread: a single query gains little from a second one, and on a machine busy with other
work FAISS's parallel regions wait for a descheduled thread (a 10k exact search then took
90 ms instead of 1.4 ms). Then the same queries once more with one hit per case
(``SearchFilters(per_case=True)``; the indexed images come four to a case, as the views of an
exam), printed as its p50 and its ratio to the per-image search's. An index kept (``--keep``)
by a version before 5 December 2026 has one image a case, so its per-case figure means nothing.

Usage: ``python bench/search.py [--sizes 10000 100000 1000000] [--queries 500] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mammosearch.index import CaseIndex, EmbedderInfo, IndexWriter, SearchFilters, VoteParams

DIM = 512
WARM_UP = 50  # untimed queries first (the reader loads its column store at the 32nd)


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around ``centres`` (new images of the same kinds as the indexed ones)."""
    noise = 0.35 * rng.normal(size=(n, DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _build(directory: Path, info: EmbedderInfo, vectors: np.ndarray) -> float:
    """Build the case index of ``vectors``; returns the seconds it took."""
    start = time.perf_counter()
    with IndexWriter(directory, info) as writer:
        for i, vector in enumerate(vectors):
            writer.add({"source_key": str(i), "case_id": f"c{i // 4}", "patient_id": f"p{i // 4}",
                        "laterality": "L", "view": "CC", "label": "ABCD"[i % 4],
                        "image_path": f"{i}.png"}, vector, None, b"")  # fmt: skip
        writer.rebuild_vectors()
        writer.commit(labels=list("ABCD"), label_order_source="known", vote=VoteParams(),
                      vote_figures={}, settings={}, package_version="bench")  # fmt: skip
    return time.perf_counter() - start


def run(n: int, n_queries: int, keep: Path | None = None) -> None:
    import faiss

    rng = np.random.default_rng(n)
    centres = rng.normal(size=(max(8, n // 500), DIM)).astype(np.float32)
    vectors = clustered(n, centres, rng)
    info = EmbedderInfo(name="synthetic.v1", model_id="clustered", image_dim=DIM, text_dim=DIM,
                        cross_modal=False)  # fmt: skip
    root = keep / f"n{n}" if keep else Path(tempfile.mkdtemp(prefix="mammosearch-bench-"))
    try:
        built = (root / "idx" / "manifest.json").is_file()  # kept by an earlier run (--keep)
        build = "  kept  " if built else f"{_build(root / 'idx', info, vectors):6.1f} s"
        queries = clustered(n_queries, centres, np.random.default_rng(n + 1))
        with CaseIndex(root / "idx") as index:
            raw = index.vectors["image"].index
            kind = index.manifest.vectors["image"]
            ours: list[float] = []
            theirs: list[float] = []
            ours_cpu: list[float] = []  # the thread's CPU time
            theirs_cpu: list[float] = []
            calls = [
                (lambda q: index.search(image_vector=q, k=10, with_reports=False), ours, ours_cpu),
                (lambda q: raw.search(q[None, :], 10), theirs, theirs_cpu),
            ]
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # one query, one thread (see the docstring)
            try:
                for q in clustered(WARM_UP, centres, np.random.default_rng(n + 2)):
                    calls[0][0](q)
                    calls[1][0](q)
                # the column store loads in a thread of its own (code before it has none)
                wait = getattr(getattr(index, "_hits", None), "wait_columns", None)
                t = time.perf_counter()
                if wait is not None:
                    wait()
                waited = time.perf_counter() - t
                for j, q in enumerate(queries):
                    # every other query goes to raw FAISS first: the second call of a query
                    # finds the inverted lists the first one just read in the CPU cache
                    for call, times, cpu in calls[:: 1 if j % 2 else -1]:
                        c, t = time.thread_time(), time.perf_counter()
                        call(q)
                        times.append(time.perf_counter() - t)
                        cpu.append(time.thread_time() - c)
                per_case = SearchFilters(per_case=True)
                cases: list[float] = []
                for q in queries:
                    t = time.perf_counter()
                    index.search(image_vector=q, k=10, with_reports=False, filters=per_case)
                    cases.append(time.perf_counter() - t)
            finally:
                faiss.omp_set_num_threads(threads)
            exact = faiss.IndexFlatIP(DIM)
            exact.add(vectors)
            _, truth = exact.search(queries, 10)
            _, found = raw.search(queries, 10)
            recall = np.mean(
                [len(set(t + 1) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]
            )
        p50o, p95o = np.percentile(ours, [50, 95]) * 1e3
        p50r, p95r = np.percentile(theirs, [50, 95]) * 1e3
        print(f"N={n:>9,} {kind['type']:<9} build {build} | CaseIndex p50 {p50o:6.2f} ms "
              f"p95 {p95o:6.2f} ms {1 / np.mean(ours):7.0f} q/s | raw FAISS p50 {p50r:6.2f} ms "
              f"p95 {p95r:6.2f} ms {1 / np.mean(theirs):7.0f} q/s | overhead "
              f"{np.mean(ours) / np.mean(theirs):.2f}x (p50 {p50o / p50r:.2f}x; CPU p50 "
              f"{np.median(ours_cpu) / np.median(theirs_cpu):.2f}x) | "
              f"recall@10 {recall:.3f} | load wait {waited * 1e3:.0f} ms | per case p50 "
              f"{np.median(cases) * 1e3:.2f} ms ({np.median(cases) / np.median(ours):.2f}x)"
              )  # fmt: skip
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument(
        "--keep", type=Path, help="build the indexes in this folder and keep them; reuse those "
        "an earlier run kept there (to time two versions of the code on the same indexes)",
    )  # fmt: skip
    args = parser.parse_args()
    for n in args.sizes:
        run(n, args.queries, args.keep)


if __name__ == "__main__":
    main()

"""Batch jobs on Ray Data: ``normalize`` and ``index build`` with ``--engine ray``.

Presentation-free; the CLI parses flags and calls :func:`mammosearch.pipeline.normalize_reports`
or :func:`mammosearch.pipeline.build_index` with ``engine="ray"``, which come here. Ray and
pyarrow are an optional extra (``pip install 'mammosearch[distributed]'``), imported only when a
job runs on Ray: importing this package imports neither.

Both jobs cut their input into shards, run them through Ray Data ``map_batches`` stages with
callable classes (one report engine or embedder per actor; embedding on GPU actors when the
cluster has GPUs), write each finished shard as Parquet (temporary name, then rename) in a work
folder beside the output, and never compute a finished shard again: an interrupted job resumes.
A shard's file name carries a digest of its input and the job's options, so a changed input or
option never reuses a stale shard. The outputs are the local engine's, written by the same code.

:class:`RaySharded` searches a sharded index with one Ray actor per shard (fan-out and merge).
"""

from __future__ import annotations

from mammosearch.distributed._cluster import Cluster, ray_session, require_ray
from mammosearch.distributed._index import ShardRun, index_entries_on_ray
from mammosearch.distributed._normalize import normalize_on_ray
from mammosearch.distributed._options import ENGINES, RayOptions, check_engine
from mammosearch.distributed._search import RaySharded

__all__ = [
    "ENGINES",
    "Cluster",
    "RayOptions",
    "RaySharded",
    "ShardRun",
    "check_engine",
    "index_entries_on_ray",
    "normalize_on_ray",
    "ray_session",
    "require_ray",
]

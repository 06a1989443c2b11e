"""One Ray actor per shard answers as the in-process IndexShards does (local Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammosearch.index import CaseIndex
from tests.index.test_shards import assert_same_search, build_dir, clustered

ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_ray_actors_answer_as_index_shards(tmp_path: Path) -> None:
    from mammosearch.distributed import RaySharded

    vectors = clustered(1500, 5)
    build_dir(tmp_path / "idx", vectors, shards=3)  # IVF-PQ in 3 shards
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False)  # fmt: skip
    try:
        remote = RaySharded(tmp_path / "idx", "image", cpus_per_shard=0.5)
        with CaseIndex(tmp_path / "idx") as index:
            local = index.vectors["image"]
            assert remote.ntotal == local.ntotal == 1500
            assert_same_search(local, remote, clustered(20, 5, stream=1), ids_range=1500)
        remote.close()
    finally:
        ray.shutdown()

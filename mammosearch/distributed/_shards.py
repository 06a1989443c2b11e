"""The Parquet shards of a Ray batch job: named by content, written whole, reused on resume.

A job splits its input into shards of consecutive records. Each shard's file name carries a
digest of the job's options and the shard's own input (texts, or manifest rows and the size and
time of their files), so a finished shard is never computed again, and a changed input or option
never reuses a stale one. Files are written to a temporary name and renamed: an interrupted job
leaves whole shards only. The folder holds patient data (report text, thumbnails), so it is
made readable by its owner only; its shard files are removed when the job completes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mammosearch.errors import MammosearchError
from mammosearch.pipeline.parquet import pyarrow_modules, write_table_atomic

__all__ = ["ShardStore", "collect_shards", "job_key"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{6})-([0-9a-f]{24})\.parquet$")


def job_key(**options: Any) -> str:
    """A digest of what every shard of a job depends on besides its own input."""
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ShardStore:
    """The folder of one job's shards.

    Args:
        folder: The work folder (created).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for partial in folder.glob(".*.tmp"):  # a writer killed mid-file
            partial.unlink(missing_ok=True)
        self.digests: list[str] = []

    def path(self, index: int) -> Path:
        """The file of shard ``index`` (planned by :meth:`plan`)."""
        return self.folder / f"{index:06d}-{self.digests[index][:24]}.parquet"

    def plan(self, index: int, digest: str) -> bool:
        """Register shard ``index`` with the digest of its input; ``True`` when it is done."""
        if index != len(self.digests):
            raise ValueError("shards are planned in order")
        self.digests.append(digest)
        return self.path(index).is_file()

    def forget_stale(self) -> int:
        """Delete shard files that belong to no planned shard (another input or option)."""
        keep = {self.path(i).name for i in range(len(self.digests))}
        stale = [
            p for p in self.folder.glob("*.parquet") if _NAME.match(p.name) and p.name not in keep
        ]
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            logger.info("removed %d shards of another input or options", len(stale))
        return len(stale)

    def write(self, index: int, table: Any) -> None:
        """Write shard ``index`` (a pyarrow table) whole."""
        write_table_atomic(table, self.path(index))

    def read(self, index: int) -> Any:
        """Shard ``index`` as a pyarrow table."""
        _, pq = pyarrow_modules()
        return pq.read_table(self.path(index))

    def __len__(self) -> int:
        return len(self.digests)

    def close(self) -> None:
        """The job completed: remove its shard files, and the folder when nothing else is in it."""
        for path in self.folder.glob("*.parquet"):
            if _NAME.match(path.name):
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def _cluster_batches(batches: Any) -> Any:
    """The batches of a Ray Data stream; a failed task becomes a typed error that names its
    kind only (Ray's message carries the remote traceback and its values)."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as e:
            if not type(e).__module__.startswith("ray"):
                raise
            raise MammosearchError(
                f"a task on the Ray cluster failed ({type(e).__name__})",
                fix="see the Ray logs on the cluster, then run the same command again: "
                "finished shards are kept",
            ) from None
        yield batch


def collect_shards(
    batches: Any,
    expected: dict[int, int],
    store: ShardStore,
    to_table: Callable[[Any], Any],
    *,
    crash_after: int | None = None,
) -> int:
    """Group streamed result batches by shard and write each shard once all its rows are in.

    Args:
        batches: pandas DataFrames with ``shard`` and ``row`` columns, in any order.
        expected: Rows per shard to compute.
        store: Where shards go.
        to_table: A shard's rows (a DataFrame sorted by ``row``) → pyarrow table.
        crash_after: Test seam: raise ``RuntimeError`` after writing this many shards.

    Returns:
        Shards written.

    Raises:
        MammosearchError: The stream ended with shards incomplete.
    """
    import pandas as pd

    parts: dict[int, list[Any]] = {}
    got: dict[int, int] = dict.fromkeys(expected, 0)
    written = 0
    for batch in _cluster_batches(batches):
        if len(batch) == 0:
            continue
        for shard, part in batch.groupby("shard", sort=False):
            index = int(shard)
            parts.setdefault(index, []).append(part)
            got[index] += len(part)
            if got[index] < expected[index]:
                continue
            rows = pd.concat(parts.pop(index)).sort_values("row", kind="stable")
            store.write(index, to_table(rows.reset_index(drop=True)))
            written += 1
            if crash_after is not None and written >= crash_after:
                raise RuntimeError(f"injected crash after {written} shards")
    incomplete = [i for i, n in got.items() if n != expected[i]]
    if incomplete:
        raise MammosearchError(
            f"{len(incomplete)} shards came back incomplete from the cluster",
            fix="run the same command again: finished shards are kept",
        )
    return written

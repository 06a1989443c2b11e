"""Options of the Ray engine, and the engine names (no Ray import here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mammosearch.errors import ConfigError

__all__ = ["ENGINES", "RayOptions", "check_engine"]

ENGINES = ("local", "ray")
_ADDRESS = re.compile(
    r"^(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$"
)


def check_engine(engine: str) -> None:
    """Refuse an unknown ``--engine``.

    Raises:
        ConfigError: Not one of :data:`ENGINES`.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}", fix=f"use one of {', '.join(ENGINES)}")


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How a batch job runs on Ray.

    Attributes:
        address: ``None`` starts a private local cluster (or uses the one this process already
            joined), ``"auto"`` joins the cluster started on this machine with ``ray start``,
            ``HOST:PORT`` (or ``ray://HOST:PORT``) joins a remote one.
        work_dir: Where the job's Parquet shards go: in a folder of the job's own named after
            the output, ``OUT.parts`` (default: beside the output). Kept when a job is
            interrupted, so the next run resumes; its shard files are removed when the job
            completes (nothing else in ``work_dir`` is touched).
        shard_rows: Input records per shard (the unit of resume).
        batch_size: Records per ``map_batches`` call of the report stage (image stages use
            their own, smaller batches).
        embed_batch_size: Images per embedding call (GPU actors: larger is faster).
        crash_after_shards: Test seam: raise ``RuntimeError`` after this many shards were
            written by this run.
    """

    address: str | None = None
    work_dir: Path | None = None
    shard_rows: int = 1000
    batch_size: int = 256
    embed_batch_size: int = 32
    crash_after_shards: int | None = None

    def __post_init__(self) -> None:
        if self.address is not None and self.address != "auto":
            match = _ADDRESS.match(self.address)
            if match is None or not 0 < int(match["port"]) < 65536:
                raise ConfigError(
                    f"--ray-address {self.address!r} is not 'auto' or HOST:PORT",
                    fix="pass --ray-address auto (a cluster started here with 'ray start "
                    "--head') or the head node's HOST:PORT (default port 6379)",
                )
        if self.shard_rows < 1 or self.batch_size < 1 or self.embed_batch_size < 1:
            raise ConfigError("shard and batch sizes must be at least 1", fix="pass positive sizes")

    def parts_dir(self, output: Path) -> Path:
        """The work folder of a job writing ``output``."""
        name = output.name + ".parts"
        return self.work_dir / name if self.work_dir else output.with_name(name)

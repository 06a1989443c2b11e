"""Joining (or starting) the Ray cluster of a batch job, and what it offers."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammosearch.distributed._options import _ADDRESS, RayOptions
from mammosearch.errors import ConfigError
from mammosearch.pipeline.parquet import INSTALL_HINT

__all__ = ["Cluster", "ray_session", "require_ray"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, imported on first use.

    Raises:
        ConfigError: Ray (with its Data library) or pyarrow is not installed.
    """
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "--engine ray needs Ray Data and pyarrow, which are not installed", fix=INSTALL_HINT
        ) from e
    return ray


@dataclass(frozen=True, slots=True)
class Cluster:
    """The resources of the cluster a job runs on."""

    cpus: float
    gpus: float

    @property
    def small(self) -> bool:
        """Fewer than four CPUs: actors take half a CPU, so tasks still get one."""
        return self.cpus < 4


def _check_reachable(address: str) -> None:
    """Fail fast on a head node that does not answer (``ray.init`` would wait minutes)."""
    match = _ADDRESS.match(address)
    if match is None:  # pragma: no cover - RayOptions validated it
        return
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise ConfigError(
            f"no Ray cluster answers at --ray-address {address!r} ({e.strerror or 'timeout'})",
            fix="start one with 'ray start --head' and pass the address it prints, or 'auto'",
        ) from None


def _auth_failed(error: BaseException) -> bool:
    """Whether joining failed on Ray's token authentication (the cause is wrapped)."""
    seen: BaseException | None = error
    while seen is not None:
        if "AuthenticationError" in type(seen).__name__ or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Cluster]:
    """Join the job's cluster; a cluster this call started is shut down at the end.

    A process that already called ``ray.init`` keeps its cluster; an explicit ``HOST:PORT``
    that does not answer is refused all the same.

    Raises:
        ConfigError: Ray is missing, or no cluster answers at ``options.address``.
    """
    ray = require_ray()
    if options.address not in (None, "auto"):
        _check_reachable(str(options.address))
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if options.address is not None:
            # the workers run this driver's mammosearch, whatever version the nodes have
            package = Path(__file__).resolve().parents[1]
            kwargs = {"address": options.address, "log_to_driver": False,
                      "runtime_env": {"py_modules": [str(package)],
                                      "excludes": ["__pycache__", "*.pyc"]}}  # fmt: skip
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            if _auth_failed(e):
                raise ConfigError(
                    f"the Ray cluster at {options.address!r} refused this client's token",
                    fix="set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token), see the Ray docs on token authentication",
                ) from None
            raise ConfigError(
                f"cannot join the Ray cluster at {options.address or 'a new local cluster'!r} "
                f"({type(e).__name__})",
                fix="start one with 'ray start --head', or leave out --ray-address for a local one",
            ) from None
        started = True
    try:
        resources = ray.cluster_resources()
        cluster = Cluster(
            cpus=float(resources.get("CPU", 1.0)), gpus=float(resources.get("GPU", 0))
        )
        logger.info("ray cluster: %g CPUs, %g GPUs", cluster.cpus, cluster.gpus)
        yield cluster
    finally:
        if started:
            ray.shutdown()

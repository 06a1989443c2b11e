"""A real PostgreSQL server for the tests, from the distribution's package.

One server per test session: ``initdb`` into a temporary folder (trust authentication, no
fsync), started with ``pg_ctl`` on a free local port and stopped at the end. As root the server
runs as the ``postgres`` user the Debian package creates (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# root's PATH may lack the sbin folders where util-linux puts runuser
_RUNUSER = ("runuser", "/usr/sbin/runuser", "/sbin/runuser")


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away server; yields its URL (``postgres`` superuser, trust login).

    Its folder is made outside pytest's private temporary folders, which the ``postgres``
    user cannot enter, and removed afterwards.
    """
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        reason = "PostgreSQL is not installed (make test installs Debian's postgresql package)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="mammosearch-pg-"))
    if os.geteuid() == 0:
        runuser = next(filter(None, map(shutil.which, _RUNUSER)), None)
        if runuser is None:
            pytest.fail("runuser (util-linux) is needed to start PostgreSQL as its own user")
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)  # fmt: skip
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l",
                    str(folder / "server.log"), "-w", "start"], check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)

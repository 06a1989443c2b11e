"""Writers' turns and the repair of writes that did not finish.

Writers of one index directory take turns through a lock file beside it (``.DIR.lock``),
locked with :mod:`filelock` (``flock`` on POSIX, a Windows file lock on Windows: the same code
on every OS). The lock belongs to the operating system, which releases it when its process
ends, however it ends (an exception, Ctrl+C, SIGKILL): a lock file left behind is only a name,
and never blocks the next writer. A writer swaps its new directory in with renames; a swap it
could not finish is completed the next time the index is opened (:func:`_recover`), and the
PostgreSQL schema of a first build that was killed is dropped by the next writer
(:func:`_drop_abandoned_schema`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mammosearch.errors import MammosearchError
from mammosearch.index.layout import MANIFEST
from mammosearch.index.store import CaseStore

__all__: list[str] = []

logger = logging.getLogger(__name__)

_NEW_STORE = ".new-store.json"  # in a first build's work folder: the schema it made


def _recover(directory: Path, *, locked: bool = False) -> None:
    """Finish an interrupted swap: the old directory was moved aside, the new one not in.

    A missing directory may also be a writer's swap in progress: unless the caller holds the
    writers' lock (``locked``), it waits for that lock before it repairs anything.
    """
    if directory.exists():
        for stale in directory.parent.glob(f".{directory.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return
    pending = [*directory.parent.glob(f".{directory.name}.new-*"),
               *directory.parent.glob(f".{directory.name}.old-*")]  # fmt: skip
    if not any((p / MANIFEST).is_file() for p in pending):
        return  # nothing to repair (a first build still writing is not an index yet)
    if not locked:
        try:
            with _file_lock(directory):
                _recover(directory, locked=True)
        except OSError as e:  # a read-only deployment: nobody writes there
            if not isinstance(e, PermissionError) and e.errno != errno.EROFS:
                raise
            _recover(directory, locked=True)
        return
    for candidate in sorted(directory.parent.glob(f".{directory.name}.new-*")) + sorted(
        directory.parent.glob(f".{directory.name}.old-*")
    ):
        if (candidate / MANIFEST).is_file():
            os.replace(candidate, directory)
            logger.warning("recovered an index after an interrupted write")
            return


def _drop_abandoned_schema(work: Path) -> None:
    """Drop the PostgreSQL schema a killed first build made (it holds unpublished rows)."""
    path = work / _NEW_STORE
    if not path.is_file():
        return
    try:
        where = json.loads(path.read_text())
        store = CaseStore.postgresql(where["url"], where["schema"], create=True)
    except (MammosearchError, ValueError, KeyError):
        logger.warning("the case store schema of a killed build could not be dropped")
        return
    try:
        store.drop()
        logger.warning("dropped the case store schema of a build that was killed")
    finally:
        store.close()


@contextlib.contextmanager
def _file_lock(directory: Path) -> Iterator[None]:
    """Writers of one index directory take turns: an OS lock on ``.DIR.lock`` beside it.

    The lock is exclusive between processes and between threads (each call opens its own
    lock), and not reentrant: a holder that asks again waits for itself. The file stays when
    the lock is released (on POSIX, waiters must meet on the same file), which is harmless:
    only a held lock blocks, and the OS drops it with its process.
    """
    lock = FileLock(directory.parent / f".{directory.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("another writer holds this index; waiting for it to finish")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()

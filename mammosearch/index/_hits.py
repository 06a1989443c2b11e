"""The case rows of search hits, as the fields of a ``Neighbour``, with a cache of hot rows.

:class:`HitRows` reads the rows of all a search's hits in one store query and keeps what a
:class:`~mammosearch.records.Neighbour` needs of each (side and view parsed, thumbnail path,
report parsed) in a small least-recently-used cache keyed by row id, so that rows found again
cost neither a query nor parsing.

A cached row must never outlive its case. The rows a reader sees are fixed by the generation of
the manifest it opened, except that a later publication deletes removed rows for good (and a
SQLite store can then give a removed row's id to a new image). So the cache holds rows only
while the index directory still holds the manifest the reader opened: before each use it
compares the manifest file's identity (``os.stat``: device, inode, size, modification and change
times) with the one taken before the manifest was read. Once they differ the cache is emptied
and stays off, and a SQLite store's connections, which still read the replaced file, are
closed so that later reads see the published one (removed rows gone, new rows of a later
generation invisible), as a PostgreSQL reader does. A PostgreSQL store is never cached: it is
shared by readers on other machines, where a manifest swap on a shared file system may be seen
late, so its rows are read on every search.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mammosearch.index.store import CaseStore
from mammosearch.records import Laterality, NormalizedReport, View

__all__ = ["CACHE_ROWS", "Fields", "HitRows", "manifest_signature"]

CACHE_ROWS = 2048  # rows kept (with parsed reports, a few MB)

Signature = tuple[int, int, int, int, int]
# case_id, patient_id, label, laterality, view, thumbnail, report, image_path
Fields = tuple[
    str, str, str | None, Laterality | None, View | None, str, NormalizedReport | None, str | None
]


def manifest_signature(path: str) -> Signature | None:
    """The identity of the manifest file at ``path`` (``None`` when there is none)."""
    try:
        s = os.stat(path)
    except OSError:
        return None
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)


@lru_cache(maxsize=64)
def _side(value: str | None) -> Laterality | None:
    """A stored side; a value older indexes kept that is not one gives ``None``."""
    try:
        return Laterality.parse(value)
    except ValueError:
        return None


@lru_cache(maxsize=64)
def _view(value: str | None) -> View | None:
    """A stored view; a value older indexes kept that is not one gives ``None``."""
    try:
        return View.parse(value)
    except ValueError:
        return None


class HitRows:
    """Neighbour fields of case rows by id, read in one query, hot rows kept.

    Args:
        store: The reader's case store.
        root: The index directory as thumbnail paths start (``f"{root}/{thumbnail}"``).
        manifest: The path of the index's manifest file.
        signature: :func:`manifest_signature` taken before the manifest was read; ``None``
            turns the cache off.
        size: Rows the cache keeps.
    """

    def __init__(
        self,
        store: CaseStore,
        root: str,
        manifest: str,
        signature: Signature | None,
        size: int = CACHE_ROWS,
    ) -> None:
        self.store = store
        self.root = root
        self.manifest = manifest
        self.signature = signature
        self.size = size
        self.enabled = signature is not None and size > 0 and store.backend == "sqlite"
        # row id -> (fields, whether the report was read)
        self._cache: OrderedDict[int, tuple[Fields, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Sequence[int], with_reports: bool) -> dict[int, Fields]:
        """The fields of the rows the store has of ``ids``; with ``with_reports`` their
        reports are read (without, a cached row may still bring its report: drop it)."""
        out: dict[int, Fields] = {}
        missing = list(ids)
        if self.enabled and self._current():
            missing = []
            with self._lock:
                cache = self._cache
                for i in ids:
                    entry = cache.get(i)
                    if entry is None or (with_reports and not entry[1]):
                        missing.append(i)
                    else:
                        cache.move_to_end(i)
                        out[i] = entry[0]
        if not missing:
            return out
        found = {
            r[0]: self._fields(r, with_reports)
            for r in self.store.hit_rows(missing, with_reports=with_reports)
        }
        if self.enabled:
            with self._lock:
                if self.enabled:  # not turned off meanwhile by a newer manifest
                    for i, f in found.items():
                        self._cache[i] = (f, with_reports)
                        self._cache.move_to_end(i)
                    while len(self._cache) > self.size:
                        self._cache.popitem(last=False)
        out.update(found)
        return out

    def _current(self) -> bool:
        """Whether the directory still holds the reader's manifest; turns the cache off (and
        drops a SQLite store's connections to the replaced file) once it does not."""
        if manifest_signature(self.manifest) == self.signature:
            return True
        with self._lock:
            if self.enabled:
                self.enabled = False
                self._cache.clear()
                self.store.reopen()  # a SQLite store: read the published file
        return False

    def _fields(self, row: Sequence[Any], with_reports: bool) -> Fields:
        """Neighbour fields of a row of :data:`~mammosearch.index.store.HIT_COLUMNS`."""
        _, case_id, patient_id, label, side, view, thumbnail, image_path, report_json = row
        report = None
        if with_reports and report_json:
            report = NormalizedReport.from_dict(json.loads(report_json))
        return (case_id, patient_id, label, _side(side), _view(view), f"{self.root}/{thumbnail}",
                report, image_path or None)  # fmt: skip

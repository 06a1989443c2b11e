"""The case rows of search hits, as the fields of a ``Neighbour``, with a cache of hot rows.

:class:`HitRows` reads the rows of all a search's hits in one store query and makes of each
what a :class:`~mammosearch.records.Neighbour` needs (side and view parsed, thumbnail path,
report parsed). Searches with reports keep these in a small least-recently-used cache keyed by
row id: parsing a normalized report costs about 0.14 ms, more than the whole search without
reports, so a row found again costs neither a query nor parsing. Searches without reports
(assessment, evaluation, ``bench/search.py``) read the store every time: their rows are mostly
new ones, and the cache's upkeep (a ``stat`` of the manifest, the look-ups and insertions) cost
about 10% of a 100k-vector IVF search where it found nothing (measured).

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
        self._cache: OrderedDict[int, Fields] = OrderedDict()  # row id -> fields with report
        self._lock = threading.Lock()

    def get(self, ids: Sequence[int], with_reports: bool) -> dict[int, Fields]:
        """The fields of the rows the store has of ``ids``, with their reports when
        ``with_reports`` (only those searches use the cache)."""
        if not (with_reports and self.enabled and self._current()):
            return self._read(ids, with_reports)
        # each step on the cache is one operation of the C OrderedDict, atomic under the GIL;
        # the lock keeps an insertion from following the turning off of the cache
        cache = self._cache
        out: dict[int, Fields] = {}
        missing: list[int] = []
        for i in ids:
            fields = cache.get(i)
            if fields is None:
                missing.append(i)
                continue
            out[i] = fields
            # evicted by another thread meanwhile? (a try costs nothing here; suppress() would)
            try:  # noqa: SIM105
                cache.move_to_end(i)
            except KeyError:
                pass
        if missing:
            found = self._read(missing, with_reports)
            with self._lock:
                if self.enabled:  # not turned off meanwhile by a newer manifest
                    cache.update(found)
                    while len(cache) > self.size:
                        cache.popitem(last=False)
            out.update(found)
        return out

    def _read(self, ids: Sequence[int], with_reports: bool) -> dict[int, Fields]:
        return {
            r[0]: self._fields(r, with_reports)
            for r in self.store.hit_rows(ids, with_reports=with_reports)
        }

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

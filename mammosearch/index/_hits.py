"""The case rows of search hits, as the fields of a ``Neighbour``: a cache of hot rows with
their reports, and the shown columns of every row in memory.

:class:`HitRows` reads the rows of all a search's hits in one store query and makes of each
what a :class:`~mammosearch.records.Neighbour` needs (side and view parsed, thumbnail path,
report parsed). Searches with reports keep these in a small least-recently-used cache keyed by
row id: parsing a normalized report costs about 0.14 ms, more than the whole search without
reports, so a row found again costs neither a query nor parsing. Searches without reports
(assessment, evaluation, ``bench/search.py``) find mostly rows they have not seen, and ten of
them read from SQLite cost 25-45 µs (a B-tree seek each), a third of a 100k-vector IVF search.
So a SQLite reader that has answered :data:`COLUMNS_AFTER` of them loads what they show of
every row into memory (:class:`ShownColumns`, about 10 bytes a row plus the row's text values),
in a thread of its own while searches go on reading the store, and reads it from then on: a
reader answering a few searches (one exam's assessment) never pays the scan, which takes about
half as long as opening the index.

Neither may outlive a case. The rows a reader sees are fixed by the generation of the manifest
it opened, except that a later publication deletes removed rows for good (and a SQLite store
can then give a removed row's id to a new image). So the cache and the column store serve rows
only while the index directory still holds the manifest the reader opened: before each use
:class:`HitRows` compares the manifest file's identity (``os.stat``: device, inode, size,
modification and change times) with the one taken before the manifest was read. Once they
differ both are dropped and stay off (a column store whose load ends after that is dropped
too), and a SQLite store's connections, which still read the replaced file, are closed so that
later reads see the published one (removed rows gone, new rows of a later generation
invisible), as a PostgreSQL reader does. A PostgreSQL store is never kept in memory: it is
shared by readers on other machines, where a manifest swap on a shared file system may be seen
late, so its rows are read on every search.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mammosearch.errors import IndexIntegrityError
from mammosearch.index.store import SHOWN_SEPARATOR, CaseStore
from mammosearch.records import Laterality, NormalizedReport, View

__all__ = ["CACHE_ROWS", "COLUMNS_AFTER", "Fields", "HitRows", "ShownColumns", "manifest_signature"]

logger = logging.getLogger(__name__)

CACHE_ROWS = 2048  # rows kept (with parsed reports, a few MB)
# the search without reports that loads the column store: its one scan of the store takes
# about half as long as opening the index, which a reader answering a few searches (one
# exam's assessment) would not win back at some 20-40 µs a search
COLUMNS_AFTER = 32

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
            turns the cache and the column store off.
        size: Rows the cache keeps (0 turns both off).
        columns_after: The search without reports that loads the column store (1: the first).
    """

    def __init__(
        self,
        store: CaseStore,
        root: str,
        manifest: str,
        signature: Signature | None,
        size: int = CACHE_ROWS,
        columns_after: int = COLUMNS_AFTER,
    ) -> None:
        self.store = store
        self.root = root
        self.manifest = manifest
        self.signature = signature
        self.size = size
        self.enabled = signature is not None and size > 0 and store.backend == "sqlite"
        self._cache: OrderedDict[int, Fields] = OrderedDict()  # row id -> fields with report
        self._lock = threading.Lock()
        self.columns_after = columns_after
        self._plain = 0  # searches without reports so far (counted until the columns load)
        self._columns: ShownColumns | None = None
        self._loader: threading.Thread | None = None  # the thread that loads the columns

    def get(self, ids: Sequence[int], with_reports: bool) -> dict[int, Fields]:
        """The fields of the rows the store has of ``ids``, with their reports when
        ``with_reports`` (those searches use the cache, the others the column store)."""
        if not (self.enabled and self._current()):
            return self._read(ids, with_reports)
        if not with_reports:
            columns = self._columns
            if columns is not None:
                return columns.rows(ids)
            if self._loader is None:
                self._plain += 1
                if self._plain >= self.columns_after:
                    self._start_loading()
            # not loaded yet, or the store's values cannot be kept so (ShownColumns)
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

    def _start_loading(self) -> None:
        """Load the column store in a thread of its own; searches read the store meanwhile
        (the scan, seconds at a million rows, holds up none of them: SQLite steps without
        Python's lock)."""
        with self._lock:
            if self._loader is None and self.enabled:
                self._loader = threading.Thread(
                    target=self._load_columns, name="mammosearch-columns", daemon=True
                )
                self._loader.start()

    def _load_columns(self) -> None:
        try:
            columns = ShownColumns.load(self.store, self.root)
        except IndexIntegrityError:  # the store failed: searches go on reading it
            logger.warning("the search column store could not be loaded", exc_info=True)
            return
        with self._lock:
            # a newer manifest turned the cache off during the load: what was read is dropped
            if self.enabled and manifest_signature(self.manifest) == self.signature:
                self._columns = columns

    def wait_columns(self, timeout: float | None = None) -> bool:
        """Wait for the column store's load, when one began; whether searches without reports
        now read it."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self._columns is not None

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
                self._columns = None
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


class ShownColumns:
    """What a search without reports shows of every row, in memory, indexed by row id.

    A search's ten rows read from SQLite cost 25-45 µs (a B-tree seek each, over a file whose
    rows are spread), a third of a 100k-vector IVF search. Here a row costs two array look-ups
    and a split. The four text columns of a row (case, patient, thumbnail, source path) are
    one UTF-8 record in one ``bytes`` buffer, joined by :data:`SHOWN_SEPARATOR`; ``ends[i]``
    and ``ends[i + 1]`` bound row ``i``'s record (equal where there is no row ``i``, so ids
    removed or never given cost nothing but their 8 bytes). Label, side and view, of a few
    kinds in any index, are one code per row (``kinds``) into a list of their parsed triples.
    Per row id up to the highest: 10 bytes, plus the record (its four UTF-8 values and three
    separators): about 53 bytes a row in ``bench/search.py``'s index.

    Built by :meth:`load` from one scan of the store; a store whose values this layout cannot
    keep (a text value holding the separator, a NULL one, more than 65,536 kinds) gives
    ``None`` and its searches read the store as before.
    """

    __slots__ = ("_data", "_ends", "_kinds", "_last", "_root", "_triples")

    def __init__(
        self,
        data: bytes,
        ends: array[int],
        kinds: array[int],
        triples: list[tuple[str | None, Laterality | None, View | None]],
        root: str,
    ) -> None:
        self._data = data
        self._ends = ends
        self._kinds = kinds
        self._triples = triples
        self._last = len(kinds) - 1
        self._root = root

    @classmethod
    def load(cls, store: CaseStore, root: str) -> ShownColumns | None:
        """The shown columns of the rows ``store`` sees (one scan)."""
        rows = store.shown_columns()
        if not rows:
            return cls(b"", array("q", [0, 0]), array("H", [0]), [(None, None, None)], root)
        ids, labels, sides, views, records = zip(*rows, strict=True)
        if None in records:  # a NULL text value (the schema has none; older stores?)
            return None
        codes: dict[tuple[str | None, str | None, str | None], int] = {}
        kind = [codes.setdefault(t, len(codes)) for t in zip(labels, sides, views, strict=True)]
        if len(codes) > 1 << 16:
            return None
        data = b"".join(records)
        if data.count(SHOWN_SEPARATOR.encode()) != 3 * len(records):  # a value holds it
            return None
        at = np.asarray(ids, dtype=np.int64)
        sizes = np.zeros(int(at[-1]) + 2, dtype=np.int64)
        sizes[at + 1] = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
        kinds = np.zeros(int(at[-1]) + 1, dtype=np.uint16)
        kinds[at] = kind
        triples = [(label, _side(side), _view(view)) for label, side, view in codes]
        ends, by_id = array("q"), array("H")
        ends.frombytes(np.cumsum(sizes).tobytes())
        by_id.frombytes(kinds.tobytes())
        return cls(data, ends, by_id, triples, root)

    @property
    def nbytes(self) -> int:
        """The bytes its arrays and records take."""
        return len(self._data) + self._ends.itemsize * len(self._ends) + 2 * len(self._kinds)

    def rows(self, ids: Sequence[int]) -> dict[int, Fields]:
        """The neighbour fields, without reports, of the rows there are of ``ids`` (at the
        reader's generation; one call for a search's hits)."""
        data, ends, kinds, triples, last = (
            self._data, self._ends, self._kinds, self._triples, self._last
        )  # fmt: skip
        root = self._root + "/"
        out: dict[int, Fields] = {}
        for i in ids:
            if 0 <= i <= last and (start := ends[i]) != (end := ends[i + 1]):
                case_id, patient_id, thumbnail, path = (
                    data[start:end].decode().split(SHOWN_SEPARATOR)
                )
                label, side, view = triples[kinds[i]]
                out[i] = (case_id, patient_id, label, side, view, root + thumbnail, None,
                          path or None)  # fmt: skip
        return out

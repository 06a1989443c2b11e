"""The query views of the UI, prepared once per upload.

An uploaded view is read, breast-cropped and embedded once (:meth:`CaseService.prepare`), when
it is uploaded or at its first search, and its display thumbnail is written once, under an
opaque name, into the app's upload folder (where Gradio serves it from without copying it, and
deletes it with the uploads). Every search with that upload reuses both, whatever its options.
A view that is one of the index's own thumbnails (the example exam) is shown as that thumbnail,
a static file of the index.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["QueryViews", "ReadyView"]


@dataclass(frozen=True, slots=True)
class ReadyView:
    """A prepared query view and the file the page shows for it.

    Attributes:
        image: The prepared image (a :class:`~mammosearch.pipeline.PreparedImage`).
        shown: The path of its display thumbnail (in the upload folder, or the index's own).
        fresh: Whether it was prepared by this call (its timings count for this query).
    """

    image: Any
    shown: str
    fresh: bool


class QueryViews:
    """A bounded cache of prepared query views, keyed by upload path, size and time.

    Args:
        service: The opened :class:`~mammosearch.pipeline.CaseService`.
        folder: Where the display thumbnails of uploads are written (the app's upload folder).
        known: Side and view of index thumbnails given as views (their file names say neither).
        size: How many views are kept (the least recently used go first; each holds its
            prepared square, 1 MiB at 512 px).
    """

    def __init__(
        self,
        service: Any,
        folder: Path,
        *,
        known: dict[str, tuple[Any, Any]] | None = None,
        size: int = 8,
    ) -> None:
        self._service = service
        self._folder = folder
        self._thumbs = service.thumbnail_dir.resolve()
        self._known = dict(known or {})
        self._size = size
        self._cache: OrderedDict[tuple[str, int, int], ReadyView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> ReadyView:
        """The view of one uploaded file, prepared now or before.

        Raises:
            InvalidDicomError: The file is not a readable image.
        """
        try:
            stat = path.stat()
        except OSError:
            return ReadyView(self._service.prepare(path), "", True)  # raises its typed error
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and Path(hit.shown).is_file():
                self._cache.move_to_end(key)
                return replace(hit, fresh=False)
        image = self._service.prepare(path)
        resolved = path.resolve()
        if resolved.is_relative_to(self._thumbs):
            side, view = self._known.get(str(resolved), (image.laterality, image.view))
            ready = ReadyView(replace(image, laterality=side, view=view), str(resolved), True)
        else:
            name = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
            self._folder.mkdir(parents=True, exist_ok=True)
            shown = self._folder / f"{name}.png"
            shown.write_bytes(image.thumbnail())
            ready = ReadyView(image, str(shown), True)
        with self._lock:
            self._cache[key] = ready
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return ready

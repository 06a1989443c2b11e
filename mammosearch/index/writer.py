"""Build or change a case index directory atomically.

:class:`IndexWriter` changes an index by writing a complete new directory beside it and swapping
the two with renames, so a crash leaves either the old or the new index, never a mixture; an
interrupted swap is repaired the next time the index is opened. Writers take turns: a lock file
beside the directory (and, for a PostgreSQL store, the server's advisory lock) makes each one
load the latest published index before it adds its own rows.

Each publication is a generation (``manifest.generation``). A PostgreSQL store is shared, so a
writer adds its rows under the next generation, which readers of the published manifest do not
see (:mod:`mammosearch.index.store`); the manifest swap publishes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index._recovery import (
    _NEW_STORE,
    _drop_abandoned_schema,
    _file_lock,
    _recover,
)
from mammosearch.index.layout import MANIFEST, STORE, THUMBS
from mammosearch.index.manifest import (
    FORMAT_VERSION,
    EmbedderInfo,
    IndexManifest,
    _read_manifest,
    _sha256,
)
from mammosearch.index.reader import CaseIndex
from mammosearch.index.store import CaseStore, redact_url
from mammosearch.index.vectors import EXACT_LIMIT, PQ_LIMIT, VectorIndex
from mammosearch.index.vote import VoteParams

__all__ = ["IndexWriter"]

logger = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class _Pending:
    rows: list[dict[str, Any]] = field(default_factory=list)
    image_vectors: list[NDArray[np.float32]] = field(default_factory=list)
    text_vectors: list[NDArray[np.float32] | None] = field(default_factory=list)
    thumbnails: list[bytes] = field(default_factory=list)


class IndexWriter:
    """Build or change an index directory atomically.

    Everything is written to a new sibling directory; :meth:`commit` swaps it in. Use it as a
    context manager: an exception before ``commit`` leaves the old index untouched.

    Args:
        directory: The index directory (need not exist).
        embedder: The embedder's provenance; must match an existing index.
        store: For a new index, a PostgreSQL URL to keep its case store in (its own schema in
            that database); ``None`` keeps it in ``DIR/cases.sqlite``. An existing index keeps
            the store its manifest names.
        shards: Split the vector indexes into this many shards (default: as the existing
            index, else 1). An existing IVF index keeps its shard count.
        crash_after: Test seam: raise ``RuntimeError`` after this commit stage
            (``"vectors"``, ``"manifest"``, ``"moved_old"``).

    Raises:
        IndexIntegrityError: The index was built by another embedder.
        InputError: ``store`` is not a PostgreSQL URL or cannot be reached.
    """

    def __init__(
        self,
        directory: Path,
        embedder: EmbedderInfo,
        *,
        store: str | None = None,
        shards: int | None = None,
        crash_after: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.embedder = embedder
        self._crash_after = crash_after
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        try:
            self._stack.enter_context(_file_lock(self.directory))
            self._open(store, shards)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, store: str | None, shards: int | None) -> None:
        _recover(self.directory, locked=True)
        for abandoned in self.directory.parent.glob(f".{self.directory.name}.new-*"):
            _drop_abandoned_schema(abandoned)  # of writers that were killed
            shutil.rmtree(abandoned, ignore_errors=True)
        self.previous: IndexManifest | None = None
        self.vectors: dict[str, VectorIndex] = {}
        self.where: dict[str, str] = {"backend": "sqlite"}
        if store is not None:
            schema = f"mammosearch_{uuid.uuid4().hex[:12]}"
            self.where = {"backend": "postgresql", "url": redact_url(store), "schema": schema}
        if (self.directory / MANIFEST).is_file():
            self.previous = _read_manifest(self.directory)
            self.where = dict(self.previous.store)
            old = self.previous.embedder
            if (old.name, old.image_dim, old.text_dim) != (
                self.embedder.name, self.embedder.image_dim, self.embedder.text_dim,
            ):  # fmt: skip
                raise IndexIntegrityError(
                    f"the index was built by {old.name} ({old.image_dim}-d); this run uses "
                    f"{self.embedder.name} ({self.embedder.image_dim}-d)",
                    fix="use the same embedder or build a new index in another directory",
                )
        published = self.previous.generation if self.previous else 0
        self.generation = published + 1
        self.work = self.directory.parent / f".{self.directory.name}.new-{uuid.uuid4().hex[:8]}"
        self._published = False
        self.work.mkdir()
        self._stack.callback(self._discard_work)
        (self.work / THUMBS).mkdir()
        if self.where["backend"] == "postgresql":
            if self.previous is None:  # a killed first build's schema is found from here
                (self.work / _NEW_STORE).write_text(json.dumps(self.where))
            url = store if store is not None else self.where["url"]
            self.store = CaseStore.postgresql(
                url, self.where["schema"], generation=self.generation, create=True
            )
            self._stack.callback(self.store.close)
            self._stack.enter_context(self.store.writer_lock())
            self._stack.callback(self._roll_back_unpublished)  # runs before the lock goes
            if self.store.roll_back_after(published):
                logger.warning("rolled back rows of a writer that did not finish")
            self.store.purge(published)
        if self.previous is not None:
            with CaseIndex(self.directory, manifest=self.previous) as current:
                if self.where["backend"] == "sqlite":
                    current.store.backup_to(self.work / STORE)
                self.vectors = dict(current.vectors)
            for thumb in (self.directory / THUMBS).glob("*.png"):
                os.link(thumb, self.work / THUMBS / thumb.name)
        if self.where["backend"] == "sqlite":
            self.store = CaseStore.sqlite(self.work / STORE, generation=self.generation)
            self._stack.callback(self.store.close)
        self._pending = _Pending()
        self.shards = self._shard_count(shards)

    def _discard_work(self) -> None:
        if not self._published:
            shutil.rmtree(self.work, ignore_errors=True)

    def _roll_back_unpublished(self) -> None:
        """Undo the rows an unpublished write added to the shared store (and the schema a new
        index made)."""
        if not self._published:
            with contextlib.suppress(Exception):  # the next writer rolls back what is left
                if self.previous is None:
                    self.store.drop()
                else:
                    self.store.roll_back_after(self.generation - 1)

    def _shard_count(self, wanted: int | None) -> int:
        if wanted is not None and wanted < 1:
            raise InputError(f"--shards {wanted} is not a shard count", fix="use 1 or more")
        if wanted is None:
            return max((v.shards for v in self.vectors.values()), default=1)
        fixed = {v.shards for v in self.vectors.values() if v.info.get("type") != "flat"}
        if fixed and fixed != {wanted}:
            raise InputError(
                f"this index has {fixed.pop()} shards; an update cannot re-shard it",
                fix="leave out --shards, or rebuild the index into a new directory",
            )
        return wanted

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stack.close()

    def known_sources(self) -> set[str]:
        """Source keys already in the index (``--update`` skips them)."""
        return self.store.source_keys()

    def add(
        self,
        row: dict[str, Any],
        image_vector: NDArray[np.float32],
        text_vector: NDArray[np.float32] | None,
        thumbnail_png: bytes,
    ) -> None:
        """Queue one image for the index."""
        self._pending.rows.append(dict(row, thumbnail="", has_text_vector=text_vector is not None))
        self._pending.image_vectors.append(np.asarray(image_vector, dtype=np.float32))
        self._pending.text_vectors.append(text_vector)
        self._pending.thumbnails.append(thumbnail_png)

    def remove_case(self, case_id: str) -> int:
        """Remove one case's images; returns how many."""
        ids = self.store.ids_of_case(case_id)
        for modality in list(self.vectors):
            self.vectors[modality].remove(ids)
        for i in ids:
            with contextlib.suppress(FileNotFoundError):
                (self.work / THUMBS / f"{i}.png").unlink()
        self.store.remove(ids)
        return len(ids)

    def _flush(self) -> None:
        pending = self._pending
        if not pending.rows:
            return
        ids = self.store.add(pending.rows)
        for row_id, thumb in zip(ids, pending.thumbnails, strict=True):
            (self.work / THUMBS / f"{row_id}.png").write_bytes(thumb)
        self.store.set_thumbnails({i: f"{THUMBS}/{i}.png" for i in ids})
        id_array = np.asarray(ids, dtype=np.int64)
        image = np.stack(pending.image_vectors)
        self._add_vectors("image", image, id_array)
        with_text = [
            (i, v) for i, v in zip(ids, pending.text_vectors, strict=True) if v is not None
        ]
        if with_text:
            text = np.stack([v for _, v in with_text])
            self._add_vectors("text", text, np.asarray([i for i, _ in with_text], dtype=np.int64))
        self._pending = _Pending()

    def _add_vectors(
        self, modality: str, vectors: NDArray[np.float32], ids: NDArray[np.int64]
    ) -> None:
        if modality in self.vectors:
            self.vectors[modality].add(vectors, ids)
        else:
            self.vectors[modality] = VectorIndex.empty(vectors.shape[1], self.shards)
            self.vectors[modality].add(vectors, ids)

    def rebuild_vectors(self, exact_limit: int | None = None, pq_limit: int | None = None) -> None:
        """Choose each modality's index type for its size (exact, IVF-Flat or IVF-PQ, tuned).

        Exact indexes are rebuilt (in :attr:`shards` shards); an IVF index keeps its trained
        lists, and new vectors go to their shard.
        """
        self._flush()
        for modality, index in list(self.vectors.items()):
            contents = index.exact_contents()
            if contents is None or contents[0].size == 0:
                continue  # an IVF index keeps its trained lists as they are
            self.vectors[modality] = VectorIndex.build(
                contents[1],
                contents[0],
                shards=self.shards,
                exact_limit=EXACT_LIMIT if exact_limit is None else exact_limit,
                pq_limit=PQ_LIMIT if pq_limit is None else pq_limit,
            )

    def add_file(self, name: str, data: bytes) -> None:
        """Write an extra file (a build report) into the new index; it is checksummed too."""
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def _stage(self, name: str) -> None:
        if self._crash_after == name:
            raise RuntimeError(f"injected crash after {name}")

    def commit(
        self,
        *,
        labels: list[str],
        label_order_source: str,
        vote: VoteParams,
        vote_figures: dict[str, float],
        settings: dict[str, Any],
        package_version: str,
    ) -> IndexManifest:
        """Write vectors and manifest, then swap the new directory in."""
        self._flush()
        shared = self.where["backend"] == "postgresql"
        if not shared:
            self.store.purge(self.generation)  # this copy is private: removed rows go now
        counts = self.store.counts()
        if not shared:
            self.store.close()
        saved: set[str] = set()
        for modality, index in self.vectors.items():
            if index.ntotal or modality == "image":
                index.info["shards"] = index.shards
                index.save(self.work, modality)
                saved.add(modality)
        self._stage("vectors")
        files = {
            p.relative_to(self.work).as_posix(): _sha256(p)
            for p in sorted(self.work.rglob("*"))
            if p.is_file()
        }
        now = _now()
        manifest = IndexManifest(
            format_version=FORMAT_VERSION,
            package_version=package_version,
            created=self.previous.created if self.previous else now,
            updated=now,
            embedder=self.embedder,
            counts=counts,
            labels=labels,
            label_order_source=label_order_source,
            vote={
                "k": vote.k,
                "temperature": vote.temperature,
                "min_neighbours": vote.min_neighbours,
                "min_margin": vote.min_margin,
            },  # fmt: skip
            vote_figures=vote_figures,
            vectors={m: v.info for m, v in self.vectors.items() if m in saved},
            settings=settings,
            files=files,
            store=self.where,
            generation=self.generation,
        )
        tmp = self.work / f"{MANIFEST}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(manifest.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.work / MANIFEST)
        self._stage("manifest")
        old = None
        if self.directory.exists():
            old = self.directory.parent / f".{self.directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.directory, old)
        self._stage("moved_old")
        os.replace(self.work, self.directory)
        self._published = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if shared:  # published: rows this generation removed can go for good
            try:
                self.store.purge(self.generation)
            except IndexIntegrityError:  # the next writer purges them
                logger.warning("removed rows will be deleted by the next writer")
        return manifest

"""The case index directory: SQLite case store, FAISS indexes, thumbnails, checksummed manifest.

Layout (DESIGN.md)::

    DIR/manifest.json     format, embedder (name, model id, weights hash, dims, statistics),
                          counts, labels and their order, vote parameters, vector index
                          parameters, SHA-256 of every other file, creation time, version
    DIR/cases.sqlite      one row per image; the row id is its FAISS id (the SQLite store;
                          a PostgreSQL store lives in its server, named by the manifest)
    DIR/image.faiss       image vectors (with N shards: image.shard-00-of-NN.faiss, ...)
    DIR/text.faiss        report-text vectors (when any report was indexed), sharded likewise
    DIR/thumbs/<id>.png   a small display image of each preprocessed image

:class:`CaseIndex` opens a directory read-only, after checking the checksums of the store and the
vector files (before ``faiss.read_index``) and that the embedder matches. :class:`IndexWriter`
changes an index by writing a complete new directory beside it and swapping the two with
renames, so a crash leaves either the old or the new index, never a mixture; an interrupted
swap is repaired the next time the index is opened. Writers take turns: a lock file beside the
directory (and, for a PostgreSQL store, the server's advisory lock) makes each one load the
latest published index before it adds its own rows.

Each publication is a generation (``manifest.generation``). A PostgreSQL store is shared, so a
writer adds its rows under the next generation, which readers of the published manifest do not
see (:mod:`mammosearch.index.store`); the manifest swap publishes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from mammosearch.errors import IndexIntegrityError, InputError, MammosearchError
from mammosearch.index.store import CaseRow, CaseStore, redact_url
from mammosearch.index.vectors import (
    EXACT_LIMIT,
    PQ_LIMIT,
    VectorIndex,
    map_rows,
    shard_names,
)
from mammosearch.index.vote import VoteParams, vote_density
from mammosearch.records import DensityVote, Neighbour, NormalizedReport

__all__ = [
    "FORMAT_VERSION",
    "CaseIndex",
    "EmbedderInfo",
    "IndexManifest",
    "IndexWriter",
    "SearchFilters",
    "load_manifest",
    "map_checked",
    "read_checked",
    "verify_index",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "cases.sqlite"
THUMBS = "thumbs"
MODALITIES = ("image", "text")
_NEW_STORE = ".new-store.json"  # in a first build's work folder: the schema it made
_OPEN_ATTEMPTS = 5


class EmbedderInfo(BaseModel):
    """Which embedder made the vectors (queries must use the same)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    model_id: str
    weights_sha256: str | None = None
    image_dim: int
    text_dim: int
    cross_modal: bool
    stats: dict[str, list[float]] | None = None


class IndexManifest(BaseModel):
    """``manifest.json``: provenance and checksums of an index directory."""

    model_config = ConfigDict(extra="forbid")

    format_version: int
    package_version: str
    created: str
    updated: str
    embedder: EmbedderInfo
    counts: dict[str, int]
    labels: list[str]
    label_order_source: str
    vote: dict[str, float]
    vote_figures: dict[str, float]
    vectors: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    files: dict[str, str]
    store: dict[str, str] = {"backend": "sqlite"}
    generation: int = 0


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions on what a search returns.

    Attributes:
        laterality: Only images of this side (``L``/``R``).
        view: Only this view (``CC``, ``MLO``…).
        label: Only images with this density label.
        exclude_patient: Never return this patient's images (a patient's own priors).
        exclude_case: Never return this case's images.
    """

    laterality: str | None = None
    view: str | None = None
    label: str | None = None
    exclude_patient: str | None = None
    exclude_case: str | None = None


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return _digest(handle)


def _digest(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def read_checked(directory: Path, name: str, expected: str) -> bytes:
    """The bytes of an index file, after checking them against the manifest's checksum."""
    data = (directory / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        raise _mismatch(name)
    return data


def _mismatch(name: str) -> IndexIntegrityError:
    return IndexIntegrityError(
        f"index file {name} does not match its checksum",
        fix="run 'mammosearch index verify' and rebuild the index",
    )


def map_checked(directory: Path, name: str, expected: str) -> NDArray[np.float16]:
    """A re-ranking file memory-mapped, after checking the same open file's checksum (it is
    not read into memory: it can be many times the size of the index)."""
    with (directory / name).open("rb") as handle:
        if _digest(handle) != expected:
            raise _mismatch(name)
        return map_rows(handle)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
        except PermissionError:  # a read-only deployment: nobody writes there
            _recover(directory, locked=True)
        return
    for candidate in sorted(directory.parent.glob(f".{directory.name}.new-*")) + sorted(
        directory.parent.glob(f".{directory.name}.old-*")
    ):
        if (candidate / MANIFEST).is_file():
            os.replace(candidate, directory)
            logger.warning("recovered an index after an interrupted write")
            return


def _vector_files(manifest: IndexManifest, modality: str, ext: str = "faiss") -> list[str]:
    """The vector (or ``ext="f16"``: re-ranking) files of a modality listed in the manifest
    (one per shard), or ``[]``."""
    names = shard_names(modality, int(manifest.vectors.get(modality, {}).get("shards", 1)), ext)
    return names if all(name in manifest.files for name in names) else []


def _read_manifest(directory: Path) -> IndexManifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise InputError(
            f"no index at {directory.name!r} (manifest.json is missing)",
            fix="build one with 'mammosearch index build'",
        )
    try:
        manifest = IndexManifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise IndexIntegrityError(
            f"the index manifest is invalid ({e.error_count()} problems)",
            fix="rebuild the index",
        ) from e
    if manifest.format_version != FORMAT_VERSION:
        raise IndexIntegrityError(
            f"index format {manifest.format_version} is not {FORMAT_VERSION}",
            fix="rebuild the index with this version of mammosearch",
        )
    return manifest


def load_manifest(directory: Path) -> IndexManifest:
    """The manifest of an index directory (after repairing an interrupted swap).

    Raises:
        InputError: There is no index there.
        IndexIntegrityError: The manifest is invalid or of another format.
    """
    _recover(directory)
    return _read_manifest(directory)


def _open_store(directory: Path, manifest: IndexManifest) -> CaseStore:
    """The published case store of an index, seen at the manifest's generation."""
    where = manifest.store
    if where.get("backend") == "postgresql":
        return CaseStore.postgresql(where["url"], where["schema"], generation=manifest.generation)
    return CaseStore.sqlite(directory / STORE, read_only=True, generation=manifest.generation)


def verify_index(directory: Path, *, thumbnails: bool = True) -> IndexManifest:
    """Check every checksum and the id alignment of FAISS and SQLite.

    Raises:
        IndexIntegrityError: Any file differs from its recorded checksum, a file is missing or
            unlisted, or the vector ids and the store's rows disagree.
    """
    _recover(directory)
    manifest = _read_manifest(directory)
    listed = set(manifest.files)
    for name, expected in manifest.files.items():
        if not thumbnails and name.startswith(THUMBS + "/"):
            continue
        path = directory / name
        if not path.is_file():
            raise IndexIntegrityError(f"index file {name} is missing", fix="rebuild the index")
        if _sha256(path) != expected:
            raise IndexIntegrityError(
                f"index file {name} does not match its checksum",
                fix="restore the index from a backup or rebuild it",
            )
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    unlisted = present - listed - {MANIFEST}
    if thumbnails and unlisted:
        raise IndexIntegrityError(f"{len(unlisted)} files in the index are not in its manifest")
    index = CaseIndex(directory, manifest=manifest, checked=True)
    try:
        index.check_alignment()
    finally:
        index.close()
    return manifest


class CaseIndex:
    """A case index directory opened for queries.

    Args:
        directory: The index directory.
        expect_embedder: Refuse the index unless it was built by this embedder name.
        manifest: An already-read manifest (internal).
        checked: Skip the checksum check (internal: the caller just did it).

    Raises:
        InputError: There is no index there.
        IndexIntegrityError: A checksum, the format or the embedder does not match.
    """

    def __init__(
        self,
        directory: Path,
        *,
        expect_embedder: str | None = None,
        manifest: IndexManifest | None = None,
        checked: bool = False,
    ) -> None:
        self.directory = Path(directory)
        if manifest is not None:
            self._load(manifest, expect_embedder, checked)
            return
        for attempt in range(_OPEN_ATTEMPTS):
            manifest = load_manifest(self.directory)  # waits out a writer's swap in progress
            try:
                self._load(manifest, expect_embedder, checked)
                return
            except (IndexIntegrityError, OSError):
                # a writer may have swapped a new index in while this one was being read
                with contextlib.suppress(InputError, IndexIntegrityError):
                    if _read_manifest(self.directory) != manifest and attempt + 1 < _OPEN_ATTEMPTS:
                        continue
                raise

    def _load(self, manifest: IndexManifest, expect_embedder: str | None, checked: bool) -> None:
        self.manifest = manifest
        if expect_embedder and manifest.embedder.name != expect_embedder:
            raise IndexIntegrityError(
                f"the index was built by {manifest.embedder.name}, not {expect_embedder}",
                fix=f"query it with {manifest.embedder.name} or rebuild it",
            )
        if not checked and STORE in manifest.files:
            read_checked(self.directory, STORE, manifest.files[STORE])
        # each vector file is read once and checked and loaded from the same bytes, so a
        # writer's swap in between cannot pair this manifest with another index's vectors
        loaded: dict[str, VectorIndex] = {}
        for modality in MODALITIES:
            names = _vector_files(manifest, modality)
            if names:
                data = [read_checked(self.directory, n, manifest.files[n]) for n in names]
                rows = [
                    map_checked(self.directory, n, manifest.files[n])
                    for n in _vector_files(manifest, modality, "f16")
                ]
                loaded[modality] = VectorIndex.from_bytes(
                    data, manifest.vectors.get(modality, {}), rows=rows
                )
        self.vectors: dict[str, VectorIndex] = loaded
        self.store = _open_store(self.directory, manifest)
        self._root = str(self.directory)
        v = manifest.vote
        self.vote_params = VoteParams(
            k=int(v.get("k", 10)),
            temperature=float(v.get("temperature", 0.05)),
            min_neighbours=int(v.get("min_neighbours", 3)),
            min_margin=float(v.get("min_margin", 0.0)),
        )

    @property
    def labels(self) -> list[str]:
        """The label set in its order."""
        return list(self.manifest.labels)

    def close(self) -> None:
        """Close the case store."""
        self.store.close()

    def __enter__(self) -> CaseIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_alignment(self) -> None:
        """The FAISS ids equal the store's row ids, modality by modality.

        Raises:
            IndexIntegrityError: They differ.
        """
        self.store.check()
        expected = {"image": self.store.ids(), "text": self.store.ids(with_text=True)}
        for modality, index in self.vectors.items():
            index.check_rows()
            ids = index.ids().tolist()
            if ids != expected[modality]:
                raise IndexIntegrityError(
                    f"the {modality} vectors ({len(ids)}) and the case store "
                    f"({len(expected[modality])} rows) are not aligned",
                    fix="rebuild the index",
                )
        if "text" not in self.vectors and expected["text"]:
            raise IndexIntegrityError("the case store has text rows but no text vectors")

    def _excluded(self, filters: SearchFilters) -> tuple[list[int] | None, list[int]]:
        allow = None
        if filters.laterality or filters.view or filters.label:
            allow = self.store.ids_where(
                laterality=filters.laterality, view=filters.view, label=filters.label
            )
        exclude: list[int] = []
        if filters.exclude_patient is not None:
            exclude += self.store.ids_of_patient(filters.exclude_patient)
        if filters.exclude_case is not None:
            exclude += self.store.ids_of_case(filters.exclude_case)
        return allow, exclude

    def search(
        self,
        *,
        image_vector: NDArray[np.float32] | None = None,
        text_vector: NDArray[np.float32] | None = None,
        k: int = 10,
        filters: SearchFilters = SearchFilters(),
        weights: tuple[float, float] = (0.5, 0.5),
        fusion: str = "weighted",
        with_reports: bool = True,
    ) -> list[Neighbour]:
        """Nearest images to an image vector, a text vector, or both (fused).

        A text vector searches the text index; it also searches the image index when the
        embedder shares one space for both (text → image). With both, scores are fused:
        ``weighted`` (weighted sum of similarities) or ``rrf`` (reciprocal-rank fusion).

        Raises:
            InputError: No query vector was given, or a modality has no index.
        """
        if image_vector is None and text_vector is None:
            raise InputError("a search needs an image vector, a text vector or both")
        if fusion not in ("weighted", "rrf"):
            raise InputError(f"unknown fusion {fusion!r}", fix="use 'weighted' or 'rrf'")
        allow, exclude = self._excluded(filters)
        if allow is not None and not allow:
            return []
        depth = k if image_vector is None or text_vector is None else max(4 * k, 50)
        per_modality: dict[str, dict[int, float]] = {}
        queries: list[tuple[str, str, NDArray[np.float32]]] = []
        if image_vector is not None:
            queries.append(("image", "image", image_vector))
        if text_vector is not None:
            if "text" in self.vectors:
                queries.append(("text", "text", text_vector))
            if self.manifest.embedder.cross_modal and image_vector is None:
                queries.append(("image", "text", text_vector))  # text → image
        if not queries:
            raise InputError("this index has no text vectors", fix="query it with an image")
        for modality, label, vector in queries:
            scores, ids = self.vectors[modality].search(
                vector, depth, allow=allow, exclude=exclude or None
            )
            found = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
            key = label if modality == label else "text_to_image"
            per_modality[key] = found
        fused = _fuse(per_modality, weights, fusion)
        best = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        rows = self.store.get([i for i, _ in best], with_reports=with_reports)
        return [
            self._neighbour(rows[i], score, per_modality, with_reports) for i, score in best
            if i in rows
        ]  # fmt: skip

    def _neighbour(
        self,
        row: CaseRow,
        score: float,
        per_modality: dict[str, dict[int, float]],
        with_report: bool,
    ) -> Neighbour:
        report = None
        if with_report and row.report_json:
            report = NormalizedReport.from_dict(json.loads(row.report_json))
        return Neighbour(
            row_id=row.id,
            case_id=row.case_id,
            patient_id=row.patient_id,
            score=score,
            scores={m: found[row.id] for m, found in per_modality.items() if row.id in found},
            label=row.label,
            laterality=row.laterality,
            view=row.view,
            thumbnail=f"{self._root}/{row.thumbnail}",
            report=report,
            image_path=row.image_path or None,
        )

    def vote(self, neighbours: Sequence[Neighbour]) -> DensityVote:
        """The density vote of neighbours, with this index's fitted parameters."""
        return vote_density(neighbours, self.labels, self.vote_params)


def _fuse(
    per_modality: dict[str, dict[int, float]], weights: tuple[float, float], fusion: str
) -> dict[int, float]:
    if len(per_modality) == 1:
        return dict(next(iter(per_modality.values())))
    fused: dict[int, float] = {}
    keys = list(per_modality)
    w = dict(zip(keys, weights if len(keys) == 2 else (1.0,) * len(keys), strict=False))
    for key, found in per_modality.items():
        if fusion == "rrf":
            ranked = sorted(found.items(), key=lambda kv: -kv[1])
            for rank, (i, _) in enumerate(ranked):
                fused[i] = fused.get(i, 0.0) + w[key] / (60 + rank + 1)
        else:
            floor = min(found.values()) if found else 0.0
            for i in set(fused) | set(found):
                fused[i] = fused.get(i, 0.0)
            for i in fused:
                fused[i] += w[key] * found.get(i, floor)
    return fused


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
    """Writers of one index directory take turns (``flock`` on a file beside it)."""
    path = directory.parent / f".{directory.name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

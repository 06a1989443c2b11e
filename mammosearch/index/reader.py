"""A case index directory opened for queries, and its full check.

:class:`CaseIndex` opens a directory read-only, after checking the checksums of the store and the
vector files (before ``faiss.read_index``) and that the embedder matches. A swap that a writer
did not finish is repaired first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index._hits import Fields, HitRows, Signature, manifest_signature
from mammosearch.index._recovery import _recover
from mammosearch.index.layout import MANIFEST, MODALITIES, STORE, THUMBS
from mammosearch.index.manifest import (
    IndexManifest,
    _read_manifest,
    _sha256,
    _vector_files,
    load_manifest,
    map_checked,
    read_checked,
)
from mammosearch.index.store import CaseStore
from mammosearch.index.vectors import VectorIndex
from mammosearch.index.vote import VoteParams, vote_density
from mammosearch.records import DensityVote, Laterality, Neighbour, View, new_neighbour

__all__ = ["FUSIONS", "CaseIndex", "SearchFilters", "verify_index"]

logger = logging.getLogger(__name__)

_OPEN_ATTEMPTS = 5
FUSIONS = ("weighted", "rrf")  # how image and text scores are fused


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrictions on what a search returns.

    Attributes:
        laterality: Only images of this side (left or right).
        view: Only this view.
        label: Only images with this density label.
        exclude_patient: Never return this patient's images (a patient's own priors).
        exclude_case: Never return this case's images.
        per_case: At most one image per case (its best), so ``k`` hits are ``k`` cases.
    """

    laterality: Laterality | None = None
    view: View | None = None
    label: str | None = None
    exclude_patient: str | None = None
    exclude_case: str | None = None
    per_case: bool = False


_NO_FILTERS = SearchFilters()


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
            # taken first: a swap after it turns the row cache off (_hits)
            signature = manifest_signature(str(self.directory / MANIFEST))
            manifest = load_manifest(self.directory)  # waits out a writer's swap in progress
            try:
                self._load(manifest, expect_embedder, checked, signature)
                return
            except (IndexIntegrityError, OSError):
                # a writer may have swapped a new index in while this one was being read
                with contextlib.suppress(InputError, IndexIntegrityError):
                    if _read_manifest(self.directory) != manifest and attempt + 1 < _OPEN_ATTEMPTS:
                        continue
                raise

    def _load(
        self,
        manifest: IndexManifest,
        expect_embedder: str | None,
        checked: bool,
        signature: Signature | None = None,
    ) -> None:
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
        self._hits = HitRows(
            self.store, str(self.directory), str(self.directory / MANIFEST), signature
        )
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
        if filters is _NO_FILTERS:  # the default: nothing to look at
            return None, []
        allow = None
        if filters.laterality or filters.view or filters.label:
            side = filters.laterality
            allow = self.store.ids_where(laterality=side.code if side else None,
                                         view=filters.view, label=filters.label)  # fmt: skip
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
        filters: SearchFilters = _NO_FILTERS,
        weights: tuple[float, float] = (0.5, 0.5),
        fusion: str = "weighted",
        with_reports: bool = True,
    ) -> list[Neighbour]:
        """Nearest images to an image vector, a text vector, or both (fused).

        A text vector searches the text index; it also searches the image index when the
        embedder shares one space for both (text → image). With both, scores are fused:
        ``weighted`` (weighted sum of similarities) or ``rrf`` (reciprocal-rank fusion).

        Raises:
            InputError: No query vector was given, a modality has no index, or the label
                filter is not one of the index's labels.
        """
        if image_vector is None and text_vector is None:
            raise InputError("a search needs an image vector, a text vector or both")
        if fusion not in FUSIONS:
            raise InputError(f"unknown fusion {fusion!r}", fix=f"use one of {', '.join(FUSIONS)}")
        if filters.label is not None and filters.label not in self.labels:
            raise InputError(
                f"label filter {filters.label!r} is not one of this index's labels",
                fix=f"use one of {', '.join(self.labels) or '(none: the index is unlabelled)'}",
            )
        allow, exclude = self._excluded(filters)
        if allow is not None and not allow:
            return []
        depth = k if image_vector is None or text_vector is None else max(4 * k, 50)
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
        candidates: dict[int, Fields] | None = None
        if not filters.per_case:
            ranked, per_modality = self._ranked(queries, depth, allow, exclude, weights, fusion)
            best = ranked[:k]
        else:  # deeper until k cases are found or every image has been ranked
            searchable = max(self.vectors[modality].ntotal for modality, _, _ in queries)
            depth *= _IMAGES_PER_CASE
            while True:
                ranked, per_modality = self._ranked(queries, depth, allow, exclude, weights,
                                                    fusion)  # fmt: skip
                # the candidates' cases, without their reports (only the chosen ones' are read)
                candidates = self._hits.get([i for i, _ in ranked], False)
                best = _best_per_case(ranked, candidates, k)
                if len(best) == k or depth >= searchable:
                    break
                depth *= 4
        if candidates is not None and not with_reports:
            rows = candidates
        else:
            rows = self._hits.get([i for i, _ in best], with_reports)
        out = []
        for i, score in best:
            f = rows.get(i)
            if f is None:  # a row removed since this reader opened the index is skipped
                continue
            by_modality = {m: hits[i] for m, hits in per_modality.items() if i in hits}
            out.append(new_neighbour(i, f[0], f[1], score, by_modality, f[2], f[3], f[4], f[5],
                                     f[6], f[7]))  # fmt: skip
        return out

    def vote(self, neighbours: Sequence[Neighbour]) -> DensityVote:
        """The density vote of neighbours, with this index's fitted parameters."""
        return vote_density(neighbours, self.labels, self.vote_params)

    def _ranked(
        self,
        queries: list[tuple[str, str, NDArray[np.float32]]],
        depth: int,
        allow: list[int] | None,
        exclude: list[int],
        weights: tuple[float, float],
        fusion: str,
    ) -> tuple[list[tuple[int, float]], dict[str, dict[int, float]]]:
        """Each query's ``depth`` nearest ids, fused when there are several: every candidate
        with its score, best first, and each modality's scores of its candidates."""
        per_modality: dict[str, dict[int, float]] = {}
        for modality, label, vector in queries:
            scores, ids = self.vectors[modality].search(
                vector, depth, allow=allow, exclude=exclude or None
            )
            key = label if modality == label else "text_to_image"
            found = [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
                     if i >= 0]  # fmt: skip
            if len(queries) == 1:  # one modality: FAISS's order (best first) is the result's
                return found, {key: dict(found)}
            per_modality[key] = dict(found)
        fused = _fuse(per_modality, weights, fusion)
        return sorted(fused.items(), key=_score, reverse=True), per_modality


_score = itemgetter(1)
_IMAGES_PER_CASE = 8  # a per-case search's first depth, in images per case wanted


def _best_per_case(
    ranked: list[tuple[int, float]], rows: dict[int, Fields], k: int
) -> list[tuple[int, float]]:
    """The first ``k`` ranked ids of distinct cases (each case's best image)."""
    best: list[tuple[int, float]] = []
    seen: set[str] = set()
    for i, score in ranked:
        f = rows.get(i)
        if f is None or f[0] in seen:
            continue
        seen.add(f[0])
        best.append((i, score))
        if len(best) == k:
            break
    return best


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

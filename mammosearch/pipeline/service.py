"""A case index opened once and queried many times: what the UI and other services use.

:class:`CaseService` holds the index, its embedder, the report normalizer and the density model,
and answers a query of one exam (one or several views and/or a report) with the prepared views,
each view's density assessment, the exam's density, the normalized report and the similar
cases, plus the time each stage took. It adds no logic of its own beyond combining the pipeline
stages (:func:`~.assess.assess_prepared`, :func:`~.assess.exam_density`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch import __version__
from mammosearch.config import Settings, load_settings
from mammosearch.embeddings import FittedEmbedder
from mammosearch.errors import InputError
from mammosearch.index import THUMBS, SearchFilters
from mammosearch.nlp import Normalizer
from mammosearch.nlp.scrub import scrub
from mammosearch.pipeline.assess import (
    assess_prepared,
    exam_density,
    open_density_model,
    stated_density,
)
from mammosearch.pipeline.assessment import Assessment, DensityDecision
from mammosearch.pipeline.search import open_index
from mammosearch.pipeline.stages import (
    embed_inputs,
    embed_texts,
    image_inputs,
    prepare_query,
    thumbnail,
)
from mammosearch.records import Laterality, Neighbour, NormalizedReport, View

__all__ = ["CaseService", "PreparedImage", "QueryResult", "QueryView"]


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A query image read, breast-cropped and embedded once (:meth:`CaseService.prepare`): what
    every search with it reuses, whatever its report, filters or ``k``.

    Attributes:
        prepared: The breast-cropped square as the models see it (float32 in [0, 1]).
        laterality: Its side, from its tags or file name, or ``None``.
        view: Its view, or ``None``.
        vector: Its image embedding.
        features: The fitted embedder's input (what the vote's feature path reads), else ``None``.
        timings: Seconds it took: ``preprocess`` and ``embed``.
    """

    prepared: NDArray[np.float32]
    laterality: Laterality | None
    view: View | None
    vector: NDArray[np.float32]
    features: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    def thumbnail(self) -> bytes:
        """Its display thumbnail (PNG bytes), made like the index's own."""
        return thumbnail(self.prepared)  # the stage (a method's body does not see its class)


@dataclass(slots=True)
class QueryView:
    """One uploaded view: its prepared pixels and its own density assessment."""

    prepared: NDArray[np.float32]
    laterality: Laterality | None
    view: View | None
    assessment: Assessment


@dataclass(slots=True)
class QueryResult:
    """The answer to one exam query.

    Attributes:
        views: The uploaded views, prepared and assessed.
        report: The normalized report, when one was given (of ``report_text``).
        density: The exam's density, or ``None`` when neither an image nor a stated density
            gives one.
        neighbours: The most similar indexed images, best first.
        warnings: What the reader should know (from the assessments).
        timings: Seconds per stage: ``preprocess``, ``embed``, ``assess``, ``search``.
        report_text: The report as it was read: scrubbed of PHI (its evidence spans index it).
    """

    views: list[QueryView]
    report: NormalizedReport | None
    density: DensityDecision | None
    neighbours: list[Neighbour]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report_text: str | None = None


class CaseService:
    """An opened case index for repeated queries (thread-safe: one query at a time).

    Args:
        directory: The index directory.
        model: Override of the index's model source.
        density_model: A ``train-density`` directory (else the setting, else the index's own).
        settings: Settings (report size limit, density model).

    Raises:
        InputError: No index there.
        IndexIntegrityError: The index fails its checks.
        ModelLoadError: Its model cannot be loaded.
    """

    def __init__(
        self,
        directory: Path,
        *,
        model: str | None = None,
        density_model: Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.directory = Path(directory)
        self.index, self.embedder = open_index(self.directory, model)
        try:
            self.density_model = open_density_model(density_model, self.settings, self.directory)
        except Exception:
            self.index.close()
            raise
        self.normalizer = Normalizer(max_chars=self.settings.max_report_chars)
        self._lock = threading.Lock()

    def __enter__(self) -> CaseService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the index."""
        self.index.close()

    @property
    def thumbnail_dir(self) -> Path:
        """The folder of the index's thumbnails (what a UI may serve, and nothing else)."""
        return self.directory / THUMBS

    def about(self) -> dict[str, Any]:
        """What is in use, so every result can be traced: embedder, model, index, labels."""
        manifest = self.index.manifest
        model = self.density_model
        return {
            "version": __version__,
            "index": self.directory.name,
            "images": int(manifest.counts.get("images", 0)),
            "reports": int(manifest.counts.get("text_vectors", 0)),
            "embedder": manifest.embedder.name,
            "model_id": manifest.embedder.model_id,
            "cross_modal": manifest.embedder.cross_modal,
            "labels": list(self.index.labels),
            "density_model": f"{model.config.get('arch')} at {model.image_size} px"
            if model is not None
            else None,
            "note": manifest.settings.get("note"),
        }

    def prepare(self, image: Path | bytes) -> PreparedImage:
        """Read, breast-crop and embed one query image, to search with it once or many times.

        Raises:
            InvalidDicomError: The image cannot be read.
        """
        with self._lock:
            return self._prepare(image)

    def _prepare(self, image: Path | bytes) -> PreparedImage:
        start = time.perf_counter()
        decoded, prepared = prepare_query(image, self.embedder.prepared_size)
        middle = time.perf_counter()
        inputs = image_inputs(self.embedder, [prepared])
        vector = embed_inputs(self.embedder, inputs)[0]
        end = time.perf_counter()
        fitted = isinstance(self.embedder, FittedEmbedder)
        return PreparedImage(
            prepared, decoded.laterality, decoded.view, vector, inputs if fitted else None,
            {"preprocess": middle - start, "embed": end - middle},
        )  # fmt: skip

    def query(
        self,
        *,
        images: Sequence[Path | bytes | PreparedImage] = (),
        text: str | None = None,
        k: int = 10,
        filters: SearchFilters | None = None,
        weights: tuple[float, float] = (0.5, 0.5),
        fusion: str = "weighted",
    ) -> QueryResult:
        """Assess and search for one exam: its views (any number) and/or its report.

        Each view is assessed on its own (report, vote or image models); the exam's density is
        the report's when it states one, else the denser breast over the views
        (:func:`~.assess.exam_density`). The neighbours are the best-scoring indexed
        images over all views, each fused with the report when there is one (with
        ``filters.per_case``, each case's best image only). A view given as a
        :class:`PreparedImage` is not read or embedded again (``timings`` then count only the
        work done here).

        Raises:
            InputError: Neither an image nor a report text.
            InvalidDicomError: A view cannot be read.
        """
        if not images and not (text and text.strip()):
            raise InputError("give an image, a report text, or both", fix="upload or paste one")
        filters = filters or SearchFilters()
        timings = {"preprocess": 0.0, "embed": 0.0, "assess": 0.0, "search": 0.0}
        with self._lock:
            start = time.perf_counter()
            # the query is scrubbed like the indexed reports: nothing shown back carries PHI
            scrubbed = scrub(text).text if text and text.strip() else None
            report = self.normalizer.normalize(scrubbed) if scrubbed else None
            text_vector = None
            if report is not None:
                text_vector = embed_texts(self.embedder, [report.standardized_text])[0]
            timings["embed"] += time.perf_counter() - start
            views: list[QueryView] = []
            vectors: list[NDArray[np.float32] | None] = []
            for image in images:
                ready = image if isinstance(image, PreparedImage) else self._prepare(image)
                if ready is not image:
                    for stage, seconds in ready.timings.items():
                        timings[stage] += seconds
                start = time.perf_counter()
                assessment = assess_prepared(
                    self.index, ready.prepared, ready.vector, report,
                    exclude_patient=filters.exclude_patient, density_model=self.density_model,
                    features=ready.features, features_of=self.embedder.model_id,
                )  # fmt: skip
                timings["assess"] += time.perf_counter() - start
                views.append(QueryView(ready.prepared, ready.laterality, ready.view, assessment))
                vectors.append(ready.vector)
            start = time.perf_counter()
            best: dict[int | str, Neighbour] = {}  # by image, or by case (per_case)
            for vector in vectors or [None]:
                found = self.index.search(
                    image_vector=vector, text_vector=text_vector, k=k, filters=filters,
                    weights=weights, fusion=fusion,
                )  # fmt: skip
                for hit in found:
                    key = hit.case_id if filters.per_case else hit.row_id
                    if key not in best or hit.score > best[key].score:
                        best[key] = hit
            neighbours = sorted(best.values(), key=lambda n: -n.score)[:k]
            timings["search"] += time.perf_counter() - start
        return QueryResult(
            views, report, self._exam_density(views, report), neighbours,
            [w for v in views for w in v.assessment.warnings],
            {name: round(seconds, 4) for name, seconds in timings.items()}, scrubbed,
        )  # fmt: skip

    def _exam_density(
        self, views: list[QueryView], report: NormalizedReport | None
    ) -> DensityDecision | None:
        labels = list(self.index.labels)
        stated, _ = stated_density(report, labels)  # the views' assessments carry the warning
        if stated is not None:
            return DensityDecision(stated, {lab: float(lab == stated) for lab in labels},
                                   "report", 1.0)  # fmt: skip
        if not views:
            return None
        if len(views) == 1:
            return views[0].assessment.density
        exam = exam_density([replace(v.assessment, laterality=v.laterality) for v in views], labels)
        if exam.label is None:
            return None
        side = next(s for s in exam.by_side.values() if s.label == exam.label)
        return DensityDecision(exam.label, side.probabilities,
                               "+".join(sorted(exam.view_methods)) + f" ({exam.METHOD})",
                               side.probabilities[exam.label])  # fmt: skip

    def example_exam(self, max_views: int = 4) -> dict[str, Any] | None:
        """An exam of the index to show as an example query: the first one with a report (else
        the first one), as its thumbnails (paths inside the index) with their side and view, and
        its report text as the index keeps it (scrubbed, or ``None``). ``None`` for an empty
        index.
        """
        store = self.index.store
        with self._lock:
            ids = store.ids(with_text=True, limit=1) or store.ids(limit=1)
            if not ids:
                return None
            first = store.get([ids[0]], with_reports=True)[ids[0]]
            rows = store.get(store.ids_of_case(first.case_id)[:max_views], with_reports=False)
        return {
            "views": [
                {
                    "thumbnail": str(self.directory / row.thumbnail),
                    "laterality": _known(Laterality.parse, row.laterality),
                    "view": _known(View.parse, row.view),
                }
                for row in rows.values()
                if row.thumbnail
            ],
            "report_text": first.report_text,
        }

    def case(self, row_id: int) -> dict[str, Any]:
        """An indexed image for display: its thumbnail path (inside the index), label, view,
        report text and normalized report.

        Raises:
            InputError: No such row.
        """
        with self._lock:
            rows = self.index.store.get([int(row_id)])
        if int(row_id) not in rows:
            raise InputError(f"no indexed image {row_id}", fix="pick one of the results")
        row = rows[int(row_id)]
        return {
            "row_id": row.id,
            "case_id": row.case_id,
            "label": row.label,
            "laterality": row.laterality,
            "view": row.view,
            "thumbnail": str(self.directory / row.thumbnail) if row.thumbnail else None,
            "report_text": row.report_text,
            "report": row.report,
        }


def _known(parse: Any, value: str | None) -> Any:
    """A stored side or view; a value older indexes kept that is not one gives ``None``."""
    try:
        return parse(value)
    except ValueError:
        return None

"""``assess``: the density of an image with the path that decided, and of an exam.

``auto`` takes the density the report states; else a confident neighbour vote; else the
density model's image paths (its ConvNeXt and its probe on weight-free vectors), combined as
the policy tuned with the model says. ``vote``, ``convnext`` and ``probe`` force one path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.classifiers import DensityClassifier, decide, load_density_model
from mammosearch.config import Settings
from mammosearch.embeddings import WEIGHT_FREE, Embedder, FittedEmbedder, open_embedder
from mammosearch.errors import InputError, MammosearchError
from mammosearch.index import CaseIndex, SearchFilters
from mammosearch.nlp import Normalizer
from mammosearch.nlp.scrub import scrub
from mammosearch.pipeline.assessment import (
    MODEL_PATHS,
    Assessment,
    DensityDecision,
    ExamAssessment,
    ModelOpinion,
    SideDensity,
)
from mammosearch.pipeline.manifest import read_manifest
from mammosearch.pipeline.records import ManifestRow, side_code
from mammosearch.pipeline.search import open_index
from mammosearch.pipeline.stages import embed_inputs, image_inputs, prepare_query, row_report_text
from mammosearch.records import NormalizedReport

__all__ = [
    "ASSESS_METHODS",
    "DensityModel",
    "assess_image",
    "assess_prepared",
    "check_method",
    "exam_density",
    "iter_assessments",
    "iter_exam_assessments",
    "open_density_model",
    "stated_density",
]

logger = logging.getLogger(__name__)

ASSESS_METHODS = ("auto", "vote", *MODEL_PATHS)


@dataclass(slots=True)
class DensityModel:
    """A loaded density model with the embedder its probe reads (made once, reused).

    Attributes:
        classifier: The density classifier (the ConvNeXt).
        probe_embedder: The embedder of its probe's vectors, with the probe's statistics; or
            ``None`` when it has no usable probe.
    """

    classifier: DensityClassifier
    probe_embedder: Embedder | None = None

    @classmethod
    def load(cls, directory: Path) -> DensityModel:
        """A ``train-density`` directory. Its probe is dropped, with a warning, when it was
        fitted on another revision of its embedder (its vectors would mean something else).

        Raises:
            ModelLoadError: No density model there.
        """
        classifier = load_density_model(directory)
        probe = classifier.probe
        if probe is None:
            return cls(classifier)
        name = str(probe.info.get("embedder") or WEIGHT_FREE)
        try:
            embedder = open_embedder(name, None, probe.info.get("embedder_stats"))
            usable = embedder.model_id == probe.info.get("model_id")
        except MammosearchError:
            usable = False
        if not usable:
            logger.warning("the density model's probe was fitted on another embedder revision; "
                           "it is not used (retrain with 'mammosearch train-density')")  # fmt: skip
            classifier.probe = None
            return cls(classifier)
        return cls(classifier, embedder)

    @property
    def labels(self) -> list[str]:
        """The label set in its order."""
        return self.classifier.labels

    @property
    def config(self) -> dict[str, Any]:
        """The model's config (architecture, training figures, the tuned policy)."""
        return self.classifier.config

    @property
    def probe(self) -> Any | None:
        """The probe, when it is used."""
        return self.classifier.probe if self.probe_embedder is not None else None

    @property
    def image_size(self) -> int:
        """The ConvNeXt's input side."""
        return self.classifier.image_size

    def probabilities(
        self,
        images: Sequence[NDArray[np.float32]],
        *,
        features: Sequence[NDArray[Any]] | None = None,
        features_of: str | None = None,
    ) -> dict[str, NDArray[np.float32]]:
        """Every path's probabilities (``{"convnext", "probe"}`` → ``n×labels``).

        Args:
            images: Prepared images.
            features: The images' features already computed by a fitted embedder (reused for
                the probe when they come from the same embedder revision).
            features_of: The ``model_id`` of the embedder that computed ``features``.
        """
        out = {"convnext": self.classifier.predict_proba(images)}
        probe, embedder = self.probe, self.probe_embedder
        if probe is not None and embedder is not None:
            if features is None or features_of != embedder.model_id:
                features = image_inputs(embedder, images)
            out["probe"] = probe.predict_proba(embed_inputs(embedder, features))
        return out


def open_density_model(
    explicit: Path | None, settings: Settings | None, index_dir: Path | None
) -> DensityModel | None:
    """The density model assess uses: ``--density-model``, else the setting
    (``MAMMOSEARCH_DENSITY_MODEL``), else one stored in the index, else none."""
    chosen = explicit or (settings.density_model if settings is not None else None)
    if chosen is None and index_dir is not None and (index_dir / "density_model").is_dir():
        chosen = index_dir / "density_model"
    return DensityModel.load(chosen) if chosen is not None else None


def check_method(method: str, density_model: DensityModel | None) -> None:
    """Refuse a method that is unknown or needs what is not there.

    Raises:
        InputError: Unknown method, or a model path without a density model (or its probe).
    """
    if method not in ASSESS_METHODS:
        raise InputError(
            f"unknown method {method!r}", fix=f"use one of {', '.join(ASSESS_METHODS)}"
        )
    if method in MODEL_PATHS and density_model is None:
        raise InputError(
            f"--method {method} needs a trained density model",
            fix="pass --density-model DIR or set MAMMOSEARCH_DENSITY_MODEL",
        )
    if method == "probe" and getattr(density_model, "probe", None) is None:
        raise InputError("this density model has no probe", fix="retrain it with train-density")


def assess_image(
    index: CaseIndex,
    embedder: Embedder,
    *,
    image: Path | bytes,
    report: str | None = None,
    method: str = "auto",
    k: int | None = None,
    exclude_patient: str | None = None,
    normalizer: Normalizer | None = None,
    density_model: DensityModel | None = None,
) -> Assessment:
    """Breast density of one image, with the path that decided (module docstring). Without a
    density model an unconfident vote still answers, with low confidence and a warning.

    Raises:
        InputError: Unknown method, or a model path without a density model (or its probe).
        InvalidDicomError: The image cannot be read.
    """
    check_method(method, density_model)
    normalizer = normalizer or Normalizer()
    decoded, prepared = prepare_query(image, embedder.prepared_size)
    inputs = image_inputs(embedder, [prepared])
    image_vector = embed_inputs(embedder, inputs)[0]
    # scrubbed like indexed reports: the result (evidence spans) never carries PHI
    normalized = normalizer.normalize(scrub(report).text) if report else None
    fitted = isinstance(embedder, FittedEmbedder)
    result = assess_prepared(
        index, prepared, image_vector, normalized, method=method, k=k,
        exclude_patient=exclude_patient, density_model=density_model,
        features=inputs if fitted else None, features_of=embedder.model_id,
    )  # fmt: skip
    return replace(result, laterality=decoded.laterality)


def assess_prepared(
    index: CaseIndex,
    prepared: NDArray[np.float32],
    image_vector: NDArray[np.float32],
    normalized: NormalizedReport | None,
    *,
    method: str = "auto",
    k: int | None = None,
    exclude_patient: str | None = None,
    density_model: DensityModel | None = None,
    features: Sequence[NDArray[Any]] | None = None,
    features_of: str | None = None,
) -> Assessment:
    """:func:`assess_image` for an image already prepared and embedded (and its report already
    normalized), as a service that also searches with the same vector does."""
    neighbours = index.search(
        image_vector=image_vector, k=k or index.vote_params.k,
        filters=SearchFilters(exclude_patient=exclude_patient), with_reports=False,
    )  # fmt: skip
    vote = index.vote(neighbours)
    models: dict[str, dict[str, float]] = {}
    if density_model is not None and method != "vote":
        names = density_model.labels
        found = density_model.probabilities([prepared], features=features, features_of=features_of)
        for path, probs in found.items():
            models[path] = {lab: round(float(p), 6) for lab, p in zip(names, probs[0], strict=True)}
    stated, why_not = stated_density(normalized, index.labels)
    warnings: list[str] = [why_not] if why_not and method == "auto" else []
    if method == "auto" and stated is not None:
        probabilities = {lab: float(lab == stated) for lab in index.labels}
        density = DensityDecision(stated, probabilities, "report", 1.0)
    elif method in MODEL_PATHS:
        chosen = models[method]
        label = max(chosen, key=chosen.__getitem__)
        density = DensityDecision(label, chosen, method, chosen[label])
    else:
        policy = density_model.config.get("policy") if density_model is not None else None
        decision = decide(
            vote_label=vote.label, vote_margin=vote.margin, vote_abstains=vote.abstain,
            vote_probabilities=vote.probabilities, model_probabilities=models, policy=policy,
        )  # fmt: skip
        warnings += decision.warnings
        if decision.method == "vote" and vote.abstain and vote.reason:
            warnings.append(f"vote: {vote.reason}")
        weights = policy.get("weights") if decision.method == "ensemble" and policy else None
        density = DensityDecision(decision.label, decision.probabilities, decision.method,
                                  decision.confidence, weights)  # fmt: skip
    return Assessment(
        density, vote, {path: ModelOpinion.of(probs) for path, probs in models.items()},
        tuple(neighbours), normalized, tuple(warnings),
    )  # fmt: skip


_BIRADS_DENSITY = frozenset("ABCD")


def stated_density(
    report: NormalizedReport | None, labels: Sequence[str]
) -> tuple[str | None, str | None]:
    """The density a report states, when it can stand for one of the index's labels, and why
    not when it cannot: a BI-RADS letter means nothing on another scale (MIAS ``F``/``G``/``D``
    has a ``D`` too), nor outside the index's labels.

    Returns:
        ``(label, None)``; ``(None, warning)`` when the report states one that cannot be used;
        ``(None, None)`` when it states none.
    """
    if report is None or report.density is None:
        return None, None
    stated = report.density.category.value
    if not set(labels) <= _BIRADS_DENSITY:
        return None, (
            f"the report states BI-RADS density {stated}, but this index's labels "
            f"({', '.join(labels)}) are another scale: not used"
        )
    if stated not in labels:
        return None, (
            f"the report states BI-RADS density {stated}, which is not among this index's "
            f"labels ({', '.join(labels)}): not used"
        )
    return stated, None


def iter_assessments(
    directory: Path,
    manifest: Path,
    *,
    method: str = "auto",
    model: str | None = None,
    exclude_own_patient: bool = True,
    density_model: DensityModel | None = None,
) -> Iterator[Assessment]:
    """Assess every row of a manifest with one loaded index and model.

    A row whose image or report cannot be read yields an assessment with ``error`` set.
    """
    with _opened(directory, manifest, method, model, density_model) as (index, embedder, rows):
        yield from _assess_rows(index, embedder, rows, method, exclude_own_patient, density_model)


def iter_exam_assessments(
    directory: Path,
    manifest: Path,
    *,
    method: str = "auto",
    model: str | None = None,
    exclude_own_patient: bool = True,
    density_model: DensityModel | None = None,
) -> Iterator[ExamAssessment]:
    """Assess every row (as :func:`iter_assessments`, same options) and yield one result per
    exam (``case_id``, in order of first appearance) by :func:`exam_density`."""
    with _opened(directory, manifest, method, model, density_model) as (index, embedder, rows):
        by_exam: dict[str, list[Assessment]] = {}
        for found in _assess_rows(index, embedder, rows, method, exclude_own_patient,
                                  density_model):  # fmt: skip
            by_exam.setdefault(str(found.case_id), []).append(found)
        for case_id, views in by_exam.items():
            yield replace(exam_density(views, index.labels), case_id=case_id, images=tuple(views))


@contextmanager
def _opened(
    directory: Path, manifest: Path, method: str, model: str | None,
    density_model: DensityModel | None,
) -> Iterator[tuple[CaseIndex, Embedder, list[ManifestRow]]]:  # fmt: skip
    """A manifest's rows with the index they are assessed against, opened once (the method
    checked first)."""
    check_method(method, density_model)
    rows = read_manifest(manifest)
    index, embedder = open_index(directory, model)
    try:
        yield index, embedder, rows
    finally:
        index.close()


def _assess_rows(
    index: CaseIndex,
    embedder: Embedder,
    rows: Sequence[ManifestRow],
    method: str,
    exclude_own_patient: bool,
    density_model: DensityModel | None,
) -> Iterator[Assessment]:
    normalizer = Normalizer()
    for row in rows:
        # rows are named by number and case id, never by path: file names can carry PHI
        try:
            result = assess_image(
                index, embedder, image=row.image, report=row_report_text(row), method=method,
                exclude_patient=row.patient_id if exclude_own_patient else None,
                normalizer=normalizer, density_model=density_model,
            )  # fmt: skip
        except MammosearchError as e:
            yield Assessment.failed(row.case_id, row.number, str(e))
            continue
        # the manifest's own laterality wins over tags and file names
        yield replace(result, case_id=row.case_id, row=row.number,
                      laterality=row.laterality or result.laterality)  # fmt: skip


def exam_density(assessments: Sequence[Assessment], labels: Sequence[str]) -> ExamAssessment:
    """One exam's density from its views' assessments.

    Each breast's probabilities are the mean of its views'; each breast takes its most probable
    label, and the exam the denser breast (later in ``labels``). Views of unknown side count as
    one more "breast". Failed views are counted, not used.
    """
    rank = {label: i for i, label in enumerate(labels)}
    sides: dict[str, list[Mapping[str, float]]] = {}
    methods: Counter[str] = Counter()
    failed = 0
    for item in assessments:
        density = item.density
        if item.error is not None or density is None or density.label is None:
            failed += 1
            continue
        sides.setdefault(side_code(item.laterality) or "unknown", []).append(density.probabilities)
        methods[density.method] += 1
    by_side: dict[str, SideDensity] = {}
    for side, views in sorted(sides.items()):
        mean = {lab: round(float(np.mean([v.get(lab, 0.0) for v in views])), 6) for lab in labels}
        best = max(labels, key=lambda lab: mean[lab])
        by_side[side] = SideDensity(best, mean, len(views))
    overall = max((s.label for s in by_side.values()), key=rank.__getitem__, default=None)
    return ExamAssessment(overall, by_side, sum(len(v) for v in sides.values()), failed,
                          dict(methods))  # fmt: skip

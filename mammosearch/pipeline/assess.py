"""``assess``: the density of an image with the path that decided, and of an exam.

``auto`` takes the density the report states; else a confident neighbour vote; else the
density model's image paths (its ConvNeXt and its probe on weight-free vectors), combined as
the policy tuned with the model says. ``vote``, ``convnext`` and ``probe`` force one path.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.accel import parallel_map
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
from mammosearch.pipeline.stages import (
    EMBED_BATCH,
    embed_inputs,
    image_inputs,
    prepare_query,
    row_report_text,
)
from mammosearch.records import Laterality, NormalizedReport

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

    def inputs(
        self,
        images: Sequence[NDArray[np.float32]],
        *,
        features: Sequence[NDArray[Any]] | None = None,
        features_of: str | None = None,
    ) -> DensityInputs:
        """What every path reads of prepared images (the CPU part, which worker processes may
        compute; the arguments as :meth:`probabilities`')."""
        embedder, probe_features = self.probe_embedder, None
        if self.probe is not None and embedder is not None:
            reuse = features is not None and features_of == embedder.model_id
            probe_features = list(features) if reuse else image_inputs(embedder, images)  # type: ignore[arg-type]
        return DensityInputs(self.classifier.inputs(images), probe_features)

    def probabilities(
        self,
        images: Sequence[NDArray[np.float32]] = (),
        *,
        features: Sequence[NDArray[Any]] | None = None,
        features_of: str | None = None,
        inputs: DensityInputs | None = None,
    ) -> dict[str, NDArray[np.float32]]:
        """Every path's probabilities (``{"convnext", "probe"}`` → ``n×labels``).

        Args:
            images: Prepared images.
            features: The images' features already computed by a fitted embedder (reused for
                the probe when they come from the same embedder revision).
            features_of: The ``model_id`` of the embedder that computed ``features``.
            inputs: The images' :meth:`inputs`, made already (then ``images`` is not read).
        """
        made = inputs or self.inputs(images, features=features, features_of=features_of)
        out = {"convnext": self.classifier.predict_inputs(made.convnext)}
        probe, embedder = self.probe, self.probe_embedder
        if probe is not None and embedder is not None and made.probe_features is not None:
            out["probe"] = probe.predict_proba(embed_inputs(embedder, made.probe_features))
        return out


@dataclass(slots=True)
class DensityInputs:
    """What a density model's paths read of prepared images: the ConvNeXt's inputs and the
    probe embedder's features (``None`` without a probe)."""

    convnext: NDArray[np.float32]
    probe_features: list[NDArray[Any]] | None


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
    ready = _prepare(image, report, embedder, normalizer or Normalizer(), density_model, method)
    (result,) = _assess_ready(index, embedder, [ready], [exclude_patient], method, k,
                              density_model)  # fmt: skip
    if isinstance(result, MammosearchError):
        raise result
    return result


@dataclass(slots=True)
class _Ready:
    """One image made ready to assess (by :func:`_prepare`, possibly in a worker process)."""

    laterality: Laterality | None
    prepared: NDArray[np.float32]
    inputs: list[NDArray[Any]]
    normalized: NormalizedReport | None
    density: DensityInputs | None


def _prepare(
    image: Path | bytes, report: str | None, embedder: Embedder, normalizer: Normalizer,
    density_model: DensityModel | None, method: str,
) -> _Ready:  # fmt: skip
    """The CPU part of assessing an image: read, crop, the embedder's and the density model's
    inputs, the report scrubbed (evidence spans never carry PHI) and normalized."""
    decoded, prepared = prepare_query(image, embedder.prepared_size)
    inputs = image_inputs(embedder, [prepared])
    normalized = normalizer.normalize(scrub(report).text) if report else None
    density = None
    if density_model is not None and method != "vote":
        fitted = isinstance(embedder, FittedEmbedder)
        density = density_model.inputs([prepared], features=inputs if fitted else None,
                                       features_of=embedder.model_id)  # fmt: skip
    return _Ready(decoded.laterality, prepared, inputs, normalized, density)


def _assess_ready(
    index: CaseIndex, embedder: Embedder, batch: Sequence[_Ready],
    exclude: Sequence[str | None], method: str, k: int | None,
    density_model: DensityModel | None,
) -> list[Assessment | MammosearchError]:  # fmt: skip
    """The device's part for a batch of ready images: embedded together, then each assessed
    (excluding its ``exclude`` patient's images); an image that fails gets its error."""
    vectors = embed_inputs(embedder, [x for ready in batch for x in ready.inputs])
    out: list[Assessment | MammosearchError] = []
    for ready, vector, patient in zip(batch, vectors, exclude, strict=True):
        try:
            result = assess_prepared(
                index, ready.prepared, vector, ready.normalized, method=method, k=k,
                exclude_patient=patient, density_model=density_model,
                density_inputs=ready.density,
            )  # fmt: skip
        except MammosearchError as e:
            out.append(e)
            continue
        out.append(replace(result, laterality=ready.laterality))
    return out


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
    density_inputs: DensityInputs | None = None,
) -> Assessment:
    """:func:`assess_image` for an image already prepared and embedded (and its report already
    normalized), as a service that also searches with the same vector does; with the density
    model's ``density_inputs`` when they were made already."""
    neighbours = index.search(
        image_vector=image_vector, k=k or index.vote_params.k,
        filters=SearchFilters(exclude_patient=exclude_patient), with_reports=False,
    )  # fmt: skip
    vote = index.vote(neighbours)
    models: dict[str, dict[str, float]] = {}
    if density_model is not None and method != "vote":
        names = density_model.labels
        found = density_model.probabilities([prepared], features=features, features_of=features_of,
                                            inputs=density_inputs)  # fmt: skip
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
    workers: int = 1,
) -> Iterator[Assessment]:
    """Assess every row of a manifest with one loaded index and model.

    A row whose image or report cannot be read yields an assessment with ``error`` set.
    ``workers`` processes read the images and make the models' inputs.
    """
    with _opened(directory, manifest, method, model, density_model) as (index, embedder, rows):
        yield from _assess_rows(index, embedder, rows, method, exclude_own_patient, density_model,
                                workers)  # fmt: skip


def iter_exam_assessments(
    directory: Path,
    manifest: Path,
    *,
    method: str = "auto",
    model: str | None = None,
    exclude_own_patient: bool = True,
    density_model: DensityModel | None = None,
    workers: int = 1,
) -> Iterator[ExamAssessment]:
    """Assess every row (as :func:`iter_assessments`, same options) and yield one result per
    exam (``case_id``, in order of first appearance) by :func:`exam_density`."""
    with _opened(directory, manifest, method, model, density_model) as (index, embedder, rows):
        by_exam: dict[str, list[Assessment]] = {}
        for found in _assess_rows(index, embedder, rows, method, exclude_own_patient,
                                  density_model, workers):  # fmt: skip
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
    workers: int = 1,
) -> Iterator[Assessment]:
    """Each row assessed, in order: made ready by ``workers`` processes, then embedded in
    batches (:mod:`mammosearch.accel`)."""
    prepare = functools.partial(_prepare_row, embedder=embedder, normalizer=Normalizer(),
                                density_model=density_model, method=method)  # fmt: skip
    made = zip(rows, parallel_map(prepare, rows, workers=workers), strict=True)
    while chunk := list(itertools.islice(made, EMBED_BATCH)):
        ready = [(row, r) for row, r in chunk if isinstance(r, _Ready)]
        exclude = [row.patient_id if exclude_own_patient else None for row, _ in ready]
        assessed = iter(_assess_ready(index, embedder, [r for _, r in ready], exclude, method,
                                      None, density_model))  # fmt: skip
        for row, r in chunk:
            result = next(assessed) if isinstance(r, _Ready) else r
            # rows are named by number and case id, never by path: file names can carry PHI
            if not isinstance(result, Assessment):
                yield Assessment.failed(row.case_id, row.number, str(result))
                continue
            # the manifest's own laterality wins over tags and file names
            yield replace(result, case_id=row.case_id, row=row.number,
                          laterality=row.laterality or result.laterality)  # fmt: skip


def _prepare_row(
    row: ManifestRow, *, embedder: Embedder, normalizer: Normalizer,
    density_model: DensityModel | None, method: str,
) -> _Ready | str:  # fmt: skip
    """:func:`_prepare` of a manifest row, or its error's message (what a worker returns)."""
    try:
        return _prepare(row.image, row_report_text(row), embedder, normalizer, density_model,
                        method)  # fmt: skip
    except MammosearchError as e:
        return str(e)


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

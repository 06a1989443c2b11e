"""``evaluate``: measure each path against labelled data (retrieval and the density vote,
linear probes and zero-shot heads on frozen vectors, the report normalizer against gold)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.classifiers import LinearProbe, ZeroShotDensity, density_metrics, density_prompts
from mammosearch.config import Settings
from mammosearch.embeddings import Embedder, FittedEmbedder, open_embedder
from mammosearch.errors import InputError
from mammosearch.index import CaseIndex, SearchFilters
from mammosearch.nlp import Normalizer
from mammosearch.nlp.evaluation import ReportScores, score_reports
from mammosearch.pipeline.build import build_index
from mammosearch.pipeline.density import labelled_images
from mammosearch.pipeline.manifest import label_order
from mammosearch.pipeline.reports import read_gold, read_report_payload
from mammosearch.pipeline.stages import embed_images, image_inputs

__all__ = ["evaluate_probe", "evaluate_reports", "evaluate_retrieval", "evaluate_zero_shot"]

logger = logging.getLogger(__name__)


def evaluate_retrieval(
    manifest: Path, *, embedder: str = "auto", model: str | None = None, k: int = 10,
    settings: Settings, work_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Leave-one-patient-out evaluation of the density vote and of same-label precision@k.

    Builds an index of the manifest in ``work_dir`` (the vote is fitted as a normal build
    would), then lets every labelled image vote from the other patients' images.
    """
    build_index(manifest, work_dir, settings=settings, embedder=embedder, model=model)
    with CaseIndex(work_dir) as index:
        rows = [r for r in index.store.all_rows(with_reports=False) if r.label is not None]
        truth, predicted, precision = [], [], []
        for r in rows:
            vector = index.vectors["image"].vector(r.id)
            neighbours = index.search(
                image_vector=vector, k=k, filters=SearchFilters(exclude_patient=r.patient_id),
                with_reports=False,
            )  # fmt: skip
            truth.append(str(r.label))
            predicted.append(index.vote(neighbours).label)
            same = [n.label == r.label for n in neighbours]
            precision.append(float(np.mean(same)) if same else 0.0)
        metrics = density_metrics(truth, predicted, index.labels,
                                  patients=[r.patient_id for r in rows])  # fmt: skip
        return {
            "images": len(rows),
            "embedder": index.manifest.embedder.name,
            **metrics,
            f"precision_at_{k}": round(float(np.mean(precision)), 4),
        }


def _image_vectors(
    embedder: Embedder, images: Sequence[NDArray[np.float32]]
) -> NDArray[np.float32]:
    """Image vectors of breast-cropped images; an embedder fitted on its data first fits its
    (unsupervised) statistics on these images, as an index build does."""
    if isinstance(embedder, FittedEmbedder):
        features = np.stack(image_inputs(embedder, images))
        embedder.fit_features(features)
        return embedder.embed_features(features)
    return embed_images(embedder, images)


def evaluate_probe(
    manifest: Path,
    *,
    embedder: str = "auto",
    model: str | None = None,
    folds: int = 5,
    seed: int = 0,
    label_order_arg: Sequence[str] | None = None,
    save: Path | None = None,
) -> dict[str, Any]:
    """Patient-level cross-validated accuracy of a linear probe on frozen image vectors.

    With ``save``, a probe fitted on the whole manifest is written there (``probe.json``).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    made = open_embedder(embedder, model)
    rows, images = labelled_images(manifest, made.prepared_size)
    vectors = _image_vectors(made, images)
    truth = [str(r.label) for r in rows]
    patients = [r.patient_id for r in rows]
    labels, _ = label_order(set(truth), label_order_arg)
    predicted: list[str | None] = [None] * len(rows)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(vectors, truth, groups=patients)):
        logger.info("linear probe cross-validation: fold %d of %d", fold + 1, folds)
        probe = LinearProbe.fit(
            vectors[train_idx], [truth[i] for i in train_idx], [patients[i] for i in train_idx],
            labels, seed=seed, embedder=made,
        )  # fmt: skip
        for i, label in zip(test_idx, probe.predict(vectors[test_idx]), strict=True):
            predicted[i] = label
    result: dict[str, Any] = {
        "mode": f"{folds}-fold patient cross-validation", "head": "linear probe",
        "embedder": made.name, **density_metrics(truth, predicted, labels, patients=patients),
    }  # fmt: skip
    if save is not None:
        probe = LinearProbe.fit(vectors, truth, patients, labels, seed=seed, embedder=made)
        if isinstance(made, FittedEmbedder):
            probe.info["embedder_stats"] = made.stats
        probe.save(save)
    return result


def evaluate_zero_shot(
    manifest: Path,
    *,
    embedder: str = "auto",
    model: str | None = None,
    prompts: Path | None = None,
    label_order_arg: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy of zero-shot density (prompt ensembles; no training) on a labelled manifest.

    Raises:
        InputError: The embedder has no shared image-text space, or no prompts fit the labels.
    """
    made = open_embedder(embedder, model)
    rows, images = labelled_images(manifest, made.prepared_size)
    truth = [str(r.label) for r in rows]
    labels, _ = label_order(set(truth), label_order_arg)
    head = ZeroShotDensity(made, labels, density_prompts(labels, prompts))
    predicted = head.predict(_image_vectors(made, images))
    return {
        "mode": "zero-shot (no training)", "head": "prompt ensembles",
        "embedder": made.name, "prompts": sum(len(p) for p in head.prompts.values()),
        **density_metrics(truth, predicted, labels, patients=[r.patient_id for r in rows]),
    }  # fmt: skip


def evaluate_reports(
    gold_path: Path, texts_dir: Path, *, settings: Settings, workers: int | None = None
) -> ReportScores:
    """Normalize the reports of ``texts_dir`` (``<id>.txt``) and score them against gold.

    Args:
        gold_path: Gold JSON Lines in the format of ``../shared/data/reports-examples``.
        texts_dir: Folder with one ``<id>.txt`` per gold row.
        settings: Run settings.
        workers: Worker processes.

    Raises:
        InputError: The gold file or the folder is unusable.
    """
    rows = read_gold(gold_path)
    if not texts_dir.is_dir():
        raise InputError(f"texts folder {str(texts_dir)!r} not found",
                         fix="pass the folder of <id>.txt files")  # fmt: skip
    items = [(str(r["id"]), read_report_payload(texts_dir / f"{r['id']}.txt")) for r in rows]
    normalizer = Normalizer(max_chars=settings.max_report_chars)
    reports = normalizer.normalize_many(items, n_process=workers or settings.workers)
    return score_reports(rows, {r.id: r for r in reports})

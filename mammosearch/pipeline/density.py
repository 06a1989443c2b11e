"""Density models: train the ConvNeXt with its radiomics probe and the assess policy chosen by
patient-level cross-validation, and evaluate every density path on a labelled manifest.

Every evaluation keeps a patient's images on one side of each split, and scores with
:func:`mammosearch.classifiers.metrics.density_metrics`. The combined policy is scored by nested
cross-validation (:func:`mammosearch.classifiers.nested_scores`): each outer fold's policy is
chosen on the other folds' rows only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.classifiers import (
    LinearProbe,
    choose_policy,
    cross_fitted,
    density_metrics,
    nested_scores,
    train_convnext,
)
from mammosearch.classifiers.policy import apply_policy
from mammosearch.classifiers.selection import outer_fold_scores
from mammosearch.embeddings import WEIGHT_FREE, FittedEmbedder, create_embedder
from mammosearch.errors import ConfigError, InputError, InvalidDicomError
from mammosearch.imaging import prepare_image, read_image
from mammosearch.index import VectorIndex, vote_density
from mammosearch.pipeline._tables import TableWriter, commit_tables
from mammosearch.pipeline.assess import DensityModel, exam_density
from mammosearch.pipeline.assessment import Assessment, DensityDecision
from mammosearch.pipeline.manifest import label_order, read_manifest
from mammosearch.pipeline.outputs import check_output_file
from mammosearch.pipeline.records import ManifestRow
from mammosearch.pipeline.stages import fit_vote_by_patient, image_inputs
from mammosearch.records import Neighbour

__all__ = [
    "OutOfFold",
    "cross_validate_paths",
    "evaluate_density",
    "exam_metrics",
    "labelled_images",
    "train_density",
    "weight_free_embedder",
    "write_predictions",
]

logger = logging.getLogger(__name__)

CHOICE_FOLDS = 5  # inner folds that choose the policy on out-of-fold rows (cheap: no training)
POLICY_FOLDS = 4  # train-density's patient folds: cross-fitted, one network each (docs/CLI.md)
FOLDS_DIR = "folds"  # under a model being trained: each fold's checkpoints, for --resume


def weight_free_embedder() -> FittedEmbedder:
    """The weight-free embedder whose vectors the density model's probe and the evaluated
    vote read (fitted on each training set).

    Raises:
        ConfigError: It is not an embedder fitted on its data (a registry mix-up).
    """
    made = create_embedder(WEIGHT_FREE)
    if not isinstance(made, FittedEmbedder):  # pragma: no cover - the registry's own embedder
        raise ConfigError(f"{WEIGHT_FREE} is not fitted on its data")
    return made


def labelled_images(
    manifest: Path, size: int
) -> tuple[list[ManifestRow], list[NDArray[np.float32]]]:
    """The manifest's labelled rows whose images read, with their breast-cropped images."""
    rows, images = [], []
    unlabelled, unreadable = 0, Counter[str]()
    for row in read_manifest(manifest):
        if row.label is None:
            unlabelled += 1
            continue
        try:
            images.append(prepare_image(read_image(row.image), size))
        except InvalidDicomError as e:
            logger.warning("row %d skipped: %s", row.number, e.code)
            unreadable[e.code] += 1
            continue
        rows.append(row)
    if not rows:
        codes = ", ".join(f"{code} × {n}" for code, n in unreadable.most_common())
        raise InputError(
            f"the manifest has no labelled, readable image ({unlabelled} rows without a density "
            f"label, {sum(unreadable.values())} unreadable{': ' + codes if codes else ''})",
            fix="give each row a density label and an image path that exists (relative to the "
            "manifest)",
        )
    return rows, images


def train_density(
    manifest: Path,
    out: Path,
    config: Any,
    *,
    label_order_arg: Sequence[str] | None = None,
    resume: bool = False,
    progress: bool = False,
    policy_folds: int = POLICY_FOLDS,
    workers: int = 1,
    cross_fit: bool = True,
) -> Any:
    """Train the density model on a labelled manifest; writes ``out``.

    The ConvNeXt (``model.safetensors``), a linear probe on ``radiomics.v1`` vectors of the same
    images (``probe.json``), and, with ``policy_folds`` >= 2, the assess policy: patient-level
    ``policy_folds``-fold cross-validation of every path (ConvNeXt, probe, weight-free neighbour
    vote) gives out-of-fold predictions, on which :func:`~mammosearch.classifiers.choose_policy`
    chooses the rule by :data:`CHOICE_FOLDS` patient-grouped folds; the policy, every candidate's
    inner-fold scores and the paths' out-of-fold accuracies go into ``config.json``.

    ``cross_fit`` (the default, with policy folds): the ConvNeXt *is* the folds' networks, an
    ensemble (:func:`~mammosearch.classifiers.cross_fitted`), so the policy weighs the networks
    that predict, each on patients it never saw; otherwise (or without policy folds) one more
    network is trained on every image, and the policy weighs it by its fold siblings, which saw
    fewer. ``resume`` continues the ConvNeXt from its checkpoints (cross-fitted: each fold's, in
    ``out/folds/fold-K``, removed at the end) and, not cross-fitted, keeps the policy already
    chosen. ``workers`` processes make the models' inputs (:mod:`mammosearch.accel`).
    """
    cross_fit = cross_fit and policy_folds >= 2
    rows, images = labelled_images(manifest, weight_free_embedder().prepared_size)
    labels, _ = label_order({str(r.label) for r in rows}, label_order_arg)
    truth = [str(r.label) for r in rows]
    patients = [r.patient_id for r in rows]
    keys = [r.source_key for r in rows]
    folds_dir = out / FOLDS_DIR if cross_fit else None
    policy = None
    if resume and not cross_fit and (out / "config.json").is_file():  # keep the tuned policy
        policy = json.loads((out / "config.json").read_text(encoding="utf-8")).get("policy")
    elif policy_folds >= 2:
        oof, policy = _chosen_policy(images, truth, patients, labels, config, policy_folds,
                                     progress=progress, workers=workers, checkpoints=folds_dir,
                                     resume=resume, keep_models=cross_fit)  # fmt: skip
    if cross_fit:
        model = cross_fitted(oof.models, keys)
    else:
        model = train_convnext(
            images, truth, patients, labels, config, out=out, resume=resume, progress=progress,
            data_keys=keys, workers=workers,
        )  # fmt: skip
    radiomics = weight_free_embedder()
    features = _features(radiomics, images, workers)
    radiomics.fit_features(features)
    model.probe = LinearProbe.fit(radiomics.embed_features(features), truth, patients, labels,
                                  seed=config.seed, embedder=radiomics)  # fmt: skip
    model.probe.info["embedder_stats"] = radiomics.stats
    if policy is not None:
        model.config["policy"] = policy
    model.save(out)
    if folds_dir is not None:
        shutil.rmtree(folds_dir, ignore_errors=True)  # the folds' checkpoints: done with
    return model


def _chosen_policy(
    images: Sequence[NDArray[np.float32]],
    truth: list[str],
    patients: list[str],
    labels: list[str],
    config: Any,
    policy_folds: int,
    **cross_validation: Any,
) -> tuple[OutOfFold, dict[str, Any]]:
    """train-density's policy: every path cross-validated on ``policy_folds`` patient folds
    (:func:`cross_validate_paths`, given ``cross_validation``'s options), and the rule chosen on
    their out-of-fold rows by :data:`CHOICE_FOLDS` patient-grouped folds."""
    oof = cross_validate_paths(images, truth, patients, labels, config, policy_folds,
                               **cross_validation)  # fmt: skip
    chosen = choose_policy(truth, labels, oof.probabilities, patients, oof.vote_margin,
                           oof.vote_abstain, folds=CHOICE_FOLDS, seed=config.seed)  # fmt: skip
    return oof, {"folds": policy_folds, **chosen}


def _features(
    embedder: FittedEmbedder, images: Sequence[NDArray[np.float32]], workers: int
) -> NDArray[np.float64]:
    """The embedder's raw features of the images, computed by ``workers`` processes."""
    return np.stack(image_inputs(embedder, images, workers)).astype(np.float64)


@dataclass(slots=True)
class OutOfFold:
    """Every density path's out-of-fold predictions from patient-level cross-validation.

    Attributes:
        labels: The label set in its order (the probability columns).
        truth: The true label of each image.
        patients: The patient of each image.
        fold: The fold each image was scored in.
        probabilities: ``{"convnext" | "vote" | "probe": n×len(labels)}``.
        vote_margin: The vote's winner-minus-runner-up margin of each image.
        vote_abstain: Whether the fitted vote would abstain on each image.
        models: The ConvNeXt of each fold, in fold order (kept only when asked for).
        policies: The assess policy chosen in each fold, in fold order (only ``as_trained``).
    """

    labels: list[str]
    truth: list[str]
    patients: list[str]
    fold: NDArray[np.int64]
    probabilities: dict[str, NDArray[np.float32]]
    vote_margin: NDArray[np.float64]
    vote_abstain: NDArray[np.bool_]
    models: list[Any] = dataclasses.field(default_factory=list)
    policies: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def predicted(self, path: str) -> list[str]:
        """The most probable label of each image on one path."""
        return [self.labels[int(i)] for i in self.probabilities[path].argmax(axis=1)]


def cross_validate_paths(
    images: Sequence[NDArray[np.float32]],
    truth: list[str],
    patients: list[str],
    labels: list[str],
    config: Any,
    folds: int,
    *,
    progress: bool = False,
    with_convnext: bool = True,
    workers: int = 1,
    features: NDArray[np.float64] | None = None,
    checkpoints: Path | None = None,
    resume: bool = False,
    keep_models: bool = False,
    as_trained: int = 0,
) -> OutOfFold:
    """Patient-level cross-validation of the ConvNeXt, the weight-free neighbour vote
    (``radiomics.v1``, its statistics and vote fitted on each training fold only) and a linear
    probe on the same radiomics vectors; every image is scored by models that never saw its
    patient. ``with_convnext=False`` leaves the ConvNeXt out (the weight-free paths only, in
    minutes on a CPU). ``features``: the images' raw radiomics features, when already computed.
    ``checkpoints``: a folder for each fold's ConvNeXt checkpoints (``fold-K``), which
    ``resume`` continues from. ``keep_models``: keep each fold's ConvNeXt (``models``), for a
    cross-fitted model; otherwise each is dropped once it has scored its fold.

    ``as_trained`` (>= 2, with the ConvNeXt): each fold's ConvNeXt and policy are what
    :func:`train_density` (cross-fitted, its default) makes of the other folds' images with
    that many policy folds: the networks of an inner cross-validation and the policy chosen on
    their out-of-fold rows (``policies``); ``as_trained`` × ``folds`` trainings. The probe and
    the vote are the same either way (train-density's probe and an index of the training images
    are fitted as they are here).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    radiomics = weight_free_embedder()
    if features is None:
        features = _features(radiomics, images, workers)
    n, width = len(truth), len(labels)
    out = OutOfFold(
        labels, truth, patients, np.zeros(n, dtype=np.int64),
        {path: np.zeros((n, width), dtype=np.float32)
         for path in ("convnext", "vote", "probe")[0 if with_convnext else 1 :]},
        np.zeros(n), np.zeros(n, dtype=bool),
    )  # fmt: skip
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(images, truth, groups=patients)):
        logger.info("density cross-validation: fold %d of %d", fold + 1, folds)
        out.fold[test_idx] = fold
        train_truth = [truth[i] for i in train_idx]
        train_patients = [patients[i] for i in train_idx]
        if with_convnext and as_trained >= 2:  # train-density on the fold's training images
            inner, policy = _chosen_policy(
                [images[i] for i in train_idx], train_truth, train_patients, labels, config,
                as_trained, progress=progress, workers=workers, features=features[train_idx],
                keep_models=True,
            )  # fmt: skip
            model = cross_fitted(inner.models, [str(i) for i in train_idx])
            out.policies.append(policy)
        elif with_convnext:
            model = train_convnext(
                [images[i] for i in train_idx], train_truth, train_patients, labels, config,
                progress=progress, workers=workers, resume=resume,
                out=checkpoints / f"fold-{fold + 1}" if checkpoints else None,
            )  # fmt: skip
        if with_convnext:
            if keep_models:
                out.models.append(model)
            test_images = [images[i] for i in test_idx]
            out.probabilities["convnext"][test_idx] = model.predict_proba(
                test_images, workers=workers
            )
        radiomics.fit_features(features[train_idx])
        train_vectors = radiomics.embed_features(features[train_idx])
        test_vectors = radiomics.embed_features(features[test_idx])
        probe = LinearProbe.fit(train_vectors, train_truth, train_patients, labels,
                                seed=config.seed)  # fmt: skip
        out.probabilities["probe"][test_idx] = probe.predict_proba(test_vectors)
        params, _ = fit_vote_by_patient(
            VectorIndex.build(train_vectors, np.arange(len(train_idx), dtype=np.int64)),
            [(n, p, t) for n, (p, t) in enumerate(zip(train_patients, train_truth, strict=True))],
            labels,
        )
        sims = test_vectors @ train_vectors.T
        for row, i in enumerate(test_idx):
            top = np.argsort(-sims[row])[: params.k]
            neighbours = [
                Neighbour(row_id=int(j), case_id="", patient_id="", score=float(sims[row, j]),
                          label=train_truth[j])
                for j in top
            ]  # fmt: skip
            vote = vote_density(neighbours, labels, params)
            out.probabilities["vote"][i] = [vote.probabilities[lab] for lab in labels]
            out.vote_margin[i], out.vote_abstain[i] = vote.margin, vote.abstain
    return out


def evaluate_density(
    manifest: Path,
    config: Any,
    *,
    model_dir: Path | None = None,
    folds: int = 5,
    label_order_arg: Sequence[str] | None = None,
    progress: bool = False,
    with_convnext: bool = True,
    workers: int = 1,
    repeats: int = 1,
    predictions: Path | None = None,
    as_trained: int = 0,
) -> dict[str, Any]:
    """Density accuracy of every path, by patient-level cross-validation (each image scored by
    models that never saw its patient), or of a trained model's paths on the manifest.

    ``repeats`` > 1 runs the cross-validation again with the fold seeds ``config.seed + 1``,
    ``config.seed + 2``, …: one split's figure moves with the patients that fall together, and
    the spread over the repeats says by how much. The detailed figures are the first run's.
    ``predictions``: a CSV file that receives every image's out-of-fold rows, one per repeat
    (:func:`write_predictions`), for one's own analysis (written only by cross-validation).
    ``as_trained`` (>= 2, with the ConvNeXt): each outer fold's ConvNeXt and policy are what
    :func:`train_density` with that many policy folds makes of the other folds' images (the
    cross-fitted networks and the policy they chose; :func:`cross_validate_paths`), so
    ``combined`` scores what train-density ships, by ``as_trained`` × ``folds`` trainings;
    otherwise one network per outer fold, and the policy is chosen on the other outer folds'
    rows (:func:`~mammosearch.classifiers.nested_scores`: cheaper, an approximation of it).

    Returns:
        ``mode``, ``n``, ``labels``, ``majority_rate`` and ``paths``: the
        :func:`~mammosearch.classifiers.metrics.density_metrics` of ``convnext``, ``probe``,
        ``vote`` and ``combined`` (cross-validation: the assess policy, chosen for each outer
        fold on the other folds' out-of-fold predictions, so its figure is not chosen on the
        images it scores; ``with_convnext=False``: without ``convnext``) — or of ``convnext``
        and ``probe`` for a trained model; with
        cross-validation also ``nested``: the rule chosen in each outer fold (``rules``),
        every path's and the policy's accuracy per outer fold with their mean and standard
        deviation (``scores``) and ``as_trained`` (the policy folds, 0 when not); with
        ``repeats`` > 1 also ``repeats``: every path's and the nested policy's accuracy per
        repeat (``seeds``, ``accuracy``) with their mean and standard deviation.
    """

    if predictions is not None:
        check_output_file(predictions, what="predictions file")
    rows, images = labelled_images(manifest, weight_free_embedder().prepared_size)
    truth = [str(r.label) for r in rows]
    patients = [r.patient_id for r in rows]
    paths: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {}
    runs: list[tuple[int, OutOfFold, NDArray[Any]]] = []  # (fold seed, rows, nested combined)
    if model_dir is not None:
        model = DensityModel.load(model_dir)
        labels = model.labels
        probabilities = model.probabilities(images)
        for path, probs in probabilities.items():
            predicted = [labels[int(i)] for i in probs.argmax(axis=1)]
            paths[path] = density_metrics(truth, predicted, labels, patients=patients)
        mode = "model"
    else:
        labels, _ = label_order(set(truth), label_order_arg)
        features = _features(weight_free_embedder(), images, workers)
        accuracy: dict[str, list[float]] = {}
        truth_index = np.asarray([labels.index(t) for t in truth])
        for repeat in range(repeats):
            run_config = dataclasses.replace(config, seed=config.seed + repeat)
            if repeats > 1:
                logger.info("density cross-validation: repeat %d of %d", repeat + 1, repeats)
            run = cross_validate_paths(images, truth, patients, labels, run_config, folds,
                                       progress=progress, with_convnext=with_convnext,
                                       workers=workers, features=features,
                                       as_trained=as_trained)  # fmt: skip
            if run.policies:
                run_nested = _as_trained_scores(run, truth_index)
            else:
                run_nested = nested_scores(truth, labels, run.probabilities, patients,
                                           run.vote_margin, run.vote_abstain, run.fold,
                                           folds=CHOICE_FOLDS, seed=run_config.seed)  # fmt: skip
            run_nested["as_trained"] = as_trained if run.policies else 0
            for path, probs in {**run.probabilities, "combined": run_nested["combined"]}.items():
                hits = probs.argmax(axis=1) == truth_index
                accuracy.setdefault(path, []).append(float(hits.mean()))
            runs.append((run_config.seed, run, run_nested["combined"]))
            if repeat == 0:
                oof, nested = run, run_nested
        for path in oof.probabilities:
            paths[path] = density_metrics(truth, oof.predicted(path), labels, patients=patients)
        combined = nested.pop("combined")
        probabilities = {**oof.probabilities, "combined": combined}
        paths["combined"] = density_metrics(
            truth, [labels[int(i)] for i in combined.argmax(axis=1)], labels, patients=patients
        )
        result["nested"] = nested
        if repeats > 1:
            result["repeats"] = _spread(accuracy, config.seed)
        mode = f"{folds}-fold patient cross-validation"
        if oof.policies:
            mode += f", each fold's model as train-density makes it ({as_trained} policy folds)"
        if predictions is not None:
            write_predictions(predictions, rows, runs)
    first = next(iter(paths.values()))
    return {"mode": mode, "arch": config.arch if model_dir is None else None,
            "image_size": config.image_size if model_dir is None else None,
            "ensemble": config.ensemble if model_dir is None else None,
            "n": first["n"], "labels": first["labels"], "majority_rate": first["majority_rate"],
            "paths": paths, "exams": exam_metrics(rows, probabilities, labels),
            **result}  # fmt: skip


def _as_trained_scores(run: OutOfFold, t: NDArray[Any]) -> dict[str, Any]:
    """The combined probabilities of cross-validation ``as_trained``: each fold's rows under the
    policy chosen for that fold's model, the rules, and every path's accuracy per fold."""
    combined = np.zeros_like(run.probabilities["convnext"])
    for fold, policy in enumerate(run.policies):
        scored = run.fold == fold
        combined[scored] = apply_policy(
            policy, {path: probs[scored] for path, probs in run.probabilities.items()},
            run.vote_margin[scored], run.vote_abstain[scored],
        )  # fmt: skip
    scores = outer_fold_scores(t, {"combined": combined, **run.probabilities}, run.fold)
    return {"combined": combined, "rules": [p["rule"] for p in run.policies], "scores": scores}


def write_predictions(
    path: Path, rows: Sequence[ManifestRow], runs: Sequence[tuple[int, OutOfFold, NDArray[Any]]]
) -> None:
    """Write cross-validation's out-of-fold rows as a CSV table (:class:`TableWriter`: whole or
    not at all): per image and repeat, its manifest row, case, patient and view, the true label,
    the fold seed and fold, each path's probability of each label (``convnext_F``, …,
    ``combined_D``: the nested policy's), and the vote's margin and abstention."""
    labels = runs[0][1].labels
    scored = [f"{p}_{label}" for p in (*runs[0][1].probabilities, "combined") for label in labels]
    columns = [("row", "int64"), ("case_id", "string"), ("patient_id", "string"),
               ("view", "string"), ("truth", "string"), ("fold_seed", "int64"),
               ("fold", "int64"), *((name, "float64") for name in scored),
               ("vote_margin", "float64"), ("vote_abstain", "bool")]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = TableWriter(path, columns, "csv")
    try:
        for seed, run, combined in runs:
            table = np.concatenate([*run.probabilities.values(), combined], axis=1)
            table = np.round(table.astype(np.float64), 6)  # a float32 rounded prints 0.20000000298…
            for i, row in enumerate(rows):
                writer.append(writer.encode([
                    row.number, row.case_id, row.patient_id, row.view.value if row.view else "",
                    run.truth[i], seed, int(run.fold[i]), *table[i].tolist(),
                    round(float(run.vote_margin[i]), 6), bool(run.vote_abstain[i]),
                ]))  # fmt: skip
        commit_tables((writer,))
    finally:
        writer.discard()  # nothing once committed


def _spread(accuracy: dict[str, list[float]], seed: int) -> dict[str, Any]:
    """Each path's accuracy per repeat (fold seeds ``seed``, ``seed + 1``, …), mean and sd."""
    return {
        "seeds": [seed + r for r in range(len(next(iter(accuracy.values()))))],
        "paths": {path: {"accuracy": values, "mean": float(np.mean(values)),
                         "sd": float(np.std(values, ddof=1))}
                  for path, values in accuracy.items()},
    }  # fmt: skip


def _opinion(
    path: str, row: ManifestRow, labels: list[str], probs: NDArray[np.float32]
) -> Assessment:
    """One view's assessment by one path alone."""
    best = int(probs.argmax())
    probabilities = dict(zip(labels, probs.tolist(), strict=True))
    decision = DensityDecision(labels[best], probabilities, path, float(probs[best]))
    return Assessment(decision, laterality=row.laterality)


def exam_metrics(
    rows: Sequence[ManifestRow],
    probabilities: dict[str, NDArray[np.float32]],
    labels: list[str],
) -> dict[str, Any]:
    """Each path's metrics per exam (``case_id``), decided by :func:`exam_density` as
    ``assess --exams`` does (a breast's probabilities are the mean of its views', by the
    manifest's laterality, views of unknown side counting as one breast; the exam takes the
    denser breast's label); an exam's truth is its denser labelled view."""

    rank = {label: i for i, label in enumerate(labels)}
    exams: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        exams.setdefault(row.case_id, []).append(i)
    truth = [labels[max(rank[str(rows[i].label)] for i in views)] for views in exams.values()]
    patients = [rows[views[0]].patient_id for views in exams.values()]
    paths = {}
    for path, probs in probabilities.items():
        predicted = [
            exam_density([_opinion(path, rows[i], labels, probs[i]) for i in views], labels).label
            for views in exams.values()
        ]  # fmt: skip
        paths[path] = density_metrics(truth, predicted, labels, patients=patients)
    return {"n": len(truth), "paths": paths}

"""Density heads on frozen embeddings: a linear probe and zero-shot prompt ensembles.

:class:`LinearProbe` is a scikit-learn logistic regression (standardised inputs, balanced class
weights) on the image vectors of any embedder, its regularisation chosen by patient-grouped
cross-validation on its own training data. It is saved as plain JSON (no pickle).

:class:`ZeroShotDensity` needs a cross-modal embedder (BiomedCLIP): every density class gets
an ensemble of English prompts (templates × descriptions, ``data/density_prompts.json``), whose
text vectors are averaged into one class vector; an image's class probabilities are the softmax
of its scaled cosine similarity to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import InputError, ModelLoadError

__all__ = ["ImageTextModel", "LinearProbe", "ZeroShotDensity", "density_prompts"]

logger = logging.getLogger(__name__)

PROBE_FORMAT = "mammosearch.linear_probe.v1"
PROBE_FILE = "probe.json"
_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
_LOGIT_SCALE = 100.0  # CLIP's trained temperature when the model does not expose its own


class ImageTextModel(Protocol):
    """What zero-shot needs of an embedder (``mammosearch.embeddings``; not imported here)."""

    name: str
    model_id: str
    dim: int
    supports_cross_modal: bool

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def _unit(vectors: NDArray[Any]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def _held_out_log_loss(
    estimator: Any, z: NDArray[np.float64], y: NDArray[np.int_], *, seen: Sequence[int]
) -> float:
    """Negative log-loss of a fold's held-out rows over every class ``seen`` in the training data.

    A fold whose held-out rows lack a class still scores it (``labels``); a class that the
    fold's own training rows lack (all its patients held out) gets probability 0, which
    scikit-learn clips to its float epsilon: the same cost for every ``C``, where its
    ``predict_proba`` would have too few columns and the fold would score NaN for all.
    """
    from sklearn.metrics import log_loss

    probabilities = np.zeros((len(z), len(seen)))
    probabilities[:, np.searchsorted(seen, estimator.classes_)] = estimator.predict_proba(z)
    return -float(log_loss(y, probabilities, labels=list(seen)))


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float32]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: NDArray[np.float32] = (shifted / shifted.sum(axis=1, keepdims=True)).astype(
        np.float32
    )
    return probabilities


@dataclass(slots=True)
class LinearProbe:
    """Logistic regression on frozen image vectors.

    Attributes:
        labels: The label set in its order (columns of the probabilities).
        mean, scale: The input standardisation.
        coef, intercept: The fitted weights (``classes×dim`` and ``classes``).
        info: Embedder, regularisation and training figures (stored with the probe).
    """

    labels: list[str]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef: NDArray[np.float64]
    intercept: NDArray[np.float64]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        vectors: NDArray[np.float32],
        truth: Sequence[str],
        patients: Sequence[str],
        labels: Sequence[str],
        *,
        folds: int = 5,
        seed: int = 0,
        embedder: Any | None = None,
    ) -> LinearProbe:
        """Fit on ``n×dim`` vectors; the inverse regularisation ``C`` is chosen by
        patient-grouped ``folds``-fold cross-validation (log-loss) on these same rows.

        Raises:
            InputError: Lengths differ, a label is outside ``labels``, or one class only.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        x = np.asarray(vectors, dtype=np.float64)
        if not (len(x) == len(truth) == len(patients)):
            raise InputError("vectors, labels and patients differ in length")
        unknown = set(truth) - set(labels)
        if unknown:
            raise InputError(f"labels outside the label set: {sorted(unknown)}")
        if len(set(truth)) < 2:
            raise InputError("a probe needs images of at least two density classes")
        y = np.asarray([list(labels).index(t) for t in truth])
        scaler = StandardScaler().fit(x)
        z = scaler.transform(x)
        groups = np.asarray(patients)
        smallest = min(len(set(groups[y == c])) for c in set(y.tolist()))
        n_splits = min(folds, smallest, len(set(groups)))
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        # one BLAS thread: on these small matrices a second one only waits for its share, and
        # on a machine busy with other work waiting made the fit 3-5x slower
        with threadpool_limits(limits=1, user_api="blas"):
            if n_splits >= 2:
                splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                scorer = partial(_held_out_log_loss, seen=sorted(set(y.tolist())))
                search = GridSearchCV(model, {"C": list(_CS)}, scoring=scorer,
                                      cv=list(splitter.split(z, y, groups)))  # fmt: skip
                model = search.fit(z, y).best_estimator_
            else:  # too few patients per class to cross-validate: sklearn's default strength
                model.fit(z, y)
        c_value = float(model.C)
        coef = np.zeros((len(labels), x.shape[1]))
        intercept = np.full(len(labels), -1e9)  # a class with no training image is never chosen
        w, b = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn keeps one row: the second class against the first
            w, b = np.vstack([np.zeros_like(w), w]), np.concatenate([[0.0], b])
        coef[model.classes_], intercept[model.classes_] = w, b
        info: dict[str, Any] = {"C": c_value, "n": len(y), "folds": n_splits}
        if embedder is not None:
            info |= {"embedder": embedder.name, "model_id": embedder.model_id, "dim": embedder.dim}
        return cls(list(labels), scaler.mean_, scaler.scale_, coef, intercept, info)

    def predict_proba(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Probabilities ``n×len(labels)``.

        Raises:
            InputError: The vectors have another length than the probe was fitted on.
        """
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise InputError(
                f"the probe takes {self.coef.shape[1]}-dimensional vectors, got shape {x.shape}",
                fix="embed the images with the embedder the probe was fitted on",
            )
        return _softmax(((x - self.mean) / self.scale) @ self.coef.T + self.intercept)

    def predict(self, vectors: NDArray[np.float32]) -> list[str]:
        """The most probable label of each vector."""
        return [self.labels[int(i)] for i in self.predict_proba(vectors).argmax(axis=1)]

    def save(self, directory: Path) -> Path:
        """Write ``probe.json`` (weights and provenance) into ``directory``; returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        body = {"format": PROBE_FORMAT, "labels": self.labels, "info": self.info,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}  # fmt: skip
        path = directory / PROBE_FILE
        path.write_text(json.dumps(body), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> LinearProbe:
        """Load what :meth:`save` wrote.

        Raises:
            ModelLoadError: No probe there, or another format.
        """
        path = directory / PROBE_FILE
        if not path.is_file():
            raise ModelLoadError(
                f"no linear probe in {directory.name!r}",
                fix="write one with 'mammosearch evaluate probe MANIFEST --save DIR'",
            )
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != PROBE_FORMAT:
            raise ModelLoadError(f"{path.name} in {directory.name!r} is another kind of model")
        return cls(
            list(body["labels"]), np.asarray(body["mean"]), np.asarray(body["scale"]),
            np.asarray(body["coef"]), np.asarray(body["intercept"]), dict(body.get("info", {})),
        )  # fmt: skip


def density_prompts(labels: Sequence[str], path: Path | None = None) -> dict[str, list[str]]:
    """The prompt ensemble of each label: every template filled with every description.

    Args:
        labels: The label set (BI-RADS A–D or MIAS F/G/D with the bundled prompts).
        path: A JSON file of the bundled file's shape, or ``{label: [prompt, ...]}``.

    Raises:
        InputError: The prompts do not cover the labels.
    """
    if path is None:
        text = resources.files("mammosearch.classifiers").joinpath("data", "density_prompts.json")
        body = json.loads(text.read_text(encoding="utf-8"))
    else:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read prompts file {path.name} ({type(e).__name__})") from e
    if "label_sets" not in body:
        sets: dict[str, Mapping[str, list[str]]] = {"custom": body}
        templates = ["{}"]
    else:
        sets, templates = body["label_sets"], list(body.get("templates", ["{}"]))
    for descriptions in sets.values():
        if set(labels) <= set(descriptions):
            return {lab: [t.format(d) for t in templates for d in descriptions[lab]]
                    for lab in labels}  # fmt: skip
    raise InputError(
        f"no zero-shot prompts for the labels {list(labels)}",
        fix='pass --prompts FILE with {"LABEL": ["prompt", ...], ...} for every label',
    )


class ZeroShotDensity:
    """Density by similarity of image vectors to per-class prompt ensembles.

    Args:
        embedder: A cross-modal embedder (image and text in one space).
        labels: The label set.
        prompts: ``{label: [prompt, ...]}``; default: :func:`density_prompts`.

    Raises:
        InputError: The embedder has no shared image-text space, or prompts are missing.
    """

    def __init__(
        self,
        embedder: ImageTextModel,
        labels: Sequence[str],
        prompts: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not embedder.supports_cross_modal:
            raise InputError(
                f"zero-shot needs an image-text model; {embedder.name} has no shared space",
                fix="use --embedder biomedclip.v1 (with --model local-dir:PATH offline)",
            )
        self.labels = list(labels)
        self.prompts = {k: list(v) for k, v in (prompts or density_prompts(labels)).items()}
        missing = [lab for lab in self.labels if not self.prompts.get(lab)]
        if missing:
            raise InputError(f"no prompts for {missing}")
        self.embedder = embedder
        self.logit_scale = float(getattr(embedder, "logit_scale", _LOGIT_SCALE))
        rows = [_unit(embedder.embed_texts(self.prompts[lab]).mean(axis=0, keepdims=True))
                for lab in self.labels]  # fmt: skip
        self.class_vectors = np.concatenate(rows).astype(np.float32)
        logger.info("zero-shot: %d classes, %d prompts", len(self.labels),
                    sum(len(p) for p in self.prompts.values()))  # fmt: skip

    def predict_proba(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Probabilities ``n×len(labels)`` of image vectors from the same embedder."""
        sims = np.asarray(vectors, dtype=np.float64) @ self.class_vectors.T.astype(np.float64)
        return _softmax(self.logit_scale * sims)

    def predict(self, vectors: NDArray[np.float32]) -> list[str]:
        """The most probable label of each image vector."""
        return [self.labels[int(i)] for i in self.predict_proba(vectors).argmax(axis=1)]

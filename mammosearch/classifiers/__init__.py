"""Density classifiers and their metrics.

:class:`ConvNeXtDensity` (image-only ConvNeXt, :func:`train_convnext`, :func:`cross_fitted`),
heads on frozen embeddings (:class:`LinearProbe`, :class:`ZeroShotDensity`), the assess policy
(:func:`decide`; chosen by :func:`choose_policy`, scored by :func:`nested_scores`) and the
clinical metrics every ``evaluate`` command reports (:func:`density_metrics`,
:func:`plot_confusion`). Saved models load through the classifiers registry
(:func:`load_density_model`, :func:`create_classifier`). Heavy libraries (torch, timm,
scikit-learn) load when a function needs them.
"""

from mammosearch.classifiers.base import (
    DensityClassifier,
    create_classifier,
    list_classifiers,
    load_density_model,
)
from mammosearch.classifiers.convnext import (
    ConvNeXtDensity,
    TrainConfig,
    cross_fitted,
    train_convnext,
)
from mammosearch.classifiers.heads import LinearProbe, ZeroShotDensity, density_prompts
from mammosearch.classifiers.metrics import density_metrics, plot_confusion
from mammosearch.classifiers.policy import decide
from mammosearch.classifiers.selection import choose_policy, nested_scores

__all__ = [
    "ConvNeXtDensity",
    "DensityClassifier",
    "create_classifier",
    "cross_fitted",
    "list_classifiers",
    "load_density_model",
    "LinearProbe",
    "TrainConfig",
    "ZeroShotDensity",
    "choose_policy",
    "decide",
    "density_metrics",
    "density_prompts",
    "nested_scores",
    "plot_confusion",
    "train_convnext",
]

"""The density-model interface, and loading a saved model through the classifiers registry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mammosearch.accel import Images
from mammosearch.errors import ModelLoadError
from mammosearch.registry import classifiers

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DensityClassifier",
    "create_classifier",
    "list_classifiers",
    "load_density_model",
]

DEFAULT_CLASSIFIER = "convnext_density.v1"  # what a model directory without a name holds
_CONFIG = "config.json"


@runtime_checkable
class DensityClassifier(Protocol):
    """A trained density model: label probabilities for breast-cropped images.

    Attributes:
        labels: The label set in its order (the probability columns).
        config: Architecture, preprocessing, training figures and the tuned assess policy
            (``config["policy"]``).
        probe: A :class:`~mammosearch.classifiers.heads.LinearProbe` fitted beside it on the
            vectors of the embedder its ``info["embedder"]`` names, or ``None``.
        image_size: The input side it resizes prepared images to.
    """

    labels: list[str]
    config: dict[str, Any]
    probe: Any | None

    @property
    def image_size(self) -> int:
        """The input side it resizes prepared images to."""
        ...

    def predict_proba(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Probabilities ``n×len(labels)`` for breast-cropped H×W images in [0, 1]."""
        ...

    def inputs(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """The model's inputs of prepared images: the CPU part of :meth:`predict_proba`, which
        worker processes may compute."""
        ...

    def predict_inputs(self, inputs: Images) -> NDArray[np.float32]:
        """Probabilities of :meth:`inputs` (the device's part)."""
        ...

    def save(self, directory: Path) -> None:
        """Write the model to a directory that :func:`load_density_model` reads."""
        ...


def _register_builtins() -> None:
    from mammosearch.classifiers import convnext  # noqa: F401 - registers its factory


def list_classifiers() -> list[str]:
    """Registered density-classifier names."""
    _register_builtins()
    return classifiers.names()


def create_classifier(name: str, /, **options: Any) -> DensityClassifier:
    """Create (load) a registered density classifier.

    Raises:
        RegistryError: Unknown name; the message lists the registered ones.
        ModelLoadError: The model cannot be loaded.
    """
    _register_builtins()
    made: DensityClassifier = classifiers.create(name, **options)
    return made


def load_density_model(directory: Path) -> DensityClassifier:
    """The density model saved in ``directory`` (its ``config.json`` names its classifier).

    Raises:
        ModelLoadError: No density model there.
    """
    config_path = directory / _CONFIG
    name = DEFAULT_CLASSIFIER
    if config_path.is_file():
        try:
            name = str(json.loads(config_path.read_text(encoding="utf-8")).get("classifier")
                       or DEFAULT_CLASSIFIER)  # fmt: skip
        except (OSError, ValueError, AttributeError) as e:
            raise ModelLoadError(
                f"the density model's {_CONFIG} cannot be read ({type(e).__name__})",
                fix="train it again with 'mammosearch train-density'",
            ) from None
    return create_classifier(name, directory=directory)

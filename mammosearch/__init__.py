"""mammosearch: mammography report normalization, similar-case search and density assessment.

Importing the package is cheap: torch, faiss, spaCy and Gradio load inside the subpackages
that need them. Subpackages: :mod:`mammosearch.nlp` (reports → BI-RADS terms),
:mod:`mammosearch.embeddings`, :mod:`mammosearch.index`, :mod:`mammosearch.classifiers`,
:mod:`mammosearch.ui`; the shared core is :mod:`mammosearch.records`,
:mod:`mammosearch.config`, :mod:`mammosearch.errors`, :mod:`mammosearch.registry`,
:mod:`mammosearch.imaging` and :mod:`mammosearch.pipeline`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mammosearch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

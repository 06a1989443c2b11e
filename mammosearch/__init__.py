"""mammosearch: mammography report normalization, similar-case search and density assessment.

Importing the package is cheap: torch, faiss, spaCy and Gradio load inside the subpackages
that need them. Subpackages: :mod:`mammosearch.nlp` (reports → BI-RADS terms),
:mod:`mammosearch.embeddings`, :mod:`mammosearch.index`, :mod:`mammosearch.classifiers`,
:mod:`mammosearch.ui`; the shared core is :mod:`mammosearch.records`,
:mod:`mammosearch.config`, :mod:`mammosearch.errors`, :mod:`mammosearch.registry`,
:mod:`mammosearch.imaging` and :mod:`mammosearch.pipeline`.

The top level exports ``__version__`` only (``__all__``); the helper that reads it is deleted, so
``dir(mammosearch)`` shows no name that is not part of the API (a test holds this).
"""

import importlib.metadata as _metadata

try:
    __version__ = _metadata.version("mammosearch")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
    __version__ = "0.0.0+unknown"
del _metadata  # the namespace holds the API only

__all__ = ["__version__"]

"""Report text → :class:`~mammosearch.records.NormalizedReport` (ACR BI-RADS terms).

Language detection, sections, breast composition and BI-RADS assessment with evidence spans,
for English and Spanish reports in any house style. The rules and lexicons are JSON data in
``mammosearch/nlp/data``; the pipeline is also available as spaCy components
(:func:`build_pipeline`).

Example:
    >>> from mammosearch.nlp import normalize
    >>> r = normalize("MAMAS HETEROGÉNEAMENTE DENSAS (ACR tipo c). BI-RADS 2.", id="r1")
    >>> (r.language, r.density.category.value, r.birads.category.value)
    ('es', 'C', '2')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from mammosearch.nlp._decode import decode_report_bytes
from mammosearch.nlp.language import SUPPORTED_LANGUAGES, detect_language
from mammosearch.nlp.normalizer import Normalizer, ReportInput, report_id
from mammosearch.records import NormalizedReport

__all__ = [
    "SUPPORTED_LANGUAGES",
    "Normalizer",
    "ReportInput",
    "build_pipeline",
    "decode_report_bytes",
    "detect_language",
    "normalize",
    "normalize_many",
    "report_id",
]


@cache
def _default() -> Normalizer:
    return Normalizer()


def normalize(text: str | bytes, id: str | None = None) -> NormalizedReport:
    """Normalize one report with the default :class:`Normalizer`.

    Raises:
        ReportParseError: ``text`` is not text or bytes, or is too long; its subclass
            ReportDecodeError for bytes that are not text.
    """
    return _default().normalize(text, id)


def normalize_many(
    texts: Iterable[ReportInput], *, n_process: int = 1, batch_size: int = 64
) -> Iterator[NormalizedReport]:
    """Stream reports (texts or ``(id, text)`` pairs) in input order; failures carry ``error``."""
    return _default().normalize_many(texts, n_process=n_process, batch_size=batch_size)


def build_pipeline(lang: str = "en") -> Any:
    """A blank spaCy pipeline (``spacy.Language``) with the mammosearch tokenizer and
    components; spaCy is imported only when this is called."""
    from mammosearch.nlp.components import build_pipeline as _build

    return _build(lang)

"""Report language (English or Spanish) with lingua, restricted to the two languages served."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

__all__ = ["SUPPORTED_LANGUAGES", "detect_language"]

SUPPORTED_LANGUAGES = ("en", "es")
_SAMPLE_CHARS = 400
_MIN_CONFIDENCE = 0.75
_MIN_WORDS = 2
# Codes and tokens that say nothing about the language ("BI-RADS 2", "ACR C", "4.5 cm").
_NEUTRAL = re.compile(r"\b(?:bi-?rads|birads|acr|[a-d]|[0-9ivx]+[a-c]?|mm|cm|cc|mlo)\b", re.I)
# the same on lower-cased ASCII text, where it matches the same spans about twice as fast
_NEUTRAL_LOWER = re.compile(_NEUTRAL.pattern)
_WORD = re.compile(r"[^\W\d_]{2,}")
# Frequent function words that exist in one language only (not "no", "a", "se", "de"…).
_EN_MARKERS = frozenset(
    [
        "the",
        "and",
        "of",
        "is",
        "are",
        "with",
        "in",
        "there",
        "breast",
        "breasts",
        "or",
        "seen",
        "both",
    ]
)
_ES_MARKERS = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "y",
        "con",
        "del",
        "mama",
        "mamas",
        "ambas",
        "sin",
        "observan",
        "observa",
    ]
)
_CLEAR = 4  # markers of one language needed for a decision without lingua
_MARGIN = 4  # ... and at least this many times more than the other language's


@cache
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder

    return (
        LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.SPANISH)
        .with_low_accuracy_mode()
        .build()
    )


def detect_language(text: str) -> str | None:
    """The report's dominant language, ``"en"`` or ``"es"``, or ``None`` when unclear.

    A report of codes only ("BIRADS 2 ACR C") or too few words is ``None``; a mixed report
    gets its dominant language. Clear cases are decided by language-specific function words
    in the first characters; lingua (restricted to English and Spanish) decides the others.

    Example:
        >>> detect_language("Las mamas son heterogéneamente densas.")
        'es'
    """
    sample = text[:_SAMPLE_CHARS]
    if sample.isascii():
        words = _WORD.findall(_NEUTRAL_LOWER.sub(" ", sample.lower()))
    else:
        words = _WORD.findall(_NEUTRAL.sub(" ", sample).lower())
    if len(words) < _MIN_WORDS:
        return None
    # Clear-cut reports are decided by their function words; lingua decides the rest.
    en = sum(map(_EN_MARKERS.__contains__, words))
    es = sum(map(_ES_MARKERS.__contains__, words))
    if en >= _CLEAR and es * _MARGIN <= en:
        return "en"
    if es >= _CLEAR and en * _MARGIN <= es:
        return "es"
    top = _detector().compute_language_confidence_values(sample)[0]
    if top.value < _MIN_CONFIDENCE:
        return None
    return "en" if top.language.name == "ENGLISH" else "es"

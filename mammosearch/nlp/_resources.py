"""Loading of the lexicon and rule files shipped in ``mammosearch/nlp/data``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from mammosearch.errors import ConfigError

__all__ = ["alternation", "compile_pattern", "load_data", "union", "word_matches"]


@cache
def _read(name: str) -> str:
    return (
        resources.files("mammosearch.nlp")
        .joinpath("data")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def load_data(name: str) -> dict[str, Any]:
    """Parse a shipped JSON data file (a fresh copy each call, safe to mutate)."""
    data = json.loads(_read(name))
    if not isinstance(data, dict):  # pragma: no cover - shipped files are objects
        raise ConfigError(f"data file {name} must hold a JSON object")
    return data


def compile_pattern(pattern: str, *, source: str) -> re.Pattern[str]:
    """Compile a regular expression of a data file, naming the file when it is invalid."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(
            f"invalid pattern in {source}: {e}", fix="correct the regular expression"
        ) from e


def word_matches(
    pattern: re.Pattern[str], text: str, pos: int = 0, endpos: int | None = None
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of ``pattern`` that start at a word boundary.

    Data patterns start with a literal (no look-behind), which lets ``re`` scan for them
    quickly; the boundary is checked here, and a rejected match is searched again one
    character later so that a valid match inside it is not lost.
    """
    end = len(text) if endpos is None else endpos
    while pos < end:
        m = pattern.search(text, pos, end)
        if m is None:
            return
        start = m.start()
        if start > 0 and text[start - 1].isalnum():
            pos = start + 1
            continue
        yield m
        pos = max(m.end(), start + 1)


def union(patterns: list[str], *, named: str | None = None) -> str:
    """One regex matching any of ``patterns`` (``named``: group ``{named}{i}`` per pattern).

    An empty list gives a pattern that never matches (not the empty pattern, which would
    match everywhere).
    """
    if not patterns:
        return "(?!)"
    if named:
        return "|".join(f"(?P<{named}{i}>{p})" for i, p in enumerate(patterns))
    return "|".join(f"(?:{p})" for p in patterns)


def alternation(phrases: list[str]) -> str:
    """A regex alternation of literal phrases, longest first, spaces matching any blank run."""
    ordered = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)

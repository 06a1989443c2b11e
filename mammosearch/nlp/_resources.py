"""Loading of the lexicon and rule files shipped in ``mammosearch/nlp/data``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from mammosearch.errors import ConfigError

__all__ = [
    "alternation",
    "at_line_start",
    "compile_pattern",
    "literal_gate",
    "load_data",
    "union",
    "word_matches",
]


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
    character later so that a valid match inside it is not lost. A pattern that must consume
    one of a few literal strings (:func:`literal_gate`) is not searched at all when none of
    them is in the window: the same matches, without ``re`` trying every position of a
    pattern that starts with an alternation.
    """
    end = len(text) if endpos is None else endpos
    gate = literal_gate(pattern)
    if gate:
        lo = max(pos, 0)
        for literal in gate:
            if text.find(literal, lo, end) >= 0:
                break
        else:
            return  # no literal that every match consumes is in the window: no match
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


_GATE_MIN_CHARS = 3  # a shorter literal is in nearly every report: not worth a look
_GATE_MAX_LITERALS = 8  # more alternatives cost more to look for than the search saves
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


@lru_cache(maxsize=4096)
def literal_gate(pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Literal strings one of which every match of ``pattern`` consumes (empty: none known).

    Read from the parsed pattern: a run of literal characters in the top-level sequence, or
    in a group or a repeat that must match at least once, and for an alternation one such
    literal per branch. Look-arounds, case-insensitive parts and anything unknown give no
    literal, so the gate is always a necessary condition of a match.

    Example:
        >>> literal_gate(re.compile(r"(?:almost|nearly) entirely fat(?:ty)?"))
        (' entirely fat',)
        >>> literal_gate(re.compile(r"dense|thick"))
        ('dense', 'thick')
    """
    if pattern.flags & re.IGNORECASE:
        return ()
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern.pattern, pattern.flags)
        if parsed.state.flags & re.IGNORECASE:
            return ()
        gate = _sequence_gate(parsed)
    except Exception:  # an unexpected parser (another Python): no gate, plain search
        return ()
    if gate is None or min(map(len, gate)) < _GATE_MIN_CHARS or len(gate) > _GATE_MAX_LITERALS:
        return ()
    return gate


def _gate_rank(gate: tuple[str, ...]) -> tuple[bool, int, int]:
    shortest = min(map(len, gate))
    return shortest >= _GATE_MIN_CHARS, -len(gate), shortest


def _sequence_gate(items: Any) -> tuple[str, ...] | None:
    """The best gate of a parsed sequence (see :func:`literal_gate`), or None."""
    best: tuple[str, ...] | None = None
    run: list[str] = []

    def consider(gate: tuple[str, ...] | None) -> None:
        nonlocal best
        if gate and all(gate) and (best is None or _gate_rank(gate) > _gate_rank(best)):
            best = gate

    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            run.append(chr(av))
            continue
        consider(("".join(run),) if run else None)
        run = []
        if name == "SUBPATTERN":
            if not av[1] & re.IGNORECASE:  # (group, add_flags, del_flags, content)
                consider(_sequence_gate(av[3]))
        elif name in _REPEATS:
            if av[0] >= 1:  # (min, max, content)
                consider(_sequence_gate(av[2]))
        elif name == "ATOMIC_GROUP":
            consider(_sequence_gate(av))
        elif name == "BRANCH":
            branches = [_sequence_gate(b) for b in av[1]]
            if all(branches):
                found = list(dict.fromkeys(x for b in branches if b for x in b))
                # a literal that holds another one adds nothing to the look-up
                consider(tuple(x for x in found if not any(y != x and y in x for y in found)))
    consider(("".join(run),) if run else None)
    return best


def at_line_start(pattern: re.Pattern[str]) -> bool:
    """Whether every match of ``pattern`` starts at the start of a line.

    True for a pattern that opens with ``(?:^|(?<=\\n))`` and goes on (the label-line patterns
    of the data files): searched within one line, it matches at the line's start or nowhere.

    Example:
        >>> at_line_start(re.compile(r"(?:^|(?<=\\n))[ \\t]*signed by"))
        True
        >>> at_line_start(re.compile(r"(?:^|(?<=\\n))signed|by"))
        False
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        items = list(_parser.parse(pattern.pattern, pattern.flags))
        if len(items) < 2 or str(items[0][0]) != "BRANCH":
            return False
        branches = [[(str(op), str(av)) for op, av in b] for b in items[0][1][1]]
    except Exception:  # an unexpected parser: not known to be anchored
        return False
    return branches == [[("AT", "AT_BEGINNING")], [("ASSERT", "(-1, [(LITERAL, 10)])")]]

"""Shortcuts around data patterns (literal gates, line anchors, the ASCII language markers):
each finds what the plain search finds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from mammosearch.nlp._resources import at_line_start, literal_gate, word_matches
from mammosearch.nlp.engine import ReportEngine
from mammosearch.samples.reports import generate_reports


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        (r"(?:almost|nearly) entirely fat(?:ty)?", (" entirely fat",)),
        (r"dense|thick", ("dense", "thick")),
        (r"(?P<val>spiculated) mass", ("spiculated",)),  # the longer literal wins
        (r"b\W{0,2}i\W{0,2}r", ()),  # no literal of three characters
        (r"(?:grasa)?\s*mamas", ("mamas",)),  # an optional group gives nothing
        (r"(?:x|yz)+abc", ("abc",)),
        (r"(?=mass)\w+", ()),  # a look-ahead is not consumed
        (r"(?i)mass", ()),  # case-insensitive: no exact literal
        (r"(?i:mass) lesion", (" lesion",)),
        (r"(?:calcification|)\s+x", ()),  # an empty branch: nothing is required
        ("mass|node|cyst|scar|clip|duct|skin|wall|fat|lobe|hilum|rim", ()),  # too many to look for
        (r"word0|word1|word2", ("word",)),  # the parser keeps the common prefix
    ],
)
def test_gates(pattern: str, gate: tuple[str, ...]) -> None:
    assert literal_gate(re.compile(pattern)) == gate


def _plain(pattern: re.Pattern[str], text: str, pos: int = 0, endpos: int | None = None) -> Any:
    """word_matches without the gate (what it did before the gate)."""
    end = len(text) if endpos is None else endpos
    out = []
    while pos < end:
        m = pattern.search(text, pos, end)
        if m is None:
            break
        start = m.start()
        if start > 0 and text[start - 1].isalnum():
            pos = start + 1
            continue
        out.append(m.span())
        pos = max(m.end(), start + 1)
    return out


def _patterns(obj: Any, depth: int = 0) -> Iterator[re.Pattern[str]]:
    if isinstance(obj, re.Pattern):
        yield obj
    elif depth < 4 and isinstance(obj, list | tuple):
        for x in obj:
            yield from _patterns(x, depth + 1)
    elif depth < 4 and hasattr(obj, "__slots__") and not isinstance(obj, str):
        for name in obj.__slots__:
            yield from _patterns(getattr(obj, name, None), depth + 1)


def test_gated_search_finds_what_the_plain_search_finds() -> None:
    engine = ReportEngine()
    patterns: list[re.Pattern[str]] = []
    for stage in (engine.density, engine.birads, engine.findings, engine.recommendation):
        for value in vars(stage).values():
            patterns += _patterns(value)
    gated = [p for p in dict.fromkeys(patterns) if literal_gate(p)]
    assert len(gated) >= 20  # the stages' data patterns are mostly gated
    texts = [r.text.lower() for r in generate_reports(60, seed=4)]
    texts += [
        "mamas predominantemente grasas. patron fibroglandular disperso, tipo b.",
        "almost entirely fatty breasts; acr a. heterogeneously dense tissue on the left",
        "densidad: heterogenea. composicion - grasa. bi-rads 2",
        "xheterogeneously dense; ultra-dense; densidad mamaria tipo 3",
    ]
    for pattern in gated:
        for text in texts:
            got = [m.span() for m in word_matches(pattern, text)]
            assert got == _plain(pattern, text), pattern.pattern[:60]
            middle = len(text) // 2
            got = [m.span() for m in word_matches(pattern, text, middle - 40, middle + 40)]
            assert got == _plain(pattern, text, middle - 40, middle + 40), pattern.pattern[:60]


@pytest.mark.parametrize(
    ("pattern", "anchored"),
    [
        (r"(?:^|(?<=\n))[ \t]*(?:signed|firmado)\b[^\n]*", True),
        (r"(?:^|(?<=\n))signed|by", False),  # the second branch is not anchored
        (r"(?:^|(?<=\n))", False),  # nothing after the anchor
        (r"\b(?:signed by|read by)\b[^\n.]*", False),
        (r"(?:^|(?<=\r))signed", False),
    ],
)
def test_at_line_start(pattern: str, anchored: bool) -> None:
    assert at_line_start(re.compile(pattern)) is anchored


def test_anchored_label_lines_match_at_the_line_start_or_nowhere() -> None:
    patterns = [p for p, anchored in ReportEngine().findings._label_lines if anchored]
    assert patterns
    text = "Informe\n  Firmado: Dra. Ana Ruiz\nsigned by the reader\nnombre y fecha\n\nDr. X"
    text = text.lower()
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    for pattern in patterns:
        for start in starts:
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            found = [m.span() for m in pattern.finditer(text, start, end)]
            m = pattern.match(text, start, end)
            assert found == ([m.span()] if m else [])


def test_language_markers_read_the_same_on_ascii_text() -> None:
    from mammosearch.nlp.language import _NEUTRAL, _NEUTRAL_LOWER

    for text in (
        "BI-RADS IVb. ACR C, MLO and CC views; 4.5 cm MASS at 2 o'clock. Bi-Rads 0",
        "Birads: 2. Breast composition: b. IIIa III-c a-d",
        *(r.text[:400] for r in generate_reports(40, seed=6) if r.text[:400].isascii()),
    ):
        assert _NEUTRAL.sub(" ", text).lower() == _NEUTRAL_LOWER.sub(" ", text.lower())

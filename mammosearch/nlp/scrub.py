"""PHI scrubbing of report text (English and Spanish), before anything is stored or shown.

An allow-list design (after Philter, Norgeot et al., npj Digital Medicine 2020), offline:

1. Pattern recognizers take what has a shape of its own: dates, e-mail and web addresses, phone
   numbers, ages over 89, institutions and street addresses (:mod:`._phi_patterns`).
2. The text is cut into stretches (lines, sentences, runs between wide gaps). A stretch is an
   *identifier zone* when it carries no clinical lexicon word (headers, footers, signature
   blocks, a name on a line of its own) or is the value of a ``label:`` that is not a report
   section, and everything after a signature cue ("Reported by", "Firmado por") is one too. In
   an identifier zone every word that is not on the allow-list (:mod:`._allowlist`: the
   project's lexicons, report-structure words, and general English and Spanish vocabulary from
   which every personal name of several name lists was taken out) is removed, and so is every
   number that is not a measurement, a clock position, a BI-RADS or density category, a count
   of years (an age of 90 or more becomes ``90+``) or a view code.
3. In clinical text, capitalised words that are not on the allow-list next to a person cue
   (titles, "la paciente", "Mrs", "refiere", "acompañada de") are names, as are capitalised
   words off the allow-list in mid-sentence; a number of five digits or more that measures
   nothing, and a code of letters and three digits or more, are identifiers.

Each hit is replaced by a typed placeholder (``[NAME]``, ``[ID]``, ``[DATE]`` ...), so the
BI-RADS content around it is untouched and the normalizer runs on the scrubbed text: its
evidence spans index the text that is stored. Thread-safe; loading the lists takes about 0.1 s
once per process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

from mammosearch.nlp._phi_patterns import KEEP, gated_patterns, gates, line_windows, lowered
from mammosearch.nlp._phi_spans import address_tails, institutions
from mammosearch.nlp._phi_zones import find_zoned

__all__ = ["PHI_KINDS", "PhiSpan", "ScrubResult", "Scrubber", "score_scrubbing", "scrub"]

PHI_KINDS = ("NAME", "ID", "DATE", "AGE", "PHONE", "EMAIL", "ADDRESS", "INSTITUTION", "URL")
_PLACEHOLDER = {kind: f"[{kind}]" for kind in PHI_KINDS} | {"AGE": "90+"}
# overlapping spans become one, of the kind of the longest, then of the kind ranked higher here
_PRIORITY = {"EMAIL": 9, "URL": 8, "DATE": 7, "AGE": 6, "PHONE": 5, "ADDRESS": 4,
             "INSTITUTION": 3, "ID": 2, "NAME": 1}  # fmt: skip
_TRIM = " \t\n.,;:)(]["


@dataclass(frozen=True, slots=True)
class PhiSpan:
    """One scrubbed span: its kind, where it was in the original text and where its placeholder
    is in the scrubbed text (no value)."""

    kind: str
    start: int
    end: int
    new_start: int
    new_end: int


@dataclass(frozen=True, slots=True)
class ScrubResult:
    """The scrubbed text and what was replaced."""

    text: str
    spans: tuple[PhiSpan, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Scrubbed spans per kind."""
        return dict(Counter(span.kind for span in self.spans))

    def map_offset(self, offset: int) -> int:
        """An offset in the original text → the scrubbed text (inside a replaced span: its
        placeholder's start)."""
        shift = 0
        for span in self.spans:
            if offset < span.start:
                break
            if offset < span.end:
                return span.new_start
            shift = span.new_end - span.end
        return offset + shift


class Scrubber:
    """Finds and replaces PHI in report text (thread-safe)."""

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, kind)`` of every PHI span, disjoint and in order.

        Args:
            text: One report's text.

        Returns:
            The spans to replace, sorted by start.
        """
        hits: list[tuple[int, int, str]] = []
        passed = gates(text)
        lower = lowered(text) if "street" in passed else None  # for the address anchors
        for kind, pattern, gate, anchor in gated_patterns():
            if gate is not None and gate not in passed:
                continue
            for low, high in line_windows(text, anchor, lower):
                for match in pattern.finditer(text, low, high):
                    start, end = match.span("v")
                    if kind == "PHONE" and sum(c.isdigit() for c in text[start:end]) < 7:
                        continue
                    hits.append((start, end, kind))
        keep = [m.span() for m in KEEP.finditer(text)]
        taken = _resolve(text, hits)
        found = _resolve(text, taken + find_zoned(text, taken, keep))
        return _resolve(text, address_tails(text, institutions(text, found)))

    def scrub(self, text: str) -> ScrubResult:
        """The text with every PHI span replaced by its placeholder.

        Args:
            text: One report's text.

        Returns:
            The scrubbed text and the replaced spans (kinds and offsets, no values).
        """
        pieces: list[str] = []
        spans: list[PhiSpan] = []
        at = 0
        length = 0
        for start, end, kind in self.find(text):
            pieces.append(text[at:start])
            length += start - at
            placeholder = _PLACEHOLDER[kind]
            spans.append(PhiSpan(kind, start, end, length, length + len(placeholder)))
            pieces.append(placeholder)
            length += len(placeholder)
            at = end
        pieces.append(text[at:])
        return ScrubResult("".join(pieces), tuple(spans))


def _resolve(text: str, hits: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Trimmed, disjoint spans: overlapping spans become one (nothing either covered is left
    out), of the kind of the longest (then the kind ranked higher); spans of one kind that
    touch are joined."""
    cleaned = []
    for found_start, found_end, kind in hits:
        start, end = found_start, found_end
        while start < end and text[start] in _TRIM and not (kind == "PHONE" and text[start] == "("):
            start += 1
        while end > start and text[end - 1] in _TRIM:
            end -= 1
        if end > start:
            cleaned.append((start, end, kind))
    cleaned.sort()
    merged: list[tuple[list[tuple[int, int, str]], int]] = []  # overlapping spans, their end
    for span in cleaned:
        if merged and span[0] < merged[-1][1]:
            group, end = merged[-1]
            group.append(span)
            if span[1] > end:
                merged[-1] = (group, span[1])
        else:
            merged.append(([span], span[1]))
    joined: list[tuple[int, int, str]] = []
    for group, end in merged:
        start = group[0][0]
        kind = group[0][2] if len(group) == 1 else _kind(group)
        if joined and joined[-1][2] == kind and not text[joined[-1][1] : start].strip(" \t"):
            joined[-1] = (joined[-1][0], end, kind)
        else:
            joined.append((start, end, kind))
    return joined


def _kind(group: list[tuple[int, int, str]]) -> str:
    """The kind of overlapping spans: the longest's, then the one ranked higher."""
    return max(group, key=lambda h: (h[1] - h[0], _PRIORITY[h[2]]))[2]


@cache
def _default() -> Scrubber:
    return Scrubber()


def scrub(text: str) -> ScrubResult:
    """Scrub one report's text with the default :class:`Scrubber`.

    Args:
        text: One report's text.

    Returns:
        The scrubbed text and what was replaced.

    Example:
        >>> scrub("Paciente: Zebulon QUIXOTEVANS. ACR C.").text
        'Paciente: [NAME]. ACR C.'
    """
    return _default().scrub(text)


def score_scrubbing(
    items: list[tuple[str, list[tuple[int, int, str]]]], scrubber: Scrubber | None = None
) -> dict[str, dict[str, float]]:
    """Recall and precision per PHI kind over ``(text, planted spans)`` pairs.

    A planted span is caught when the scrubbed spans cover every letter and digit of it; a
    scrubbed span is a false positive when it touches no planted span. Precision is per kind of
    the scrubbed span.

    Args:
        items: Texts with the ``(start, end, kind)`` of every value planted in them.
        scrubber: The scrubber to score (default: :func:`scrub`'s).

    Returns:
        Per kind: ``planted``, ``recall``, ``found`` and ``precision`` (NaN when undefined).
    """
    scrubber = scrubber or _default()
    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    found: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for text, spans in items:
        hits = scrubber.find(text)
        covered = bytearray(len(text))
        for start, end, _ in hits:
            covered[start:end] = b"\1" * (end - start)
        for start, end, kind in spans:
            planted[kind] += 1
            caught[kind] += all(covered[i] or not text[i].isalnum() for i in range(start, end))
        for start, end, kind in hits:
            found[kind] += 1
            right[kind] += any(start < e and end > s for s, e, _ in spans)
    kinds = sorted(set(planted) | set(found))
    return {
        kind: {
            "planted": planted[kind],
            "recall": caught[kind] / planted[kind] if planted[kind] else float("nan"),
            "found": found[kind],
            "precision": right[kind] / found[kind] if found[kind] else float("nan"),
        }
        for kind in kinds
    }

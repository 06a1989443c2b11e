"""Whether a category statement is the current one: prior, negated, explanatory or template.

A report mentions categories that are not its current assessment: the prior exam's ("comparado
con estudio anterior BI-RADS 2"), a negated one ("no sugerentes de BI-RADS 4"), an explanation
("según el sistema BI-RADS 0 indica…"), a template's alternatives (``{fatty | scattered …}``).
:class:`ContextRules` classifies a mention from the cues of ``data/context.json`` in its clause,
and from the section it stands in.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union
from mammosearch.nlp.sections import Segmentation

__all__ = ["ContextRules", "Status"]

_WINDOW_BEFORE = 90
_WINDOW_AFTER = 60
_PRIOR_WINDOW = 45
_ADJACENT_WINDOW = 25
_FINAL_WINDOW = 80
_PRIOR_SECTIONS = frozenset({"history", "comparison"})
_OPENERS = {"{": "}", "[": "]"}


class Status(StrEnum):
    """How a category mention relates to the current exam."""

    CURRENT = "current"
    PRIOR = "prior"
    NEGATED = "negated"
    EXPLANATORY = "explanatory"
    # Explained only by what follows ("BI-RADS 0 indica…"): used when nothing else is stated.
    WEAK_EXPLANATORY = "weak_explanatory"
    TEMPLATE = "template"


class ContextRules:
    """Cue-based status of category mentions.

    Args:
        data: The parsed ``context.json`` (defaults to the shipped file).
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data if data is not None else load_data("context.json")
        src = "context.json"
        self._breaks = compile_pattern(self.data["clause_breaks"], source=src)

        def joined(key: str) -> re.Pattern[str]:
            return compile_pattern(union(self.data[key]), source=src)

        self._prior_subject = joined("prior_subject")
        self._prior_before = joined("prior_before")
        self._prior_adjacent = joined("prior_adjacent")
        self._prior_after = joined("prior_after")
        self._negation = joined("negation_before")
        self._expl_before = joined("explanatory_before")
        self._expl_after = joined("explanatory_after")
        self._final = joined("final_before")

    def clause(self, folded: str, seg: Segmentation, start: int, end: int) -> tuple[int, int]:
        """Bounds of the clause around ``[start, end)``: sentence cut at clause breaks."""
        sentence = seg.at(start)
        s_start, s_end = (sentence.start, sentence.end) if sentence else (0, len(folded))
        s_end = max(s_end, end)
        lo = max(s_start, start - _WINDOW_BEFORE)
        c_start = lo
        for m in self._breaks.finditer(folded, lo, start):
            c_start = m.end()
        m_after = self._breaks.search(folded, end, min(s_end, end + _WINDOW_AFTER))
        c_end = m_after.start() if m_after else min(s_end, end + _WINDOW_AFTER)
        return c_start, c_end

    def status(
        self, folded: str, seg: Segmentation, start: int, end: int, *, value_end: int | None = None
    ) -> Status:
        """Classify the mention ``[start, end)`` of the analysis text.

        Args:
            folded: The folded analysis text.
            seg: Its segmentation.
            start: Start of the mention (its keyword).
            end: End of the mention's evidence.
            value_end: End of the whole statement when it runs past ``end`` (value lists).
        """
        if self.in_template(folded, start, end):
            return Status.TEMPLATE
        sentence = seg.at(start)
        if sentence is not None and sentence.section in _PRIOR_SECTIONS:
            return Status.PRIOR
        c_start, c_end = self.clause(folded, seg, start, value_end or end)
        before = folded[c_start:start]
        after = folded[value_end or end : c_end]
        if self._negation.search(before):
            return Status.NEGATED
        if self._expl_before.search(before):
            return Status.EXPLANATORY
        if (
            self._prior_subject.search(before)
            or self._prior_before.search(before[-_PRIOR_WINDOW:])
            or self._prior_adjacent.search(before[-_ADJACENT_WINDOW:])
            or self._prior_after.search(after)
        ):
            return Status.PRIOR
        if self._expl_after.search(after):
            return Status.WEAK_EXPLANATORY
        return Status.CURRENT

    def is_final(self, folded: str, seg: Segmentation, start: int) -> bool:
        """Whether a statement supersedes the others.

        The cue stands in its sentence or the header right before it: "En confrontación
        mamográfica y ecográfica, corresponde a BI-RADS 3", "FINAL ASSESSMENT: BI-RADS 4".
        """
        lo = max(seg.previous_end(start), start - _FINAL_WINDOW)
        return self._final.search(folded, lo, start) is not None

    @staticmethod
    def in_template(folded: str, start: int, end: int) -> bool:
        """Whether the mention sits in a ``{a | b}`` / ``[a / b]`` choice of a template."""
        line_start = folded.rfind("\n", 0, start) + 1
        line_end = folded.find("\n", end)
        if line_end < 0:
            line_end = len(folded)
        for opener, closer in _OPENERS.items():
            o = folded.rfind(opener, line_start, start)
            if o < 0 or folded.rfind(closer, o, start) >= 0:
                continue
            c = folded.find(closer, end, line_end)
            if c < 0:
                continue
            inside = folded[o + 1 : c]
            if "|" in inside or "/" in inside or "..." in inside or "\u2026" in inside:
                return True
        return False

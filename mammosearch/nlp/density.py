"""Breast composition (ACR density a-d) stated in a report, in EN/ES and any edition's wording.

Codes ("ACR C", "ACR 3", "ACR tipo c", "(MAMAS TIPO B)", "densidad tipo B", "patrón 2",
"Breast density: D") are explicit and win over descriptions; descriptions are the 5th- and
4th-edition wording in English and Spanish ("heterogeneously dense", "scattered fibroglandular
densities", "tejido adiposo casi en su totalidad", "extremadamente densas"). Vague wording
("dense breasts", "densidad media") never yields a category, only a warning. Patterns are data
(``data/density.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union, word_matches
from mammosearch.nlp.context import ContextRules, Status
from mammosearch.nlp.mentions import CategoryMention, Resolution, SideFinder, highest_by_side
from mammosearch.nlp.sections import Segmentation
from mammosearch.records import DensityCategory, Laterality

__all__ = ["DensityExtractor", "resolve_density"]

_SRC = "density.json"
_CODE, _DESCRIPTION, _VAGUE = 2, 1, 0
_BESIDE = 30  # characters between a density code and the atlas words it restates
_ALTERNATIVE = re.compile(r"\s*(?:/|-|\bo\b|\bor\b)\s*(?:[a-d]|[1-4])(?![a-z0-9])")
_STATEMENT_END = re.compile(r"[ \t]*(?:[.;]|$)", re.MULTILINE)  # after a density letter
_INNER_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")  # replaced by a space: offsets hold
# Where a description is not about mammographic composition (ultrasound echotexture).
_NON_MAMMO_SECTIONS = frozenset({"ultrasound"})


@dataclass(frozen=True, slots=True)
class _Code:
    name: str
    pattern: re.Pattern[str]
    letter_guard: bool
    needs_context: bool


class DensityExtractor:
    """Find breast-composition statements in an analysis text.

    Args:
        data: The parsed ``density.json`` (defaults to the shipped file).
        context: Context rules (defaults to the shipped ones).
    """

    def __init__(
        self, data: dict[str, Any] | None = None, context: ContextRules | None = None
    ) -> None:
        self.data = data if data is not None else load_data(_SRC)
        self.context = context or ContextRules()
        self.sides = SideFinder()
        d = self.data
        self._values: dict[str, str] = d["values"]
        self._codes = [
            _Code(
                c["name"],
                compile_pattern(c["pattern"], source=_SRC),
                bool(c.get("letter_guard")),
                bool(c.get("requires_density_context")),
            )  # fmt: skip
            for c in d["codes"]
        ]
        self.density_context = compile_pattern(d["density_context"], source=_SRC)
        # one pattern each: each starts with a literal, which ``re`` scans for quickly
        self._descriptions = [
            (str(x["category"]), compile_pattern(x["pattern"], source=_SRC))
            for x in d["descriptions"]
        ]
        self._vague = compile_pattern(union([x["pattern"] for x in d["vague"]]), source=_SRC)
        # all descriptions in one pattern, for the few characters beside a code
        self._beside = compile_pattern(
            union([x["pattern"] for x in d["descriptions"]], named="d"), source=_SRC
        )
        self._beside_values = {f"d{i}": str(x["category"]) for i, x in enumerate(d["descriptions"])}

    def __call__(
        self, text: str, folded: str, seg: Segmentation, *, complete: bool = True
    ) -> list[CategoryMention]:
        """Composition statements of the text (vague ones with tier 0), in order.

        Args:
            text: The analysis text.
            folded: Its fold.
            seg: Its segmentation.
            complete: Also look for descriptions and vague wording when a current code is
                stated (they cannot change the result then; the spaCy component shows them).
        """
        mentions: list[CategoryMention] = []
        for code in self._codes:
            for m in word_matches(code.pattern, folded):
                v_start, v_end = m.span("val")
                raw = m.group("val")
                if code.letter_guard and raw.isalpha() and len(raw) == 1:
                    before = folded[max(0, v_start - 3) : v_start].rstrip()
                    # "Density a." ends its statement: a category, not Spanish "a"
                    ends = _STATEMENT_END.match(folded, v_end) is not None
                    ends = ends and "\n" not in folded[m.start() : v_start]  # not a legend's "c."
                    if not (text[v_start].isupper() or before.endswith((":", "=", "(")) or ends):
                        continue
                if code.needs_context and not self._has_context(folded, seg, m.start()):
                    continue
                mention = self._mention(folded, seg, self._values[raw], m.start(), v_end, _CODE)
                if _ALTERNATIVE.match(folded, v_end):
                    mention = replace(mention, ambiguous=True)  # "ACR C/D"
                mentions.append(mention)
        if not complete and any(m.status is Status.CURRENT for m in mentions):
            # atlas words right beside a code's alternatives choose ("extremely dense (ACR C/D)")
            for stated in [m for m in mentions if m.tier == _CODE and m.ambiguous]:
                lo = max(0, stated.start - _BESIDE - 60)  # the words may be long
                hi = min(len(folded), stated.end + _BESIDE + 60)
                for m in word_matches(self._beside, folded, lo, hi):
                    category = self._beside_values[str(m.lastgroup)]
                    mentions.append(
                        self._mention(folded, seg, category, m.start(), m.end(), _DESCRIPTION)
                    )
            mentions.sort(key=lambda x: (x.start, -x.end))
            return _dedupe(mentions)
        # the atlas words hyphenated ("heterogeneously-dense fibroglandular tissue") read as
        # written apart; the text is searched as it is too ("fibro-glandular" patterns)
        texts = [folded]
        if "-" in folded and (spaced := _INNER_HYPHEN.sub(" ", folded)) != folded:
            texts.append(spaced)
        for category, pattern in self._descriptions:
            for text_ in texts:
                for m in word_matches(pattern, text_):
                    mentions.append(
                        self._mention(folded, seg, category, m.start(), m.end(), _DESCRIPTION)
                    )
        for text_ in texts:
            for m in word_matches(self._vague, text_):
                mentions.append(self._mention(folded, seg, "", m.start(), m.end(), _VAGUE))
        mentions.sort(key=lambda x: (x.start, -x.end))
        return _mark_alternatives(_dedupe(mentions), seg)

    def _has_context(self, folded: str, seg: Segmentation, pos: int) -> bool:
        sentence = seg.at(pos)
        if sentence is not None and sentence.section == "composition":
            return True
        lo, hi = (sentence.start, sentence.end) if sentence else (max(0, pos - 80), pos + 80)
        return self.density_context.search(folded, lo, hi) is not None

    def _mention(
        self, folded: str, seg: Segmentation, value: str, start: int, end: int, tier: int
    ) -> CategoryMention:
        status = self.context.status(folded, seg, start, end)
        sentence = seg.at(start)
        section = sentence.section if sentence else "preamble"
        c_start, c_end = self.context.clause(folded, seg, start, end)
        side = self.sides.loose(folded[c_start:start], folded[end:c_end])
        if side is False:
            side = sentence.side if sentence else None
        return CategoryMention(
            value=value, start=start, end=end, tier=tier,
            side=side if isinstance(side, Laterality) else None, status=status, section=section,
        )  # fmt: skip


def _dedupe(mentions: list[CategoryMention]) -> list[CategoryMention]:
    """Drop a statement contained in another of the same tier and value."""
    kept: list[CategoryMention] = []
    for m in mentions:
        if any(
            k.tier == m.tier and k.value == m.value and k.start <= m.start and m.end <= k.end
            for k in kept
        ):
            continue
        kept.append(m)
    return kept


def _mark_alternatives(mentions: list[CategoryMention], seg: Segmentation) -> list[CategoryMention]:
    """Different descriptions in one sentence with no sides are alternatives, not a statement.

    "Heterogeneously dense or extremely dense breasts can hide cancer" (a notification
    letter) or "a. almost entirely fatty, b. scattered …" (a legend) state no category.
    """
    by_sentence: dict[int, set[str]] = {}
    for m in mentions:
        sentence = seg.at(m.start)
        if m.tier == _DESCRIPTION and m.side is None and sentence is not None:
            by_sentence.setdefault(sentence.start, set()).add(m.value)
    mixed = {start for start, values in by_sentence.items() if len(values) > 1}
    if not mixed:
        return mentions
    out = []
    for m in mentions:
        sentence = seg.at(m.start)
        if m.tier == _DESCRIPTION and m.side is None and sentence and sentence.start in mixed:
            out.append(replace(m, status=Status.TEMPLATE))
        else:
            out.append(m)
    return out


def _words_decide(stated: list[CategoryMention]) -> tuple[list[CategoryMention], list[str]]:
    """Atlas words right beside a code that disagree with it.

    A code stated as alternatives ("extremely dense (ACR C/D)") takes the words' category (D),
    with warning W104. A single letter is kept as it is (the letter is what the real corpora
    label). Returns the mentions and the warnings.
    """
    codes = [m for m in stated if m.tier == _CODE and m.ambiguous]
    words = [m for m in stated if m.tier == _DESCRIPTION]
    if not codes or not words:
        return stated, []
    out: list[CategoryMention] = []
    notes: list[str] = []
    for mention in stated:
        m = mention
        if m.tier == _CODE and m.ambiguous:
            beside = [
                w
                for w in words
                if w.side == m.side and max(m.start - w.end, w.start - m.end) <= _BESIDE
            ]
            values = {w.value for w in beside}
            if len(values) == 1 and m.value not in values:
                m = replace(m, value=values.pop(), ambiguous=False)
                notes.append(
                    "W104: a density code gives alternatives and the atlas words beside it "
                    "choose one; the words decide"
                )
        out.append(m)
    return out, list(dict.fromkeys(notes))


def _rank(value: str) -> int:
    return DensityCategory(value).rank


def resolve_density(mentions: list[CategoryMention]) -> Resolution:
    """Pick the current composition: codes over descriptions, the denser side overall.

    A description in an ultrasound section, or a set of three or more different descriptions
    without sides (a template's or a notification letter's list), is not a statement about
    this exam. Codes that disagree without a side give the denser one and a warning.
    """
    warnings: list[str] = []
    current = [
        m
        for m in mentions
        if m.status in (Status.CURRENT, Status.WEAK_EXPLANATORY)
        and not (m.tier == _DESCRIPTION and m.section in _NON_MAMMO_SECTIONS)
    ]
    stated = [m for m in current if m.tier > _VAGUE]
    stated, notes = _words_decide(stated)
    warnings.extend(notes)
    descriptions = [m for m in stated if m.tier == _DESCRIPTION and m.side is None]
    if len({m.value for m in descriptions}) >= 3:
        warnings.append("W102: the report lists several density descriptions; read as a legend")
        stated = [m for m in stated if m.tier != _DESCRIPTION]
    if not stated:
        if any(m.tier == _VAGUE for m in current):
            warnings.append("W101: density is described without a BI-RADS category; left it null")
        return Resolution(None, {}, tuple(warnings))
    top = max(m.tier for m in stated)
    stated = [m for m in stated if m.tier == top]
    unsided = {m.value for m in stated if m.side is None}
    if len(unsided) > 1:
        warnings.append("W103: the report states different densities; kept the denser")
    densest = max(_rank(m.value) for m in stated)
    candidates = [m for m in stated if _rank(m.value) == densest]
    unsided_best = [m for m in candidates if m.side is None]
    overall = unsided_best[0] if unsided_best else candidates[0]
    return Resolution(overall, highest_by_side(stated, _rank), tuple(warnings))

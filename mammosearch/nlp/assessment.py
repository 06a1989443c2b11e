"""BI-RADS assessment categories stated in a report, however written.

"BI-RADS: 1 Negative", "BIRADS-3", "Categoría BI-RADS 2", "Clasificación BIRRADS II",
"birads : 4", "Bi-Rads - 4c", "BIRADS: 3 and 5", "ACR BI-RADS Assessment Category 0",
"Final assessment: Benign". Every statement becomes a :class:`CategoryMention` with its status
(current, prior, negated, explanatory, template) and side; :func:`resolve_birads` picks the
current overall category (most worrisome in the atlas order) and the per-side ones. Patterns are
data (``data/birads.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union, word_matches
from mammosearch.nlp.context import ContextRules, Status
from mammosearch.nlp.mentions import CategoryMention, Resolution, SideFinder, highest_by_side
from mammosearch.nlp.sections import Segmentation
from mammosearch.records import BiradsCategory, Laterality

__all__ = ["BiradsExtractor", "resolve_birads"]

_MAX_GAP = 40
_LEGEND_SPAN = 300
_SRC = "birads.json"


@dataclass(frozen=True, slots=True)
class _Value:
    category: str
    start: int
    end: int


class BiradsExtractor:
    """Find BI-RADS category statements in an analysis text.

    Args:
        data: The parsed ``birads.json`` (defaults to the shipped file).
        context: Context rules (defaults to the shipped ones).
        density_context: Pattern of density wording (defaults to ``density.json``'s); a
            keyword-less "category 3" in such a sentence is a density statement.
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        context: ContextRules | None = None,
        density_context: re.Pattern[str] | None = None,
    ) -> None:
        self.data = data if data is not None else load_data(_SRC)
        self.context = context or ContextRules()
        self.sides = SideFinder()
        self._density_context = density_context or compile_pattern(
            load_data("density.json")["density_context"], source="density.json"
        )
        d = self.data
        self._keyword = compile_pattern(d["keyword"], source=_SRC)
        self._keywordless = [compile_pattern(p, source=_SRC) for p in d["keywordless"]]
        value = d["value"]
        self._gap_value = compile_pattern(f"(?P<gap>{d['gap']}){value}", source=_SRC)
        words = union([w["pattern"] for w in d["words"]], named="w")
        self._word_categories = [str(w["category"]) for w in d["words"]]
        self._gap_word = compile_pattern(f"(?P<gap>{d['gap']})(?:{words})(?![a-z])", source=_SRC)
        self._more = compile_pattern(
            f"(?P<joiner>{d['value_list_joiners']}){value}(?!\\s*(?:mm|cm|%|meses|months?|"
            r"years?|anos|dias|days|x\b))",
            source=_SRC,
        )
        self._side_more = compile_pattern(
            r"\s*(?:[,;]|\by\b|\band\b|\be\b)?\s*(?:(?:la|el|the)\s+)?(?:(?:mama|breast)\s+)?"
            r"(?:(?P<right>right|derech[oa]|md)|(?P<left>left|izquierd[oa]|mi))\s*[:=\-]?\s*"
            + value,
            source=_SRC,
        )
        self._values: dict[str, str] = d["values"]
        self._blockers = frozenset(d.get("spaced_letter_blockers", []))

    def __call__(self, text: str, folded: str, seg: Segmentation) -> list[CategoryMention]:
        """All BI-RADS statements of the text, in order."""
        mentions: list[CategoryMention] = []
        taken: list[tuple[int, int]] = []
        for m in word_matches(self._keyword, folded):
            found = self._statement(text, folded, seg, m.start(), m.end(), tier=2)
            if found:
                mentions.extend(found)
                taken.append((m.start(), found[-1].end))
        for pattern in self._keywordless:
            for m in word_matches(pattern, folded):
                if any(a <= m.start() < b for a, b in taken):
                    continue
                sentence = seg.at(m.start())
                if sentence is not None and (
                    sentence.section == "composition"
                    or self._density_context.search(folded, sentence.start, sentence.end)
                ):
                    continue
                found = self._statement(text, folded, seg, m.start(), m.end(), tier=1)
                if found:
                    mentions.extend(found)
                    taken.append((m.start(), found[-1].end))
        mentions.sort(key=lambda x: (x.start, x.end))
        return _mark_legends(mentions)

    def _statement(
        self, text: str, folded: str, seg: Segmentation, start: int, kw_end: int, *, tier: int
    ) -> list[CategoryMention]:
        values: list[_Value] = []
        joiners: list[str] = []
        gm = self._gap_value.match(folded, kw_end)
        if gm and len(gm.group("gap")) <= _MAX_GAP:
            gap = gm.group("gap")
            values.append(self._parse(text, folded, gm.start("val"), gm.end("val")))
            pos = gm.end()
            while (lm := self._more.match(folded, pos)) is not None:
                values.append(self._parse(text, folded, lm.start("val"), lm.end("val")))
                joiners.append(lm.group("joiner").strip())
                pos = lm.end()
            # "BI-RADS derecha 1, izquierda 3": further values, each for its own side
            side_values: list[tuple[_Value, Laterality]] = []
            while (sm := self._side_more.match(folded, pos)) is not None:
                named = Laterality.RIGHT if sm.group("right") else Laterality.LEFT
                side_values.append(
                    (self._parse(text, folded, sm.start("val"), sm.end("val")), named)
                )
                pos = sm.end()
        else:
            wm = self._gap_word.match(folded, kw_end)
            if not wm or len(wm.group("gap")) > _MAX_GAP:
                return []
            gap = wm.group("gap")
            index = next(i for i in range(len(self._word_categories)) if wm.group(f"w{i}"))
            values.append(_Value(self._word_categories[index], wm.start(f"w{index}"), wm.end()))
            side_values = []
        last_end = (side_values[-1][0] if side_values else values[-1]).end
        status = self.context.status(folded, seg, start, values[0].end, value_end=last_end)
        alternatives = bool(set(joiners) & {"/", "|", "or", "o"})
        if alternatives and len(values) >= 3:
            status = Status.TEMPLATE
        sentence = seg.at(start)
        side = self._side(folded, seg, start, last_end, gap)
        if side is False:
            side = sentence.side if sentence else None
        section = sentence.section if sentence else "preamble"
        first_side = side if isinstance(side, Laterality) else None
        sided = [(v, first_side, alternatives) for v in values]
        sided += [(v, named, False) for v, named in side_values]
        final = self.context.is_final(folded, seg, start)
        return [
            CategoryMention(v.category, start, v.end, tier, s, status, section, alt, final)
            for v, s, alt in sided
        ]

    def _side(
        self, folded: str, seg: Segmentation, start: int, end: int, gap: str
    ) -> Laterality | None | bool:
        in_gap = self.sides.loose(gap, "")
        if in_gap is not False:
            return in_gap
        c_start, c_end = self.context.clause(folded, seg, start, end)
        return self.sides.tight(folded[c_start:start], folded[end:c_end])

    def _parse(self, text: str, folded: str, start: int, end: int) -> _Value:
        raw = folded[start:end]
        compact = raw.replace(" ", "").replace("-", "")
        letter = ""
        if len(compact) > 1 and compact[-1] in "abc" and compact[:-1] in self._values:
            letter, compact = compact[-1], compact[:-1]
            if raw[-2] in " -" and not self._spaced_letter_ok(text, folded, end):
                letter = ""
                end = start + len(raw[:-1].rstrip(" -"))
        base = self._values[compact]
        category = base + letter.upper() if base == "4" and letter else base
        return _Value(BiradsCategory(category).value, start, end)

    def _spaced_letter_ok(self, text: str, folded: str, end: int) -> bool:
        """ "4 A" is 4A unless the letter is the Spanish preposition ("4 a la derecha")."""
        if not text[end - 1].isupper():
            return False
        following = re.match(r"\W*([a-z]+)", folded[end : end + 20])
        return not (following and following.group(1) in self._blockers)


def _mark_legends(mentions: list[CategoryMention]) -> list[CategoryMention]:
    """Mark runs of >= 3 statements counting up (0, 1, 2 …) close together as a legend."""
    numeric = [
        (i, int(m.value[0])) for i, m in enumerate(mentions) if m.status is not Status.TEMPLATE
    ]
    legend: set[int] = set()
    run: list[int] = []
    for j, (i, v) in enumerate(numeric):
        if run:
            pi, pv = numeric[j - 1]
            close = mentions[i].start - mentions[pi].end <= _LEGEND_SPAN
            if not (close and v == pv + 1):
                if len(run) >= 3:
                    legend.update(run)
                run = []
        run.append(i)
    if len(run) >= 3:
        legend.update(run)
    if not legend:
        return mentions
    return [
        replace(m, status=Status.TEMPLATE) if i in legend else m for i, m in enumerate(mentions)
    ]


def _severity(value: str) -> int:
    return BiradsCategory(value).severity


def resolve_birads(mentions: list[CategoryMention]) -> Resolution:
    """Pick the current overall and per-side categories from a report's statements.

    Only current statements count; the strongest wording tier present wins; a statement
    marked final (combined, recategorized, "final assessment") supersedes the others; the
    overall category is the most worrisome (atlas order), its evidence the last such statement.
    Statements explained only by what follows ("BI-RADS 0 indica…") count when nothing else
    is stated, with a warning.
    """
    warnings: list[str] = []
    current = [m for m in mentions if m.status is Status.CURRENT]
    if not current:
        current = [m for m in mentions if m.status is Status.WEAK_EXPLANATORY]
        if current:
            warnings.append(
                "W201: the only BI-RADS statements read as explanations; used them as the category"
            )
    if not current:
        return Resolution(None, {}, tuple(warnings))
    top = max(m.tier for m in current)
    current = [m for m in current if m.tier == top]
    finals = [m for m in current if m.final]
    by_side_from = current
    if finals:  # a combined or recategorized assessment supersedes the earlier ones
        current = finals
    if any(m.ambiguous for m in current):
        warnings.append(
            "W202: a BI-RADS category is given as alternatives; kept the most worrisome"
        )
    worst = max(_severity(m.value) for m in current)
    overall = [m for m in current if _severity(m.value) == worst][-1]
    return Resolution(overall, highest_by_side(by_side_from, _severity), tuple(warnings))

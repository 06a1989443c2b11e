"""Findings of a report: type, BI-RADS descriptors, laterality, location, size and context.

Works on the word tokens of each sentence (with a header on the same line, so that
"Calcifications: none" and "Right breast: no mass" read as one statement):

1. typos are corrected toward the lexicon (:class:`~mammosearch.nlp._phrases.Speller`);
2. finding triggers ("spiculated mass", "microcalcificaciones", "imagen nodular con caracteres
   ganglionares"), descriptors, locations, sides and context cues are found by longest match;
3. ConText-style rules (``data/context_findings.json``, EN and ES) mark findings negated,
   uncertain or historical: a cue governs the first finding after (or before) it and the
   findings chained to it by list connectors (",", "or", "ni"), so "no suspicious masses,
   calcifications or distortion" negates all three while "no hay nódulo dominante
   microcalcificaciones redondas" negates only the nodule; the words naming a finding's place
   and side do not count towards a forward or backward cue's reach ("a mass in the upper outer
   quadrant of the right breast is not seen"), and a cue listed both ways ("no se observa")
   that closes its clause looks back;
4. each descriptor, location and size attaches to the nearest finding that takes it (a place
   or clock position within its own comma clause when a finding is there; a descriptor next to
   a finding without such a field, "an oval lymph node", to none); a generic head ("lesión
   espiculada", "ill-defined opacity") with a mass descriptor becomes a mass; laterality comes
   from the clause, the sentence, or the side header.

Rules and lexicons are data: ``findings.json``, ``location.json``, ``context_findings.json``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import Any

from mammosearch.nlp._phrases import PhraseIndex, Speller, Tokens, phrase_words, tokenize
from mammosearch.nlp._resources import at_line_start, compile_pattern, load_data, word_matches
from mammosearch.nlp.sections import Segmentation, Sentence
from mammosearch.records import (
    AsymmetryKind,
    CalcDistribution,
    CalcMorphology,
    Depth,
    Finding,
    FindingDescriptors,
    FindingLocation,
    FindingType,
    Laterality,
    Margin,
    MassDensity,
    Quadrant,
    Shape,
    Span,
)

__all__ = ["FindingsExtractor", "merge_findings"]

_MASS_FIELDS = ("shape", "margin", "mass_density")
_ACCEPTS: dict[str, tuple[str, ...]] = {
    "mass": _MASS_FIELDS,
    "calcification": ("calc_morphology", "calc_distribution"),
    "asymmetry": ("asymmetry",),
}
_SIZED = frozenset({"mass", "asymmetry", "lymph_node", "calcification", "architectural_distortion"})
_LESIONS = frozenset({"mass", "asymmetry", "lymph_node"})
_ENUMS: dict[str, Any] = {
    "shape": Shape,
    "margin": Margin,
    "mass_density": MassDensity,
    "calc_morphology": CalcMorphology,
    "calc_distribution": CalcDistribution,
    "asymmetry": AsymmetryKind,
}
_GENERIC = "generic"
# enum members by value: a dict look-up instead of an Enum call per finding
_TYPES = {t.value: t for t in FindingType}
_QUADRANTS = {q.value: q for q in Quadrant}
_DEPTHS = {d.value: d for d in Depth}
_SIDE_WINDOW = 15  # words: a side word farther than this from a finding does not bind
_ATTACH_WINDOW = 8  # words between a descriptor and its finding
_HISTORY_SECTIONS = frozenset({"history", "comparison"})
# Recommendations restate findings ("biopsia de las calcificaciones"); they add none.
_RESTATING_SECTIONS = frozenset({"recommendation"})
# DESIGN: the ultrasound part of a combined report is not coded.
_SKIPPED_SECTIONS = _RESTATING_SECTIONS | {"ultrasound"}
_SIZE = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:[.,]\d{1,2})?)(?:\s*(?:x|\u00d7|por)\s*(\d{1,3}(?:[.,]\d{1,2})?))?"
    r"(?:\s*(?:x|\u00d7|por)\s*(\d{1,3}(?:[.,]\d{1,2})?))?\s*(mm|cm|mms|milimetros|centimetros)\b"
)


@dataclass(slots=True)
class _Item:
    """A finding under construction."""

    kind: str  # a FindingType value or "generic"
    start: int  # token range
    end: int
    implies: dict[str, str] = field(default_factory=dict)
    descriptors: dict[str, list[str]] = field(default_factory=dict)
    negated: bool = False
    hypothetical: bool = False
    uncertain: bool = False
    historical: bool = False
    new: bool = False  # "new", "de nueva aparición": never historical
    side: Laterality | None = None
    quadrant: str | None = None
    clock: str | None = None
    union: dict[str, str] | None = None
    depth: str | None = None
    size_mm: float | None = None
    fixed_side: Laterality | None = None  # named right after an elided finding
    qualifier_start: int | None = None  # the evidence, with a qualifier ("no suspicious ...")
    qualifier_end: int | None = None
    lead: int | None = None  # the first token of the descriptors written before it

    @property
    def ev_start(self) -> int:
        return self.start if self.qualifier_start is None else min(self.start, self.qualifier_start)

    @property
    def ev_end(self) -> int:
        return self.end if self.qualifier_end is None else max(self.end, self.qualifier_end)

    def add(self, name: str, value: str) -> None:
        values = self.descriptors.setdefault(name, [])
        if value not in values:
            values.append(value)


@dataclass(frozen=True, slots=True)
class _Cue:
    category: str
    direction: str


class FindingsExtractor:
    """Extract findings from an analysis text.

    Args:
        findings: Parsed ``findings.json`` (default: the shipped file).
        location: Parsed ``location.json``.
        context: Parsed ``context_findings.json``.
    """

    def __init__(
        self,
        findings: dict[str, Any] | None = None,
        location: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.findings_data = findings if findings is not None else load_data("findings.json")
        self.location_data = location if location is not None else load_data("location.json")
        self.context_data = context if context is not None else load_data("context_findings.json")
        f, loc, ctx = self.findings_data, self.location_data, self.context_data

        trigger_entries: list[tuple[str, tuple[str, dict[str, str]]]] = []
        for t in f["triggers"]:
            FindingType(t["type"])
            payload = (str(t["type"]), dict(t.get("implies", {})))
            trigger_entries += [(p, payload) for p in t["phrases"]]
        for c in f.get("compounds", []):
            kinds = [FindingType(k).value for k in c["types"]]
            trigger_entries += [(p, ("|".join(kinds), {})) for p in c["phrases"]]
        trigger_entries += [(p, (_GENERIC, {})) for p in f["generic_heads"]]
        self._triggers: PhraseIndex[tuple[str, dict[str, str]]] = PhraseIndex(trigger_entries)

        descriptor_entries: list[tuple[str, tuple[str, str]]] = []
        for d in f["descriptors"]:
            _ENUMS[d["field"]](d["value"])  # validate the data against the closed sets
            descriptor_entries += [(p, (str(d["field"]), str(d["value"]))) for p in d["phrases"]]
        self._descriptors: PhraseIndex[tuple[str, str]] = PhraseIndex(descriptor_entries)

        location_entries: list[tuple[str, tuple[str, Any]]] = []
        for quadrant, phrases in loc["quadrants"].items():
            Quadrant(quadrant)
            location_entries += [(p, ("quadrant", quadrant)) for p in phrases]
        for name, union in loc["unions"].items():
            if name.startswith("_"):
                continue
            sides = {"right": union["right"], "left": union["left"]}
            location_entries += [(p, ("union", sides)) for p in union["phrases"]]
        for depth, phrases in loc["depth"].items():
            Depth(depth)
            location_entries += [(p, ("depth", depth)) for p in phrases]
        self._locations: PhraseIndex[tuple[str, Any]] = PhraseIndex(location_entries)
        self._clock = [compile_pattern(p, source="location.json") for p in loc["clock"]]

        side_entries = [(p, (Laterality.RIGHT, p in _POSTPOSED)) for p in _RIGHT_WORDS]
        side_entries += [(p, (Laterality.LEFT, p in _POSTPOSED)) for p in _LEFT_WORDS]
        side_entries += [(p, (Laterality.BILATERAL, p in _POSTPOSED)) for p in _BOTH_WORDS]
        self._sides: PhraseIndex[tuple[Laterality, bool]] = PhraseIndex(side_entries)

        cue_entries: list[tuple[str, _Cue]] = []
        for rule in ctx["rules"]:
            cue = _Cue(str(rule["category"]), str(rule["direction"]))
            cue_entries += [(lit, cue) for lit in rule["literals"]]
        self._cues: PhraseIndex[_Cue] = PhraseIndex(cue_entries)
        self._connectors = PhraseIndex([(c, True) for c in ctx["connectors"]])
        self._max_gap = int(ctx.get("max_gap", 8))
        self._chain_gap = int(ctx.get("chain_gap", 7))

        self._reclassify = [
            (
                frozenset([r["from"]] if isinstance(r["from"], str) else r["from"]),
                str(r["to"]),
                int(r.get("window", 6)),
                PhraseIndex([(c, True) for c in r["cues"]]),
            )
            for r in f.get("reclassify", [])
        ]
        self._size_exclusions = [" ".join(e.split()) for e in f.get("size_exclusions", [])]
        char = f.get("characterised_as", {})
        self._char_from = frozenset(char.get("from", ()))
        self._char_cues = PhraseIndex([(c, True) for c in char.get("cues", [])])
        self._char_first = frozenset(phrase_words(c)[0] for c in char.get("cues", []))
        qualifier_entries: list[tuple[str, tuple[str, str]]] = []
        for word, where in f.get("qualifiers", {}).items():
            if word.startswith("_"):
                continue
            qualifier_entries += [(p, ("before", word)) for p in where["before"]]
            qualifier_entries += [(p, ("after", word)) for p in where["after"]]
        self._qualifiers: PhraseIndex[tuple[str, str]] = PhraseIndex(qualifier_entries)
        self._qualifier_first = frozenset(phrase_words(q)[0] for q, _ in qualifier_entries)
        self._negative_values = tuple(phrase_words(v) for v in f.get("negative_values", []))
        # patterns that start with the same literal word are searched as one
        grouped: dict[tuple[str, str], list[str]] = {}
        for kind, patterns in f.get("normal_statements", {}).items():
            if kind.startswith("_"):
                continue
            for pattern in patterns:
                prefix = _literal_prefix(pattern)
                grouped.setdefault((FindingType(kind).value, prefix), []).append(
                    pattern[len(prefix) :]
                )
        self._normal = [
            (
                kind,
                prefix,
                compile_pattern(
                    re.escape(prefix) + "(?:" + "|".join(rests) + ")", source="findings.json"
                ),
            )
            for (kind, prefix), rests in grouped.items()
        ]
        # (pattern, whether it can only match at the start of a line)
        self._label_lines = [
            (pattern, at_line_start(pattern))
            for pattern in (
                compile_pattern(x, source="findings.json") for x in f.get("label_lines", [])
            )
        ]
        us = ctx.get("ultrasound", {})
        self._us_after = [compile_pattern(p, source="context_findings.json")
                          for p in us.get("after", [])]  # fmt: skip
        self._us_sentence = [compile_pattern(p, source="context_findings.json")
                             for p in us.get("sentence", [])]  # fmt: skip
        anchors = set(f.get("anchors", []))
        for t in f["triggers"]:
            anchors.update(p.split()[-1] for p in t["phrases"])
        vocabulary = self._triggers.words | self._descriptors.words | self._locations.words
        known = (
            self._cues.words
            | self._sides.words
            | _data_words(
                "sections.json",
                "density.json",
                "birads.json",
                "context.json",
                "recommendations.json",
            )
        )
        classes = {
            words[0]: f"{kind}:{sorted(implies.items())}"
            for phrase, (kind, implies) in trigger_entries
            if len(words := phrase_words(phrase)) == 1
        }
        classes.update(
            {
                words[0]: f"{name}:{value}"
                for phrase, (name, value) in descriptor_entries
                if len(words := phrase_words(phrase)) == 1 and words[0] not in classes
            }
        )
        self.speller = Speller(vocabulary, anchors, known, classes)

    # ------------------------------------------------------------------ extraction

    def __call__(self, text: str, folded: str, seg: Segmentation) -> list[Finding]:
        """All findings of the text, merged per (type, side, negated), in order."""
        tokens = tokenize(folded)
        if not len(tokens):
            return []
        norms = self.speller.correct(tokens.norms, self._protector(text, folded, tokens))
        if "md" in norms or "mi" in norms:
            norms = _side_codes(text, tokens, norms)
        us_here = any(w in folded for w in _US_WORDS)
        words = [s for s, _, _ in self._triggers.scan(norms)]  # where finding words start
        triggers = words
        normal = self._normal_statements(folded, tokens)
        if normal:
            triggers = sorted({*triggers, *(s for _, s, _ in normal)})
        if not triggers:
            return []
        units = self._units(tokens, seg, folded)
        exam_side = self._exam_side(norms, units, words)
        found: list[Finding] = []
        placed: tuple[int, Laterality] | None = None  # where the last lesion's sentence ended
        for sentence, lo, hi in units:
            if sentence.section in _SKIPPED_SECTIONS:
                continue
            i = bisect.bisect_left(triggers, lo)
            if i == len(triggers) or triggers[i] >= hi:
                continue  # no finding word in this sentence
            statements = [x for x in normal if lo <= x[1] < hi]
            unit = self._unit(
                text, folded, tokens, norms, lo, hi, sentence, exam_side, statements, us_here
            )
            if placed is not None and "\n\n" not in folded[placed[0] : tokens.starts[lo]]:
                # "Nódulo espiculado en mama izquierda. Retracción de la piel suprayacente.":
                # the skin and nipple signs of the next sentence are that lesion's side's
                unit = [
                    dc_replace(f, laterality=placed[1])
                    if f.laterality is None and not f.negated and f.type in _LESION_SIGNS
                    else f
                    for f in unit
                ]
            sides = {f.laterality for f in unit if not f.negated and f.type not in _LESION_SIGNS}
            if sides:
                side = next(iter(sides)) if len(sides) == 1 else None
                placed = (tokens.ends[hi - 1], side) if side in _ONE_SIDE else None
            found.extend(unit)
        return merge_findings(found)

    def _protector(self, text: str, folded: str, tokens: Tokens) -> Callable[[int], bool]:
        """Whether a word is never corrected toward the lexicon: a capitalised word in
        mixed-case text (a proper name such as "Quispe") or a word of a signature or label
        line. Label lines are searched only when a correction is about to be made."""

        def protected(i: int) -> bool:
            s, e = tokens.starts[i], tokens.ends[i]
            if e - s >= 2 and text[s].isupper() and any(map(str.islower, text[s + 1 : e])):
                return True
            line_start = folded.rfind("\n", 0, s) + 1
            line_end = folded.find("\n", e)
            line_end = len(folded) if line_end < 0 else line_end
            for pattern, at_start in self._label_lines:
                # a pattern anchored at the start of a line matches there or nowhere in it
                if at_start:
                    m = pattern.match(folded, line_start, line_end)
                    if m is not None and m.start() <= s < m.end():
                        return True
                    continue
                if any(
                    m.start() <= s < m.end() for m in pattern.finditer(folded, line_start, line_end)
                ):
                    return True
            return False

        return protected

    def _normal_statements(self, folded: str, tokens: Tokens) -> list[tuple[str, int, int]]:
        """(type, first token, end token) of statements that a finding type is normal."""
        out: list[tuple[str, int, int]] = []
        if not any(w in folded for w in _NORMAL_WORDS):
            return out
        for kind, prefix, pattern in self._normal:
            if prefix not in folded:
                continue  # the pattern's first word is nowhere in the report
            for m in word_matches(pattern, folded):
                s = bisect.bisect_left(tokens.ends, m.start() + 1)
                e = bisect.bisect_left(tokens.starts, m.end())
                if s < e:
                    out.append((kind, s, e))
        return out

    def _exam_side(
        self, norms: list[str], units: list[tuple[Sentence, int, int]], words: list[int]
    ) -> Laterality | None:
        """The side of a unilateral exam named in the report's title ("LEFT DIAGNOSTIC
        MAMMOGRAM", "MAMOGRAFÍA DIGITALIZADA IZQUIERDA") or in a line naming the study before
        the findings ("Estudio: mamografía unilateral izquierda"). ``words``: where the finding
        words of the report start, in order."""
        for n, (sentence, lo, hi) in enumerate(units):
            if sentence.section not in ("preamble", "technique", "other"):
                break
            exam = any(w.startswith(_EXAM_WORDS) for w in norms[lo:hi])
            i = bisect.bisect_left(words, lo)
            found = i < len(words) and words[i] < hi
            if n == 0 and sentence.section == "preamble":  # the title, unless it is a finding
                if found and not exam:
                    break  # "Mass in the right breast." opens the report: no title
            elif not exam:
                continue  # a line of the header (a name, an address): not the exam's
            elif found:
                break  # the findings have begun
            sides = {p[0][0] for _, _, p in self._sides.scan(norms, lo, hi)}
            if len(sides) == 1 and Laterality.BILATERAL not in sides:
                return next(iter(sides))
            if sides:
                break
        return None

    @staticmethod
    def _units(tokens: Tokens, seg: Segmentation, folded: str) -> list[tuple[Sentence, int, int]]:
        """Token ranges of the sentences, each with a header on the same line before it."""
        units: list[tuple[Sentence, int, int]] = []
        starts = tokens.starts
        headers = sorted(seg.headers)
        h = 0
        i = 0
        for sentence in seg.sentences:
            begin = sentence.start
            while h < len(headers) and headers[h] < sentence.start:
                if "\n" not in folded[headers[h] : sentence.start]:
                    begin = headers[h]
                h += 1
            i = bisect.bisect_left(starts, begin, i)  # starts are sorted
            j = bisect.bisect_left(starts, sentence.end, i)
            if j > i:
                units.append((sentence, i, j))
            i = j
        return units

    def _unit(
        self,
        text: str,
        folded: str,
        tokens: Tokens,
        norms: list[str],
        lo: int,
        hi: int,
        sentence: Sentence,
        exam_side: Laterality | None,
        statements: Sequence[tuple[str, int, int]] = (),
        us_here: bool = True,
    ) -> list[Finding]:
        items = [
            _Item(part, s, e, dict(implies))
            for s, e, payloads in self._triggers.scan(norms, lo, hi)
            for kind, implies in payloads[:1]
            for part in kind.split("|")
        ]
        if us_here:
            items = self._drop_ultrasound(items, folded, tokens, lo, hi)
        if not items and statements:
            # only "the axillae are unremarkable": a negated finding with a side, nothing more
            items = [_Item(kind, s, e, negated=True) for kind, s, e in statements]
            self._attach_sides(items, norms, lo, hi, sentence.side or exam_side)
            return self._build(text, tokens, items, sentence)
        for kind, s, e in statements:
            inside = [
                it for it in items if it.kind in (kind, _GENERIC) and it.start < e and s < it.end
            ]
            for it in inside:
                it.kind, it.negated = kind, True
            if not inside:
                items.append(_Item(kind, s, e, negated=True))
        items.sort(key=lambda it: (it.start, it.end))
        if not items:
            return []
        self._apply_reclassify(items, norms, lo, hi)
        items = self._apply_characterised(items, norms, lo, hi)
        elided = self._elided(items, norms, lo, hi)
        if elided:
            items += elided
            items.sort(key=lambda it: (it.start, it.end))
        cues = self._cues.scan(norms, lo, hi)
        connectors = {s for s, _, _ in self._connectors.scan(norms, lo, hi)}
        terminators = [s for s, _, payloads in cues if payloads[0].category == "TERMINATE"]
        negated_spans = self._apply_context(items, cues, connectors, terminators, lo, hi, norms)
        if ":" in norms[lo:hi]:
            self._apply_label_values(items, norms, lo, hi)
        items = [it for it in items if not it.hypothetical]
        self._attach_descriptors(items, norms, lo, hi, negated_spans)
        items = [it for it in items if it.kind != _GENERIC]
        if not items:
            return []
        self._qualify(items, norms, lo, hi)
        has_digit = _DIGIT.search(folded, tokens.starts[lo], tokens.ends[hi - 1]) is not None
        # findings named after a lesion's "with" ("mass with calcifications"): their places and
        # sizes are the lesion's
        heads = {} if _WITH_WORDS.isdisjoint(norms[lo:hi]) else _dependent_heads(items, norms)
        self._attach_locations(items, folded, tokens, norms, lo, hi, heads, has_digit)
        if has_digit:
            self._attach_sizes(items, folded, tokens, lo, hi, norms, heads)
        self._attach_sides(items, norms, lo, hi, sentence.side or exam_side)
        return self._build(text, tokens, items, sentence)

    @staticmethod
    def _build(text: str, tokens: Tokens, items: list[_Item], sentence: Sentence) -> list[Finding]:
        """The findings of finished items."""
        historical_section = sentence.section in _HISTORY_SECTIONS
        out = []
        for it in items:
            first, last = it.start, it.end
            if it.qualifier_start is not None or it.qualifier_end is not None:
                first, last = it.ev_start, it.ev_end
            start, end = tokens.starts[first], tokens.ends[last - 1]
            clock = it.clock
            if clock is None and it.union and it.side in (Laterality.LEFT, Laterality.RIGHT):
                clock = it.union[it.side.value]
            descriptors = {**{k: [v] for k, v in it.implies.items()}, **it.descriptors}
            out.append(
                Finding(
                    type=_TYPES[it.kind],
                    evidence=Span(text[start:end], start, end),
                    laterality=it.side,
                    negated=it.negated,
                    uncertain=it.uncertain and not it.negated,
                    historical=it.historical or historical_section,
                    descriptors=_descriptors(descriptors, it.size_mm),
                    location=FindingLocation(
                        _QUADRANTS[it.quadrant] if it.quadrant else None,
                        clock,
                        _DEPTHS[it.depth] if it.depth else None,
                    )
                    if it.quadrant or clock or it.depth
                    else _NO_LOCATION,
                )
            )
        return out

    def _apply_reclassify(self, items: list[_Item], norms: list[str], lo: int, hi: int) -> None:
        """A nodular image "con carácter ganglionar" is a lymph node, not a mass."""
        for sources, target, window, cues in self._reclassify:
            if not any(it.kind in sources for it in items):
                continue
            hits = [s for s, _, _ in cues.scan(norms, lo, hi)]
            if not hits:
                continue
            starts = sorted(it.start for it in items)
            for it in items:
                if it.kind not in sources:
                    continue
                following = min([s for s in starts if s > it.start] + [hi])
                if any(it.end <= h < min(following, it.end + window) for h in hits):
                    it.kind = target

    def _drop_ultrasound(
        self, items: list[_Item], folded: str, tokens: Tokens, lo: int, hi: int
    ) -> list[_Item]:
        """Items of an ultrasound statement removed: they are not coded (DESIGN)."""
        if not items:
            return items
        begin, finish = tokens.starts[lo], tokens.ends[hi - 1]
        part = folded[begin:finish]
        if not any(w in part for w in _US_WORDS):
            return items
        if any(p.search(folded, begin, finish) for p in self._us_sentence):
            return []
        cuts = [m.end() for p in self._us_after if (m := p.search(folded, begin, finish))]
        if not cuts:
            return items
        cut = min(cuts)
        return [it for it in items if tokens.starts[it.start] < cut]

    def _apply_characterised(
        self, items: list[_Item], norms: list[str], lo: int, hi: int
    ) -> list[_Item]:
        """A mass "with the characteristics of intramammary lymph nodes" is that node: the
        earlier mention takes the later one's type and the later one is dropped."""
        if len(items) < 2 or self._char_first.isdisjoint(norms[lo:hi]):
            return items
        dropped: set[int] = set()
        for cs, ce, _ in self._char_cues.scan(norms, lo, hi):
            # the next finding word, a few modifiers on ("an involuting fibroadenoma")
            targets = [
                it
                for it in items
                if ce <= it.start <= ce + _CHAR_REACH
                and it.kind != _GENERIC
                and not any(w in _CLAUSE_ENDS for w in norms[ce : it.start])
            ]
            before = [it for it in items if it.end <= cs and id(it) not in dropped]
            if not targets or not before:
                continue
            source = max(before, key=lambda it: (it.end, it.start))
            target = targets[0]
            if source.kind in self._char_from:
                source.kind = target.kind
                source.implies.update(target.implies)
            dropped.add(id(target))  # one finding, and its interpretation
        return [it for it in items if id(it) not in dropped]

    def _elided(self, items: list[_Item], norms: list[str], lo: int, hi: int) -> list[_Item]:
        """Findings named only by a descriptor and another side ("calcificaciones puntiformes
        en ambas mamas y una anular en la mama derecha"), or by "another" ("a mass in the
        right breast and another in the left breast", "y otro en la izquierda"): a finding
        of the same type."""
        accepting = [it for it in items if it.kind in _ACCEPTS]
        if not accepting or _AND_WORDS.isdisjoint(norms[lo:hi]):
            return []
        side_hits = self._sides.scan(norms, lo, hi)
        sides = [s for s, _, _ in side_hits]
        if len(sides) < 2:
            return []
        starts = sorted(it.start for it in items)
        descriptors = {s: (e, opts) for s, e, opts in self._descriptors.scan(norms, lo, hi)}
        extra: list[_Item] = []
        for it in accepting:
            following = min([s for s in starts if s >= it.end] + [hi])
            for c in range(it.end, min(following, it.end + 12)):
                if norms[c] not in _AND_WORDS:
                    continue
                if not any(it.end <= x < c for x in sides):
                    break  # the first finding names no side of its own before "and"
                j = c + 1
                while j < hi and j < c + 3 and norms[j] in _ELIDED_ARTICLES:
                    j += 1
                k = j
                while k in descriptors and any(
                    name in _ACCEPTS[it.kind] for name, _ in descriptors[k][1]
                ):
                    k = descriptors[k][0]
                anaphor = not _ANAPHORS.isdisjoint(norms[c + 1 : j])  # "and another in ..."
                if (k == j and not anaphor) or not any(k <= x < k + 4 for x in sides):
                    break
                if any(c < s < k + 4 for s in starts):
                    break
                side = next(p[0][0] for s, _, p in side_hits if k <= s < k + 4)
                extra.append(_Item(it.kind, j, k, fixed_side=side))
                break
        return extra

    def _qualify(self, items: list[_Item], norms: list[str], lo: int, hi: int) -> None:
        """Stretch a negated finding's evidence over its qualifier ("no suspicious ...")."""
        negated = [it for it in items if it.negated]
        if not negated or self._qualifier_first.isdisjoint(norms[lo:hi]):
            return
        for s, e, payloads in self._qualifiers.scan(norms, lo, hi):
            where = payloads[0][0]
            for it in negated:
                if where == "before" and e == it.start:
                    it.qualifier_start = s
                elif where == "after" and s == it.end:
                    it.qualifier_end = e

    # ------------------------------------------------------------------ context

    def _apply_context(
        self,
        items: list[_Item],
        cues: list[tuple[int, int, list[_Cue]]],
        connectors: set[int],
        terminators: list[int],
        lo: int,
        hi: int,
        norms: list[str],
    ) -> list[tuple[int, int]]:
        """Set negated/uncertain/historical; return the token spans under negation."""
        pseudo = [(s, e) for s, e, p in cues if p[0].category == "PSEUDO"]
        negated_spans: list[tuple[int, int]] = []
        ordered = sorted(items, key=lambda it: it.start)
        # words naming a place or a side ("in the upper outer quadrant of the right breast")
        # modify the finding: they do not count towards the reach (max_gap) of a predicate
        # cue ("... is not seen", "no se observan ..."); a bidirectional cue is an adjective
        # ("previa", "stable") of the words next to it and keeps its plain reach
        places = {
            k
            for index in (self._locations, self._sides)
            for a, b, _ in index.scan(norms, lo, hi)
            for k in range(a, b)
        }
        for s, e, payloads in cues:
            cue = payloads[0]
            if cue.category in ("PSEUDO", "TERMINATE"):
                continue
            if cue.category != "HISTORICAL" and any(ps <= s and e <= pe for ps, pe in pseudo):
                continue
            scoped: list[_Item] = []
            skip: set[int] = set() if cue.direction == "BIDIRECTIONAL" else places
            # "new" is an adjective of the finding next to it ("a new 9 mm mass", "nódulo de
            # nueva aparición"), not of one further on ("ganglio nuevo ... junto a calcificaciones
            # sin cambios"); looking back, of the nearest one only
            new = cue.category == "NEW"
            reach = _NEW_REACH if new else self._max_gap
            if cue.direction in ("FORWARD", "BIDIRECTIONAL"):
                scoped += self._forward(ordered, e, connectors, terminators, hi, norms, skip, reach)
            if cue.direction in ("BACKWARD", "BIDIRECTIONAL"):
                back = self._backward(ordered, s, connectors, terminators, lo, norms, skip, reach)
                scoped += back[:1] if new else back
            elif (
                not scoped
                and (e >= hi or norms[e] in _CLAUSE_ENDS)
                and any(p.category == cue.category and p.direction == "BACKWARD" for p in payloads)
            ):
                # a cue listed both ways that ends its clause with nothing after it looks back:
                # "un area de distorsion ... no se observa"
                scoped = self._backward(ordered, s, connectors, terminators, lo, norms, skip, reach)
            for it in scoped:
                if cue.category == "NEGATED_EXISTENCE":
                    it.negated = True
                elif cue.category in ("HYPOTHETICAL", "REMOVED"):
                    it.hypothetical = True
                elif cue.category == "POSSIBLE_EXISTENCE":
                    it.uncertain = True
                elif cue.category == "HISTORICAL":
                    it.historical = True
                elif cue.category == "NEW":
                    it.new = True
            if cue.category == "NEGATED_EXISTENCE" and cue.direction == "FORWARD":
                stop = min([t for t in terminators if t >= e] + [hi, e + self._max_gap])
                last = max([it.end for it in scoped], default=stop)
                negated_spans.append((e, max(stop, last)))
        for it in items:
            # "a new mass compared with the prior study", "nódulo de nueva aparición respecto
            # al estudio previo": the comparison does not make the finding a known one
            it.historical = it.historical and not it.new
        return negated_spans

    def _apply_label_values(self, items: list[_Item], norms: list[str], lo: int, hi: int) -> None:
        """Findings named as a label whose value says there are none ("Mass: none.",
        "Masses and calcifications: not seen", "Distorsión: no.") or names them only negated
        ("Lymph nodes: no axillary adenopathy"): negated."""
        boundary = lo
        for c in range(lo, hi):
            if norms[c] in (".", ";"):
                boundary = c + 1
            if norms[c] != ":":
                continue
            label = [it for it in items if boundary <= it.start and it.end <= c]
            boundary = c + 1
            if not label:
                continue
            for value in self._negative_values:
                after = c + 1 + len(value)
                if tuple(norms[c + 1 : after]) != value:
                    continue
                if value == ("no",) and after < hi and norms[after] not in _CLAUSE_ENDS:
                    break  # "Mass: no change", "Lymph nodes: no adenopathy" (below)
                for it in label:
                    it.negated = True
                break
            end = next((k for k in range(c + 1, hi) if norms[k] in (".", ";", ":")), hi)
            said = [it for it in items if c < it.start and it.end <= end]
            for it in label:
                same = [o for o in said if o.kind == it.kind]
                if same and all(o.negated for o in same):
                    it.negated = True

    def _forward(
        self,
        ordered: list[_Item],
        cue_end: int,
        connectors: set[int],
        terminators: list[int],
        hi: int,
        norms: list[str],
        places: set[int],
        reach: int,
    ) -> list[_Item]:
        stop = min([t for t in terminators if t >= cue_end] + [hi])
        scoped: list[_Item] = []
        prev_end = cue_end
        for it in ordered:
            if it.start < cue_end:
                continue
            if it.start >= stop:
                break
            gap = it.start - prev_end
            if not scoped:
                skipped = len(places.intersection(range(prev_end, it.start)))
                if gap - skipped > reach:
                    break
            elif gap < 0:
                pass  # another finding named by the same words ("skin thickening or retraction")
            elif gap == 0 and it.kind != scoped[-1].kind:
                pass  # unpunctuated dictation: "no suspicious mass calcification or distortion"
            elif (
                gap > self._chain_gap or not any(prev_end <= c < it.start for c in connectors)
            ) and not _same_item(scoped[-1], it, norms):
                # "a dominant mass lesion, ...", "an area of distortion": a generic head next to
                # a finding word belongs to the same list item; anything else ends the list
                break
            scoped.append(it)
            prev_end = max(prev_end, it.end)
        return scoped

    def _backward(
        self,
        ordered: list[_Item],
        cue_start: int,
        connectors: set[int],
        terminators: list[int],
        lo: int,
        norms: list[str],
        places: set[int],
        reach: int,
    ) -> list[_Item]:
        stop = max([t for t in terminators if t < cue_start] + [lo - 1])
        scoped: list[_Item] = []
        next_start = cue_start
        for it in reversed(ordered):
            if it.end > cue_start:
                continue
            if it.start <= stop:
                break
            gap = next_start - it.end
            if not scoped:
                skipped = len(places.intersection(range(it.end, next_start)))
                if gap - skipped > reach:
                    break
            elif gap < 0:
                pass
            elif (
                gap > self._chain_gap or not any(it.end <= c < next_start for c in connectors)
            ) and not _same_item(it, scoped[-1], norms):
                break
            scoped.append(it)
            next_start = min(next_start, it.start)
        return scoped

    # ------------------------------------------------------------------ attachment

    @staticmethod
    def _nearest(items: Sequence[_Item], pos: int, end: int) -> list[_Item]:
        """Items by distance from the token range ``[pos, end)`` (nearest first)."""

        def distance(it: _Item) -> int:
            if it.end <= pos:
                return pos - it.end
            if it.start >= end:
                return it.start - end
            return 0

        return sorted(items, key=lambda it: (distance(it), it.start < pos))

    def _attach_descriptors(
        self,
        items: list[_Item],
        norms: list[str],
        lo: int,
        hi: int,
        negated_spans: list[tuple[int, int]],
    ) -> None:
        for s, e, options in self._descriptors.scan(norms, lo, hi):
            near = [
                it
                for it in self._nearest(items, s, e)
                if min(abs(it.start - e), abs(s - it.end)) <= _ATTACH_WINDOW
            ]
            before = next((it for it in near if it.end <= s), None)
            after = next((it for it in near if it.start >= e), None)
            inside = [it for it in near if it.start < e and s < it.end]
            candidates = inside + [it for it in near if it is before or it is after]
            touching = [it for it in candidates if it.start <= e and s <= it.end]
            if touching and not any(self._accepts(it, options) for it in touching):
                # "an oval lymph node", "un ganglio ovalado": the word describes the finding
                # it stands next to, which has no such field; it is not another finding's
                continue
            if not any(self._accepts(it, options) for it in candidates):
                # a long sentence with one finding that takes this descriptor: it is that one's
                takers = [it for it in items if it.kind != _GENERIC and self._accepts(it, options)]
                if len(takers) == 1:
                    candidates = takers
            for it in candidates:
                chosen = self._accepts(it, options)
                if chosen is None:
                    continue
                negated_here = any(a <= s < b for a, b in negated_spans)
                if negated_here and not it.negated:
                    break
                name, value = chosen
                if it.kind == _GENERIC:
                    it.kind = "mass"
                it.add(name, value)
                if e <= it.start:
                    it.lead = s if it.lead is None else min(it.lead, s)
                break

    @staticmethod
    def _accepts(it: _Item, options: list[tuple[str, str]]) -> tuple[str, str] | None:
        for name, value in options:
            if it.kind == _GENERIC and name in _MASS_FIELDS:
                return name, value
            if name in _ACCEPTS.get(it.kind, ()):
                return name, value
        return None

    def _attach_locations(
        self,
        items: list[_Item],
        folded: str,
        tokens: Tokens,
        norms: list[str],
        lo: int,
        hi: int,
        heads: dict[int, _Item],
        has_digit: bool = True,
    ) -> None:
        bounds = [lo + k for k, w in enumerate(norms[lo:hi]) if w == "," or w == ";"]

        def in_clause(s: int, e: int) -> list[_Item]:
            # "a mass in the UIQ, calcifications in the LOQ": a place binds within its own
            # clause when a finding is there, not to a nearer one across the comma
            a = max([b for b in bounds if b < s] + [lo - 1])
            z = min([b for b in bounds if b >= e] + [hi])
            return [it for it in items if a < it.start and it.end <= z] or items

        for s, e, payloads in self._locations.scan(norms, lo, hi):
            name, value = payloads[0]
            for nearest in self._nearest(in_clause(s, e), s, e)[:1]:
                head = heads.get(id(nearest))
                if head is not None and e == nearest.start:
                    break  # "central microcalcification": a place inside the lesion
                # "... with central calcification seen in the inner quadrant": the lesion's place
                it = nearest if head is None else head
                if name == "quadrant" and it.quadrant is None:
                    it.quadrant = value
                elif name == "depth" and it.depth is None:
                    it.depth = value
                elif name == "union" and it.union is None:
                    it.union = value
        if not has_digit:
            return  # clock positions need a number
        begin, finish = tokens.starts[lo], tokens.ends[hi - 1]
        for pattern in self._clock:
            for m in pattern.finditer(folded, begin, finish):
                clock = _clock(m)
                if clock is None:
                    continue
                s = _token_at(tokens, m.start(), lo, hi)
                for nearest in self._nearest(in_clause(s, s + 1), s, s + 1)[:1]:
                    # "mass with central calcifications at 2 o'clock": the lesion's position
                    it = heads.get(id(nearest)) or nearest
                    if it.clock is None:
                        it.clock = clock

    def _attach_sizes(
        self,
        items: list[_Item],
        folded: str,
        tokens: Tokens,
        lo: int,
        hi: int,
        norms: list[str],
        heads: dict[int, _Item],
    ) -> None:
        begin, finish = tokens.starts[lo], tokens.ends[hi - 1]
        for m in _SIZE.finditer(folded, begin, finish):
            tail = " ".join(folded[m.end() : m.end() + 30].split())
            if any(tail.startswith(x) for x in self._size_exclusions):
                continue
            values = [float(g.replace(",", ".")) for g in m.groups()[:3] if g]
            scale = 10.0 if m.group(4) in ("cm", "centimetros") else 1.0
            size = max(values) * scale
            s = _token_at(tokens, m.start(), lo, hi)
            sized = [it for it in items if it.kind in _SIZED and it.size_mm is None]
            near = self._nearest(sized, s, s + 1)

            def gap(it: _Item, s: int = s) -> int:
                # a finding begins at its descriptors ("16 mm cluster of amorphous calcs")
                first = it.start if it.lead is None else it.lead
                return s - it.end if it.end <= s else max(0, first - s - 1)

            if near and any(
                gap(o) <= 1 and gap(o) < gap(near[0]) and "," not in norms[o.end : s]
                for o in items
                if o.kind not in _SIZED
            ):
                continue  # "skin thickening of 4 mm over a mass": that finding's measure
            # a size belongs to the nearest mass-like finding of the sentence unless another
            # finding is right next to it ("a 16 mm group of calcifications")
            if near and gap(near[0]) > 3:
                lesions = [it for it in near if it.kind in _LESIONS]
                near = lesions or near
            for nearest in near[:1]:
                head = heads.get(id(nearest))
                it = nearest
                if (
                    head is not None
                    and head.size_mm is None
                    and (
                        "," in norms[nearest.end : s]  # "mass with calcifications, 16 mm"
                        # "nodular image, 15 mm, with fine linear calcifications inside"
                        or (head.end <= s < nearest.start and gap(nearest) > 1)
                    )
                ):
                    it = head  # the lesion's size
                it.size_mm = round(size, 1)

    def _attach_sides(
        self, items: list[_Item], norms: list[str], lo: int, hi: int, default: Laterality | None
    ) -> None:
        sides = [(s, e, p[0][0], p[0][1]) for s, e, p in self._sides.scan(norms, lo, hi)]
        if not sides:
            for it in items:
                it.side = it.fixed_side if it.fixed_side is not None else default
            return
        bounds = [lo + k for k, w in enumerate(norms[lo:hi]) if w == "," or w == ";"]

        def distance(x: tuple[int, int, Laterality, bool], it: _Item) -> int:
            if x[1] <= it.start:  # before the finding; Spanish side adjectives follow their noun
                return it.start - x[1] + (3 if x[3] else 0)
            return max(0, x[0] - it.end)

        ands = [lo + k for k, w in enumerate(norms[lo:hi]) if w in _AND_WORDS]
        for it in items:
            if it.fixed_side is not None:
                it.side = it.fixed_side
                continue
            clause_lo = max([b for b in bounds if b < it.start] + [lo - 1])
            clause_hi = min([b for b in bounds if b >= it.end] + [hi])
            in_clause = [x for x in sides if clause_lo < x[0] < clause_hi]
            # findings joined by "and", each with its own side ("mass in the right breast and
            # calcifications in the left breast"): each takes the side of its own conjunct
            part_lo = max([a for a in ands if clause_lo < a < it.start] + [clause_lo])
            part_hi = min([a for a in ands if it.end <= a < clause_hi] + [clause_hi])
            in_part = [x for x in in_clause if part_lo < x[0] < part_hi]
            others = [o for o in items if o is not it and clause_lo < o.start < clause_hi
                      and not part_lo < o.start < part_hi]  # fmt: skip
            if in_part and others:
                in_clause = in_part
            pool = in_clause or sides
            if len({x[2] for x in pool}) == 1:  # one side named in the sentence: it is that one
                near = pool
            else:
                near = [x for x in pool if distance(x, it) <= _SIDE_WINDOW]
            if near:
                values = {x[2] for x in near}
                if in_clause or len(values) > 1:
                    # at equal distance an English side word before the finding loses to the
                    # one after it: "a node in the left breast next to calcifications of the
                    # right breast" (a Spanish one before pays its word-order penalty instead)
                    it.side = min(
                        near, key=lambda x: (distance(x, it), x[1] <= it.start and not x[3])
                    )[2]
                else:
                    it.side = next(iter(values))
            else:
                it.side = default


# with the abbreviations of other house styles: "RT breast", "R breast", "mama dcha."
_RIGHT_WORDS = ["right", "right breast", "right side", "right sided", "derecha", "derecho",
                "derechas", "derechos", "mama derecha", "lado derecho", "rt breast", "r breast",
                "dcha", "dcho", "mama dcha"]  # fmt: skip
_LEFT_WORDS = ["left", "left breast", "left side", "left sided", "izquierda", "izquierdo",
               "izquierdas", "izquierdos", "mama izquierda", "lado izquierdo", "lt breast",
               "l breast", "izda", "izdo", "izqda", "izqdo", "mama izda", "mama izq"]  # fmt: skip
# Spain's MD/MI for mama derecha/izquierda, in capitals after a preposition ("CSE de MI", "en
# MD"): never "MD" the degree nor "en mi opinión"
_SIDE_CODES = {"MD": "derecha", "MI": "izquierda"}
_SIDE_CODE_BEFORE = frozenset({"en", "de", "la", "del", "a"})
_AND_WORDS = frozenset({"y", "e", "and"})
_CLAUSE_ENDS = frozenset({",", ";", ".", ":"})
# words that name the exam in a report's opening lines ("Estudio: mamografía unilateral")
_EXAM_WORDS = ("mammo", "mamogra", "mastogra", "mx")
# the signs a lesion shows in the skin and nipple, said in a sentence after it
_LESION_SIGNS = frozenset(
    {FindingType.SKIN_THICKENING, FindingType.SKIN_RETRACTION, FindingType.NIPPLE_RETRACTION}
)
_ONE_SIDE = (Laterality.LEFT, Laterality.RIGHT)
_NEW_REACH = 3  # words between "new" and its finding ("new 9 mm irregular mass")
_DIGIT = re.compile(r"\d")
# a report naming none of these has no ultrasound statement to look for
_US_WORDS = ("ecograf", "ultrason", "ultrasound", "sonogra", "usg", "echoic", "ecoic", "echotext")
# a report naming none of these states no normal node or axilla (normal_statements)
_NORMAL_WORDS = ("axil", "node", "gangli", "adenopat")
_CHAR_REACH = 3  # words between a "characterised as" cue and the finding word it names
_WITH_WORDS = frozenset({"with", "con", "showing", "containing", "contains", "contiene"})
_ELIDED_ARTICLES = frozenset({"un", "una", "unas", "unos", "algunas", "algunos", "a", "an", "one",
                              "some", "other", "otra", "otras", "otro", "otros",
                              "another"})  # fmt: skip
# words that stand for another finding of the kind just named ("and another in the left breast")
_ANAPHORS = frozenset({"another", "otro", "otra", "otros", "otras"})
_BOTH_WORDS = ["neither breast", "bilateral", "bilaterally", "bilaterales", "bilateralmente",
               "both breasts", "both", "either breast", "each breast", "either", "ambas mamas",
               "ambas", "ambos", "ambas regiones", "ambos lados", "left and right",
               "right and left", "derecha e izquierda", "izquierda y derecha",
               "derecho e izquierdo", "izquierdo y derecho", "bilat"]  # fmt: skip


# Spanish side words, which follow the noun they qualify ("ganglio axilar izquierdo",
# "cambios posquirúrgicos en la mama derecha"); English ones also precede it ("right breast mass").
_POSTPOSED_STARTS = ("derech", "izquierd", "mama ", "lado ", "amb", "bilaterales", "bilateralm",
                     "dch", "izd", "izq")  # fmt: skip
_POSTPOSED = frozenset(
    w for w in _RIGHT_WORDS + _LEFT_WORDS + _BOTH_WORDS if w.startswith(_POSTPOSED_STARTS)
)


def _side_codes(text: str, tokens: Tokens, norms: list[str]) -> list[str]:
    """``norms`` with Spain's MD/MI read as the sides they stand for, where they are in
    capitals after a preposition ("CSE de MI"); a copy when one is."""
    out = norms
    for i in range(1, len(norms)):
        if norms[i] in ("md", "mi") and norms[i - 1] in _SIDE_CODE_BEFORE:
            side = _SIDE_CODES.get(text[tokens.starts[i] : tokens.ends[i]])
            if side is not None:
                out = list(norms) if out is norms else out
                out[i] = side
    return out


def _literal_prefix(pattern: str) -> str:
    """The literal letters a data pattern starts with ("axil" for "axil(?:a|ae)...")."""
    m = re.match(r"[a-z ]+", pattern)
    prefix = m.group() if m else ""
    # a letter followed by "?" or "*" is optional: stop before it
    optional = pattern[len(prefix) : len(prefix) + 1] in ("?", "*")
    return prefix[:-1] if optional else prefix


def _dependent_heads(items: Sequence[_Item], norms: list[str]) -> dict[int, _Item]:
    """Findings introduced by "with"/"con" after a lesion ("opacity with spiculated margin and
    central microcalcification"), mapped (by ``id``) to that lesion: their locations are its."""
    heads: dict[int, _Item] = {}
    ordered = sorted(items, key=lambda it: it.start)
    for i, it in enumerate(ordered):
        if i == 0:
            continue
        prev = ordered[i - 1]
        head = heads.get(id(prev), prev)
        if head.kind not in _LESIONS and head.kind not in ("architectural_distortion", _GENERIC):
            continue
        between = norms[head.end : it.start]
        if any(w in _WITH_WORDS for w in between) and not any(w in (";", ".") for w in between):
            heads[id(it)] = head
    return heads


def _same_item(first: _Item, second: _Item, norms: list[str]) -> bool:
    """Whether two adjacent mentions name one list item: a finding word and a generic head
    ("mass lesion", "nodulo lesion") or a generic head "of" a finding ("area of distortion")."""
    gap = second.start - first.end
    if first.kind != _GENERIC and second.kind == _GENERIC:
        return gap == 0
    if first.kind == _GENERIC and second.kind != _GENERIC:
        return gap == 0 or (gap == 1 and norms[first.end] in ("of", "de"))
    return False


def _data_words(*names: str) -> frozenset[str]:
    """Every word that appears in the strings of some shipped data files."""
    words: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            words.update(w for w in re.findall(r"[a-z]+", node.lower()) if len(w) >= 4)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in names:
        walk(load_data(name))
    return frozenset(words)


def _token_at(tokens: Tokens, char: int, lo: int, hi: int) -> int:
    for i in range(lo, hi):
        if tokens.ends[i] > char:
            return i
    return hi - 1


def _clock(m: re.Match[str]) -> str | None:
    h1 = int(m.group("h1"))
    m1 = int(m.group("m1") or 0) if "m1" in m.re.groupindex else 0
    h2_raw = m.group("h2") if "h2" in m.re.groupindex else None
    if not 1 <= h1 <= 12:
        return None
    if h2_raw:
        h2 = int(h2_raw)
        if h2 == h1 % 12 + 1 and not m1:  # "2-3 o'clock": half past the first hour
            return f"{h1}:30"
        return f"{h1}:{m1:02d}"
    return f"{h1}:{m1:02d}"


_NO_DESCRIPTORS = FindingDescriptors()
_NO_LOCATION = FindingLocation()


def _descriptors(values: dict[str, list[str]], size_mm: float | None) -> FindingDescriptors:
    if not values and size_mm is None:
        return _NO_DESCRIPTORS  # frozen: one shared empty value
    asymmetry = values.get("asymmetry")
    data: dict[str, Any] = {k: v for k, v in values.items() if k != "asymmetry"}
    return FindingDescriptors.from_dict(
        {**data, "asymmetry": asymmetry[-1] if asymmetry else None, "size_mm": size_mm}
    )


def merge_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Merge mentions of one finding and fold a negation stated for each side.

    Mentions with the same type, side and negation are one finding (descriptors united, the
    first location and size kept, uncertain/historical only if every mention is). A negated
    finding stated for the left and for the right breast becomes one bilateral negation.
    """
    merged: dict[tuple[str, Laterality | None, bool], Finding] = {}
    for f in findings:
        key = (f.type.value, f.laterality, f.negated)
        prior = merged.get(key)
        merged[key] = f if prior is None else _merge(prior, f)
    for kind in {k[0] for k in merged}:
        left = merged.get((kind, Laterality.LEFT, True))
        right = merged.get((kind, Laterality.RIGHT, True))
        if left is not None and right is not None:
            both = (kind, Laterality.BILATERAL, True)
            first, second = sorted((left, right), key=lambda f: f.evidence.start)
            folded = _merge(first, second)
            folded = Finding(
                folded.type, folded.evidence, Laterality.BILATERAL, True, folded.uncertain,
                folded.historical, folded.descriptors, folded.location,
            )  # fmt: skip
            existing = merged.get(both)
            merged[both] = folded if existing is None else _merge(existing, folded)
            del merged[(kind, Laterality.LEFT, True)], merged[(kind, Laterality.RIGHT, True)]
    for kind in {k[0] for k in merged}:
        # a present finding named again without its side or anything of its own ("biopsy of
        # the calcifications is recommended") is the one the report placed
        unsided = merged.get((kind, None, False))
        if unsided is None or unsided.descriptors != _NO_DESCRIPTORS:
            continue
        sided = [merged[k] for k in merged if k[0] == kind and k[1] is not None and not k[2]]
        if sided and unsided.location == _NO_LOCATION:
            first = min(sided, key=lambda f: f.evidence.start)
            merged[(kind, first.laterality, False)] = _merge(first, unsided)
            del merged[(kind, None, False)]
    # a total order: findings of one phrase ("no skin thickening or nipple retraction") share
    # a start, and their order must not depend on how sets of them were iterated
    return sorted(merged.values(), key=lambda f: (f.evidence.start, f.evidence.end, f.type.value,
                                                  str(f.laterality), f.negated))  # fmt: skip


def _union(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    return a + tuple(v for v in b if v not in a)


def _merge(a: Finding, b: Finding) -> Finding:
    da, db = a.descriptors, b.descriptors
    # the second mention adds nothing when it has no descriptors (or no location): the
    # first's are the union, without building them again
    descriptors = da
    if db is not _NO_DESCRIPTORS:
        descriptors = FindingDescriptors(
            shape=_union(da.shape, db.shape),
            margin=_union(da.margin, db.margin),
            mass_density=_union(da.mass_density, db.mass_density),
            calc_morphology=_union(da.calc_morphology, db.calc_morphology),
            calc_distribution=_union(da.calc_distribution, db.calc_distribution),
            asymmetry=_more_specific(da.asymmetry, db.asymmetry),
            size_mm=da.size_mm if da.size_mm is not None else db.size_mm,
        )
    la, lb = a.location, b.location
    location = la
    if lb is not _NO_LOCATION:
        location = FindingLocation(
            la.quadrant or lb.quadrant, la.clock or lb.clock, la.depth or lb.depth
        )
    return Finding(
        a.type, a.evidence, a.laterality, a.negated, a.uncertain and b.uncertain,
        a.historical and b.historical, descriptors, location,
    )  # fmt: skip


def _more_specific(a: AsymmetryKind | None, b: AsymmetryKind | None) -> AsymmetryKind | None:
    if a is None or a is AsymmetryKind.ASYMMETRY:
        return b or a
    return a

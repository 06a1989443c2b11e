"""Warnings for reports whose stated category contradicts their own wording.

A report that states BI-RADS 1 or 2 while describing a spiculated mass or pleomorphic
calcifications, or BI-RADS 4 or 5 without any current finding, keeps its stated category (the
radiologist's assessment is the record) and gets a warning, so that a reviewer can look. So does
a finding that carries contradictory descriptors (margin circumscribed and spiculated: W205) and
a finding stated present on one side while the same type, unqualified, is stated absent for
both breasts (W206). Cues are data (``data/consistency.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union
from mammosearch.nlp.render import negation_qualifier
from mammosearch.nlp.sections import Segmentation
from mammosearch.records import (
    AsymmetryKind,
    CalcDistribution,
    CalcMorphology,
    Finding,
    FindingType,
    Laterality,
    Margin,
)

__all__ = ["ConsistencyCheck"]

_SRC = "consistency.json"


class ConsistencyCheck:
    """Compare a stated BI-RADS category with the report's wording.

    Args:
        data: The parsed ``consistency.json`` (defaults to the shipped file).
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data if data is not None else load_data(_SRC)
        self._low = frozenset(self.data["low_categories"])
        self._high = frozenset(self.data["high_categories"])
        self._suspicious = compile_pattern(union(self.data["suspicious"]), source=_SRC)
        self._negation = compile_pattern(self.data["negation"], source=_SRC)
        self._contradictions = [
            (str(r["field"]), frozenset(r["values"]), frozenset(r["against"]))
            for r in self.data.get("contradictory_descriptors", [])
        ]

    def finding_warnings(self, findings: Sequence[Finding]) -> list[str]:
        """Warnings about findings that contradict themselves or each other.

        W205: one finding carries contradictory descriptors; W206: a finding present on one
        side while the same type is stated absent, without a qualifier, for both breasts.
        Messages name types and descriptor values only, never report text.
        """
        out: list[str] = []
        for f in findings:
            d = f.descriptors
            if len(d.margin) + len(d.shape) + len(d.mass_density) + len(d.calc_distribution) < 2:
                continue
            for field, mine, against in self._contradictions:
                have = {v.value for v in getattr(d, field)}
                if have & mine and have & against:
                    pair = ", ".join(sorted(have & (mine | against)))
                    out.append(
                        f"W205: a {f.type.value} carries contradictory {field} descriptors "
                        f"({pair}); kept both"
                    )
        absent_both = {
            f.type
            for f in findings
            if f.negated and f.laterality is Laterality.BILATERAL and not f.historical
        }
        if absent_both:
            present_sided = {
                f.type
                for f in findings
                if not f.negated and f.laterality in (Laterality.LEFT, Laterality.RIGHT)
            }
            absent_both = {
                f.type
                for f in findings
                if f.type in present_sided
                and f.negated
                and f.laterality is Laterality.BILATERAL
                and not f.historical
                and not negation_qualifier(f)
            }
        for f in findings:
            sided = f.laterality in (Laterality.LEFT, Laterality.RIGHT)
            if not f.negated and sided and not f.historical and f.type in absent_both:
                side = f.laterality.value if f.laterality else ""
                out.append(
                    f"W206: a {f.type.value} is stated in the {side} breast while the report "
                    "states none in either breast"
                )
                absent_both.discard(f.type)
        return list(dict.fromkeys(out))

    def warnings(
        self,
        folded: str,
        seg: Segmentation,
        category: str | None,
        findings: Sequence[Finding] = (),
    ) -> list[str]:
        """Warnings about ``category`` given the report's wording and findings."""
        if category is None:
            return []
        current = [f for f in findings if not f.negated and not f.historical]
        if category in self._high and not current and findings:
            return [
                f"W204: the stated BI-RADS {category} has no current finding in the report; "
                "kept the stated category"
            ]
        if category not in self._low:
            return []
        if any(_suspicious(f) for f in current):
            return [_low_warning(category, "a finding with suspicious descriptors")]
        for m in self._suspicious.finditer(folded):
            sentence = seg.at(m.start())
            start = sentence.start if sentence else max(0, m.start() - 80)
            if sentence is not None and sentence.section in ("history", "comparison"):
                continue
            if self._negation.search(folded, start, m.start()):
                continue
            return [_low_warning(category, f"suspicious wording (at {m.start()}-{m.end()})")]
        return []


def _low_warning(category: str, what: str) -> str:
    return f"W203: the stated BI-RADS {category} contradicts {what}; kept the stated category"


_SUSPICIOUS_MORPHOLOGY = frozenset(
    {CalcMorphology.FINE_PLEOMORPHIC, CalcMorphology.FINE_LINEAR, CalcMorphology.AMORPHOUS}
)
_SUSPICIOUS_DISTRIBUTION = frozenset({CalcDistribution.LINEAR, CalcDistribution.SEGMENTAL})


def _suspicious(finding: Finding) -> bool:
    """BI-RADS descriptors that make a finding suspicious by themselves."""
    d = finding.descriptors
    return (
        Margin.SPICULATED in d.margin
        or Margin.MICROLOBULATED in d.margin
        or bool(_SUSPICIOUS_MORPHOLOGY & set(d.calc_morphology))
        or bool(_SUSPICIOUS_DISTRIBUTION & set(d.calc_distribution))
        or d.asymmetry is AsymmetryKind.DEVELOPING
        or (finding.type is FindingType.ARCHITECTURAL_DISTORTION and not finding.uncertain)
    )

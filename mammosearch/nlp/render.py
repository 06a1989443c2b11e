"""Canonical English rendering of a normalized report (``standardized_text``).

Every report, whatever its language and house style, renders in the same order and wording,
so that downstream text embedders and readers see one style.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

from mammosearch.nlp._resources import alternation, load_data
from mammosearch.nlp._text import fold
from mammosearch.records import (
    AsymmetryKind,
    BiradsAssessment,
    BiradsCategory,
    DensityAssessment,
    DensityCategory,
    Finding,
    FindingType,
    Laterality,
    Recommendation,
)

__all__ = ["negation_qualifier", "render_standardized"]

_DENSITY_WORDS = {
    DensityCategory.A: "the breasts are almost entirely fatty",
    DensityCategory.B: "there are scattered areas of fibroglandular density",
    DensityCategory.C: "the breasts are heterogeneously dense",
    DensityCategory.D: "the breasts are extremely dense",
}
_RECOMMENDATION_WORDS = {
    Recommendation.ROUTINE_SCREENING: "routine screening mammography",
    Recommendation.SHORT_INTERVAL_FOLLOW_UP: "short-interval follow-up",
    Recommendation.ADDITIONAL_IMAGING: "additional imaging evaluation",
    Recommendation.BIOPSY: "tissue sampling (biopsy)",
    Recommendation.CLINICAL_CORRELATION: "clinical correlation",
}


def _sides(by_side: Mapping[Laterality, str]) -> str:
    parts = [f"{side.value} {by_side[side]}" for side in (Laterality.RIGHT, Laterality.LEFT)
             if side in by_side]  # fmt: skip
    return f" (by side: {', '.join(parts)})" if parts else ""


_TYPE_WORDS = {
    FindingType.MASS: "mass",
    FindingType.CALCIFICATION: "calcifications",
    FindingType.ASYMMETRY: "asymmetry",
    FindingType.ARCHITECTURAL_DISTORTION: "architectural distortion",
    FindingType.LYMPH_NODE: "lymph node",
    FindingType.SKIN_THICKENING: "skin thickening",
    FindingType.SKIN_RETRACTION: "skin retraction",
    FindingType.NIPPLE_RETRACTION: "nipple retraction",
    FindingType.DILATED_DUCT: "dilated duct",
    FindingType.IMPLANT: "implant",
    FindingType.POST_SURGICAL: "post-surgical change",
    FindingType.OTHER: "other finding",
}
_QUADRANT_WORDS = {
    "UOQ": "upper outer quadrant",
    "UIQ": "upper inner quadrant",
    "LOQ": "lower outer quadrant",
    "LIQ": "lower inner quadrant",
    "central": "central region",
    "retroareolar": "retroareolar region",
    "axillary_tail": "axillary tail",
}
_SIDE_HEADINGS = (
    (Laterality.RIGHT, "Right breast"),
    (Laterality.LEFT, "Left breast"),
    (Laterality.BILATERAL, "Both breasts"),
    (None, "Side not stated"),
)


def _words(values: Sequence[Any]) -> str:
    return " ".join(str(v.value).replace("_", " ") for v in values)


def _finding_phrase(finding: Finding) -> str:
    """One positive finding: '[possible ][stable ]<descriptors> <type>[, details]'."""
    d, loc = finding.descriptors, finding.location
    before = [_words(d.shape), _words(d.mass_density) + (" density" if d.mass_density else "")]
    before += [_words(d.calc_morphology), _words(d.calc_distribution)]
    if d.asymmetry is not None and d.asymmetry is not AsymmetryKind.ASYMMETRY:
        before.append(d.asymmetry.value)
    head = " ".join(w for w in before if w) + " " + _TYPE_WORDS[finding.type]
    details = []
    if d.margin:
        details.append(f"with {_words(d.margin)} margins")
    if d.size_mm is not None:
        details.append(f"{d.size_mm:g} mm")
    if loc.quadrant is not None:
        details.append(f"in the {_QUADRANT_WORDS[loc.quadrant.value]}")
    if loc.clock is not None:
        details.append(f"at {loc.clock}")
    if loc.depth is not None:
        details.append(f"{loc.depth.value} depth")
    prefix = ("possible " if finding.uncertain else "") + ("stable " if finding.historical else "")
    return prefix + ", ".join([head.strip(), *details])


@cache
def _qualifier_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(English word, pattern over folded evidence) of the qualifiers in findings.json."""
    out = []
    for word, where in load_data("findings.json").get("qualifiers", {}).items():
        if word.startswith("_"):
            continue
        phrases = [*where["before"], *where["after"]]
        out.append((word, re.compile(rf"\b(?:{alternation(phrases)})\b")))
    return tuple(out)


def negation_qualifier(finding: Finding) -> str:
    """The qualifier a finding's evidence carries ("suspicious " in "no suspicious
    calcifications"), with a trailing space, or "" when it has none."""
    return _qualifier_of(finding.evidence.text)


@lru_cache(maxsize=4096)
def _qualifier_of(evidence: str) -> str:
    if " " not in evidence.strip() and "-" not in evidence:
        return ""  # one word: the finding word alone
    text = " ".join(re.findall(r"[a-z0-9]+", fold(evidence)))
    for word, pattern in _qualifier_patterns():
        if pattern.search(text):
            return word + " "
    return ""


def _render_findings(findings: Sequence[Finding]) -> str:
    parts: list[str] = []
    for side, heading in _SIDE_HEADINGS:
        present = [f for f in findings if f.laterality is side and not f.negated]
        absent = [f for f in findings if f.laterality is side and f.negated]
        phrases = [_finding_phrase(f) for f in present]
        if absent:
            names = list(dict.fromkeys(negation_qualifier(f) + _TYPE_WORDS[f.type] for f in absent))
            listed = ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]
            phrases.append(f"no {listed}")
        if phrases:
            text = "; ".join(phrases)
            parts.append(f"{heading}: {text[0].upper()}{text[1:]}.")
    return " ".join(parts)


def render_standardized(
    density: DensityAssessment | None,
    density_by_side: Mapping[Laterality, DensityCategory],
    birads: BiradsAssessment | None,
    birads_by_side: Mapping[Laterality, BiradsCategory],
    findings: Sequence[Finding] = (),
    recommendation: Recommendation | None = None,
) -> str:
    """Render the extracted terms as one canonical English report.

    Example:
        >>> render_standardized(None, {}, None, {})
        'Breast composition: not stated.\\nAssessment: not stated.'
    """
    lines: list[str] = []
    if density is None:
        lines.append("Breast composition: not stated.")
    else:
        by_side = {k: v.value for k, v in density_by_side.items()}
        lines.append(
            f"Breast composition: ACR {density.category.value}, "
            f"{_DENSITY_WORDS[density.category]}{_sides(by_side)}."
        )
    if findings:
        lines.append("Findings: " + _render_findings(findings))
    if birads is None:
        lines.append("Assessment: not stated.")
    else:
        by_side = {k: v.value for k, v in birads_by_side.items()}
        lines.append(
            f"Assessment: BI-RADS {birads.category.value}, {birads.category.meaning}"
            f"{_sides(by_side)}."
        )
    if recommendation is not None:
        lines.append(f"Recommendation: {_RECOMMENDATION_WORDS[recommendation]}.")
    return "\n".join(lines)

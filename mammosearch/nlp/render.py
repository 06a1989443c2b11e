"""Canonical English rendering of a normalized report (``standardized_text``).

Every report, whatever its language and house style, renders in the same order and wording,
so that downstream text embedders and readers see one style.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mammosearch.records import (
    BiradsAssessment,
    BiradsCategory,
    DensityAssessment,
    DensityCategory,
    Finding,
    Laterality,
    Recommendation,
)

__all__ = ["render_standardized"]

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


def _finding_sentence(finding: Finding) -> str:
    words = finding.type.value.replace("_", " ")
    side = f" in the {finding.laterality.value} breast" if finding.laterality else ""
    if finding.laterality is Laterality.BILATERAL:
        side = " in both breasts"
    if finding.negated:
        return f"No {words}{side}."
    prefix = "Possible " if finding.uncertain else ""
    suffix = " (stable or prior)" if finding.historical else ""
    text = f"{prefix}{words}{side}{suffix}."
    return text[0].upper() + text[1:]


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
        lines.append("Findings: " + " ".join(_finding_sentence(f) for f in findings))
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

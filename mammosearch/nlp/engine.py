"""The report engine: every stage of normalization over one prepared text.

:class:`ReportEngine` runs sections → density → BI-RADS → findings → recommendation and
assembles the :class:`~mammosearch.records.NormalizedReport`. The spaCy components of
:mod:`mammosearch.nlp.components` call the same stages one by one and store their results on
the doc; :class:`~mammosearch.nlp.normalizer.Normalizer` calls the engine directly, which skips
building a spaCy ``Doc`` per report (a fifth of the time on short reports) and gives the same
output (a test holds the two paths equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mammosearch.nlp._text import PreparedText
from mammosearch.nlp.assessment import BiradsExtractor, resolve_birads
from mammosearch.nlp.consistency import ConsistencyCheck
from mammosearch.nlp.context import ContextRules
from mammosearch.nlp.density import DensityExtractor, resolve_density
from mammosearch.nlp.findings import FindingsExtractor
from mammosearch.nlp.mentions import CategoryMention
from mammosearch.nlp.recommendation import RecommendationFinder
from mammosearch.nlp.render import render_standardized
from mammosearch.nlp.sections import Segmentation, Segmenter
from mammosearch.records import (
    BiradsAssessment,
    BiradsCategory,
    DensityAssessment,
    DensityCategory,
    Finding,
    NormalizedReport,
    Recommendation,
    Span,
)

__all__ = ["Analysis", "ReportEngine", "assemble_report"]


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the stages found in one report (offsets in the analysis text)."""

    segmentation: Segmentation
    density: list[CategoryMention]
    birads: list[CategoryMention]
    findings: list[Finding]
    recommendation: Recommendation | None


class ReportEngine:
    """All normalization stages with the shipped rules (built once, reused for every report)."""

    def __init__(self) -> None:
        context = ContextRules()
        self.segmenter = Segmenter()
        self.density = DensityExtractor(context=context)
        self.birads = BiradsExtractor(context=context, density_context=self.density.density_context)
        self.findings = FindingsExtractor()
        self.recommendation = RecommendationFinder()
        self.consistency = ConsistencyCheck()

    def analyze(self, prepared: PreparedText) -> Analysis:
        """Run every stage over a prepared text."""
        text, folded = prepared.text, prepared.folded
        seg = self.segmenter(text, folded)
        return Analysis(
            segmentation=seg,
            density=self.density(text, folded, seg, complete=False),
            birads=self.birads(text, folded, seg),
            findings=self.findings(text, folded, seg),
            recommendation=self.recommendation(folded, seg),
        )

    def report(
        self,
        prepared: PreparedText,
        *,
        id: str,
        language: str | None,
        warnings: Sequence[str] = (),
    ) -> NormalizedReport:
        """Analyze a prepared text and assemble its normalized report."""
        return assemble_report(
            prepared, self.analyze(prepared), self.consistency, id=id, language=language,
            warnings=warnings,
        )  # fmt: skip


def assemble_report(
    prepared: PreparedText,
    analysis: Analysis,
    consistency: ConsistencyCheck,
    *,
    id: str,
    language: str | None,
    warnings: Sequence[str] = (),
) -> NormalizedReport:
    """Resolve the stages' output into the report, with spans mapped to the input text."""

    def to_input(start: int, end: int) -> Span:
        o_start, o_end = prepared.to_original(start, end)
        return Span(prepared.original[o_start:o_end], o_start, o_end)

    d = resolve_density(analysis.density)
    b = resolve_birads(analysis.birads)
    density = None
    if d.overall is not None:
        density = DensityAssessment(
            DensityCategory(d.overall.value),
            to_input(d.overall.start, d.overall.end),
            d.overall.side,
        )
    birads = None
    if b.overall is not None:
        birads = BiradsAssessment(
            BiradsCategory(b.overall.value), to_input(b.overall.start, b.overall.end)
        )
    if prepared.starts is None and prepared.original is prepared.text:
        findings = tuple(analysis.findings)  # the evidence already indexes the input
    else:
        findings = tuple(
            _with_evidence(f, to_input(f.evidence.start, f.evidence.end)) for f in analysis.findings
        )
    density_by_side = {k: DensityCategory(v) for k, v in d.by_side.items()}
    birads_by_side = {k: BiradsCategory(v) for k, v in b.by_side.items()}
    notes = [*warnings, *d.warnings, *b.warnings]
    notes += consistency.warnings(
        prepared.folded, analysis.segmentation, birads.category.value if birads else None, findings
    )
    notes += consistency.finding_warnings(findings)
    if not prepared.text.strip():
        notes.append("W002: the report is empty")
    return NormalizedReport(
        id=id,
        language=language,
        density=density,
        density_by_side=density_by_side,
        birads=birads,
        birads_by_side=birads_by_side,
        findings=findings,
        recommendation=analysis.recommendation,
        standardized_text=render_standardized(
            density, density_by_side, birads, birads_by_side, findings, analysis.recommendation
        ),
        warnings=tuple(notes),
    )


def _with_evidence(f: Finding, evidence: Span) -> Finding:
    return Finding(
        f.type, evidence, f.laterality, f.negated, f.uncertain, f.historical, f.descriptors,
        f.location,
    )  # fmt: skip

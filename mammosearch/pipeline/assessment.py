"""The results of ``assess``: one image's :class:`Assessment` (its :class:`DensityDecision`
and each path's opinion) and one exam's :class:`ExamAssessment`, each with one JSON form
(``to_dict`` / ``from_dict``) that the CLI, the UI and the JSON Lines outputs share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mammosearch.pipeline.records import side_code
from mammosearch.records import DensityVote, Laterality, Neighbour, NormalizedReport

__all__ = [
    "MODEL_PATHS",
    "Assessment",
    "DensityDecision",
    "ExamAssessment",
    "ModelOpinion",
    "SideDensity",
]

# the density model's own opinions an assessment always reports (``null`` without a model)
MODEL_PATHS = ("convnext", "probe")


@dataclass(frozen=True, slots=True)
class DensityDecision:
    """The density an assessment gives, and the path that decided.

    Attributes:
        label: The density label (``None`` when nothing could decide).
        probabilities: Probability per label.
        method: ``report``, ``vote``, ``convnext``, ``probe``, ``ensemble`` or an exam's rule.
        confidence: The chosen label's probability.
        weights: The ensemble's weights per path, when an ensemble decided.
    """

    label: str | None
    probabilities: Mapping[str, float]
    method: str
    confidence: float
    weights: Mapping[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"label": self.label, "probabilities": dict(self.probabilities),
                               "method": self.method, "confidence": self.confidence}  # fmt: skip
        if self.weights is not None:
            out["weights"] = dict(self.weights)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DensityDecision:
        """Read :meth:`to_dict`'s form back."""
        weights = data.get("weights")
        return cls(data.get("label"), dict(data.get("probabilities") or {}), str(data["method"]),
                   float(data.get("confidence") or 0.0),
                   dict(weights) if weights is not None else None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelOpinion:
    """One image model's own answer (the density model's ConvNeXt or its probe)."""

    label: str
    probabilities: Mapping[str, float]

    @classmethod
    def of(cls, probabilities: Mapping[str, float]) -> ModelOpinion:
        """The opinion whose label is the most probable one."""
        return cls(max(probabilities, key=probabilities.__getitem__), dict(probabilities))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"label": self.label, "probabilities": dict(self.probabilities)}


@dataclass(frozen=True, slots=True)
class Assessment:
    """The density of one image, with every path's opinion (``assess``'s JSON object).

    Attributes:
        density: The decision (``None`` only for a failed row).
        vote: The neighbours' vote.
        opinions: The density model's paths (:data:`MODEL_PATHS`) that answered.
        neighbours: The neighbours that voted.
        report: The normalized report (scrubbed), when one was given.
        warnings: What the reader should know.
        laterality: The image's side, when known.
        case_id: The exam, for manifest rows.
        row: The manifest row number, for manifest rows.
        error: Why the row could not be assessed.
    """

    density: DensityDecision | None
    vote: DensityVote | None = None
    opinions: Mapping[str, ModelOpinion] = field(default_factory=dict)
    neighbours: tuple[Neighbour, ...] = ()
    report: NormalizedReport | None = None
    warnings: tuple[str, ...] = ()
    laterality: Laterality | None = None
    case_id: str | None = None
    row: int | None = None
    error: str | None = None

    @classmethod
    def failed(cls, case_id: str, row: int, error: str) -> Assessment:
        """A manifest row that could not be assessed."""
        return cls(None, case_id=case_id, row=row, error=error)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``case_id``, ``row`` (manifest rows), ``laterality``, ``density``,
        ``vote``, ``convnext``, ``probe``, ``neighbours``, ``report``, ``warnings``; a failed
        row has ``case_id``, ``row`` and ``error`` only."""
        out: dict[str, Any] = {"case_id": self.case_id}
        if self.row is not None:
            out["row"] = self.row
        if self.error is not None:
            return {**out, "error": self.error}
        out["laterality"] = side_code(self.laterality) or None
        out["density"] = self.density.to_dict() if self.density else None
        out["vote"] = self.vote.to_dict() if self.vote else None
        for path in MODEL_PATHS:
            opinion = self.opinions.get(path)
            out[path] = opinion.to_dict() if opinion else None
        out["neighbours"] = [n.to_dict() for n in self.neighbours]
        out["report"] = self.report.to_dict() if self.report else None
        out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Read :meth:`to_dict`'s form back."""
        row = data.get("row")
        if data.get("error") is not None:
            return cls.failed(str(data.get("case_id")), int(row or 0), str(data["error"]))
        density, vote, report = data.get("density"), data.get("vote"), data.get("report")
        return cls(
            density=DensityDecision.from_dict(density) if density else None,
            vote=DensityVote.from_dict(vote) if vote else None,
            opinions={p: ModelOpinion(str(data[p]["label"]), dict(data[p]["probabilities"]))
                      for p in MODEL_PATHS if data.get(p)},
            neighbours=tuple(Neighbour.from_dict(n) for n in data.get("neighbours") or ()),
            report=NormalizedReport.from_dict(report) if report else None,
            warnings=tuple(data.get("warnings") or ()),
            laterality=Laterality.parse(data.get("laterality")),
            case_id=data.get("case_id"), row=int(row) if row is not None else None,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SideDensity:
    """One breast's density in an exam: the mean of its views' probabilities.

    Attributes:
        label: The most probable label.
        probabilities: The mean probability per label.
        views: How many views it was decided from.
    """

    label: str
    probabilities: Mapping[str, float]
    views: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"label": self.label, "probabilities": dict(self.probabilities), "views": self.views}


@dataclass(frozen=True, slots=True)
class ExamAssessment:
    """The density of one exam (``assess --exams``): the denser breast's label.

    Attributes:
        label: The exam's label (``None`` when no view could be assessed).
        by_side: Each breast's density by its code (``L``, ``R``; ``unknown`` for views of
            unknown side, counted as one more breast).
        views: The views used.
        failed: The views that could not be assessed.
        view_methods: How many views each path decided.
        case_id: The exam.
        images: Its views' own assessments, in manifest order.
    """

    label: str | None
    by_side: Mapping[str, SideDensity]
    views: int
    failed: int
    view_methods: Mapping[str, int]
    case_id: str | None = None
    images: tuple[Assessment, ...] = ()

    METHOD = "exam: denser breast"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``case_id``, ``density`` (label and method), ``by_side``, ``views``,
        ``failed``, ``view_methods`` and one line per view in ``images`` (row, side, label,
        method, error)."""
        images = []
        for view in self.images:
            density = view.density
            images.append({"row": view.row, "laterality": side_code(view.laterality) or None,
                           "label": density.label if density else None,
                           "method": density.method if density else None,
                           "error": view.error})  # fmt: skip
        return {
            "case_id": self.case_id,
            "density": {"label": self.label, "method": self.METHOD},
            "by_side": {side: d.to_dict() for side, d in self.by_side.items()},
            "views": self.views,
            "failed": self.failed,
            "view_methods": dict(self.view_methods),
            "images": images,
        }

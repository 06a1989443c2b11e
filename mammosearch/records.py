"""Types that cross subpackage boundaries.

Internal values are frozen, slotted dataclasses; closed vocabularies are :class:`enum.StrEnum`
so that their JSON form is their value. :class:`NormalizedReport` is the report contract of
DESIGN.md: :meth:`NormalizedReport.to_dict` always emits every key, and
:meth:`NormalizedReport.from_dict` reads that form back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, cast

__all__ = [
    "AsymmetryKind",
    "BiradsAssessment",
    "BiradsCategory",
    "CalcDistribution",
    "CalcMorphology",
    "DensityAssessment",
    "DensityVote",
    "DensityCategory",
    "Depth",
    "Finding",
    "FindingDescriptors",
    "FindingLocation",
    "FindingType",
    "Laterality",
    "Margin",
    "MassDensity",
    "Neighbour",
    "NormalizedReport",
    "Quadrant",
    "Recommendation",
    "Shape",
    "Span",
    "View",
]


class DensityCategory(StrEnum):
    """ACR BI-RADS 5th-edition breast composition (a-d)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def rank(self) -> int:
        """Order from least (A=0) to most dense (D=3)."""
        return "ABCD".index(self.value)


# Atlas order of DESIGN.md: 1 < 2 < 3 < 6 < 0 < 4 (4A < 4B < 4C) < 5. An unsubdivided 4 ranks
# below its subdivisions so that a more specific statement of the same report wins.
_BIRADS_ORDER = ("1", "2", "3", "6", "0", "4", "4A", "4B", "4C", "5")


class BiradsCategory(StrEnum):
    """ACR BI-RADS final assessment category."""

    C0 = "0"
    C1 = "1"
    C2 = "2"
    C3 = "3"
    C4 = "4"
    C4A = "4A"
    C4B = "4B"
    C4C = "4C"
    C5 = "5"
    C6 = "6"

    @property
    def severity(self) -> int:
        """Position in the atlas order of worry (higher = more worrisome)."""
        return _BIRADS_ORDER.index(self.value)

    @property
    def meaning(self) -> str:
        """The atlas name of the category, in English."""
        return _BIRADS_MEANING[self.value]


_BIRADS_MEANING = {
    "0": "incomplete, needs additional imaging evaluation",
    "1": "negative",
    "2": "benign",
    "3": "probably benign",
    "4": "suspicious",
    "4A": "low suspicion for malignancy",
    "4B": "moderate suspicion for malignancy",
    "4C": "high suspicion for malignancy",
    "5": "highly suggestive of malignancy",
    "6": "known biopsy-proven malignancy",
}


class Laterality(StrEnum):
    """The side of a report statement (left, right, both breasts) or of an image (left or right).

    Its value (``left`` …) is the report contract's JSON form; :attr:`code` (``L``/``R``/``B``,
    DICOM's ImageLaterality vocabulary) is the form of images, manifests, the case store,
    filters and results.
    """

    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"

    @property
    def code(self) -> str:
        """``L``, ``R`` or ``B`` (DICOM ImageLaterality)."""
        return self.value[0].upper()

    @classmethod
    def parse(cls, value: str | None) -> Laterality | None:
        """Read a code (``L``/``R``/``B``) or a word (``left``, ``right``, ``bilateral``,
        ``both``), in any case; ``None`` or blank gives ``None``.

        Raises:
            ValueError: Anything else (the message lists what is accepted).
        """
        text = (value or "").strip().lower()
        if not text:
            return None
        found = _LATERALITY_WORDS.get(text)
        if found is None:
            raise ValueError(f"unknown laterality {value!r}: use L, R or B (left, right, both)")
        return found


_LATERALITY_WORDS = {"l": Laterality.LEFT, "left": Laterality.LEFT, "r": Laterality.RIGHT,
                     "right": Laterality.RIGHT, "b": Laterality.BILATERAL,
                     "bilateral": Laterality.BILATERAL, "both": Laterality.BILATERAL}  # fmt: skip


class View(StrEnum):
    """Mammographic view (DICOM ViewPosition vocabulary)."""

    CC = "CC"
    MLO = "MLO"
    ML = "ML"
    LM = "LM"
    LMO = "LMO"
    XCCL = "XCCL"
    XCCM = "XCCM"
    FB = "FB"
    SIO = "SIO"
    AT = "AT"
    CV = "CV"

    @classmethod
    def parse(cls, value: str | None) -> View | None:
        """Read a view code in any case; ``None`` or blank gives ``None``.

        Raises:
            ValueError: An unknown code (the message lists the known ones).
        """
        text = (value or "").strip().upper()
        if not text:
            return None
        if text not in cls.__members__:
            raise ValueError(f"unknown view {value!r}: use one of {', '.join(cls.__members__)}")
        return cls[text]


class FindingType(StrEnum):
    """Finding types of DESIGN.md."""

    MASS = "mass"
    CALCIFICATION = "calcification"
    ASYMMETRY = "asymmetry"
    ARCHITECTURAL_DISTORTION = "architectural_distortion"
    LYMPH_NODE = "lymph_node"
    SKIN_THICKENING = "skin_thickening"
    SKIN_RETRACTION = "skin_retraction"
    NIPPLE_RETRACTION = "nipple_retraction"
    DILATED_DUCT = "dilated_duct"
    IMPLANT = "implant"
    POST_SURGICAL = "post_surgical"
    OTHER = "other"


class Shape(StrEnum):
    """Mass shape (BI-RADS 5th edition plus legacy lobulated)."""

    OVAL = "oval"
    ROUND = "round"
    IRREGULAR = "irregular"
    LOBULATED = "lobulated"


class Margin(StrEnum):
    """Mass margin."""

    CIRCUMSCRIBED = "circumscribed"
    OBSCURED = "obscured"
    MICROLOBULATED = "microlobulated"
    INDISTINCT = "indistinct"
    SPICULATED = "spiculated"


class MassDensity(StrEnum):
    """Mass density relative to fibroglandular tissue."""

    HIGH = "high"
    EQUAL = "equal"
    LOW = "low"
    FAT_CONTAINING = "fat_containing"


class CalcMorphology(StrEnum):
    """Calcification morphology."""

    SKIN = "skin"
    VASCULAR = "vascular"
    COARSE = "coarse"
    POPCORN = "popcorn"
    ROD_LIKE = "rod_like"
    ROUND = "round"
    PUNCTATE = "punctate"
    RIM = "rim"
    DYSTROPHIC = "dystrophic"
    MILK_OF_CALCIUM = "milk_of_calcium"
    SUTURE = "suture"
    AMORPHOUS = "amorphous"
    COARSE_HETEROGENEOUS = "coarse_heterogeneous"
    FINE_PLEOMORPHIC = "fine_pleomorphic"
    FINE_LINEAR = "fine_linear"


class CalcDistribution(StrEnum):
    """Calcification distribution."""

    DIFFUSE = "diffuse"
    REGIONAL = "regional"
    GROUPED = "grouped"
    LINEAR = "linear"
    SEGMENTAL = "segmental"


class AsymmetryKind(StrEnum):
    """Asymmetry kind."""

    ASYMMETRY = "asymmetry"
    FOCAL = "focal"
    GLOBAL = "global"
    DEVELOPING = "developing"


class Quadrant(StrEnum):
    """Breast location."""

    UOQ = "UOQ"
    UIQ = "UIQ"
    LOQ = "LOQ"
    LIQ = "LIQ"
    CENTRAL = "central"
    RETROAREOLAR = "retroareolar"
    AXILLARY_TAIL = "axillary_tail"


class Depth(StrEnum):
    """Depth in the breast."""

    ANTERIOR = "anterior"
    MIDDLE = "middle"
    POSTERIOR = "posterior"


class Recommendation(StrEnum):
    """Management recommendation."""

    ROUTINE_SCREENING = "routine_screening"
    SHORT_INTERVAL_FOLLOW_UP = "short_interval_follow_up"
    ADDITIONAL_IMAGING = "additional_imaging"
    BIOPSY = "biopsy"
    CLINICAL_CORRELATION = "clinical_correlation"


@dataclass(frozen=True, slots=True)
class Span:
    """Evidence: ``text == source[start:end]`` with code-point offsets into the input text."""

    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"text", "start", "end"}``."""
        return {"text": self.text, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """Read the JSON form back."""
        return cls(str(data["text"]), int(data["start"]), int(data["end"]))


@dataclass(frozen=True, slots=True)
class DensityAssessment:
    """The current breast composition a report states."""

    category: DensityCategory
    evidence: Span
    laterality: Laterality | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md."""
        return {
            "category": self.category.value,
            "laterality": self.laterality.value if self.laterality else None,
            "evidence": self.evidence.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class BiradsAssessment:
    """The current overall BI-RADS assessment category a report states."""

    category: BiradsCategory
    evidence: Span

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md."""
        return {"category": self.category.value, "evidence": self.evidence.to_dict()}


@dataclass(frozen=True, slots=True)
class FindingDescriptors:
    """BI-RADS lexicon descriptors of one finding (closed sets of DESIGN.md)."""

    shape: tuple[Shape, ...] = ()
    margin: tuple[Margin, ...] = ()
    mass_density: tuple[MassDensity, ...] = ()
    calc_morphology: tuple[CalcMorphology, ...] = ()
    calc_distribution: tuple[CalcDistribution, ...] = ()
    asymmetry: AsymmetryKind | None = None
    size_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md."""
        return {
            "shape": [v.value for v in self.shape],
            "margin": [v.value for v in self.margin],
            "mass_density": [v.value for v in self.mass_density],
            "calc_morphology": [v.value for v in self.calc_morphology],
            "calc_distribution": [v.value for v in self.calc_distribution],
            "asymmetry": self.asymmetry.value if self.asymmetry else None,
            "size_mm": self.size_mm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FindingDescriptors:
        """Read the JSON form back."""
        return cls(
            shape=tuple(Shape(v) for v in data.get("shape", ())),
            margin=tuple(Margin(v) for v in data.get("margin", ())),
            mass_density=tuple(MassDensity(v) for v in data.get("mass_density", ())),
            calc_morphology=tuple(CalcMorphology(v) for v in data.get("calc_morphology", ())),
            calc_distribution=tuple(CalcDistribution(v) for v in data.get("calc_distribution", ())),
            asymmetry=AsymmetryKind(data["asymmetry"]) if data.get("asymmetry") else None,
            size_mm=float(data["size_mm"]) if data.get("size_mm") is not None else None,
        )


@dataclass(frozen=True, slots=True)
class FindingLocation:
    """Where a finding is: quadrant, clock face position and depth."""

    quadrant: Quadrant | None = None
    clock: str | None = None
    depth: Depth | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md."""
        return {
            "quadrant": self.quadrant.value if self.quadrant else None,
            "clock": self.clock,
            "depth": self.depth.value if self.depth else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FindingLocation:
        """Read the JSON form back."""
        return cls(
            quadrant=Quadrant(data["quadrant"]) if data.get("quadrant") else None,
            clock=data.get("clock"),
            depth=Depth(data["depth"]) if data.get("depth") else None,
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding of a report with its context and evidence."""

    type: FindingType
    evidence: Span
    laterality: Laterality | None = None
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    descriptors: FindingDescriptors = field(default_factory=FindingDescriptors)
    location: FindingLocation = field(default_factory=FindingLocation)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md."""
        return {
            "type": self.type.value,
            "laterality": self.laterality.value if self.laterality else None,
            "negated": self.negated,
            "uncertain": self.uncertain,
            "historical": self.historical,
            "descriptors": self.descriptors.to_dict(),
            "location": self.location.to_dict(),
            "evidence": self.evidence.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Read the JSON form back."""
        return cls(
            type=FindingType(data["type"]),
            evidence=Span.from_dict(data["evidence"]),
            laterality=Laterality(data["laterality"]) if data.get("laterality") else None,
            negated=bool(data.get("negated", False)),
            uncertain=bool(data.get("uncertain", False)),
            historical=bool(data.get("historical", False)),
            descriptors=FindingDescriptors.from_dict(data.get("descriptors", {})),
            location=FindingLocation.from_dict(data.get("location", {})),
        )


@dataclass(frozen=True, slots=True)
class NormalizedReport:
    """A free-text mammography report as structured BI-RADS terms (DESIGN.md contract)."""

    id: str
    language: str | None = None
    density: DensityAssessment | None = None
    density_by_side: Mapping[Laterality, DensityCategory] = field(default_factory=dict)
    birads: BiradsAssessment | None = None
    birads_by_side: Mapping[Laterality, BiradsCategory] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    recommendation: Recommendation | None = None
    standardized_text: str = ""
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def failed(cls, id: str, error: str) -> NormalizedReport:
        """A record for a report that could not be read or parsed."""
        return cls(id=id, error=error)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of DESIGN.md, with every key present."""
        return {
            "id": self.id,
            "language": self.language,
            "density": self.density.to_dict() if self.density else None,
            "density_by_side": {k.value: v.value for k, v in self.density_by_side.items()},
            "birads": self.birads.to_dict() if self.birads else None,
            "birads_by_side": {k.value: v.value for k, v in self.birads_by_side.items()},
            "findings": [f.to_dict() for f in self.findings],
            "recommendation": self.recommendation.value if self.recommendation else None,
            "standardized_text": self.standardized_text,
            "warnings": list(self.warnings),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizedReport:
        """Read the JSON form back (the inverse of :meth:`to_dict`)."""
        density = data.get("density")
        birads = data.get("birads")
        return cls(
            id=str(data["id"]),
            language=data.get("language"),
            density=DensityAssessment(
                category=DensityCategory(density["category"]),
                evidence=Span.from_dict(density["evidence"]),
                laterality=Laterality(density["laterality"]) if density["laterality"] else None,
            )
            if density
            else None,
            density_by_side={
                Laterality(k): DensityCategory(v)
                for k, v in (data.get("density_by_side") or {}).items()
            },
            birads=BiradsAssessment(
                category=BiradsCategory(birads["category"]),
                evidence=Span.from_dict(birads["evidence"]),
            )
            if birads
            else None,
            birads_by_side={
                Laterality(k): BiradsCategory(v)
                for k, v in (data.get("birads_by_side") or {}).items()
            },
            findings=tuple(Finding.from_dict(f) for f in data.get("findings") or ()),
            recommendation=Recommendation(data["recommendation"])
            if data.get("recommendation")
            else None,
            standardized_text=str(data.get("standardized_text", "")),
            warnings=tuple(data.get("warnings") or ()),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One retrieved image of the case index.

    Attributes:
        row_id: The index's id of the image (SQLite row id = FAISS id).
        case_id: The exam it belongs to.
        patient_id: Its patient (hidden in the UI).
        score: Fused similarity (higher is closer).
        scores: Similarity per modality (``image``, ``text``).
        label: Its density label, when the index has one.
        laterality: Its side, or ``None``.
        view: Its view, or ``None``.
        thumbnail: Path of its thumbnail inside the index directory.
        report: Its normalized report, when it had one.
        image_path: The source image it was indexed from, when the index keeps source paths
            (``index build --keep-source-paths``; the UI shows only the thumbnail).
    """

    row_id: int
    case_id: str
    patient_id: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    label: str | None = None
    laterality: Laterality | None = None
    view: View | None = None
    thumbnail: str | None = None
    report: NormalizedReport | None = None
    image_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the patient id is left out: results are shown to people)."""
        return {
            "row_id": self.row_id,
            "case_id": self.case_id,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "label": self.label,
            "laterality": self.laterality.code if self.laterality else None,
            "view": self.view.value if self.view else None,
            "thumbnail": self.thumbnail,
            "image_path": self.image_path,
            "report": self.report.to_dict() if self.report else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Neighbour:
        """Read :meth:`to_dict`'s form back (its patient id stays unknown: ``""``)."""
        report = data.get("report")
        return cls(
            row_id=int(data["row_id"]), case_id=str(data["case_id"]), patient_id="",
            score=float(data["score"]), scores=dict(data.get("scores") or {}),
            label=data.get("label"), laterality=Laterality.parse(data.get("laterality")),
            view=View.parse(data.get("view")),
            thumbnail=data.get("thumbnail"), image_path=data.get("image_path"),
            report=NormalizedReport.from_dict(report) if report else None,
        )  # fmt: skip


def _neighbour_maker() -> Callable[
    [int, str, str, float, Mapping[str, float], str | None, Laterality | None, View | None,
     str | None, NormalizedReport | None, str | None],
    Neighbour,
]:  # fmt: skip
    """A maker of :class:`Neighbour` from all its fields in order, four times as fast as its
    ``__init__`` (a search makes ten at a time).

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``. The maker is a draft class of the same slots whose ``__init__``
    sets them by plain assignment and then makes the object a ``Neighbour`` (``__class__``
    assignment, which CPython allows between classes of the same slots and base): what it
    returns is a frozen ``Neighbour`` like any other, equal to one made by ``__init__``.
    Nothing is defaulted or checked: every field is given.
    """
    names = tuple(f.name for f in fields(Neighbour))
    expected = ("row_id", "case_id", "patient_id", "score", "scores", "label", "laterality",
                "view", "thumbnail", "report", "image_path")  # fmt: skip
    if names != expected:  # pragma: no cover - a new field must be added below too
        raise TypeError(f"Neighbour's fields changed ({names}): update the maker")

    class Draft:
        __slots__ = expected

        def __init__(
            self, row_id: int, case_id: str, patient_id: str, score: float,
            scores: Mapping[str, float], label: str | None, laterality: Laterality | None,
            view: View | None, thumbnail: str | None, report: NormalizedReport | None,
            image_path: str | None,
        ) -> None:  # fmt: skip
            self.row_id = row_id
            self.case_id = case_id
            self.patient_id = patient_id
            self.score = score
            self.scores = scores
            self.label = label
            self.laterality = laterality
            self.view = view
            self.thumbnail = thumbnail
            self.report = report
            self.image_path = image_path
            self.__class__ = Neighbour  # type: ignore[assignment]

    return cast(Callable[..., Neighbour], Draft)


# a Neighbour from every field in order, made faster than through its __init__ (searches)
new_neighbour = _neighbour_maker()


@dataclass(frozen=True, slots=True)
class DensityVote:
    """A similarity-weighted vote of neighbours' density labels.

    Attributes:
        label: The winning label (also given when abstaining, as the best guess).
        probabilities: Probability per label, in the label order.
        margin: Winner's probability minus the runner-up's.
        abstain: Too few neighbours or too small a margin to trust the vote.
        neighbours: Row ids of the neighbours that voted for the winner.
        reason: Why it abstained, when it did.
    """

    label: str | None
    probabilities: Mapping[str, float]
    margin: float
    abstain: bool
    neighbours: tuple[int, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "label": self.label,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "margin": round(self.margin, 6),
            "abstain": self.abstain,
            "neighbours": list(self.neighbours),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DensityVote:
        """Read :meth:`to_dict`'s form back."""
        return cls(
            label=data.get("label"), probabilities=dict(data.get("probabilities") or {}),
            margin=float(data.get("margin", 0.0)), abstain=bool(data.get("abstain")),
            neighbours=tuple(int(n) for n in data.get("neighbours") or ()),
            reason=data.get("reason"),
        )  # fmt: skip

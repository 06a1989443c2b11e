"""JSON Schemas of the JSON outputs: a normalized report, an image's assessment, an exam's.

The schemas are generated from the typed records: each record's fields and their annotations
give the properties (the enums give the closed sets: density and BI-RADS categories, finding
types, descriptors, sides, views ...), with the few adjustments where a record's ``to_dict``
writes something other than its fields (a side as its DICOM code in results, the density
model's opinions as ``convnext`` and ``probe``, a failed manifest row). Copies are checked in
as ``docs/schemas/*.schema.json``; a test holds them equal to :func:`json_schemas` and
validates real outputs against them.

Example:
    >>> schema = json_schemas()["normalized-report"]
    >>> schema["$defs"]["DensityCategory"]["enum"]
    ['A', 'B', 'C', 'D']
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from mammosearch.nlp import SUPPORTED_LANGUAGES
from mammosearch.nlp.scrub import PHI_KINDS
from mammosearch.pipeline.assessment import (
    MODEL_PATHS,
    Assessment,
    DensityDecision,
    ExamAssessment,
    ModelOpinion,
    SideDensity,
)
from mammosearch.records import (
    DensityVote,
    FindingLocation,
    Laterality,
    Neighbour,
    NormalizedReport,
    Span,
)

__all__ = ["DIALECT", "SCHEMA_NAMES", "json_schemas", "schema_text", "write_schemas"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_NAMES = ("normalized-report", "assessment", "exam-assessment")

_NULL = {"type": "null"}
_COUNT = {"type": "integer", "minimum": 0}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_PROBABILITIES = {
    "type": "object",
    "additionalProperties": _PROBABILITY,
    "description": "Probability per density label (labels are data: A-D, MIAS "
    "F/G/D or the index's own).",
}
_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _NULL]}


def _summary(obj: object) -> str:
    return (obj.__doc__ or "").strip().splitlines()[0]


class _Builder:
    """Turns record types into schemas, collecting the named ones under ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        self.defs.setdefault(name, schema)
        return {"$ref": f"#/$defs/{name}"}

    def side_code(self) -> dict[str, Any]:
        """A side as its DICOM code, the form of images, manifests and results."""
        return self.ref(
            "SideCode",
            {
                "description": "A side as its DICOM code (ImageLaterality): L, R or B.",
                "enum": [side.code for side in Laterality],
            },
        )

    def of(self, annotation: Any) -> dict[str, Any]:
        """The schema of one annotation (a record, an enum, a container or a primitive)."""
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            present = [a for a in args if a is not type(None)]
            if len(present) != 1:
                raise TypeError(f"no schema for the union {annotation!r}")
            inner = self.of(present[0])
            return _nullable(inner) if len(present) < len(args) else inner
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": self.of(args[0])}
        if origin in (Mapping, dict):
            key, value = args
            out: dict[str, Any] = {"type": "object", "additionalProperties": self.of(value)}
            if isinstance(key, type) and issubclass(key, Enum):
                out = {"type": "object", "propertyNames": self.of(key), **out}
            return out
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return self.ref(
                annotation.__name__,
                {"description": _summary(annotation), "enum": [m.value for m in annotation]},
            )
        if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
            return self.record(annotation)
        if annotation in _PRIMITIVES:
            return dict(_PRIMITIVES[annotation])
        raise TypeError(f"no schema for {annotation!r}")

    def field(self, cls: type, name: str) -> dict[str, Any]:
        """The schema of one field of a record, from its annotation."""
        return self.of(typing.get_type_hints(cls)[name])

    def record(self, cls: type) -> dict[str, Any]:
        """A record whose JSON form is its fields (as adjusted in :data:`_ADJUST`)."""
        if cls.__name__ in self.defs:
            return {"$ref": f"#/$defs/{cls.__name__}"}
        adjust = _ADJUST.get(cls, {})
        self.defs[cls.__name__] = {}  # a placeholder while its fields are built
        properties: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in adjust.get("exclude", ()):
                continue
            override = adjust.get("override", {}).get(f.name)
            properties[f.name] = override(self) if override else self.field(cls, f.name)
        optional = set(adjust.get("optional", ()))
        for name, extra in adjust.get("extra", {}).items():
            properties[name] = extra(self)
            optional.add(name)
        self.defs[cls.__name__] = _closed(
            properties, optional=tuple(optional), description=_summary(cls)
        )
        return {"$ref": f"#/$defs/{cls.__name__}"}


def _opinion_paths(b: _Builder) -> dict[str, Any]:
    return {path: _nullable(b.record(ModelOpinion)) for path in MODEL_PATHS}


# Where a record's JSON form differs from its fields: fields left out, fields that may be
# absent, schemas other than the annotation's, and keys that are not fields.
_ADJUST: dict[type, dict[str, Any]] = {
    Span: {"override": {"start": lambda b: _COUNT, "end": lambda b: _COUNT}},
    NormalizedReport: {
        "override": {"language": lambda b: _nullable({"enum": list(SUPPORTED_LANGUAGES)})},
        # `normalize --scrub` lines also carry the scrubbed text and the PHI counts
        "extra": {
            "text": lambda b: {
                "type": "string",
                "description": "The scrubbed report (normalize --scrub).",
            },
            "phi": lambda b: {
                "type": "object",
                "propertyNames": {"enum": list(PHI_KINDS)},
                "additionalProperties": _COUNT,
                "description": "Spans replaced per PHI kind (normalize --scrub).",
            },
        },
    },
    FindingLocation: {
        "override": {
            "clock": lambda b: _nullable({"type": "string", "pattern": r"^\d{1,2}:\d{2}$"})
        }
    },
    Neighbour: {
        "exclude": ("patient_id",),  # results are shown to people
        "override": {"laterality": lambda b: _nullable(b.side_code())},
    },
    DensityVote: {"override": {"probabilities": lambda b: _PROBABILITIES}},
    DensityDecision: {
        "optional": ("weights",),  # only when an ensemble decided
        "override": {
            "probabilities": lambda b: _PROBABILITIES,
            "confidence": lambda b: _PROBABILITY,
            "weights": lambda b: {"type": "object", "additionalProperties": {"type": "number"}},
        },
    },
    ModelOpinion: {"override": {"probabilities": lambda b: _PROBABILITIES}},
    SideDensity: {
        "override": {"probabilities": lambda b: _PROBABILITIES, "views": lambda b: _COUNT}
    },
}


def _document(
    name: str, title: str, description: str, b: _Builder, root: dict[str, Any]
) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": f"mammosearch:{name}",
        "title": title,
        "description": description,
        **root,
        "$defs": dict(sorted(b.defs.items())),
    }


def _report_schema() -> dict[str, Any]:
    b = _Builder()
    root = b.record(NormalizedReport)
    return _document(
        "normalized-report",
        "mammosearch normalized report",
        "One normalized report: NormalizedReport.to_dict(), one line of `mammosearch normalize` "
        "output (with `text` and `phi` under --scrub). Every key is always present.",
        b,
        root,
    )


def _closed(
    properties: dict[str, Any], *, optional: tuple[str, ...] = (), description: str = ""
) -> dict[str, Any]:
    """An object with these keys only, each required unless ``optional``."""
    out: dict[str, Any] = {"type": "object"}
    if description:
        out["description"] = description
    return out | {
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _assessment_schema() -> dict[str, Any]:
    b = _Builder()
    row = {"type": "integer", "minimum": 1}  # a manifest row (1 = the first data row)
    ok = _closed(
        {
            "case_id": b.field(Assessment, "case_id"),
            "row": row,
            "laterality": _nullable(b.side_code()),
            "density": b.field(Assessment, "density"),
            "vote": b.field(Assessment, "vote"),
            **_opinion_paths(b),
            "neighbours": b.field(Assessment, "neighbours"),
            "report": b.field(Assessment, "report"),
            "warnings": b.field(Assessment, "warnings"),
        },
        optional=("row",),  # manifest rows only
        description="An assessed image.",
    )
    failed = _closed(
        {"case_id": b.field(Assessment, "case_id"), "row": row, "error": {"type": "string"}},
        optional=("row",),
        description="A manifest row that could not be assessed.",
    )
    return _document(
        "assessment",
        "mammosearch image assessment",
        "One image's density with every path's opinion: Assessment.to_dict(), `mammosearch "
        "assess --json` and each line of `assess --manifest` (a failed row: case_id, row, "
        "error).",
        b,
        {"oneOf": [ok, failed]},
    )


def _exam_schema() -> dict[str, Any]:
    b = _Builder()
    text_or_null = {"type": ["string", "null"]}
    view = _closed(
        {
            "row": _nullable({"type": "integer", "minimum": 1}),
            "laterality": _nullable(b.side_code()),
            "label": text_or_null,
            "method": text_or_null,
            "error": text_or_null,
        },
        description="One view of the exam: its manifest row, side and decision, or its error.",
    )
    density = _closed(
        {"label": b.field(ExamAssessment, "label"), "method": {"const": ExamAssessment.METHOD}}
    )
    root = _closed(
        {
            "case_id": b.field(ExamAssessment, "case_id"),
            "density": density,
            "by_side": {
                "type": "object",
                "propertyNames": {"enum": [side.code for side in Laterality] + ["unknown"]},
                "additionalProperties": b.record(SideDensity),
            },
            "views": _COUNT,
            "failed": _COUNT,
            "view_methods": {"type": "object", "additionalProperties": _COUNT},
            "images": {"type": "array", "items": view},
        }
    )
    return _document(
        "exam-assessment",
        "mammosearch exam assessment",
        "One exam's density (the denser breast): ExamAssessment.to_dict(), each line of "
        "`mammosearch assess --manifest M --exams`.",
        b,
        root,
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas (draft 2020-12) of the outputs, by name (:data:`SCHEMA_NAMES`).

    Returns:
        ``normalized-report`` (:meth:`NormalizedReport.to_dict`, a ``normalize`` line),
        ``assessment`` (:meth:`Assessment.to_dict`, an ``assess`` object or line) and
        ``exam-assessment`` (:meth:`ExamAssessment.to_dict`, an ``assess --exams`` line).
    """
    return {
        "normalized-report": _report_schema(),
        "assessment": _assessment_schema(),
        "exam-assessment": _exam_schema(),
    }


def schema_text(schema: Mapping[str, Any]) -> str:
    """A schema as the checked-in files hold it: indented JSON, one final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write each schema to ``directory/NAME.schema.json``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(schema_text(schema), encoding="utf-8")
        written.append(path)
    return written

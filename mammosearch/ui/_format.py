"""What the search UI shows, as plain values: report terms to highlight, captions, the first
screen's examples and the Batch tab's table rows (no Gradio here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CSV_FIELDS", "caption", "density_label", "examples", "report_entities", "rows_of",
           "side_view"]  # fmt: skip

_SAMPLE_REPORTS = (
    ("sample-01-en-screening.txt", "A report in English (a sample of the package)"),
    ("sample-02-es-diagnostica.txt", "A report in Spanish (a sample of the package)"),
)
CSV_FIELDS = (
    "id",
    "language",
    "density",
    "birads",
    "findings",
    "recommendation",
    "warnings",
    "error",
)


def density_label(density: Any) -> str:
    """``label (method)`` of a view's density decision."""
    return f"{density.label} ({density.method})" if density is not None else "-"


def report_entities(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Highlight spans (``HighlightedText`` entities) of a normalized report's evidence: density,
    BI-RADS category and findings (negated ones marked), indexing the text as given."""
    entities = []
    for key, name in (("density", "density"), ("birads", "BI-RADS")):
        item = report.get(key) or {}
        if item.get("evidence"):
            entities.append(
                {
                    "entity": f"{name} {item.get('category')}",
                    "start": item["evidence"]["start"],
                    "end": item["evidence"]["end"],
                }
            )
    for finding in report.get("findings") or []:
        if not finding.get("evidence"):
            continue
        details = [
            v
            for values in (finding.get("descriptors") or {}).values()
            if values
            for v in (values if isinstance(values, list) else [values])
        ]
        label = "negated" if finding.get("negated") else "finding"
        text = " ".join([finding["type"].replace("_", " "), *map(str, details)])
        entities.append(
            {
                "entity": f"{label}: {text}",
                "start": finding["evidence"]["start"],
                "end": finding["evidence"]["end"],
            }
        )
    entities.sort(key=lambda e: e["start"])
    kept: list[dict[str, Any]] = []
    for entity in entities:  # HighlightedText needs non-overlapping spans
        if not kept or entity["start"] >= kept[-1]["end"]:
            kept.append(entity)
    return kept


def side_view(image: Any) -> str:
    """``R CC`` of a query view (``?`` for an unknown side)."""
    return f"{image.laterality.code if image.laterality else '?'} {image.view or ''}".strip()


def examples(service: Any, about: dict[str, Any]) -> tuple[list[list[Any]], list[str], Any]:
    """The first screen's examples: an exam of the index (its thumbnails and report), and an
    English and a Spanish report of the package's samples when the index can search by text.

    Returns:
        The examples (views, report), their labels, and the side and view of each example
        thumbnail (their file names say neither).
    """
    from mammosearch.pipeline import sample_reports_dir

    examples: list[list[Any]] = []
    names: list[str] = []
    known = {}
    exam = service.example_exam()
    if exam and exam["views"]:
        paths = [str(Path(v["thumbnail"]).resolve()) for v in exam["views"]]
        known = {p: (v["laterality"], v["view"]) for p, v in zip(paths, exam["views"], strict=True)}
        examples.append([paths, exam["report_text"] or ""])
        names.append(
            f"An exam of this index: {len(paths)} views"
            + (" and its report" if exam["report_text"] else "")
        )
    if about["reports"] or about["cross_modal"]:
        for name, title in _SAMPLE_REPORTS:
            text = (sample_reports_dir() / name).read_text(encoding="utf-8")
            examples.append([None, text])
            names.append(title)
    return examples, names, known


def caption(neighbour: Any) -> str:
    parts = [f"{neighbour.score:.2f}", f"density {neighbour.label or '?'}"]
    if neighbour.laterality or neighbour.view:
        side = neighbour.laterality.code if neighbour.laterality else ""
        parts.append(f"{side} {neighbour.view or ''}".strip())
    report = neighbour.report
    if report is not None:
        if report.birads is not None:
            parts.append(f"BI-RADS {report.birads.category.value}")
        kinds = sorted({f.type.value.replace("_", " ") for f in report.findings if not f.negated})
        if kinds:
            parts.append(", ".join(kinds))
    return " · ".join(parts)


def _finding_cell(finding: dict[str, Any]) -> str:
    negation = "no " if finding.get("negated") else ""
    return f"{negation}{finding['type']} {finding.get('laterality') or ''}".strip()


def rows_of(jsonl: Path) -> list[dict[str, Any]]:
    rows = []
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            rows.append(
                {
                    "id": record.get("id"),
                    "language": record.get("language"),
                    "density": (record.get("density") or {}).get("category"),
                    "birads": (record.get("birads") or {}).get("category"),
                    "findings": "; ".join(_finding_cell(f) for f in record.get("findings") or []),
                    "recommendation": record.get("recommendation"),
                    "warnings": len(record.get("warnings") or []),
                    "error": record.get("error"),
                }
            )
    return rows

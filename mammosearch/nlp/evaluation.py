"""Scoring normalized reports against gold annotations.

The gold format is the one of ``../shared/data/reports-examples/gold.jsonl``: per report
``density`` (A-D or null), ``birads`` and ``findings`` (``type``, ``laterality``, ``negated``,
optionally ``descriptors``). Findings are compared as sets of (type, laterality, negated) per
report, after the folding the annotations use: ``post_surgical``, ``dilated_duct`` and
``implant`` count as ``other``; a null laterality and ``bilateral`` are the same; the same
statement for the left and the right breast is one bilateral finding. Descriptors are compared
as sets of (type, descriptor, value) over positive findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mammosearch.records import NormalizedReport

__all__ = ["PRF", "ReportScores", "finding_keys", "score_reports"]

_FOLD_TYPES = {"post_surgical": "other", "dilated_duct": "other", "implant": "other"}
_DESCRIPTOR_FIELDS = ("shape", "margin", "mass_density", "calc_morphology", "calc_distribution",
                      "asymmetry")  # fmt: skip


@dataclass(slots=True)
class PRF:
    """Set precision, recall and F1 from true/false positives and false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: set[Any], gold: set[Any]) -> None:
        """Count one report's sets."""
        self.tp += len(predicted & gold)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        """JSON form."""
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "tp": self.tp, "fp": self.fp, "fn": self.fn}  # fmt: skip


@dataclass(slots=True)
class ReportScores:
    """Scores of a set of normalized reports against gold."""

    n: int = 0
    density_correct: int = 0
    birads_correct: int = 0
    recommendation_correct: int = 0
    recommendation_n: int = 0
    findings: PRF = field(default_factory=PRF)
    findings_n: int = 0
    descriptors: PRF = field(default_factory=PRF)
    descriptors_n: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def density_accuracy(self) -> float:
        return self.density_correct / self.n if self.n else 0.0

    @property
    def birads_accuracy(self) -> float:
        return self.birads_correct / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what ``mammosearch evaluate reports --json`` prints)."""
        out: dict[str, Any] = {
            "reports": self.n,
            "density_accuracy": round(self.density_accuracy, 4),
            "birads_accuracy": round(self.birads_accuracy, 4),
        }
        if self.findings_n:
            out["findings"] = self.findings.to_dict()
        if self.descriptors_n:
            out["descriptors"] = self.descriptors.to_dict()
        if self.recommendation_n:
            out["recommendation_accuracy"] = round(
                self.recommendation_correct / self.recommendation_n, 4
            )
        out["misses"] = self.misses
        return out


def _side(value: str | None) -> str:
    return "bilateral" if value in (None, "bilateral") else str(value)


def finding_keys(findings: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, bool]]:
    """Folded (type, laterality, negated) keys of findings in the JSON form."""
    keys = {
        (_FOLD_TYPES.get(f["type"], f["type"]), _side(f.get("laterality")), bool(f["negated"]))
        for f in findings
    }
    for kind, side, negated in list(keys):
        if side == "left" and (kind, "right", negated) in keys:
            keys -= {(kind, "left", negated), (kind, "right", negated)}
            keys.add((kind, "bilateral", negated))
    return keys


def _descriptor_keys(findings: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    keys: set[tuple[str, str, str]] = set()
    for f in findings:
        if f.get("negated"):
            continue
        for name in _DESCRIPTOR_FIELDS:
            value = (f.get("descriptors") or {}).get(name)
            values = value if isinstance(value, list) else [value] if value else []
            if name == "asymmetry" and values == ["asymmetry"]:
                continue  # the plain kind adds nothing to the type
            keys.update((f["type"], name, str(v)) for v in values)
    return keys


def _same_birads(predicted: str | None, gold: str | None) -> bool:
    """A gold "4" without subdivision (a structured label) accepts 4A, 4B or 4C."""
    if gold == "4" and predicted is not None:
        return predicted.startswith("4")
    return predicted == gold


def score_reports(
    gold: Sequence[Mapping[str, Any]], predicted: Mapping[str, NormalizedReport]
) -> ReportScores:
    """Score normalized reports (by id) against gold rows.

    Args:
        gold: Gold rows with ``id``, ``density``, ``birads`` and optionally ``findings``
            (with ``descriptors``) and ``recommendation``.
        predicted: Normalized reports by id; a missing one counts as empty.
    """
    scores = ReportScores()
    for row in gold:
        report = predicted.get(str(row["id"])) or NormalizedReport(id=str(row["id"]))
        data = report.to_dict()
        scores.n += 1
        density = data["density"]["category"] if data["density"] else None
        birads = data["birads"]["category"] if data["birads"] else None
        ok_density = density == row.get("density")
        ok_birads = _same_birads(birads, row.get("birads"))
        scores.density_correct += ok_density
        scores.birads_correct += ok_birads
        problems = []
        if not ok_density:
            problems.append(f"density {density} (gold {row.get('density')})")
        if not ok_birads:
            problems.append(f"BI-RADS {birads} (gold {row.get('birads')})")
        if "findings" in row:
            scores.findings_n += 1
            gold_keys, pred_keys = finding_keys(row["findings"]), finding_keys(data["findings"])
            scores.findings.add(pred_keys, gold_keys)
            if gold_keys != pred_keys:
                problems.append(
                    f"findings missed {sorted(gold_keys - pred_keys)} extra "
                    f"{sorted(pred_keys - gold_keys)}"
                )
            if any("descriptors" in f for f in row["findings"]):
                scores.descriptors_n += 1
                scores.descriptors.add(
                    _descriptor_keys(data["findings"]), _descriptor_keys(row["findings"])
                )
        if "recommendation" in row:
            scores.recommendation_n += 1
            scores.recommendation_correct += data["recommendation"] == row["recommendation"]
        if problems:
            scores.misses.append(f"{row['id']}: " + "; ".join(problems))
    return scores

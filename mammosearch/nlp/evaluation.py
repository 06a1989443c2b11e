"""Scoring normalized reports against gold annotations.

The gold format is the one of ``../shared/data/reports-examples/gold.jsonl``: per report
``density`` (A-D or null), ``birads`` and ``findings`` (``type``, ``laterality``, ``negated``,
optionally ``descriptors``). Findings are compared as sets of (type, laterality, negated) per
report, after the folding the annotations use: ``post_surgical``, ``dilated_duct`` and
``implant`` count as ``other``; a null laterality and ``bilateral`` are the same; the same
statement for the left and the right breast is one bilateral finding. Descriptors are compared
as sets of (type, descriptor, value) over positive findings.

Finding errors are sorted into classes so that one can see where a corpus fails
(:class:`FindingErrors`): a gold finding found with the other negation is a *wrong negation*,
one found on another side a *wrong side*; the rest are *missed* or *extra*. Each finding type
gets its own precision, recall and F1 (:attr:`ReportScores.by_type`); :func:`format_scores`
renders all of it as text for ``mammosearch evaluate reports``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mammosearch.records import NormalizedReport

__all__ = [
    "PRF",
    "FindingErrors",
    "ReportScores",
    "classify_errors",
    "finding_keys",
    "format_scores",
    "score_reports",
]

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
class FindingErrors:
    """Finding errors by class, with the report ids and keys behind them.

    Attributes:
        missed: Gold findings absent from the output (no same type and side with the other
            negation, no same type and negation on another side).
        extra: Output findings absent from the gold, not explained by the classes below.
        wrong_side: Gold findings found with the same type and negation on another side.
        wrong_negation: Gold findings found with the same type and side but the other negation.
        examples: One line per error, ``"<id>: <class> <type> <side> <negated|present>"``.
    """

    missed: int = 0
    extra: int = 0
    wrong_side: int = 0
    wrong_negation: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"missed": self.missed, "extra": self.extra, "wrong_side": self.wrong_side,
                "wrong_negation": self.wrong_negation, "examples": self.examples}  # fmt: skip


@dataclass(slots=True)
class ReportScores:
    """Scores of a set of normalized reports against gold.

    ``misses`` has one line per report with any error (``"<id>: ..."``: categories and
    folded finding keys); ``label_misses`` the same for density and BI-RADS errors only. Both
    name report ids and labels, never report text.
    """

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
    label_misses: list[str] = field(default_factory=list)
    errors: FindingErrors = field(default_factory=FindingErrors)
    by_type: dict[str, PRF] = field(default_factory=dict)

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
            out["finding_errors"] = self.errors.to_dict()
            out["findings_by_type"] = {k: v.to_dict() for k, v in sorted(self.by_type.items())}
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


def classify_errors(
    report_id: str, gold: set[tuple[str, str, bool]], predicted: set[tuple[str, str, bool]]
) -> FindingErrors:
    """Sort one report's finding differences into missed, extra, wrong side, wrong negation.

    Args:
        report_id: Used in the example lines.
        gold: Folded gold keys (:func:`finding_keys`).
        predicted: Folded output keys.

    Example:
        >>> e = classify_errors("r1", {("mass", "left", False)}, {("mass", "left", True)})
        >>> (e.wrong_negation, e.missed, e.extra)
        (1, 0, 0)
    """
    errors = FindingErrors()
    missed = sorted(gold - predicted)
    extra = set(predicted - gold)

    def note(kind: str, key: tuple[str, str, bool]) -> None:
        state = "negated" if key[2] else "present"
        errors.examples.append(f"{report_id}: {kind} {key[0]} {key[1]} {state}")

    for key in missed:
        kind, side, negated = key
        flipped = (kind, side, not negated)
        moved = next((k for k in sorted(extra) if k[0] == kind and k[2] == negated), None)
        if flipped in extra:
            extra.discard(flipped)
            errors.wrong_negation += 1
            note("wrong_negation", key)
        elif moved is not None:
            extra.discard(moved)
            errors.wrong_side += 1
            note("wrong_side", key)
        else:
            errors.missed += 1
            note("missed", key)
    for key in sorted(extra):
        errors.extra += 1
        note("extra", key)
    return errors


def _add_errors(total: FindingErrors, more: FindingErrors) -> None:
    total.missed += more.missed
    total.extra += more.extra
    total.wrong_side += more.wrong_side
    total.wrong_negation += more.wrong_negation
    total.examples.extend(more.examples)


def format_scores(scores: ReportScores, *, examples: int = 20) -> str:
    """The scores as plain text: accuracies, findings F1, error classes and a per-type table.

    Then the errors themselves, one line each: finding errors as ``<id>: <class> <type> <side>
    <negated|present>`` and density or BI-RADS errors as ``<id>: density <got> (gold <gold>)``.
    Report ids, labels and counts only, never report text.

    Args:
        scores: What :func:`score_reports` returned.
        examples: How many lines to list at most of each kind of error.

    Example:
        >>> print(format_scores(score_reports([{"id": "r1", "density": "B", "birads": "1"}], {})))
        reports: 1
        density accuracy: 0.000
        BI-RADS accuracy: 0.000
        density and BI-RADS errors:
          r1: density None (gold B); BI-RADS None (gold 1)
    """
    lines = [
        f"reports: {scores.n}",
        f"density accuracy: {scores.density_accuracy:.3f}",
        f"BI-RADS accuracy: {scores.birads_accuracy:.3f}",
    ]
    if scores.recommendation_n:
        rate = scores.recommendation_correct / scores.recommendation_n
        lines.append(f"recommendation accuracy: {rate:.3f}")
    if scores.findings_n:
        f = scores.findings
        lines.append(
            f"findings: P {f.precision:.3f} R {f.recall:.3f} F1 {f.f1:.3f} "
            f"(tp {f.tp}, fp {f.fp}, fn {f.fn}; type, side, negated)"
        )
    if scores.descriptors_n:
        d = scores.descriptors
        lines.append(f"descriptors: P {d.precision:.3f} R {d.recall:.3f} F1 {d.f1:.3f}")
    if scores.findings_n:
        e = scores.errors
        lines.append(
            f"finding errors: missed {e.missed}, extra {e.extra}, wrong side {e.wrong_side}, "
            f"wrong negation {e.wrong_negation}"
        )
        lines.append(f"{'type':<26}{'tp':>5}{'fp':>5}{'fn':>5}{'P':>8}{'R':>8}{'F1':>8}")
        for kind, prf in sorted(scores.by_type.items()):
            lines.append(
                f"{kind:<26}{prf.tp:>5}{prf.fp:>5}{prf.fn:>5}"
                f"{prf.precision:>8.3f}{prf.recall:>8.3f}{prf.f1:>8.3f}"
            )
        if e.examples:
            lines.append("finding errors by report:")
            lines += _listed(e.examples, examples)
    if scores.label_misses:
        lines.append("density and BI-RADS errors:")
        lines += _listed(scores.label_misses, examples)
    return "\n".join(lines)


def _listed(items: Sequence[str], limit: int) -> list[str]:
    out = [f"  {line}" for line in items[:limit]]
    if len(items) > limit:
        out.append(f"  ... {len(items) - limit} more")
    return out


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
        if problems:
            scores.label_misses.append(f"{row['id']}: " + "; ".join(problems))
        if "findings" in row:
            scores.findings_n += 1
            gold_keys, pred_keys = finding_keys(row["findings"]), finding_keys(data["findings"])
            scores.findings.add(pred_keys, gold_keys)
            for kind in {k[0] for k in gold_keys | pred_keys}:
                prf = scores.by_type.setdefault(kind, PRF())
                prf.add(
                    {k for k in pred_keys if k[0] == kind}, {k for k in gold_keys if k[0] == kind}
                )
            _add_errors(scores.errors, classify_errors(str(row["id"]), gold_keys, pred_keys))
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

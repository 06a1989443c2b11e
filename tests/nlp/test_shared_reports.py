"""Accuracy on the shared public reports (../shared/data; skipped when absent).

No text is special-cased: these tests only read the gold labels and compare.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mammosearch.nlp import normalize
from tests.conftest import read_gold, shared_path

pytestmark = pytest.mark.shared_data


def _same_category(predicted: str | None, gold: str | None) -> bool:
    """An unsubdivided gold "4" (a structured label without 4A-4C) accepts 4A/4B/4C."""
    if gold == "4" and predicted is not None:
        return predicted.startswith("4")
    return predicted == gold


def _score(folder: Path) -> tuple[float, float, list[str]]:
    rows = read_gold(folder)
    misses: list[str] = []
    dens = cat = 0
    for row in rows:
        text = (folder / "texts" / f"{row['id']}.txt").read_text(encoding="utf-8")
        report = normalize(text, id=row["id"])
        d = report.density.category.value if report.density else None
        b = report.birads.category.value if report.birads else None
        dens += d == row["density"]
        cat += _same_category(b, row["birads"])
        if d != row["density"] or not _same_category(b, row["birads"]):
            misses.append(f"{row['id']}: density {d}/{row['density']} birads {b}/{row['birads']}")
        for part in (report.density, report.birads):
            if part is not None:
                ev = part.evidence
                assert text[ev.start : ev.end] == ev.text
    return dens / len(rows), cat / len(rows), misses


def test_public_examples_match_gold_exactly() -> None:
    density, category, misses = _score(shared_path("reports-examples"))
    assert misses == []
    assert density == category == 1.0


@pytest.mark.parametrize("institution", ["paraguay-es", "dmid-en"])
def test_real_reports_reach_the_target(institution: str) -> None:
    density, category, misses = _score(shared_path("reports-real", institution))
    assert density >= 0.99, misses
    assert category >= 0.99, misses


def test_languages_of_the_public_examples() -> None:
    folder = shared_path("reports-examples")
    for row in read_gold(folder):
        text = (folder / "texts" / f"{row['id']}.txt").read_text(encoding="utf-8")
        assert normalize(text).language == row["language"], row["id"]


def test_public_examples_findings_f1() -> None:
    from mammosearch.nlp.evaluation import score_reports

    folder = shared_path("reports-examples")
    rows = read_gold(folder)
    predicted = {
        row["id"]: normalize(
            (folder / "texts" / f"{row['id']}.txt").read_text(encoding="utf-8"), id=row["id"]
        )
        for row in rows
    }
    findings = score_reports(rows, predicted).findings
    assert findings.f1 >= 0.99, (findings.precision, findings.recall)  # measured 1.000

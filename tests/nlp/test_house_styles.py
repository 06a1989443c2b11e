"""The 112 hand-written reports in other house styles (``data/house_styles``): findings, density,
category and PHI recall, per set.

Every set is a development set now (README there): the floors sit just below the figures of the
commit that added them, so that a regression shows; they measure nothing about unseen reports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mammosearch.nlp import normalize
from mammosearch.nlp.evaluation import format_scores, score_reports
from mammosearch.nlp.scrub import scrub

DATA = Path(__file__).parent / "data" / "house_styles"
# set -> findings F1 floor; measured 1.000 / 0.959 / 0.992 / 1.000 / 0.949 / 0.968 / 1.000 / 0.877
# (first scores 0.923 / 0.928 / 0.952 / 0.870 / 0.846 / 0.936 / 0.977 / 0.786, README there)
FLOORS = {"set1": 0.99, "set2": 0.95, "set3": 0.98, "set4": 0.99, "set5": 0.94, "set6": 0.96,
          "set7": 0.99, "set8": 0.87}  # fmt: skip
# set 8's checkbox form and its "BR1" are left unread (README there)
CATEGORY_MISSES = {"set8": 1}
_WORD = re.compile(r"[^\W_]+")


def _rows(name: str) -> list[dict[str, Any]]:
    lines = (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _text(report_id: str) -> str:
    return (DATA / "texts" / f"{report_id}.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_findings_density_and_category(name: str) -> None:
    rows = _rows(name)
    predicted = {r["id"]: normalize(_text(r["id"]), id=r["id"]) for r in rows}
    scores = score_reports(rows, predicted)
    report = format_scores(scores)
    assert scores.findings.f1 >= FLOORS[name], report
    assert scores.density_accuracy == 1.0, report
    assert scores.n - scores.birads_correct <= CATEGORY_MISSES.get(name, 0), report


def test_every_planted_phi_word_is_scrubbed() -> None:
    missed = []
    total = 0
    for line in (DATA / "phi.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = _text(row["id"])
        covered = {i for span in scrub(text).spans for i in range(span.start, span.end)}
        for value in row["values"]:
            starts = [m.start() for m in re.finditer(re.escape(value), text)]
            assert starts, (row["id"], "a listed value is not in its report")
            for start in starts:
                for word in _WORD.finditer(value):
                    total += 1
                    span = range(start + word.start(), start + word.end())
                    if not covered.issuperset(span):
                        missed.append((row["id"], word.start()))  # ids and offsets: no PHI
    assert total == 729
    assert missed == []


def test_the_sets_are_the_corpus() -> None:
    ids = [r["id"] for name in FLOORS for r in _rows(name)]
    assert len(ids) == len(set(ids)) == 112
    assert sorted(ids) == sorted(p.stem for p in (DATA / "texts").glob("*.txt"))

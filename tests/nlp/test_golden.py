"""Golden files: the bundled sample reports must keep normalizing to the reviewed output.

After an intended change, review the diff of ``pytest --update-golden`` before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

from mammosearch.nlp import normalize
from mammosearch.pipeline import sample_reports_dir

GOLDEN = Path(__file__).parent / "golden" / "samples.jsonl"


def _current() -> list[dict[str, object]]:
    out = []
    for path in sorted(sample_reports_dir().glob("*.txt")):
        out.append(normalize(path.read_text(encoding="utf-8"), id=path.stem).to_dict())
    return out


def test_samples_match_golden(update_golden: bool) -> None:
    current = _current()
    if update_golden:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in current),
            encoding="utf-8",
        )
    expected = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in current] == [r["id"] for r in expected]
    for got, want in zip(current, expected, strict=True):
        assert got == want, got["id"]


def test_golden_spans_index_the_samples() -> None:
    for row in (json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()):
        text = (sample_reports_dir() / f"{row['id']}.txt").read_text(encoding="utf-8")
        for key in ("density", "birads"):
            if row[key]:
                ev = row[key]["evidence"]
                assert text[ev["start"] : ev["end"]] == ev["text"]

"""What ``CaseIndex.search`` returns, pinned field by field, and its row cache's staleness rules.

``golden/search.json`` holds every field of every neighbour of a table of searches (image,
text, both fused, filters, with and without reports) on a small seeded index, as the code
before the search speed work returned them; both case-store backends must give exactly that,
on the first search and again when the rows come from the cache. After an intended change,
review the diff of ``pytest --update-golden`` before committing.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mammosearch.index import CaseIndex, IndexWriter, SearchFilters
from mammosearch.index._hits import COLUMNS_AFTER
from mammosearch.records import (
    DensityCategory,
    Laterality,
    Neighbour,
    NormalizedReport,
    View,
    new_neighbour,
)
from tests.index.test_case_index import INFO, commit, row, unit

GOLDEN = Path(__file__).parent / "golden" / "search.json"

# (name, search keyword arguments); the vectors are named by their index in the seeded set
SEARCHES: list[tuple[str, dict[str, Any]]] = [
    ("image k=3", {"image": 5, "k": 3}),
    ("image k=40 without reports", {"image": 7, "k": 40, "with_reports": False}),
    ("image k=40 with reports", {"image": 7, "k": 40}),
    ("text (text and text-to-image)", {"text": 11, "k": 8}),
    ("image and text, weighted", {"image": 3, "text": 3, "k": 6}),
    ("image and text, 0.8/0.2", {"image": 3, "text": 20, "k": 6, "weights": (0.8, 0.2)}),
    ("image and text, rrf", {"image": 3, "text": 20, "k": 6, "fusion": "rrf"}),
    ("right side", {"image": 9, "k": 10, "filters": SearchFilters(laterality=Laterality.RIGHT)}),
    ("MLO, label C", {"image": 9, "k": 10, "filters": SearchFilters(view=View.MLO, label="C")}),
    ("not patient p1", {"image": 5, "k": 10, "filters": SearchFilters(exclude_patient="p1")}),
    ("not case2", {"image": 5, "k": 10, "filters": SearchFilters(exclude_case="case2")}),
    ("k beyond the index", {"image": 0, "k": 100, "with_reports": False}),
]


def _report(i: int) -> str | None:
    if i % 4 == 3:
        return None
    report = NormalizedReport(
        id=f"r{i}", language="en", standardized_text=f"standardized report {i}",
        density_by_side={Laterality.LEFT: DensityCategory("ABCD"[i % 4])}, warnings=(f"w{i}",),
    )  # fmt: skip
    return json.dumps(report.to_dict())


def _build(directory: Path, store: str | None) -> np.ndarray:
    """40 images: text vectors on two thirds, reports on three quarters, one row without side
    or view and one with a side older indexes kept that is not one (read as ``None``)."""
    vectors = unit(np.random.default_rng(21), 40)
    with IndexWriter(directory, INFO, store=store) as writer:
        for i, v in enumerate(vectors):
            values = row(i, "ABCD"[i % 4], f"p{i // 4}", "LR"[i % 2], ("CC", "MLO")[i // 2 % 2])
            values.update(report_text=f"report {i}", report_json=_report(i))
            if i == 13:
                values.update(laterality=None, view=None, label=None)
            if i == 17:
                values.update(laterality="X")
            writer.add(values, v, v if i % 3 else None, b"png")
        commit(writer)
    return vectors


def _search(index: CaseIndex, vectors: np.ndarray, spec: dict[str, Any]) -> list[Neighbour]:
    kw = {k: v for k, v in spec.items() if k not in ("image", "text")}
    image = vectors[spec["image"]] if "image" in spec else None
    text = vectors[spec["text"]] if "text" in spec else None
    return index.search(image_vector=image, text_vector=text, **kw)


def _fields(n: Neighbour, directory: Path) -> dict[str, Any]:
    """Every field of a neighbour, with the type of each checked on the way."""
    assert isinstance(n.score, float) and all(type(s) is float for s in n.scores.values())
    assert n.laterality is None or isinstance(n.laterality, Laterality)
    assert n.view is None or isinstance(n.view, View)
    assert n.report is None or isinstance(n.report, NormalizedReport)
    prefix = f"{directory}/"
    assert n.thumbnail is not None and n.thumbnail.startswith(prefix)
    return {
        "row_id": n.row_id, "case_id": n.case_id, "patient_id": n.patient_id,
        "score": n.score, "scores": dict(n.scores), "label": n.label,
        "laterality": n.laterality.value if n.laterality else None,
        "view": n.view.value if n.view else None,
        "thumbnail": n.thumbnail.removeprefix(prefix), "image_path": n.image_path,
        "report": n.report.to_dict() if n.report else None,
    }  # fmt: skip


def _assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]], name: str) -> None:
    assert [g["row_id"] for g in got] == [w["row_id"] for w in want], name
    for g, w in zip(got, want, strict=True):
        # the scores are FAISS's; another CPU's SIMD kernels may differ in the last float32 bit
        assert g["score"] == pytest.approx(w["score"], abs=1e-6), name
        assert g["scores"] == pytest.approx(w["scores"], abs=1e-6), name
        rest = {k: v for k, v in g.items() if k not in ("score", "scores")}
        assert rest == {k: v for k, v in w.items() if k not in ("score", "scores")}, name


def test_search_results_match_golden(
    tmp_path: Path, store: str | None, update_golden: bool
) -> None:
    directory = tmp_path / "idx"
    vectors = _build(directory, store)
    with CaseIndex(directory) as index:
        passes = []
        for turn in range(2):
            # the first pass reads the store; the second finds the rows in the cache (searches
            # with reports) and, a SQLite reader's column store loaded, in that (without)
            if turn:
                index._hits._start_loading()
                assert index._hits.wait_columns() == (store is None)
            passes.append(
                {
                    name: [_fields(n, directory) for n in _search(index, vectors, spec)]
                    for name, spec in SEARCHES
                }
            )
    if update_golden and store is None:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(passes[0], indent=1) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert list(expected) == [name for name, _ in SEARCHES]
    for results in passes:
        for name, want in expected.items():
            _assert_same(results[name], want, name)


@pytest.mark.parametrize("with_reports", [True, False], ids=["with reports", "without"])
def test_one_image_per_case_keeps_every_field(
    tmp_path: Path, store: str | None, with_reports: bool
) -> None:
    """Each case's best image, field by field (its report too) as the per-image search gives
    it: the per-case search finds the cases without reports and reads only the chosen ones'."""
    directory = tmp_path / "idx"
    vectors = _build(directory, store)
    with CaseIndex(directory) as index:
        for query in (3, 7, 11):
            every = index.search(image_vector=vectors[query], k=40, with_reports=with_reports)
            best: dict[str, Neighbour] = {}
            for n in every:
                best.setdefault(n.case_id, n)
            hits = index.search(image_vector=vectors[query], k=6, with_reports=with_reports,
                                filters=SearchFilters(per_case=True))  # fmt: skip
            assert hits == list(best.values())[:6]
            assert all(n.report is not None for n in hits if n.row_id % 4 != 0) == with_reports


@pytest.mark.parametrize("with_reports", [True, False], ids=["row cache", "column store"])
def test_cached_rows_never_outlive_their_case(
    tmp_path: Path, store: str | None, with_reports: bool
) -> None:
    """A reader keeps rows of hits in a cache (searches with reports) and the shown columns
    of all rows in memory (searches without); once a writer publishes a removal, the removed
    case must not come back from either, nor a new image that took a removed row's id (SQLite
    gives the highest free id again) be shown with the removed case's fields."""
    directory = tmp_path / "idx"
    vectors = _build(directory, store)
    last = vectors[39]  # rows 39 and 40: case19, the highest ids
    with CaseIndex(directory) as stale:
        stale._hits.columns_after = 1  # loaded after the first search without reports
        before = stale.search(image_vector=last, k=40, with_reports=with_reports)
        # SQLite readers keep rows; PostgreSQL ones read the store every time
        if with_reports:
            assert bool(stale._hits._cache) == (store is None)
        else:
            assert stale._hits.wait_columns() == (store is None)
            assert stale.search(image_vector=last, k=40, with_reports=False) == before
        assert {n.case_id for n in before} >= {"case19"}
        with IndexWriter(directory, INFO) as writer:
            assert writer.remove_case("case19") == 2
            commit(writer)
        with IndexWriter(directory, INFO) as writer:  # after the removed rows were deleted
            writer.add(row(100, "A", "p99"), -last, None, b"png")  # far from the query
            commit(writer)
        # the stale reader still finds ids 39 and 40 in its vectors; their rows are gone
        after = stale.search(image_vector=last, k=40, with_reports=with_reports)
        assert "case19" not in {n.case_id for n in after}
        assert [n.row_id for n in after] == [n.row_id for n in before if n.case_id != "case19"]
        assert not any(n.case_id == "case50" for n in after)  # not visible at its generation
    with CaseIndex(directory) as fresh:
        hits = fresh.search(image_vector=-last, k=1)
        new_id = 39 if store is None else 41  # PostgreSQL's sequence never gives an id again
        assert (hits[0].row_id, hits[0].case_id) == (new_id, "case50")


def test_column_store_serves_searches_without_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite reader's searches without reports take their rows from the column store once
    its ``COLUMNS_AFTER``-th such search loaded it (the store is not read again), and give
    what the store holds."""
    directory = tmp_path / "idx"
    vectors = _build(directory, None)
    with CaseIndex(directory) as index:
        for _ in range(COLUMNS_AFTER - 1):
            first = index.search(image_vector=vectors[7], k=40, with_reports=False)
            index.search(image_vector=vectors[7], k=40)  # with reports: not counted
        assert index._hits._loader is None and not index._hits.wait_columns()
        # this one starts the load (in a thread of its own) and reads the store
        assert index.search(image_vector=vectors[7], k=40, with_reports=False) == first
        assert index._hits.wait_columns()
        columns = index._hits._columns
        assert columns is not None
        # 40 rows, ids 1-40: 41 ends of 8 bytes, 41 kinds of 2 bytes, records of 3 separators
        # and their values (e.g. "case3", "p1", "thumbs/7.png", "img6.png")
        records = sum(
            len(f"case{i // 2}p{i // 4}thumbs/{i + 1}.pngimg{i}.png") + 3 for i in range(40)
        )
        assert columns.nbytes == records + 8 * 42 + 2 * 41

        def unread(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the store was read")

        monkeypatch.setattr(index.store, "hit_rows", unread)
        again = index.search(image_vector=vectors[7], k=40, with_reports=False)
    assert [_fields(n, directory) for n in again] == [_fields(n, directory) for n in first]
    assert columns.rows([0, 41, -1]) == {}  # no such rows


def test_values_the_column_store_cannot_keep_are_read_from_the_store(tmp_path: Path) -> None:
    """A text value holding the column store's separator turns it off for the reader: its
    searches read the store, with every value as stored."""
    directory = tmp_path / "idx"
    vectors = unit(np.random.default_rng(3), 6)
    with IndexWriter(directory, INFO) as writer:
        for i, v in enumerate(vectors):
            writer.add(row(i, "A", f"p\x1f{i}"), v, None, b"png")
        commit(writer)
    with CaseIndex(directory) as index:
        index._hits.columns_after = 1
        index.search(image_vector=vectors[2], k=6, with_reports=False)
        assert index._hits._loader is not None and not index._hits.wait_columns()
        hits = index.search(image_vector=vectors[2], k=6, with_reports=False)
        assert hits[0].row_id == 3 and hits[0].patient_id == "p\x1f2"
        assert sorted(n.patient_id for n in hits) == [f"p\x1f{i}" for i in range(6)]


def test_new_neighbour_is_the_neighbour_its_init_makes() -> None:
    """The maker searches use sets every field as ``Neighbour(...)`` does."""
    report = NormalizedReport(id="r", language="en", standardized_text="s")
    values = (7, "case3", "p1", 0.5, {"image": 0.5}, "B", Laterality.RIGHT, View.MLO,
              "dir/thumbs/7.png", report, "img6.png")  # fmt: skip
    made = new_neighbour(*values)
    assert type(made) is Neighbour and made == Neighbour(*values)
    assert [getattr(made, f) for f in Neighbour.__slots__] == list(values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.score = 1.0  # type: ignore[misc]
    assert dataclasses.replace(made, score=0.25).score == 0.25
    assert pickle.loads(pickle.dumps(made)) == made


def test_a_column_load_that_ends_after_a_publication_keeps_nothing(tmp_path: Path) -> None:
    """The column store is loaded in a thread while searches go on; when a writer published
    meanwhile, what the load read may hold removed rows, and is dropped."""
    directory = tmp_path / "idx"
    _build(directory, None)
    with CaseIndex(directory) as stale:
        with IndexWriter(directory, INFO) as writer:
            assert writer.remove_case("case19") == 2
            commit(writer)
        stale._hits._load_columns()  # as the loader thread would, with no search since
        assert stale._hits.enabled and stale._hits._columns is None

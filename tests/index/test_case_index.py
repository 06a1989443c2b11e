"""The case index on seeded synthetic vectors: search, filters, fusion, vote, persistence.

Tests that build an index run once per case-store backend (``store``: SQLite in the index
directory, and a real PostgreSQL server started for the session).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index import (
    CaseIndex,
    EmbedderInfo,
    IndexWriter,
    SearchFilters,
    VoteParams,
    verify_index,
    vote_density,
)
from mammosearch.records import Laterality, Neighbour, View

DIM = 16
INFO = EmbedderInfo(name="fake.v1", model_id="fake", image_dim=DIM, text_dim=DIM, cross_modal=True)
LABELS = ["A", "B", "C", "D"]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def row(i: int, label: str, patient: str, side: str = "L", view: str = "CC") -> dict[str, Any]:
    return {"source_key": f"k{i}", "case_id": f"case{i // 2}", "patient_id": patient,
            "laterality": side, "view": view, "label": label, "image_path": f"img{i}.png",
            "report_text": None, "report_json": None}  # fmt: skip


def write(directory: Path, vectors: np.ndarray, *, texts: bool = True, **kw: Any) -> None:
    with IndexWriter(directory, INFO, **kw) as writer:
        for i, v in enumerate(vectors):
            label = LABELS[i % 4]
            writer.add(row(i, label, f"p{i // 4}", "LR"[i % 2], ("CC", "MLO")[i // 2 % 2]), v,
                       v if texts and i % 3 else None, b"png")  # fmt: skip
        commit(writer)


def commit(writer: IndexWriter) -> None:
    writer.commit(labels=LABELS, label_order_source="known", vote=VoteParams(),
                  vote_figures={}, settings={}, package_version="test")  # fmt: skip


@pytest.fixture
def built(tmp_path: Path, store: str | None) -> tuple[Path, np.ndarray]:
    vectors = unit(np.random.default_rng(0), 40)
    write(tmp_path / "idx", vectors, store=store)
    return tmp_path / "idx", vectors


def test_search_finds_itself_and_reports_modalities(built: tuple[Path, np.ndarray]) -> None:
    directory, vectors = built
    with CaseIndex(directory) as index:
        hits = index.search(image_vector=vectors[5], k=3)
        assert hits[0].row_id == 6 and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].scores == {"image": pytest.approx(1.0, abs=1e-5)}
        assert Path(str(hits[0].thumbnail)).read_bytes() == b"png"
        text_hits = index.search(text_vector=vectors[5], k=3)  # cross-modal: text and image
        assert {"text", "text_to_image"} >= set(text_hits[0].scores)
        both = index.search(image_vector=vectors[5], text_vector=vectors[5], k=5)
        assert both[0].row_id == 6 and set(both[0].scores) == {"image", "text"}
        rrf = index.search(image_vector=vectors[5], text_vector=vectors[5], k=5, fusion="rrf")
        assert rrf[0].row_id == 6


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        (SearchFilters(laterality=Laterality.RIGHT), lambda n: n.laterality is Laterality.RIGHT),
        (SearchFilters(view=View.MLO), lambda n: n.view is View.MLO),
        (SearchFilters(label="C"), lambda n: n.label == "C"),
        (SearchFilters(exclude_patient="p1"), lambda n: n.patient_id != "p1"),
        (SearchFilters(exclude_case="case2"), lambda n: n.case_id != "case2"),
        (
            SearchFilters(laterality=Laterality.LEFT, label="A"),
            lambda n: n.laterality is Laterality.LEFT and n.label == "A",
        ),
    ],
)
def test_filters(built: tuple[Path, np.ndarray], filters: SearchFilters, check: Any) -> None:
    directory, vectors = built
    with CaseIndex(directory) as index:
        hits = index.search(image_vector=vectors[5], k=40, filters=filters)
        assert hits and all(check(n) for n in hits)


def _first_per_case(hits: list[Neighbour], k: int) -> list[Neighbour]:
    """The reference: each case's first image in a ranking of every image, the first ``k``."""
    seen: set[str] = set()
    out = []
    for n in hits:
        if n.case_id not in seen:
            seen.add(n.case_id)
            out.append(n)
    return out[:k]


@pytest.mark.parametrize(
    "query",
    [
        {"image": True},
        {"text": True},  # cross-modal: text and text-to-image, fused
        {"image": True, "text": True},
        {"image": True, "fusion": "rrf"},
        {"image": True, "filters": {"laterality": Laterality.LEFT}},
    ],
)
def test_one_image_per_case(built: tuple[Path, np.ndarray], query: dict[str, Any]) -> None:
    """``per_case``: the k best cases, each by its best image, in the order of the per-image
    ranking of every image (the same hits, scores and rows, with or without their reports). A
    text-only query fuses each modality's nearest ``depth`` (8 a case wanted), so it is
    compared where that depth covers the 40 images."""
    directory, vectors = built
    v = vectors[5]
    kw: dict[str, Any] = {"image_vector": v if query.get("image") else None,
                          "text_vector": v if query.get("text") else None}  # fmt: skip
    if query.get("text") and query.get("image") or query.get("fusion"):
        kw["text_vector"] = vectors[9]
        kw["fusion"] = query.get("fusion", "weighted")
    plain = query.get("filters", {})
    with CaseIndex(directory) as index:
        for k, reports in itertools.product(
            (5, 7, 25) if kw["image_vector"] is None else (1, 3, 7, 25), (True, False)
        ):
            every = index.search(k=40, filters=SearchFilters(**plain), with_reports=reports, **kw)
            hits = index.search(k=k, filters=SearchFilters(**plain, per_case=True),
                                with_reports=reports, **kw)  # fmt: skip
            assert hits == _first_per_case(every, k)
            assert len({n.case_id for n in hits}) == len(hits)
        assert len(index.search(k=25, filters=SearchFilters(per_case=True), **kw)) == 20


def test_one_image_per_case_searches_deeper(tmp_path: Path) -> None:
    """A case with more images than the first depth looks at (8 a case wanted) before any
    other case's: the search goes deeper until it has k cases."""
    rng = np.random.default_rng(3)
    near = unit(rng, 1)[0]
    crowd = near + 0.01 * rng.normal(size=(40, DIM)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    others = unit(rng, 20)
    with IndexWriter(tmp_path / "idx", INFO) as writer:
        for i, vec in enumerate([*crowd, *others]):
            values = row(i, "A", f"p{i}")
            values["case_id"] = "crowd" if i < len(crowd) else f"case{i}"
            writer.add(values, vec, None, b"png")
        commit(writer)
    with CaseIndex(tmp_path / "idx") as index:
        every = index.search(image_vector=near, k=60)
        assert [n.case_id for n in every[:40]] == ["crowd"] * 40
        hits = index.search(image_vector=near, k=3, filters=SearchFilters(per_case=True))
        assert hits == _first_per_case(every, 3)
        assert hits[0].case_id == "crowd" and len({n.case_id for n in hits}) == 3


def test_the_first_ids_only(built: tuple[Path, np.ndarray]) -> None:
    """Row ids ascending, the first ``limit`` of them; with texts: rows 2, 3, 5, 6, … (every
    image but each third, from the first, was written with a text vector)."""
    directory, _ = built
    with CaseIndex(directory) as index:
        assert index.store.ids(limit=3) == [1, 2, 3]
        assert index.store.ids(with_text=True, limit=3) == [2, 3, 5]
        assert index.store.ids(with_text=True)[:5] == [2, 3, 5, 6, 8]
        assert len(index.store.ids()) == 40


def test_search_needs_a_query(built: tuple[Path, np.ndarray]) -> None:
    with CaseIndex(built[0]) as index, pytest.raises(InputError):
        index.search(k=3)


def test_vote() -> None:
    def n(i: int, score: float, label: str | None) -> Neighbour:
        return Neighbour(row_id=i, case_id=str(i), patient_id="p", score=score, label=label)

    vote = vote_density([n(1, 0.9, "C"), n(2, 0.8, "C"), n(3, 0.7, "B"), n(4, 0.6, None)],
                        LABELS, VoteParams(temperature=0.1))  # fmt: skip
    assert vote.label == "C" and not vote.abstain and vote.neighbours == (1, 2)
    assert sum(vote.probabilities.values()) == pytest.approx(1.0)
    few = vote_density([n(1, 0.9, "C")], LABELS, VoteParams(min_neighbours=3))
    assert few.abstain and few.label == "C" and "labelled neighbours" in str(few.reason)
    tight = vote_density([n(1, 0.9, "C"), n(2, 0.9, "B"), n(3, 0.9, "A")], LABELS,
                         VoteParams(min_margin=0.2))  # fmt: skip
    assert tight.abstain and "margin" in str(tight.reason)
    assert vote_density([], LABELS).abstain


def test_verify_detects_tampering_and_missing_files(built: tuple[Path, np.ndarray]) -> None:
    directory, _ = built
    assert verify_index(directory).counts["images"] == 40
    (directory / "thumbs" / "3.png").write_bytes(b"changed")
    with pytest.raises(IndexIntegrityError, match="thumbs/3.png"):
        verify_index(directory)
    (directory / "thumbs" / "3.png").write_bytes(b"png")
    (directory / "extra.txt").write_text("x")
    with pytest.raises(IndexIntegrityError, match="not in its manifest"):
        verify_index(directory)
    (directory / "extra.txt").unlink()
    (directory / "image.faiss").write_bytes(b"broken")
    with pytest.raises(IndexIntegrityError, match="checksum"):
        CaseIndex(directory)  # checked before faiss.read_index


def test_embedder_mismatch_is_refused(built: tuple[Path, np.ndarray]) -> None:
    directory, _ = built
    with pytest.raises(IndexIntegrityError, match="built by fake.v1"):
        CaseIndex(directory, expect_embedder="biomedclip.v1")
    other = INFO.model_copy(update={"name": "other.v1", "image_dim": 8})
    with pytest.raises(IndexIntegrityError, match="built by fake.v1"):
        IndexWriter(directory, other)
    with CaseIndex(directory) as index, pytest.raises(IndexIntegrityError, match="16-d index"):
        index.search(image_vector=np.ones(8, dtype=np.float32), k=3)


def test_remove_and_update(built: tuple[Path, np.ndarray]) -> None:
    directory, vectors = built
    with IndexWriter(directory, INFO) as writer:
        assert writer.remove_case("case0") == 2
        writer.add(row(100, "A", "p99"), vectors[0], None, b"png")
        commit(writer)
    manifest = verify_index(directory)
    assert manifest.counts["images"] == 39
    with CaseIndex(directory) as index:
        ids = [n.row_id for n in index.search(image_vector=vectors[1], k=40)]
        assert 1 not in ids and 2 not in ids and 41 in ids


@pytest.mark.parametrize("stage", ["vectors", "manifest", "moved_old"])
def test_crash_during_save_keeps_the_previous_index(
    built: tuple[Path, np.ndarray], stage: str
) -> None:
    directory, vectors = built
    before = verify_index(directory).files
    with (
        pytest.raises(RuntimeError, match="injected crash"),
        IndexWriter(directory, INFO, crash_after=stage) as writer,
    ):
        writer.remove_case("case3")
        commit(writer)
    manifest = verify_index(directory)  # repairs an interrupted swap, then checks everything
    assert manifest.files == before and manifest.counts["images"] == 40
    assert not [p for p in directory.parent.glob(".idx.*") if p.suffix != ".lock"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), min_size=1, max_size=6))
def test_ids_stay_aligned_through_adds_removes_and_reloads(
    tmp_path_factory: pytest.TempPathFactory, store: str | None, ops: list[tuple[bool, int]]
) -> None:
    directory = tmp_path_factory.mktemp("prop") / "idx"
    rng = np.random.default_rng(len(ops))
    write(directory, unit(rng, 12), store=store)
    counter = 1000
    for add, n in ops:
        with IndexWriter(directory, INFO) as writer:
            if add:
                for v in unit(rng, n % 5 + 1):
                    counter += 1
                    writer.add(row(counter, "B", f"q{counter}"), v, v if counter % 2 else None,
                               b"png")  # fmt: skip
            else:
                writer.remove_case(f"case{n % 6}")
            commit(writer)
        manifest = verify_index(directory)  # alignment of FAISS ids and SQLite rows
        with CaseIndex(directory) as index:
            assert index.vectors["image"].ntotal == manifest.counts["images"]


def test_large_collections_use_an_ivf_index(tmp_path: Path, store: str | None) -> None:
    vectors = unit(np.random.default_rng(1), 400)
    with IndexWriter(tmp_path / "big", INFO, store=store) as writer:
        for i, v in enumerate(vectors):
            writer.add(row(i, "A", f"p{i}"), v, None, b"png")
        writer.rebuild_vectors(exact_limit=100)
        commit(writer)
    with CaseIndex(tmp_path / "big") as index:
        info = index.manifest.vectors["image"]
        assert info["type"] == "ivf_flat" and info["recall_at_10"] >= 0.9
        assert index.search(image_vector=vectors[7], k=1)[0].row_id == 8
        np.testing.assert_allclose(index.vectors["image"].vector(8), vectors[7], atol=1e-6)
    verify_index(tmp_path / "big")


def test_no_index_there(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no index"):
        CaseIndex(tmp_path)

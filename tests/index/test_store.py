"""Case-store backends: generations, a writer that dies, migrations, several writers at once.

PostgreSQL is a real server started for the session (``tests/postgres.py``).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index import CaseIndex, IndexWriter, load_manifest, verify_index
from mammosearch.index.manifest import _sha256
from mammosearch.index.store import HEAD_REVISION, CaseStore, redact_url
from mammosearch.pipeline import build_index, migrate_index, search_cases
from tests.conftest import write_manifest
from tests.index.test_case_index import INFO, commit, row, unit, write
from tests.test_cases import breast_png

runner = CliRunner()


def pg_schema(directory: Path) -> tuple[str, str]:
    where = load_manifest(directory).store
    return where["url"], where["schema"]


def test_readers_see_their_generation_while_a_writer_works(
    tmp_path: Path, store: str | None
) -> None:
    vectors = unit(np.random.default_rng(3), 20)
    directory = tmp_path / "idx"
    write(directory, vectors, store=store)
    with CaseIndex(directory) as reader:
        assert reader.manifest.generation == 1
        with IndexWriter(directory, INFO) as writer:
            assert writer.generation == 2
            writer.remove_case("case0")
            writer.add(row(500, "A", "new"), vectors[0], None, b"png")
            writer._flush()  # rows are in the store (a shared one) but not published
            assert reader.store.count() == 20 and 21 not in reader.store.get([21])
            assert [n.row_id for n in reader.search(image_vector=vectors[0], k=1)] == [1]
            commit(writer)
        # its generation never sees row 21; a shared store deletes removed rows for good (a
        # SQLite reader keeps reading the file it opened, or the new one at its generation)
        assert reader.store.count() in (18, 20) and 21 not in reader.store.get([21])
        hits = reader.search(image_vector=vectors[0], k=3)
        assert hits and (store is None or 1 not in {n.row_id for n in hits})
    with CaseIndex(directory) as latest:
        assert latest.manifest.generation == 2 and latest.store.count() == 19
        assert latest.search(image_vector=vectors[0], k=1)[0].row_id == 21


def test_rows_of_a_writer_that_died_are_rolled_back(tmp_path: Path, postgres_url: str) -> None:
    vectors = unit(np.random.default_rng(4), 12)
    directory = tmp_path / "idx"
    write(directory, vectors, store=postgres_url)
    url, schema = pg_schema(directory)
    dead = CaseStore.postgresql(url, schema, generation=2)  # a writer killed before publishing
    dead.add([dict(row(900, "A", "ghost"), thumbnail="")])
    dead.remove([3])
    dead.close()
    assert verify_index(directory).counts["images"] == 12  # readers never see generation 2
    with IndexWriter(directory, INFO) as writer:  # the next writer undoes it
        assert writer.known_sources() == {f"k{i}" for i in range(12)}
        writer.add(row(901, "B", "p9"), vectors[1], None, b"png")
        commit(writer)
    manifest = verify_index(directory)
    assert manifest.generation == 2 and manifest.counts["images"] == 13
    with CaseIndex(directory) as index:
        assert index.store.get([3]) and "k900" not in index.store.source_keys()


def test_an_exception_before_commit_rolls_back_the_shared_store(
    tmp_path: Path, postgres_url: str
) -> None:
    vectors = unit(np.random.default_rng(5), 8)
    directory = tmp_path / "idx"
    write(directory, vectors, store=postgres_url)
    with pytest.raises(RuntimeError), IndexWriter(directory, INFO) as writer:
        writer.add(row(700, "A", "x"), vectors[0], None, b"png")
        writer._flush()
        raise RuntimeError("stop")
    url, schema = pg_schema(directory)
    everything = CaseStore.postgresql(url, schema, generation=10**6)
    try:
        assert everything.count() == 8
    finally:
        everything.close()


def test_a_failed_first_build_leaves_no_schema(tmp_path: Path, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    schemas = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'mammosearch_%'"
    with engine.connect() as conn:
        before = conn.execute(sa.text(schemas)).scalar_one()
    with pytest.raises(RuntimeError), IndexWriter(tmp_path / "idx", INFO, store=postgres_url) as w:
        w.add(row(1, "A", "p"), unit(np.random.default_rng(1), 1)[0], None, b"png")
        w._flush()
        raise RuntimeError("stop")
    with engine.connect() as conn:
        assert conn.execute(sa.text(schemas)).scalar_one() == before
    engine.dispose()
    assert not (tmp_path / "idx").exists()


def test_store_urls_are_checked_and_never_shown_with_passwords(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsupported case store 'mysql'"):
        IndexWriter(tmp_path / "a", INFO, store="mysql://u@localhost/db")
    with pytest.raises(InputError, match="cannot be reached") as caught:
        IndexWriter(tmp_path / "b", INFO, store="postgresql://u:s3cret-pw@127.0.0.1:9/db")
    assert "s3cret-pw" not in str(caught.value)
    assert redact_url("postgresql://u:pw@h:5/d") == "postgresql://u@h:5/d"
    assert not (tmp_path / "b").exists()


def test_a_format_1_sqlite_index_is_read_and_migrated(tmp_path: Path) -> None:
    vectors = unit(np.random.default_rng(6), 10)
    directory = tmp_path / "idx"
    write(directory, vectors)
    db = sqlite3.connect(directory / "cases.sqlite")  # as the first release wrote it
    db.executescript(
        "DROP INDEX images_added_gen; ALTER TABLE images DROP COLUMN added_gen;"
        " ALTER TABLE images DROP COLUMN removed_gen; DROP TABLE alembic_version;"
    )
    db.close()
    manifest = load_manifest(directory)
    manifest.files["cases.sqlite"] = _sha256(directory / "cases.sqlite")
    (directory / "manifest.json").write_text(manifest.model_dump_json())
    with CaseIndex(directory) as index:
        assert index.store.count() == 10 and index.store.revision() is None
    assert migrate_index(directory) == HEAD_REVISION
    assert verify_index(directory).counts["images"] == 10
    with CaseIndex(directory) as index:
        assert index.store.revision() == HEAD_REVISION and index.manifest.generation == 2


def test_an_old_postgresql_schema_is_refused_until_migrated(
    tmp_path: Path, postgres_url: str
) -> None:
    directory = tmp_path / "idx"
    write(directory, unit(np.random.default_rng(7), 6), store=postgres_url)
    url, schema = pg_schema(directory)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # as an older release left it
        conn.execute(sa.text(f'DROP INDEX "{schema}".images_added_gen'))
        conn.execute(sa.text(f'ALTER TABLE "{schema}".images DROP COLUMN added_gen'))
        conn.execute(sa.text(f'ALTER TABLE "{schema}".images DROP COLUMN removed_gen'))
        conn.execute(sa.text(f"UPDATE \"{schema}\".alembic_version SET version_num = '0001'"))
    engine.dispose()
    with pytest.raises(IndexIntegrityError, match="index migrate"):
        CaseIndex(directory)
    result = runner.invoke(app, ["index", "migrate", str(directory)])
    assert result.exit_code == 0, result.output
    assert HEAD_REVISION in result.output
    assert verify_index(directory).counts["images"] == 6


def _writer(directory: str, first: int, rounds: int) -> None:
    rng = np.random.default_rng(first)
    for r in range(rounds):
        with IndexWriter(Path(directory), INFO) as writer:
            for j, v in enumerate(unit(rng, 3)):
                i = first + r * 3 + j
                writer.add(row(i, "C", f"w{i}"), v, v, b"png")
            commit(writer)


def _searcher(directory: str, stop: multiprocessing.synchronize.Event, errors: list[str]) -> None:
    rng = np.random.default_rng(99)
    while not stop.is_set():
        try:
            with CaseIndex(Path(directory)) as index:
                hits = index.search(image_vector=unit(rng, 1)[0], k=5)
                assert hits and all(n.thumbnail for n in hits)
                index.check_alignment()
        except Exception as e:  # reported to the test, which fails on any
            errors.append(f"{type(e).__name__}: {e}")


def test_two_writers_and_a_searcher_at_once(tmp_path: Path, postgres_url: str) -> None:
    directory = tmp_path / "idx"
    write(directory, unit(np.random.default_rng(8), 12), store=postgres_url)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        errors = manager.list()
        stop = manager.Event()
        searcher = ctx.Process(target=_searcher, args=(str(directory), stop, errors))
        searcher.start()
        writers = [ctx.Process(target=_writer, args=(str(directory), base, 4))
                   for base in (10_000, 20_000)]  # fmt: skip
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=300)
        stop.set()
        searcher.join(timeout=60)
        assert [w.exitcode for w in writers] == [0, 0] and searcher.exitcode == 0
        assert list(errors) == []
    manifest = verify_index(directory)  # checksums and ids of FAISS and PostgreSQL aligned
    assert manifest.counts["images"] == 12 + 2 * 4 * 3 and manifest.generation == 9
    with CaseIndex(directory) as index:
        keys = index.store.source_keys()
        assert {f"k{i}" for i in range(10_000, 10_012)} <= keys
        assert {f"k{i}" for i in range(20_000, 20_012)} <= keys


def test_cli_builds_searches_and_verifies_with_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(8):
        breast_png(tmp_path / "img" / f"{i}.png", 0.1 + 0.25 * (i % 4), i)
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "laterality": "LR"[i % 2], "view": "CC", "density": "ABCD"[i % 4],
                     "report": "ACR C. BI-RADS 1." if i % 2 else ""})  # fmt: skip
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", "build", str(manifest), "-o", str(out),
                                 "--embedder", "radiomics.v1", "--store", postgres_url])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        not (out / "cases.sqlite").exists() and load_manifest(out).store["backend"] == "postgresql"
    )
    result = runner.invoke(app, ["index", "verify", str(out)])
    assert result.exit_code == 0 and "ok: 8 images" in result.output
    hits = search_cases(out, image=tmp_path / "img" / "3.png", k=3)
    assert hits[0].case_id == "c1"
    report = build_index(manifest, out, settings=load_settings(), update=True)
    assert report.already_indexed == 8 and report.indexed == 0
    with pytest.raises(InputError, match="keeps the case store"):
        build_index(
            manifest, out, settings=load_settings(), update=True, store="postgresql://x@y/z"
        )


def test_database_errors_never_quote_stored_values(tmp_path: Path, store: str | None) -> None:
    directory = tmp_path / "idx"
    write(directory, unit(np.random.default_rng(9), 4), store=store)
    with IndexWriter(directory, INFO) as writer:
        secret = dict(row(0, "A", "PAT-SECRET-77"), thumbnail="", report_text="Mrs Jane Roe")
        with pytest.raises(IndexIntegrityError, match="case store failed") as caught:
            writer.store.add([secret])  # k0 is indexed already
        assert "SECRET" not in str(caught.value) and "Roe" not in str(caught.value)


def _killed_first_build(directory: str, url: str) -> None:
    import os
    import signal

    writer = IndexWriter(Path(directory), INFO, store=url)
    writer.add(row(1, "A", "p"), unit(np.random.default_rng(1), 1)[0], None, b"png")
    writer._flush()
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_schema_of_a_killed_first_build_is_dropped(tmp_path: Path, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    schemas = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'mammosearch_%'"
    with engine.connect() as conn:
        before = conn.execute(sa.text(schemas)).scalar_one()
    killed = multiprocessing.get_context("spawn").Process(
        target=_killed_first_build, args=(str(tmp_path / "idx"), postgres_url)
    )
    killed.start()
    killed.join(timeout=120)
    assert killed.exitcode == -9
    with engine.connect() as conn:
        assert conn.execute(sa.text(schemas)).scalar_one() == before + 1  # rows of nobody
    write(tmp_path / "idx", unit(np.random.default_rng(2), 4), store=postgres_url)
    with engine.connect() as conn:  # the next writer dropped it (and made its own)
        assert conn.execute(sa.text(schemas)).scalar_one() == before + 1
    engine.dispose()
    assert verify_index(tmp_path / "idx").counts["images"] == 4


def test_a_reader_does_not_wait_for_a_first_build(tmp_path: Path) -> None:
    import threading

    from mammosearch.index._recovery import _file_lock

    (tmp_path / ".idx.new-0000").mkdir()  # a first build at work, holding the writers' lock
    outcome: list[str] = []

    def read() -> None:
        try:
            CaseIndex(tmp_path / "idx")
        except InputError as e:
            outcome.append(str(e))

    with _file_lock(tmp_path / "idx"):
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=20)
    assert outcome and "no index" in outcome[0]


def test_a_build_refuses_an_index_published_while_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mammosearch.pipeline.build as cases

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        breast_png(tmp_path / "img" / f"{i}.png", 0.2 + 0.2 * i, i)
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i}", "patient_id": f"p{i}",
                     "laterality": "L", "view": "CC", "density": "ABCD"[i]})  # fmt: skip
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "idx"
    embed_texts = cases.report_vectors

    def another_build_publishes_first(*args: object) -> object:
        monkeypatch.setattr(cases, "report_vectors", embed_texts)
        build_index(manifest, out, settings=load_settings(), embedder="radiomics.v1")  # it wins
        return embed_texts(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cases, "report_vectors", another_build_publishes_first)
    with pytest.raises(InputError, match="built at 'idx' while this build was running"):
        build_index(manifest, out, settings=load_settings(), embedder="radiomics.v1")
    assert verify_index(out).counts["images"] == 4  # the other build's index, untouched

"""Batch jobs on Ray (``--engine ray``): same outputs as the local engine, shards, resume, errors.

One local Ray cluster (2 CPUs) serves the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.distributed import RayOptions
from mammosearch.errors import ConfigError
from mammosearch.index import CaseIndex, verify_index
from mammosearch.pipeline import build_index, iter_assessments, normalize_reports
from mammosearch.samples.reports import generate_reports
from tests.conftest import PHI_CANARY, shared_path, write_manifest
from tests.test_cases import breast_png

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    before = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
    else:
        os.environ["RAY_USAGE_STATS_ENABLED"] = before


@pytest.fixture(scope="module")
def reports_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 generated EN/ES reports as JSON Lines, with a malformed line, an empty report and a
    lone surrogate."""
    path = tmp_path_factory.mktemp("reports") / "reports.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for n, report in enumerate(generate_reports(3000, seed=5)):
            handle.write(json.dumps({"id": report.truth["id"], "text": report.text}) + "\n")
            if n == 1500:
                handle.write("this line is not JSON\n")
                handle.write(json.dumps({"id": "empty", "text": ""}) + "\n")
                # a lone surrogate (a JSON escape): Arrow refuses it as a string
                handle.write(json.dumps({"id": "lone", "text": "ACR C \ud800 BI-RADS 2"}) + "\n")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_normalize_engines_write_the_same_file(reports_file: Path, tmp_path: Path) -> None:
    settings = load_settings()
    local = normalize_reports(reports_file, tmp_path / "local.jsonl", settings=settings)
    on_ray = normalize_reports(reports_file, tmp_path / "ray.jsonl", settings=settings,
                               engine="ray", ray=RayOptions(shard_rows=500))  # fmt: skip
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    records = _lines(tmp_path / "ray.jsonl")
    assert len(records) == 3003 and records[1501]["id"] == "line-1502"
    assert records[1503]["id"] == "lone" and records[1503]["density"]["category"] == "C"
    assert records[1501]["error"].startswith("E022")  # a bad record never loses good ones
    assert (on_ray.total, on_ray.ok, on_ray.failed) == (local.total, local.ok, local.failed)
    assert on_ray.languages == local.languages and on_ray.with_density == local.with_density
    assert on_ray.shards == {"total": 7, "computed": 7, "reused": 0}
    assert not (tmp_path / "ray.jsonl.parts").exists()  # a finished job leaves no shards


def test_normalize_parquet_and_scrub_through_the_cli(tmp_path: Path) -> None:
    reports = generate_reports(40, seed=9)
    table = pa.table({
        "study": [r.truth["id"] for r in reports] + ["", "s-none"],
        "report": [f"Patient {PHI_CANARY}. {r.text}" for r in reports] + ["BI-RADS 2", None],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "reports.parquet")
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        result = runner.invoke(app, ["normalize", str(tmp_path / "reports.parquet"), "-o", str(out),
                                     "--id-column", "study", "--text-column", "report", "--scrub",
                                     "--engine", engine, "--no-progress"])  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[engine] = out.read_bytes()
    assert outputs["ray"] == outputs["local"]
    records = _lines(tmp_path / "ray.jsonl")
    assert [r["id"] for r in records[-2:]] == ["row-41", "s-none"]
    assert "[NAME]" in records[0]["text"] and PHI_CANARY.encode() not in outputs["ray"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_normalize_engines_write_the_same_tables(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "reports.jsonl"
    with source.open("w", encoding="utf-8") as handle:
        for report in generate_reports(60, seed=3):
            handle.write(json.dumps({"id": report.truth["id"], "text": report.text}) + "\n")
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine / f"reports.{fmt}"
        normalize_reports(source, out, settings=load_settings(), engine=engine, scrub=True,
                          ray=RayOptions(shard_rows=25) if engine == "ray" else None)  # fmt: skip
        outputs[engine] = {p.name: p.read_bytes() if fmt == "csv" else pq.read_table(p)
                           for p in out.parent.iterdir()}  # fmt: skip
    assert set(outputs["ray"]) == {f"reports.{fmt}", f"reports.findings.{fmt}"}  # no shards left
    for name, table in outputs["local"].items():
        assert table == outputs["ray"][name] if fmt == "csv" else table.equals(outputs["ray"][name])


def test_normalize_resumes_only_the_missing_shards(reports_file: Path, tmp_path: Path) -> None:
    settings = load_settings()
    lines = reports_file.read_text(encoding="utf-8").splitlines()[:1000]
    reports_file = tmp_path / "reports.jsonl"
    reports_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    options = RayOptions(shard_rows=250, work_dir=tmp_path / "work")
    with pytest.raises(RuntimeError, match="injected crash after 2 shards"):
        normalize_reports(reports_file, out, settings=settings, engine="ray",
                          ray=RayOptions(shard_rows=250, work_dir=tmp_path / "work",
                                         crash_after_shards=2))  # fmt: skip
    job = tmp_path / "work" / "out.jsonl.parts"  # the job's own folder in --work-dir
    assert not out.exists() and len(list(job.glob("*.parquet"))) == 2
    resumed = normalize_reports(reports_file, out, settings=settings, engine="ray", ray=options)
    assert resumed.shards == {"total": 4, "computed": 2, "reused": 2}
    local = tmp_path / "local.jsonl"
    normalize_reports(reports_file, local, settings=settings)
    assert out.read_bytes() == local.read_bytes()
    # a changed option (scrubbing) or record never reuses a stale shard
    with pytest.raises(RuntimeError):  # leaves all four shards (the crash follows the last)
        normalize_reports(reports_file, out, settings=settings, engine="ray",
                          ray=RayOptions(shard_rows=250, work_dir=tmp_path / "work",
                                         crash_after_shards=4))  # fmt: skip
    changed = tmp_path / "changed.jsonl"
    changed.write_text("\n".join([json.dumps({"id": "new", "text": "ACR D. BI-RADS 1."}),
                                  *lines[1:]]) + "\n", encoding="utf-8")  # fmt: skip
    again = normalize_reports(changed, out, settings=settings, engine="ray", ray=options)
    assert again.shards == {"total": 4, "computed": 1, "reused": 3}
    first = _lines(out)[0]
    assert first["id"] == "new" and first["density"]["category"] == "D"


def _corpus(folder: Path, n: int = 24) -> Path:
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        label = "ABCD"[i % 4]
        breast_png(folder / "img" / f"{i}.png", 0.1 + 0.25 * (i % 4), i)
        report = f"Patient {PHI_CANARY}. ACR {label}. BI-RADS 2." if i % 3 == 0 else ""
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "laterality": "LR"[i % 2], "view": "CC", "report": report, "density": label})  # fmt: skip
    rows.insert(5, {"image": "img/missing.png", "case_id": "bad", "patient_id": "pb",
                    "laterality": "", "view": "", "report": "", "density": "A"})  # fmt: skip
    return write_manifest(folder / "manifest.csv", rows)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def local_index(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The local engine's index of ``manifest`` and its build report."""
    out = tmp_path_factory.mktemp("local") / "idx"
    report = build_index(manifest, out, settings=load_settings(), embedder="radiomics.v1")
    return out, report


def _same_index(a: Path, b: Path) -> None:
    with CaseIndex(a) as x, CaseIndex(b) as y:
        rows_x, rows_y = x.store.all_rows(), y.store.all_rows()
        assert [r.id for r in rows_x] == [r.id for r in rows_y] and len(rows_x) == 24

        def fields(r: Any) -> tuple[Any, ...]:
            return (r.source_key, r.case_id, r.patient_id, r.laterality, r.view, r.label,
                    r.report_text, r.report)  # fmt: skip

        assert [fields(r) for r in rows_x] == [fields(r) for r in rows_y]
        for r in rows_x:
            assert np.allclose(x.vectors["image"].vector(r.id), y.vectors["image"].vector(r.id),
                               atol=1e-5)  # fmt: skip
            if r.report_text:
                assert np.allclose(x.vectors["text"].vector(r.id),
                                   y.vectors["text"].vector(r.id), atol=1e-5)  # fmt: skip
            assert (a / r.thumbnail).read_bytes() == (b / r.thumbnail).read_bytes()
        assert x.manifest.embedder == y.manifest.embedder and x.labels == y.labels
        assert x.manifest.vote == y.manifest.vote and x.manifest.counts == y.manifest.counts


def test_index_engines_build_the_same_index(
    manifest: Path, local_index: tuple[Path, Any], tmp_path: Path
) -> None:
    settings = load_settings()
    local_dir, local = local_index
    on_ray = build_index(manifest, tmp_path / "ray", settings=settings, embedder="radiomics.v1",
                         engine="ray", ray=RayOptions(shard_rows=10))  # fmt: skip
    verify_index(tmp_path / "ray")
    _same_index(local_dir, tmp_path / "ray")
    expected = local.to_dict()
    assert {k: v for k, v in on_ray.to_dict().items() if k != "shards"} == expected
    assert on_ray.skipped_rows == [{"row": 6, "error": local.skipped_rows[0]["error"]}]
    assert on_ray.shards == {"total": 3, "computed": 3, "reused": 0}
    assert not (tmp_path / "ray.parts").exists()
    stored = (tmp_path / "ray" / "cases.sqlite").read_bytes()
    assert b"QUIXOTEVANS" not in stored  # scrubbed on the cluster as locally
    # --update on ray reads only what is not indexed (here the row that failed)
    again = build_index(manifest, tmp_path / "ray", settings=settings, update=True, engine="ray")
    assert (again.indexed, again.already_indexed, again.skipped) == (0, 24, 1)
    assert again.shards == {"total": 1, "computed": 1, "reused": 0}


def test_local_worker_processes_build_the_same_index(
    manifest: Path, local_index: tuple[Path, Any], tmp_path: Path
) -> None:
    """``--workers 2``: rows prepared by two processes ahead of the embedding, same index."""
    local_dir, local = local_index
    report = build_index(manifest, tmp_path / "two", settings=load_settings(workers=2),
                         embedder="radiomics.v1")  # fmt: skip
    _same_index(local_dir, tmp_path / "two")
    assert report.to_dict() == local.to_dict()
    assert b"QUIXOTEVANS" not in (tmp_path / "two" / "cases.sqlite").read_bytes()


def test_index_engines_agree_with_a_neural_embedder(
    manifest: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """BiomedCLIP's architecture (tiny, random): vectors come embedded from the actors."""
    settings = load_settings()
    model = f"local-dir:{tiny_model_dir}"
    build_index(manifest, tmp_path / "local", settings=settings, embedder="biomedclip.v1",
                model=model)  # fmt: skip
    on_ray = build_index(manifest, tmp_path / "ray", settings=settings, embedder="biomedclip.v1",
                         model=model, engine="ray", ray=RayOptions(embed_batch_size=5))  # fmt: skip
    assert on_ray.indexed == 24 and on_ray.embedder == "biomedclip.v1"
    _same_index(tmp_path / "local", tmp_path / "ray")


def test_index_build_resumes_only_the_missing_shards(
    manifest: Path, local_index: tuple[Path, Any], tmp_path: Path
) -> None:
    settings = load_settings()
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="injected crash after 1 shards"):
        build_index(manifest, tmp_path / "idx", settings=settings, embedder="radiomics.v1",
                    engine="ray", ray=RayOptions(shard_rows=7, work_dir=work,
                                                 crash_after_shards=1))  # fmt: skip
    (work / "unrelated.txt").write_text("kept")  # a completed job removes only its own files
    (shard,) = (work / "idx.parts").glob("*.parquet")
    assert not (tmp_path / "idx").exists()
    texts = pq.read_table(shard, columns=["text", "report", "error"]).to_pylist()
    assert "QUIXOTEVANS" not in json.dumps(texts) and "[NAME]" in json.dumps(texts)  # scrubbed
    resumed = build_index(manifest, tmp_path / "idx", settings=settings, embedder="radiomics.v1",
                          engine="ray", ray=RayOptions(shard_rows=7, work_dir=work))  # fmt: skip
    assert resumed.shards == {"total": 4, "computed": 3, "reused": 1} and resumed.resumed == 7
    assert [p.name for p in work.iterdir()] == ["unrelated.txt"]
    _same_index(local_index[0], tmp_path / "idx")


def test_index_build_cli_with_a_parquet_manifest(
    manifest: Path, local_index: tuple[Path, Any], tmp_path: Path
) -> None:
    import csv

    with manifest.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # absolute paths: the Parquet file lives elsewhere
        row["image"] = str(manifest.parent / row["image"])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "manifest.parquet")
    result = runner.invoke(app, ["index", "build", str(tmp_path / "manifest.parquet"), "-o",
                                 str(tmp_path / "ray"), "--embedder", "radiomics.v1",
                                 "--engine", "ray", "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "indexed 24 of 25 rows" in result.output
    assert "ray: 1 shards, 1 computed, 0 reused" in result.output
    _same_index(local_index[0], tmp_path / "ray")  # the CSV's index, built locally


@pytest.mark.shared_data
def test_mias_on_ray_assesses_as_the_local_build(tmp_path: Path) -> None:
    source = shared_path("mini-mias", "manifest.csv")
    import csv

    with source.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:60]  # a subset keeps the test short
    for row in rows:  # read in place (absolute paths), never copied
        row["image"] = str((source.parent / row["image"]).resolve())
    subset = write_manifest(tmp_path / "mias.csv", rows)
    settings = load_settings()
    build_index(subset, tmp_path / "local", settings=settings, embedder="radiomics.v1")
    build_index(subset, tmp_path / "ray", settings=settings, embedder="radiomics.v1",
                engine="ray", ray=RayOptions(shard_rows=20))  # fmt: skip

    def densities(index: Path) -> list[tuple[Any, ...]]:
        return [(r["case_id"], r["density"]["label"], r["density"]["method"],
                 round(r["density"]["confidence"], 5)) for r in (a.to_dict() for a in iter_assessments(index, subset))]  # fmt: skip

    local = densities(tmp_path / "local")
    assert len(local) == 60 and local == densities(tmp_path / "ray")


def test_errors_are_typed(
    reports_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    with pytest.raises(ConfigError, match="not 'auto' or HOST:PORT"):
        RayOptions(address="no port here")
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        normalize_reports(reports_file, tmp_path / "o.jsonl", settings=settings, engine="ray",
                          ray=RayOptions(address="127.0.0.1:1"))  # fmt: skip
    with pytest.raises(ConfigError, match="unknown engine"):
        normalize_reports(reports_file, tmp_path / "o.jsonl", settings=settings, engine="spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'mammosearch\[distributed\]'"):
        normalize_reports(reports_file, tmp_path / "o.jsonl", settings=settings, engine="ray")
    result = runner.invoke(app, ["normalize", str(reports_file), "-o", str(tmp_path / "o.jsonl"),
                                 "--engine", "ray"])  # fmt: skip
    assert result.exit_code == 1 and "E010" in result.output
    flagged = runner.invoke(app, ["normalize", str(reports_file), "-o", str(tmp_path / "o.jsonl"),
                                  "--ray-address", "auto"])  # fmt: skip
    assert flagged.exit_code == 2 and "need --engine ray" in flagged.output  # a usage error
    bad = runner.invoke(app, ["index", "build", str(reports_file), "-o", str(tmp_path / "i"),
                              "--engine", "ray", "--ray-address", "nowhere"])  # fmt: skip
    assert bad.exit_code == 1 and "HOST:PORT" in bad.output
    assert PHI_CANARY not in result.output + flagged.output + bad.output


def test_the_local_engine_imports_no_ray(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("ACR C. BI-RADS 2.", encoding="utf-8")
    code = (
        "import sys\nfrom pathlib import Path\nfrom mammosearch.cli import app\n"
        f"app(['normalize', {str(tmp_path / 'r.txt')!r}, '-o', {str(tmp_path / 'o.jsonl')!r}],"
        " standalone_mode=False)\n"
        "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_options_and_auth_refusals_are_recognised(tmp_path: Path) -> None:
    from mammosearch.distributed._cluster import _auth_failed

    assert RayOptions().parts_dir(tmp_path / "out.jsonl") == tmp_path / "out.jsonl.parts"
    assert RayOptions(work_dir=tmp_path / "w").parts_dir(tmp_path / "idx") == (
        tmp_path / "w" / "idx.parts"
    )
    for address in ("auto", "head:6379", "10.0.0.5:6379", "ray://head:10001", "[::1]:6379"):
        assert RayOptions(address=address).address == address
    for address in ("", "head", "head:0", "head:70000", "http://head:6379"):
        with pytest.raises(ConfigError):
            RayOptions(address=address)
    with pytest.raises(ConfigError):
        RayOptions(shard_rows=0)
    wrapped = ConnectionError("Failed to connect to Ray cluster")
    wrapped.__cause__ = RuntimeError("RPC error: InvalidAuthToken: token is missing")
    assert _auth_failed(wrapped) and not _auth_failed(ConnectionError("refused"))


def test_the_stages_run_in_process(manifest: Path) -> None:
    """The map_batches functions and callable classes, called directly (what each worker does)."""
    from mammosearch.distributed._index import (
        EmbedActor,
        ReportActor,
        _frame,
        _read_entries,
        _shard_table,
        prepare_batch,
    )
    from mammosearch.distributed._normalize import NormalizeActor, _frames
    from mammosearch.distributed._shards import ShardStore
    from mammosearch.pipeline import iter_report_inputs, read_manifest

    rows = read_manifest(manifest)[3:7]  # the missing image is row 6
    batch = prepare_batch(_frame(rows, 0), size=512, keep_report_text=False,
                          allow_secondary_capture=False)  # fmt: skip
    assert list(batch["error_code"]) == ["", "", "E021", ""] and batch["height"].iloc[0] == 512
    batch = ReportActor(max_chars=1000)(batch)
    assert json.loads(batch["report"].iloc[0])["density"]["category"] == "D"  # row 4: ACR D
    batch = EmbedActor(name="radiomics.v1", model=None, stats=None, batch_size=2)(batch)
    assert "prepared" not in batch and batch["image_vector"].iloc[0] == b""
    assert len(batch["features"].iloc[1]) > 0 and batch["features"].iloc[2] == b""
    assert len(batch["text_vector"].iloc[0]) == 256 * 4 and batch["text_vector"].iloc[1] == b""
    from mammosearch.embeddings.radiomics import RadiomicsEmbedder

    dim = RadiomicsEmbedder().dim
    store = ShardStore(manifest.parent / "stages.parts")
    store.plan(0, "0" * 64)
    store.write(0, _shard_table(batch, (dim, dim, 256)))
    entries = _read_entries(store, 0)
    assert entries[6] == {"error_code": "E021", "error": batch["error"].iloc[2]}
    assert entries[4]["features"].shape == (dim,) and "text_vector" in entries[4]
    store.close()
    reports = manifest.parent / "few.jsonl"
    reports.write_text('{"id": "a", "text": "ACR B"}\nnot json\n', encoding="utf-8")
    (frame,) = list(_frames(iter(iter_report_inputs(reports)), 10))
    frame["shard"] = 0
    lines = NormalizeActor(max_chars=1000, scrub=True)(frame)
    assert json.loads(lines["json"].iloc[0])["density"]["category"] == "B"
    assert lines["error"].iloc[1].startswith("E022") and lines["language"].iloc[1] is None

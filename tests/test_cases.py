"""Index build, search, assess and evaluation through the pipeline and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import load_settings
from mammosearch.errors import IndexIntegrityError, InputError
from mammosearch.index import CaseIndex, verify_index
from mammosearch.pipeline import (
    assess_image,
    build_index,
    evaluate_retrieval,
    exam_density,
    iter_assessments,
    open_index,
    remove_cases,
    search_cases,
)
from tests.conftest import PHI_CANARY, shared_path, write_manifest

runner = CliRunner()


def breast_png(path: Path, density: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:240, 0:160]
    inside = (xx / 150.0) ** 2 + ((yy - 120) / 105.0) ** 2 < 1
    speckle = rng.random((240, 160)) < density
    tissue = 0.3 + 0.55 * speckle * rng.uniform(0.6, 1.0, (240, 160))
    Image.fromarray((np.where(inside, tissue, 0.02) * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "img").mkdir()
    rows = []
    for i in range(24):
        label = "ABCD"[i % 4]
        breast_png(folder / "img" / f"{i}.png", 0.1 + 0.25 * (i % 4), i)
        report = f"Patient {PHI_CANARY}. ACR {label}. BI-RADS 2." if i % 3 == 0 else ""
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i // 2}", "patient_id": f"p{i // 2}",
                     "laterality": "LR"[i % 2], "view": "CC", "report": report, "density": label})  # fmt: skip
    rows.append({"image": "img/missing.png", "case_id": "bad", "patient_id": "pb",
                 "laterality": "", "view": "", "report": "", "density": "A"})  # fmt: skip
    write_manifest(folder / "manifest.csv", rows)
    return folder


@pytest.fixture(scope="module")
def index_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "idx"
    report = build_index(corpus / "manifest.csv", out, settings=load_settings(),
                         embedder="radiomics.v1")  # fmt: skip
    assert (report.indexed, report.skipped, report.reasons) == (24, 1, {"E021": 1})
    assert report.with_report == 8
    return out


def test_build_writes_the_design_layout(index_dir: Path) -> None:
    names = {p.name for p in index_dir.iterdir()}
    assert {"manifest.json", "cases.sqlite", "image.faiss", "text.faiss", "thumbs",
            "build_report.json"} <= names  # fmt: skip
    manifest = verify_index(index_dir)
    assert manifest.embedder.name == "radiomics.v1" and manifest.embedder.stats is not None
    assert manifest.labels == ["A", "B", "C", "D"] and manifest.label_order_source == "known"
    assert manifest.counts["images"] == 24 and manifest.counts["text_vectors"] == 8
    assert manifest.vote_figures["loo_accuracy"] > manifest.vote_figures["majority_rate"]
    build = json.loads((index_dir / "build_report.json").read_text(encoding="utf-8"))
    assert build["skipped_rows"][0]["row"] == 25
    for path in index_dir.rglob("*"):  # nothing stored or logged names the planted patient…
        if path.suffix in (".json",):
            assert PHI_CANARY not in path.read_text(encoding="utf-8")


def test_report_text_is_scrubbed_unless_kept(index_dir: Path, corpus: Path, tmp_path: Path) -> None:
    stored = (index_dir / "cases.sqlite").read_bytes()
    assert b"QUIXOTEVANS" not in stored and b"CANARY" not in stored
    assert verify_index(index_dir).settings["report_text"] == "scrubbed"
    with CaseIndex(index_dir) as index:
        texts = [r.report_text for r in index.store.get(list(range(1, 25))).values()]
    assert "Patient [NAME] MRN [ID]. ACR A. BI-RADS 2." in texts
    kept = tmp_path / "kept"
    build_index(corpus / "manifest.csv", kept, settings=load_settings(), embedder="radiomics.v1",
                keep_report_text=True)  # fmt: skip
    assert b"QUIXOTEVANS" in (kept / "cases.sqlite").read_bytes()
    assert verify_index(kept).settings["report_text"] == "original"
    with pytest.raises(InputError, match="an update must do the same"):
        build_index(corpus / "manifest.csv", kept, settings=load_settings(), update=True)


def test_search_and_filters(index_dir: Path, corpus: Path) -> None:
    hits = search_cases(index_dir, image=corpus / "img" / "5.png", k=3)
    assert hits[0].case_id == "c2" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    from mammosearch.index import SearchFilters

    others = search_cases(index_dir, image=corpus / "img" / "5.png", k=5,
                          filters=SearchFilters(exclude_patient="p2"))  # fmt: skip
    assert all(h.patient_id != "p2" for h in others)
    by_text = search_cases(index_dir, text="Breast density: ACR C. BI-RADS 2.", k=3)
    assert by_text and all("text" in h.scores for h in by_text)
    with pytest.raises(InputError):
        search_cases(index_dir, k=3)


def test_assess_paths(index_dir: Path, corpus: Path) -> None:
    index, embedder = open_index(index_dir)
    try:
        stated = assess_image(index, embedder, image=corpus / "img" / "1.png",
                              report="Mamas extremadamente densas.").to_dict()  # fmt: skip
        assert stated["density"] == {"label": "D", "probabilities": {"A": 0.0, "B": 0.0, "C": 0.0,
                                     "D": 1.0}, "method": "report", "confidence": 1.0}  # fmt: skip
        voted = assess_image(index, embedder, image=corpus / "img" / "1.png", method="vote",
                             report="Mamas extremadamente densas.").to_dict()  # fmt: skip
        assert voted["density"]["method"] == "vote" and voted["vote"]["label"] in "ABCD"
        assert len(voted["neighbours"]) == index.vote_params.k
        with pytest.raises(InputError, match="needs a trained density model"):
            assess_image(index, embedder, image=corpus / "img" / "1.png", method="convnext")
    finally:
        index.close()


def test_assess_manifest_streams_one_object_per_row(index_dir: Path, corpus: Path) -> None:
    records = [a.to_dict() for a in iter_assessments(index_dir, corpus / "manifest.csv")]
    assert len(records) == 25
    assert records[-1]["error"].startswith("E021") and records[0]["case_id"] == "c0"
    ok = [r for r in records if "error" not in r]
    assert all(r["density"]["label"] in "ABCD" for r in ok)
    # each image votes from other patients only
    assert all(n["case_id"] != r["case_id"] for r in ok for n in r["neighbours"])


def test_exam_density_takes_the_denser_breast() -> None:
    from mammosearch.pipeline import Assessment, DensityDecision, Laterality

    def view(side: Laterality | None, probs: dict[str, float], method: str = "vote") -> Any:
        label = max(probs, key=probs.__getitem__)
        return Assessment(DensityDecision(label, probs, method, probs[label]), laterality=side)

    left, right = Laterality.LEFT, Laterality.RIGHT
    exam = exam_density([
        view(left, {"A": 0.1, "B": 0.6, "C": 0.3, "D": 0.0}),
        view(left, {"A": 0.0, "B": 0.3, "C": 0.7, "D": 0.0}, "convnext"),  # L mean: B .45, C .5
        view(right, {"A": 0.7, "B": 0.3, "C": 0.0, "D": 0.0}),
        Assessment.failed("c1", 4, "E021 unreadable"),
    ], ["A", "B", "C", "D"])  # fmt: skip
    assert exam.by_side["L"].label == "C" and exam.by_side["L"].views == 2
    assert exam.by_side["L"].probabilities == {"A": 0.05, "B": 0.45, "C": 0.5, "D": 0.0}
    assert exam.by_side["R"].label == "A"
    assert exam.label == "C" and exam.failed == 1 and exam.views == 3
    assert exam.view_methods == {"vote": 2, "convnext": 1}
    data = exam.to_dict()
    assert data["density"] == {"label": "C", "method": "exam: denser breast"}
    assert data["by_side"]["R"] == {
        "label": "A",
        "views": 1,
        "probabilities": {"A": 0.7, "B": 0.3, "C": 0.0, "D": 0.0},
    }
    unknown = exam_density([view(None, {"F": 0.2, "G": 0.3, "D": 0.5})], ["F", "G", "D"])
    assert list(unknown.by_side) == ["unknown"] and unknown.label == "D"
    assert exam_density([], ["A", "B"]).label is None


def test_exam_metrics_score_each_exam_by_its_denser_breast() -> None:
    from mammosearch.pipeline import Laterality, ManifestRow, View
    from mammosearch.pipeline.density import exam_metrics

    def row(n: int, case: str, side: str | None, label: str) -> ManifestRow:
        return ManifestRow(n, Path(f"{n}.png"), case, f"p-{case}", Laterality.parse(side),
                           View.MLO, None, None, label)  # fmt: skip

    rows = [row(1, "e1", "L", "G"), row(2, "e1", "L", "G"), row(3, "e1", "R", "F"),
            row(4, "e2", None, "D"), row(5, "e2", None, "D")]  # fmt: skip
    probs = np.array([
        [0.1, 0.6, 0.3], [0.2, 0.2, 0.6],  # left breast: mean G .4, D .45 -> D
        [0.8, 0.1, 0.1],  # right: F
        [0.1, 0.5, 0.4], [0.1, 0.2, 0.7],  # one unknown-side "breast": D .55
    ], dtype=np.float32)  # fmt: skip
    scores = exam_metrics(rows, {"probe": probs}, ["F", "G", "D"])
    m = scores["paths"]["probe"]
    assert scores["n"] == 2 and m["n"] == 2
    assert m["confusion_matrix"] == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]  # e1: G called D; e2: D


def test_assess_exams_groups_views(index_dir: Path, corpus: Path) -> None:
    result = runner.invoke(app, ["assess", str(index_dir), "--manifest",
                                 str(corpus / "manifest.csv"), "--exams"])  # fmt: skip
    assert result.exit_code == 0, result.output
    exams = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(exams) == 13 and exams[-1]["case_id"] == "bad" and exams[-1]["failed"] == 1
    for exam in exams[:-1]:
        assert set(exam["by_side"]) == {"L", "R"} and exam["views"] == 2
        sides = [exam["by_side"][s]["label"] for s in "LR"]
        assert exam["density"]["label"] == max(sides, key="ABCD".index)
        assert [v["laterality"] for v in exam["images"]] == ["L", "R"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_assess_manifest_table_has_the_json_lines_rows(
    index_dir: Path, corpus: Path, tmp_path: Path, fmt: str
) -> None:
    pd = pytest.importorskip("pandas")
    from mammosearch.pipeline import assessment_columns

    stream = runner.invoke(
        app, ["assess", str(index_dir), "--manifest", str(corpus / "manifest.csv")]
    )
    lines = [json.loads(line) for line in stream.stdout.splitlines()]
    out = tmp_path / f"assess.{fmt}"
    result = runner.invoke(app, ["assess", str(index_dir), "--manifest",
                                 str(corpus / "manifest.csv"), "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out, dtype={"error": str})
    assert list(table.columns) == [name for name, _ in assessment_columns("ABCD")]
    assert len(table) == len(lines) == 25
    for line, row in zip(lines, table.to_dict("records"), strict=True):
        assert (row["case_id"], row["row"]) == (line["case_id"], line["row"])
        if "error" in line:
            assert row["error"] == line["error"] and pd.isna(row["density"])
            continue
        density, vote = line["density"], line["vote"]
        assert (row["density"], row["density_method"]) == (density["label"], density["method"])
        assert row["density_confidence"] == pytest.approx(density["confidence"])
        assert [row[f"p_{k}"] for k in "ABCD"] == pytest.approx(
            list(density["probabilities"].values())
        )
        assert (row["vote"], bool(row["vote_abstain"])) == (vote["label"], vote["abstain"])
        assert [row[f"vote_p_{k}"] for k in "ABCD"] == pytest.approx(
            list(vote["probabilities"].values())
        )
        assert (
            row["n_neighbours"] == len(line["neighbours"])
            and row["laterality"] == line["laterality"]
        )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_assess_exams_table_has_the_json_lines_exams(
    index_dir: Path, corpus: Path, tmp_path: Path, fmt: str
) -> None:
    pd = pytest.importorskip("pandas")
    from mammosearch.pipeline import exam_columns

    args = ["assess", str(index_dir), "--manifest", str(corpus / "manifest.csv"), "--exams"]
    lines = [json.loads(line) for line in runner.invoke(app, args).stdout.splitlines()]
    out = tmp_path / f"exams.{fmt}"
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "assessed 13 exams" in result.output
    table = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    assert list(table.columns) == [name for name, _ in exam_columns("ABCD")]
    assert len(table) == len(lines) == 13  # 12 exams of two views, and the unreadable row's
    for line, row in zip(lines, table.to_dict("records"), strict=True):
        assert (row["case_id"], row["views"], row["failed"]) == (
            line["case_id"], line["views"], line["failed"]
        )  # fmt: skip
        assert row["views_report"] + row["views_vote"] + row["views_model"] == line["views"]
        assert row["views_report"] == line["view_methods"].get("report", 0)
        if line["density"]["label"] is None:
            assert pd.isna(row["density"]) and row["failed"] == 1
            continue
        assert row["density"] == line["density"]["label"]
        for side in ("L", "R", "unknown"):
            breast = line["by_side"].get(side)
            if breast is None:
                assert pd.isna(row[f"{side}_density"])
                continue
            assert (row[f"{side}_density"], row[f"{side}_views"]) == (
                breast["label"], breast["views"]
            )  # fmt: skip
            assert [row[f"{side}_p_{k}"] for k in "ABCD"] == pytest.approx(
                [breast["probabilities"][k] for k in "ABCD"]
            )


def test_assess_table_option_misuse(index_dir: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    result = runner.invoke(app, ["assess", str(index_dir), "--manifest",
                                 str(corpus / "manifest.csv"), "-o", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "must end in .parquet or .csv" in result.output
    assert not out.exists()


def test_update_adds_only_what_is_new_and_remove(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    build_index(corpus / "manifest.csv", out, settings=load_settings(), embedder="radiomics.v1")
    again = build_index(corpus / "manifest.csv", out, settings=load_settings(), update=True)
    assert (again.indexed, again.already_indexed) == (0, 24)
    with pytest.raises(InputError, match="already exists"):
        build_index(corpus / "manifest.csv", out, settings=load_settings())
    assert remove_cases(out, ["c0", "c1"]) == 4
    with CaseIndex(out) as index:
        assert index.manifest.counts["images"] == 20
    verify_index(out)
    again = build_index(corpus / "manifest.csv", out, settings=load_settings(), update=True)
    assert again.indexed == 4
    with pytest.raises(InputError, match="none of"):
        remove_cases(out, ["nope"])


def test_an_older_feature_revision_is_refused(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    build_index(corpus / "manifest.csv", out, settings=load_settings(), embedder="radiomics.v1")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["embedder"]["model_id"] = "radiomics.v1 (weight-free)"  # as rev 1 wrote it
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexIntegrityError, match="another revision"):
        open_index(out)
    with pytest.raises(IndexIntegrityError, match="another revision"):
        build_index(corpus / "manifest.csv", out, settings=load_settings(), update=True)


def test_evaluate_retrieval(corpus: Path, tmp_path: Path) -> None:
    scores = evaluate_retrieval(corpus / "manifest.csv", embedder="radiomics.v1",
                                settings=load_settings(), work_dir=tmp_path / "e")  # fmt: skip
    assert scores["images"] == 24 and scores["labels"] == ["A", "B", "C", "D"]
    assert np.array(scores["confusion_matrix"]).sum() == 24
    assert 0.0 <= scores["quadratic_kappa"] <= 1.0 and "precision_at_10" in scores


def test_cli_round_trip(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = runner.invoke(app, ["index", "build", str(corpus / "manifest.csv"), "-o", str(out),
                                 "--embedder", "radiomics.v1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "indexed 24 of 25 rows" in result.output and "E021" in result.output
    assert runner.invoke(app, ["index", "verify", str(out)]).exit_code == 0
    found = runner.invoke(app, ["search", str(out), "--image", str(corpus / "img" / "3.png"),
                                "-k", "2", "--json"])  # fmt: skip
    assert found.exit_code == 0 and len(json.loads(found.output)) == 2
    cases = runner.invoke(app, ["search", str(out), "--image", str(corpus / "img" / "3.png"),
                                "-k", "30", "--per-case", "--json"])  # fmt: skip
    assert cases.exit_code == 0, cases.output
    ids = [n["case_id"] for n in json.loads(cases.output)]
    assert len(ids) == len(set(ids)) == 12 and ids[0] == "c1"  # 24 images of 12 cases
    rights = runner.invoke(app, ["search", str(out), "--image", str(corpus / "img" / "3.png"),
                                 "-k", "4", "--json", "--laterality", "r", "--view", "cc"])  # fmt: skip
    assert rights.exit_code == 0, rights.output
    assert {(n["laterality"], n["view"]) for n in json.loads(rights.output)} == {("R", "CC")}
    for option, value in (("--laterality", "X"), ("--laterality", "B"), ("--view", "XYZ")):
        bad = runner.invoke(app, ["search", str(out), "--image", str(corpus / "img" / "3.png"),
                                  option, value])  # fmt: skip
        assert bad.exit_code == 2 and option in bad.output, bad.output
    assessed = runner.invoke(app, ["assess", str(out), "--image", str(corpus / "img" / "3.png"),
                                   "--json"])  # fmt: skip
    assert json.loads(assessed.output)["density"]["method"] == "vote"
    stream = runner.invoke(app, ["assess", str(out), "--manifest", str(corpus / "manifest.csv")])
    lines = [json.loads(line) for line in stream.stdout.splitlines()]
    assert len(lines) == 25 and all("density" in r or "error" in r for r in lines)
    removed = runner.invoke(app, ["index", "remove", str(out), "--case", "c3"])
    assert removed.exit_code == 0 and "removed 2 images" in removed.output
    (out / "cases.sqlite").write_bytes(b"tampered")
    broken = runner.invoke(app, ["index", "verify", str(out)])
    assert broken.exit_code == 3 and "checksum" in broken.output
    evaluated = runner.invoke(app, ["evaluate", "retrieval", str(corpus / "manifest.csv"),
                                    "--embedder", "radiomics.v1", "--json"])  # fmt: skip
    assert json.loads(evaluated.output)["images"] == 24
    printed = runner.invoke(app, ["evaluate", "retrieval", str(corpus / "manifest.csv"),
                                  "--embedder", "radiomics.v1"])  # fmt: skip
    assert "accuracy" in printed.output and "a little optimistic" in printed.output


@pytest.mark.slow
@pytest.mark.shared_data
def test_mias_retrieval_reaches_the_target(tmp_path: Path) -> None:
    manifest = shared_path("mini-mias", "manifest.csv")
    scores = evaluate_retrieval(manifest, embedder="radiomics.v1", settings=load_settings(),
                                work_dir=tmp_path / "mias")  # fmt: skip
    assert scores["accuracy"] >= 0.60, scores
    assert scores["majority_rate"] < 0.4


@pytest.mark.shared_data
def test_cbis_ddsm_builds_with_tags(tmp_path: Path) -> None:
    manifest = shared_path("cbis-ddsm", "manifest.csv")
    with pytest.raises(InputError, match=r"no image could be indexed: 8 of 8 rows skipped \(E060 × 8\).*allow-secondary-capture"):  # fmt: skip
        build_index(manifest, tmp_path / "strict", settings=load_settings(),
                    embedder="radiomics.v1")  # screen captures: quarantined  # fmt: skip
    assert not (tmp_path / "strict").exists()
    report = build_index(manifest, tmp_path / "cbis", settings=load_settings(),
                         embedder="radiomics.v1", allow_secondary_capture=True)  # fmt: skip
    assert report.indexed == 8
    with CaseIndex(tmp_path / "cbis") as index:
        rows = index.store.all_rows()
        assert {r.view for r in rows} == {"CC", "MLO"} and {r.label for r in rows} == {"B", "C"}


def test_assess_with_a_density_model(index_dir: Path, corpus: Path, tmp_path: Path) -> None:
    from mammosearch.classifiers.convnext import TrainConfig
    from mammosearch.pipeline import open_density_model, train_density

    model_dir = tmp_path / "density"
    model = train_density(corpus / "manifest.csv", model_dir,
                          TrainConfig(image_size=64, patch=0, epochs=1, batch_size=8), policy_folds=2)  # fmt: skip
    policy = model.config["policy"]
    assert policy["folds"] == 2 and set(policy["accuracy"]) == {"convnext", "probe", "vote"}
    assert set(policy["temperatures"]) == {"convnext", "probe", "vote"}
    rule = policy["candidates"][policy["rule"]]  # chosen on inner folds, with why
    assert rule["mean"] >= policy["floor"] and len(rule["folds"]) == policy["inner_folds"] >= 2
    assert sum(policy["weights"].values()) == pytest.approx(1.0, abs=1e-5)  # 6 places each
    assert (model_dir / "probe.json").is_file()
    # cross-fitted by default: the two folds' networks, their checkpoints gone
    assert model.config["cross_fit"] == 2 and len(model.members) == 1
    assert [m["fold"] for m in model.config["members"]] == [1, 2]
    assert not (model_dir / "folds").exists()
    single = tmp_path / "single"  # one network on every image; --resume keeps its policy
    first = train_density(corpus / "manifest.csv", single,
                          TrainConfig(image_size=64, patch=0, epochs=1, batch_size=8),
                          policy_folds=2, cross_fit=False)  # fmt: skip
    assert "cross_fit" not in first.config and not first.members
    resumed = train_density(corpus / "manifest.csv", single,
                            TrainConfig(image_size=64, patch=0, epochs=2, batch_size=8), resume=True,
                            cross_fit=False)  # fmt: skip
    assert resumed.config["policy"] == first.config["policy"]
    assert len(resumed.config["history"]) == 2
    loaded = open_density_model(model_dir, load_settings(), None)
    assert loaded.probe is not None and loaded.config["policy"] == policy
    index, embedder = open_index(index_dir)
    try:
        for method in ("convnext", "probe"):
            forced = assess_image(index, embedder, image=corpus / "img" / "2.png", method=method,
                                  density_model=loaded).to_dict()  # fmt: skip
            assert forced["density"]["method"] == method
            assert forced["density"]["label"] == forced[method]["label"]
        auto = assess_image(index, embedder, image=corpus / "img" / "2.png",
                            density_model=loaded).to_dict()  # fmt: skip
        assert auto["density"]["method"] in ("vote", "convnext", "probe", "ensemble")
        assert auto["convnext"] is not None and auto["probe"] is not None
        assert abs(sum(auto["density"]["probabilities"].values()) - 1.0) < 1e-3
        with pytest.raises(InputError, match="unknown method"):
            assess_image(index, embedder, image=corpus / "img" / "2.png", method="guess")
        # a manifest's rows, made ready by worker processes and embedded in batches, are
        # assessed as each image alone is
        rows = [a.to_dict() for a in iter_assessments(index_dir, corpus / "manifest.csv",
                                                      density_model=loaded, workers=2)]  # fmt: skip
        alone = assess_image(index, embedder, image=corpus / "img" / "2.png",
                             exclude_patient="p1", density_model=loaded).to_dict()  # fmt: skip
        row = next(r for r in rows if r["row"] == 3)  # img/2.png, patient p1
        assert {k: row[k] for k in ("density", "convnext", "probe", "vote")} == {
            k: alone[k] for k in ("density", "convnext", "probe", "vote")
        }
        one = [a.to_dict() for a in iter_assessments(index_dir, corpus / "manifest.csv",
                                                     density_model=loaded)]  # fmt: skip
        assert rows == one and all(r["convnext"] is not None for r in rows if not r.get("error"))
    finally:
        index.close()
    stored = tmp_path / "with_model"
    build_index(corpus / "manifest.csv", stored, settings=load_settings(), embedder="radiomics.v1",
                density_model=model_dir)  # fmt: skip
    verify_index(stored)
    assert open_density_model(None, load_settings(), stored) is not None
    assert open_density_model(None, load_settings(), index_dir) is None
    result = runner.invoke(app, ["assess", str(stored), "--image", str(corpus / "img" / "2.png"),
                                 "--method", "convnext", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["density"]["method"] == "convnext"


def test_cross_fitted_networks_are_the_ones_the_policy_scored(corpus: Path, tmp_path: Path) -> None:
    import torch

    from mammosearch.classifiers.convnext import CHECKPOINT, ConvNeXtDensity, TrainConfig
    from mammosearch.pipeline import train_density
    from mammosearch.pipeline.density import (
        cross_validate_paths,
        labelled_images,
        weight_free_embedder,
    )
    from mammosearch.pipeline.manifest import label_order

    manifest, config = corpus / "manifest.csv", TrainConfig(image_size=64, patch=0, epochs=1)
    rows, images = labelled_images(manifest, weight_free_embedder().prepared_size)
    truth, patients = [str(r.label) for r in rows], [r.patient_id for r in rows]
    labels, _ = label_order(set(truth), None)
    oof = cross_validate_paths(images, truth, patients, labels, config, 2)
    model = train_density(manifest, tmp_path / "m", config, policy_folds=2)
    loaded = ConvNeXtDensity.load(tmp_path / "m")
    assert model.config["policy"]["accuracy"]["convnext"] == round(
        float(np.mean(oof.probabilities["convnext"].argmax(axis=1)
                      == [labels.index(t) for t in truth])), 4
    )  # fmt: skip
    # each saved network, alone, gives the out-of-fold probabilities of the fold it never saw
    for fold, network in enumerate([loaded.model, *loaded.members]):
        alone = ConvNeXtDensity(network, loaded.labels, loaded.config)
        held_out = np.flatnonzero(oof.fold == fold)
        np.testing.assert_allclose(alone.predict_proba([images[i] for i in held_out]),
                                   oof.probabilities["convnext"][held_out], atol=1e-6)  # fmt: skip
    # the ensemble predicts the mean of its networks
    both = [ConvNeXtDensity(n, loaded.labels, loaded.config).predict_proba(images)
            for n in (loaded.model, *loaded.members)]  # fmt: skip
    np.testing.assert_allclose(loaded.predict_proba(images), np.mean(both, axis=0), atol=1e-6)
    # --resume continues each fold from its checkpoint (a finished fold is read, not retrained)
    folds = tmp_path / "r" / "folds"
    cross_validate_paths(images, truth, patients, labels, config, 2, checkpoints=folds)
    saved = torch.load(folds / "fold-1" / CHECKPOINT, weights_only=True)
    saved["best_model"]["head.fc.bias"] = torch.full_like(saved["best_model"]["head.fc.bias"], 7)
    torch.save(saved, folds / "fold-1" / CHECKPOINT)
    resumed = train_density(manifest, tmp_path / "r", config, policy_folds=2, resume=True)
    assert torch.equal(
        resumed.model.state_dict()["head.fc.bias"], saved["best_model"]["head.fc.bias"]
    )
    assert not torch.equal(resumed.members[0].state_dict()["head.fc.bias"],
                           saved["best_model"]["head.fc.bias"])  # fmt: skip
    assert not folds.exists()


def test_evaluate_as_trained_scores_what_train_density_ships(corpus: Path, tmp_path: Path) -> None:
    """``as_trained``: each outer fold is scored by the very model and policy that train-density
    makes of the other folds' images (retrained here from a manifest of those rows)."""
    from mammosearch.classifiers.convnext import TrainConfig
    from mammosearch.classifiers.policy import apply_policy
    from mammosearch.pipeline import evaluate_density, train_density
    from mammosearch.pipeline.assess import DensityModel
    from mammosearch.pipeline.density import labelled_images, weight_free_embedder

    manifest, config = corpus / "manifest.csv", TrainConfig(image_size=64, patch=0, epochs=1)
    scores = evaluate_density(manifest, config, folds=2, as_trained=2,
                              predictions=tmp_path / "oof.csv")  # fmt: skip
    assert scores["mode"].endswith("as train-density makes it (2 policy folds)")
    assert scores["nested"]["as_trained"] == 2 and len(scores["nested"]["rules"]) == 2
    with (tmp_path / "oof.csv").open(encoding="utf-8", newline="") as handle:
        oof = list(csv.DictReader(handle))
    rows, images = labelled_images(manifest, weight_free_embedder().prepared_size)
    labels = ["A", "B", "C", "D"]
    with (corpus / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        source = [r for r in csv.DictReader(handle) if r["image"] != "img/missing.png"]
    for fold in (0, 1):
        held = [i for i, r in enumerate(oof) if r["fold"] == str(fold)]
        write_manifest(tmp_path / f"train-{fold}.csv",
                       [r | {"image": str(corpus / r["image"])}
                        for i, r in enumerate(source) if i not in held])  # fmt: skip
        train_density(tmp_path / f"train-{fold}.csv", tmp_path / f"m{fold}", config,
                      policy_folds=2)  # fmt: skip
        shipped = DensityModel.load(tmp_path / f"m{fold}")
        policy = shipped.config["policy"]
        assert scores["nested"]["rules"][fold] == policy["rule"]
        table = {path: np.array([[float(oof[i][f"{path}_{x}"]) for x in labels] for i in held])
                 for path in ("convnext", "probe", "vote", "combined")}  # fmt: skip
        made = shipped.probabilities([images[i] for i in held])
        for path in ("convnext", "probe"):
            np.testing.assert_allclose(table[path], made[path], atol=1e-5, err_msg=path)
        margin = np.array([float(oof[i]["vote_margin"]) for i in held])
        abstain = np.array([oof[i]["vote_abstain"] == "true" for i in held])
        # the shipped policy on the shipped model's rows (those of the file are rounded to 6
        # places, which its temperatures can stretch to 1e-4)
        combined = apply_policy(policy, {**made, "vote": table["vote"]}, margin, abstain)
        np.testing.assert_allclose(table["combined"], combined, atol=1e-3)
        assert (table["combined"].argmax(axis=1) == combined.argmax(axis=1)).all()
    hits = [
        np.mean([max(labels, key=lambda x, r=r: float(r[f"combined_{x}"])) == r["truth"]
                 for r in oof if r["fold"] == str(fold)])
        for fold in (0, 1)
    ]  # fmt: skip
    assert scores["nested"]["scores"]["combined"]["folds"] == pytest.approx(hits, abs=1e-4)
    assert len(oof) == len(rows) == 24


def test_convnext_embedder_drives_retrieval(corpus: Path, tmp_path: Path) -> None:
    from mammosearch.classifiers.convnext import TrainConfig
    from mammosearch.embeddings import create_embedder
    from mammosearch.errors import ModelLoadError
    from mammosearch.pipeline import train_density

    model_dir = tmp_path / "density"
    train_density(corpus / "manifest.csv", model_dir,
                  TrainConfig(image_size=64, patch=0, epochs=1, batch_size=8), policy_folds=0)  # fmt: skip
    embedder = create_embedder("convnext.v1", source=str(model_dir))
    vectors = embedder.embed_images([np.random.default_rng(0).random((80, 50), dtype=np.float32)])
    assert vectors.shape == (1, embedder.dim) and embedder.dim == 320
    out = tmp_path / "cx"
    report = build_index(corpus / "manifest.csv", out, settings=load_settings(),
                         embedder="convnext.v1", model=str(model_dir))  # fmt: skip
    assert report.embedder == "convnext.v1" and report.indexed == 24
    hits = search_cases(out, image=corpus / "img" / "4.png", k=2)
    assert hits[0].case_id == "c2"
    with pytest.raises(ModelLoadError, match="no ConvNeXt density model"):
        create_embedder("convnext.v1", source=str(tmp_path))


def test_cli_sharded_index(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    result = runner.invoke(app, ["index", "build", str(corpus / "manifest.csv"), "-o", str(out),
                                 "--embedder", "radiomics.v1", "--shards", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["vectors"]["image"]["shards"] == 3
    assert {f"image.shard-0{i}-of-03.faiss" for i in range(3)} <= set(manifest["files"])
    assert runner.invoke(app, ["index", "verify", str(out)]).exit_code == 0
    found = runner.invoke(app, ["search", str(out), "--image", str(corpus / "img" / "3.png"),
                                "-k", "2", "--json"])  # fmt: skip
    assert found.exit_code == 0 and len(json.loads(found.output)) == 2
    removed = runner.invoke(app, ["index", "remove", str(out), "--case", "c3"])
    assert removed.exit_code == 0 and "removed 2 images" in removed.output
    assert runner.invoke(app, ["index", "verify", str(out)]).exit_code == 0
    (out / "image.shard-01-of-03.faiss").write_bytes(b"tampered")
    broken = runner.invoke(app, ["index", "verify", str(out)])
    assert broken.exit_code == 3 and "shard-01-of-03" in broken.output

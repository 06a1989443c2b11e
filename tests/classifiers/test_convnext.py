"""The ConvNeXt density path end to end on a handful of images (one short epoch, tiny input)."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mammosearch.classifiers.convnext import (
    ConvNeXtDensity,
    TrainConfig,
    patient_split,
    train_convnext,
)
from mammosearch.cli import _print_scores, app
from mammosearch.errors import InputError, ModelLoadError
from tests.classifiers.test_convnext_inference import TINY, images
from tests.conftest import write_manifest
from tests.test_cases import breast_png


def test_cli_defaults_are_the_train_configs() -> None:
    from mammosearch import cli
    from mammosearch.pipeline.density import POLICY_FOLDS

    d = TrainConfig()
    assert (d.image_size, d.patch, d.epochs, d.batch_size, d.drop_path, d.ensemble) == (
        cli._SIZE, cli._PATCH, cli._EPOCHS, cli._BATCH, cli._DROP_PATH, cli._ENSEMBLE
    )  # fmt: skip
    assert cli._POLICY_FOLDS == POLICY_FOLDS


def test_patient_split_keeps_patients_together() -> None:
    patients = [f"p{i // 4}" for i in range(40)]
    labels = ["ABCD"[i // 4 % 4] for i in range(40)]
    train, val = patient_split(patients, labels, 0.2, seed=1)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 40
    assert {patients[i] for i in train}.isdisjoint({patients[i] for i in val})
    assert {labels[i] for i in val} == set("ABCD")  # stratified by label


def test_train_save_load_predict_and_resume(tmp_path: Path) -> None:
    imgs, labels, patients = images(12)
    out = tmp_path / "m"
    model = train_convnext(imgs, labels, patients, ["F", "G", "D"], TINY, out=out,
                           data_keys=[str(i) for i in range(12)])  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "checkpoint.pt"}
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["labels"] == ["F", "G", "D"] and config["arch"] == "convnext_atto"
    assert config["preprocessing"]["size"] == 64 and len(config["training_data_sha256"]) == 64
    loaded = ConvNeXtDensity.load(out)
    probs = loaded.predict_proba(imgs[:4])
    assert probs.shape == (4, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, model.predict_proba(imgs[:4]), atol=1e-5)
    assert set(loaded.predict(imgs)) <= {"F", "G", "D"}
    longer = TrainConfig(image_size=64, patch=0, epochs=2, batch_size=4)
    resumed = train_convnext(imgs, labels, patients, ["F", "G", "D"], longer, out=out, resume=True)
    assert [h["epoch"] for h in resumed.config["history"]] == [0, 1]


def test_an_ensemble_averages_members_with_their_own_seeds(tmp_path: Path) -> None:

    imgs, labels, patients = images(12)
    out = tmp_path / "m"
    model = train_convnext(imgs, labels, patients, ["F", "G", "D"], replace(TINY, ensemble=2),
                           out=out)  # fmt: skip
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors", "model-1.safetensors", "config.json", "checkpoint.pt",
        "checkpoint-1.pt",
    }  # fmt: skip
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["ensemble"] == 2 and [m["seed"] for m in config["members"]] == [0, 1]
    loaded = ConvNeXtDensity.load(out)
    assert len(loaded.members) == 1
    # the mean of the members, each alone
    first = ConvNeXtDensity(loaded.model, loaded.labels, loaded.config).predict_proba(imgs)
    second = ConvNeXtDensity(loaded.members[0], loaded.labels, loaded.config).predict_proba(imgs)
    assert not np.allclose(first, second, atol=1e-4)  # another seed, another network
    np.testing.assert_allclose(loaded.predict_proba(imgs), (first + second) / 2, atol=1e-5)
    np.testing.assert_allclose(model.predict_proba(imgs), (first + second) / 2, atol=1e-5)
    # resuming a finished ensemble trains nothing again
    epochs: list[int] = []
    train_convnext(imgs, labels, patients, ["F", "G", "D"], replace(TINY, ensemble=2), out=out,
                   resume=True, on_epoch=lambda e, _: epochs.append(e))  # fmt: skip
    assert epochs == []
    (out / "model-1.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="ensemble member model-1.safetensors is missing"):
        ConvNeXtDensity.load(out)
    with pytest.raises(InputError, match="at least one member"):
        train_convnext(imgs, labels, patients, ["F", "G", "D"], replace(TINY, ensemble=0))


@pytest.mark.parametrize("patch", [0, 32])
def test_same_seed_same_model(patch: int) -> None:
    import torch
    import torch.utils.deterministic

    imgs, labels, patients = images(9)
    config = replace(TINY, patch=patch, patches_per_image=2)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory
    a = train_convnext(imgs, labels, patients, ["F", "G", "D"], config)
    assert not torch.are_deterministic_algorithms_enabled()  # on while training only
    assert torch.utils.deterministic.fill_uninitialized_memory  # the process's setting back
    b = train_convnext(imgs, labels, patients, ["F", "G", "D"], config)
    np.testing.assert_allclose(a.predict_proba(imgs), b.predict_proba(imgs), atol=1e-5)


def test_errors(tmp_path: Path) -> None:
    imgs, _, patients = images(6)
    with pytest.raises(InputError, match="two labels"):
        train_convnext(imgs, ["F"] * 6, patients, ["F"], TINY)
    with pytest.raises(ModelLoadError, match="no density model"):
        ConvNeXtDensity.load(tmp_path)
    with pytest.raises(ModelLoadError, match="not found"):
        train_convnext(imgs, ["F", "G"] * 3, patients, ["F", "G"],
                       TrainConfig(image_size=64, epochs=1, init=str(tmp_path / "none.pth")))  # fmt: skip


def imagenet_like_weights(path: Path) -> dict[str, Any]:
    """A convnext_atto checkpoint shaped like timm's ImageNet one (RGB stem, 1000 classes)."""
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("convnext_atto", pretrained=False).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return state


def test_initial_weights_from_a_file_and_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    imgs, labels, patients = images(8)
    caplog.set_level(logging.INFO, logger="mammosearch.classifiers.convnext")
    state = imagenet_like_weights(tmp_path / "w.safetensors")
    one_epoch = TrainConfig(image_size=64, patch=0, epochs=1, batch_size=4, lr=1e-12,
                            init=str(tmp_path / "w.safetensors"))  # fmt: skip
    model = train_convnext(imgs, labels, patients, ["F", "G", "D"], one_epoch)
    stem = model.model.state_dict()["stem.0.weight"]  # grey stem: timm sums the RGB filters
    np.testing.assert_allclose(stem.numpy(), state["stem.0.weight"].sum(1, keepdim=True).numpy(),
                               atol=1e-4)  # fmt: skip
    assert "initial weights: local file w.safetensors" in caplog.text
    # auto: the hub cache when the weights are there, else from scratch (never the network)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    train_convnext(
        imgs, labels, patients, ["F", "G", "D"], TrainConfig(image_size=64, patch=0, epochs=1)
    )
    assert "no ImageNet weights in the local hub cache" in caplog.text
    cache = tmp_path / "hub"
    snapshot = cache / "models--timm--convnext_atto.d2_in1k" / "snapshots" / "abc123"
    imagenet_like_weights(snapshot / "model.safetensors")
    (cache / "models--timm--convnext_atto.d2_in1k" / "refs").mkdir()
    (cache / "models--timm--convnext_atto.d2_in1k" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    train_convnext(
        imgs, labels, patients, ["F", "G", "D"], TrainConfig(image_size=64, patch=0, epochs=1)
    )
    assert "initial weights: ImageNet (local hub cache)" in caplog.text


def phantom_manifest(tmp_path: Path, n: int) -> None:
    """``m.csv`` of ``n`` phantoms in ``tmp_path``: densities F, G, D in turn, two per patient."""
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(n):
        breast_png(tmp_path / "img" / f"{i}.png", 0.1 + 0.3 * (i % 3), i)
        rows.append({"image": f"img/{i}.png", "case_id": f"c{i}", "patient_id": f"p{i // 2}",
                     "density": "FGD"[i % 3]})  # fmt: skip
    write_manifest(tmp_path / "m.csv", rows)


def test_cli_train_and_evaluate(tmp_path: Path) -> None:
    phantom_manifest(tmp_path, 16)
    runner = CliRunner()
    trained = runner.invoke(app, ["train-density", str(tmp_path / "m.csv"), "-o",
                                  str(tmp_path / "model"), "--size", "64", "--epochs", "1",
                                  "--ensemble", "2"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    # cross-fitted: the 4 policy folds' ensembles of 2, each network scored on its held-out fold
    assert "8 networks cross-fitted on 4 patient folds of 16 images" in trained.output
    assert (tmp_path / "model" / "model-7.safetensors").is_file()
    assert not (tmp_path / "model" / "folds").exists()
    scored = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"), "--model",
                                 str(tmp_path / "model"), "--json", "--plot",
                                 str(tmp_path / "cm.png")])  # fmt: skip
    assert scored.exit_code == 0, scored.output
    data = json.loads(scored.stdout)
    assert (
        data["mode"] == "model" and data["n"] == 16 and set(data["paths"]) == {"convnext", "probe"}
    )
    assert (tmp_path / "cm-convnext.png").is_file() and (tmp_path / "cm-probe.png").is_file()
    cv = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"), "--folds", "2",
                             "--size", "64", "--epochs", "1", "--json",
                             "--predictions", str(tmp_path / "oof.csv")])  # fmt: skip
    assert cv.exit_code == 0, cv.output
    data = json.loads(cv.stdout)
    # the out-of-fold rows written are the ones scored: each path's accuracy recomputed from them
    with (tmp_path / "oof.csv").open(encoding="utf-8", newline="") as handle:
        oof = list(csv.DictReader(handle))
    assert len(oof) == 16 and {r["fold"] for r in oof} == {"0", "1"}
    assert {r["fold_seed"] for r in oof} == {"0"} and oof[0]["patient_id"] == "p0"
    for path in ("convnext", "probe", "vote", "combined"):
        best = [max("FGD", key=lambda label, r=r: float(r[f"{path}_{label}"])) for r in oof]
        hits = sum(b == r["truth"] for b, r in zip(best, oof, strict=True))
        assert hits / 16 == pytest.approx(data["paths"][path]["accuracy"]), path
        assert all(abs(sum(float(r[f"{path}_{x}"]) for x in "FGD") - 1) < 1e-4 for r in oof)
    refused = runner.invoke(
        app, ["evaluate", "density", str(tmp_path / "m.csv"), "--predictions", str(tmp_path)]
    )  # a folder: before any work
    assert refused.exit_code == 1 and "predictions file" in refused.output
    assert "is a directory" in refused.output
    assert data["mode"].startswith("2-fold") and data["n"] == 16
    assert set(data["paths"]) == {"convnext", "probe", "vote", "combined"}
    assert data["exams"]["n"] == 16 and set(data["exams"]["paths"]) == set(data["paths"])
    assert all(sum(map(sum, m["confusion_matrix"])) == 16 for m in data["paths"].values())
    nested = data["nested"]
    assert set(nested["scores"]) == {"combined", "convnext", "probe", "vote"}
    assert len(nested["rules"]) == 2 and len(nested["scores"]["combined"]["folds"]) == 2
    free = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"), "--folds", "2",
                               "--no-convnext"])  # fmt: skip
    assert free.exit_code == 0, free.output
    # features made by two worker processes: the same figures
    two = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"), "--folds", "2",
                              "--no-convnext", "--workers", "2"])  # fmt: skip
    assert two.exit_code == 0 and two.stdout == free.stdout, two.output
    assert "nested cross-validation" in free.stdout and "rules chosen: " in free.stdout
    rows = [line.split()[0] for line in free.stdout.splitlines() if line.strip()]
    assert "combined" in rows and "probe" in rows and "convnext" not in rows
    table = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"), "--model",
                                str(tmp_path / "model")])  # fmt: skip
    assert table.exit_code == 0 and "quad. κ" in table.stdout and "probe" in table.stdout
    assert "per exam (the denser breast; 16 exams)" in table.stdout
    assert "nested cross-validation" not in table.stdout  # a trained model is scored as it is
    assert "assess policy: " in trained.output and "within one standard error" in trained.output


def test_evaluate_density_repeats_are_runs_with_the_next_fold_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--repeats 2`` reports every path's accuracy of the run with ``--seed`` and of the run
    with ``--seed`` + 1, each as the single run with that seed gives it, and their mean."""
    phantom_manifest(tmp_path, 24)
    runner = CliRunner()
    base = ["evaluate", "density", str(tmp_path / "m.csv"), "--folds", "3", "--no-convnext",
            "--json"]  # fmt: skip
    runs = [json.loads(runner.invoke(app, [*base, "--seed", seed]).stdout) for seed in ("3", "4")]
    repeated = runner.invoke(app, [*base, "--seed", "3", "--repeats", "2"])
    assert repeated.exit_code == 0, repeated.output
    data = json.loads(repeated.stdout)
    assert data["repeats"]["seeds"] == [3, 4]
    assert set(data["repeats"]["paths"]) == {"probe", "vote", "combined"}
    for path, scores in data["repeats"]["paths"].items():
        single = [run["paths"][path]["accuracy"] for run in runs]
        assert scores["accuracy"] == pytest.approx(single)
        assert scores["mean"] == pytest.approx(np.mean(single))
        assert scores["sd"] == pytest.approx(np.std(single, ddof=1))
    assert data["paths"] == runs[0]["paths"]  # the detailed figures are the first run's
    _print_scores(data, False, None)  # the same scores as the command prints them
    table = capsys.readouterr().out
    assert "repeated cross-validation (fold seeds 3, 4)" in table
    probe = data["repeats"]["paths"]["probe"]
    assert f"probe     {probe['mean']:.3f} ± {probe['sd']:.3f}" in table


class _Payload:
    """Pickles to a call of ``Path.touch``: what a booby-trapped checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_code_is_refused_not_run(tmp_path: Path) -> None:
    import torch

    imgs, labels, patients = images(6)
    out = tmp_path / "m"
    out.mkdir()
    marker = tmp_path / "ran"
    torch.save({"model": _Payload(marker)}, out / "checkpoint.pt")
    with pytest.raises(ModelLoadError, match="not a plain weights file"):
        train_convnext(imgs, ["F", "G"] * 3, patients, ["F", "G"], TINY, out=out, resume=True)
    assert not marker.exists()


def test_cross_fitted_refuses_folds_that_do_not_match() -> None:
    from mammosearch.classifiers import cross_fitted

    with pytest.raises(InputError, match="two or more folds"):
        cross_fitted([], [])
    config = {"arch": "convnext_atto", "image_size": 64, "patch": 0, "members": [{"seed": 0}]}
    fold = ConvNeXtDensity(None, ["F", "G", "D"], config)
    for other in (ConvNeXtDensity(None, ["F", "D", "G"], config),
                  ConvNeXtDensity(None, ["F", "G", "D"], config | {"patch": 32})):  # fmt: skip
        with pytest.raises(InputError, match="differ in labels or settings"):
            cross_fitted([fold, other], ["a", "b"])
    made = cross_fitted([fold, fold], ["b", "a"])
    assert made.config["cross_fit"] == 2 and made.config["train_images"] == 2
    assert made.config["members"] == [{"seed": 0, "fold": 1}, {"seed": 0, "fold": 2}]


def test_the_policy_line_names_paths_no_better_than_the_majority_class() -> None:
    from mammosearch.cli import _policy_line

    policy = {"rule": "probe", "weights": {"probe": 1.0}, "vote_margin": 2.0, "inner_folds": 5,
              "best": "probe", "candidates": {"probe": {"mean": 0.7, "se": 0.02}},
              "accuracy": {"probe": 0.7, "vote": 0.33}, "idle": ["vote"]}  # fmt: skip
    assert "; no better than the majority class: vote; " in _policy_line(policy)
    assert "majority" not in _policy_line(policy | {"idle": []})


def test_as_trained_needs_the_convnext_and_says_what_it_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phantom_manifest(tmp_path, 8)
    runner = CliRunner()
    for extra in (["--no-convnext"], ["--model", str(tmp_path)]):
        refused = runner.invoke(app, ["evaluate", "density", str(tmp_path / "m.csv"),
                                      "--as-trained", *extra])  # fmt: skip
        assert refused.exit_code == 2 and "--as-trained cross-validates the ConvNeXt" in (
            refused.output
        )
    scores = {"combined": {"folds": [0.5, 0.7], "mean": 0.6, "sd": 0.1414}}
    for as_trained, header in ((3, "as train-density makes them of the other folds, 3 policy "
                                   "folds"), (0, "the policy chosen on the other outer folds")):  # fmt: skip
        _print_scores({"nested": {"scores": scores, "rules": ["probe", "vote"],
                                  "as_trained": as_trained}}, False, None)  # fmt: skip
        printed = capsys.readouterr().out
        assert header in printed and "combined  0.600 ± 0.141 (mean ± sd)   0.50 0.70" in printed

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammosearch import __version__
from mammosearch.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_normalize_sample(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    result = runner.invoke(app, ["normalize", "--sample", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) >= 8 and all(r["error"] is None for r in records)
    assert "8 ok, 0 failed" in result.output


def test_normalize_folder_with_config_and_workers(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    for i in range(5):
        (folder / f"r{i}.txt").write_text(f"ACR {'ABCD'[i % 4]}. BI-RADS {i}.", encoding="utf-8")
    config = tmp_path / "ms.toml"
    config.write_text("[mammosearch]\nworkers = 1\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["--config", str(config), "normalize", str(folder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ids == [f"r{i}" for i in range(5)]


def test_partial_failures_still_exit_zero(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "BI-RADS 1"}\n{oops\n', encoding="utf-8")
    result = runner.invoke(app, ["normalize", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0
    assert "1 failed" in result.output and "E022 × 1" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["normalize"], 2, "give INPUT"),
        (["normalize", "--sample", "x.txt"], 2, "not both"),
        (["normalize", "nowhere/missing.csv"], 1, "input 'nowhere/missing.csv' not found"),
        (["normalize", "report.pdf"], 1, "not found"),
    ],
)
def test_user_and_usage_errors(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_config_exits_one(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("workers = 0\n", encoding="utf-8")
    args = ["--config", str(config), "normalize", "--sample", "-o", str(tmp_path / "o.jsonl")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "E010" in result.output


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mammosearch"
    if not script.exists():
        pytest.skip("the mammosearch console script is not installed in this environment")
    out = tmp_path / "o.jsonl"
    done = subprocess.run(
        [str(script), "normalize", "--sample", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").count("\n") >= 8


def _gold_corpus(tmp_path: Path, canary: str) -> tuple[Path, Path]:
    """Four reports, each with one finding error of a different class (what the normalizer
    reads is in the comments), and one density and one BI-RADS error; the first carries a
    planted patient name."""
    texts = tmp_path / "texts"
    texts.mkdir()
    reports = {
        # mass, left, present: the gold says right -> wrong side
        "r1": f"Patient: {canary}\nAlmost entirely fatty breasts. Left breast: an irregular "
        "spiculated mass. BI-RADS 5.",
        # calcification, no side, negated: the gold says present -> wrong negation
        "r2": "Mamas con densidades fibroglandulares dispersas. No se observan "
        "microcalcificaciones. BI-RADS 1.",
        # distortion, right, present: not in the gold -> extra; the gold's category is 3
        "r3": "Heterogeneously dense breasts. Architectural distortion in the right breast. "
        "BI-RADS 4.",
        # nothing: the gold has a left asymmetry -> missed; the gold's density is C
        "r4": "Extremely dense breasts. No suspicious findings. BI-RADS 2.",
    }
    for rid, text in reports.items():
        (texts / f"{rid}.txt").write_text(text, encoding="utf-8")
    rows = [
        {"id": "r1", "density": "A", "birads": "5",
         "findings": [{"type": "mass", "laterality": "right", "negated": False}]},
        {"id": "r2", "density": "B", "birads": "1",
         "findings": [{"type": "calcification", "laterality": None, "negated": False}]},
        {"id": "r3", "density": "C", "birads": "3", "findings": []},
        {"id": "r4", "density": "C", "birads": "2",
         "findings": [{"type": "asymmetry", "laterality": "left", "negated": False}]},
    ]  # fmt: skip
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return gold, texts


def test_evaluate_reports_prints_errors_by_class_and_type(tmp_path: Path, phi_canary: str) -> None:
    gold, texts = _gold_corpus(tmp_path, phi_canary)
    result = runner.invoke(app, ["evaluate", "reports", str(gold), str(texts)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "reports: 4" in out
    assert "density accuracy: 0.750" in out and "BI-RADS accuracy: 0.750" in out
    assert "findings: P 0.000 R 0.000 F1 0.000 (tp 0, fp 3, fn 3;" in out
    assert "finding errors: missed 1, extra 1, wrong side 1, wrong negation 1" in out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].islower()}
    assert table["mass"][:3] == ["0", "1", "1"]  # tp, fp, fn
    assert table["architectural_distortion"][:3] == ["0", "1", "0"]
    assert table["asymmetry"][:3] == ["0", "0", "1"]
    assert table["calcification"][:3] == ["0", "1", "1"]
    for line in (
        "r1: wrong_side mass right present",
        "r2: wrong_negation calcification bilateral present",
        "r3: extra architectural_distortion right present",
        "r4: missed asymmetry left present",
        "r3: BI-RADS 4 (gold 3)",
        "r4: density D (gold C)",
    ):
        assert f"  {line}\n" in out, line
    # ids and labels only: neither the planted patient data nor any sentence is printed
    assert phi_canary not in out
    for path in texts.iterdir():
        sentences = path.read_text(encoding="utf-8").split(".")
        assert not [s for s in sentences if len(s.split()) >= 3 and s.strip() in out]
    short = runner.invoke(app, ["evaluate", "reports", str(gold), str(texts), "--misses", "1"])
    assert "  ... 3 more" in short.output and "  ... 1 more" in short.output


def test_evaluate_reports_json(tmp_path: Path, phi_canary: str) -> None:
    gold, texts = _gold_corpus(tmp_path, phi_canary)
    result = runner.invoke(app, ["evaluate", "reports", str(gold), str(texts), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["birads_accuracy"] == 0.75 and data["density_accuracy"] == 0.75
    errors = data["finding_errors"]
    assert (errors["missed"], errors["extra"], errors["wrong_side"], errors["wrong_negation"]) == (
        1, 1, 1, 1,
    )  # fmt: skip
    assert "r2: wrong_negation calcification bilateral present" in errors["examples"]
    assert data["findings_by_type"]["mass"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 1,
    }  # fmt: skip
    assert set(data["findings_by_type"]) == {
        "architectural_distortion", "asymmetry", "calcification", "mass",
    }  # fmt: skip


def test_evaluate_reports_user_error(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    missing = runner.invoke(app, ["evaluate", "reports", str(tmp_path / "no.jsonl"), str(texts)])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_the_cli_choices_are_the_librarys() -> None:
    from typing import get_args

    from mammosearch import cli
    from mammosearch.embeddings import list_embedders
    from mammosearch.index.reader import FUSIONS
    from mammosearch.pipeline import ASSESS_METHODS, ENGINES

    assert get_args(cli.Engine) == ENGINES
    assert get_args(cli.Method) == ASSESS_METHODS
    assert sorted(get_args(cli.EmbedderName)) == sorted(list_embedders())
    assert get_args(cli.Fusion) == FUSIONS

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


def test_evaluate_reports(tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "r1.txt").write_text("ACR C. No masses. BI-RADS 1.", encoding="utf-8")
    (texts / "r2.txt").write_text(
        "Mamas grasas. Nódulo en mama izquierda. BI-RADS 3.", encoding="utf-8"
    )
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "r1", "density": "C", "birads": "1",
         "findings": [{"type": "mass", "laterality": None, "negated": True}]},
        {"id": "r2", "density": "A", "birads": "2",
         "findings": [{"type": "mass", "laterality": "left", "negated": False}]},
    ]  # fmt: skip
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "reports", str(gold), str(texts)])
    assert result.exit_code == 0, result.output
    assert "density accuracy       1.0000" in result.output
    assert "BI-RADS accuracy       0.5000" in result.output
    assert "findings F1            1.0000" in result.output
    assert "miss r2: BI-RADS 3 (gold 2)" in result.output
    as_json = runner.invoke(app, ["evaluate", "reports", str(gold), str(texts), "--json"])
    assert json.loads(as_json.output)["birads_accuracy"] == 0.5
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

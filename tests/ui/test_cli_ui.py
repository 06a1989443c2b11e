"""`mammosearch demo` and `mammosearch serve` as a user runs them."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from mammosearch.cli import app
from mammosearch.config import Settings
from tests.ui.test_app import DENSE_REPORT

runner = CliRunner()


def test_demo_check_on_the_bundled_corpus(ui_settings: Settings) -> None:
    env = {"MAMMOSEARCH_CACHE_DIR": str(ui_settings.cache_dir)}
    result = runner.invoke(app, ["demo", "--check"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "demo index: 96 images, embedder radiomics.v1" in out
    assert "SYNTHETIC DEMO DATA" in out
    assert "image query: density C by vote" in out  # a dense phantom, voted by its neighbours
    assert "text query: density" in out and "by report" in out
    assert out.rstrip().endswith("demo check: ok")
    # the second start finds the index in the cache
    again = runner.invoke(app, ["-v", "demo", "--check"], env=env)
    assert again.exit_code == 0 and "demo index: cached" in again.output


def test_demo_check_on_a_folder_of_images(ui_settings: Settings, tmp_path: Path) -> None:
    from PIL import Image

    from mammosearch.samples.phantoms import phantom

    folder = tmp_path / "my-images"
    folder.mkdir()
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "density"])
        for n, density in enumerate("ABCDABCD"):
            name = f"exam{n}_{'RL'[n % 2]}CC.png"
            Image.fromarray(phantom(density, "CC", "RL"[n % 2], seed=n)).save(folder / name)
            writer.writerow([name, density])
    env = {"MAMMOSEARCH_CACHE_DIR": str(ui_settings.cache_dir)}
    result = runner.invoke(app, ["demo", "--data", str(folder), "--check"], env=env)
    assert result.exit_code == 0, result.output
    assert "demo index: 8 images" in result.output and "SYNTHETIC" not in result.output
    assert "text query: skipped (the data has no reports)" in result.output
    missing = runner.invoke(app, ["demo", "--data", str(tmp_path / "nowhere"), "--check"], env=env)
    assert missing.exit_code == 1 and "does not exist" in missing.output


_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('mammosearch.cli', run_name='__main__', alter_sys=True)"
)


def test_serve_with_a_login_file(demo_dir: Path, ui_settings: Settings, tmp_path: Path) -> None:
    from mammosearch.ui.client import connect, search_app

    logins = tmp_path / "logins.txt"
    logins.write_text("reader:correct-horse\n", encoding="utf-8")
    # Ctrl+C as in a terminal: the server's SIGINT raises KeyboardInterrupt even where this
    # process was started with SIGINT ignored (a background job inherits that)
    command = [sys.executable, "-c", _WITH_CTRL_C, "serve", str(demo_dir), "--port", "0",
               "--auth-file", str(logins)]  # fmt: skip
    env = {**os.environ, "MAMMOSEARCH_CACHE_DIR": str(ui_settings.cache_dir)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the server listens
        address = re.match(r"mammosearch UI on (http://127\.0\.0\.1:\d+/) ", line)
        assert address is not None, line
        assert "radiomics.v1, 96 images" in line
        client = connect(address.group(1), auth=("reader", "correct-horse"))
        assert search_app(client, text=DENSE_REPORT, k=3)["density"]["label"] == "C"
    finally:
        process.send_signal(signal.SIGINT)
        try:  # communicate, not wait: a server blocked on a full stderr pipe would never exit
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server fails the test
            status = Path(f"/proc/{process.pid}/status")
            signals = [line for line in status.read_text().splitlines()
                       if line.startswith(("Sig", "Threads"))] if status.exists() else []  # fmt: skip
            process.kill()
            _, err = process.communicate()
            raise AssertionError(
                f"serve did not stop on SIGINT ({signals}); its log ends: {err[-2000:]}"
            ) from None
    assert process.returncode == 0, err
    assert "correct-horse" not in err


def test_serve_refuses_a_bad_login_file(demo_dir: Path, tmp_path: Path) -> None:
    logins = tmp_path / "logins.txt"
    logins.write_text("just-a-secret\n", encoding="utf-8")
    result = runner.invoke(app, ["serve", str(demo_dir), "--auth-file", str(logins)])
    assert result.exit_code == 1
    assert "auth file line 1 is not user:password" in result.output
    assert "just-a-secret" not in result.output


def test_serve_needs_an_index(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1 and "index build" in result.output.lower()
    assert time.perf_counter() - started < 30

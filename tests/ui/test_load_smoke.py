"""bench/load.py runs briefly in CI (longer by hand): concurrent clients, no error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mammosearch.config import Settings
from tests.conftest import REPO


def test_concurrent_clients_get_answers(demo_dir: Path, ui_settings: Settings) -> None:
    env = {**os.environ, "MAMMOSEARCH_CACHE_DIR": str(ui_settings.cache_dir)}
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--clients", "4", "--seconds", "8",
         "--index", str(demo_dir)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert "errors: 0" in out.stdout, out.stdout + out.stderr[-2000:]
    assert out.returncode == 0, out.stdout
    assert "image" in out.stdout and "text" in out.stdout

"""bench/fuzz.py runs briefly in CI (longer by hand): no crash in a few seconds of fuzzing."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_fuzz_finds_no_crash_briefly() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fuzz.py"), "--minutes", "0.15"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "crashes: 0" in out.stdout
    assert "image typed error" in out.stdout and "report ok" in out.stdout

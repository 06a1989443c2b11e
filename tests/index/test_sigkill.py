"""A build killed with SIGKILL at a random moment leaves a loadable, verifiable index: the one
before, or the finished new one, never a mix."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from mammosearch.config import load_settings
from mammosearch.index import CaseIndex, verify_index
from mammosearch.samples.phantoms import phantom


def _manifest(folder: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        name = f"{i}_{'RL'[i % 2]}CC.png"
        if not (folder / name).exists():
            Image.fromarray(phantom("ABCD"[i % 4], "CC", "RL"[i % 2], seed=i)[::2, ::2]).save(
                folder / name
            )
        rows.append({"image": name, "case_id": f"c{i}", "patient_id": f"p{i // 2}",
                     "report": f"ACR {'ABCD'[i % 4]}. BI-RADS 1.", "density": "ABCD"[i % 4]})  # fmt: skip
    path = folder / f"manifest{n}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_sigkill_during_an_update_keeps_an_index(tmp_path: Path) -> None:
    from mammosearch.pipeline import build_index

    folder = tmp_path / "data"
    folder.mkdir()
    index = tmp_path / "index"
    build_index(_manifest(folder, 8), index, settings=load_settings(None), embedder="radiomics.v1")
    bigger = _manifest(folder, 40)
    rng = random.Random(20261128)
    outcomes = []
    for attempt in range(4):
        process = subprocess.Popen(
            [sys.executable, "-m", "mammosearch.cli", "-q", "index", "build", str(bigger), "-o",
             str(index), "--update", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "MAMMOSEARCH_CACHE_DIR": str(tmp_path / "cache")},
        )  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0) if attempt < 3 else 0.0)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        manifest = verify_index(index)  # finishes or undoes a half-done swap, then checks all
        with CaseIndex(index) as opened:
            assert opened.vectors["image"].ntotal == manifest.counts["images"]
        assert manifest.counts["images"] in (8, 40), manifest.counts
        outcomes.append(manifest.counts["images"])
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".index.")]
        assert len(leftovers) <= 1, leftovers  # at most one abandoned work directory
    # an update run to the end after the kills gives the full index
    build_index(bigger, index, settings=load_settings(None), update=True)
    assert verify_index(index).counts["images"] == 40
    assert outcomes, outcomes

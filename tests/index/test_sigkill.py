"""A build killed with SIGKILL at a random moment leaves a loadable, verifiable index: the one
before, or the finished new one, never a mix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mammosearch.config import load_settings
from mammosearch.index import CaseIndex, verify_index
from mammosearch.samples.phantoms import phantom
from tests.conftest import write_manifest


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
    write_manifest(path, rows)
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
             str(index), "--update", "--resume", "--no-progress"],
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
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".index.new-")]
        assert len(leftovers) <= 1, leftovers  # at most one abandoned work directory
    # --resume after the kills ends as an uninterrupted update does, row for row
    build_index(bigger, index, settings=load_settings(None), update=True, resume=True)
    reference = tmp_path / "reference"
    build_index(_manifest(folder, 8), reference, settings=load_settings(None),
                embedder="radiomics.v1")  # fmt: skip
    build_index(bigger, reference, settings=load_settings(None), update=True)
    assert _rows(index) == _rows(reference) and len(_rows(index)) == 40
    assert not (tmp_path / ".index.journal").exists()  # a finished build forgets its journal
    assert outcomes


def test_resume_goes_on_from_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mammosearch.pipeline.engines as cases
    from mammosearch.pipeline import build_index

    folder = tmp_path / "data"
    folder.mkdir()
    manifest = _manifest(folder, 24)
    read_row = cases.prepare_row
    calls = {"n": 0}

    def dies_after_ten(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt  # as a kill would stop it, mid-loop
        return read_row(*args, **kwargs)

    index = tmp_path / "index"
    monkeypatch.setattr(cases, "prepare_row", dies_after_ten)
    with pytest.raises(KeyboardInterrupt):
        build_index(manifest, index, settings=load_settings(None), embedder="radiomics.v1")
    monkeypatch.setattr(cases, "prepare_row", read_row)
    assert not index.exists() and len(list((tmp_path / ".index.journal").glob("*.npz"))) == 10
    resumed = build_index(manifest, index, settings=load_settings(None), embedder="radiomics.v1",
                          resume=True)  # fmt: skip
    assert resumed.resumed == 10 and resumed.indexed == 24
    reference = tmp_path / "reference"
    build_index(manifest, reference, settings=load_settings(None), embedder="radiomics.v1")
    assert _rows(index) == _rows(reference)
    # a resume with other options starts over instead of mixing
    again = tmp_path / "again"
    monkeypatch.setattr(cases, "prepare_row", dies_after_ten)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        build_index(manifest, again, settings=load_settings(None), embedder="radiomics.v1")
    monkeypatch.setattr(cases, "prepare_row", read_row)
    fresh = build_index(manifest, again, settings=load_settings(None), embedder="radiomics.v1",
                        resume=True, keep_report_text=True)  # fmt: skip
    assert fresh.resumed == 0 and fresh.indexed == 24


def _rows(directory: Path) -> dict[str, tuple[Any, ...]]:
    """Each image's case, orientation, label, stored report and vector, by case id."""
    with CaseIndex(directory) as opened:
        rows = opened.store.get(list(range(1, opened.manifest.counts["images"] + 1)))
        return {
            r.case_id: (r.laterality, r.view, r.label, r.report_text,
                        tuple(np.round(opened.vectors["image"].vector(r.id), 5)))
            for r in rows.values()
        }  # fmt: skip

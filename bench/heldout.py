"""Held-out density check through the CLI, as someone with new patients would run it.

Splits a labelled manifest by patient (``--patients`` held out, chosen with ``--seed``), then
runs the real commands on the rest: ``train-density``, ``index build`` (the weight-free
``radiomics.v1`` baseline unless ``--embedder``), and ``assess --manifest`` on the held-out
films with each ``--method`` (auto = the chosen policy, vote, convnext, probe) and with
``--exams``. Prints each path's accuracy per film, the exam accuracy of the policy and the
majority-class rate of the held-out films. The split manifests and outputs live in a temporary
folder (``--keep DIR`` keeps them).

Usage: ``python bench/heldout.py [--manifest ../shared/data/mini-mias/manifest.csv]
[--patients 32] [--seed 7] [--embedder radiomics.v1] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _split(manifest: Path, out: Path, patients: int, seed: int) -> tuple[Path, Path]:
    with manifest.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # absolute image paths: the split manifests live elsewhere
        image = Path(row["image"])
        row["image"] = str(image if image.is_absolute() else (manifest.parent / image).resolve())
    people = sorted({r["patient_id"] for r in rows})
    random.Random(seed).shuffle(people)
    held = set(people[:patients])
    paths = out / "train.csv", out / "test.csv"
    for path, keep in zip(paths, (False, True), strict=True):
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if (r["patient_id"] in held) == keep)
    return paths


def _cli(*args: str) -> str:
    command = [sys.executable, "-m", "mammosearch.cli", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=SHARED / "mini-mias" / "manifest.csv")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--embedder", default="radiomics.v1")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    if not args.manifest.is_file():
        raise SystemExit(f"no manifest at {args.manifest} (pass --manifest)")
    work = Path(tempfile.mkdtemp(prefix="mammosearch-heldout-"))
    try:
        train, test = _split(args.manifest, work, args.patients, args.seed)
        model, index = work / "model", work / "index"
        started = time.perf_counter()
        _cli("train-density", str(train), "-o", str(model), "--no-progress")
        trained = time.perf_counter() - started
        _cli("index", "build", str(train), "-o", str(index), "--embedder", args.embedder,
             "--no-progress")  # fmt: skip
        with test.open(encoding="utf-8", newline="") as handle:
            truth = {n: r["density"] for n, r in enumerate(csv.DictReader(handle), start=1)}
            handle.seek(0)
            exam_labels: dict[str, set[str]] = {}
            for r in csv.DictReader(handle):
                exam_labels.setdefault(r["case_id"], set()).add(r["density"])
        # exams whose films carry one label (all of MIAS) are scored per exam
        exam_truth = {case: next(iter(s)) for case, s in exam_labels.items() if len(s) == 1}
        majority = Counter(truth.values()).most_common(1)[0][1] / len(truth)
        print(f"{len(truth)} held-out films of {args.patients} patients (seed {args.seed}); "
              f"trained on the rest in {trained:.0f} s; majority class {majority:.3f}")  # fmt: skip
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
        policy = config.get("policy", {})
        fitted = ", cross-fitted" if "cross_fit" in config else ""
        print(f"  ConvNeXt: {config.get('ensemble', 1)} network(s){fitted}; policy "
              f"{policy.get('rule')}; out-of-fold accuracy {policy.get('accuracy')}")  # fmt: skip
        for method in ("auto", "vote", "convnext", "probe"):
            out = _cli("assess", str(index), "--manifest", str(test), "--density-model",
                       str(model), "--method", method)  # fmt: skip
            records = [json.loads(line) for line in out.splitlines() if line.strip()]
            right = sum(r.get("density", {}).get("label") == truth[r["row"]] for r in records)
            paths = Counter(r["density"]["method"] for r in records if "density" in r)
            print(f"  {method:<9} per film {right / len(truth):.3f}  (decided by {dict(paths)})")
        out = _cli("assess", str(index), "--manifest", str(test), "--density-model", str(model),
                   "--exams")  # fmt: skip
        exams = [e for line in out.splitlines() if line.strip()
                 if (e := json.loads(line))["case_id"] in exam_truth]  # fmt: skip
        right = sum(e["density"]["label"] == exam_truth[e["case_id"]] for e in exams)
        print(f"  auto      per exam {right / max(len(exams), 1):.3f}  ({len(exams)} exams with "
              "one label; the denser breast's label)")  # fmt: skip
    finally:
        if args.keep is not None:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Batch jobs on Ray against the local engine: ``normalize`` and ``index build`` wall times.

Generates N synthetic EN/ES reports (JSON Lines) and times ``normalize_reports`` with the local
engine (1 and 2 processes) and with ``engine="ray"`` on a local Ray cluster of ``--cpus`` CPUs
that is started first (its start-up is timed apart: a real cluster is already running). With
``--manifest`` it also times ``build_index`` (``radiomics.v1``) with both engines. Each Ray job
includes its actors' start-up (the report pipeline or embedder loaded once per actor).

Usage: ``python bench/distributed.py [--reports 10000] [--cpus 2] [--manifest M [--rows N]]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from mammosearch.config import load_settings
from mammosearch.distributed import RayOptions
from mammosearch.pipeline import build_index, normalize_reports
from mammosearch.samples.reports import generate_reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=0, help="first N manifest rows (0: all)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "reports.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for report in generate_reports(args.reports, seed=0, min_words=args.words):
                handle.write(json.dumps({"id": report.truth["id"], "text": report.text}) + "\n")
        rates = {}
        for workers in (1, 2):
            summary = normalize_reports(source, work / f"local{workers}.jsonl", settings=settings,
                                        workers=workers)  # fmt: skip
            rates[f"local, {workers} process(es)"] = summary.rate
        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"ray cluster start ({args.cpus} CPUs): {time.perf_counter() - started:.1f} s")
        summary = normalize_reports(source, work / "ray.jsonl", settings=settings, engine="ray",
                                    ray=RayOptions())  # fmt: skip
        rates[f"ray, {args.cpus} CPUs ({summary.shards['total']} shards)"] = summary.rate
        same = (work / "ray.jsonl").read_bytes() == (work / "local2.jsonl").read_bytes()
        print(f"normalize, {args.reports} reports of ~{args.words} words (same output: {same})")
        for name, rate in rates.items():
            print(f"  {name}: {rate:,.0f} reports/s")
        if args.manifest is not None:
            manifest = args.manifest
            if args.rows:
                with manifest.open(encoding="utf-8") as handle:
                    rows = list(csv.DictReader(handle))[: args.rows]
                for row in rows:
                    row["image"] = str((args.manifest.parent / row["image"]).resolve())
                manifest = work / "manifest.csv"
                with manifest.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
            for engine in ("local", "ray"):
                started = time.perf_counter()
                report = build_index(manifest, work / f"idx-{engine}", settings=settings,
                                     embedder="radiomics.v1", engine=engine)  # fmt: skip
                seconds = time.perf_counter() - started
                print(f"index build {engine}: {report.indexed} images in {seconds:.1f} s "
                      f"({report.indexed / seconds:.1f} images/s)")  # fmt: skip
        ray.shutdown()


if __name__ == "__main__":
    main()

"""Load on the running search UI: concurrent clients for a bounded time.

Starts ``mammosearch serve`` in its own process on loopback over the demo index (or ``--index``),
then ``--clients`` threads, each with its own ``gradio_client`` connection, alternate image
queries (a fresh phantom view) and text queries (a generated report) until ``--seconds`` have
passed. Prints latency p50/p95/p99 per kind, throughput, errors (must be 0) and the server's
resident memory after a warm-up (the same load, untimed, for a quarter of ``--seconds`` and
at least 8 s: the server's threads and bounded caches fill) and at the end (must stay within
10%). Exits 1 when either condition fails.

Usage: ``python bench/load.py [--clients 20] [--seconds 300] [--index DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--embedder", default="auto", help="for the demo index")
    args = parser.parse_args()

    from PIL import Image

    from mammosearch.config import load_settings
    from mammosearch.pipeline import demo_index
    from mammosearch.samples.phantoms import phantom
    from mammosearch.samples.reports import generate_reports
    from mammosearch.ui.client import connect, search_app

    settings = load_settings()
    index = args.index or demo_index(settings, embedder=args.embedder)
    work = Path(tempfile.mkdtemp(prefix="mammosearch-load-"))
    images = []
    for n in range(16):
        path = work / f"view{n}_{'RL'[n % 2]}{('CC', 'MLO')[n // 2 % 2]}.png"
        Image.fromarray(phantom("ABCD"[n % 4], ("CC", "MLO")[n // 2 % 2], "RL"[n % 2],
                                seed=500 + n)).save(path)  # fmt: skip
        images.append(path)
    texts = [r.text for r in generate_reports(16, seed=9)]
    env = {**os.environ, "MAMMOSEARCH_CACHE_DIR": str(settings.cache_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "mammosearch.cli", "-q", "serve", str(index), "--port", "0"],
        stdout=subprocess.PIPE, stderr=open(work / "server.log", "w"), text=True, env=env,  # noqa: SIM115
    )  # fmt: skip
    try:
        assert server.stdout is not None
        # the address line, printed once the server listens
        url = server.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        clients = [connect(url) for _ in range(args.clients)]
        latencies: dict[str, list[float]] = {"image": [], "text": []}
        errors: list[str] = []
        lock = threading.Lock()

        def run(n: int, client: Any, stop: float, record: bool) -> None:
            i = n
            while time.monotonic() < stop:
                kind = "image" if i % 2 == 0 else "text"
                start = time.perf_counter()
                try:
                    if kind == "image":
                        search_app(client, images=[images[i % len(images)]], k=10)
                    else:
                        search_app(client, text=texts[i % len(texts)], k=10)
                except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                    with lock:
                        errors.append(type(e).__name__)
                else:
                    if record:
                        with lock:
                            latencies[kind].append(time.perf_counter() - start)
                i += 1

        def concurrently(seconds: float, record: bool) -> float:
            stop = time.monotonic() + seconds
            threads = [threading.Thread(target=run, args=(n, c, stop, record))
                       for n, c in enumerate(clients)]  # fmt: skip
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - started

        # warm-up: the same load, untimed, so that the server's threads, their store connections
        # and its bounded caches (the prepared upload views, hot rows) are in place before the
        # baseline; what grows after it is what a leak would be
        concurrently(max(8.0, args.seconds / 4), record=False)
        rss_start = _rss_mib(server.pid)
        elapsed = concurrently(args.seconds, record=True)
        rss_end = _rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    done = sum(len(v) for v in latencies.values())
    print(f"{args.clients} clients for {elapsed:.0f} s against serve on loopback "
          f"(index of {index.name}): {done} queries, {done / elapsed:.1f}/s")  # fmt: skip
    print(f"{'kind':<7}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for kind, values in latencies.items():
        if values:
            cells = [_percentile(values, q) for q in (0.5, 0.95, 0.99)] + [statistics.mean(values)]
            print(f"{kind:<7}{len(values):>6}" + "".join(f"{c * 1000:>9.0f}" for c in cells))
    growth = (rss_end - rss_start) / rss_start
    print(f"errors: {len(errors)} {dict((e, errors.count(e)) for e in set(errors)) or ''}")
    print(f"server resident memory: {rss_start:.0f} MiB after warm-up, {rss_end:.0f} MiB at the "
          f"end ({growth:+.1%})")  # fmt: skip
    raise SystemExit(0 if not errors and growth <= 0.10 else 1)


if __name__ == "__main__":
    main()

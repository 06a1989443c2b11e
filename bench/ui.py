"""End-to-end latency of one image query through the running search UI.

Starts the real server (``mammosearch.ui.serve``, loopback, the safe defaults) over the demo
index (the bundled synthetic corpus, or ``--index DIR``), then sends ``--queries`` image
queries (one 640x480 PNG view each, k=10) through ``gradio_client``, as a script at a hospital
would, and prints p50/p95 of:

- end to end: upload, queue, handler, output encoding, transfer, the client's parsing;
- the handler's stages as ``CaseService`` times them: preprocess (decode, breast crop, fit),
  embed, assess (the density path), search;
- rendering: end to end minus those stages (upload, queue, outputs encoded and sent, the
  client's work).

Twice: the API reply alone (what a script reading the JSON result waits for), and with the
client also fetching the 11 images of the reply one after another (the query view and ten
thumbnails, as ``gradio_client`` does; a browser fetches them in parallel).

The peer is the same query through the library, in process (``CaseService.query``), warmed up
with one query first as each server run is: the ratio is what the web layer costs.

Usage: ``python bench/ui.py [--queries 50] [--index DIR] [--embedder auto]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--index", type=Path, help="an index directory (default: the demo)")
    parser.add_argument("--embedder", default="auto", help="for the demo index")
    args = parser.parse_args()

    from PIL import Image

    from mammosearch.config import load_settings
    from mammosearch.pipeline import CaseService, demo_index
    from mammosearch.samples.phantoms import phantom
    from mammosearch.ui import serve
    from mammosearch.ui.client import connect

    settings = load_settings()
    index = args.index or demo_index(settings, embedder=args.embedder)
    work = Path(tempfile.mkdtemp(prefix="mammosearch-bench-ui-"))
    queries = []
    for n in range(args.queries):
        path = work / f"query{n}_{'RL'[n % 2]}CC.png"
        Image.fromarray(phantom("ABCD"[n % 4], "CC", "RL"[n % 2], seed=10_000 + n)).save(path)
        queries.append(path)

    with CaseService(index, settings=settings) as engine:
        about = engine.about()
        # the peer: the library in process, warmed up as the server runs are (first-call costs:
        # lazy imports, model and index loading, allocator growth)
        engine.query(images=[queries[0]], k=10)
        library = []
        for path in queries:
            start = time.perf_counter()
            engine.query(images=[path], k=10)
            library.append(time.perf_counter() - start)
        app = serve(engine, settings, port=0, block=False)
        try:
            runs = {
                "API reply": _run(connect(app.local_url), queries),
                "+ images fetched": _run(connect(app.local_url, downloads=work / "d"), queries),
            }
        finally:
            app.close()

    print(f"index: {about['images']} images, embedder {about['embedder']}; "
          f"{args.queries} image queries, k=10, one view each; p50 / p95 in ms")  # fmt: skip
    print(f"{'':<20}" + "".join(f"{name:>22}" for name in runs))
    total = {name: run.pop("end to end") for name, run in runs.items()}
    names = ["end to end", *next(iter(runs.values())), "rendering"]
    for name in names:
        cells = []
        for run_name, run in runs.items():
            if name == "end to end":
                values = total[run_name]
            elif name == "rendering":
                values = [
                    t - sum(s[i] for s in run.values()) for i, t in enumerate(total[run_name])
                ]
            else:
                values = run[name]
            p50, p95 = _percentiles(values)
            cells.append(f"{p50 * 1000:>12.1f} / {p95 * 1000:>6.1f}")
        print(f"{name:<20}" + "".join(f"{c:>22}" for c in cells))
    p50, p95 = _percentiles(library)
    print(f"{'library (peer)':<20}{f'{p50 * 1000:>12.1f} / {p95 * 1000:>6.1f}':>22}")
    for run_name in runs:
        ratio = statistics.median(total[run_name]) / statistics.median(library)
        print(f"server ({run_name}) / library, p50: {ratio:.2f}x")


def _run(client: Any, queries: list[Path]) -> dict[str, list[float]]:
    """End-to-end seconds of each query and the handler's stage timings."""
    from mammosearch.ui.client import search_app

    search_app(client, images=[queries[0]], k=10)  # warm-up
    times: dict[str, list[float]] = {"end to end": []}
    for path in queries:
        start = time.perf_counter()
        result = search_app(client, images=[path], k=10)
        times["end to end"].append(time.perf_counter() - start)
        for name, seconds in result["timings"].items():
            times.setdefault(name, []).append(seconds)
    return times


if __name__ == "__main__":
    main()

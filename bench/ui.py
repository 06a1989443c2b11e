"""End-to-end latency of one image query through the running search UI, against the library.

Starts the real server (``mammosearch.ui.serve``, loopback, the safe defaults) over the demo
index (the bundled synthetic corpus, or ``--index DIR``) and sends ``--queries`` image queries
(one 640x480 PNG view each, k=10, each view a new file) three ways:

- **API reply**: Gradio's documented HTTP API with a plain HTTP client on one connection, as a
  script (or ``curl``) would: upload the view, call ``/search``, read the result event. Each
  query alternates with the same query through the library in process (``CaseService.query``,
  warmed up with one query first, as the server is): the peer, measured side by side under the
  same load. The server's share is the reply minus the library call of the same query.
- **gradio_client**: the same through ``gradio_client`` (whose reader polls its message queue
  every 50 ms), and with the 11 images of the reply also fetched one after another.
- **browser** (Debian's Chromium through Playwright, skipped without them): the page as a person
  uses it, freshly loaded for each query: the view chosen (uploaded, and prepared by the server
  as it arrives), Search clicked once the upload is listed, until the ten similar cases'
  thumbnails are loaded and shown.

Prints p50/p95 in ms, with the stages as ``CaseService`` times them (preprocess: decode, breast
crop, fit; embed; assess: the density path; search) and the ratios to the library call.

Usage: ``python bench/ui.py [--queries 50] [--index DIR] [--embedder auto] [--no-browser]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _cell(values: list[float]) -> str:
    p50, p95 = _percentiles(values)
    return f"{p50 * 1000:.1f} / {p95 * 1000:.1f}"


def _views(work: Path, count: int, seed: int) -> list[Path]:
    from PIL import Image

    from mammosearch.samples.phantoms import phantom

    paths = []
    for n in range(count):
        path = work / f"query{seed + n}_{'RL'[n % 2]}CC.png"
        Image.fromarray(phantom("ABCD"[n % 4], "CC", "RL"[n % 2], seed=seed + n)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--index", type=Path, help="an index directory (default: the demo)")
    parser.add_argument("--embedder", default="auto", help="for the demo index")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium run")
    args = parser.parse_args()

    import httpx

    from mammosearch.config import load_settings
    from mammosearch.pipeline import CaseService, demo_index
    from mammosearch.ui import serve
    from mammosearch.ui.client import connect

    settings = load_settings()
    index = args.index or demo_index(settings, embedder=args.embedder)
    work = Path(tempfile.mkdtemp(prefix="mammosearch-bench-ui-"))
    n = args.queries
    rows: dict[str, dict[str, list[float]]] = {}
    with CaseService(index, settings=settings) as engine:
        about = engine.about()
        app = serve(engine, settings, port=0, block=False)
        try:
            # the peer and the API side by side: each query through the library, then the server
            queries = _views(work, n + 1, 10_000)
            library: list[float] = []
            api: dict[str, list[float]] = {"end to end": []}
            with httpx.Client(base_url=app.local_url, timeout=60) as http:
                engine.query(images=[queries[0]], k=10)  # warm-ups: first-call costs
                _http_search(http, queries[0])
                for path in queries[1:]:
                    start = time.perf_counter()
                    engine.query(images=[path], k=10)
                    library.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    timings = _http_search(http, path)
                    api["end to end"].append(time.perf_counter() - start)
                    for stage, seconds in timings.items():
                        api.setdefault(stage, []).append(seconds)
            rows["API reply"] = api
            client_views = _views(work, n + 1, 20_000)
            rows["gradio_client"] = _client_run(connect(app.local_url), client_views)
            fetched = _views(work, n + 1, 30_000)
            rows["+ images fetched"] = _client_run(
                connect(app.local_url, downloads=work / "d"), fetched
            )
            browser = None
            if args.no_browser or not CHROMIUM.is_file():
                print("browser: skipped (--no-browser, or no /usr/bin/chromium)")
            else:
                browser = _browser_run(app.local_url, _views(work, n + 1, 40_000))
        finally:
            app.close()

    print(f"index: {about['images']} images, embedder {about['embedder']}; {n} image "
          f"queries, k=10, one new 640x480 view each; p50 / p95 in ms")  # fmt: skip
    names = list(rows)
    print(f"{'':<22}" + "".join(f"{name:>24}" for name in names))
    stages = [s for s in rows["API reply"] if s != "end to end"]
    for stage in ["end to end", *stages, "the rest (web layer)"]:
        cells = []
        for name in names:
            run = rows[name]
            if stage == "the rest (web layer)":
                values = [
                    t - sum(run[s][i] for s in stages) for i, t in enumerate(run["end to end"])
                ]
            else:
                values = run[stage]
            cells.append(_cell(values))
        print(f"{stage:<22}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'library (peer)':<22}{_cell(library):>24}")
    share = [a - b for a, b in zip(rows["API reply"]["end to end"], library, strict=True)]
    print(f"server's share (API reply - library, same query): {_cell(share)}")
    lib50 = statistics.median(library)
    for name in names:
        ratio = statistics.median(rows[name]["end to end"]) / lib50
        print(f"{name} / library, p50: {ratio:.2f}x")
    if browser is not None:
        for name, values in browser.items():
            print(f"browser, {name}: {_cell(values)} ms "
                  f"({statistics.median(values) / lib50:.2f}x the library call, p50)")  # fmt: skip


def _http_search(http: Any, path: Path) -> dict[str, float]:
    """One query through the HTTP API (upload, call, result event); the handler's timings."""
    uploaded = http.post(
        "/gradio_api/upload", files={"files": (path.name, path.read_bytes(), "image/png")}
    )
    uploaded.raise_for_status()
    file = {
        "path": uploaded.json()[0],
        "orig_name": path.name,
        "meta": {"_type": "gradio.FileData"},
    }
    payload = {"data": [[file], "", 10, 0.5, "any", "any", "any", "", False]}
    called = http.post("/gradio_api/call/search", json=payload)
    called.raise_for_status()
    stream = http.get(f"/gradio_api/call/search/{called.json()['event_id']}")
    stream.raise_for_status()
    event, data = "", ""
    for line in stream.text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1]
    if event != "complete":
        raise RuntimeError(f"the search answered {event!r}")
    result = json.loads(data)
    if len(result[5]) != 10:
        raise RuntimeError("the search returned fewer than 10 neighbours")
    return dict(result[6]["timings"])


def _client_run(client: Any, queries: list[Path]) -> dict[str, list[float]]:
    """End-to-end seconds of each query through ``gradio_client`` and the handler's stages."""
    from mammosearch.ui.client import search_app

    search_app(client, images=[queries[0]], k=10)  # warm-up
    times: dict[str, list[float]] = {"end to end": []}
    for path in queries[1:]:
        start = time.perf_counter()
        result = search_app(client, images=[path], k=10)
        times["end to end"].append(time.perf_counter() - start)
        for name, seconds in result["timings"].items():
            times.setdefault(name, []).append(seconds)
    return times


_SHOWN = """() => {
    const images = [...document.querySelectorAll('#neighbours button.thumbnail-item img')];
    return images.length === 10 && images.every(img => img.complete && img.naturalWidth > 0);
}"""


def _browser_run(url: str, queries: list[Path]) -> dict[str, list[float]]:
    """Per query, on a freshly loaded page (its HTTP cache kept): the view chosen to the ten
    similar cases shown, and Search clicked (once the upload is listed) to the same."""
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {"view chosen to results shown": [], "click to results": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(60_000)
        for n, path in enumerate(queries):
            page.goto(url, wait_until="load")
            page.locator("#search-btn").wait_for()
            chosen = time.perf_counter()
            page.locator("#query-images input[type=file]").set_input_files(str(path))
            page.locator("#query-images").get_by_text(path.stem).wait_for()
            clicked = time.perf_counter()
            page.locator("#search-btn").click()
            page.wait_for_function(_SHOWN, polling="raf")
            shown = time.perf_counter()
            if n:  # the first query warms up
                times["view chosen to results shown"].append(shown - chosen)
                times["click to results"].append(shown - clicked)
        browser.close()
    return times


if __name__ == "__main__":
    main()

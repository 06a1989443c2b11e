"""``demo --check``: start the app over an index, send one image and one text query through its
real ``/search`` endpoint, and say what came back (the round trip a user's first click makes)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mammosearch.config import Settings
from mammosearch.errors import InputError
from mammosearch.pipeline import CaseService, check_inputs
from mammosearch.ui.app import serve
from mammosearch.ui.client import connect, search_app

__all__ = ["demo_check"]


def demo_check(index: Path, settings: Settings, *, data: Path | None = None) -> list[str]:
    """Run the round trip; returns the lines to show (index, each query's answer, ``ok``).

    Raises:
        InputError: A query found no neighbours (the index is unusable).
    """
    with tempfile.TemporaryDirectory(prefix="mammosearch-check-") as work, \
            CaseService(index, settings=settings) as service:  # fmt: skip
        image, text = check_inputs(Path(work), data=data)
        about = service.about()
        app = serve(service, settings, port=0, block=False)
        try:
            client = connect(app.local_url)
            results = {"image query": search_app(client, images=[image], k=5)}
            if about["reports"]:
                results["text query"] = search_app(client, text=text, k=5)
        finally:
            app.close()
    note = f"; {about['note']}" if about["note"] else ""
    lines = [f"demo index: {about['images']} images, embedder {about['embedder']} "
             f"({about['model_id'] or 'no weights'}){note}"]  # fmt: skip
    for name, result in results.items():
        density = result["density"] or {}
        top = ", ".join(f"{n['case_id']} {n['label'] or '?'} {n['score']:.2f}"
                        for n in result["neighbours"][:3])  # fmt: skip
        lines.append(f"{name}: density {density.get('label')} by {density.get('method')} "
                     f"(confidence {float(density.get('confidence') or 0):.2f}); "
                     f"{len(result['neighbours'])} neighbours, top {top}")  # fmt: skip
    if "text query" not in results:
        lines.append("text query: skipped (the data has no reports)")
    if not all(result["neighbours"] for result in results.values()):
        raise InputError("the demo check found no neighbours", fix="rebuild the demo index")
    lines.append("demo check: ok")
    return lines

"""Calling a running app's ``/search`` and ``/normalize`` endpoints with ``gradio_client``.

What ``mammosearch demo --check``, the tests and ``bench/ui.py`` use to drive the real server
the way a script at a hospital would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["connect", "normalize_file", "search_app"]


def connect(url: str, *, auth: tuple[str, str] | None = None, downloads: Path | None = None) -> Any:
    """A ``gradio_client.Client`` for the app at ``url``, with analytics off.

    Args:
        url: The app's address (``http://127.0.0.1:7860/``).
        auth: ``(user, password)`` when the app asks for a login.
        downloads: Where the client saves output files (default: not downloaded).
    """
    # the client's telemetry is off only when both the variable and the argument say so
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from gradio_client import Client

    return Client(
        url,
        auth=auth,
        verbose=False,
        analytics_enabled=False,
        download_files=str(downloads) if downloads is not None else False,
    )


def search_app(
    client: Any,
    *,
    images: Sequence[Path] = (),
    text: str | None = None,
    k: int = 10,
    image_weight: float = 0.5,
    laterality: str = "any",
    view: str = "any",
    label: str = "any",
    exclude_patient: str = "",
    per_case: bool = False,
) -> dict[str, Any]:
    """One query through the app's ``/search`` endpoint (``per_case``: one image per case,
    the page's default; here per image, as ``mammosearch search``).

    Returns:
        ``density`` (the exam's result as JSON: label, probabilities, method, confidence),
        ``bar`` (the density ``Label`` as shown), ``decided`` (the method line),
        ``terms`` (highlighted report tokens), ``standardized``, ``views`` and ``gallery``
        (the displayed images with captions), ``neighbours``, ``timings`` and ``embedder``
        (which embedder produced the neighbours).
    """
    from gradio_client import handle_file

    files = [handle_file(str(p)) for p in images] or None
    out = client.predict(
        files, text or "", k, image_weight, laterality, view, label, exclude_patient, per_case,
        api_name="/search",
    )  # fmt: skip
    views, bar, decided, terms, standardized, gallery, summary = out[:7]
    return {
        "density": summary["density"],
        "bar": bar,
        "decided": decided,
        "terms": terms or [],
        "standardized": standardized,
        "views": views or [],
        "gallery": gallery or [],
        "neighbours": summary["neighbours"],
        "timings": summary["timings"],
        "embedder": summary["embedder"],
    }


def normalize_file(client: Any, path: Path) -> dict[str, Any]:
    """Normalize a file of reports through the app's ``/normalize`` endpoint.

    Returns:
        ``table`` (the preview: headers and rows), ``summary`` (the counts line), and the
        ``jsonl`` and ``csv`` outputs (local paths when the client downloads files).
    """
    from gradio_client import handle_file

    table, summary, jsonl, csv_file = client.predict(handle_file(str(path)), api_name="/normalize")
    return {"table": table, "summary": summary, "jsonl": jsonl, "csv": csv_file}

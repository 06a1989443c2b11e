"""The Gradio app: presentation over :class:`~mammosearch.pipeline.CaseService` and
:func:`~mammosearch.pipeline.normalize_reports`, nothing else.

Two tabs, Search (views and/or a report → the exam's density with the path that decided, the
report's terms highlighted in its own text, similar cases; examples that fill the form and
search in one click) and Batch (normalize a file of reports), and an About panel (embedder,
model, index, labels, version). The two handlers are public API endpoints, ``/search`` and
``/normalize``, for scripts; everything else is private. Images reach the page by URL: the
index's thumbnails as static files, an uploaded view as a thumbnail written once
(:mod:`._views`). Safe defaults: see :func:`serve`.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mammosearch.config import Settings
from mammosearch.errors import InputError, MammosearchError
from mammosearch.ui._format import (
    CSV_FIELDS,
    caption,
    density_label,
    report_entities,
    rows_of,
    side_view,
)
from mammosearch.ui._format import examples as examples_of
from mammosearch.ui._views import QueryViews, ReadyView

__all__ = ["IMAGE_TYPES", "REPORT_TYPES", "build_app", "parse_auth", "report_entities", "serve"]

logger = logging.getLogger(__name__)

IMAGE_TYPES = [".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff"]
REPORT_TYPES = [".csv", ".jsonl", ".txt"]
MAX_UPLOAD = "50mb"
MAX_QUEUE = 32  # requests waiting beyond the one running; more are refused ("queue is full")
KEEP_FILES_S = 120  # uploads and outputs live this long (longer than the queue can wait)
_ANY = "any"
_TERM_COLOURS = {
    "density": "#7c3aed",
    "BI-RADS": "#dc2626",
    "finding": "#2563eb",
    "negated": "#6b7280",
}


def build_app(service: Any, settings: Settings, *, keep_files_s: int = KEEP_FILES_S) -> Any:
    """The Gradio Blocks app over an opened :class:`~mammosearch.pipeline.CaseService`.

    Uploads and outputs are deleted ``keep_files_s`` seconds after they were written (swept
    every half of that) and when the app closes. Not at once: Gradio stores an upload under the
    hash of its content, so two people sending the same file share one path, and deleting it
    when one query is done would pull it from under the other.
    """
    import gradio as gr

    from mammosearch.pipeline import Laterality, SearchFilters, View, normalize_reports

    about = service.about()
    labels = about["labels"]
    # the index's thumbnails are served as they are, by URL, never copied or re-encoded
    gr.set_static_paths([service.thumbnail_dir.resolve()])
    examples, example_labels, known = examples_of(service, about)

    def prepared(files: Sequence[str] | None) -> list[ReadyView]:
        try:
            return [views_cache.get(Path(f)) for f in files or []]
        except MammosearchError as e:
            raise gr.Error(str(e)) from None

    def uploaded(files: Sequence[str] | None) -> list[tuple[str, str]]:
        """Prepare the views as soon as they are uploaded, and show them."""
        return [(v.shown, side_view(v.image)) for v in prepared(files)]

    def search(
        files: Sequence[str] | None,
        text: str | None,
        k: float,
        image_weight: float,
        laterality: str,
        view: str,
        label: str,
        exclude_patient: str | None,
        per_case: bool | None = False,
    ) -> tuple[Any, ...]:
        ready = prepared(files)
        filters = SearchFilters(
            laterality=None if laterality == _ANY else Laterality.parse(laterality),
            view=None if view == _ANY else View.parse(view),
            label=None if label == _ANY else label,
            exclude_patient=(exclude_patient or "").strip() or None,
            per_case=bool(per_case),
        )
        try:
            result = service.query(
                images=[v.image for v in ready],
                text=text,
                k=int(k),
                filters=filters,
                weights=(float(image_weight), 1.0 - float(image_weight)),
            )
        except MammosearchError as e:
            raise gr.Error(str(e)) from None
        timings = dict(result.timings)
        for v in ready:  # the views prepared for this query count in its timings
            for stage, seconds in v.image.timings.items() if v.fresh else ():
                timings[stage] = round(timings[stage] + seconds, 4)
        shown = [
            (v.shown, f"{side_view(q)} · {density_label(q.assessment.density)}")
            for v, q in zip(ready, result.views, strict=True)
        ]
        density = result.density.to_dict() if result.density is not None else None
        if density is None:
            probabilities: dict[str, float] | None = None
            decided = "No density: give an image, or a report that states one."
        else:
            probabilities = {k_: float(p) for k_, p in density["probabilities"].items()}
            decided = (
                f"**{density['label']}** decided by **{density['method']}**, confidence "
                f"{float(density['confidence']):.2f}"
            )
        if result.warnings:
            decided += "\n\n" + "\n".join(f"- {w}" for w in dict.fromkeys(result.warnings))
        report = result.report.to_dict() if result.report is not None else None
        highlighted = (
            {"text": result.report_text or "", "entities": report_entities(report)}
            if report is not None
            else None
        )
        gallery = [(n.thumbnail, caption(n)) for n in result.neighbours]
        summary = {
            "density": density,
            "neighbours": [
                {
                    "row_id": n.row_id,
                    "case_id": n.case_id,
                    "score": round(n.score, 4),
                    "label": n.label,
                    "laterality": n.laterality.code if n.laterality else None,
                    "view": n.view,
                }
                for n in result.neighbours
            ],
            "timings": timings,
            "embedder": about["embedder"],
            "model_id": about["model_id"],
        }
        found = [
            {
                "row_id": n.row_id,
                "thumbnail": n.thumbnail,
                "title": f"**{n.case_id}** · density {n.label or '?'} · "
                f"{n.laterality.code if n.laterality else '?'} {n.view or ''}",
            }
            for n in result.neighbours
        ]
        return (
            shown,
            probabilities,
            decided,
            highlighted,
            report["standardized_text"] if report else "",
            gallery,
            summary,
            found,
        )

    def select(found: list[dict[str, Any]], event: gr.SelectData) -> tuple[Any, ...]:
        """Show a neighbour: its thumbnail and title as the search gave them, and the report
        text and terms that the search did not read."""
        if not found or event.index is None or int(event.index) >= len(found):
            return None, "", None
        item = found[int(event.index)]
        case = service.case(item["row_id"])
        info, terms = item["title"], None
        if case["report_text"] and case["report"]:
            terms = {"text": case["report_text"], "entities": report_entities(case["report"])}
            info += "\n\n" + case["report"]["standardized_text"].replace("\n", "  \n")
        return item["thumbnail"], info, terms

    select.__annotations__["event"] = gr.SelectData  # postponed annotations: Gradio needs the class

    def normalize(
        file: str | None,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008 (how Gradio tracks progress)
    ) -> tuple[Any, ...]:
        if not file:
            raise gr.Error("upload a CSV, JSONL or TXT file of reports")
        source = Path(file)
        out_dir = Path(tempfile.mkdtemp(prefix="mammosearch-batch-", dir=_upload_root()))
        jsonl = out_dir / f"{source.stem}.normalized.jsonl"
        try:
            summary = normalize_reports(source, jsonl, settings=settings, workers=1, progress=True)
        except MammosearchError as e:
            raise gr.Error(str(e)) from None
        rows = rows_of(jsonl)
        table = out_dir / f"{source.stem}.normalized.csv"
        with table.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(CSV_FIELDS))
            writer.writeheader()
            writer.writerows(rows)
        text = (
            f"{summary.total} reports: {summary.ok} normalized, {summary.failed} failed "
            f"{dict(summary.errors) or ''}; density in {summary.with_density}, BI-RADS in "
            f"{summary.with_birads} ({summary.seconds:.1f} s)"
        )
        preview = [[r[f] for f in CSV_FIELDS] for r in rows[:200]]
        return preview, text, str(jsonl), str(table)

    sweep = (max(1, keep_files_s // 2), keep_files_s)
    with gr.Blocks(title="mammosearch", analytics_enabled=False, delete_cache=sweep) as app:
        gr.Markdown("## mammosearch: similar mammography cases and breast density")
        if about.get("note"):
            gr.Markdown(f"⚠️ **{about['note']}**", elem_id="synthetic-note")
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(
                        label="Mammogram views of one exam (DICOM, PNG, JPEG)",
                        file_count="multiple",
                        file_types=IMAGE_TYPES,
                        type="filepath",
                        elem_id="query-images",
                    )
                    text = gr.Textbox(label="Report (optional)", lines=6, elem_id="query-report")
                    with gr.Accordion("Options", open=False):
                        k = gr.Slider(1, 50, value=10, step=1, label="Neighbours (k)")
                        weight = gr.Slider(
                            0.0,
                            1.0,
                            value=0.5,
                            step=0.05,
                            label="Image weight (the report gets the rest)",
                        )
                        laterality = gr.Dropdown([_ANY, "L", "R"], value=_ANY, label="Side")
                        view = gr.Dropdown([_ANY, "CC", "MLO"], value=_ANY, label="View")
                        label = gr.Dropdown([_ANY, *labels], value=_ANY, label="Density label")
                        exclude = gr.Textbox(
                            label="Exclude this patient ID (their priors)",
                            elem_id="exclude-patient",
                        )
                        per_case = gr.Checkbox(
                            value=True,
                            label="One image per case (its best)",
                            elem_id="per-case",
                        )
                    button = gr.Button("Search", variant="primary", elem_id="search-btn")
                    shown_examples = (
                        gr.Examples(
                            examples,
                            [files, text],
                            label="Examples: a click fills the form and searches",
                            example_labels=example_labels,
                            elem_id="examples",
                            api_visibility="private",
                        )
                        if examples
                        else None
                    )
                with gr.Column(scale=2):
                    views = gr.Gallery(
                        label="Query views, as the models see them",
                        columns=4,
                        height=260,
                        object_fit="contain",
                        elem_id="query-views",
                    )
                    density = gr.Label(
                        label="Breast density", num_top_classes=len(labels), elem_id="density"
                    )
                    decided = gr.Markdown(elem_id="density-method")
                    terms = gr.HighlightedText(
                        label="Report terms",
                        color_map=_TERM_COLOURS,
                        combine_adjacent=False,
                        elem_id="report-terms",
                    )
                    standard = gr.Textbox(
                        label="Standardized report",
                        interactive=False,
                        lines=4,
                        elem_id="standardized",
                    )
            neighbours = gr.Gallery(
                label="Similar cases (score · density · view · report)",
                columns=6,
                height=420,
                object_fit="contain",
                allow_preview=False,
                elem_id="neighbours",
            )
            with gr.Row():
                case_image = gr.Image(
                    label="Selected case", interactive=False, height=320, elem_id="case-image"
                )
                with gr.Column():
                    case_info = gr.Markdown(elem_id="case-info")
                    case_terms = gr.HighlightedText(
                        label="Its report", color_map=_TERM_COLOURS, elem_id="case-terms"
                    )
            with gr.Accordion("Result as JSON", open=False):
                summary = gr.JSON(elem_id="result-json")
            found = gr.State([])
            views_cache = QueryViews(service, Path(views.GRADIO_CACHE) / "views", known=known)
            # one query at a time, and a view uploaded is prepared before the search that uses it
            query: dict[str, Any] = {"concurrency_id": "query", "concurrency_limit": 1}
            files.upload(uploaded, [files], [views], api_visibility="private", **query)
            inputs = [files, text, k, weight, laterality, view, label, exclude, per_case]
            outputs = [views, density, decided, terms, standard, neighbours, summary, found]
            button.click(search, inputs, outputs, api_name="search", **query)
            if shown_examples is not None:
                shown_examples.load_input_event.then(
                    search, inputs, outputs, api_visibility="private", **query
                )
            neighbours.select(
                select, [found], [case_image, case_info, case_terms], api_visibility="private"
            )
        with gr.Tab("Batch"):
            batch_file = gr.File(
                label="Reports: CSV (id, text), JSONL or TXT",
                file_types=REPORT_TYPES,
                type="filepath",
                elem_id="batch-file",
            )
            batch_button = gr.Button("Normalize", variant="primary", elem_id="batch-btn")
            batch_summary = gr.Markdown(elem_id="batch-summary")
            table = gr.Dataframe(
                headers=list(CSV_FIELDS),
                label="Preview (first 200)",
                interactive=False,
                elem_id="batch-table",
            )
            with gr.Row():
                jsonl = gr.File(label="Download JSONL", elem_id="batch-jsonl")
                csv_file = gr.File(label="Download CSV", elem_id="batch-csv")
            batch_button.click(
                normalize,
                [batch_file],
                [table, batch_summary, jsonl, csv_file],
                api_name="normalize",
            )
        with gr.Accordion("About", open=False, elem_id="about"):
            gr.JSON(value=about, label="In use")
    return app


def parse_auth(pairs: Sequence[str] = (), file: Path | None = None) -> list[tuple[str, str]]:
    """Logins for :func:`serve` from ``user:password`` strings and/or a file of them (one per
    line; blank lines and ``#`` comments skipped). A file keeps passwords out of the process list.

    Raises:
        InputError: A line without a ``user:password`` pair, or an unreadable file (the message
            names the line number, never its content).
    """
    lines = [(f"--auth #{i + 1}", p) for i, p in enumerate(pairs)]
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(
                f"the auth file cannot be read ({type(e).__name__})",
                fix="give a UTF-8 text file of user:password lines",
            ) from None
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append((f"auth file line {number}", line.strip()))
    logins = []
    for where, pair in lines:
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password:
            raise InputError(f"{where} is not user:password", fix="write it as user:password")
        logins.append((user.strip(), password))
    return logins


def _upload_root() -> str:
    return os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()


def serve(
    service: Any,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    auth: Sequence[tuple[str, str]] | None = None,
    block: bool = True,
    max_upload: str = MAX_UPLOAD,
    keep_files_s: int = KEEP_FILES_S,
    max_queue: int = MAX_QUEUE,
) -> Any:
    """Launch the app on ``port`` (0: any free port; ``app.server_port`` says which): bound to
    ``host`` (loopback by default), no share link, upload size
    limit, no URL fetched for a client (:class:`~mammosearch.ui.guard.NoRemoteFetch`), no file
    served but the index's thumbnails and the app's own uploads and outputs, analytics,
    monitoring and run history off, uploads and outputs deleted ``keep_files_s`` after they
    were written and at shutdown (see :func:`build_app`), a request queue that runs one query at
    a time with at most ``max_queue`` waiting, optional authentication.

    Returns:
        The Blocks app (``block=False``: already serving; ``app.close()`` stops it).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # the queue keeps per-event statistics for its monitoring page (off here): 10,000 by default,
    # which grew the server by ~100 MiB over 4,000 queries
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "100")
    # uploads and outputs live in one private folder that the app empties (see delete_cache)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.cache_dir / "ui-files"))
    from starlette.middleware import Middleware

    from mammosearch.ui.guard import NoRemoteFetch

    if port == 0:
        import socket

        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
    app = build_app(service, settings, keep_files_s=keep_files_s)
    app.queue(default_concurrency_limit=1, max_size=max_queue)
    app.launch(
        app_kwargs={"middleware": [Middleware(NoRemoteFetch)]},
        allowed_paths=[str(service.thumbnail_dir.resolve())],
        server_name=host,
        server_port=port,
        share=False,
        auth=list(auth) if auth else None,
        max_file_size=max_upload,
        show_error=False,
        footer_links=[],
        enable_monitoring=False,
        ssr_mode=False,
        run_history=False,
        prevent_thread_lock=True,
        quiet=True,
    )
    logger.info("serving on %s", app.local_url)
    if block:
        app.block_thread()
    return app

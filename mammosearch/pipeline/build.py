"""``index build``: a manifest into a case index (and ``index remove`` / ``index migrate``).

The job is the same on every engine (:mod:`.engines`): read the manifest, let the engine
prepare each new row (:func:`~.stages.prepare_row`; journaled or sharded, so an interrupted
build resumes), fit the embedder's statistics when it has any, embed, then write under the
index's lock: rows, vectors, thumbnails, the vote fitted leave-one-patient-out, the manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch import __version__
from mammosearch.classifiers import load_density_model
from mammosearch.classifiers.convnext import model_files
from mammosearch.config import Settings
from mammosearch.embeddings import Embedder, FittedEmbedder, open_embedder
from mammosearch.errors import IndexIntegrityError, InputError, MammosearchError
from mammosearch.index import (
    CaseIndex,
    EmbedderInfo,
    IndexWriter,
    VoteParams,
    load_manifest,
    redact_url,
)
from mammosearch.pipeline.engines import PreparedRows, RowJob, get_engine
from mammosearch.pipeline.manifest import label_order, read_manifest, unique_rows
from mammosearch.pipeline.records import BuildOptions, BuildReport, ManifestRow, PreparedRow
from mammosearch.pipeline.stages import (
    THUMB_SIZE,
    embed_inputs,
    embedder_info,
    fit_vote_by_patient,
    report_vectors,
)

__all__ = ["build_index", "migrate_index", "remove_cases"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Existing:
    """What an update keeps of the index it extends."""

    known: set[str]
    stats: dict[str, list[float]] | None = None
    model_id: str | None = None
    note: str | None = None


def _existing(out: Path, options: BuildOptions) -> tuple[_Existing, BuildOptions]:
    """The index an update extends (and the options it implies), or nothing.

    Raises:
        InputError: An index is there and this is no update; or the update asks for another
            case store or report-text policy.
    """
    if not (out / "manifest.json").is_file():
        return _Existing(set()), options
    if not options.update:
        raise InputError(
            f"an index already exists at {out.name!r}",
            fix="pass --update to add to it, or choose another directory",
        )
    with CaseIndex(out) as current:
        manifest = current.manifest
        if options.store is not None and manifest.store.get("url") != redact_url(options.store):
            raise InputError(
                "an existing index keeps the case store it was built with",
                fix="leave out --store (and MAMMOSEARCH_STORE) when you --update",
            )
        kept = manifest.settings.get("report_text", "original") == "original"
        if kept != options.keep_report_text:
            raise InputError(
                "this index stores report text "
                + ("as written" if kept else "scrubbed of PHI")
                + "; an update must do the same",
                fix="drop --keep-report-text" if not kept else "add --keep-report-text",
            )
        info = manifest.embedder
        embedder = info.name if options.embedder == "auto" else options.embedder
        # a model whose weights were hashed is loaded again from the source it was built with
        source = options.model or (info.model_id if info.weights_sha256 is not None else None)
        return (
            _Existing(current.store.source_keys(), info.stats, info.model_id,
                      manifest.settings.get("note")),
            replace(options, embedder=embedder, model=source),
        )  # fmt: skip


def build_index(
    manifest: Path,
    out: Path,
    *,
    settings: Settings,
    options: BuildOptions | None = None,
    **fields: Any,
) -> BuildReport:
    """Build (or, with ``update``, extend) a case index from a manifest.

    Bad rows (missing or unreadable image or report file) are skipped, counted and listed in
    ``build_report.json``; they never stop the build. Report text is scrubbed of PHI before it
    is normalized, embedded or stored, unless ``keep_report_text``; source image paths (whose
    file names can carry names and record numbers) are stored only with ``keep_source_paths``.
    Images that declare burned-in annotation, and secondary captures unless
    ``allow_secondary_capture``, are quarantined (skipped as E060). Several builds may
    ``update`` one index at once: each prepares and embeds on its own, then they take turns to
    add their rows to the latest published index. ``density_model`` copies a trained density
    model into ``DIR/density_model/``, where ``assess`` finds it.

    Args:
        manifest: The manifest (CSV, JSONL or Parquet).
        out: The index directory.
        settings: Run settings (report size limit).
        options: How to build (:class:`~.records.BuildOptions`).
        **fields: Fields of :class:`~.records.BuildOptions` that override ``options``.

    Raises:
        InputError: The manifest is unusable, ``update`` with the other report-text policy,
            or ``store`` given for an existing index or unusable.
        IndexIntegrityError: ``update`` on an index built by another embedder.
        ModelLoadError: The named embedder cannot be loaded.
        ConfigError: ``engine`` is unknown, or Ray is missing or unreachable.
    """
    options = replace(options or BuildOptions(), **fields)
    engine = get_engine(options.engine, options.ray)
    rows = unique_rows(read_manifest(manifest), keep_first=options.keep_first)
    report = BuildReport(rows=len(rows))
    existing, options = _existing(out, options)
    made = open_embedder(options.embedder, options.model, existing.stats)
    if (
        existing.model_id is not None
        and options.model is None
        and made.model_id != existing.model_id
    ):
        raise IndexIntegrityError(
            f"the index was built by another revision of {made.name} ({existing.model_id!r})",
            fix="rebuild it into a new directory instead of --update",
        )
    report.embedder = made.name
    info = embedder_info(made, existing.stats)
    key = dict(
        embedder=made.name, model=made.model_id, update=options.update,
        keep_report_text=options.keep_report_text,
        allow_secondary_capture=options.allow_secondary_capture, version=__version__,
        weights=info.weights_sha256,
    )  # fmt: skip
    todo = [row for row in rows if row.source_key not in existing.known]
    prepared_rows = engine.prepare(todo, out, RowJob(
        manifest, made, options.model, existing.stats, settings, options.keep_report_text,
        options.allow_secondary_capture, options.resume, key,
    ))  # fmt: skip
    try:
        _write(rows, out, options, settings, made, info, existing, prepared_rows, report)
    except MammosearchError:  # what was prepared is of no use to a --resume: forget it
        prepared_rows.close()
        raise
    prepared_rows.close()
    return report


def _write(
    rows: Sequence[ManifestRow], out: Path, options: BuildOptions, settings: Settings,
    made: Embedder, info: EmbedderInfo, existing: _Existing, prepared_rows: PreparedRows,
    report: BuildReport,
) -> None:  # fmt: skip
    """Embed the prepared rows and publish them (under the index's lock)."""
    with ExitStack() as stack:
        bar: Any = None
        if options.progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=len(rows), unit="image", desc="index build"))
        items: list[PreparedRow] = []
        for row in rows:
            if bar is not None:
                bar.update(1)
            if row.source_key in existing.known:
                report.already_indexed += 1
                continue
            item = prepared_rows.get(row)
            if not item.ok:
                report.skip(row, item.failure())
                continue
            if item.report_error:
                report.drop_report(row, item.report_error)
            items.append(item)
        if not items and report.skipped and not existing.known:  # a new index of nothing
            raise _nothing_indexed(report)
        report.resumed, report.shards = prepared_rows.resumed, prepared_rows.shards
        if report.resumed:
            logger.info("resumed: %d rows read by the interrupted build", report.resumed)
        if isinstance(made, FittedEmbedder) and items and existing.stats is None:
            info = embedder_info(made, made.fit_features(np.stack([i.image_input for i in items])))
        image_vectors = _image_vectors(made, items)
        text_vectors = report_vectors(made, [i.report if i.text_vector is None else None
                                             for i in items])  # fmt: skip
        text_vectors.update({n: np.asarray(i.text_vector, dtype=np.float32)
                             for n, i in enumerate(items)
                             if i.report is not None and i.text_vector is not None})  # fmt: skip
        # writers take turns from here: the latest published index is loaded under the lock
        writer = stack.enter_context(IndexWriter(
            out, info, store=options.store, shards=options.shards, crash_after=options.crash_after
        ))  # fmt: skip
        if writer.previous is not None and existing.model_id is None:  # another build published
            raise InputError(
                f"an index was built at {out.name!r} while this build was running",
                fix="run the command again with --update to add to it, or choose another directory",
            )
        added_meanwhile = writer.known_sources() - existing.known if options.update else set()
        for n, item in enumerate(items):
            if item.row.source_key in added_meanwhile:  # by a build that published first
                report.already_indexed += 1
                continue
            stored = item.store_row(keep_source_path=options.keep_source_paths)
            writer.add(stored, image_vectors[n], text_vectors.get(n), item.thumb)
            report.indexed += 1
            report.with_report += n in text_vectors
        writer.rebuild_vectors(exact_limit=options.exact_limit, pq_limit=options.pq_limit)
        labels, order_source, vote, figures = _fit_vote(writer, options.label_order)
        report.vote_figures = figures
        writer.add_file("build_report.json", json.dumps(report.to_dict(), indent=2).encode())
        if options.density_model is not None:  # a copy travels with the index (assess finds it)
            load_density_model(options.density_model)  # refuse what is not a density model
            for name in model_files(options.density_model):  # every ensemble member's weights
                data = (options.density_model / name).read_bytes()
                writer.add_file(f"density_model/{name}", data)
        note = options.note or existing.note
        writer.commit(
            labels=labels,
            label_order_source=order_source,
            vote=vote,
            vote_figures=figures,
            settings={
                "prepared_size": made.prepared_size,
                "thumb_size": THUMB_SIZE,
                "max_report_chars": settings.max_report_chars,
                "report_text": "original" if options.keep_report_text else "scrubbed",
                "source_paths": "kept" if options.keep_source_paths else "dropped",
                "secondary_captures": "allowed"
                if options.allow_secondary_capture
                else "quarantined",
                **({"note": note} if note else {}),
            },  # fmt: skip
            package_version=__version__,
        )


def _nothing_indexed(report: BuildReport) -> InputError:
    """Every new row was skipped: what for, with the fixes the rows' errors give."""
    reasons = ", ".join(f"{code} × {n}" for code, n in report.reasons.most_common())
    distinct = list(dict.fromkeys(r["error"] for r in report.skipped_rows))
    return InputError(
        f"no image could be indexed: {report.skipped} of {report.rows} rows skipped ({reasons}); "
        "nothing was published",
        fix="; ".join(distinct[:3]),
    )


def _image_vectors(embedder: Embedder, items: Sequence[PreparedRow]) -> NDArray[np.float32]:
    """The items' image vectors (``n×dim``): those an engine brought, else embedded here (a
    fitted embedder's always here, with the index's statistics)."""
    given = [i.image_vector for i in items]
    fitted = isinstance(embedder, FittedEmbedder)
    if items and not fitted and all(v is not None for v in given):
        return np.stack([np.asarray(v, dtype=np.float32) for v in given])
    return embed_inputs(embedder, [i.image_input for i in items])


def _fit_vote(
    writer: IndexWriter, explicit: Sequence[str] | None
) -> tuple[list[str], str, VoteParams, dict[str, float]]:
    """Labels, their order, and the vote fitted leave-one-patient-out on the index itself."""
    rows = writer.store.all_rows(with_reports=False)
    labels, source = label_order({r.label for r in rows if r.label}, explicit)
    if "image" not in writer.vectors:
        return labels, source, VoteParams(), {}
    params, figures = fit_vote_by_patient(
        writer.vectors["image"], [(r.id, r.patient_id, r.label) for r in rows], labels
    )
    return labels, source, params, figures


def remove_cases(directory: Path, case_ids: Sequence[str]) -> int:
    """Remove cases from an index (atomically); returns how many images went.

    Raises:
        InputError: No index there, or none of the cases is in it.
    """
    removed = 0
    with IndexWriter(directory, load_manifest(directory).embedder) as writer:
        for case_id in case_ids:
            removed += writer.remove_case(case_id)
        if removed == 0:
            raise InputError(f"none of the {len(case_ids)} cases is in the index")
        _republish(writer)
    return removed


def migrate_index(directory: Path) -> str:
    """Bring an index's case store to this version's schema (Alembic migrations) and publish
    it again; returns the schema revision.

    Raises:
        InputError: No index there.
    """
    with IndexWriter(directory, load_manifest(directory).embedder) as writer:
        revision = str(writer.store.revision())  # the writer migrated its store on opening
        _republish(writer)
    return revision


def _republish(writer: IndexWriter) -> None:
    """Commit a change that adds no images: labels and settings as they were, vote refitted."""
    previous = writer.previous
    if previous is None:  # pragma: no cover - the callers named an existing index
        raise InputError("there is no index to change")
    labels, source, vote, figures = _fit_vote(writer, previous.labels)
    writer.commit(
        labels=labels, label_order_source=source, vote=vote, vote_figures=figures,
        settings=previous.settings, package_version=__version__,
    )  # fmt: skip

"""Case-index orchestration behind :mod:`mammosearch.pipeline`: ingest, search, assess, evaluate.

The pipeline hands each subpackage what it needs: images go through :mod:`mammosearch.imaging`,
reports through :mod:`mammosearch.nlp` (the text embedder gets the canonical
``standardized_text``), vectors into :mod:`mammosearch.index`, which never sees a model.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mammosearch import __version__
from mammosearch._journal import Journal, RecordedError
from mammosearch.config import Settings
from mammosearch.embeddings import Embedder, create_embedder
from mammosearch.embeddings.radiomics import RadiomicsEmbedder
from mammosearch.errors import (
    IndexIntegrityError,
    InputError,
    InvalidDicomError,
    MammosearchError,
    PHILeakError,
)
from mammosearch.imaging import prepare_image, quarantine_reason, read_image
from mammosearch.index import (
    CaseIndex,
    EmbedderInfo,
    IndexWriter,
    SearchFilters,
    VoteParams,
    fit_vote,
    load_manifest,
)
from mammosearch.index.store import redact_url
from mammosearch.nlp import Normalizer
from mammosearch.nlp.scrub import scrub
from mammosearch.records import DensityVote, Neighbour, NormalizedReport

if TYPE_CHECKING:
    from mammosearch.distributed import RayOptions

__all__ = [
    "BuildReport",
    "ManifestRow",
    "exam_density",
    "image_model_probabilities",
    "iter_assessments",
    "iter_exam_assessments",
    "load_density_model",
    "open_density_model",
    "migrate_index",
    "normalize_row_report",
    "open_index",
    "open_embedder",
    "prepare_row",
    "remove_cases",
    "assess_image",
    "build_index",
    "evaluate_retrieval",
    "label_order",
    "read_manifest",
    "search_cases",
]

logger = logging.getLogger(__name__)

PREPARED_SIZE = 512
THUMB_SIZE = 256
_KNOWN_ORDERS = (("A", "B", "C", "D"), ("F", "G", "D"))
_EMBED_BATCH = 16
ASSESS_METHODS = ("auto", "vote", "convnext", "probe")
_FIT_LIMIT = 20_000  # labelled images used to fit the vote (leave one patient out)


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One row of an index manifest (DESIGN.md)."""

    number: int
    image: Path
    case_id: str
    patient_id: str
    laterality: str | None
    view: str | None
    report: str | None
    report_path: Path | None
    label: str | None

    @property
    def source_key(self) -> str:
        """A stable key of the source (what ``--update`` recognises): never shown."""
        return hashlib.sha256(f"{self.case_id}\0{self.image}".encode()).hexdigest()


@dataclass(slots=True)
class BuildReport:
    """What an index build did."""

    rows: int = 0
    indexed: int = 0
    already_indexed: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)
    with_report: int = 0
    removed: int = 0
    resumed: int = 0
    embedder: str = ""
    vote_figures: dict[str, float] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)  # the Ray engine's shard counts

    def skip(self, row: ManifestRow, error: MammosearchError) -> None:
        """Count a row that could not be indexed (no patient data in the record)."""
        self.skipped += 1
        self.reasons[error.code] += 1
        self.skipped_rows.append({"row": row.number, "error": str(error)})

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``build_report.json``)."""
        return {
            "rows": self.rows,
            "indexed": self.indexed,
            "already_indexed": self.already_indexed,
            "skipped": self.skipped,
            "reasons": dict(self.reasons),
            "skipped_rows": self.skipped_rows,
            "with_report": self.with_report,
            "removed": self.removed,
            "resumed": self.resumed,
            "embedder": self.embedder,
            "vote_figures": self.vote_figures,
            **({"shards": self.shards} if self.shards else {}),
        }


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a CSV, JSONL or Parquet manifest (image, case_id, patient_id, …; paths relative to it).

    Raises:
        InputError: The file is missing, of an unknown kind, or lacks a required column.
    """
    if not path.is_file():
        raise InputError(f"manifest not found: {path.name}", fix="check the path")
    base = path.parent
    suffix = path.suffix.lower()
    records: list[dict[str, Any]]
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = list(csv.DictReader(handle))
    elif suffix in (".jsonl", ".ndjson"):
        records = []
        with path.open(encoding="utf-8") as handle:
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InputError(f"manifest line {n} is not valid JSON ({e.msg})") from e
    elif suffix == ".parquet":
        from mammosearch._parquet import iter_parquet_rows

        records = list(iter_parquet_rows(path))
    else:
        raise InputError(
            f"unknown manifest kind {suffix!r}", fix="use a .csv, a .jsonl or a .parquet"
        )
    rows = []
    for n, record in enumerate(records, start=1):
        missing = [c for c in ("image", "case_id", "patient_id") if not _clean(record.get(c))]
        if missing:
            raise InputError(
                f"manifest row {n} lacks {', '.join(missing)}",
                fix="every row needs image, case_id and patient_id",
            )
        image = Path(str(record["image"]))
        report_path = _clean(record.get("report_path"))
        laterality = (_clean(record.get("laterality")) or "").upper()[:1] or None
        rows.append(
            ManifestRow(
                number=n,
                image=image if image.is_absolute() else base / image,
                case_id=str(record["case_id"]).strip(),
                patient_id=str(record["patient_id"]).strip(),
                laterality=laterality if laterality in ("L", "R") else None,
                view=(_clean(record.get("view")) or "").upper() or None,
                report=_clean(record.get("report")),
                report_path=(
                    Path(report_path) if Path(report_path).is_absolute() else base / report_path
                )
                if report_path
                else None,  # fmt: skip
                label=_clean(record.get("density")),
            )
        )
    return rows


def label_order(labels: set[str], explicit: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The label set in its order, and where the order came from.

    Raises:
        InputError: An explicit order misses labels of the manifest.
    """
    if explicit:
        missing = labels - set(explicit)
        if missing:
            raise InputError(
                f"--label-order lacks the labels {sorted(missing)}", fix="list every label"
            )
        return list(explicit), "explicit"
    for order in _KNOWN_ORDERS:
        if labels <= set(order):
            return [label for label in order if label in labels], "known"
    logger.warning("the label order of %d labels is not known; using sorted order", len(labels))
    return sorted(labels), "sorted"


def _thumbnail(prepared: NDArray[np.float32]) -> bytes:
    from PIL import Image

    image = Image.fromarray((np.clip(prepared, 0, 1) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def _report_text(row: ManifestRow) -> str | None:
    if row.report is not None:
        return row.report
    if row.report_path is not None:
        try:
            data = row.report_path.read_bytes()
        except OSError as e:
            raise InputError(f"the report file cannot be read ({e.strerror})") from None
        from mammosearch.nlp import decode_report_bytes

        return decode_report_bytes(data)[0]
    return None


def _embedder_info(embedder: Embedder, stats: dict[str, list[float]] | None) -> EmbedderInfo:
    text_dim = int(getattr(embedder, "text_dim", embedder.dim))
    return EmbedderInfo(
        name=embedder.name,
        model_id=embedder.model_id,
        weights_sha256=getattr(embedder, "weights_sha256", None),
        image_dim=embedder.dim,
        text_dim=text_dim,
        cross_modal=embedder.supports_cross_modal,
        stats=stats,
    )


def open_embedder(
    name: str, model: str | None, stats: dict[str, list[float]] | None = None
) -> Embedder:
    """The embedder of an index build or query (name, model source, radiomics statistics)."""
    options: dict[str, Any] = {}
    if model:
        options["source"] = model
    if name in ("auto", "radiomics.v1") and stats is not None:
        options["stats"] = stats
    if name == "radiomics.v1":
        options.pop("source", None)
    return create_embedder(name, **options)


@dataclass(slots=True)
class _Item:
    row: ManifestRow
    thumb: bytes
    image_input: NDArray[Any]  # prepared image, or radiomics features
    report: NormalizedReport | None
    text: str | None = None  # the report text as stored (scrubbed unless kept)
    image_vector: NDArray[np.float32] | None = None  # embedded already (Ray engine)
    text_vector: NDArray[np.float32] | None = None


def build_index(
    manifest: Path,
    out: Path,
    *,
    settings: Settings,
    embedder: str = "auto",
    model: str | None = None,
    update: bool = False,
    label_order_arg: Sequence[str] | None = None,
    progress: bool = False,
    crash_after: str | None = None,
    density_model: Path | None = None,
    note: str | None = None,
    keep_report_text: bool = False,
    keep_source_paths: bool = False,
    resume: bool = False,
    allow_secondary_capture: bool = False,
    store: str | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
    shards: int | None = None,
    exact_limit: int | None = None,
    pq_limit: int | None = None,
) -> BuildReport:
    """Build (or, with ``update``, extend) a case index from a manifest.

    Bad rows (missing or unreadable image or report file) are skipped, counted and listed in
    ``build_report.json``; they never stop the build. ``density_model`` copies a trained
    ConvNeXt model into ``DIR/density_model/``, where ``assess`` finds it. ``note`` is stored
    in the manifest's settings and shown by the UI (the demo marks its data as synthetic).
    Report text is scrubbed of PHI (:mod:`mammosearch.nlp.scrub`) before it is normalized,
    embedded or stored, unless ``keep_report_text``; source image paths (whose file names can
    carry names and record numbers) are stored only with ``keep_source_paths``. The manifest
    records both. Images that declare burned-in annotation, and secondary captures of screens
    unless ``allow_secondary_capture``, are quarantined (skipped as E060). Every row read is
    journaled beside the index; ``resume`` goes on from the journal of an interrupted build with
    the same manifest and options (the result is the same as an uninterrupted build's).
    ``store`` keeps a new index's case store in PostgreSQL (a URL) instead of SQLite. Several
    builds may ``update`` one index at once: each reads and embeds on its own, then they take
    turns to add their rows to the latest published index.

    ``engine="ray"`` reads, prepares and embeds the rows on a Ray cluster
    (:mod:`mammosearch.distributed`, options in ``ray``) into resumable Parquet shards; the
    index is then assembled from them exactly as from the local engine's rows (``resume`` is
    implied: finished shards are always reused).

    ``shards`` splits the vector indexes into that many files, searched together
    (:mod:`mammosearch.index.vectors`; an update keeps an IVF index's shard count);
    ``exact_limit`` and ``pq_limit`` override the sizes where exact search ends and IVF-PQ
    begins (tests).

    Raises:
        InputError: The manifest is unusable, ``update`` with the other report-text policy,
            or ``store`` given for an existing index or unusable.
        IndexIntegrityError: ``update`` on an index built by another embedder.
        ModelLoadError: The named embedder cannot be loaded.
        ConfigError: ``engine`` is unknown, or Ray is missing or unreachable.
    """
    from mammosearch.distributed import check_engine

    check_engine(engine)
    rows = read_manifest(manifest)
    report = BuildReport(rows=len(rows))
    existing_stats = existing_id = previous_note = None
    known: set[str] = set()
    if update and (out / "manifest.json").is_file():
        with CaseIndex(out) as current:
            known = current.store.source_keys()
            if store is not None and current.manifest.store.get("url") != redact_url(store):
                raise InputError(
                    "an existing index keeps the case store it was built with",
                    fix="leave out --store (and MAMMOSEARCH_STORE) when you --update",
                )
            existing_stats = current.manifest.embedder.stats
            existing_id = current.manifest.embedder.model_id
            previous_note = current.manifest.settings.get("note")
            kept = current.manifest.settings.get("report_text", "original") == "original"
            if kept != keep_report_text:
                raise InputError(
                    "this index stores report text "
                    + ("as written" if kept else "scrubbed of PHI")
                    + "; an update must do the same",
                    fix="drop --keep-report-text" if not kept else "add --keep-report-text",
                )
            if embedder == "auto":
                embedder = current.manifest.embedder.name
            model = model or (
                current.manifest.embedder.model_id
                if embedder in ("biomedclip.v1", "convnext.v1")
                else None
            )
    elif (out / "manifest.json").is_file():
        raise InputError(
            f"an index already exists at {out.name!r}",
            fix="pass --update to add to it, or choose another directory",
        )
    made = open_embedder(embedder, model, existing_stats)
    if existing_id is not None and model is None and made.model_id != existing_id:
        raise IndexIntegrityError(
            f"the index was built by another revision of {made.name} ({existing_id!r})",
            fix="rebuild it into a new directory instead of --update",
        )
    report.embedder = made.name
    normalizer = Normalizer(max_chars=settings.max_report_chars)
    radiomics = made if isinstance(made, RadiomicsEmbedder) else None
    info = _embedder_info(made, existing_stats)
    with ExitStack() as stack:
        options = dict(
            embedder=made.name, model=made.model_id, update=update,
            keep_report_text=keep_report_text, allow_secondary_capture=allow_secondary_capture,
            version=__version__,
        )  # fmt: skip
        entry_of: Callable[[ManifestRow], dict[str, Any]]
        finish: Callable[[], None]
        if engine == "ray":
            from mammosearch.distributed import RayOptions, index_entries_on_ray

            parts = index_entries_on_ray(
                [row for row in rows if row.source_key not in known], out,
                embedder=made.name, model=model, stats=existing_stats, settings=settings,
                dims=(info.image_dim, info.text_dim),
                job={**options, "weights": info.weights_sha256},
                keep_report_text=keep_report_text,
                allow_secondary_capture=allow_secondary_capture, options=ray or RayOptions(),
            )  # fmt: skip
            entry_of, finish = parts.entry, parts.close
            report.shards = dict(parts.counts)
            report.resumed = parts.reused_rows
        else:
            journal = Journal(out, Journal.key(manifest, **options), resume=resume)

            def entry_of(row: ManifestRow) -> dict[str, Any]:
                entry = journal.load(row.number)
                if entry is None:
                    entry = _read_row(row, normalizer, radiomics, keep_report_text,
                                      allow_secondary_capture)  # fmt: skip
                    journal.save(row.number, **entry)
                return entry

            finish = journal.close
        items: list[_Item] = []
        bar: Any = None
        if progress:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=len(rows), unit="image", desc="index build"))
        for row in rows:
            if bar is not None:
                bar.update(1)
            if row.source_key in known:
                report.already_indexed += 1
                continue
            entry = entry_of(row)
            if "error_code" in entry:
                report.skip(row, RecordedError(str(entry["error_code"]), str(entry["error"])))
                continue
            items.append(_item_of(row, entry))
        if engine != "ray":
            report.resumed = journal.resumed
        if report.resumed:
            logger.info("resumed: %d rows read by the interrupted build", report.resumed)
        if radiomics and items and existing_stats is None:
            stats_fitted = radiomics.fit_features(np.stack([i.image_input for i in items]))
            info = _embedder_info(made, stats_fitted)
        image_vectors = _image_vectors(made, items, radiomics)
        text_vectors = _text_vectors(made, items)
        # writers take turns from here: the latest published index is loaded under the lock
        writer = stack.enter_context(
            IndexWriter(out, info, store=store, shards=shards, crash_after=crash_after)
        )
        if writer.previous is not None and existing_id is None:  # another build published first
            raise InputError(
                f"an index was built at {out.name!r} while this build was running",
                fix="run the command again with --update to add to it, or choose another directory",
            )
        added_meanwhile = writer.known_sources() - known if update else set()
        for n, item in enumerate(items):
            if item.row.source_key in added_meanwhile:  # by a build that published first
                report.already_indexed += 1
                continue
            stored = _store_row(item, keep_source_paths)
            writer.add(stored, image_vectors[n], text_vectors.get(n), item.thumb)
            report.indexed += 1
            report.with_report += n in text_vectors
        writer.rebuild_vectors(exact_limit=exact_limit, pq_limit=pq_limit)
        labels, order_source, vote, figures = _fit_vote(writer, label_order_arg)
        report.vote_figures = figures
        writer.add_file("build_report.json", json.dumps(report.to_dict(), indent=2).encode())
        if density_model is not None:  # a copy travels with the index (assess finds it there)
            from mammosearch.classifiers.convnext import ConvNeXtDensity

            ConvNeXtDensity.load(density_model)  # refuse what is not a density model
            for name in ("config.json", "model.safetensors", "probe.json"):
                if (density_model / name).is_file():
                    writer.add_file(f"density_model/{name}", (density_model / name).read_bytes())
        writer.commit(
            labels=labels,
            label_order_source=order_source,
            vote=vote,
            vote_figures=figures,
            settings={
                "prepared_size": PREPARED_SIZE,
                "thumb_size": THUMB_SIZE,
                "max_report_chars": settings.max_report_chars,
                "report_text": "original" if keep_report_text else "scrubbed",
                "source_paths": "kept" if keep_source_paths else "dropped",
                "secondary_captures": "allowed" if allow_secondary_capture else "quarantined",
                **({"note": note or previous_note} if note or previous_note else {}),
            },  # fmt: skip
            package_version=__version__,
        )
        finish()
    return report


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


# why an image is quarantined, as build reports say it (imaging.quarantine_reason)
_QUARANTINED = {
    "burned-in annotation": (
        "the image declares burned-in annotation (its pixels may show who it is)",
        "clean its pixels and set Burned In Annotation NO, or leave it out",
    ),
    "secondary capture": (
        "the image is a secondary capture of a screen (it may show anything that was on it)",
        "pass --allow-secondary-capture for digitised film archived that way",
    ),
    "not a mammogram": ("the image is not a mammogram", "pass mammography images only"),
}


def prepare_row(
    row: ManifestRow, keep_report_text: bool, allow_secondary_capture: bool
) -> dict[str, Any]:
    """Read, check and prepare one row's image and report text (no model involved).

    Returns:
        ``prepared`` (the breast-cropped image), ``thumb`` (PNG bytes as uint8), ``text``
        (scrubbed unless kept; ``""`` without a report), ``laterality`` and ``view`` (the
        image's own, ``""`` when unknown); or ``error_code`` and ``error``.
    """
    try:
        image = read_image(row.image)
        reason = quarantine_reason(
            burned_in_annotation=image.extra.get("burned_in_annotation"),
            modality=image.modality,
            screen_capture=bool(image.extra.get("screen_capture")),
            allow_secondary_capture=allow_secondary_capture,
        )
        if reason is not None:
            what, fix = _QUARANTINED[reason]
            raise PHILeakError(f"{what}; quarantined, not indexed", fix=fix)
        prepared = prepare_image(image, PREPARED_SIZE)
        text = _report_text(row)
    except (InvalidDicomError, InputError, PHILeakError) as e:
        return {"error_code": e.code, "error": str(e)}
    if text and not keep_report_text:
        text = scrub(text).text
    return {
        "prepared": prepared,
        "thumb": np.frombuffer(_thumbnail(prepared), dtype=np.uint8),
        "text": text or "",
        "laterality": image.laterality.value if image.laterality else "",
        "view": image.view.value if image.view else "",
    }


def normalize_row_report(normalizer: Normalizer, case_id: str, text: str) -> str:
    """The normalized report of a row's (prepared) text as JSON, ``""`` without one."""
    normalized = normalizer.normalize(text, id=case_id) if text else None
    return json.dumps(normalized.to_dict(), ensure_ascii=False) if normalized else ""


def _read_row(
    row: ManifestRow,
    normalizer: Normalizer,
    radiomics: Any,
    keep_report_text: bool,
    allow_secondary_capture: bool,
) -> dict[str, Any]:
    """Read, check and prepare one row: a journal entry (arrays and strings), or its error."""
    entry = prepare_row(row, keep_report_text, allow_secondary_capture)
    if "error_code" in entry:
        return entry
    prepared = entry.pop("prepared")
    entry["report"] = normalize_row_report(normalizer, row.case_id, entry["text"])
    entry["features"] = radiomics.features([prepared])[0] if radiomics else prepared
    return entry


def _item_of(row: ManifestRow, entry: dict[str, Any]) -> _Item:
    """The build item of a journal entry."""
    from dataclasses import replace

    report = str(entry["report"])
    oriented = replace(
        row,
        laterality=row.laterality or str(entry["laterality"]) or None,
        view=row.view or str(entry["view"]) or None,
    )  # the manifest's laterality and view, else the image's own
    return _Item(
        oriented, entry["thumb"].tobytes(), entry.get("features", _NO_INPUT),
        NormalizedReport.from_dict(json.loads(report)) if report else None,
        str(entry["text"]) or None, entry.get("image_vector"), entry.get("text_vector"),
    )  # fmt: skip


def _store_row(item: _Item, keep_source_paths: bool) -> dict[str, Any]:
    row = item.row
    return {
        "source_key": row.source_key,
        "case_id": row.case_id,
        "patient_id": row.patient_id,
        "laterality": row.laterality,
        "view": row.view,
        "label": row.label,
        "image_path": str(row.image) if keep_source_paths else "",  # file names can hold PHI
        "report_text": item.text,
        "report_json": json.dumps(item.report.to_dict(), ensure_ascii=False)
        if item.report
        else None,
    }


_NO_INPUT = np.zeros(0, dtype=np.float32)


def _image_vectors(
    embedder: Embedder, items: Sequence[_Item], radiomics: RadiomicsEmbedder | None
) -> NDArray[np.float32]:
    """The image vectors of the items (``n×dim``): those the Ray engine brought, else embedded
    here (radiomics features are always standardised here, with the index's statistics)."""
    given = [i.image_vector for i in items]
    if items and radiomics is None and all(v is not None for v in given):
        return np.stack([np.asarray(v, dtype=np.float32) for v in given])
    return _embed_images(embedder, [i.image_input for i in items], radiomics)


def _text_vectors(embedder: Embedder, items: Sequence[_Item]) -> dict[int, NDArray[np.float32]]:
    """The vectors of the items' canonical report texts, by item position (given or embedded)."""
    vectors = {n: np.asarray(i.text_vector, dtype=np.float32) for n, i in enumerate(items)
               if i.report and i.text_vector is not None}  # fmt: skip
    todo = [(n, i.report.standardized_text) for n, i in enumerate(items)
            if i.report and n not in vectors]  # fmt: skip
    if todo:
        embedded = embedder.embed_texts([t for _, t in todo])
        vectors.update({n: embedded[j] for j, (n, _) in enumerate(todo)})
    return vectors


def _embed_images(
    embedder: Embedder, inputs: Sequence[NDArray[Any]], radiomics: RadiomicsEmbedder | None
) -> NDArray[np.float32]:
    if not inputs:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if radiomics is not None:
        return radiomics.embed_features(np.stack(inputs))
    out = [embedder.embed_images(list(inputs[i : i + _EMBED_BATCH]))
           for i in range(0, len(inputs), _EMBED_BATCH)]  # fmt: skip
    return np.concatenate(out)


def _fit_vote(
    writer: IndexWriter, explicit: Sequence[str] | None
) -> tuple[list[str], str, VoteParams, dict[str, float]]:
    """Labels, their order, and the vote fitted leave-one-patient-out on the index itself."""
    rows = writer.store.all_rows(with_reports=False)
    labelled = [r for r in rows if r.label is not None]
    labels, source = label_order({r.label for r in labelled if r.label}, explicit)
    if len(labelled) < 2 or "image" not in writer.vectors:
        return labels, source, VoteParams(), {}
    labelled = labelled[:_FIT_LIMIT]
    index = writer.vectors["image"]
    by_patient: dict[str, list[int]] = {}
    for r in rows:
        by_patient.setdefault(r.patient_id, []).append(r.id)
    label_of = {r.id: r.label for r in rows}
    k = VoteParams().k
    sims = np.zeros((len(labelled), k), dtype=np.float32)
    neighbour_labels: list[list[str]] = []
    for n, r in enumerate(labelled):
        vector = index.vector(r.id).reshape(1, -1)
        scores, ids = index.search(vector, k * 3, exclude=by_patient[r.patient_id])
        got = [(float(s), label_of.get(int(i))) for s, i in zip(scores[0], ids[0], strict=True)
               if i >= 0 and label_of.get(int(i)) is not None][:k]  # fmt: skip
        sims[n, : len(got)] = [s for s, _ in got]
        neighbour_labels.append([str(lab) for _, lab in got])
    params, figures = fit_vote(
        sims, neighbour_labels, [str(r.label) for r in labelled], labels, k=k
    )
    return labels, source, params, figures


Query = tuple["NDArray[np.float32] | None", "NDArray[np.float32] | None", "NormalizedReport | None"]


def _embed_query(
    embedder: Embedder, image: Path | bytes | None, text: str | None, normalizer: Normalizer
) -> Query:
    """Embed a query image (breast-cropped like indexed ones) and/or a report's canonical text."""
    image_vector = text_vector = None
    normalized = None
    if image is not None:
        prepared = prepare_image(read_image(image), PREPARED_SIZE)
        image_vector = embedder.embed_images([prepared])[0]
    if text:
        normalized = normalizer.normalize(text)
        text_vector = embedder.embed_texts([normalized.standardized_text])[0]
    return image_vector, text_vector, normalized


def open_index(directory: Path, model: str | None = None) -> tuple[CaseIndex, Embedder]:
    """Open an index and the embedder it was built with (same name, model and statistics).

    Raises:
        InputError: No index there.
        IndexIntegrityError: A checksum fails, or the embedder's dimension differs.
        ModelLoadError: The index's model cannot be loaded.
    """
    index = CaseIndex(directory)
    info = index.manifest.embedder
    source = model or (info.model_id if info.name in ("biomedclip.v1", "convnext.v1") else None)
    made = open_embedder(info.name, source, info.stats)
    if made.name != info.name or made.dim != info.image_dim:
        index.close()
        raise IndexIntegrityError(
            f"the index was built by {info.name} ({info.image_dim}-d); {made.name} "
            f"({made.dim}-d) cannot query it",
            fix="load the index's own model (--model)",
        )
    if source is None and made.model_id != info.model_id:  # a weight-free embedder's revision
        index.close()
        raise IndexIntegrityError(
            f"the index was built by another revision of {info.name} ({info.model_id!r})",
            fix="rebuild it: mammosearch index build MANIFEST -o DIR",
        )
    return index, made


def search_cases(
    directory: Path,
    *,
    image: Path | bytes | None = None,
    text: str | None = None,
    k: int = 10,
    filters: SearchFilters | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
    fusion: str = "weighted",
    model: str | None = None,
    settings: Settings | None = None,
) -> list[Neighbour]:
    """Embed a query image and/or report text and return the most similar cases."""
    if image is None and not text:
        raise InputError(
            "give an image, a report text, or both", fix="see 'mammosearch search --help'"
        )
    index, embedder = open_index(directory, model)
    try:
        normalizer = Normalizer(max_chars=(settings.max_report_chars if settings else 200_000))
        image_vector, text_vector, _ = _embed_query(embedder, image, text, normalizer)
        return index.search(
            image_vector=image_vector, text_vector=text_vector, k=k,
            filters=filters or SearchFilters(), weights=weights, fusion=fusion,
        )  # fmt: skip
    finally:
        index.close()


def _check_method(method: str, density_model: Any | None) -> None:
    if method not in ASSESS_METHODS:
        raise InputError(
            f"unknown method {method!r}", fix=f"use one of {', '.join(ASSESS_METHODS)}"
        )
    if method in ("convnext", "probe") and density_model is None:
        raise InputError(
            f"--method {method} needs a trained density model",
            fix="pass --density-model DIR or set MAMMOSEARCH_DENSITY_MODEL",
        )
    if method == "probe" and getattr(density_model, "probe", None) is None:
        raise InputError("this density model has no probe", fix="retrain it with train-density")


def assess_image(
    index: CaseIndex,
    embedder: Embedder,
    *,
    image: Path | bytes,
    report: str | None = None,
    method: str = "auto",
    k: int | None = None,
    exclude_patient: str | None = None,
    normalizer: Normalizer | None = None,
    density_model: Any | None = None,
) -> dict[str, Any]:
    """Breast density of one image, with the path that decided (DESIGN.md ``assess`` JSON).

    ``auto``: the density the report states; else a confident neighbour vote; else the image
    models of the density model (the ConvNeXt, and its radiomics probe), combined as the policy
    tuned by cross-validation and stored with the model says. Without a model an unconfident
    vote still answers, with low confidence and a warning. ``vote``, ``convnext`` and ``probe``
    force one path (for evaluation).

    Raises:
        InputError: Unknown method, or a model path without a density model (or its probe).
    """
    _check_method(method, density_model)
    normalizer = normalizer or Normalizer()
    decoded = read_image(image)
    prepared = prepare_image(decoded, PREPARED_SIZE)
    image_vector = embedder.embed_images([prepared])[0]
    # scrubbed like indexed reports: the result (evidence spans) never carries PHI
    normalized = normalizer.normalize(scrub(report).text) if report else None
    result = assess_prepared(
        index, prepared, image_vector, normalized, method=method, k=k,
        exclude_patient=exclude_patient, density_model=density_model,
    )  # fmt: skip
    laterality = decoded.laterality.value if decoded.laterality is not None else None
    return {"laterality": laterality, **result}


def assess_prepared(
    index: CaseIndex,
    prepared: NDArray[np.float32],
    image_vector: NDArray[np.float32],
    normalized: NormalizedReport | None,
    *,
    method: str = "auto",
    k: int | None = None,
    exclude_patient: str | None = None,
    density_model: Any | None = None,
) -> dict[str, Any]:
    """:func:`assess_image` for an image already prepared and embedded (and its report already
    normalized), as a service that also searches with the same vector does."""
    from mammosearch.classifiers.policy import decide

    _check_method(method, density_model)
    neighbours = index.search(
        image_vector=image_vector, k=k or index.vote_params.k,
        filters=SearchFilters(exclude_patient=exclude_patient), with_reports=False,
    )  # fmt: skip
    vote: DensityVote = index.vote(neighbours)
    models: dict[str, dict[str, float]] = {}
    if density_model is not None and method != "vote":
        names = density_model.labels
        for path, probs in image_model_probabilities(density_model, [prepared]).items():
            models[path] = {lab: round(float(p), 6) for lab, p in zip(names, probs[0], strict=True)}
    stated = normalized.density.category.value if normalized and normalized.density else None
    warnings: list[str] = []
    density: dict[str, Any]
    if method == "auto" and stated is not None and stated in index.labels:
        probabilities = {lab: float(lab == stated) for lab in index.labels}
        density = {"label": stated, "probabilities": probabilities, "method": "report",
                   "confidence": 1.0}  # fmt: skip
    elif method in ("convnext", "probe"):
        chosen = models[method]
        label = max(chosen, key=chosen.__getitem__)
        density = {"label": label, "probabilities": chosen, "method": method,
                   "confidence": chosen[label]}  # fmt: skip
    else:
        policy = density_model.config.get("policy") if density_model is not None else None
        decision = decide(
            vote_label=vote.label, vote_margin=vote.margin, vote_abstains=vote.abstain,
            vote_probabilities=vote.probabilities, model_probabilities=models, policy=policy,
        )  # fmt: skip
        warnings += decision.warnings
        if decision.method == "vote" and vote.abstain and vote.reason:
            warnings.append(f"vote: {vote.reason}")
        density = {"label": decision.label, "probabilities": decision.probabilities,
                   "method": decision.method, "confidence": decision.confidence}  # fmt: skip
        if decision.method == "ensemble" and policy:
            density["weights"] = policy.get("weights")

    def alone(name: str) -> dict[str, Any] | None:
        if name not in models:
            return None
        return {"label": max(models[name], key=models[name].__getitem__),
                "probabilities": models[name]}  # fmt: skip

    return {
        "density": density,
        "vote": vote.to_dict(),
        "convnext": alone("convnext"),
        "probe": alone("probe"),
        "neighbours": [n.to_dict() for n in neighbours],
        "report": normalized.to_dict() if normalized else None,
        "warnings": warnings,
    }


def open_density_model(
    explicit: Path | None, settings: Settings | None, index_dir: Path | None
) -> Any | None:
    """The density model assess uses: ``--density-model``, else the setting
    (``MAMMOSEARCH_DENSITY_MODEL``), else one stored in the index, else none."""
    chosen = explicit or (settings.density_model if settings is not None else None)
    if chosen is None and index_dir is not None and (index_dir / "density_model").is_dir():
        chosen = index_dir / "density_model"
    return load_density_model(chosen) if chosen is not None else None


def load_density_model(directory: Path) -> Any:
    """A ``train-density`` directory. Its radiomics probe is dropped, with a warning, when it
    was fitted on another revision of ``radiomics.v1`` (its vectors would mean something else).

    Raises:
        ModelLoadError: No density model there.
    """
    from mammosearch.classifiers.convnext import ConvNeXtDensity

    model = ConvNeXtDensity.load(directory)
    if model.probe is not None and model.probe.info.get("model_id") != RadiomicsEmbedder.model_id:
        logger.warning("the density model's probe was fitted on another radiomics revision; "
                       "it is not used (retrain with 'mammosearch train-density')")  # fmt: skip
        model.probe = None
    return model


def image_model_probabilities(
    density_model: Any, images: Sequence[NDArray[np.float32]]
) -> dict[str, NDArray[np.float32]]:
    """``{"convnext": n×labels, "probe": n×labels}`` of a density model (the probe when it has
    one: it reads ``radiomics.v1`` vectors standardised with the statistics it was fitted on)."""
    out = {"convnext": density_model.predict_proba(images)}
    probe = density_model.probe
    if probe is not None:
        radiomics = RadiomicsEmbedder(stats=probe.info["embedder_stats"])
        out["probe"] = probe.predict_proba(radiomics.embed_images(images))
    return out


def iter_assessments(
    directory: Path,
    manifest: Path,
    *,
    method: str = "auto",
    model: str | None = None,
    exclude_own_patient: bool = True,
    density_model: Any | None = None,
) -> Iterator[dict[str, Any]]:
    """Assess every row of a manifest with one loaded index and model (JSON objects).

    A row whose image cannot be read yields an object with ``error`` set.
    """
    rows = read_manifest(manifest)
    index, embedder = open_index(directory, model)
    normalizer = Normalizer()
    try:
        for row in rows:
            # rows are named by number and case id, never by path: file names can carry PHI
            base = {"case_id": row.case_id, "row": row.number}
            try:
                text = _report_text(row)
                result = assess_image(
                    index, embedder, image=row.image, report=text, method=method,
                    exclude_patient=row.patient_id if exclude_own_patient else None,
                    normalizer=normalizer, density_model=density_model,
                )  # fmt: skip
            except MammosearchError as e:
                yield {**base, "error": str(e)}
                continue
            if row.laterality:  # the manifest's own column wins over tags and file names
                result["laterality"] = row.laterality
            yield {**base, **result}
    finally:
        index.close()


def iter_exam_assessments(
    directory: Path, manifest: Path, **options: Any
) -> Iterator[dict[str, Any]]:
    """Assess every row (as :func:`iter_assessments`, same options) and yield one object per
    exam (``case_id``) with :func:`exam_density` and a line per view."""
    with CaseIndex(directory) as index:
        labels = index.labels
    by_exam: dict[str, list[dict[str, Any]]] = {}
    for record in iter_assessments(directory, manifest, **options):
        by_exam.setdefault(record["case_id"], []).append(record)
    for case_id, records in by_exam.items():
        views = [{"row": r["row"], "laterality": r.get("laterality"),
                  "label": (r.get("density") or {}).get("label"),
                  "method": (r.get("density") or {}).get("method"), "error": r.get("error")}
                 for r in records]  # fmt: skip
        yield {"case_id": case_id, **exam_density(records, labels), "images": views}


def exam_density(assessments: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """One exam's density from the assessments of its views (:func:`iter_assessments` objects).

    Each breast's probabilities are the mean of its views'; each breast takes its most probable
    label, and the exam the denser breast (later in ``labels``). Views of unknown side count as
    one more "breast". Failed views are counted, not used.
    """
    rank = {label: i for i, label in enumerate(labels)}
    sides: dict[str, list[dict[str, float]]] = {}
    methods: Counter[str] = Counter()
    failed = 0
    for item in assessments:
        density = item.get("density")
        if "error" in item or not density or density.get("label") is None:
            failed += 1
            continue
        sides.setdefault(item.get("laterality") or "unknown", []).append(density["probabilities"])
        methods[density["method"]] += 1
    by_side: dict[str, dict[str, Any]] = {}
    for side, views in sorted(sides.items()):
        mean = {lab: round(float(np.mean([v.get(lab, 0.0) for v in views])), 6) for lab in labels}
        best = max(labels, key=lambda lab: mean[lab])
        by_side[side] = {"label": best, "probabilities": mean, "views": len(views)}
    overall = max((s["label"] for s in by_side.values()), key=rank.__getitem__, default=None)
    return {
        "density": {"label": overall, "method": "exam: denser breast"},
        "by_side": by_side,
        "views": sum(len(v) for v in sides.values()),
        "failed": failed,
        "view_methods": dict(methods),
    }


def evaluate_retrieval(
    manifest: Path, *, embedder: str = "auto", model: str | None = None, k: int = 10,
    settings: Settings, work_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Leave-one-patient-out evaluation of the density vote and of same-label precision@k.

    Builds an index of the manifest in ``work_dir`` (the vote is fitted as a normal build
    would), then lets every labelled image vote from the other patients' images.
    """
    from mammosearch.classifiers.metrics import density_metrics

    build_index(manifest, work_dir, settings=settings, embedder=embedder, model=model)
    with CaseIndex(work_dir) as index:
        rows = [r for r in index.store.all_rows(with_reports=False) if r.label is not None]
        truth, predicted, precision = [], [], []
        for r in rows:
            vector = index.vectors["image"].vector(r.id)
            neighbours = index.search(
                image_vector=vector, k=k, filters=SearchFilters(exclude_patient=r.patient_id),
                with_reports=False,
            )  # fmt: skip
            truth.append(str(r.label))
            predicted.append(index.vote(neighbours).label)
            same = [n.label == r.label for n in neighbours]
            precision.append(float(np.mean(same)) if same else 0.0)
        metrics = density_metrics(truth, predicted, index.labels,
                                  patients=[r.patient_id for r in rows])  # fmt: skip
        return {
            "images": len(rows),
            "embedder": index.manifest.embedder.name,
            **metrics,
            f"precision_at_{k}": round(float(np.mean(precision)), 4),
        }

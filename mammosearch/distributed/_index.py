"""``mammosearch index build --engine ray``: read, prepare and embed manifest rows on Ray Data.

The driver cuts the manifest rows (those not indexed yet) into shards and puts the shards that
are not done into the object store. Ray Data then runs three stages:

1. :func:`prepare_batch` as CPU **tasks**: read and decode the image, quarantine, breast crop,
   thumbnail, the report text (scrubbed of PHI unless kept);
2. :class:`ReportActor` (one report engine per actor): the normalized report;
3. :class:`EmbedActor` (one embedder per actor, on a GPU when the cluster has GPUs: fp16,
   explicit batches): image vectors (radiomics features for ``radiomics.v1``, whose statistics
   are fitted over the whole index when it is assembled) and report-text vectors.

The driver writes each shard (row number, errors, thumbnail, texts, normalized report JSON,
vectors as fixed-size lists) as Parquet when all its rows are back, and hands the rows to the
index assembly of :func:`mammosearch.pipeline.build_index` (through its Ray engine,
:class:`mammosearch.pipeline.engines.RayEngine`), the same as the local engine's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammosearch.config import Settings
from mammosearch.distributed._cluster import Cluster, ray_session, require_ray
from mammosearch.distributed._options import RayOptions
from mammosearch.distributed._shards import ShardStore, collect_shards, job_key
from mammosearch.embeddings import FittedEmbedder, open_embedder
from mammosearch.nlp import Normalizer
from mammosearch.pipeline.records import ManifestRow, side_code
from mammosearch.pipeline.stages import image_inputs, normalize_row_report, prepare_row

__all__ = ["EmbedActor", "ReportActor", "ShardRun", "index_entries_on_ray", "prepare_batch"]

logger = logging.getLogger(__name__)

_PREPARE_BATCH = 4  # images per decoding task
_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(ManifestRow))
_TEXT_COLUMNS = ("error_code", "error", "text", "report", "laterality", "view", "report_error")


@dataclass(slots=True)
class ShardRun:
    """The rows of a Ray index build, read back from its shards.

    Attributes:
        entries: Row number → the entry the assembly takes (as the local engine's journal).
        counts: Shards ``total``, ``computed`` by this run, ``reused`` from an earlier one.
        reused_rows: Rows in reused shards.
    """

    store: ShardStore
    entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reused_rows: int = 0

    def entry(self, row: ManifestRow) -> dict[str, Any]:
        """The entry of a manifest row."""
        return self.entries[row.number]

    def close(self) -> None:
        """The index committed: remove the shards."""
        self.store.close()


def prepare_batch(
    batch: Any, *, size: int, keep_report_text: bool, allow_secondary_capture: bool,
    max_chars: int | None = None,
) -> Any:  # fmt: skip
    """Stage 1 (CPU tasks): read, check and prepare the rows of a pandas batch.

    Returns:
        ``row``, ``shard``, ``case_id``, the text columns, ``thumb`` (PNG bytes) and
        ``prepared`` (float32 bytes, ``height`` × ``width``); error rows carry ``error_code``.
    """
    import pandas as pd

    out = []
    for record in batch.to_dict("records"):
        row = ManifestRow.from_dict(record)
        done = prepare_row(row, size=size, keep_report_text=keep_report_text,
                           allow_secondary_capture=allow_secondary_capture,
                           max_chars=max_chars)  # fmt: skip
        prepared = done.image_input if done.ok else None
        out.append({
            "row": row.number, "shard": int(record["shard"]), "case_id": row.case_id,
            "error_code": done.error_code or "", "error": done.error or "", "thumb": done.thumb,
            "prepared": prepared.astype(np.float32).tobytes() if prepared is not None else b"",
            "height": int(prepared.shape[0]) if prepared is not None else 0,
            "width": int(prepared.shape[1]) if prepared is not None else 0,
            "text": done.text or "", "laterality": side_code(done.row.laterality),
            "view": done.row.view or "", "report_error": done.report_error or "",
        })  # fmt: skip
    return pd.DataFrame.from_records(out)


class ReportActor:
    """Stage 2 (a Ray Data callable class): one report engine per actor normalizes the texts.

    Args:
        max_chars: Longest report accepted.
    """

    def __init__(self, *, max_chars: int) -> None:
        self.normalizer = Normalizer(max_chars=max_chars)
        self.normalizer.engine  # noqa: B018 - load the spaCy pipeline once, now

    def __call__(self, batch: Any) -> Any:
        """Add ``report`` (the normalized report as JSON, ``""`` without one) to a batch; a
        report that cannot be normalized is dropped (``text`` emptied) with its
        ``report_error``."""
        batch = batch.copy()
        reports, texts, errors = [], [], []
        for case_id, text, code, error in zip(batch["case_id"], batch["text"],
                                              batch["error_code"], batch["report_error"],
                                              strict=True):  # fmt: skip
            report, dropped = (
                normalize_row_report(self.normalizer, str(case_id), str(text)) if not code
                else ("", "")
            )  # fmt: skip
            reports.append(report)
            texts.append("" if dropped else text)
            errors.append(dropped or error)
        batch["report"], batch["text"], batch["report_error"] = reports, texts, errors
        return batch


class EmbedActor:
    """Stage 3 (a Ray Data callable class): one embedder per actor (a GPU's, when it has one).

    Args:
        name: The embedder's registry name (resolved: never ``auto``).
        model: Its model source, or ``None`` for the default.
        stats: Radiomics statistics of the index being extended, or ``None``.
        batch_size: Images per embedding call.
    """

    def __init__(
        self, *, name: str, model: str | None, stats: dict[str, list[float]] | None,
        batch_size: int,
    ) -> None:  # fmt: skip
        self.embedder = open_embedder(name, model, stats)
        self.fitted = isinstance(self.embedder, FittedEmbedder)
        self.batch_size = batch_size

    def __call__(self, batch: Any) -> Any:
        """Add ``features`` (radiomics) or ``image_vector``, and ``text_vector``, as bytes."""
        from mammosearch.records import NormalizedReport

        ok = [n for n, code in enumerate(batch["error_code"]) if not code]
        images = [_image(batch, n) for n in ok]
        batch = batch.drop(columns=["prepared"])  # a new frame: the input stays as it was
        features, vectors = [b""] * len(batch), [b""] * len(batch)
        for start in range(0, len(ok), self.batch_size):
            chunk = images[start : start + self.batch_size]
            done: Any
            if self.fitted:  # features only: the statistics are fitted over the whole index
                done = image_inputs(self.embedder, chunk)
                target = features
            else:
                done = self.embedder.embed_images(chunk)
                target = vectors
            for j, n in enumerate(ok[start : start + self.batch_size]):
                target[n] = np.ascontiguousarray(done[j]).tobytes()
        texts = [(n, NormalizedReport.from_dict(json.loads(r)).standardized_text)
                 for n, r in enumerate(batch["report"]) if r]  # fmt: skip
        text_vectors = [b""] * len(batch)
        for start in range(0, len(texts), self.batch_size):
            chunk_texts = texts[start : start + self.batch_size]
            embedded = self.embedder.embed_texts([t for _, t in chunk_texts])
            for j, (n, _) in enumerate(chunk_texts):
                text_vectors[n] = np.asarray(embedded[j], dtype=np.float32).tobytes()
        batch["features"], batch["image_vector"], batch["text_vector"] = (
            features, vectors, text_vectors,
        )  # fmt: skip
        return batch


def _image(batch: Any, n: int) -> Any:
    shape = (int(batch["height"].iloc[n]), int(batch["width"].iloc[n]))
    return np.frombuffer(batch["prepared"].iloc[n], dtype=np.float32).reshape(shape)


def _stat(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        info = path.stat()
    except OSError:
        return "missing"
    return f"{info.st_size}:{info.st_mtime_ns}"


def _frame(rows: Sequence[ManifestRow], index: int) -> Any:
    import pandas as pd

    records = [{**r.to_dict(), "shard": index} for r in rows]
    return pd.DataFrame.from_records(records)


def _digest(key: str, index: int, rows: Sequence[ManifestRow]) -> str:
    """A shard's identity: the job, the rows, and the size and time of the files they name."""
    digest = hashlib.sha256(f"{key}\0{index}\0".encode())
    for r in rows:
        fields = [str(getattr(r, name) or "") for name in _ROW_FIELDS]
        fields += [_stat(r.image), _stat(r.report_path)]
        digest.update("\0".join(fields).encode("utf-8", "surrogatepass") + b"\1")
    return digest.hexdigest()


def _fixed_list(blobs: Sequence[bytes], dtype: Any, dim: int) -> Any:
    """Bytes of vectors (``b""`` = null) → a pyarrow fixed-size list column."""
    import pyarrow as pa

    width = np.dtype(dtype).itemsize * dim
    flat = b"".join(blob if blob else bytes(width) for blob in blobs)
    values = pa.array(np.frombuffer(flat, dtype=dtype))
    mask = pa.array([not blob for blob in blobs], type=pa.bool_())
    return pa.FixedSizeListArray.from_arrays(values, dim, mask=mask)


def _shard_table(rows: Any, dims: tuple[int, int, int]) -> Any:
    import pyarrow as pa

    features, image_dim, text_dim = dims
    columns = {"row": pa.array(rows["row"].astype("int64"), type=pa.int64())}
    for name in _TEXT_COLUMNS:
        columns[name] = pa.array([str(v) for v in rows[name]], type=pa.string())
    columns["thumb"] = pa.array([bytes(v) for v in rows["thumb"]], type=pa.binary())
    columns["features"] = _fixed_list(list(rows["features"]), np.float64, features)
    columns["image_vector"] = _fixed_list(list(rows["image_vector"]), np.float32, image_dim)
    columns["text_vector"] = _fixed_list(list(rows["text_vector"]), np.float32, text_dim)
    return pa.table(columns)


def _matrix(column: Any, dtype: Any) -> tuple[Any, list[bool]]:
    array = column.combine_chunks()
    dim = array.type.list_size
    values = np.asarray(array.values.to_numpy(zero_copy_only=False), dtype=dtype)
    return values.reshape(len(array), dim), array.is_null().to_pylist()


def _read_entries(store: ShardStore, index: int) -> dict[int, dict[str, Any]]:
    """A shard's rows as build entries (the journal entry format, plus vectors)."""
    table = store.read(index)
    texts = {name: table.column(name).to_pylist() for name in _TEXT_COLUMNS}
    thumbs = table.column("thumb").to_pylist()
    features, no_features = _matrix(table.column("features"), np.float64)
    images, no_image = _matrix(table.column("image_vector"), np.float32)
    text_vectors, no_text = _matrix(table.column("text_vector"), np.float32)
    entries: dict[int, dict[str, Any]] = {}
    for n, number in enumerate(table.column("row").to_pylist()):
        if texts["error_code"][n]:
            entries[number] = {"error_code": texts["error_code"][n], "error": texts["error"][n]}
            continue
        entry: dict[str, Any] = {name: texts[name][n] for name in _TEXT_COLUMNS[2:]}
        entry["thumb"] = np.frombuffer(thumbs[n], dtype=np.uint8)
        if not no_features[n]:
            entry["features"] = features[n]
        if not no_image[n]:
            entry["image_vector"] = images[n]
        if not no_text[n]:
            entry["text_vector"] = text_vectors[n]
        entries[number] = entry
    return entries


def _stages(
    ds: Any, cluster: Cluster, *, name: str, model: str | None,
    stats: dict[str, list[float]] | None, settings: Settings, size: int, keep_report_text: bool,
    allow_secondary_capture: bool, weight_free: bool, options: RayOptions,
) -> Any:  # fmt: skip
    """The three stages over a dataset of manifest rows (resources sized to the cluster)."""
    ray = require_ray()
    actor_cpus = 0.5 if cluster.small else 1.0
    ds = ds.map_batches(
        prepare_batch, batch_size=_PREPARE_BATCH, batch_format="pandas", num_cpus=1,
        fn_kwargs={"size": size, "keep_report_text": keep_report_text,
                   "allow_secondary_capture": allow_secondary_capture,
                   "max_chars": settings.max_report_chars},
    )  # fmt: skip
    ds = ds.map_batches(
        ReportActor, fn_constructor_kwargs={"max_chars": settings.max_report_chars},
        batch_size=options.batch_size, batch_format="pandas", num_cpus=actor_cpus,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cluster.cpus // 4))),
    )  # fmt: skip
    embed: dict[str, Any] = {"num_cpus": actor_cpus}
    pool = max(1, int(cluster.cpus // 2))
    if cluster.gpus >= 1 and not weight_free:  # one GPU per actor, fp16 on CUDA
        embed, pool = {"num_cpus": actor_cpus, "num_gpus": 1}, int(cluster.gpus)
    logger.info("embedding on %d %s actors", pool, "GPU" if "num_gpus" in embed else "CPU")
    return ds.map_batches(
        EmbedActor, batch_size=options.embed_batch_size, batch_format="pandas",
        fn_constructor_kwargs={"name": name, "model": model, "stats": stats,
                               "batch_size": options.embed_batch_size},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool), **embed,
    )  # fmt: skip


def index_entries_on_ray(
    rows: Sequence[ManifestRow],
    out: Path,
    *,
    embedder: str,
    model: str | None,
    stats: dict[str, list[float]] | None,
    settings: Settings,
    size: int,
    dims: tuple[int, int],
    job: dict[str, Any],
    keep_report_text: bool,
    allow_secondary_capture: bool,
    options: RayOptions,
    fitted: bool = False,
    weight_free: bool = False,
) -> ShardRun:
    """Read, prepare and embed manifest rows on a Ray cluster, into resumable Parquet shards.

    Args:
        rows: The rows to index (those not in the index already).
        out: The index directory (the shards go to ``OUT.parts`` unless ``options.work_dir``).
        embedder: The embedder's resolved registry name.
        model: Its model source (``None``: its default).
        stats: The fitted statistics of the index being extended.
        settings: Run settings (``max_report_chars``).
        size: The side of the breast-cropped square the embedder takes.
        dims: Image and text vector dimensions.
        job: What every shard depends on (embedder, model id, weights, privacy options, version).
        keep_report_text: Keep report text as written (else scrubbed of PHI).
        allow_secondary_capture: Index secondary captures.
        options: Cluster address, work folder, shard and batch sizes.
        fitted: The embedder is fitted on the index (its features travel, not its vectors).
        weight_free: The embedder has no weights (its actors never take a GPU).

    Returns:
        The rows' entries for the index assembly, and the shard counts.

    Raises:
        ConfigError: Ray is missing, or no cluster answers at ``options.address``.
    """
    ray = require_ray()
    store = ShardStore(options.parts_dir(out))
    key = job_key(kind="index", prepared_size=size, max_chars=settings.max_report_chars, **job)
    run = ShardRun(store)
    chunks = [rows[i : i + options.shard_rows] for i in range(0, len(rows), options.shard_rows)]
    pending = [i for i, chunk in enumerate(chunks) if not store.plan(i, _digest(key, i, chunk))]
    store.forget_stale()
    run.counts = {"total": len(chunks), "computed": 0, "reused": len(chunks) - len(pending)}
    logger.info("index build on ray: %d shards, %d to compute", len(chunks), len(pending))
    if pending:
        with ray_session(options) as cluster:
            refs = [ray.put(_frame(chunks[i], i)) for i in pending]
            ds = _stages(
                ray.data.from_pandas_refs(refs), cluster, name=embedder, model=model, stats=stats,
                settings=settings, size=size, keep_report_text=keep_report_text,
                allow_secondary_capture=allow_secondary_capture, weight_free=weight_free,
                options=options,
            )  # fmt: skip
            feature_dim = dims[0] if fitted else 1
            run.counts["computed"] = collect_shards(
                ds.iter_batches(batch_format="pandas", batch_size=None),
                {i: len(chunks[i]) for i in pending}, store,
                lambda frame: _shard_table(frame, (feature_dim, dims[0], dims[1])),
                crash_after=options.crash_after_shards,
            )  # fmt: skip
    done = set(pending)
    for i in range(len(chunks)):
        run.entries.update(_read_entries(store, i))
    run.reused_rows = sum(len(chunks[i]) for i in range(len(chunks)) if i not in done)
    return run

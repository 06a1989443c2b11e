"""``mammosearch normalize --engine ray``: report normalization on Ray Data actors.

The driver reads the input with the local engine's readers (same ids, encodings and per-record
errors), cuts it into shards and puts the shards that are not done yet into the object store.
Ray Data runs them through a pool of :class:`NormalizeActor` (one report engine per actor),
and the driver writes each shard's JSON lines as a Parquet file as soon as all its rows are
back. The output file is then written from the shards in input order by the same writer as
the local engine (:func:`mammosearch.pipeline.tables.write_normalized`). For tables the driver
flattens each shard line into its rows (:class:`~mammosearch.pipeline.tables.TableRows`, as the
local engine's workers do), since the shards keep JSON lines so that a job can resume.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from mammosearch import __version__
from mammosearch.config import Settings
from mammosearch.distributed._cluster import ray_session, require_ray
from mammosearch.distributed._options import RayOptions
from mammosearch.distributed._shards import ShardStore, collect_shards, job_key
from mammosearch.errors import RecordedError
from mammosearch.nlp import Normalizer
from mammosearch.nlp.normalizer import ReportLine
from mammosearch.pipeline.records import NormalizeSummary
from mammosearch.pipeline.reports import iter_report_inputs
from mammosearch.pipeline.tables import json_loads, table_rows, write_normalized

__all__ = ["NormalizeActor", "normalize_on_ray"]

logger = logging.getLogger(__name__)

_LINE_COLUMNS = ("row", "json", "error", "has_density", "has_birads", "language")


class NormalizeActor:
    """A Ray Data callable class: one report engine per actor, reused for every batch.

    Args:
        max_chars: Longest report accepted.
        scrub: Scrub PHI first (:meth:`~mammosearch.nlp.Normalizer.normalize_lines`, as the
            local engine's workers do).
    """

    def __init__(self, *, max_chars: int, scrub: bool) -> None:
        self.normalizer = Normalizer(max_chars=max_chars)
        self.normalizer.engine  # noqa: B018 - load the spaCy pipeline once, now
        self.scrub = scrub

    def __call__(self, batch: Any) -> Any:
        """Normalize a pandas batch (``row``, ``shard``, ``id``, ``kind``, ``text``, ``data``,
        ``error``) into JSON lines (``row``, ``shard``, ``json`` and the summary columns)."""
        import pandas as pd

        items = [_payload(r) for r in batch.itertuples(index=False)]
        lines = list(self.normalizer.normalize_lines(items, scrub=self.scrub))
        return pd.DataFrame({
            "row": batch["row"].to_numpy(), "shard": batch["shard"].to_numpy(),
            "json": [_encode(x.json) for x in lines], "error": [x.error for x in lines],
            "has_density": [x.has_density for x in lines],
            "has_birads": [x.has_birads for x in lines], "language": [x.language for x in lines],
        })  # fmt: skip


def _payload(record: Any) -> tuple[str, str | bytes | Exception]:
    if record.kind == "bytes":
        return _decode(record.id), bytes(record.data)
    if record.kind == "error":  # the error the reader met, as the local engine describes it
        error = str(record.error)
        return _decode(record.id), RecordedError(error.split(":", 1)[0], error)
    return _decode(record.id), _decode(record.text)


def _encode(text: str) -> bytes:
    """Text as UTF-8 that keeps lone surrogates (a JSON ``\\ud800`` escape): Arrow's strings
    refuse them, and the local engine reads them as they are."""
    return text.encode("utf-8", "surrogatepass")


def _decode(data: Any) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


def _frames(items: Iterator[tuple[str, Any]], size: int) -> Iterator[Any]:
    """The input as DataFrames of ``size`` records (errors already described)."""
    import pandas as pd

    describe = Normalizer()  # describes read errors only: no engine is loaded
    row = 0
    while chunk := list(islice(items, size)):
        records = []
        for rid, payload in chunk:
            record = {"row": row, "id": _encode(rid), "kind": "text", "text": b"", "data": b"",
                      "error": ""}  # fmt: skip
            if isinstance(payload, Exception):
                failed = describe.normalize_safe((rid, payload))
                record.update(kind="error", error=failed.error or "E020")
            elif isinstance(payload, bytes):
                record.update(kind="bytes", data=payload)
            else:
                record["text"] = _encode(payload)
            records.append(record)
            row += 1
        yield pd.DataFrame.from_records(records)


def _digest(key: str, index: int, frame: Any) -> str:
    digest = hashlib.sha256(f"{key}\0{index}\0".encode())
    for record in frame.itertuples(index=False):
        for value in (record.id, record.text, record.data):
            digest.update(len(value).to_bytes(8, "big") + bytes(value))
        digest.update(f"{record.kind}\0{record.error}\1".encode())
    return digest.hexdigest()


def _lines_table(rows: Any) -> Any:
    import pyarrow as pa

    schema = pa.schema([("row", pa.int64()), ("json", pa.binary()), ("error", pa.string()),
                        ("has_density", pa.bool_()), ("has_birads", pa.bool_()),
                        ("language", pa.string())])  # fmt: skip
    return pa.Table.from_pandas(rows[list(_LINE_COLUMNS)], schema=schema, preserve_index=False)


def _read_lines(store: ShardStore) -> Iterator[ReportLine]:
    for index in range(len(store)):
        table = store.read(index)
        columns = [table.column(c).to_pylist() for c in _LINE_COLUMNS[1:]]
        for line, *rest in zip(*columns, strict=True):
            yield ReportLine(_decode(line), *rest)


def _with_rows(lines: Iterator[ReportLine], output_path: Path) -> Iterator[ReportLine]:
    """The lines, each with its table rows when ``output_path`` is a table."""
    rows = table_rows(output_path)
    if rows is None:
        yield from lines
        return
    loads = json_loads()
    for line in lines:
        yield line._replace(json="", rows=rows(loads(line.json)))


def normalize_on_ray(
    input_path: Path,
    output_path: Path,
    *,
    settings: Settings,
    id_column: str = "id",
    text_column: str = "text",
    progress: bool = False,
    scrub: bool = False,
    options: RayOptions,
) -> NormalizeSummary:
    """:func:`mammosearch.pipeline.normalize_reports` on a Ray cluster (same output file).

    Returns:
        The job's :class:`~mammosearch.pipeline.records.NormalizeSummary`, with ``shards`` counts
        (``total``, ``computed``, ``reused``).

    Raises:
        InputError: The input cannot be used at all.
        ConfigError: Ray is missing, or no cluster answers at ``options.address``.
    """
    ray = require_ray()
    started = time.perf_counter()
    items = iter_report_inputs(input_path, id_column=id_column, text_column=text_column)
    store = ShardStore(options.parts_dir(output_path))
    key = job_key(job="normalize", max_chars=settings.max_report_chars, scrub=scrub,
                  version=__version__)  # fmt: skip
    counts = {"total": 0, "computed": 0, "reused": 0}
    with ray_session(options) as cluster:
        refs, expected = [], {}
        for index, frame in enumerate(_frames(items, options.shard_rows)):
            if store.plan(index, _digest(key, index, frame)):
                continue
            frame["shard"] = index
            refs.append(ray.put(frame))
            expected[index] = len(frame)
        store.forget_stale()
        counts.update(total=len(store), reused=len(store) - len(expected))
        logger.info("normalize on ray: %d shards, %d to compute", len(store), len(expected))
        if expected:
            actors = max(1, int(cluster.cpus))
            results = ray.data.from_pandas_refs(refs).map_batches(
                NormalizeActor,
                fn_constructor_kwargs={"max_chars": settings.max_report_chars, "scrub": scrub},
                batch_size=options.batch_size, batch_format="pandas", num_cpus=1,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            )  # fmt: skip
            counts["computed"] = collect_shards(
                results.iter_batches(batch_format="pandas", batch_size=None), expected, store,
                _lines_table, crash_after=options.crash_after_shards,
            )  # fmt: skip
    lines = _with_rows(_read_lines(store), output_path)
    summary = write_normalized(lines, output_path, progress=progress)
    summary.seconds = time.perf_counter() - started
    summary.shards = counts
    store.close()
    return summary

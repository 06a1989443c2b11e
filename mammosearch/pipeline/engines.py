"""Engines: where a batch job's per-record work runs. The seam between the jobs and Ray.

``normalize`` and ``index build`` call one small interface, :class:`Engine`:

- :class:`LocalEngine`: this machine's processes; ``index build`` keeps a journal of the rows it
  prepared (:mod:`.journal`) so that ``--resume`` goes on after an interruption;
- :class:`RayEngine`: a Ray cluster (:mod:`mammosearch.distributed`, imported only when a job
  runs there), resumable through its Parquet shards.

Both run the same stages (:mod:`.stages`) and hand the jobs the same records, so the outputs
are the same whichever engine ran. A report of ``normalize`` (``--scrub`` included) goes
through :meth:`~mammosearch.nlp.Normalizer.normalize_lines` on both: in this machine's worker
processes, or in the Ray actors. For tables (``-o OUT.parquet`` / ``.csv``) the local engine's
workers also flatten each record into its table rows (:class:`~.tables.TableRows`), so that no
JSON is written or read; the Ray engine flattens the JSON lines of its shards in the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mammosearch.accel import parallel_map
from mammosearch.config import Settings
from mammosearch.distributed._options import RayOptions, check_engine
from mammosearch.embeddings import Embedder, FittedEmbedder
from mammosearch.nlp import Normalizer
from mammosearch.pipeline.journal import Journal
from mammosearch.pipeline.records import ManifestRow, NormalizeSummary, PreparedRow
from mammosearch.pipeline.reports import iter_report_inputs
from mammosearch.pipeline.stages import prepare_row
from mammosearch.pipeline.tables import table_rows, write_normalized

__all__ = ["Engine", "LocalEngine", "PreparedRows", "RayEngine", "RowJob", "get_engine"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RowJob:
    """What preparing the rows of one index build depends on.

    Attributes:
        manifest: The manifest file (its bytes key the local journal).
        embedder: The build's embedder (resolved: never ``auto``).
        source: The model source the user or the existing index gave (``None``: default).
        stats: The existing index's fitted statistics, for an update.
        settings: Run settings.
        keep_report_text: Keep report text as written (else scrubbed of PHI).
        allow_secondary_capture: Index secondary captures.
        resume: Go on from an interrupted build's journal (the local engine).
        key: What every prepared row depends on (embedder, model, privacy options, version).
    """

    manifest: Path
    embedder: Embedder
    source: str | None
    stats: dict[str, list[float]] | None
    settings: Settings
    keep_report_text: bool
    allow_secondary_capture: bool
    resume: bool
    key: dict[str, Any] = field(default_factory=dict)


class PreparedRows(Protocol):
    """The prepared rows of a build, as an engine hands them over."""

    @property
    def resumed(self) -> int:
        """Rows an earlier, interrupted run had prepared."""
        ...

    @property
    def shards(self) -> dict[str, int]:
        """Shard counts (``total``, ``computed``, ``reused``); empty without shards."""
        ...

    def get(self, row: ManifestRow) -> PreparedRow:
        """The prepared row of a manifest row (prepared now, or by an earlier run)."""
        ...

    def close(self) -> None:
        """The index committed: forget the journal or shards."""
        ...


class Engine(Protocol):
    """Where ``normalize`` and ``index build`` run their per-record stages."""

    name: str

    def normalize(
        self, input_path: Path, output_path: Path, *, settings: Settings, workers: int | None,
        id_column: str, text_column: str, progress: bool, scrub: bool,
    ) -> NormalizeSummary:  # fmt: skip
        """Normalize every report of ``input_path`` into JSON Lines at ``output_path`` (or
        tables, for ``.parquet`` and ``.csv``: :func:`~.tables.write_normalized`)."""
        ...

    def prepare(self, rows: Sequence[ManifestRow], out: Path, job: RowJob) -> PreparedRows:
        """Prepare the rows of an index build into ``out``."""
        ...


@dataclass(slots=True)
class _Journaled:
    """The local engine's rows, each journaled as it is done: prepared on demand, or with
    ``settings.workers`` > 1 ahead of demand by that many worker processes (in order, a
    bounded number ahead: :func:`mammosearch.accel.parallel_map`)."""

    journal: Journal
    job: RowJob
    normalizer: Normalizer
    shards: dict[str, int] = field(default_factory=dict)
    ahead: Iterator[PreparedRow] | None = None

    def start(self, rows: Sequence[ManifestRow]) -> None:
        """Begin preparing the rows that ``get`` will ask for, in their order."""
        todo = [row for row in rows if not self.journal.has(row.number)]
        workers = self.job.settings.workers
        if workers > 1:
            self.ahead = iter(parallel_map(self._prepare, todo, workers=workers))

    @property
    def resumed(self) -> int:
        return self.journal.resumed

    def _prepare(self, row: ManifestRow) -> PreparedRow:
        return prepare_row(
            row, size=self.job.embedder.prepared_size, keep_report_text=self.job.keep_report_text,
            allow_secondary_capture=self.job.allow_secondary_capture, normalizer=self.normalizer,
            embedder=self.job.embedder,
        )  # fmt: skip

    def get(self, row: ManifestRow) -> PreparedRow:
        entry = self.journal.load(row.number)
        if entry is not None:
            return PreparedRow.from_entry(row, entry)
        prepared = self._prepare(row) if self.ahead is None else next(self.ahead)
        if prepared.row.number != row.number:  # the rows are asked for in the order given
            raise RuntimeError("rows were asked for out of the order in which they were started")
        self.journal.save(row.number, **prepared.to_entry())
        return prepared

    def close(self) -> None:
        self.ahead = None
        self.journal.close()


class LocalEngine:
    """This machine's processes (``--engine local``, the default)."""

    name = "local"

    def normalize(
        self, input_path: Path, output_path: Path, *, settings: Settings, workers: int | None,
        id_column: str, text_column: str, progress: bool, scrub: bool,
    ) -> NormalizeSummary:  # fmt: skip
        """Normalize (and with ``scrub``, scrub) with ``workers`` processes, which also serialise
        each record (a JSON line, or its table rows); see
        :func:`mammosearch.pipeline.normalize_reports`."""
        items = iter_report_inputs(input_path, id_column=id_column, text_column=text_column)
        normalizer = Normalizer(max_chars=settings.max_report_chars)
        lines = normalizer.normalize_lines(items, n_process=workers or settings.workers,
                                           scrub=scrub, rows=table_rows(output_path))  # fmt: skip
        return write_normalized(lines, output_path, progress=progress)

    def prepare(self, rows: Sequence[ManifestRow], out: Path, job: RowJob) -> PreparedRows:
        """Rows prepared here (by ``settings.workers`` processes), journaled beside ``out``."""
        journal = Journal(out, Journal.key(job.manifest, **job.key), resume=job.resume)
        prepared = _Journaled(journal, job, Normalizer(max_chars=job.settings.max_report_chars))
        prepared.start(rows)
        return prepared


@dataclass(slots=True)
class _Sharded:
    """The Ray engine's rows, read back from its shards."""

    run: Any
    resumed: int
    shards: dict[str, int]

    def get(self, row: ManifestRow) -> PreparedRow:
        return PreparedRow.from_entry(row, self.run.entries[row.number])

    def close(self) -> None:
        self.run.close()


class RayEngine:
    """A Ray cluster (``--engine ray``): Ray Data stages, resumable Parquet shards.

    Args:
        options: Cluster address, work folder, shard and batch sizes.
    """

    name = "ray"

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()

    def normalize(
        self, input_path: Path, output_path: Path, *, settings: Settings, workers: int | None,
        id_column: str, text_column: str, progress: bool, scrub: bool,
    ) -> NormalizeSummary:  # fmt: skip
        """Normalize on Ray actors (``workers`` does not apply: the cluster's CPUs do)."""
        from mammosearch.distributed import normalize_on_ray

        return normalize_on_ray(
            input_path, output_path, settings=settings, id_column=id_column,
            text_column=text_column, progress=progress, scrub=scrub, options=self.options,
        )  # fmt: skip

    def prepare(self, rows: Sequence[ManifestRow], out: Path, job: RowJob) -> PreparedRows:
        """Rows prepared and embedded on the cluster (all of them, before this returns)."""
        from mammosearch.distributed import index_entries_on_ray

        embedder = job.embedder
        run = index_entries_on_ray(
            rows, out, embedder=embedder.name, model=job.source, stats=job.stats,
            settings=job.settings, size=embedder.prepared_size,
            dims=(embedder.dim, embedder.text_dim), job=job.key,
            keep_report_text=job.keep_report_text,
            allow_secondary_capture=job.allow_secondary_capture, options=self.options,
            fitted=isinstance(embedder, FittedEmbedder),
            weight_free=isinstance(embedder, FittedEmbedder) and job.key.get("weights") is None,
        )  # fmt: skip
        return _Sharded(run, run.reused_rows, dict(run.counts))


def get_engine(name: str, ray: RayOptions | None = None) -> Engine:
    """The engine of a name (``local`` or ``ray``).

    Raises:
        ConfigError: Unknown name.
    """
    check_engine(name)
    return RayEngine(ray) if name == "ray" else LocalEngine()

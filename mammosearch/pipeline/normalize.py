"""``normalize``: free-text reports into normalized reports (JSON Lines or tables), on either
engine.

The job reads its input with :func:`~.reports.iter_report_inputs`, lets the engine
(:mod:`.engines`) normalize (and, with ``scrub``, scrub) each record, and writes the lines in
input order with :func:`~.reports.write_report_lines`. A record that cannot be read or parsed
is written with ``error`` set and the job goes on. An output named ``.parquet`` or ``.csv``
gets tables (:mod:`.tables`) instead, with no JSON in between: the local engine's workers
flatten each record into its table rows and the parent appends them to the tables' batches
(the Ray engine's driver flattens its shards' lines); both engines write the same tables.
"""

from __future__ import annotations

from pathlib import Path

from mammosearch.config import Settings
from mammosearch.distributed._options import RayOptions
from mammosearch.pipeline._tables import table_format
from mammosearch.pipeline.engines import get_engine
from mammosearch.pipeline.outputs import check_output_file
from mammosearch.pipeline.records import NormalizeSummary
from mammosearch.pipeline.tables import findings_table_path

__all__ = ["normalize_reports"]


def normalize_reports(
    input_path: Path,
    output_path: Path,
    *,
    settings: Settings,
    workers: int | None = None,
    id_column: str = "id",
    text_column: str = "text",
    progress: bool = False,
    scrub: bool = False,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> NormalizeSummary:
    """Normalize every report of ``input_path`` into JSON Lines (or tables) at ``output_path``.

    Output is in input order, one object per report with every key of the contract. The file
    appears atomically when the job completes. Both engines write the same file. An output
    named ``.parquet`` or ``.csv`` gets the reports table there and the findings table beside it
    (``OUT.findings.parquet``; :mod:`.tables`, docs/CLI.md).

    Args:
        input_path: See :func:`~.reports.iter_report_inputs`.
        output_path: The ``.jsonl`` to write (any other name but ``.parquet`` and ``.csv``,
            which get tables).
        settings: Run settings (``workers``, ``max_report_chars``).
        workers: Worker processes of the local engine (overrides ``settings.workers``).
        id_column: Column or key of the report id (CSV, JSONL, Parquet).
        text_column: Column or key of the report text (CSV, JSONL, Parquet).
        progress: Show a progress bar on stderr.
        scrub: Scrub PHI from each report first (:mod:`mammosearch.nlp.scrub`), in the
            processes that normalize it (the workers, or the Ray actors); each record then also
            carries ``text`` (the scrubbed report its evidence spans index) and ``phi`` (spans
            replaced, by kind).
        engine: ``local`` (this machine's processes) or ``ray`` (a Ray cluster:
            :mod:`mammosearch.distributed`, resumable Parquet shards).
        ray: Options of the Ray engine (cluster address, work folder).

    Raises:
        InputError: The input cannot be used at all, or the output cannot be written (checked
            before any work).
        ConfigError: ``engine`` is unknown, or Ray is missing or unreachable.
    """
    check_output_file(output_path)
    if table_format(output_path) is not None:
        check_output_file(findings_table_path(output_path))
    return get_engine(engine, ray).normalize(
        input_path, output_path, settings=settings, workers=workers, id_column=id_column,
        text_column=text_column, progress=progress, scrub=scrub,
    )  # fmt: skip

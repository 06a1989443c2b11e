"""Report → :class:`~mammosearch.records.NormalizedReport`, one at a time or streamed.

:class:`Normalizer` holds the report engine (built on first use) and turns report text or
bytes into normalized reports. :meth:`Normalizer.normalize_many` streams any
number of reports through worker processes in input order, with bounded memory; a report that
cannot be read or parsed becomes a record with ``error`` set, and the stream goes on.
:meth:`Normalizer.normalize_lines` also scrubs PHI (:mod:`.scrub`) in the same workers, for
``normalize --scrub`` on either engine, and serialises each record there: as a JSON line, or
through a function the caller gives (``rows``: the pipeline's table rows), so that the parent
process only writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from itertools import islice
from typing import Any, NamedTuple, TypeVar

from mammosearch.errors import MammosearchError, ReportParseError
from mammosearch.nlp._decode import decode_report_bytes
from mammosearch.nlp._text import prepare
from mammosearch.nlp.engine import ReportEngine
from mammosearch.nlp.language import detect_language
from mammosearch.nlp.scrub import ScrubResult
from mammosearch.nlp.scrub import scrub as _scrub
from mammosearch.records import NormalizedReport

__all__ = ["DEFAULT_MAX_CHARS", "Normalizer", "ReportInput", "ReportLine", "report_id"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_MAX_CHARS = 200_000
# One report to normalize: text, or (id, text | bytes | an error that happened reading it).
ReportInput = str | bytes | tuple[str, "str | bytes | Exception"]


def report_id(text: str) -> str:
    """A stable id for a report without one (a hash: never the text itself)."""
    return "report-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Normalizer:
    """Normalize mammography reports (EN/ES) into BI-RADS terms.

    Args:
        max_chars: Longest report accepted; longer ones are rejected with a clear error.

    Example:
        >>> n = Normalizer()
        >>> n.normalize("Heterogeneously dense breasts. BI-RADS 2.").density.category.value
        'C'
    """

    def __init__(self, *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._engine: ReportEngine | None = None

    @property
    def engine(self) -> ReportEngine:
        """The report engine (rules compiled on first use)."""
        if self._engine is None:
            self._engine = ReportEngine()
        return self._engine

    def normalize(self, text: str | bytes, id: str | None = None) -> NormalizedReport:
        """Normalize one report.

        Args:
            text: The report, as text or as bytes (decoded by :func:`decode_report_bytes`:
                UTF-8, UTF-16/32, a detected legacy code page; a guess or a replaced character
                adds its warning).
            id: The report id; a hash of the text when omitted.

        Returns:
            The normalized report; spans index ``text`` (as decoded, for bytes).

        Raises:
            ReportParseError: ``text`` is not text or bytes, or is longer than ``max_chars``.
            ReportDecodeError: ``text`` is bytes that are not text (binary, an image, a
                document).
        """
        warnings: list[str] = []
        if isinstance(text, bytes):
            text, warning = decode_report_bytes(text)
            if warning:
                warnings.append(warning)
        if not isinstance(text, str):
            raise ReportParseError(
                f"a report must be str or bytes, not {type(text).__name__}",
                fix="pass the report text",
            )
        if len(text) > self.max_chars:
            raise ReportParseError(
                f"report has {len(text)} characters; the limit is {self.max_chars}",
                fix="split the document or raise max_report_chars in the settings",
            )
        prepared = prepare(text)
        return self.engine.report(
            prepared,
            id=id if id is not None else report_id(text),
            language=detect_language(prepared.text),
            warnings=warnings,
        )

    def normalize_safe(self, item: ReportInput) -> NormalizedReport:
        """Normalize one input, turning any failure into a record with ``error`` set."""
        if isinstance(item, tuple):
            rid, payload = item
        else:
            rid, payload = None, item
        if isinstance(payload, Exception):
            return NormalizedReport.failed(rid or "unknown", _describe(payload))
        try:
            return self.normalize(payload, rid)
        except Exception as e:  # one bad report never stops a batch
            if not isinstance(e, MammosearchError):
                logger.exception("unexpected %s while normalizing a report", type(e).__name__)
            fallback = rid or (report_id(payload) if isinstance(payload, str) else "unknown")
            return NormalizedReport.failed(fallback, _describe(e))

    def normalize_many(
        self, items: Iterable[ReportInput], *, n_process: int = 1, batch_size: int = 64
    ) -> Iterator[NormalizedReport]:
        """Stream reports through the normalizer, in input order.

        Args:
            items: Report texts, or ``(id, text | bytes | exception)`` pairs.
            n_process: Worker processes; 1 runs in this process.
            batch_size: Reports per task sent to a worker.

        Yields:
            One normalized report per input; failures carry ``error`` and never stop the
            stream.
        """
        if n_process <= 1:
            for item in items:
                yield self.normalize_safe(item)
            return
        # Workers send plain dicts: pickling them costs a fraction of the dataclasses'.
        for data in self._parallel(items, n_process, batch_size, _work_dicts):
            yield NormalizedReport.from_dict(data)

    def normalize_lines(
        self,
        items: Iterable[ReportInput],
        *,
        n_process: int = 1,
        batch_size: int = 64,
        scrub: bool = False,
        rows: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Iterator[ReportLine]:
        """Like :meth:`normalize_many`, but each report as one JSON line with a summary.

        For batch jobs that write JSON Lines or tables: the workers scrub (with ``scrub``),
        normalize and serialise, so the parent process only writes.

        Args:
            items: Report texts, or ``(id, text | bytes | exception)`` pairs.
            n_process: Worker processes; 1 runs in this process.
            batch_size: Reports per task sent to a worker.
            scrub: Scrub PHI from each report first (:func:`mammosearch.nlp.scrub.scrub`) and
                normalize the scrubbed text; its line then also carries ``text`` (the scrubbed
                report, which the evidence spans index) and ``phi`` (spans replaced, by kind).
                A report that failed to read or is longer than ``max_chars`` is not scrubbed
                (its line carries the error and no text).
            rows: Instead of a JSON line, apply this to each record's JSON form (picklable: it
                runs in the workers); its result is the line's ``rows`` and ``json`` is empty.

        Yields:
            One line per input, in input order.
        """
        if n_process <= 1:
            for item in items:
                yield self.normalize_line(item, scrub=scrub, rows=rows)
            return
        work = partial(_work_lines, scrub=scrub, rows=rows)
        yield from self._parallel(items, n_process, batch_size, work)

    def normalize_line(
        self,
        item: ReportInput,
        *,
        scrub: bool = False,
        rows: Callable[[dict[str, Any]], Any] | None = None,
    ) -> ReportLine:
        """One input as a JSON line, or as ``rows`` of its JSON form (see
        :meth:`normalize_lines`); never raises for a bad report, and never normalizes a report
        that failed to scrub."""
        rid, payload = item if isinstance(item, tuple) else (None, item)
        if not scrub or isinstance(payload, Exception):
            return _line(self.normalize_safe(item), rows=rows)
        warning = None
        if isinstance(payload, bytes):
            try:
                payload, warning = decode_report_bytes(payload)
            except ReportParseError as e:  # not text: the record carries the error
                return _line(NormalizedReport.failed(rid or "unknown", _describe(e)), rows=rows)
        if not isinstance(payload, str) or len(payload) > self.max_chars:
            report = self.normalize_safe(payload if rid is None else (rid, payload))
            return _line(report, rows=rows)
        try:
            scrubbed = _scrub(payload)
        except Exception as e:  # one bad report never stops a batch, nor leaves unscrubbed
            logger.error("unexpected %s while scrubbing a report", type(e).__name__)
            return _line(NormalizedReport.failed(rid or "unknown", _describe(e)), rows=rows)
        report = self.normalize_safe(scrubbed.text if rid is None else (rid, scrubbed.text))
        if warning and report.error is None:  # how the bytes were read, as without --scrub
            report = replace(report, warnings=(warning, *report.warnings))
        return _line(report, scrubbed, rows=rows)

    def _parallel(
        self,
        items: Iterable[ReportInput],
        n_process: int,
        batch_size: int,
        work: Callable[[list[ReportInput]], list[T]],
    ) -> Iterator[T]:
        """Run ``work`` over batches in worker processes, yielding results in input order."""
        iterator = iter(items)
        window = 4 * n_process
        with ProcessPoolExecutor(
            max_workers=n_process,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(self.max_chars,),
        ) as pool:
            pending: deque[Future[list[T]]] = deque()
            while True:
                while len(pending) < window:
                    batch = list(islice(iterator, batch_size))
                    if not batch:
                        break
                    pending.append(pool.submit(work, batch))
                if not pending:
                    return
                yield from pending.popleft().result()


class ReportLine(NamedTuple):
    """A normalized report as a JSON line (or as the rows a caller asked for), with what a job
    summary counts."""

    json: str
    error: str | None
    has_density: bool
    has_birads: bool
    language: str | None
    rows: Any = None


def _line(
    report: NormalizedReport,
    scrubbed: ScrubResult | None = None,
    *,
    rows: Callable[[dict[str, Any]], Any] | None = None,
) -> ReportLine:
    data = report.to_dict()
    if scrubbed is not None:  # the text the evidence spans index, and what was replaced
        data.update(text=scrubbed.text, phi=scrubbed.counts)
    return ReportLine(
        json.dumps(data, ensure_ascii=False) if rows is None else "",
        report.error,
        report.density is not None,
        report.birads is not None,
        report.language,
        None if rows is None else rows(data),
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, MammosearchError):
        return str(error)
    if isinstance(error, OSError):
        return f"E020: cannot read the report ({type(error).__name__}: {error.strerror})"
    return f"E022: the report could not be normalized ({type(error).__name__})"


def _mp_context() -> Any:
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


_WORKER: Normalizer | None = None


def _init_worker(max_chars: int) -> None:
    global _WORKER  # noqa: PLW0603 - one normalizer per worker process
    _WORKER = Normalizer(max_chars=max_chars)


def _work_dicts(batch: list[ReportInput]) -> list[dict[str, Any]]:
    if _WORKER is None:  # pragma: no cover - set by the initializer
        raise RuntimeError("worker not initialised")
    return [_WORKER.normalize_safe(item).to_dict() for item in batch]


def _work_lines(
    batch: list[ReportInput], *, scrub: bool, rows: Callable[[dict[str, Any]], Any] | None
) -> list[ReportLine]:
    if _WORKER is None:  # pragma: no cover - set by the initializer
        raise RuntimeError("worker not initialised")
    return [_WORKER.normalize_line(item, scrub=scrub, rows=rows) for item in batch]

"""The typed records of the pipeline: what crosses its module boundaries and its outputs.

Each is a dataclass with one JSON form (``to_dict`` / ``from_dict``) that the CLI, the UI, the
JSON Lines outputs, the build journal and the Ray shards share:

- :class:`ManifestRow`: one row of an index manifest, as read (:mod:`.manifest`);
- :class:`PreparedRow`: a row after the *prepare* stage (image checked, breast-cropped and made
  into the embedder's input, thumbnail, report scrubbed and normalized), or its error;
- :class:`BuildOptions` and :class:`BuildReport`: what ``index build`` is asked and what it did;
- :class:`NormalizeSummary`: what a ``normalize`` job did.

The results of ``assess`` are in :mod:`.assessment`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import MammosearchError, RecordedError
from mammosearch.nlp.normalizer import ReportLine
from mammosearch.records import Laterality, NormalizedReport, View

__all__ = [
    "BuildOptions",
    "BuildReport",
    "ManifestRow",
    "NormalizeSummary",
    "PreparedRow",
    "side_code",
]

_NO_INPUT = np.zeros(0, dtype=np.float32)


def side_code(laterality: Laterality | None) -> str:
    """A side's code for the JSON, store and shard forms (``""`` when unknown)."""
    return laterality.code if laterality else ""


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One row of an index manifest (DESIGN.md).

    Attributes:
        number: Its 1-based row number (how messages name it: paths can carry PHI).
        image: The image file.
        case_id: The exam.
        patient_id: The patient.
        laterality: The side, or ``None``.
        view: The view, or ``None``.
        report: The report text, when the manifest holds it.
        report_path: The report file, when the manifest names one.
        label: The density label, when labelled.
    """

    number: int
    image: Path
    case_id: str
    patient_id: str
    laterality: Laterality | None
    view: View | None
    report: str | None
    report_path: Path | None
    label: str | None

    @property
    def source_key(self) -> str:
        """A stable key of the source (what ``--update`` recognises): never shown."""
        return hashlib.sha256(f"{self.case_id}\0{self.image}".encode()).hexdigest()

    def oriented(self, laterality: Laterality | None, view: View | None) -> ManifestRow:
        """The row with its laterality and view completed from the image's own (the manifest's
        columns win)."""
        return replace(self, laterality=self.laterality or laterality, view=self.view or view)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths as strings, the side as its code; ``""`` for what is missing)."""
        return {
            "number": self.number, "image": str(self.image), "case_id": self.case_id,
            "patient_id": self.patient_id, "laterality": side_code(self.laterality),
            "view": self.view or "", "report": self.report or "",
            "report_path": str(self.report_path or ""), "label": self.label or "",
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ManifestRow:
        """Read :meth:`to_dict`'s form back."""

        def optional(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        report_path = optional("report_path")
        return cls(
            number=int(data["number"]), image=Path(str(data["image"])),
            case_id=str(data["case_id"]), patient_id=str(data["patient_id"]),
            laterality=Laterality.parse(optional("laterality")),
            view=View.parse(optional("view")), report=optional("report"),
            report_path=Path(report_path) if report_path else None, label=optional("label"),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PreparedRow:
    """A manifest row after the prepare stage, ready to embed and store; or why it is not.

    Attributes:
        row: The manifest row, its laterality and view completed from the image's own.
        error_code: The code of the error that skipped the row (``E021`` …), or ``None``.
        error: Its message (no patient data).
        thumb: The display thumbnail (PNG bytes).
        text: The report text as stored: scrubbed unless kept; ``None`` without a report.
        report: The normalized report, or ``None``.
        image_input: What the embedder's :meth:`embed_inputs` takes: the breast-cropped image,
            or the features of an embedder fitted on the index.
        image_vector: The image vector, when a stage already embedded it (Ray actors).
        text_vector: The report-text vector, likewise.
        report_error: Why the row's report was dropped (its image kept), or ``None``.
    """

    row: ManifestRow
    error_code: str | None = None
    error: str | None = None
    thumb: bytes = b""
    text: str | None = None
    report: NormalizedReport | None = None
    image_input: NDArray[Any] = field(default_factory=lambda: _NO_INPUT)
    image_vector: NDArray[np.float32] | None = None
    text_vector: NDArray[np.float32] | None = None
    report_error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the row can be indexed."""
        return self.error_code is None

    def failure(self) -> MammosearchError:
        """The row's error as an exception (for counting), when it has one."""
        return RecordedError(str(self.error_code), str(self.error))

    def to_entry(self) -> dict[str, Any]:
        """The journal's and the Ray shards' form: arrays and strings only."""
        if not self.ok:
            return {"error_code": self.error_code, "error": self.error or ""}
        entry: dict[str, Any] = {
            "thumb": np.frombuffer(self.thumb, dtype=np.uint8),
            "text": self.text or "",
            "report": json.dumps(self.report.to_dict(), ensure_ascii=False) if self.report else "",
            "laterality": side_code(self.row.laterality),
            "view": self.row.view or "",
            "features": self.image_input,
            "report_error": self.report_error or "",
        }
        for name in ("image_vector", "text_vector"):
            if getattr(self, name) is not None:
                entry[name] = getattr(self, name)
        return entry

    @classmethod
    def from_entry(cls, row: ManifestRow, entry: Mapping[str, Any]) -> PreparedRow:
        """Read :meth:`to_entry`'s form back; the manifest's laterality and view win over the
        image's own."""
        if "error_code" in entry and str(entry["error_code"]):
            return cls(row, error_code=str(entry["error_code"]), error=str(entry["error"]))
        report = str(entry.get("report", ""))
        oriented = row.oriented(Laterality.parse(str(entry.get("laterality", ""))),
                                View.parse(str(entry.get("view", ""))))  # fmt: skip
        thumb = entry.get("thumb", b"")
        return cls(
            oriented,
            thumb=thumb.tobytes() if isinstance(thumb, np.ndarray) else bytes(thumb),
            text=str(entry.get("text", "")) or None,
            report=NormalizedReport.from_dict(json.loads(report)) if report else None,
            image_input=entry.get("features", _NO_INPUT),
            image_vector=entry.get("image_vector"),
            text_vector=entry.get("text_vector"),
            report_error=str(entry.get("report_error", "")) or None,
        )

    def store_row(self, *, keep_source_path: bool) -> dict[str, Any]:
        """The case store's row of this image (source paths only when kept: names can hold
        PHI)."""
        row = self.row
        return {
            "source_key": row.source_key,
            "case_id": row.case_id,
            "patient_id": row.patient_id,
            "laterality": side_code(row.laterality) or None,
            "view": row.view.value if row.view else None,
            "label": row.label,
            "image_path": str(row.image) if keep_source_path else "",
            "report_text": self.text,
            "report_json": json.dumps(self.report.to_dict(), ensure_ascii=False)
            if self.report
            else None,
        }


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """How ``index build`` runs (everything but the manifest, the output and the settings).

    Attributes:
        embedder: Registry name, or ``auto`` (BiomedCLIP when its weights load, else the
            weight-free baseline).
        model: The embedder's model source (``hf-hub:…``, ``local-dir:…``).
        update: Add to an existing index (only what is new).
        label_order: The label order, for label sets of unknown order.
        density_model: A ``train-density`` directory copied into the index.
        note: A note stored in the manifest and shown by the UI.
        keep_report_text: Store report text as written (else scrubbed of PHI).
        keep_source_paths: Store source image paths (file names can carry PHI).
        resume: Go on from the journal of an interrupted build with the same inputs.
        allow_secondary_capture: Index secondary captures (digitised film).
        keep_first: Index an image repeated in the manifest once (else the repeat is an error).
        store: A PostgreSQL URL for a new index's case store (else SQLite).
        engine: ``local`` or ``ray``.
        ray: The Ray engine's options (``mammosearch.distributed.RayOptions``).
        shards: Vector index shards.
        exact_limit: Where exact search ends (tests).
        pq_limit: Where IVF-PQ begins (tests).
        crash_after: A test seam: stop after this step of the index writer.
        progress: Show a progress bar.
    """

    embedder: str = "auto"
    model: str | None = None
    update: bool = False
    label_order: Sequence[str] | None = None
    density_model: Path | None = None
    note: str | None = None
    keep_report_text: bool = False
    keep_source_paths: bool = False
    resume: bool = False
    allow_secondary_capture: bool = False
    keep_first: bool = False
    store: str | None = None
    engine: str = "local"
    ray: Any = None
    shards: int | None = None
    exact_limit: int | None = None
    pq_limit: int | None = None
    crash_after: str | None = None
    progress: bool = False


@dataclass(slots=True)
class BuildReport:
    """What an index build did (``build_report.json``)."""

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
    reports_dropped: int = 0
    report_reasons: Counter[str] = field(default_factory=Counter)
    dropped_reports: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, row: ManifestRow, error: MammosearchError) -> None:
        """Count a row that could not be indexed (no patient data in the record)."""
        self.skipped += 1
        self.reasons[error.code] += 1
        self.skipped_rows.append({"row": row.number, "error": str(error)})

    def drop_report(self, row: ManifestRow, error: str) -> None:
        """Count a report that could not be used (its image indexed without it)."""
        self.reports_dropped += 1
        self.report_reasons[error.split(":", 1)[0]] += 1
        self.dropped_reports.append({"row": row.number, "error": error})

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
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
            "reports_dropped": self.reports_dropped,
            "report_reasons": dict(self.report_reasons),
            "dropped_reports": self.dropped_reports,
            **({"shards": self.shards} if self.shards else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildReport:
        """Read :meth:`to_dict`'s form back."""
        return cls(
            rows=int(data["rows"]), indexed=int(data["indexed"]),
            already_indexed=int(data["already_indexed"]), skipped=int(data["skipped"]),
            reasons=Counter(data.get("reasons") or {}),
            skipped_rows=list(data.get("skipped_rows") or []),
            with_report=int(data["with_report"]), removed=int(data.get("removed", 0)),
            resumed=int(data.get("resumed", 0)), embedder=str(data.get("embedder", "")),
            vote_figures=dict(data.get("vote_figures") or {}),
            shards=dict(data.get("shards") or {}),
            reports_dropped=int(data.get("reports_dropped", 0)),
            report_reasons=Counter(data.get("report_reasons") or {}),
            dropped_reports=list(data.get("dropped_reports") or []),
        )  # fmt: skip


@dataclass(slots=True)
class NormalizeSummary:
    """What a normalization job did.

    Attributes:
        total: Records read.
        ok: Records normalized.
        failed: Records that could not be read or parsed (written with ``error``).
        errors: Failure counts by error code (``E022`` …).
        with_density: Reports with a density category.
        with_birads: Reports with a BI-RADS category.
        languages: Reports per detected language (``None`` when unclear).
        seconds: Wall time of the job.
        shards: With ``engine="ray"``: ``{"total", "computed", "reused"}`` shard counts.
    """

    total: int = 0
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    with_density: int = 0
    with_birads: int = 0
    languages: Counter[str | None] = field(default_factory=Counter)
    seconds: float = 0.0
    shards: dict[str, int] = field(default_factory=dict)

    def add(self, line: ReportLine) -> None:
        """Count one output record."""
        self.total += 1
        if line.error is not None:
            self.failed += 1
            self.errors[line.error.split(":", 1)[0]] += 1
            return
        self.ok += 1
        self.with_density += line.has_density
        self.with_birads += line.has_birads
        self.languages[line.language] += 1

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.total / self.seconds if self.seconds > 0 else 0.0

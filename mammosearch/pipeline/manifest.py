"""Index manifests: read a CSV, JSONL or Parquet manifest into :class:`ManifestRow` records, and
the order of its density labels (DESIGN.md, "Manifest")."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError
from mammosearch.pipeline.parquet import iter_parquet_rows
from mammosearch.pipeline.records import ManifestRow
from mammosearch.pipeline.reports import CSV_FIELD_LIMIT, open_table, table_error, table_text
from mammosearch.records import Laterality, View

__all__ = ["KNOWN_ORDERS", "ManifestRow", "label_order", "read_manifest", "unique_rows"]

logger = logging.getLogger(__name__)

KNOWN_ORDERS = (("A", "B", "C", "D"), ("F", "G", "D"))


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _side(value: Any, number: int) -> Laterality | None:
    """A row's side (``L``/``R``, ``left``/``right``); anything else leaves it to the image."""
    try:
        side = Laterality.parse(_clean(value))
    except ValueError:
        side = Laterality.BILATERAL
    if side is Laterality.BILATERAL:
        logger.warning("manifest row %d: laterality is not L or R; the image's own is used", number)
        return None
    return side


def _view(value: Any, number: int) -> View | None:
    """A row's view; an unknown code leaves it to the image."""
    try:
        return View.parse(_clean(value))
    except ValueError:
        logger.warning("manifest row %d: unknown view; the image's own is used", number)
        return None


def _records(path: Path) -> list[dict[str, Any]]:
    """The manifest's records; CSV and JSON Lines through the report reader's
    :func:`~.reports.open_table` (any encoding, fields of any size, text decoded by row)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return list(iter_parquet_rows(path))
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InputError(
            f"unknown manifest kind {suffix!r}", fix="use a .csv, a .jsonl or a .parquet"
        )
    records: list[dict[str, Any]] = []
    n = 0
    try:
        with open_table(path) as handle:
            if suffix == ".csv":
                csv.field_size_limit(CSV_FIELD_LIMIT)
                for n, row in enumerate(csv.DictReader(handle), start=1):
                    records.append(_record(row, n))
            else:
                for n, line in enumerate(handle, start=1):
                    if line.strip():
                        records.append(_record(line, n))
    except UnicodeDecodeError as e:
        raise table_error(f"after manifest row {n}") from e
    except csv.Error as e:
        raise InputError(
            f"the manifest cannot be parsed after row {n} ({e})",
            fix="check the quoting of that row, or export the manifest again",
        ) from e
    return records


def _record(line: str | dict[str, Any], n: int) -> dict[str, Any]:
    """Manifest row ``n`` (a CSV row or a JSON line) with its text fields decoded."""
    if isinstance(line, str):
        try:
            line = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"manifest line {n} is not valid JSON ({e.msg})") from e
        if not isinstance(line, dict):
            raise InputError(f"manifest line {n} is not a JSON object")
    # the report cell is decoded later, when its row is prepared (stages.row_report_text): one
    # that is not text then costs its row's report only, not the whole manifest
    return {
        key: table_text(value, what=f"manifest row {n}")
        if isinstance(value, str) and key != "report"
        else value
        for key, value in line.items()
    }


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a CSV, JSONL or Parquet manifest (image, case_id, patient_id, …; paths relative to it).

    Raises:
        InputError: The file is missing, of an unknown kind, or lacks a required column.
    """
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not found"
        raise InputError(f"manifest {str(path)!r} is {what}",
                         fix="pass a .csv, .jsonl or .parquet manifest file")  # fmt: skip
    base = path.parent
    rows = []
    for n, record in enumerate(_records(path), start=1):
        missing = [c for c in ("image", "case_id", "patient_id") if not _clean(record.get(c))]
        if missing:
            raise InputError(
                f"manifest row {n} lacks {', '.join(missing)}",
                fix="every row needs image, case_id and patient_id",
            )
        image = Path(str(record["image"]))
        report_path = _clean(record.get("report_path"))
        rows.append(
            ManifestRow(
                number=n,
                image=image if image.is_absolute() else base / image,
                case_id=str(record["case_id"]).strip(),
                patient_id=str(record["patient_id"]).strip(),
                laterality=_side(record.get("laterality"), n),
                view=_view(record.get("view"), n),
                report=_clean(record.get("report")),
                report_path=(
                    Path(report_path) if Path(report_path).is_absolute() else base / report_path
                )
                if report_path
                else None,  # fmt: skip
                label=_clean(record.get("density")),
            )
        )
    if not rows:
        raise InputError(f"manifest {str(path)!r} has no rows",
                         fix="add one row per image (image, case_id, patient_id, …)")  # fmt: skip
    return rows


def unique_rows(rows: Sequence[ManifestRow], *, keep_first: bool = False) -> list[ManifestRow]:
    """The rows, checked for repeats of one image in one case (``case_id`` and ``image``).

    Raises:
        InputError: Rows repeat an earlier one, unless ``keep_first`` (then they are left out,
            with a warning). The message gives row numbers only (the values can be PHI).
    """
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for row in rows:
        earlier = first.setdefault(row.source_key, row.number)
        if earlier != row.number:
            repeats.append((row.number, earlier))
    if not repeats:
        return list(rows)
    listed = ", ".join(f"row {n} repeats row {e}" for n, e in repeats[:5])
    more = f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
    if not keep_first:
        raise InputError(
            f"{len(repeats)} manifest row{'s' if len(repeats) > 1 else ''} repeat"
            f"{'' if len(repeats) > 1 else 's'} the case_id and image of an earlier row "
            f"({listed}{more})",
            fix="remove the repeats, or pass --keep-first to index each image once",
        )
    logger.warning("left out %d repeated manifest rows (%s%s)", len(repeats), listed, more)
    dropped = {n for n, _ in repeats}
    return [row for row in rows if row.number not in dropped]


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
    for order in KNOWN_ORDERS:
        if labels <= set(order):
            return [label for label in order if label in labels], "known"
    logger.warning("the label order of %d labels is not known; using sorted order", len(labels))
    return sorted(labels), "sorted"

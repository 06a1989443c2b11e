"""The case store: one SQLite row per indexed image; the row id is the image's FAISS id."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammosearch.errors import IndexIntegrityError

__all__ = ["CaseRow", "CaseStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    source_key TEXT NOT NULL UNIQUE,
    case_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    laterality TEXT,
    view TEXT,
    label TEXT,
    image_path TEXT NOT NULL,
    thumbnail TEXT NOT NULL,
    report_text TEXT,
    report_json TEXT,
    has_text_vector INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_case ON images(case_id);
CREATE INDEX IF NOT EXISTS images_patient ON images(patient_id);
"""
_COLUMNS = ("id", "source_key", "case_id", "patient_id", "laterality", "view", "label",
            "image_path", "thumbnail", "report_text", "report_json", "has_text_vector")  # fmt: skip


_SELECT = ", ".join(_COLUMNS)
_SELECT_LIGHT = _SELECT.replace("report_text, report_json", "NULL, NULL")


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One indexed image and what the index knows about it."""

    id: int
    source_key: str
    case_id: str
    patient_id: str
    laterality: str | None
    view: str | None
    label: str | None
    image_path: str
    thumbnail: str
    report_text: str | None
    report_json: str | None
    has_text_vector: bool

    @property
    def report(self) -> dict[str, Any] | None:
        """The normalized report JSON, parsed."""
        return json.loads(self.report_json) if self.report_json else None


def _row(r: Sequence[Any]) -> CaseRow:
    return CaseRow(
        id=int(r[0]), source_key=r[1], case_id=r[2], patient_id=r[3], laterality=r[4], view=r[5],
        label=r[6], image_path=r[7], thumbnail=r[8], report_text=r[9], report_json=r[10],
        has_text_vector=bool(r[11]),
    )  # fmt: skip


class CaseStore:
    """SQLite store of the indexed images (the embedded default).

    Args:
        path: The ``cases.sqlite`` file (created when missing).
        read_only: Open without write access (queries of a published index).
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        try:
            if read_only:
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                self._db = sqlite3.connect(path, check_same_thread=False)
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise IndexIntegrityError(
                f"the case store cannot be opened ({e})", fix="run 'mammosearch index verify'"
            ) from e

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def add(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert rows (the dict keys are the columns without ``id``); returns their ids."""
        ids = []
        with self._db:
            for row in rows:
                cur = self._db.execute(
                    "INSERT INTO images (source_key, case_id, patient_id, laterality, view, label,"
                    " image_path, thumbnail, report_text, report_json, has_text_vector)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [row.get(c) for c in _COLUMNS[1:-1]] + [int(bool(row.get("has_text_vector")))],
                )
                if cur.lastrowid is None:  # pragma: no cover - sqlite always sets it
                    raise IndexIntegrityError("the case store did not return a row id")
                ids.append(int(cur.lastrowid))
        return ids

    def remove(self, ids: Iterable[int]) -> None:
        """Delete rows by id."""
        with self._db:
            self._db.executemany("DELETE FROM images WHERE id = ?", [(int(i),) for i in ids])

    def ids_of_case(self, case_id: str) -> list[int]:
        """Row ids of one case."""
        cur = self._db.execute("SELECT id FROM images WHERE case_id = ? ORDER BY id", (case_id,))
        return [int(r[0]) for r in cur]

    def ids_of_patient(self, patient_id: str) -> list[int]:
        """Row ids of one patient."""
        cur = self._db.execute("SELECT id FROM images WHERE patient_id = ?", (patient_id,))
        return [int(r[0]) for r in cur]

    def ids_where(
        self, *, laterality: str | None = None, view: str | None = None, label: str | None = None
    ) -> list[int]:
        """Row ids matching every given attribute."""
        clauses, values = [], []
        for column, value in (("laterality", laterality), ("view", view), ("label", label)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [int(r[0]) for r in self._db.execute(f"SELECT id FROM images{where}", values)]

    def set_thumbnails(self, paths: dict[int, str]) -> None:
        """Record each row's thumbnail path."""
        with self._db:
            self._db.executemany(
                "UPDATE images SET thumbnail = ? WHERE id = ?", [(p, i) for i, p in paths.items()]
            )

    def source_keys(self) -> set[str]:
        """Keys of every indexed source (what ``--update`` skips)."""
        return {str(r[0]) for r in self._db.execute("SELECT source_key FROM images")}

    def ids(self, *, with_text: bool = False) -> list[int]:
        """All row ids (or those with a text vector), ascending."""
        where = " WHERE has_text_vector = 1" if with_text else ""
        return [int(r[0]) for r in self._db.execute(f"SELECT id FROM images{where} ORDER BY id")]

    def get(self, ids: Sequence[int], *, with_reports: bool = True) -> dict[int, CaseRow]:
        """Rows by id (missing ids are absent); without reports, their texts are not read."""
        out: dict[int, CaseRow] = {}
        wanted = [int(i) for i in ids]
        columns = _SELECT if with_reports else _SELECT_LIGHT
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {columns} FROM images WHERE id IN ({marks})"
            for r in self._db.execute(query, chunk):
                out[int(r[0])] = _row(r)
        return out

    def all_rows(self) -> list[CaseRow]:
        """Every row, by id."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM images ORDER BY id"
        return [_row(r) for r in self._db.execute(query)]

    def count(self) -> int:
        """Number of indexed images."""
        return int(self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def check(self) -> None:
        """SQLite's own integrity check.

        Raises:
            IndexIntegrityError: The database file is damaged.
        """
        try:
            result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise IndexIntegrityError(f"the case store is damaged ({e})") from e
        if result != "ok":
            raise IndexIntegrityError(f"the case store is damaged ({result})")

    def backup_to(self, path: Path) -> None:
        """Copy the database to ``path`` (consistent even while it is open)."""
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
        finally:
            target.close()

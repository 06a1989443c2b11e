"""Streaming tables over declared columns: Parquet (pyarrow) or CSV (the standard library).

A table is declared as ``(name, type)`` columns with Arrow's type names (``string``, ``int32``,
``int64``, ``float64``, ``bool``, ``list<string>``). Rows are written in batches of
:data:`BATCH_ROWS` to a temporary name, and :func:`commit_tables` moves every table of a job to
its name only when all are complete. In CSV, list columns are joined (``warnings`` with
``" | "``, every other with ``"|"``), booleans are ``true``/``false`` and a missing value is an
empty cell.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError
from mammosearch.pipeline.parquet import pyarrow_modules

__all__ = [
    "BATCH_ROWS",
    "TABLE_SUFFIXES",
    "Column",
    "TableWriter",
    "arrow_schema",
    "check_table_format",
    "commit_tables",
    "table_format",
]

# a column is (name, type)
Column = tuple[str, str]

TABLE_SUFFIXES = (".parquet", ".csv")
BATCH_ROWS = 4096

_LIST_JOIN = {"warnings": " | "}  # every other list column joins with "|"


def table_format(path: Path) -> str | None:
    """``parquet`` or ``csv`` for a table output (by its extension, any case), else ``None``."""
    suffix = path.suffix.lower()
    return suffix[1:] if suffix in TABLE_SUFFIXES else None


def arrow_schema(columns: Sequence[Column]) -> Any:
    """The Arrow schema of ``columns`` (a ``pyarrow.Schema``).

    Raises:
        InputError: pyarrow is not installed.
    """
    pa, _ = pyarrow_modules()
    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(),
             "float64": pa.float64(), "bool": pa.bool_(),
             "list<string>": pa.list_(pa.string())}  # fmt: skip
    return pa.schema([pa.field(name, types[kind]) for name, kind in columns])


class TableWriter:
    """Rows of one declared table, streamed to a temporary file in batches (Parquet or CSV)."""

    def __init__(self, path: Path, columns: Sequence[Column], fmt: str) -> None:
        self.path, self.columns, self.fmt = path, tuple(columns), fmt
        self.partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.rows: list[Mapping[str, Any]] = []
        self.count = 0
        self._parquet: Any = None
        self._handle: Any = None
        self._csv: Any = None
        if fmt == "parquet":
            _, pq = pyarrow_modules()
            self._schema = arrow_schema(columns)
            self._parquet = pq.ParquetWriter(self.partial, self._schema)
        else:
            self._handle = self.partial.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._handle)
            self._csv.writerow([name for name, _ in self.columns])
            self._lists = {
                n: _LIST_JOIN.get(n, "|") for n, kind in self.columns if kind.startswith("list")
            }
            self._bools = {n for n, kind in self.columns if kind == "bool"}

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one row (a value for every column); a full batch is written out."""
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the rows held so far as one batch (a Parquet row group, or CSV lines)."""
        if not self.rows:
            return
        self.count += len(self.rows)
        if self._parquet is not None:
            pa, _ = pyarrow_modules()
            batch = pa.RecordBatch.from_pylist(self.rows, schema=self._schema)
            self._parquet.write_batch(batch)
        else:
            self._csv.writerows(self._csv_row(r) for r in self.rows)
        self.rows = []

    def _csv_row(self, row: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, _ in self.columns:
            value = row[name]
            if value is None:
                out.append("")
            elif name in self._lists:
                out.append(self._lists[name].join(value))
            elif name in self._bools:
                out.append("true" if value else "false")
            else:
                out.append(value)
        return out

    def close(self) -> None:
        """Write what is left and close the temporary file (it stays at its temporary name)."""
        self.flush()
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Close quietly and remove the temporary file (nothing if it was committed)."""
        with suppress(Exception):
            if self._parquet is not None:
                self._parquet.close()
            if self._handle is not None:
                self._handle.close()
        with suppress(FileNotFoundError):
            self.partial.unlink()


def commit_tables(writers: Sequence[TableWriter]) -> None:
    """Close every table, then move each to its name (nothing is replaced before all are whole)."""
    for writer in writers:
        writer.close()
    for writer in writers:
        os.replace(writer.partial, writer.path)


def check_table_format(path: Path) -> str:
    """:func:`table_format` of a path that must be a table.

    Raises:
        InputError: ``path`` is not ``.parquet`` or ``.csv``.
    """
    fmt = table_format(path)
    if fmt is None:
        raise InputError(f"{str(path)!r} is not a table output",
                         fix="name the output .parquet or .csv")  # fmt: skip
    return fmt

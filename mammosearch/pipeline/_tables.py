"""Streaming tables over declared columns: Parquet (pyarrow) or CSV (the standard library).

A table is declared as ``(name, type)`` columns with Arrow's type names (``string``, ``int32``,
``int64``, ``float64``, ``bool``, ``list<string>``). Rows are written in batches of
:data:`BATCH_ROWS` to a temporary name, and :func:`commit_tables` moves every table of a job to
its name only when all are complete. In CSV, list columns are joined (``warnings`` with
``" | "``, every other with ``"|"``), booleans are ``true``/``false`` and a missing value is an
empty cell.

A row is held as its cells in column order, as :class:`CellEncoder` makes them: the values
themselves for Parquet (a batch becomes one Arrow array per column), the CSV cells for CSV. The
encoder is a small picklable object, so that the processes that make the rows (the normalize
job's workers) also encode them, and the writer only appends (:meth:`TableWriter.append`).
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
    "CellEncoder",
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


class CellEncoder:
    """A row's values (in column order) → the cells a :class:`TableWriter` holds.

    For Parquet the values as they are; for CSV the list and bool columns as text (a missing
    value is left ``None``, which the csv module writes as an empty cell). Picklable, so that
    worker processes encode the rows they make.

    Args:
        columns: The table's columns.
        fmt: ``parquet`` or ``csv``.
    """

    def __init__(self, columns: Sequence[Column], fmt: str) -> None:
        self.fmt = fmt
        self._lists = tuple(
            (i, _LIST_JOIN.get(name, "|"))
            for i, (name, kind) in enumerate(columns)
            if kind.startswith("list")
        )
        self._bools = tuple(i for i, (_, kind) in enumerate(columns) if kind == "bool")

    def __call__(self, values: list[Any]) -> list[Any]:
        """The cells of one row (``values``: one per column, in order; for CSV changed in
        place)."""
        cells = values
        if self.fmt == "parquet":
            return cells
        for i, joiner in self._lists:
            if cells[i] is not None:
                cells[i] = joiner.join(cells[i])
        for i in self._bools:
            if cells[i] is not None:
                cells[i] = "true" if cells[i] else "false"
        return cells


class TableWriter:
    """Rows of one declared table, streamed to a temporary file in batches (Parquet or CSV)."""

    def __init__(self, path: Path, columns: Sequence[Column], fmt: str) -> None:
        self.path, self.columns, self.fmt = path, tuple(columns), fmt
        self.names = tuple(name for name, _ in self.columns)
        self.encode = CellEncoder(self.columns, fmt)
        self.partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.rows: list[Sequence[Any]] = []
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
            self._csv.writerow(self.names)

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one row (a value for every column); a full batch is written out."""
        self.append(self.encode([row[name] for name in self.names]))

    def append(self, cells: Sequence[Any]) -> None:
        """Add one row as :attr:`encode` made it (in this process or in a worker)."""
        self.rows.append(cells)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the rows held so far as one batch (a Parquet row group, or CSV lines)."""
        if not self.rows:
            return
        self.count += len(self.rows)
        if self._parquet is not None:
            pa, _ = pyarrow_modules()
            columns = zip(*self.rows, strict=True)
            arrays = [pa.array(values, type=field.type)
                      for values, field in zip(columns, self._schema, strict=True)]  # fmt: skip
            self._parquet.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        else:
            self._csv.writerows(self.rows)
        self.rows = []

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

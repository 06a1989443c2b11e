"""Parquet tables: report tables and manifests as input, and the shards of Ray batch jobs.

pyarrow is optional (the ``distributed`` extra brings it): it is imported only when a
``.parquet`` file is read or written, and its absence is a clear :class:`InputError`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mammosearch.errors import InputError

__all__ = ["INSTALL_HINT", "iter_parquet_rows", "pyarrow_modules", "write_table_atomic"]

INSTALL_HINT = "pip install 'mammosearch[distributed]'"


def pyarrow_modules() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, imported on first use.

    Raises:
        InputError: pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise InputError("reading or writing Parquet needs pyarrow", fix=INSTALL_HINT) from e
    return pyarrow, pyarrow.parquet


def iter_parquet_rows(
    path: Path, columns: Sequence[str] | None = None, *, required: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    """Stream the rows of a Parquet file as dicts, one record batch at a time.

    Args:
        path: The ``.parquet`` file.
        columns: Columns to read (those present); all when ``None``.
        required: Columns that must be present.

    Raises:
        InputError: pyarrow is missing, the file is not Parquet, or a required column is absent.
    """
    pa, pq = pyarrow_modules()
    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise InputError(
            f"{path.name} cannot be read as Parquet ({type(e).__name__})",
            fix="pass a Parquet file written by pyarrow, pandas or Spark",
        ) from None
    names = list(handle.schema_arrow.names)
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(
            f"the Parquet file has no column {missing[0]!r} "
            f"(columns: {', '.join(names) or 'none'})",
            fix="name the column with the matching option",
        )
    wanted = [c for c in columns if c in names] if columns is not None else names
    with handle:
        for batch in handle.iter_batches(columns=wanted, batch_size=4096):
            yield from batch.to_pylist()


def write_table_atomic(table: Any, path: Path) -> None:
    """Write a pyarrow table to ``path`` whole or not at all (a temporary name, then rename)."""
    _, pq = pyarrow_modules()
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)

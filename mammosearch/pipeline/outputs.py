"""Where jobs write: each output path checked before any work, so that a mistake in ``-o``
costs nothing and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

from mammosearch.errors import InputError

__all__ = ["check_output_file"]


def check_output_file(path: Path, *, what: str = "output") -> None:
    """Check that a file can be written at ``path`` (named as the user gave it).

    A folder that does not exist yet is fine when it can be made (the writer makes it).

    Raises:
        InputError: ``path`` is a directory, a file stands where its folder should be, or the
            folder (or an existing file there) cannot be written.
    """
    shown = str(path)
    if path.is_dir():
        example = str(path / "normalized.jsonl")
        raise InputError(f"{what} {shown!r} is a directory", fix=f"give a file, e.g. {example!r}")
    folder = path.absolute().parent
    while not folder.exists():  # the first folder that is there must take the new ones
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"the folder of {what} {shown!r} is a file",
                         fix="write elsewhere")  # fmt: skip
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{what} {shown!r} cannot be written (permission denied)",
                         fix="write to a folder you can write to")  # fmt: skip

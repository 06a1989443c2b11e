"""The build journal: what an interrupted ``index build`` had read, so ``--resume`` goes on.

One ``.npz`` per manifest row (thumbnail, embedder input, scrubbed report text and its
normalized form, orientation; or the error that skipped it) in ``.<index>.journal/`` beside the
index, each written to a temporary name and renamed, so a kill leaves only whole entries. The
journal belongs to one set of inputs and options (a key over the manifest's bytes, the embedder
and the privacy options): a resume with anything else starts over. A finished build deletes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Journal"]

logger = logging.getLogger(__name__)


class Journal:
    """Per-row results of a build, kept until the build commits.

    Args:
        out: The index directory being built.
        key: What the results depend on (inputs and options).
        resume: Use what an earlier run with the same key recorded; else start empty.
    """

    def __init__(self, out: Path, key: str, *, resume: bool) -> None:
        self.folder = out.parent / f".{out.name}.journal"
        self.resumed = 0
        meta = self.folder / "meta.json"
        if self.folder.exists() and resume:
            try:
                same = json.loads(meta.read_text(encoding="utf-8")).get("key") == key
            except (OSError, ValueError):
                same = False
            if not same:
                logger.warning("the interrupted build had other inputs or options: starting over")
                resume = False
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"key": key}), encoding="utf-8")

    @staticmethod
    def key(manifest: Path, **options: Any) -> str:
        """The key of a build: the manifest's bytes and the options, hashed."""
        digest = hashlib.sha256(manifest.read_bytes())
        digest.update(json.dumps(options, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def has(self, number: int) -> bool:
        """Whether a row was recorded."""
        return (self.folder / f"{number}.npz").is_file()

    def load(self, number: int) -> dict[str, Any] | None:
        """What was recorded for a row, or ``None``."""
        path = self.folder / f"{number}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError):  # not expected (entries are renamed in whole)
            return None
        self.resumed += 1
        return entry

    def save(self, number: int, **arrays: Any) -> None:
        """Record a row (arrays and strings only)."""
        partial = self.folder / f"{number}.partial.npz"
        values = {k: np.asarray(v) for k, v in arrays.items()}
        np.savez(partial, **values)  # type: ignore[arg-type]  # (numpy's stub: allow_pickle)
        os.replace(partial, self.folder / f"{number}.npz")

    def close(self) -> None:
        """The build committed: forget it."""
        shutil.rmtree(self.folder, ignore_errors=True)

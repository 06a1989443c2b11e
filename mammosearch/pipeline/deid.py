"""``deid``: de-identify a folder of DICOMs with a key from a file, the settings, or at random."""

from __future__ import annotations

import logging
from pathlib import Path

from mammosearch.config import Settings
from mammosearch.deid import DeidReport, deidentify_tree
from mammosearch.errors import InputError

__all__ = ["deidentify", "read_key"]

logger = logging.getLogger(__name__)

_MIN_KEY = 16


def read_key(key_file: Path | None, settings: Settings) -> str | None:
    """The pseudonym key: ``key_file``'s text, else ``MAMMOSEARCH_DEID_KEY``, else ``None``
    (a random key, with a warning that pseudonyms will not match other runs').

    Raises:
        InputError: The key file cannot be read or holds too short a key.
    """
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            what = f"the key file cannot be read ({type(e).__name__})"
            raise InputError(what, fix="give a UTF-8 text file holding the key") from None
        if len(key) < _MIN_KEY:
            fix = "use a long random key, e.g. `openssl rand -hex 32`"
            raise InputError(f"the key file holds fewer than {_MIN_KEY} characters", fix=fix)
        return key
    if (secret := settings.deid_key) is not None and secret.get_secret_value():
        return secret.get_secret_value()
    logger.warning("no key given: a random one is used, so pseudonyms will not match "
                   "those of other runs (--key-file or MAMMOSEARCH_DEID_KEY)")  # fmt: skip
    return None


def deidentify(
    source: Path,
    output: Path,
    *,
    settings: Settings,
    key_file: Path | None = None,
    allow_secondary_capture: bool = False,
    progress: bool = False,
) -> DeidReport:
    """De-identify every DICOM under ``source`` into ``output`` (:func:`~mammosearch.deid.
    deidentify_tree`), with the key of :func:`read_key`.

    Raises:
        InputError: The key file is unusable, or ``source`` is not a folder.
    """
    return deidentify_tree(source, output, key=read_key(key_file, settings), progress=progress,
                           allow_secondary_capture=allow_secondary_capture)  # fmt: skip

"""The exceptions mammosearch raises, with stable user-facing codes.

Every error the library raises on purpose derives from :class:`MammosearchError`::

    MammosearchError (E000)
    ├── ConfigError (E010)             settings file / environment / option values
    ├── InputError (E020)              unusable input: missing file, unknown format, bad column
    │   ├── InvalidDicomError (E021)   a file that is not a readable mammography image
    │   └── ReportParseError (E022)    a report that cannot be decoded or parsed
    │       └── ReportDecodeError (E023)   report bytes that are not text (binary, an image, a
    │                                      document) or in no encoding that fits
    ├── ModelLoadError (E030)          weights or configs that cannot be found or loaded
    ├── RegistryError (E040)           unknown or duplicate embedder / classifier name
    ├── IndexIntegrityError (E050)     checksum, id-alignment or provenance mismatch
    ├── PHILeakError (E060)            patient data about to leave through a log or output
    └── RecordedError (E001)           a row's error as an earlier run recorded it (its own code)

Messages say what failed, the offending non-PHI value and the fix. They never contain
report text, names, identifiers or UIDs. The CLI maps :class:`IndexIntegrityError` to exit
code 2 and every other :class:`MammosearchError` to exit code 1.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "IndexIntegrityError",
    "InputError",
    "InvalidDicomError",
    "MammosearchError",
    "ModelLoadError",
    "PHILeakError",
    "RecordedError",
    "RegistryError",
    "ReportDecodeError",
    "ReportParseError",
]


class MammosearchError(Exception):
    """Base class of every error mammosearch raises on purpose.

    Args:
        message: What failed and the non-PHI value that caused it.
        fix: What the user should do instead, appended to the message.
    """

    code = "E000"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ConfigError(MammosearchError):
    """A settings file, environment variable or option value is invalid."""

    code = "E010"


class InputError(MammosearchError):
    """An input file or record is missing, of an unknown format or malformed."""

    code = "E020"


class InvalidDicomError(InputError):
    """A file is not a readable mammography image (corrupt, truncated, not MG)."""

    code = "E021"


class ReportParseError(InputError):
    """A report cannot be decoded or parsed."""

    code = "E022"


class ReportDecodeError(ReportParseError):
    """Report bytes are not text: binary data, an image or document, or no encoding fits."""

    code = "E023"


class ModelLoadError(MammosearchError):
    """Model weights or configuration cannot be found or loaded."""

    code = "E030"


class RegistryError(MammosearchError):
    """A registry name is unknown, ambiguous or registered twice."""

    code = "E040"


class IndexIntegrityError(MammosearchError):
    """A persisted index fails its checksum, alignment or provenance checks."""

    code = "E050"


class PHILeakError(MammosearchError):
    """Protected health information was about to be logged, stored or shown."""

    code = "E060"


class RecordedError(MammosearchError):
    """A row's error as an earlier run recorded it (same code and message): a resumed build's
    journal or a Ray job's shard gives back the error, not the exception."""

    code = "E001"  # each instance carries the recorded error's own code

    def __init__(self, code: str, text: str) -> None:
        self._text = text
        self.code = code
        super().__init__(text)

    def __str__(self) -> str:
        return self._text

from __future__ import annotations

import pytest

from mammosearch import errors
from mammosearch.errors import (
    ConfigError,
    IndexIntegrityError,
    InputError,
    InvalidDicomError,
    MammosearchError,
    ModelLoadError,
    PHILeakError,
    RegistryError,
    ReportDecodeError,
    ReportParseError,
)


@pytest.mark.parametrize(
    ("cls", "code", "parent"),
    [
        (ConfigError, "E010", MammosearchError),
        (InputError, "E020", MammosearchError),
        (InvalidDicomError, "E021", InputError),
        (ReportParseError, "E022", InputError),
        (ReportDecodeError, "E023", ReportParseError),
        (ModelLoadError, "E030", MammosearchError),
        (RegistryError, "E040", MammosearchError),
        (IndexIntegrityError, "E050", MammosearchError),
        (PHILeakError, "E060", MammosearchError),
    ],
)
def test_codes_and_tree(cls: type[MammosearchError], code: str, parent: type) -> None:
    assert cls.code == code
    assert issubclass(cls, parent)
    assert cls.__name__ in (errors.__doc__ or "")  # the tree is drawn in the docstring


def test_message_carries_code_and_fix() -> None:
    e = ConfigError("workers must be positive", fix="pass --workers 1 or more")
    assert str(e) == "E010: workers must be positive (fix: pass --workers 1 or more)"
    assert e.message == "workers must be positive"
    assert str(ReportParseError("bad")) == "E022: bad"


def test_codes_are_unique() -> None:
    codes = [getattr(errors, name).code for name in errors.__all__]
    assert len(codes) == len(set(codes))

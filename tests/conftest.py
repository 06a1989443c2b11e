"""Shared fixtures: paths to ../shared/data (skipped when absent) and the PHI canary."""
# ruff: noqa: E402

from __future__ import annotations

import os

# The default test run is offline: the Hugging Face libraries must not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A fake patient identity planted in test reports: it must never reach a log or an error.
PHI_CANARY = "Zebulon QUIXOTEVANS MRN 99-CANARY-4417"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data/{'/'.join(parts)} is not available on this machine")
    return path


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as a CSV manifest (columns of the first row); returns ``path``."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_gold(folder: Path) -> list[dict[str, Any]]:
    """The gold.jsonl rows of a shared report folder."""
    with (folder / "gold.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture
def phi_canary() -> str:
    return PHI_CANARY


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a real PostgreSQL server started for this test session."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str | None:
    """Each case-store backend in turn: ``None`` (SQLite in the index) or a PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the golden files from the current output instead of comparing.",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BiomedCLIP-family model in the hub layout (see ``tests/tinyclip.py``)."""
    from tests.tinyclip import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_biomedclip"))

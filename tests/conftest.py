"""Shared fixtures: paths to ../shared/data (skipped when absent) and the PHI canary.

The opt-in markers skip here: ``gpu`` without a CUDA device, ``weights`` without the real
BiomedCLIP weights in the local Hugging Face cache (the test run never downloads them).
"""
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


def _biomedclip_cached() -> bool:
    """Whether the real BiomedCLIP weights are in the Hugging Face cache (``HF_HUB_CACHE``)."""
    from huggingface_hub import try_to_load_from_cache

    from mammosearch.embeddings.biomedclip import DEFAULT_BIOMEDCLIP

    repo = DEFAULT_BIOMEDCLIP.removeprefix("hf-hub:")
    cache = os.environ.get("HF_HUB_CACHE") or None
    files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    return any(isinstance(try_to_load_from_cache(repo, f, cache_dir=cache), str) for f in files)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device (marker gpu)")
    if item.get_closest_marker("weights") is not None and not _biomedclip_cached():
        pytest.skip("needs the real BiomedCLIP weights in the Hugging Face cache (marker weights)")


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

"""A real server for the UI tests: the synthetic demo index, served on a free local port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mammosearch.config import Settings, load_settings


@dataclass
class Served:
    url: str
    port: int
    engine: Any
    app: Any
    settings: Settings


@pytest.fixture(scope="session")
def ui_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    cache = tmp_path_factory.mktemp("ui-cache")
    # one private upload folder for every app the tests start (serve() sets it only if unset)
    os.environ["GRADIO_TEMP_DIR"] = str(cache / "ui-files")
    return load_settings(None, cache_dir=cache)


@pytest.fixture(scope="session")
def demo_dir(ui_settings: Settings) -> Path:
    from mammosearch.pipeline import demo_index

    return demo_index(ui_settings, embedder="radiomics.v1")


def start(directory: Path, settings: Settings, **options: Any) -> Served:
    from mammosearch.pipeline import CaseService
    from mammosearch.ui import serve

    engine = CaseService(directory, settings=settings)
    app = serve(engine, settings, port=0, block=False, **options)
    return Served(app.local_url, app.server_port, engine, app, settings)


@pytest.fixture(scope="session")
def served(demo_dir: Path, ui_settings: Settings) -> Iterator[Served]:
    server = start(demo_dir, ui_settings, max_upload="2mb")
    yield server
    server.app.close()
    server.engine.close()


@pytest.fixture(scope="session")
def client(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mammosearch.ui.client import connect

    return connect(served.url, downloads=tmp_path_factory.mktemp("client-downloads"))


@pytest.fixture(scope="session")
def query_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dense (C) phantom that is not in the demo index."""
    from PIL import Image

    from mammosearch.samples.phantoms import phantom

    path = tmp_path_factory.mktemp("query") / "query_RCC.png"
    Image.fromarray(phantom("C", "CC", "R", seed=424_242)).save(path)
    return path

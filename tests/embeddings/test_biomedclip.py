"""BiomedCLIP through the same code path as users, on a tiny random model of the same family."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from mammosearch.embeddings import create_embedder
from mammosearch.embeddings.biomedclip import BiomedClipEmbedder
from mammosearch.errors import ConfigError, ModelLoadError
from tests.tinyclip import build_tiny_model


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> BiomedClipEmbedder:
    made = create_embedder("biomedclip.v1", source=f"local-dir:{tiny_model_dir}", device="cpu")
    assert isinstance(made, BiomedClipEmbedder)
    return made


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((60 + 7 * i, 40 + 3 * i), dtype=np.float32) for i in range(n)]


def test_metadata(embedder: BiomedClipEmbedder, tiny_model_dir: Path) -> None:
    assert embedder.name == "biomedclip.v1" and embedder.supports_cross_modal
    assert embedder.dim == 16 and embedder.preprocess["size"] == 224
    assert embedder.preprocess["mean"][0] == pytest.approx(0.48145466)
    assert embedder.model_id == f"local-dir:{tiny_model_dir}"
    assert embedder.weights_path is not None and embedder.weights_path.suffix == ".safetensors"
    assert embedder.weights_sha256 is not None and len(embedder.weights_sha256) == 64


def test_shapes_normalisation_and_determinism(embedder: BiomedClipEmbedder) -> None:
    batch = images(5)
    a = embedder.embed_images(batch)
    b = embedder.embed_images(batch)
    assert a.shape == (5, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    t = embedder.embed_texts(["spiculated mass left breast", "negative", "acr c dense"])
    assert t.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_images([]).shape == (0, 16)


def test_batch_of_16_equals_16_single_calls(embedder: BiomedClipEmbedder) -> None:
    batch = images(16, seed=3)
    together = embedder.embed_images(batch)
    alone = np.concatenate([embedder.embed_images([img]) for img in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    texts = [f"birads {i} mass" for i in range(16)]
    np.testing.assert_allclose(
        embedder.embed_texts(texts),
        np.concatenate([embedder.embed_texts([t]) for t in texts]),
        atol=1e-5,
    )


def test_cross_modal_similarity(embedder: BiomedClipEmbedder) -> None:
    sims = embedder.embed_images(images(3)) @ embedder.embed_texts(["mass", "calcification"]).T
    assert sims.shape == (3, 2) and np.all(np.abs(sims) <= 1.0 + 1e-5)


def test_truncation_warns(embedder: BiomedClipEmbedder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mammosearch")
    long_text = "mass " * 400
    vec = embedder.embed_texts([long_text, "mass"])
    assert vec.shape == (2, 16)
    assert any("exceed the 256-token context" in r.getMessage() for r in caplog.records)
    assert all("mass mass" not in r.getMessage() for r in caplog.records)


def test_text_tower_named_by_hub_id_reads_from_the_folder(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "m", hub_text_name="microsoft/not-downloadable")
    made = BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")
    assert made.embed_texts(["mass"]).shape == (1, 16)


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("microsoft/BiomedCLIP", ConfigError, "no 'hf-hub:' or 'local-dir:' prefix"),
        ("local-dir:/nonexistent/model", ModelLoadError, "no open_clip_config.json"),
        ("hf-hub:nobody/not-a-model-xyz", ModelLoadError, "local-dir:PATH"),
    ],
)
def test_load_errors_say_what_to_do(source: str, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        BiomedClipEmbedder(source, device="cpu")
    assert message in str(info.value)


def test_missing_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "open_clip_config.json").write_bytes(
        (tiny_model_dir / "open_clip_config.json").read_bytes()
    )
    with pytest.raises(ModelLoadError, match="no weights"):
        BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")


def test_auto_falls_back_to_the_baseline(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mammosearch")
    made = create_embedder("auto", source="local-dir:/nonexistent/model")
    assert made.name == "radiomics.v1"
    assert any("weight-free radiomics.v1 baseline" in r.getMessage() for r in caplog.records)


def test_auto_prefers_biomedclip(tiny_model_dir: Path) -> None:
    assert create_embedder("auto", source=f"local-dir:{tiny_model_dir}").name == "biomedclip.v1"


def test_auto_reads_the_hub_cache_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "hub" / "models--microsoft--BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    build_tiny_model(repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    made = create_embedder("auto")
    assert made.name == "biomedclip.v1"
    assert made.model_id == "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    # nothing cached and no hub (the tests run with HF_HUB_OFFLINE=1): the baseline, without
    # trying to download
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    caplog.set_level(logging.WARNING)
    assert create_embedder("auto").name == "radiomics.v1"
    assert "the hub cannot be reached" in caplog.text

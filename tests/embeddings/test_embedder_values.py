"""Values of the ``convnext.v1`` and ``biomedclip.v1`` embedders against plain library calls.

Fast (seconds, CPU, one torch thread) so that ``bench/mutation.py`` can run it for each mutant.
The ConvNeXt model directory is written here by hand (timm's ``test_convnext``, random
weights, the format ``train-density`` writes) and its vectors are compared with a plain timm
forward pass: the tissue square, normalised with the directory's own mean and std, through
``model(x)`` with a hook on the classifier's input (the pooled, normed, pre-logit features),
L2-normalised. The BiomedCLIP checks use the tiny model of ``tests/tinyclip.py`` (the session
fixture ``tiny_model_dir``) and read its files, tokenizer and config directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mammosearch.embeddings import create_embedder
from mammosearch.embeddings.biomedclip import BiomedClipEmbedder, _local_text_cfg
from mammosearch.embeddings.convnext import ConvNeXtEmbedder
from mammosearch.embeddings.radiomics import RadiomicsEmbedder
from mammosearch.errors import ModelLoadError
from mammosearch.imaging import tissue_square
from mammosearch.samples.phantoms import phantom

ARCH = "test_convnext"  # timm's smallest ConvNeXt


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def breasts(n: int) -> list[np.ndarray]:
    """MLO and CC phantoms of mixed densities, 160×120 (MLO views have a pectoral muscle)."""
    views = [phantom("ABCD"[i % 4], ("MLO", "CC")[i % 2], "R", seed=70 + i) for i in range(n)]
    return [(v.astype(np.float32) / 255).reshape(160, 4, 120, 4).mean(axis=(1, 3)) for v in views]


def write_model(folder: Path, config: dict[str, Any], seed: int = 0) -> Any:
    """A random ``test_convnext`` density model directory; returns the network."""
    import timm
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = timm.create_model(ARCH, pretrained=False, in_chans=1, num_classes=3).eval()
    with torch.no_grad():  # timm starts biases at 0, and the stem's LayerNorm then cancels any
        for p in model.parameters():  # scale of the input: a wrong std would go unseen
            p.add_(0.1 * torch.randn_like(p))
    save_file(model.state_dict(), str(folder / "model.safetensors"))
    base = {"format": "mammosearch.convnext_density.v1", "arch": ARCH, "labels": ["A", "B", "C"]}
    (folder / "config.json").write_text(json.dumps({**base, **config}), encoding="utf-8")
    return model


def plain_features(model: Any, images: list[np.ndarray], size: int, mean: float, std: float,
                   without_pectoral: bool) -> np.ndarray:  # fmt: skip
    """The classifier layer's input of a plain ``model(x)``, L2-normalised."""
    import torch

    squares = np.stack([tissue_square(i, size, without_pectoral=without_pectoral) for i in images])
    captured: list[np.ndarray] = []
    hook = model.get_classifier().register_forward_hook(
        lambda _m, inputs, _o: captured.append(inputs[0].detach().numpy().copy())
    )
    try:
        with torch.no_grad():
            model((torch.from_numpy(squares[:, None]) - mean) / std)
    finally:
        hook.remove()
    features = np.concatenate(captured)
    return np.asarray(features / np.linalg.norm(features, axis=1, keepdims=True))


@pytest.mark.parametrize("without_pectoral", [True, False])
def test_convnext_vectors_are_a_plain_timm_forward(tmp_path: Path, without_pectoral: bool) -> None:
    prep = {"size": 40, "mean": 0.3, "std": 0.2, "without_pectoral": without_pectoral}
    model = write_model(tmp_path / "m", {"image_size": 64, "preprocessing": prep})
    images = breasts(5)
    embedder = ConvNeXtEmbedder(f"local-dir:{tmp_path / 'm'}", batch_size=2)  # 2 + 2 + 1
    vectors = embedder.embed_images(images)
    assert vectors.dtype == np.float32 and vectors.shape == (5, model.num_features)
    expected = plain_features(model, images, 40, 0.3, 0.2, without_pectoral)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # the images differ to the network, and the pectoral muscle changes the MLO vectors
    assert np.min(expected @ expected.T) < 0.99
    other = plain_features(model, images[:1], 40, 0.3, 0.2, not without_pectoral)
    assert float(other[0] @ expected[0]) < 0.99999


def test_convnext_defaults_of_a_config_without_preprocessing(tmp_path: Path) -> None:
    model = write_model(tmp_path / "a", {"image_size": 36})
    embedder = ConvNeXtEmbedder(str(tmp_path / "a"), batch_size=0)  # a plain path works too
    assert embedder.preprocess == {"size": 36, "mean": 0.5, "std": 0.25, "without_pectoral": False,
                                   "patch": 0}  # fmt: skip
    assert embedder.batch_size == 1
    images = breasts(2)
    np.testing.assert_allclose(
        embedder.embed_images(images),
        plain_features(model, images, 36, 0.5, 0.25, False),
        atol=1e-5,
    )
    write_model(tmp_path / "b", {"preprocessing": {"mean": 0.4}})
    assert ConvNeXtEmbedder(str(tmp_path / "b")).preprocess["size"] == 224


def test_convnext_metadata_and_texts(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    model = write_model(folder, {"image_size": 32})
    embedder = create_embedder("convnext.v1", source=f"local-dir:{folder}")
    assert isinstance(embedder, ConvNeXtEmbedder)
    assert embedder.model_id == f"local-dir:{folder}"
    assert embedder.weights_path == folder / "model.safetensors"
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert embedder.weights_sha256 == digest
    assert embedder.dim == model.num_features and embedder.batch_size == 16
    assert not embedder.supports_cross_modal
    empty = embedder.embed_images([])
    assert empty.shape == (0, embedder.dim) and empty.dtype == np.float32
    texts = ["spiculated mass left breast", "negative"]
    baseline = RadiomicsEmbedder()
    assert embedder.text_dim == baseline.text_dim
    np.testing.assert_array_equal(embedder.embed_texts(texts), baseline.embed_texts(texts))


def test_convnext_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        ConvNeXtEmbedder(str(tmp_path / "missing"))
    assert "no ConvNeXt density model in 'missing'" in str(info.value)
    assert info.value.fix == "pass the directory that 'mammosearch train-density' wrote"
    only_config = tmp_path / "c"
    write_model(only_config, {})
    (only_config / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no ConvNeXt density model"):
        ConvNeXtEmbedder(str(only_config))
    other = tmp_path / "o"
    write_model(other, {"format": "something.else"})
    with pytest.raises(ModelLoadError, match="'o' holds another kind of model"):
        ConvNeXtEmbedder(str(other))
    wrong = tmp_path / "w"
    write_model(wrong, {"labels": ["A", "B"]})  # weights for 3 classes, config for 2
    with pytest.raises(ModelLoadError) as info:
        ConvNeXtEmbedder(str(wrong))
    assert info.value.message == "the ConvNeXt weights do not match their config"
    with pytest.raises(ModelLoadError) as info:
        create_embedder("convnext.v1")
    assert "needs a trained model directory" in str(info.value)
    assert "--model DIR" in (info.value.fix or "")


# --- biomedclip.v1 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tiny_model_dir: Path) -> BiomedClipEmbedder:
    return BiomedClipEmbedder(f"local-dir:{tiny_model_dir}", device="cpu", batch_size=2)


def test_biomedclip_weights_hash_and_setup(clip: BiomedClipEmbedder, tiny_model_dir: Path) -> None:
    import torch

    weights = tiny_model_dir / "open_clip_model.safetensors"
    assert clip.weights_path == weights
    assert clip.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert clip.device == torch.device("cpu") and not clip.half and clip.dtype == torch.float32
    assert not clip.resize_on_device and clip.batch_size == 2
    assert clip.context_length == 256 and clip.dim == clip.text_dim == 16
    assert clip.logit_scale == pytest.approx(1 / 0.07)  # open_clip's initial temperature
    assert clip.preprocess == {
        "size": 224,
        "mean": pytest.approx([0.48145466, 0.4578275, 0.40821073]),
        "std": pytest.approx([0.26862954, 0.26130258, 0.27577711]),
    }


def test_biomedclip_from_model_and_its_defaults(tiny_model_dir: Path) -> None:
    """A model without a preprocessing config or logit scale gets open_clip's defaults, and
    ``from_model`` vectors equal the loaded embedder's."""
    import open_clip
    import torch

    source = f"local-dir:{tiny_model_dir}"
    model, _ = open_clip.create_model_from_pretrained(source, device="cpu")
    tokenizer = open_clip.get_tokenizer(source)
    loaded = BiomedClipEmbedder(source, device="cpu", batch_size=3)
    wrapped = BiomedClipEmbedder.from_model(model, tokenizer, model_id="tiny", batch_size=0)
    assert wrapped.model_id == "tiny" and wrapped.weights_path is None
    assert wrapped.weights_sha256 is None and wrapped.batch_size == 1
    assert wrapped.dtype == torch.float32 and wrapped.device == torch.device("cpu")
    images = [np.linspace(0, 1, 50 * 40, dtype=np.float32).reshape(50, 40) ** k for k in (1, 2, 3)]
    np.testing.assert_allclose(wrapped.embed_images(images), loaded.embed_images(images), atol=1e-5)
    texts = ["mass", "dense breast", "no mass"]
    np.testing.assert_allclose(wrapped.embed_texts(texts), loaded.embed_texts(texts), atol=1e-5)
    del model.visual.preprocess_cfg
    del model.logit_scale
    bare = BiomedClipEmbedder.from_model(model, object(), model_id="bare", half=True)
    assert bare.preprocess == {
        "size": 224,
        "mean": pytest.approx([0.48145466, 0.4578275, 0.40821073]),
        "std": pytest.approx([0.26862954, 0.26130258, 0.27577711]),
    }
    assert bare.logit_scale == 100.0 and bare.context_length == 256 and bare.batch_size == 16
    assert bare.half and bare.dtype == torch.bfloat16  # reduced precision on the CPU: bf16


def test_biomedclip_batches_do_not_change_vectors(clip: BiomedClipEmbedder) -> None:
    rng = np.random.default_rng(5)
    images = [rng.random((30 + 5 * i, 20 + 3 * i), dtype=np.float32) for i in range(5)]
    together = clip.embed_images(images)  # batches of 2, 2, 1
    alone = np.concatenate([clip.embed_images([img]) for img in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    texts = ["mass", "left breast", "grouped calcifications", "negative", "acr c"]
    np.testing.assert_allclose(
        clip.embed_texts(texts),
        np.concatenate([clip.embed_texts([t]) for t in texts]),
        atol=1e-5,
    )
    for empty in (clip.embed_texts([]), clip.embed_images([])):
        assert empty.shape == (0, 16) and empty.dtype == np.float32


def test_biomedclip_truncation_warning_counts(
    clip: BiomedClipEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """256 token ids ([CLS], 254 words, [SEP]) fit the context; 257 are truncated."""
    caplog.set_level(logging.WARNING, logger="mammosearch")
    clip.embed_texts(["mass " * 254, "mass"])
    assert not caplog.records
    clip.embed_texts(["mass " * 255, "mass " * 300, "mass"])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["2 of 3 texts exceed the 256-token context and were truncated"]


def test_biomedclip_local_text_config(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "open_clip_config.json").read_text(encoding="utf-8"))
    config["model_cfg"]["text_cfg"]["hf_model_name"] = "microsoft/not-here"
    folder = tmp_path / "m"
    folder.mkdir()
    path = folder / "open_clip_config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert _local_text_cfg(folder, path) is None  # no config.json of the text tower
    (folder / "config.json").write_text("{}", encoding="utf-8")
    text_cfg = _local_text_cfg(folder, path)
    expected = dict(config["model_cfg"]["text_cfg"])
    expected.update(hf_model_name=str(folder), hf_tokenizer_name=str(folder))
    assert text_cfg == {**expected, "hf_model_pretrained": False}
    config["model_cfg"]["text_cfg"]["hf_model_name"] = str(tiny_model_dir)  # a local folder
    path.write_text(json.dumps(config), encoding="utf-8")
    assert _local_text_cfg(folder, path) is None
    path.write_text(json.dumps({"model_cfg": {}}), encoding="utf-8")
    assert _local_text_cfg(folder, path) is None
    path.write_text("{}", encoding="utf-8")
    assert _local_text_cfg(folder, path) is None


def test_biomedclip_load_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        BiomedClipEmbedder(f"local-dir:{tmp_path / 'none'}", device="cpu")
    assert "no open_clip_config.json in the model folder 'none'" in str(info.value)
    assert info.value.fix == (
        "download the model repository (config, weights, tokenizer) into the folder"
    )
    folder = tmp_path / "noweights"
    folder.mkdir()
    config = (tiny_model_dir / "open_clip_config.json").read_bytes()
    (folder / "open_clip_config.json").write_bytes(config)
    with pytest.raises(ModelLoadError) as info:
        BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")
    assert (
        "no weights (open_clip_model.safetensors or open_clip_pytorch_model.bin) in the model "
        "folder 'noweights'" in str(info.value)
    )
    (folder / "open_clip_pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError) as info:
        BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")
    assert f"cannot load the BiomedCLIP model local-dir:{folder} (" in str(info.value)
    assert "(NoneType)" not in str(info.value)  # the error's own type
    assert info.value.fix == "check that the folder holds a complete open_clip model"
    with pytest.raises(ModelLoadError) as info:
        BiomedClipEmbedder("hf-hub:nobody/not-a-model-xyz", device="cpu")
    assert "cannot load the BiomedCLIP model hf-hub:nobody/not-a-model-xyz (" in str(info.value)
    assert info.value.fix == (
        "these machines may not reach the Hugging Face Hub: download nobody/not-a-model-xyz "
        "once and pass local-dir:PATH (open_clip_config.json, weights, tokenizer and the text "
        "tower's config.json), or fill the Hugging Face cache"
    )


def test_biomedclip_reads_the_models_own_preprocessing(tiny_model_dir: Path) -> None:
    """Another open_clip model's size (as a pair), mean and std: the images are normalised with
    them (224-pixel squares, so the resize changes nothing) before ``encode_image``."""
    import open_clip
    import torch

    source = f"local-dir:{tiny_model_dir}"
    model, _ = open_clip.create_model_from_pretrained(source, device="cpu")
    model.visual.preprocess_cfg = {"size": [224, 224], "mean": [0.5, 0.4, 0.3], "std": [0.2] * 3}
    made = BiomedClipEmbedder.from_model(model, open_clip.get_tokenizer(source), model_id="m")
    assert made.preprocess == {
        "size": 224,
        "mean": [0.5, 0.4, 0.3],
        "std": pytest.approx([0.2] * 3),
    }
    rng = np.random.default_rng(9)
    images = [(np.round(rng.random((224, 224)) * 255) / 255).astype(np.float32) for _ in range(3)]
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    batch = torch.from_numpy(np.stack(images))[:, None].expand(-1, 3, -1, -1)
    with torch.inference_mode():
        expected = model.eval().encode_image((batch - mean) / 0.2).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(made.embed_images(images), expected, atol=1e-5)


def test_biomedclip_tokenizer_context_and_a_plain_tokenizer(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The context length is the tokenizer's own; a tokenizer without an inner Hugging Face
    tokenizer (a plain callable) embeds the same, without the truncation check."""
    import open_clip

    source = f"local-dir:{tiny_model_dir}"
    model, _ = open_clip.create_model_from_pretrained(source, device="cpu")
    short = open_clip.get_tokenizer(source, context_length=8)
    made = BiomedClipEmbedder.from_model(model, short, model_id="m")
    assert made.context_length == 8
    caplog.set_level(logging.WARNING, logger="mammosearch")
    made.embed_texts(["mass " * 6, "mass " * 7])  # 8 and 9 token ids
    assert [r.getMessage() for r in caplog.records] == [
        "1 of 2 texts exceed the 8-token context and were truncated"
    ]
    full = open_clip.get_tokenizer(source)
    plain_call = lambda texts: full(texts)  # noqa: E731, PLW0108 (no inner .tokenizer)
    plain = BiomedClipEmbedder.from_model(model, plain_call, model_id="p")
    caplog.clear()
    texts = ["mass " * 300, "negative"]
    reference = BiomedClipEmbedder.from_model(model, full, model_id="r")
    np.testing.assert_allclose(plain.embed_texts(texts), reference.embed_texts(texts), atol=1e-6)
    assert len(caplog.records) == 1  # the reference's warning only


def test_biomedclip_refuses_pickled_objects_in_a_checkpoint(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """``weights_only``: a ``.bin`` checkpoint that holds an object besides tensors is refused."""
    import datetime
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    weights = load_file(str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_model.safetensors").unlink()
    checkpoint = {"state_dict": weights, "saved": datetime.date(2020, 1, 1)}
    torch.save(checkpoint, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot load the BiomedCLIP model"):
        BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")
    torch.save({"state_dict": weights}, folder / "open_clip_pytorch_model.bin")
    made = BiomedClipEmbedder(f"local-dir:{folder}", device="cpu")
    assert made.weights_path == folder / "open_clip_pytorch_model.bin"

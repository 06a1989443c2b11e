"""BiomedCLIP vectors equal open_clip's own path: the model's ``preprocess`` + ``encode_image``
and its tokenizer + ``encode_text``, loaded independently from the same folder.

The tiny model of ``tests/tinyclip.py`` has random weights: its images map to clearly different
directions (a missing mean/std normalisation moves them by cosine 0.2 to 1.2), but its random
text tower maps every text to nearly one direction (pairwise cosine above 0.9999). The text
checks therefore also compare the vectors with their mean over the batch removed, which is what
tells one text from another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mammosearch.embeddings.biomedclip import DEFAULT_BIOMEDCLIP, BiomedClipEmbedder

TEXTS = [
    "spiculated mass left breast",
    "negative",
    "acr c heterogeneously dense",
    "grouped pleomorphic calcifications right breast",
    "no suspicious mass",
]
SAME = 0.999  # the cosine every vector must reach against the reference
BF16 = 0.995  # bf16 keeps about 3 significant digits; measured 0.99995 on the tiny model


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray(np.sum(a * b, axis=1))


def smooth_images(n: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random images in [0, 1] on the 8-bit grid (so PIL's uint8 path sees the same)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.random((side, side)), 3.0)
        field = (field - field.min()) / (field.max() - field.min())
        out.append((np.round(field * 255) / 255).astype(np.float32))
    return out


def reference_images(model: Any, preprocess: Any, images: list[np.ndarray]) -> np.ndarray:
    """open_clip's own image path: PIL RGB → the model's transform → ``encode_image``."""
    import torch
    from PIL import Image

    pils = [Image.fromarray(np.round(img * 255).astype(np.uint8)).convert("RGB") for img in images]
    with torch.inference_mode():
        batch = torch.stack([preprocess(p) for p in pils])
        return np.asarray(model.encode_image(batch).float().numpy())


def reference_texts(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.asarray(model.encode_text(tokenizer(texts)).float().numpy())


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> tuple[Any, Any, Any]:
    import open_clip

    source = f"local-dir:{tiny_model_dir}"
    model, preprocess = open_clip.create_model_from_pretrained(source, device="cpu")
    return model.eval(), preprocess, open_clip.get_tokenizer(source)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> BiomedClipEmbedder:
    return BiomedClipEmbedder(f"local-dir:{tiny_model_dir}", device="cpu", half=False)


def check_images(embedder: BiomedClipEmbedder, model: Any, preprocess: Any) -> None:
    for side in (224, 448):  # the model's size, and one that both paths must resize
        images = smooth_images(4, side, seed=side)
        ours = embedder.embed_images(images)
        ref = reference_images(model, preprocess, images)
        assert np.all(cosines(ours, ref) >= SAME), (side, cosines(ours, ref))
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def check_texts(embedder: BiomedClipEmbedder, model: Any, tokenizer: Any, *, same: float) -> None:
    ours = embedder.embed_texts(TEXTS)
    ref = reference_texts(model, tokenizer, TEXTS)
    assert np.all(cosines(ours, ref) >= same), cosines(ours, ref)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    centred = cosines(ours - ours.mean(0), unit - unit.mean(0))
    assert np.all(centred >= same), centred


def test_images_equal_open_clips_preprocess_and_encode_image(
    embedder: BiomedClipEmbedder, reference: tuple[Any, Any, Any]
) -> None:
    model, preprocess, _ = reference
    check_images(embedder, model, preprocess)
    # the tiny model tells these images apart: equal vectors are not an accident of a flat model
    ref = reference_images(model, preprocess, smooth_images(4, 224, seed=224))
    assert np.min(cosines(ref[:, None].repeat(4, 1).reshape(16, -1), np.tile(ref, (4, 1)))) < 0.9


def test_the_accelerator_path_equals_open_clips_own_on_cpu_tensors(
    tiny_model_dir: Path, reference: tuple[Any, Any, Any]
) -> None:
    """The path a GPU takes (images resized and normalised on the device, in batches of one
    shape, fed by device_batches), run on CPU tensors: open_clip's own vectors again, for
    images of mixed shapes in one call."""
    model, preprocess, _ = reference
    device_side = BiomedClipEmbedder(f"local-dir:{tiny_model_dir}", device="cpu", half=False)
    device_side.resize_on_device = True
    device_side.batch_size = 3
    check_images(device_side, model, preprocess)
    mixed = [*smooth_images(2, 448, seed=1), *smooth_images(3, 224, seed=2)]
    ref = reference_images(model, preprocess, mixed)
    assert np.all(cosines(device_side.embed_images(mixed), ref) >= SAME)


def test_texts_equal_open_clips_tokenizer_and_encode_text(
    embedder: BiomedClipEmbedder, reference: tuple[Any, Any, Any]
) -> None:
    model, _, tokenizer = reference
    check_texts(embedder, model, tokenizer, same=SAME)


def test_the_preprocessing_config_is_the_models_own(
    embedder: BiomedClipEmbedder, reference: tuple[Any, Any, Any]
) -> None:
    _, preprocess, _ = reference
    normalize = preprocess.transforms[-1]
    assert embedder.preprocess["mean"] == pytest.approx(list(normalize.mean))
    assert embedder.preprocess["std"] == pytest.approx(list(normalize.std))


def test_bf16_on_the_cpu_is_close_to_fp32(
    tiny_model_dir: Path, embedder: BiomedClipEmbedder
) -> None:
    import torch

    reduced = BiomedClipEmbedder(f"local-dir:{tiny_model_dir}", device="cpu", half=True)
    assert reduced.dtype == torch.bfloat16
    assert next(reduced._model.parameters()).dtype == torch.bfloat16
    images = smooth_images(4, 224, seed=7)
    low, full = reduced.embed_images(images), embedder.embed_images(images)
    assert low.dtype == np.float32
    assert np.all(cosines(low, full) >= BF16), cosines(low, full)
    texts_low, texts_full = reduced.embed_texts(TEXTS), embedder.embed_texts(TEXTS)
    assert np.all(cosines(texts_low, texts_full) >= BF16)


@pytest.mark.gpu
def test_fp16_on_cuda_is_close_to_fp32(tiny_model_dir: Path) -> None:
    import torch

    source = f"local-dir:{tiny_model_dir}"
    half = BiomedClipEmbedder(source, device="cuda")  # fp16 is the default on CUDA
    full = BiomedClipEmbedder(source, device="cuda", half=False)
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    images = smooth_images(4, 224, seed=11)
    assert np.all(cosines(half.embed_images(images), full.embed_images(images)) >= SAME)
    assert np.all(cosines(half.embed_texts(TEXTS), full.embed_texts(TEXTS)) >= SAME)
    on_cpu = BiomedClipEmbedder(source, device="cpu", half=False)
    assert np.all(cosines(full.embed_images(images), on_cpu.embed_images(images)) >= SAME)


@pytest.mark.weights
def test_the_real_biomedclip_equals_open_clips_own_path() -> None:
    """With the real weights in the Hugging Face cache (``HF_HUB_CACHE``; the ``weights``
    marker skips this test otherwise)."""
    import open_clip

    model, preprocess = open_clip.create_model_from_pretrained(DEFAULT_BIOMEDCLIP, device="cpu")
    tokenizer = open_clip.get_tokenizer(DEFAULT_BIOMEDCLIP)
    embedder = BiomedClipEmbedder(DEFAULT_BIOMEDCLIP, device="cpu", half=False)
    check_images(embedder, model.eval(), preprocess)
    check_texts(embedder, model, tokenizer, same=SAME)

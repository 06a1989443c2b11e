"""Embedding throughput (BiomedCLIP architecture) and the weight-free baseline's signal.

1. Images/second of the BiomedCLIP architecture (ViT-B/16 image tower, 224 px; random weights:
   speed does not depend on them) through ``BiomedClipEmbedder.embed_images`` at batch 1 and
   32, side by side with a naive per-image open_clip loop (PIL → the model's torchvision
   transform → ``encode_image``, one image at a time) as a fair peer: in
   ``torch.inference_mode()`` and warmed up on its own first, as the library's runs are. The
   runs alternate for ``--rounds`` rounds and each reports its best (and median) rate, so that a
   busy spell of a shared machine does not land on one of them only. The image tower alone on
   ready tensors is the ceiling: ``embed_images`` from in-memory arrays is reported as a share
   of it. On a GPU when one is present.
2. From PNG files: read, breast-cropped and embedded as ``index build`` does, the reading and
   cropping in 1, 2, 4, ... worker processes up to the cores (``mammosearch.accel``), with the
   decode-only rate beside it (the ceiling files can reach).
3. ``radiomics.v1`` on ../shared/data/mini-mias: leave-one-patient-out nearest-neighbour
   accuracy of the MIAS tissue class (F/G/D; majority class 0.35; target >= 0.55).

Usage: ``python bench/embed.py [--images 64] [--rounds 3] [--files 128] [--skip-speed]
[--skip-files] [--skip-mias]``
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NAIVE = "naive open_clip loop, one image at a time"


def speed(n_images: int, rounds: int) -> object:
    """The in-memory figures; returns the fastest embedder (for :func:`from_files`)."""
    import copy

    import open_clip
    import torch
    from open_clip.model import CustomTextCLIP
    from PIL import Image
    from transformers import BertConfig

    from mammosearch.embeddings.biomedclip import BiomedClipEmbedder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(max(1, torch.get_num_threads()))
    text_cfg = {"hf_model_name": "bert-base-uncased", "hf_model_pretrained": False,
                "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 256}  # fmt: skip
    vision_cfg = {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False,
                  "timm_pool": "", "timm_proj": "linear", "image_size": 224}  # fmt: skip
    try:
        model = CustomTextCLIP(embed_dim=512, vision_cfg=vision_cfg, text_cfg=text_cfg)
    except OSError:  # no hub: build the BERT-base text tower from a local config
        import tempfile

        folder = Path(tempfile.mkdtemp())
        BertConfig().save_pretrained(folder)
        text_cfg["hf_model_name"] = str(folder)
        model = CustomTextCLIP(embed_dim=512, vision_cfg=vision_cfg, text_cfg=text_cfg)
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rng = np.random.default_rng(0)
    images = [rng.random((512, 400), dtype=np.float32) for _ in range(n_images)]
    print(f"BiomedCLIP architecture, random weights: {params:.0f}M parameters, {device}, "
          f"{n_images} images of 512x400")  # fmt: skip
    transform = open_clip.image_transform(224, is_train=False)

    def naive_loop(batch: list[np.ndarray]) -> None:
        with torch.inference_mode():
            for img in batch:
                pil = Image.fromarray((img * 255).astype(np.uint8)).convert("RGB")
                model.encode_image(transform(pil).unsqueeze(0).to(device))

    runs: dict[str, Callable[[list[np.ndarray]], object]] = {}
    embedders: dict[str, object] = {}
    for batch in (1, 32):
        for half in [False, True] if device == "cuda" else [False]:
            embedder = BiomedClipEmbedder.from_model(
                copy.deepcopy(model) if half else model, tokenizer=None, model_id="random",
                device=device, batch_size=batch, half=half,
            )  # fmt: skip
            name = f"mammosearch embed_images, batch {batch}{' fp16' if half else ''}"
            runs[name], embedders[name] = embedder.embed_images, embedder
    runs[NAIVE] = naive_loop
    model = model.float().to(device).eval()
    for run in runs.values():  # each its own warm-up
        run(images[:2])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):  # interleaved, so that a busy spell of the machine hits them all
        for name, run in runs.items():
            start = time.perf_counter()
            run(images)
            if device == "cuda":
                torch.cuda.synchronize()
            rates[name].append(n_images / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:<46} {max(values):8.1f} images/s (best of {rounds}; "
              f"median {statistics.median(values):.1f})")  # fmt: skip
    naive = max(rates[NAIVE])
    for name, values in rates.items():
        if name != NAIVE:
            print(f"{name} / naive loop (best of each): {max(values) / naive:.2f}x")
    fastest = max((n for n in rates if n != NAIVE), key=lambda n: max(rates[n]))
    tower_batch = 128 if device == "cuda" else 32
    tower_rates = {}
    for half in [False, True] if device == "cuda" else [False]:
        tower = model.half() if half else model.float()
        x = torch.rand(tower_batch, 3, 224, 224, device=device,
                       dtype=next(tower.parameters()).dtype)  # fmt: skip
        with torch.inference_mode():
            tower.encode_image(x[:8])
            _sync(device)
            start = time.perf_counter()
            for _ in range(4):
                tower.encode_image(x)
            _sync(device)
        tower_rates[half] = 4 * len(x) / (time.perf_counter() - start)
        label = f"image tower alone, ready tensors, batch {tower_batch}{' fp16' if half else ''}"
        print(f"{label:<46} {tower_rates[half]:8.1f} images/s")
    model.float()
    for name, values in rates.items():
        if name != NAIVE:
            share = max(values) / tower_rates["fp16" in name]
            print(f"{name} / tower alone (same precision): {share:.0%}")
    return embedders[fastest]


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _read_prepared(path: Path) -> np.ndarray:
    from mammosearch.imaging import prepare_image, read_image

    return prepare_image(read_image(path), 512)


def from_files(n_files: int, embedder: object, device: str) -> None:
    """PNG files → read and breast-cropped by 1, 2, 4, ... workers → embedded in batches."""
    import os
    import tempfile

    from PIL import Image

    from mammosearch.accel import parallel_map
    from mammosearch.samples.phantoms import phantom

    folder = Path(tempfile.mkdtemp())
    paths = []
    for i in range(n_files):
        paths.append(folder / f"{i}.png")
        Image.fromarray(phantom("ABCD"[i % 4], "MLO", "RL"[i % 2], seed=i)).save(paths[-1])
    cores = os.cpu_count() or 1
    counts = sorted({1, cores, *(2**k for k in range(1, 8) if 2**k < cores)})
    print(f"from {n_files} PNG files (640x480 phantoms), {cores} cores:")
    print(f"{'workers':>8}{'read+crop img/s':>17}{'+ embed img/s':>15}")
    embed = embedder.embed_images  # type: ignore[attr-defined]
    embed([_read_prepared(paths[0])] * 2)  # warm-up
    for workers in counts:
        start = time.perf_counter()
        for _ in parallel_map(_read_prepared, paths, workers=workers, min_items=1):
            pass
        decode = n_files / (time.perf_counter() - start)
        start = time.perf_counter()
        batch: list[np.ndarray] = []
        for prepared in parallel_map(_read_prepared, paths, workers=workers, min_items=1):
            batch.append(prepared)
            if len(batch) == 32:
                embed(batch)
                batch = []
        if batch:
            embed(batch)
        _sync(device)
        print(f"{workers:>8}{decode:>17.1f}{n_files / (time.perf_counter() - start):>15.1f}")


def mias() -> None:
    from mammosearch.embeddings.radiomics import RadiomicsEmbedder
    from mammosearch.imaging import prepare_image, read_image

    folder = SHARED / "mini-mias"
    if not folder.is_dir():
        print("MIAS skipped: ../shared/data/mini-mias is not available")
        return
    with (folder / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    start = time.perf_counter()
    images = [prepare_image(read_image(folder / r["image"]), 512) for r in rows]
    embedder = RadiomicsEmbedder()
    features = embedder.features(images)
    seconds = time.perf_counter() - start
    embedder.set_stats({"mean": features.mean(0).tolist(), "std": features.std(0).tolist()})
    vectors = embedder.embed_features(features)
    labels = np.array([r["density"] for r in rows])
    patients = np.array([r["patient_id"] for r in rows])
    sims = vectors @ vectors.T
    for k in (1, 5):
        correct = 0
        for i in range(len(rows)):
            scores = np.where(patients != patients[i], sims[i], -np.inf)
            top = np.argsort(-scores)[:k]
            values, counts = np.unique(labels[top], return_counts=True)
            correct += values[np.argmax(counts)] == labels[i]
        print(f"radiomics.v1 MIAS leave-one-patient-out {k}-NN accuracy: {correct / len(rows):.3f}")
    majority = max(np.mean(labels == c) for c in set(labels))
    print(f"majority class {majority:.3f}; {len(rows)} images, {len(rows) / seconds:.1f} images/s "
          "(read + breast crop + features)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds")
    parser.add_argument("--files", type=int, default=128, help="PNG files for the file runs")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--skip-mias", action="store_true")
    args = parser.parse_args()
    if not args.skip_mias:
        mias()
    if not args.skip_speed:
        embedder = speed(args.images, max(1, args.rounds))
        if not args.skip_files:
            import torch

            from_files(args.files, embedder, "cuda" if torch.cuda.is_available() else "cpu")


if __name__ == "__main__":
    main()

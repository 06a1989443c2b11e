"""ConvNeXt density model throughput: training and inference images/second.

For ``convnext_atto`` and ``convnext_tiny`` (random weights: speed does not depend on them),
at 224 px and 320 px, on a GPU when one is present, else this CPU, the model that reads the
whole input square (``patch=0``; the figures in docs/RESULTS.md were taken with it; the
default model reads 64 px patches of a 256 px square, a different workload):

- training: ``train_convnext`` itself (augmentation, class-weighted loss, AdamW + cosine, the
  validation pass and kappa), timed over its second epoch; side by side with a bare timm loop
  (forward, backward, AdamW step on ready tensors) on the same images, the peer;
- inference: ``ConvNeXtDensity.predict_proba`` on breast-cropped 512x400 images (square fit,
  pectoral muscle, normalisation, softmax), batch 16, with one process and with its inputs made
  by one worker process a core (``workers=``; the last column: its ratio to the bare forward),
  and ``predict_inputs`` on inputs already made (the device's part alone), side by side with
  the bare model forward;
- the inputs (``tissue_inputs``: square fit and pectoral muscle, the CPU part) made by 1, 2, 4,
  ... worker processes up to the cores.

The bare training loop is warmed up on the same sequence of batch sizes that it times (its last
batch is smaller): a first batch of a new shape makes cuDNN choose its kernels anew, which on a
GPU cost about 160 ms a step in an earlier version of this bench that warmed up on full batches
only and timed three steps.

Usage: ``python bench/classify.py [--images 48] [--archs convnext_atto,convnext_tiny]``
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np


def _bare_train(arch: str, size: int, n: int, batch: int, device: object) -> float:
    import timm
    import torch

    model = timm.create_model(arch, pretrained=False, in_chans=1, num_classes=3).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(n, 1, size, size, device=device)
    y = torch.randint(0, 3, (n,), device=device)
    model.train()
    cuda = getattr(device, "type", "") == "cuda"

    def steps(count: int) -> None:
        for s in range(0, count, batch):
            loss = loss_fn(model(x[s : s + batch]), y[s : s + batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if cuda:
            torch.cuda.synchronize()

    steps(n)  # warm-up on the same batch shapes: kernels chosen, optimiser state made
    start = time.perf_counter()
    for _ in range(3):
        steps(n)
    return 3 * n / (time.perf_counter() - start)


def _bare_infer(model: object, size: int, n: int, batch: int, device: object) -> float:
    import torch

    x = torch.rand(n, 1, size, size, device=device)
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, batch):
            model(x[s : s + batch])  # type: ignore[operator]
    if getattr(device, "type", "") == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def _ours_train(
    arch: str, size: int, images: list[np.ndarray], labels: list[str], patients: list[str]
) -> tuple[Any, float]:
    """A model from ``train_convnext`` and the seconds of its second epoch (validation
    included; the first carries the set-up)."""
    from mammosearch.classifiers.convnext import TrainConfig, train_convnext

    config = TrainConfig(
        arch=arch, image_size=size, patch=0, epochs=2, batch_size=16, patience=9, drop_path=0.0
    )  # the whole-image model, as the figures before patches
    ends: list[float] = []
    model = train_convnext(images, labels, patients, ["F", "G", "D"], config,
                           on_epoch=lambda _e, _m: ends.append(time.perf_counter()))  # fmt: skip
    return model, ends[1] - ends[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--archs", default="convnext_atto,convnext_tiny")
    parser.add_argument("--sizes", default="224,320")
    args = parser.parse_args()

    import torch

    from mammosearch.classifiers.convnext import _device, tissue_inputs

    device = _device()
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device: {name}, {torch.get_num_threads()} threads; {args.images} images per run")
    rng = np.random.default_rng(0)
    images = [rng.random((512, 400), dtype=np.float32) for _ in range(args.images)]
    labels = ["FGD"[i % 3] for i in range(args.images)]
    patients = [f"p{i // 2}" for i in range(args.images)]
    n_train = args.images - round(args.images * 0.2)
    cores = os.cpu_count() or 1
    print(f"{'arch':<15}{'px':>5}{'train img/s':>13}{'bare':>8}{'ratio':>7}"
          f"{'infer img/s':>13}{f'{cores} workers':>12}{'inputs ready':>14}{'bare':>8}"
          f"{'ratio':>7}{'ratio, workers':>16}")  # fmt: skip
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            bare_train = _bare_train(arch, size, n_train, 16, device)
            model, epoch_s = _ours_train(arch, size, images, labels, patients)
            ours_train = n_train / epoch_s
            model.predict_proba(images[:16])  # warm-up
            start = time.perf_counter()
            model.predict_proba(images, batch_size=16)
            ours_infer = args.images / (time.perf_counter() - start)
            start = time.perf_counter()
            model.predict_proba(images, batch_size=16, workers=cores)
            spread = args.images / (time.perf_counter() - start)
            inputs = tissue_inputs(images, size, model.without_pectoral)
            model.predict_inputs(inputs[:16])  # warm-up
            start = time.perf_counter()
            model.predict_inputs(inputs, batch_size=16)
            ready = args.images / (time.perf_counter() - start)
            bare_infer = _bare_infer(model.model, size, args.images, 16, device)
            print(f"{arch:<15}{size:>5}{ours_train:>13.1f}{bare_train:>8.1f}"
                  f"{ours_train / bare_train:>7.2f}{ours_infer:>13.1f}{spread:>12.1f}"
                  f"{ready:>14.1f}{bare_infer:>8.1f}{ready / bare_infer:>7.2f}"
                  f"{spread / bare_infer:>16.2f}")  # fmt: skip
    _input_workers(images, int(args.sizes.split(",")[0]), cores)


def _input_workers(images: list[np.ndarray], size: int, cores: int) -> None:
    """The CPU part of density inference (``tissue_inputs``) by 1, 2, 4, ... processes, on at
    least 64 images a core (the images repeated): each call starts its own worker processes,
    and on fewer images that start-up, not the work, sets the rate (a 16-core run on 256 images
    flattened at about 250 images/s from 8 workers on)."""
    from mammosearch.classifiers.convnext import tissue_inputs

    total = max(len(images), 64 * cores)
    work = [images[i % len(images)] for i in range(total)]
    counts = sorted({1, cores, *(2**k for k in range(1, 8) if 2**k < cores)})
    tissue_inputs(work[:4], size)  # warm-up: the first call imports the image libraries
    tissue_inputs(work[:16], size, workers=2)  # and the first pool its own
    for workers in counts:
        start = time.perf_counter()
        tissue_inputs(work, size, workers=workers)
        rate = total / (time.perf_counter() - start)
        print(f"tissue_inputs at {size} px, {workers:>2} workers, {total} images: "
              f"{rate:8.1f} images/s")  # fmt: skip


if __name__ == "__main__":
    main()

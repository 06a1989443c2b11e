"""The data path that feeds the image models: CPU work in worker processes, the rest on the
device.

Every image model goes through the same three steps, whatever it runs on:

1. :func:`parallel_map`: per-image CPU work (decoding, breast cropping, the pectoral muscle)
   in a pool of worker processes (PyTorch's ``DataLoader``: ordered, with a bounded prefetch
   queue), or in this process when one worker is asked for;
2. :func:`device_batches`: same-shaped runs of prepared images stacked into (pinned, on CUDA)
   host memory and copied to the device; on CUDA the next batch's copy runs on a side stream
   while the current one computes;
3. :func:`fit_square_batch`: resizing to the model's input square on the device, in batches
   (the twin of :func:`mammosearch.imaging.fit_square`: same geometry, the same antialiased
   bilinear filter up to rounding), then the model's own normalisation.

On the CPU the same code runs with plain tensors, so one path serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["Images", "device_batches", "fit_square_batch", "parallel_map"]

Images = Sequence[NDArray[np.float32]] | NDArray[np.float32]  # a list of images or a stack
T = TypeVar("T")
R = TypeVar("R")

PREFETCH = 4  # items queued ahead per worker (the bounded queue)


class _Mapped:
    """``fn`` over ``items`` as a map-style dataset (what a ``DataLoader`` worker calls)."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
        self.fn, self.items = fn, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.fn(self.items[i])


def _as_is(item: Any) -> Any:
    """The collate function of one item: returned untouched (no conversion to tensors)."""
    return item


def parallel_map(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int = 1, min_items: int = 8
) -> Iterator[R]:
    """``fn`` of each item, in order, computed by ``workers`` processes.

    With one worker, or fewer than ``min_items`` items (a pool's start-up would cost more than
    it saves), or where processes cannot be forked (Windows), the items are mapped here. ``fn``
    must not use the accelerator: the workers are forked and leave it to the parent.
    """
    import multiprocessing

    forks = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or len(items) < min_items or not forks:
        yield from map(fn, items)
        return
    from torch.utils.data import DataLoader

    loader: Iterable[R] = DataLoader(
        _Mapped(fn, items),  # type: ignore[arg-type]
        batch_size=None,
        num_workers=min(workers, len(items)),
        prefetch_factor=PREFETCH,
        collate_fn=_as_is,
        multiprocessing_context="fork",
    )
    yield from loader


def _runs(arrays: Images, batch_size: int) -> Iterator[list[int]]:
    """Positions of consecutive arrays of one shape, at most ``batch_size`` at a time."""
    run: list[int] = []
    for i, array in enumerate(arrays):
        if run and (len(run) == batch_size or array.shape != arrays[run[0]].shape):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def device_batches(arrays: Images, batch_size: int, device: Any) -> Iterator[Any]:
    """The arrays as float32 device tensors ``n×…``, in order, in batches of one shape.

    On CUDA each batch is stacked into pinned host memory (PyTorch's caching host allocator)
    and copied on a side stream, the next batch's copy before the current batch is handed out,
    so that copies overlap the model's work on the current one.
    """
    import torch

    cuda = torch.device(device).type == "cuda"
    side = torch.cuda.Stream(device) if cuda else None  # type: ignore[no-untyped-call]

    def upload(run: list[int]) -> tuple[Any, Any]:
        first = np.asarray(arrays[run[0]])
        host = torch.empty((len(run), *first.shape), dtype=torch.float32, pin_memory=cuda)
        np.stack([np.asarray(arrays[i], dtype=np.float32) for i in run], out=host.numpy())
        if side is None:
            return host, None
        with torch.cuda.stream(side):
            moved = host.to(device, non_blocking=True)
        ready = torch.cuda.Event()  # type: ignore[no-untyped-call]
        ready.record(side)
        return moved, ready

    runs = _runs(arrays, max(1, batch_size))
    pending = next((upload(run) for run in runs), None)
    while pending is not None:
        current, ready = pending
        pending = next((upload(run) for run in runs), None)
        if ready is not None:
            stream = torch.cuda.current_stream(device)
            stream.wait_event(ready)
            current.record_stream(stream)  # its memory is not reused before the model is done
        yield current


def fit_square_batch(batch: Any, size: int) -> Any:
    """Images ``n×h×w`` (a tensor on any device) fitted to ``n×1×size×size`` like
    :func:`mammosearch.imaging.fit_square`: aspect ratio kept, antialiased bilinear resize,
    values clipped to [0, 1], the left edge (the chest wall) kept, centred vertically, zero
    padding."""
    import torch
    import torch.nn.functional as F

    n, h, w = batch.shape
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    images = batch[:, None].to(torch.float32)
    if (new_h, new_w) != (h, w):
        images = F.interpolate(
            images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
    out = images.new_zeros((n, 1, size, size))
    top = (size - new_h) // 2
    out[:, :, top : top + new_h, :new_w] = images.clamp(0.0, 1.0)
    return out

"""Full-field DICOM decode + preprocess throughput and peak memory, against a naive loop.

On the 8 CBIS-DDSM DICOMs of ../shared/data (RLE lossless, 16-bit, ~4.5k x 2.8k), repeated:

* mammosearch: ``read_image`` (decode, modality/VOI LUT, MONOCHROME1 inversion, laterality
  and view) + ``prepare_image`` (breast segmentation, orientation, crop, 512 px fit);
* naive: ``pydicom.dcmread(path).pixel_array`` + a 512x512 resize (no LUT, no crop).

Peak memory is the largest Python-tracked allocation during one image (tracemalloc).

Usage: ``python bench/imaging.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cbis-ddsm" / "dicom"


def ours(path: Path) -> np.ndarray:
    from mammosearch.imaging import prepare_image, read_image

    return prepare_image(read_image(path), 512)


def naive(path: Path) -> np.ndarray:
    import pydicom
    from PIL import Image

    pixels = pydicom.dcmread(path).pixel_array.astype(np.float32)
    return np.asarray(Image.fromarray(pixels, mode="F").resize((512, 512)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = sorted(SHARED.glob("*.dcm"))
    if not files:
        print("skipped: ../shared/data/cbis-ddsm/dicom is not available")
        return
    print(f"{len(files)} full-field DICOMs x {args.repeat}")
    for label, fn in (
        ("mammosearch read_image + prepare_image", ours),
        ("naive dcmread + resize", naive),
    ):
        fn(files[0])  # warm-up (imports, codec registration)
        start = time.perf_counter()
        for _ in range(args.repeat):
            for path in files:
                fn(path)
        rate = len(files) * args.repeat / (time.perf_counter() - start)
        tracemalloc.start()
        fn(files[0])
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{label:<40} {rate:6.2f} DICOMs/s   peak {peak:6.0f} MiB per image")


if __name__ == "__main__":
    main()

"""Fuzz ``read_image`` and ``normalize`` for a given time and report crashes (none allowed).

Property-based (Hypothesis, no example database): byte-level mutations (flips, overwrites,
insertions, deletions, truncation) of valid seeds — an uncompressed and an RLE DICOM, a PNG, a
JPEG — and random or mutated report texts in both languages. A *crash* is anything but the
typed error (``InvalidDicomError`` for images, ``ReportParseError`` for reports), a call over
2 s, or a result that breaks the contract (pixels outside [0, 1], evidence spans outside the
text). Every crash is printed with its kind and a hex prefix of the input (the seeds hold no
patient data), and the script exits 1.

Usage: ``python bench/fuzz.py [--minutes 2] [--target images|reports|both]``
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from typing import Any

import numpy as np

_SLOW = 2.0


def _image_seeds() -> list[bytes]:
    import pydicom
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    from mammosearch.samples.phantoms import phantom

    pixels = phantom("C", "CC", "R", seed=1)[::8, ::8]
    seeds = []
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
        ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", "R", "CC"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        seeds.append(buffer.getvalue())
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def _mutations(st: Any, seeds: list[bytes]) -> Any:
    @st.composite
    def mutated(draw: Any) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 8))):
            if not data:
                break
            at = draw(st.integers(0, len(data) - 1))
            kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
            if kind == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "overwrite":
                chunk = draw(st.binary(min_size=1, max_size=8))
                data[at : at + len(chunk)] = chunk
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=64))
            elif kind == "delete":
                del data[at : at + draw(st.integers(1, 64))]
            else:
                del data[at:]
        return bytes(data)

    return mutated()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--target", choices=["images", "reports", "both"], default="both")
    args = parser.parse_args()

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from mammosearch.errors import InvalidDicomError, ReportParseError
    from mammosearch.imaging import read_image
    from mammosearch.nlp import normalize
    from mammosearch.samples.reports import generate_reports

    normalize("BI-RADS 1")  # load the rules before timing
    seeds = _image_seeds()
    reports = [r.text for r in generate_reports(20, seed=5)]
    crashes: list[tuple[str, str, bytes]] = []
    counts: Counter[str] = Counter()

    def check(target: str, call: Any, data: bytes, typed: type[Exception]) -> None:
        start = time.perf_counter()
        try:
            call()
            counts[f"{target} ok"] += 1
        except typed:
            counts[f"{target} typed error"] += 1
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - every other exception is a finding
            crashes.append((target, f"{type(e).__name__}", data[:32]))
        if time.perf_counter() - start > _SLOW:
            crashes.append((target, f"slow ({time.perf_counter() - start:.1f} s)", data[:32]))

    def image_case(data: bytes) -> None:
        def call() -> None:
            image = read_image(data)
            if not (np.all(image.pixels >= 0) and np.all(image.pixels <= 1)):
                raise AssertionError("pixels outside [0, 1]")

        check("image", call, data, InvalidDicomError)

    def report_case(text: str) -> None:
        def call() -> None:
            report = normalize(text).to_dict()
            for key in ("density", "birads"):
                span = (report.get(key) or {}).get("evidence")
                if span and text[span["start"] : span["end"]] != span["text"]:
                    raise AssertionError(f"{key} evidence is not the text it points at")

        check("report", call, text.encode("utf-8", "replace"), ReportParseError)

    texts = st.one_of(
        st.text(max_size=2000),
        st.builds(
            lambda r, cut, junk: r[:cut] + junk + r[cut:],
            st.sampled_from(reports),
            st.integers(0, 400),
            st.text(max_size=50),
        ),  # fmt: skip
    )
    deadline = time.monotonic() + args.minutes * 60
    targets = ["images", "reports"] if args.target == "both" else [args.target]
    share = (deadline - time.monotonic()) / len(targets)
    for target in targets:
        stop = time.monotonic() + share
        strategy = _mutations(st, seeds) if target == "images" else texts
        case = image_case if target == "images" else report_case
        run = settings(max_examples=100, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(given(strategy)(case))  # fmt: skip
        while time.monotonic() < stop:  # batches of 100 fresh examples until the time is up
            run()
    print(f"fuzzed for {args.minutes:g} min: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    kinds = Counter((target, kind) for target, kind, _ in crashes)
    print(f"crashes: {len(crashes)}")
    for (target, kind), n in kinds.most_common():
        example = next(d for t, k, d in crashes if (t, k) == (target, kind))
        print(f"  {target}: {kind} x{n} (input starts {example.hex()})")
    raise SystemExit(1 if crashes else 0)


if __name__ == "__main__":
    main()

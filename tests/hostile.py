"""A corpus of malformed and hostile image files, generated (never stored in the repository).

Each entry is ``(name, bytes)``; every one must give :class:`~mammosearch.errors.InvalidDicomError`
from ``read_image`` quickly and without allocating what its header claims.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.uid import RLELossless

from tests.test_imaging import phantom, write_dicom


def _dicom(tmp: Path, **options: object) -> bytes:
    path = tmp / "base.dcm"
    write_dicom(path, phantom(64, 48), **options)  # type: ignore[arg-type]
    return path.read_bytes()


def _element_offset(data: bytes, group: int, element: int, vr: bytes) -> int:
    """Where an explicit-VR little-endian element starts (its tag), in the main dataset."""
    return data.index(struct.pack("<HH", group, element) + vr, 132)


def _set_us(data: bytes, group: int, element: int, value: int) -> bytes:
    at = _element_offset(data, group, element, b"US") + 8
    return data[:at] + struct.pack("<H", value) + data[at + 2 :]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` with a few bytes of image data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))  # fmt: skip


def _jpeg_claiming(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _nested_sequences(depth: int) -> bytes:
    """A DICOM whose first element is ``depth`` sequences nested in one another."""
    meta_body = (struct.pack("<HH", 2, 0x10) + b"UI" + struct.pack("<H", 20)
                 + b"1.2.840.10008.1.2.1\0")  # fmt: skip
    meta = struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(meta_body)) + meta_body
    opening = (struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
               + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))  # fmt: skip
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return b"\0" * 128 + b"DICM" + meta + opening * depth + closing * depth


def hostile_files(tmp: Path) -> list[tuple[str, bytes]]:
    """The corpus: malformed files of every kind the issue names."""
    tmp.mkdir(parents=True, exist_ok=True)
    base = _dicom(tmp)
    rle = _dicom(tmp, syntax=RLELossless)
    pixel_tag = _element_offset(base, 0x7FE0, 0x0010, b"OW")
    rows_at = _element_offset(base, 0x0028, 0x0010, b"US")
    name_at = _element_offset(base, 0x0010, 0x0010, b"PN")
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("empty", lambda: b""),
        ("text", lambda: b"Patient report, not an image\n" * 40),
        ("no-preamble", lambda: base[128:]),
        ("dicm-then-garbage", lambda: b"\0" * 128 + b"DICM" + bytes(range(256)) * 4),
        ("truncated-header", lambda: base[:200]),
        ("truncated-pixel-data", lambda: base[: pixel_tag + 12 + 100]),
        ("length-past-eof", lambda: base[: name_at + 6] + struct.pack("<H", 0xFFFF)
         + base[name_at + 8 :]),  # fmt: skip
        ("rows-columns-beyond-data", lambda: _set_us(_set_us(base, 0x28, 0x10, 4000), 0x28, 0x11, 4000)),
        ("rows-columns-huge", lambda: _set_us(_set_us(base, 0x28, 0x10, 65535), 0x28, 0x11, 65535)),
        ("rle-rows-columns-huge", lambda: _set_us(_set_us(rle, 0x28, 0x10, 65535), 0x28, 0x11, 65535)),
        # the RLE codec (Rust) panics when a frame decodes to more than Rows x Columns
        ("rle-rows-too-few", lambda: _set_us(rle, 0x28, 0x10, 63)),
        ("rows-zero", lambda: _set_us(base, 0x28, 0x10, 0)),
        ("wrong-vr-rows", lambda: base[:rows_at] + struct.pack("<HH", 0x28, 0x10) + b"DA"
         + struct.pack("<H", 1) + b"X" + base[rows_at + 10 :]),  # fmt: skip
        ("nested-sequences", lambda: _nested_sequences(20_000)),
        ("unsupported-syntax", lambda: base.replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.10", 1)),
        ("png-bomb", lambda: _png_header_only(40_000, 40_000)),
        ("jpeg-bomb", lambda: _jpeg_claiming(65_000, 65_000)),
        ("png-truncated", lambda: _png_header_only(64, 64)[:40]),
    ]  # fmt: skip
    return [(name, make()) for name, make in cases]

"""DICOM, PNG, JPEG and TIFF mammograms → arrays: the only module that imports pydicom.

:func:`read_image` decodes a file (or bytes) into a :class:`MammoImage`: pixels as a 2-D
float32 array in [0, 1] where bright is dense (DICOM: modality LUT, VOI LUT or window, and
MONOCHROME1 inversion applied to the stored 16-bit values, quantized only at the end), with
laterality and view from the standard tags or, when those are missing, from the series
description, patient-id and file-name conventions ("LEFT_CC", "RMLO"). Unknown stays unknown.

:func:`breast_region` orients the breast (chest wall on the left), segments it (Otsu threshold,
largest connected component, holes filled: film labels and burned-in markers outside the breast
disappear), zeroes the background and crops to the breast. :func:`fit_square` resizes keeping
the aspect ratio and pads. :func:`prepare_image` chains the two.

Every failure is an :class:`~mammosearch.errors.InvalidDicomError` whose message names no
patient data and no path.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.errors import InvalidDicomError
from mammosearch.records import Laterality, View

__all__ = [
    "MammoImage",
    "breast_mask",
    "breast_region",
    "dicom_orientation",
    "is_screen_capture",
    "quarantine_reason",
    "fit_square",
    "pectoral_mask",
    "patch_windows",
    "window_shares",
    "window_means",
    "prepare_image",
    "tissue_square",
    "read_image",
    "MAX_PIXELS",
]

logger = logging.getLogger(__name__)

_DICM_OFFSET = 128
# The largest image accepted, in pixel values (rows x columns x samples x frames). The largest
# full-field detectors give about 24 million; anything declaring more is refused from its
# header, before any pixel buffer is allocated (decompression bombs, forged dimensions).
MAX_PIXELS = 50_000_000
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
_MASK_SIDE = 256  # segmentation runs on a copy this size along its longer side
_PECTORAL_SIDE = 128  # the pectoral line is searched on a copy this size
_PECTORAL_MIN_CONTRAST = 0.05  # muscle minus the tissue beside it (intensities in [0, 1])
_PATCH_BACKGROUND = 0.02  # a tissue-square pixel above this is breast (the background is 0)
MIN_PATCH_TISSUE = 0.8  # a patch is read when at least this share of it is breast
# SNOMED / DICOM codes of ViewCodeSequence (CID 4014) for the common views.
_VIEW_CODES = {
    "R-10242": View.CC, "399162004": View.CC, "R-10226": View.MLO, "399368009": View.MLO,
    "R-10224": View.ML, "399260004": View.ML, "R-10228": View.LM, "399352003": View.LM,
    "R-10230": View.LMO, "399099002": View.LMO, "R-1024A": View.XCCL, "399192003": View.XCCL,
    "R-1024B": View.XCCM, "399101009": View.XCCM, "R-10242-FB": View.FB, "R-40AAA": View.AT,
}  # fmt: skip
_VIEW_WORDS = {"cranio-caudal": View.CC, "craniocaudal": View.CC, "medio-lateral oblique": View.MLO,
               "mediolateral oblique": View.MLO, "medio-lateral": View.ML, "mediolateral": View.ML,
               "latero-medial": View.LM, "lateromedial": View.LM,
               "exaggerated cranio-caudal": View.XCCL}  # fmt: skip
# "LEFT_CC", "_L_MLO", "RMLO", "R-CC", "L CC" in series descriptions, ids and file names
_NAME_PATTERN = re.compile(
    r"(?<![A-Z0-9])(?P<side>LEFT|RIGHT|L|R)[ _\-.]?(?P<view>XCCL|XCCM|MLO|LMO|CC|ML|LM|FB|SIO|AT)"
    r"(?![A-Z0-9])",
    re.IGNORECASE,
)
_SIDE_ONLY = re.compile(r"(?<![A-Z0-9])(?P<side>LEFT|RIGHT)(?![A-Z0-9])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MammoImage:
    """A decoded mammogram.

    Attributes:
        pixels: H×W float32 in [0, 1]; bright is dense tissue.
        laterality: Left or right breast, ``None`` when unknown.
        view: The view, ``None`` when unknown.
        photometric: The source's photometric interpretation (``MONOCHROME2`` for rasters).
        bits_stored: Bits per pixel of the source.
        source: ``"dicom"``, ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"bmp"``.
        modality: DICOM Modality, when there is one.
        laterality_from: Where the laterality came from (``"tag"``, ``"name"``, ``None``).
        view_from: Where the view came from.
        extra: Other non-identifying attributes (sizes, transfer syntax name).
    """

    pixels: NDArray[np.float32]
    laterality: Laterality | None = None
    view: View | None = None
    photometric: str = "MONOCHROME2"
    bits_stored: int = 8
    source: str = "png"
    modality: str | None = None
    laterality_from: str | None = None
    view_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _fail(
    what: str, fix: str = "check that the file is a mammogram (DICOM, PNG, JPEG or TIFF)"
) -> InvalidDicomError:
    return InvalidDicomError(what, fix=fix)


def read_image(source: str | Path | bytes, *, name_hint: str | None = None) -> MammoImage:
    """Decode a mammogram from a path or bytes.

    Args:
        source: A file path, or the file's bytes.
        name_hint: A file name to read laterality and view from when the image has no tags
            (defaults to the path's name).

    Returns:
        The decoded image.

    Raises:
        InvalidDicomError: The file is missing, empty, truncated, corrupt, not an image, or a
            DICOM whose Modality is present and is not MG.
    """
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        name_hint = name_hint or path.name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _fail("the image file does not exist", "check the path in the manifest") from None
        except OSError as e:
            raise _fail(f"the image file cannot be read ({e.strerror})") from None
    if not data:
        raise _fail("the image file is empty")
    try:
        if _looks_like_dicom(data):
            return _read_dicom(data, name_hint)
        return _read_raster(data, name_hint)
    except (InvalidDicomError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 - Rust codecs panic with a BaseException (pyo3)
        logger.debug("image decoding failed with %s", type(e).__name__)
        raise _fail(f"the file is malformed ({type(e).__name__})") from None


def _check_size(pixels: int, what: str) -> None:
    if pixels > MAX_PIXELS:
        raise _fail(
            f"the {what} declares {pixels:,} pixel values, over the {MAX_PIXELS:,} accepted",
            "pass a single-frame mammogram; this looks forged or is not a 2D mammogram",
        )


def _check_dicom_pixels(ds: Any) -> None:
    """Refuse, from the header alone, pixel data that is too large or shorter than declared."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (AttributeError, TypeError, ValueError):
        raise _fail(
            "the DICOM image header lacks valid Rows, Columns or pixel attributes"
        ) from None
    if min(rows, columns, samples, frames) < 1 or bits not in (1, 8, 16, 32, 64):
        raise _fail("the DICOM image header has impossible dimensions")
    _check_size(rows * columns * samples * frames, "DICOM image")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not getattr(syntax, "is_compressed", True):
        expected = (rows * columns * samples * frames * bits + 7) // 8
        if len(ds.PixelData) < expected:
            raise _fail(
                "the DICOM pixel data is shorter than its header declares (truncated)",
                "copy the file again from the archive",
            )


def _looks_like_dicom(data: bytes) -> bool:
    return data[_DICM_OFFSET : _DICM_OFFSET + 4] == b"DICM"


def _read_dicom(data: bytes, name_hint: str | None) -> MammoImage:
    import pydicom
    from pydicom.errors import InvalidDicomError as PydicomInvalid
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    try:
        with warnings.catch_warnings(record=True) as caught:  # pydicom warns about odd files
            warnings.simplefilter("always")
            ds = pydicom.dcmread(io.BytesIO(data))
        if caught:
            logger.debug("pydicom reported %d warning(s) while reading an image", len(caught))
    except (
        PydicomInvalid,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        OSError,
        RecursionError,
    ) as e:
        raise _fail(f"the DICOM file is corrupt or truncated ({type(e).__name__})") from None
    modality = str(ds.get("Modality", "") or "").upper() or None
    if modality is not None and modality != "MG":
        raise _fail(
            f"the DICOM image is modality {modality}, not a mammogram (MG)",
            "pass mammography images only",
        )
    if "PixelData" not in ds:
        raise _fail("the DICOM file holds no image (no Pixel Data)")
    _check_dicom_pixels(ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = ds.pixel_array
    except Exception as e:  # pydicom raises many types for bad or unsupported pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise _fail(
            f"the DICOM pixel data cannot be decoded ({name}: {type(e).__name__})",
            "install the pylibjpeg codecs or check that the file is complete",
        ) from None
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):  # colour secondary capture: use luminance
        raw = raw[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif raw.ndim == 3:  # multi-frame: the first frame
        raw = raw[0]
    if raw.ndim != 2 or min(raw.shape) < 8:
        raise _fail(f"the DICOM image has an unusable shape {tuple(raw.shape)}")
    values = apply_modality_lut(raw, ds)
    has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
    if has_voi:
        values = apply_voi_lut(values, ds, index=0)
    pixels = _to_unit(np.asarray(values, dtype=np.float32))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
    laterality, view, lat_from, view_from = dicom_orientation(ds, name_hint)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return MammoImage(
        pixels=pixels,
        laterality=laterality,
        view=view,
        photometric=photometric,
        bits_stored=int(ds.get("BitsStored", 16) or 16),
        source="dicom",
        modality=modality,
        laterality_from=lat_from,
        view_from=view_from,
        extra={
            "rows": int(raw.shape[0]),
            "columns": int(raw.shape[1]),
            "transfer_syntax": getattr(syntax, "name", None),
            "voi_applied": has_voi,
            "burned_in_annotation": str(ds.get("BurnedInAnnotation", "") or "") or None,
            "screen_capture": is_screen_capture(
                str(ds.get("SOPClassUID", "") or ""), str(ds.get("ConversionType", "") or "")
            ),
        },
    )


def is_screen_capture(sop_class_uid: str, conversion_type: str) -> bool:
    """Whether a DICOM is a secondary capture of a screen (SOP class Secondary Capture, or one
    of its multi-frame variants, with Conversion Type WSD or SYN): it may show anything that
    was on the screen, names included."""
    return sop_class_uid.startswith(_SECONDARY_CAPTURE) and conversion_type.upper() in (
        "WSD",
        "SYN",
    )


def quarantine_reason(
    *,
    burned_in_annotation: str | None,
    modality: str | None,
    screen_capture: bool,
    allow_secondary_capture: bool = False,
) -> str | None:
    """Why an image must be neither released nor indexed, or ``None``: ``"burned-in
    annotation"`` (Burned In Annotation = YES), ``"not a mammogram"`` (another modality) or
    ``"secondary capture"`` (a screen capture, unless ``allow_secondary_capture``)."""
    if (burned_in_annotation or "").upper() == "YES":
        return "burned-in annotation"
    if modality and modality.upper() != "MG":
        return "not a mammogram"
    if screen_capture and not allow_secondary_capture:
        return "secondary capture"
    return None


def _to_unit(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale to [0, 1] over the finite range (robust to a constant image)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros(values.shape, dtype=np.float32)
    out = (values - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def dicom_orientation(
    ds: Any, name_hint: str | None = None
) -> tuple[Laterality | None, View | None, str | None, str | None]:
    """Laterality and view of a DICOM dataset, and where each came from (``"tag"`` or
    ``"name"``): the tags, else the series/study description, patient id or file name."""
    laterality = view = None
    lat_from = view_from = None
    for tag in ("ImageLaterality", "Laterality"):
        value = str(ds.get(tag, "") or "").strip().upper()
        if value in ("L", "R"):
            laterality, lat_from = Laterality.parse(value), "tag"
            break
    position = str(ds.get("ViewPosition", "") or "").strip().upper()
    if position in View.__members__:
        view, view_from = View(position), "tag"
    if view is None:
        for item in ds.get("ViewCodeSequence", []) or []:
            code = str(item.get("CodeValue", "") or "")
            meaning = str(item.get("CodeMeaning", "") or "").lower()
            view = _VIEW_CODES.get(code) or next(
                (v for w, v in _VIEW_WORDS.items() if w in meaning), None
            )
            if view is not None:
                view_from = "tag"
                break
    if laterality is None or view is None:
        names = [str(ds.get("SeriesDescription", "") or ""), str(ds.get("PatientID", "") or "")]
        names += [str(ds.get("StudyDescription", "") or ""), name_hint or ""]
        found_lat, found_view = _orientation_from_names(names)
        if laterality is None and found_lat is not None:
            laterality, lat_from = found_lat, "name"
        if view is None and found_view is not None:
            view, view_from = found_view, "name"
    return laterality, view, lat_from, view_from


def _orientation_from_names(names: list[str]) -> tuple[Laterality | None, View | None]:
    """Laterality and view from naming conventions; conflicting names give ``None``."""
    sides: set[str] = set()
    views: set[str] = set()
    for name in names:
        for m in _NAME_PATTERN.finditer(name):
            sides.add(m.group("side")[0].upper())
            views.add(m.group("view").upper())
        if not sides:
            sides.update(m.group("side")[0].upper() for m in _SIDE_ONLY.finditer(name))
    laterality = Laterality.parse(next(iter(sides))) if len(sides) == 1 else None
    view = View(next(iter(views))) if len(views) == 1 else None
    return laterality, view


def _read_raster(data: bytes, name_hint: str | None) -> MammoImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size  # from the header: checked before decoding
            _check_size(width * height * len(img.getbands()), "image")
            img.load()
            fmt = (img.format or "png").lower()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float32)
                bits = 16
            elif mode == "F":
                array = np.asarray(img, dtype=np.float32)
                bits = 32
            else:
                array = np.asarray(img.convert("L"), dtype=np.float32)
                bits = 8
    except Image.DecompressionBombError:  # Pillow's own check, at twice its pixel limit
        raise _fail(
            f"the image declares more pixel values than the {MAX_PIXELS:,} accepted",
            "pass a mammogram; this looks like a decompression bomb",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise _fail(f"the file is not a readable image ({type(e).__name__})") from None
    if array.ndim != 2 or min(array.shape) < 8:
        raise _fail(f"the image has an unusable shape {tuple(array.shape)}")
    if bits == 8:
        pixels = array / 255.0
    elif bits == 16 and array.max() <= 65535:
        pixels = _to_unit(array)
    else:
        pixels = _to_unit(array)
    laterality, view = _orientation_from_names([name_hint or ""])
    source = {"jpg": "jpeg", "tif": "tiff", "mpo": "jpeg"}.get(fmt, fmt)
    return MammoImage(
        pixels=pixels.astype(np.float32, copy=False),
        laterality=laterality,
        view=view,
        bits_stored=bits,
        source=source,
        laterality_from="name" if laterality else None,
        view_from="name" if view else None,
        extra={"rows": int(array.shape[0]), "columns": int(array.shape[1])},
    )


def _downscale(pixels: NDArray[np.float32], longest: int) -> NDArray[np.float32]:
    from PIL import Image

    h, w = pixels.shape
    scale = longest / max(h, w)
    if scale >= 1:
        return pixels
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(pixels, mode="F").resize(size, Image.Resampling.BOX))


def breast_mask(pixels: NDArray[np.float32]) -> NDArray[np.bool_]:
    """The breast (largest bright connected region, holes filled) at the image's size.

    Film labels, markers and scanner text outside the breast are other components and are
    left out. Computed on a small copy, then scaled back.
    """
    from PIL import Image
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    small = _downscale(pixels, _MASK_SIDE)
    if float(small.max()) - float(small.min()) < 1e-6:
        return np.ones(pixels.shape, dtype=bool)
    smooth = ndimage.uniform_filter(small, size=3)
    threshold = threshold_otsu(smooth)
    # the breast edge is fainter than its body: a lower cut keeps the skin line
    raw = smooth > max(threshold * 0.5, float(np.percentile(smooth, 5)) + 1e-3)
    raw = ndimage.binary_opening(raw, iterations=2)
    labels, count = ndimage.label(raw)
    if count == 0:
        return np.ones(pixels.shape, dtype=bool)
    sizes = ndimage.sum_labels(raw, labels, index=np.arange(1, count + 1))
    mask = ndimage.binary_fill_holes(labels == (int(np.argmax(sizes)) + 1))
    if mask.shape == pixels.shape:
        return np.asarray(mask, dtype=bool)
    big = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (pixels.shape[1], pixels.shape[0]), Image.Resampling.NEAREST
    )
    return np.asarray(big) > 127


def breast_region(image: MammoImage) -> MammoImage:
    """Orient (chest wall on the left), mask out the background and crop to the breast."""
    pixels = image.pixels
    mask = breast_mask(pixels)
    cols = mask.sum(axis=0)
    third = max(1, mask.shape[1] // 3)
    flipped = bool(cols[-third:].sum() > cols[:third].sum())
    if flipped:
        pixels = pixels[:, ::-1]
        mask = mask[:, ::-1]
    rows_any = np.flatnonzero(mask.any(axis=1))
    cols_any = np.flatnonzero(mask.any(axis=0))
    if rows_any.size == 0 or cols_any.size == 0:
        return image
    top, bottom = int(rows_any[0]), int(rows_any[-1]) + 1
    left, right = int(cols_any[0]), int(cols_any[-1]) + 1
    cropped = np.where(mask[top:bottom, left:right], pixels[top:bottom, left:right], 0.0)
    extra = dict(image.extra, flipped=flipped, crop=(top, bottom, left, right))
    return replace(image, pixels=np.ascontiguousarray(cropped, dtype=np.float32), extra=extra)


def fit_square(pixels: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Resize to fit a ``size``×``size`` square keeping the aspect ratio; pad with zeros.

    The image keeps its left edge (the chest wall) and is centred vertically.
    """
    from PIL import Image

    h, w = pixels.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = np.asarray(
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F").resize(
            new, Image.Resampling.BILINEAR, reducing_gap=3.0
        )
    )
    out = np.zeros((size, size), dtype=np.float32)
    top = (size - resized.shape[0]) // 2
    out[top : top + resized.shape[0], : resized.shape[1]] = np.clip(resized, 0.0, 1.0)
    return out


def pectoral_mask(pixels: NDArray[np.float32]) -> NDArray[np.bool_]:
    """The pectoral muscle of a breast-cropped image (chest wall left, background 0), or none.

    On MLO views the muscle is a bright triangle in the upper chest-wall corner; density is read
    on the breast tissue without it. Its edge is found as a straight line (Hough transform of
    Canny edges in the upper chest-wall part of the breast) that runs from the top edge down to
    the chest wall, cuts off 1-40% of the breast, and has brighter tissue on the chest-wall side
    than beside it. Where no line passes these tests (CC views, faint muscles) the mask is
    empty.
    """
    from PIL import Image
    from scipy import ndimage
    from skimage.feature import canny
    from skimage.transform import hough_line

    side = _PECTORAL_SIDE
    empty = np.zeros(pixels.shape, dtype=bool)
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F").resize(
            (side, side), Image.Resampling.BOX
        )
    )
    breast = small > 0.03
    rows, cols = np.flatnonzero(breast.any(axis=1)), np.flatnonzero(breast.any(axis=0))
    if rows.size < 10 or cols.size < 10:
        return empty
    top, height, width = int(rows[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] + 1)
    smooth = ndimage.gaussian_filter(small, 2.0)
    region = np.zeros_like(breast)
    region[top : top + int(0.8 * height), : int(0.8 * width)] = True
    edges = canny(smooth, sigma=1.0, low_threshold=0.005, high_threshold=0.02,
                  mask=ndimage.binary_erosion(breast, iterations=3) & region)  # fmt: skip
    # normals between 5 and 85 degrees: lines from the top edge down to the chest wall
    space, angles, distances = hough_line(edges, theta=np.deg2rad(np.linspace(5, 85, 81)))
    yy, xx = np.ogrid[0:side, 0:side]
    best: tuple[float, float, float, float] | None = None
    _, angle_at, dist_at = hough_peaks(space, min_distance=3, min_angle=3, num_peaks=8)
    for angle, dist in zip(angles[angle_at], distances[dist_at], strict=True):
        c, s = float(np.cos(angle)), float(np.sin(angle))
        x_top, y_wall = (dist - top * s) / c, dist / s
        if not (0.08 * width < x_top < 0.85 * width and top + 0.1 * height < y_wall < top + height):
            continue
        along = xx * c + yy * s
        inside = (along < dist) & breast
        beside = (along >= dist) & (along < dist + 0.15 * width) & breast & (yy < y_wall)
        if not (0.01 * breast.sum() < inside.sum() < 0.4 * breast.sum()) or beside.sum() < 10:
            continue
        contrast = float(smooth[inside].mean() - smooth[beside].mean())
        if contrast >= _PECTORAL_MIN_CONTRAST and (best is None or contrast > best[0]):
            best = (contrast, c, s, float(dist))
    if best is None:
        return empty
    _, c, s, dist = best
    scale = side / np.asarray(pixels.shape, dtype=np.float64)
    rr, cc = np.ogrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    return np.asarray((cc * scale[1] * c + rr * scale[0] * s < dist) & (pixels > 0.03), dtype=bool)


def _running_max(values: NDArray[Any], radius: int, axis: int) -> NDArray[Any]:
    """Maximum over a window of ``2 * radius + 1`` along ``axis``, zeros beyond the edges
    (``scipy.ndimage.maximum_filter1d`` in ``"constant"`` mode; a few ``np.maximum`` of
    shifted views are five times quicker on a Hough space)."""
    along = np.moveaxis(values, axis, 0)
    length = along.shape[0]
    padded = np.zeros((length + 2 * radius, *along.shape[1:]), dtype=along.dtype)
    padded[radius : radius + length] = along
    out = padded[:length].copy()
    for shift in range(1, 2 * radius + 1):
        np.maximum(out, padded[shift : shift + length], out=out)
    return np.moveaxis(out, 0, axis)


def hough_peaks(
    space: NDArray[Any], *, min_distance: int, min_angle: int, num_peaks: int
) -> tuple[NDArray[Any], NDArray[np.intp], NDArray[np.intp]]:
    """The peaks of a straight-line Hough space: what ``skimage.transform.hough_line_peaks``
    returns (values, angle indices, distance indices), equal to it element for element, about
    3.6 times quicker (``bench/classify.py`` measures the whole pectoral search).

    skimage (0.26) measures every above-threshold maximum with ``regionprops``, whose lazy
    properties cost most of its time; here the regions' maxima and centroids are summed in
    one pass (``bincount``), and the same greedy suppression, in the same order, picks the
    peaks. The threshold is skimage's default, half the space's maximum.
    """
    from scipy import ndimage

    rows, cols = space.shape
    min_angle = min(min_angle, cols)
    threshold = 0.5 * np.max(space)
    img_max = _running_max(_running_max(space, min_distance, axis=0), min_angle, axis=1)
    labels, count = ndimage.label(
        (space == img_max) & (space > threshold), structure=np.ones((3, 3), dtype=bool)
    )
    flat = labels.ravel()
    at = np.flatnonzero(flat)
    which = flat[at] - 1
    sizes = np.bincount(which, minlength=count)
    y = np.round(np.bincount(which, at // cols, minlength=count) / sizes).astype(int)
    x = np.round(np.bincount(which, at % cols, minlength=count) / sizes).astype(int)
    highest = np.full(count, -np.inf)
    np.maximum.at(highest, which, img_max.ravel()[at].astype(np.float64))
    # skimage sorts by maximum (stable) and reverses: ties go last-labelled first, and its
    # labels, like these, are numbered in raster order of their first pixel
    order = np.lexsort((-np.arange(count), -highest))
    values: list[Any] = []
    kept_y: list[int] = []
    kept_x: list[int] = []
    dy, dx = np.mgrid[-min_distance : min_distance + 1, -min_angle : min_angle + 1]
    for k in order:
        accum = img_max[y[k], x[k]]
        if not accum > threshold:
            continue
        ny, nx = y[k] + dy, x[k] + dx
        keep = (ny > 0) & (ny < rows)  # skimage's bounds (row 0 is never suppressed)
        ny, nx = ny[keep], nx[keep]
        # angles wrap around (the distance mirrors)
        low, high = nx < 0, nx >= cols
        ny[low | high] = rows - ny[low | high]
        nx[low] += cols
        nx[high] -= cols
        img_max[ny, nx] = 0
        values.append(accum)
        kept_y.append(int(y[k]))
        kept_x.append(int(x[k]))
    peaks, at_y, at_x = (
        np.array(values),
        np.array(kept_y, dtype=np.intp),
        np.array(kept_x, dtype=np.intp),
    )
    if num_peaks < len(peaks):
        best = np.argsort(peaks)[::-1][:num_peaks]
        peaks, at_y, at_x = peaks[best], at_y[best], at_x[best]
    return peaks, at_x, at_y


def tissue_square(
    pixels: NDArray[np.float32], size: int, *, without_pectoral: bool = True
) -> NDArray[np.float32]:
    """:func:`fit_square` of a breast-cropped image, with the pectoral muscle set to background
    (what the density models read)."""
    square = fit_square(np.asarray(pixels, dtype=np.float32), size)
    if not without_pectoral:
        return square
    return np.where(pectoral_mask(square), 0.0, square).astype(np.float32)


def window_shares(squares: Any, patch: int, stride: int) -> Any:
    """The breast share of every ``patch``×``patch`` window on a ``stride`` grid of torch
    tensors ``n×S×S`` of :func:`tissue_square` (breast above 0.02, background 0):
    ``n×rows×cols``."""
    tissue = (squares > _PATCH_BACKGROUND).float()
    return tissue.unfold(1, patch, stride).unfold(2, patch, stride).mean(dim=(-1, -2))


def patch_windows(squares: Any, patch: int) -> tuple[Any, Any]:
    """The patches a patch model reads of :func:`tissue_square` tensors ``n×S×S``: the windows
    on a stride of half a patch that are at least :data:`MIN_PATCH_TISSUE` breast (an image's
    most-breast window when none is), in row-major order.

    Returns:
        ``(windows, owner)``: the windows ``m×1×patch×patch`` and the image each is from.
    """
    stride = max(1, patch // 2)
    shares = window_shares(squares, patch, stride).flatten(1)
    keep = (shares >= MIN_PATCH_TISSUE).scatter_(1, shares.argmax(dim=1, keepdim=True), True)
    owner, which = keep.nonzero(as_tuple=True)
    windows = squares.unfold(1, patch, stride).unfold(2, patch, stride).flatten(1, 2)
    return windows[owner, which][:, None], owner


def window_means(rows: Any, owner: Any, images: int) -> Any:
    """The mean of each image's rows (``m×d`` torch tensor, one row a window of
    :func:`patch_windows`, ``owner`` its image): ``images×d``."""
    total = rows.new_zeros(images, rows.shape[1]).index_add_(0, owner, rows)
    return total / owner.bincount(minlength=images)[:, None]


def prepare_image(image: MammoImage, size: int = 512) -> NDArray[np.float32]:
    """Breast region of ``image`` fitted to a ``size``×``size`` square (float32 in [0, 1])."""
    return fit_square(breast_region(image).pixels, size)

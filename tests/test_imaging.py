"""Imaging: synthetic DICOMs written by pydicom at test time, rasters, and the shared data."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from mammosearch.errors import InvalidDicomError
from mammosearch.imaging import (
    breast_mask,
    breast_region,
    fit_square,
    hough_peaks,
    pectoral_mask,
    prepare_image,
    read_image,
    tissue_square,
)
from mammosearch.records import Laterality, View
from tests.conftest import PHI_CANARY, shared_path


def phantom(height: int = 240, width: int = 160, *, breast_on_right: bool = False) -> np.ndarray:
    """A breast-like half ellipse on the chest-wall side plus a bright film label far from it."""
    yy, xx = np.mgrid[0:height, 0:width]
    cx = width - 1 if breast_on_right else 0
    inside = ((xx - cx) / (0.7 * width)) ** 2 + ((yy - height / 2) / (0.42 * height)) ** 2 < 1
    image = np.where(inside, 0.45 + 0.25 * np.sin(xx / 5.0) * np.cos(yy / 7.0), 0.02)
    lx = 4 if breast_on_right else width - 30
    image[6:22, lx : lx + 24] = 0.95  # the label, not connected to the breast
    return image.astype(np.float32)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits: int = 16,
    modality: str | None = "MG",
    laterality: str | None = "L",
    view: str | None = "CC",
    view_code: tuple[str, str] | None = None,
    series: str = "",
    syntax: Any = ExplicitVRLittleEndian,
    slope: float | None = None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Write a small mammography DICOM with planted fake PHI; returns the stored values."""
    top = (1 << bits) - 1
    stored = np.round(pixels * top).astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = (top - stored).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PHI_CANARY
    ds.PatientID = f"{PHI_CANARY}-{series}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesDescription = series
    if modality:
        ds.Modality = modality
    if laterality:
        ds.ImageLaterality = laterality
    if view:
        ds.ViewPosition = view
    if view_code:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = view_code
        item.CodingSchemeDesignator = "SCT"
        ds.ViewCodeSequence = DicomSequence([item])
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.tobytes()
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, encoding_plugin="pylibjpeg" if syntax == JPEG2000Lossless else "")
    ds.save_as(path, enforce_file_format=True)
    return stored


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_decodes_with_orientation(tmp_path: Path, syntax: Any, photometric: str) -> None:
    pixels = phantom()
    path = tmp_path / "x.dcm"
    write_dicom(path, pixels, photometric=photometric, syntax=syntax, bits=12)
    image = read_image(path)
    assert image.source == "dicom" and image.modality == "MG"
    assert image.photometric == photometric and image.bits_stored == 12
    assert image.laterality is Laterality.LEFT and image.view is View.CC
    assert image.laterality_from == image.view_from == "tag"
    assert image.pixels.dtype == np.float32 and image.pixels.shape == pixels.shape
    # bright stays dense whatever the photometric interpretation
    assert np.corrcoef(image.pixels.ravel(), pixels.ravel())[0, 1] > 0.999


def test_rescale_and_window_are_applied(tmp_path: Path) -> None:
    pixels = phantom()
    path = tmp_path / "w.dcm"
    write_dicom(path, pixels, slope=2.0, window=(2 * 0.5 * 65535, 2 * 0.4 * 65535))
    image = read_image(path)
    assert image.extra["voi_applied"] is True
    inside = pixels > 0.3
    # the window (centre 0.5, width 0.4 of the range) stretches the tissue values
    assert image.pixels[inside].std() > pixels[inside].std()


@pytest.mark.parametrize(
    ("laterality", "view", "view_code", "series", "name", "expected"),
    [
        (None, None, ("399162004", "cranio-caudal"), "", "a.dcm", (None, View.CC)),
        (None, None, None, "R MLO", "a.dcm", (Laterality.RIGHT, View.MLO)),
        (None, None, None, "full mammogram images", "Mass-Test_P_1_LEFT_CC.dcm", (Laterality.LEFT, View.CC)),
        ("R", None, None, "", "LMLO.dcm", (Laterality.RIGHT, View.MLO)),
        (None, None, None, "", "scan.dcm", (None, None)),
        (None, None, None, "LEFT CC / RIGHT MLO", "x.dcm", (None, None)),  # conflicting: unknown
    ],
)  # fmt: skip
def test_laterality_and_view_fallbacks(
    tmp_path: Path,
    laterality: str | None,
    view: str | None,
    view_code: tuple[str, str] | None,
    series: str,
    name: str,
    expected: tuple[Laterality | None, View | None],
) -> None:
    path = tmp_path / name
    write_dicom(
        path, phantom(), laterality=laterality, view=view, view_code=view_code, series=series
    )
    image = read_image(path)
    assert (image.laterality, image.view) == expected


def test_bytes_input_and_name_hint(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    write_dicom(path, phantom(), laterality=None, view=None)
    image = read_image(path.read_bytes(), name_hint="RCC.dcm")
    assert (image.laterality, image.view) == (Laterality.RIGHT, View.CC)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"not an image at all" * 10), "not a readable image"),
        (
            lambda p: p.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage"),
            "corrupt|no image",
        ),
    ],
)
def test_bad_files_raise_one_typed_error(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / f"{PHI_CANARY}.dcm"
    make(path)
    with pytest.raises(InvalidDicomError, match=message) as info:
        read_image(path)
    assert PHI_CANARY not in str(info.value) and str(tmp_path) not in str(info.value)


def test_truncated_dicom(tmp_path: Path) -> None:
    path = tmp_path / "t.dcm"
    write_dicom(path, phantom())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidDicomError) as info:
        read_image(path)
    assert PHI_CANARY not in str(info.value)


def test_non_mammography_modality_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    write_dicom(path, phantom(), modality="CT")
    with pytest.raises(InvalidDicomError, match="modality CT, not a mammogram"):
        read_image(path)
    missing = tmp_path / "none.dcm"
    write_dicom(missing, phantom(), modality=None)
    assert read_image(missing).modality is None  # absent Modality is accepted


def test_missing_file() -> None:
    with pytest.raises(InvalidDicomError, match="does not exist"):
        read_image("/nonexistent/scan.dcm")


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "L"), ("PNG", "I;16"), ("JPEG", "L"), ("TIFF", "L")]
)
def test_raster_formats(tmp_path: Path, fmt: str, mode: str) -> None:
    pixels = phantom()
    if mode == "I;16":
        img = Image.fromarray((pixels * 65535).astype(np.uint16))
    else:
        img = Image.fromarray((pixels * 255).astype(np.uint8))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    image = read_image(buffer.getvalue(), name_hint="LEFT_MLO.png")
    assert image.bits_stored == (16 if mode == "I;16" else 8)
    assert image.source == {"PNG": "png", "JPEG": "jpeg", "TIFF": "tiff"}[fmt]
    assert (image.laterality, image.view) == (Laterality.LEFT, View.MLO)
    assert np.corrcoef(image.pixels.ravel(), pixels.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("breast_on_right", [False, True])
def test_breast_region_orients_masks_and_crops(breast_on_right: bool) -> None:
    pixels = phantom(breast_on_right=breast_on_right)
    mask = breast_mask(pixels)
    assert mask[120, 10 if not breast_on_right else 150]
    from mammosearch.imaging import MammoImage

    region = breast_region(MammoImage(pixels))
    assert region.extra["flipped"] is breast_on_right
    out = region.pixels
    # chest wall on the left, the label gone (it was a separate bright component)
    assert out[:, : out.shape[1] // 4].mean() > out[:, -out.shape[1] // 4 :].mean()
    assert (out > 0.9).sum() == 0
    assert out.shape[1] < pixels.shape[1]


def test_fit_square_keeps_aspect_and_pads() -> None:
    tall = np.ones((200, 100), dtype=np.float32)
    out = fit_square(tall, 64)
    assert out.shape == (64, 64)
    assert out[:, :30].min() > 0.99 and out[:, 34:].max() == 0.0  # 100/200 of 64 = 32 wide
    wide = fit_square(np.ones((50, 200), dtype=np.float32), 64)
    assert wide[:8].max() == 0.0 and wide[30].min() > 0.99  # centred vertically


def mlo_like(muscle: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A breast-cropped MLO-like image (chest wall left) and its true pectoral triangle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:200]
    breast = (xx / 190.0) ** 2 + ((yy - 128) / 128.0) ** 2 < 1
    breast |= xx < 60
    image = np.where(breast, 0.45 + 0.08 * rng.random((256, 200)), 0.0)
    triangle = (xx / 90.0 + yy / 150.0 < 1) & breast
    if muscle:
        image = np.where(triangle, 0.8 + 0.04 * rng.random((256, 200)), image)
    return image.astype(np.float32), triangle


def test_pectoral_muscle_is_found_on_mlo_and_not_invented() -> None:
    image, truth = mlo_like(muscle=True)
    found = pectoral_mask(image)
    iou = (found & truth).sum() / (found | truth).sum()
    assert iou > 0.8
    plain, _ = mlo_like(muscle=False)
    assert not pectoral_mask(plain).any()  # no bright corner: no muscle
    assert not pectoral_mask(np.zeros((64, 64), dtype=np.float32)).any()
    square = tissue_square(image, 128)
    assert square.shape == (128, 128) and square[:10, :20].max() == 0.0  # muscle removed
    assert tissue_square(image, 128, without_pectoral=False)[:10, :20].min() > 0.7


def _same_peaks_as_skimage(
    space: np.ndarray, min_distance: int, min_angle: int, num_peaks: int
) -> None:
    from skimage.transform import hough_line_peaks

    angles = np.linspace(-1.0, 1.0, space.shape[1])
    distances = np.arange(space.shape[0]) - space.shape[0] / 2
    want = hough_line_peaks(space, angles, distances, min_distance=min_distance,
                            min_angle=min_angle, num_peaks=num_peaks)  # fmt: skip
    values, angle_at, dist_at = hough_peaks(space, min_distance=min_distance,
                                            min_angle=min_angle, num_peaks=num_peaks)  # fmt: skip
    assert values.dtype == want[0].dtype
    np.testing.assert_array_equal(values, want[0])
    np.testing.assert_array_equal(angles[angle_at], want[1])
    np.testing.assert_array_equal(distances[dist_at], want[2])


@pytest.mark.parametrize(
    ("min_distance", "min_angle", "num_peaks"), [(3, 3, 8), (1, 1, 5), (9, 10, 100), (2, 5, 3)]
)
def test_hough_peaks_are_skimages_peaks(min_distance: int, min_angle: int, num_peaks: int) -> None:
    """Element for element, order included, on spaces full of ties (small integer counts),
    on continuous ones, and on Hough spaces of scattered edge points, peaks at the angle
    axis's ends among them (where the suppression wraps round)."""
    from skimage.transform import hough_line

    rng = np.random.default_rng(7)
    for trial in range(150):
        rows, cols = (int(v) for v in rng.integers(3, 50, 2))
        if trial % 3 == 0:
            space = rng.integers(0, 4, (rows, cols)).astype(np.uint64)
        elif trial % 3 == 1:
            space = rng.random((rows, cols))
        else:
            space, _, _ = hough_line(rng.random((40, 40)) > 0.97, theta=np.linspace(0.1, 1.5, 81))
        _same_peaks_as_skimage(space, min_distance, min_angle, num_peaks)
    _same_peaks_as_skimage(np.zeros((5, 5), dtype=np.uint64), 3, 3, 8)  # nothing above half of 0


def test_label_does_not_survive_in_the_prepared_image(tmp_path: Path) -> None:
    path = tmp_path / "l.dcm"
    write_dicom(path, phantom())
    prepared = prepare_image(read_image(path), 128)
    assert prepared.shape == (128, 128) and (prepared > 0.9).sum() == 0


@pytest.mark.shared_data
def test_all_cbis_ddsm_dicoms() -> None:
    folder = shared_path("cbis-ddsm")
    with (folder / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    for row in rows:
        image = read_image(folder / row["image"])
        assert image.laterality is Laterality.parse(row["laterality"])
        assert image.view is View(row["view"])
        assert image.extra["transfer_syntax"] == "RLE Lossless" and image.bits_stored == 16
        assert min(image.pixels.shape) > 2000
        prepared = prepare_image(image, 256)
        assert prepared.shape == (256, 256) and 0.1 < (prepared > 0).mean() < 0.9
        # the muscle shows on MLO views only
        assert pectoral_mask(prepared).any() == (image.view is View.MLO)


@pytest.mark.shared_data
def test_all_mias_images() -> None:
    from skimage.feature import canny
    from skimage.transform import hough_line

    folder = shared_path("mini-mias")
    paths = sorted((folder / "images").glob("*.png"))
    assert len(paths) == 214
    found = 0
    for number, path in enumerate(paths):
        image = read_image(path)
        assert image.pixels.shape == (512, 512) and image.laterality is None
        prepared = prepare_image(image, 128)
        assert prepared[:, :16].mean() > prepared[:, -16:].mean()  # chest wall on the left
        found += bool(pectoral_mask(prepared).any())
        if number % 4 == 0:  # the peak search on real Hough spaces, a quarter of the films
            edges = canny(prepared, sigma=1.0, low_threshold=0.005, high_threshold=0.02)
            space = hough_line(edges, theta=np.deg2rad(np.linspace(5, 85, 81)))[0]
            _same_peaks_as_skimage(space, 3, 3, 8)
    assert found > 0.75 * len(paths)  # all MLO views: most show the muscle


def test_pydicom_only_here() -> None:
    root = Path(__file__).resolve().parents[1] / "mammosearch"
    importers = [p for p in root.rglob("*.py") if "import pydicom" in p.read_text(encoding="utf-8")
                 or "from pydicom" in p.read_text(encoding="utf-8")]  # fmt: skip
    assert sorted(importers) == [root / "deid.py", root / "imaging.py"]
    assert pydicom.__version__.startswith("3")

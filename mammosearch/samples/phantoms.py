"""Synthetic mammogram-like phantoms and the demo corpus built from them.

Nothing here comes from a patient: a phantom is a breast outline (chest wall at the image edge,
a pectoral muscle on MLO views) filled with fat and a smooth random fibroglandular pattern whose
share of the breast follows the BI-RADS density class (A about 8%, B 30%, C 58%, D 85%), with
film-like grain, sometimes a mass or a calcification cluster. The demo corpus pairs four views
(R/L × CC/MLO) per synthetic exam with a generated EN/ES report that states the same density
(:func:`mammosearch.samples.reports.generate_reports`), so search, the vote and the report path
all have something to show on a machine with no data and no internet.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.samples.reports import generate_reports

__all__ = ["DENSITY_FRACTION", "SYNTHETIC_NOTE", "build_demo_corpus", "phantom"]

DENSITY_FRACTION = {"A": 0.08, "B": 0.30, "C": 0.58, "D": 0.85}
SYNTHETIC_NOTE = "SYNTHETIC DEMO DATA: generated phantoms and reports, not patients."
_SHAPE = (640, 480)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> NDArray[Any]:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    scaled: NDArray[Any] = (field - field.mean()) / max(float(field.std()), 1e-9)
    return scaled


def phantom(
    density: str, view: str, laterality: str, *, seed: int = 0, lesion: str | None = None
) -> NDArray[np.uint8]:
    """One synthetic mammogram (8-bit, ``640×480``), chest wall on the left for R, right for L.

    Args:
        density: BI-RADS density class A-D (the fibroglandular share of the breast).
        view: ``CC`` or ``MLO`` (MLO adds a pectoral muscle in the upper chest-wall corner).
        laterality: ``R`` or ``L``.
        seed: Same seed, same image.
        lesion: ``"mass"``, ``"calcification"`` or ``None``.

    Raises:
        ValueError: Unknown density, view or laterality.
    """
    from scipy import ndimage

    if density not in DENSITY_FRACTION or view not in ("CC", "MLO") or laterality not in "RL":
        raise ValueError("density A-D, view CC or MLO, laterality R or L")
    rng = np.random.default_rng(seed)
    h, w = _SHAPE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    centre = h * (0.42 if view == "MLO" else 0.5)
    reach = w * rng.uniform(0.62, 0.8)
    half = h * rng.uniform(0.36, 0.44)
    radial = (xx / reach) ** 2 + ((yy - centre) / half) ** 2
    breast = radial < 1.0
    if view == "MLO":  # the breast runs up the chest wall into the axilla
        breast |= (xx < w * 0.3) & (yy < centre)
    # fibroglandular tissue: a smooth random field, denser towards the nipple's axis
    pattern = _smooth_field(rng, _SHAPE, 9.0) + 0.6 * _smooth_field(rng, _SHAPE, 3.0)
    pattern -= 1.2 * np.clip(radial - 0.55, 0.0, None)  # thins out towards the skin
    cut = np.quantile(pattern[breast], 1.0 - DENSITY_FRACTION[density])
    tissue = ndimage.gaussian_filter((pattern > cut).astype(np.float64), 1.5)
    image = np.where(breast, 0.34 + 0.42 * tissue, 0.02)
    image += np.where(breast, 0.05 * _smooth_field(rng, _SHAPE, 1.0), 0.0)  # film grain
    skin = np.clip((1.0 - radial) * 12.0, 0.0, 1.0)
    image = np.where(breast, 0.02 + (image - 0.02) * np.maximum(skin, 0.35), image)
    if view == "MLO":
        muscle = (xx / (w * rng.uniform(0.3, 0.42)) + yy / (h * rng.uniform(0.45, 0.6))) < 1.0
        image = np.where(muscle & breast, 0.82 + 0.03 * _smooth_field(rng, _SHAPE, 4.0), image)
    if lesion == "mass":
        cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.55) * w
        blob = ((yy - cy) / rng.uniform(14, 24)) ** 2 + ((xx - cx) / rng.uniform(14, 24)) ** 2
        image = np.maximum(image, np.where(blob < 1.0, 0.9, 0.0))
    elif lesion == "calcification":
        cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.55) * w
        for _ in range(int(rng.integers(6, 14))):
            y, x = int(cy + rng.normal(0, 8)), int(cx + rng.normal(0, 8))
            image[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = 0.98
    image = np.clip(image, 0.0, 1.0)
    if laterality == "L":
        image = image[:, ::-1]
    return (image * 255).astype(np.uint8)


def build_demo_corpus(folder: Path, *, exams: int = 24, seed: int = 0) -> Path:
    """Write a synthetic demo corpus into ``folder``; returns its manifest (CSV).

    ``exams`` synthetic patients, one exam each, four views (R/L × CC/MLO), densities cycling
    A-D, and an EN/ES generated report that states the exam's density.
    """
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    pool = generate_reports(max(40, 8 * exams), seed=seed, typo_rate=0.05)
    by_density: dict[str, list[str]] = {}
    for report in pool:
        by_density.setdefault(report.truth["density"], []).append(report.text)
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for exam in range(exams):
        density = "ABCD"[exam % 4]
        case = f"SYN-{exam + 1:03d}"
        text = by_density[density][exam // 4 % len(by_density[density])]
        lesion_side = rng.choice("RL")
        lesion = rng.choice([None, None, "mass", "calcification"])
        for laterality in "RL":
            for view in ("CC", "MLO"):
                name = f"{case}_{laterality}{view}.png"
                pixels = phantom(density, view, laterality, seed=seed * 100_003 + len(rows),
                                 lesion=lesion if laterality == lesion_side else None)  # fmt: skip
                Image.fromarray(pixels).save(images / name)
                rows.append({"image": f"images/{name}", "case_id": case, "patient_id": case,
                             "laterality": laterality, "view": view, "report": text,
                             "density": density})  # fmt: skip
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "README.txt").write_text(SYNTHETIC_NOTE + "\n", encoding="utf-8")
    return manifest

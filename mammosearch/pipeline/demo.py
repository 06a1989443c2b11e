"""The demo's index: the synthetic demo corpus, or the user's own data, built once and cached.

``mammosearch demo`` must work on a fresh machine with no data and no internet: the package
generates its demo corpus (:mod:`mammosearch.samples.phantoms`), indexes it with BiomedCLIP
when its weights load and with the weight-free baseline otherwise, and caches the index under
the user's cache directory, keyed by what it was built from, so the next start is immediate.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from pathlib import Path

from mammosearch import __version__
from mammosearch.config import Settings
from mammosearch.embeddings.radiomics import RadiomicsEmbedder
from mammosearch.errors import InputError
from mammosearch.pipeline.build import build_index
from mammosearch.pipeline.manifest import read_manifest

__all__ = ["check_inputs", "demo_index", "manifest_for"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
_DEMO_EXAMS = 24


def manifest_for(data: Path, work: Path) -> Path:
    """A manifest for ``data``: the file itself (CSV/JSONL), a folder's ``manifest.csv``, or one
    written into ``work`` for a folder of images (labels from a ``labels.csv`` with ``image``
    and ``density`` columns beside them, when there is one).

    Raises:
        InputError: Nothing usable there.
    """
    if data.is_file():
        if data.suffix.lower() not in (".csv", ".jsonl"):
            raise InputError("--data takes a folder of images or a manifest (.csv or .jsonl)")
        return data
    if not data.is_dir():
        raise InputError(f"--data {data.name!r} does not exist", fix="give a folder or a manifest")
    for name in ("manifest.csv", "manifest.jsonl"):
        if (data / name).is_file():
            return data / name
    images = sorted(p for p in data.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"no images in {data.name!r}", fix="add DICOM, PNG or JPEG files")
    labels: dict[str, str] = {}
    if (data / "labels.csv").is_file():
        with (data / "labels.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("image") and row.get("density"):
                    labels[Path(row["image"]).name] = row["density"].strip()
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["image", "case_id", "patient_id", "density"])
        writer.writeheader()
        for path in images:
            label = labels.get(path.name, "")
            writer.writerow({"image": str(path.resolve()), "case_id": path.stem,
                             "patient_id": path.stem, "density": label})  # fmt: skip
    return manifest


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def demo_index(
    settings: Settings,
    *,
    data: Path | None = None,
    embedder: str = "auto",
    model: str | None = None,
    progress: bool = False,
) -> Path:
    """The demo index directory, built on first use and reused after.

    Args:
        settings: Where the cache is (``cache_dir``).
        data: The user's data (a folder of images, or a manifest); default: the synthetic
            demo corpus, generated into the cache.
        embedder: ``auto`` (BiomedCLIP when its weights load, else ``radiomics.v1``).
        model: Model source for the embedder.
        progress: Show a progress bar while building.
    """
    from mammosearch.samples.phantoms import SYNTHETIC_NOTE, build_demo_corpus

    root = settings.cache_dir / "demo"
    # the weight-free features' revision too: an index of older features is not reopened
    version = f"{__version__} {RadiomicsEmbedder.model_id}"
    if data is None:
        key = _key("synthetic", version, str(_DEMO_EXAMS), embedder, model or "")
        note: str | None = SYNTHETIC_NOTE
    else:
        resolved = data.resolve()
        stamp = str(resolved.stat().st_mtime_ns) if resolved.exists() else ""
        key = _key("data", str(resolved), stamp, version, embedder, model or "")
        note = None
    folder = root / key
    index = folder / "index"
    if (index / "manifest.json").is_file():
        logger.info("demo index: cached")
        return index
    shutil.rmtree(folder, ignore_errors=True)
    if data is None:
        manifest = build_demo_corpus(folder / "corpus", exams=_DEMO_EXAMS)
    else:
        manifest = manifest_for(data, folder / "corpus")
    logger.info("demo index: building (once; cached under the user cache directory)")
    build_index(manifest, index, settings=settings, embedder=embedder, model=model,
                progress=progress, note=note)  # fmt: skip
    return index


def check_inputs(work: Path, *, data: Path | None = None) -> tuple[Path, str]:
    """A query image and a query report for ``demo --check``: for the synthetic corpus, a new
    phantom and a new generated report (neither is in the index); for the user's data, the
    first image of their manifest and a generated report.
    """
    from PIL import Image

    from mammosearch.samples.phantoms import phantom
    from mammosearch.samples.reports import generate_reports

    text = generate_reports(1, seed=20_261_127, typo_rate=0.0)[0].text
    if data is not None:
        rows = read_manifest(manifest_for(data, work))
        if not rows:
            raise InputError("the data has no images to query", fix="check --data")
        return rows[0].image, text
    work.mkdir(parents=True, exist_ok=True)
    image = work / "query_RCC.png"
    Image.fromarray(phantom("C", "CC", "R", seed=20_261_127, lesion="mass")).save(image)
    return image, text

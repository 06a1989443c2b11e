"""The weight-free baseline embedder, ``radiomics.v1``.

Images: breast-tissue descriptors that capture density and texture, computed inside the breast
(the non-zero pixels of a breast-cropped image, without the pectoral muscle where
:func:`mammosearch.imaging.pectoral_mask` finds one), in groups (:data:`CANDIDATES`):

- ``intensity``: moments, percentiles and histogram of the breast's intensities scaled to its
  own 1st-99th percentile range (film and digital exposures differ), its area, raw mean and sd;
- ``density``: the dense (fibroglandular) fraction of the breast at thresholds relative to its
  own intensities (fixed levels of the scaled range, mean + k·sd, Otsu, the upper class of a
  three-class Otsu split) and at fixed raw levels;
- ``glcm``: grey-level co-occurrence properties (scikit-image) per distance;
- ``runlength``: grey-level run-length statistics of rows and columns (a candidate: not in
  this revision's vectors, :data:`GROUPS`);
- ``lbp``: uniform local binary pattern histograms (scikit-image);

the texture groups at three scales: the fine texture at 256 px and the coarser pattern of
fibroglandular tissue on the same breast reduced to 128 and 64 px. Features are standardised
with statistics fitted on a collection (:meth:`RadiomicsEmbedder.fit`, stored with an index),
each group weighted, and L2-normalised. ``bench/density_features.py`` reports what each group
buys for the density probe and vote (docs/RESULTS.md).

Texts: a hashed bag of words and word pairs (scikit-learn ``HashingVectorizer``) of the report's
``standardized_text``, which the pipeline passes in: one canonical English vocabulary of
BI-RADS terms whatever the report's language. Text and image vectors live in different spaces
(``supports_cross_modal`` is false).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mammosearch.embeddings.base import PREPARED_SIZE, l2_normalize
from mammosearch.errors import ConfigError
from mammosearch.imaging import tissue_square
from mammosearch.registry import embedders

__all__ = ["RadiomicsEmbedder"]

_SIDE = 256  # features are computed on the breast fitted to this square
_COARSE = (128, 64)  # coarser scales: the breast reduced to these squares
_LEVELS = 32  # grey levels of the co-occurrence matrices at full scale
_DISTANCES = (1, 3, 6)
_COARSE_DISTANCES = (1, 2)
_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
_PROPS = ("contrast", "homogeneity", "energy", "correlation", "dissimilarity")
_RUN_LEVELS = 16  # grey levels of the run-length statistics
_RUN_STATS = 7  # SRE, LRE, GLNU, RLNU, run percentage, low and high grey-level run emphasis
_DENSE_LEVELS = (0.4, 0.5, 0.6, 0.7)
_SPREADS = (-0.5, 0.0, 0.5, 1.0)  # dense fractions above the breast's mean + k·sd
_PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
_HIST_BINS = 16
_LBP = ((8, 1), (16, 2))  # (points, radius) of each local binary pattern histogram
_LBP_BINS = sum(points + 2 for points, _ in _LBP) * (1 + len(_COARSE))
_TEXT_DIM = 256

_Scale = tuple[NDArray[Any], NDArray[np.bool_]]  # a scale's scaled breast and its mask

# every candidate feature group, in its order in a vector, with its size
CANDIDATES: dict[str, int] = {
    "intensity": 8 + len(_PERCENTILES) + _HIST_BINS,
    "density": 2 * len(_DENSE_LEVELS) + len(_SPREADS) + 3,
    "glcm": len(_PROPS) * (len(_DISTANCES) + len(_COARSE) * len(_COARSE_DISTANCES)),
    "runlength": _RUN_STATS * 2 * (1 + len(_COARSE)),
    "lbp": _LBP_BINS,
}
# the groups this revision's vectors hold: chosen by nested patient-grouped cross-validation on
# MIAS (bench/density_features.py); the run lengths lowered the probe and were left out
GROUPS: tuple[str, ...] = ("intensity", "density", "glcm", "lbp")
# the weight of each group in the embedded vector (what the neighbour vote compares)
_WEIGHTS: dict[str, float] = {"intensity": 0.15, "density": 0.15, "glcm": 0.15, "lbp": 1.0}


def image_features(
    image: NDArray[np.float32], groups: Sequence[str] = GROUPS
) -> NDArray[np.float64]:
    """Density and texture descriptors of a breast-cropped image (background = 0): the
    ``groups`` (of :data:`CANDIDATES`) in order."""
    from skimage.transform import resize

    square = tissue_square(image, _SIDE)
    mask = square > 1e-3
    values = square[mask]
    if values.size < 64:
        return np.zeros(_feature_count(groups), dtype=np.float64)
    scaled = _scaled(square, mask)
    scales: list[_Scale | None] = [(scaled, mask)]
    for side in _COARSE:
        small = resize(square, (side, side), anti_aliasing=True, preserve_range=True)
        small_mask = small > 1e-3
        scales.append((_scaled(small, small_mask), small_mask) if small_mask.sum() >= 16 else None)
    makers: dict[str, Callable[[], NDArray[np.float64]]] = {
        "intensity": lambda: _intensity(scaled[mask], values, float(mask.mean())),
        "density": lambda: _density(scaled[mask], values),
        "glcm": lambda: _cooccurrence(scales),
        "runlength": lambda: _run_lengths(scales),
        "lbp": lambda: np.concatenate([_lbp_histograms(*scale) if scale is not None
                                       else np.zeros(_LBP_BINS // len(scales))
                                       for scale in scales]),
    }  # fmt: skip
    features = np.concatenate([makers[name]() for name in groups])
    return np.nan_to_num(features.astype(np.float64))


def _intensity(inside: NDArray[Any], values: NDArray[Any], area: float) -> NDArray[np.float64]:
    """Moments, percentiles and histogram of the breast's scaled intensities, its area and raw
    mean and sd."""
    mean, std = float(inside.mean()), float(inside.std())
    centred = inside - mean
    skew = float(np.mean(centred**3) / max(std**3, 1e-9))
    kurt = float(np.mean(centred**4) / max(std**4, 1e-9))
    hist = np.histogram(inside, bins=_HIST_BINS, range=(0.0, 1.0))[0] / inside.size
    moments = [mean, std, skew, kurt, float(np.median(inside)), area, float(values.mean()),
               float(values.std())]  # fmt: skip
    return np.concatenate([moments, np.percentile(inside, _PERCENTILES), hist])


def _density(inside: NDArray[Any], values: NDArray[Any]) -> NDArray[np.float64]:
    """Dense (fibroglandular) fractions of the breast at thresholds relative to its own
    intensities: fixed levels of the scaled range, the breast's mean + k·sd, Otsu's threshold
    and the upper class of a three-class Otsu split; and fixed levels of the raw intensities."""
    from skimage.filters import threshold_multiotsu, threshold_otsu

    spread = np.ptp(inside) > 0
    otsu = float(threshold_otsu(inside)) if spread else 0.5
    upper = otsu  # a breast of two grey values has no three classes: its upper one is Otsu's
    if len(np.unique(inside)) > 2:
        with contextlib.suppress(ValueError):  # fewer than three values after binning
            upper = float(threshold_multiotsu(inside, classes=3)[1])
    mean, std = float(inside.mean()), float(inside.std())
    return np.array(
        [float(np.mean(inside > level)) for level in _DENSE_LEVELS]
        + [float(np.mean(inside > mean + k * std)) for k in _SPREADS]
        + [otsu, float(np.mean(inside > otsu)), float(np.mean(inside > upper))]
        + [float(np.mean(values > level)) for level in _DENSE_LEVELS]
    )


def _quantized(scaled: NDArray[Any], mask: NDArray[np.bool_], levels: int) -> NDArray[np.uint8]:
    """Grey levels 1..levels-1 inside the breast, 0 outside."""
    inside = 1 + np.minimum((scaled * (levels - 1)).astype(np.uint8), levels - 2)
    return np.where(mask, inside, 0).astype(np.uint8)


def _cooccurrence(scales: list[_Scale | None]) -> NDArray[np.float64]:
    """GLCM properties per distance (averaged over four angles) at each scale, pairs touching
    the background left out."""
    from skimage.feature import graycomatrix, graycoprops

    texture = []
    for index, scale in enumerate(scales):
        distances = _DISTANCES if index == 0 else _COARSE_DISTANCES
        if scale is None:
            texture.append(np.zeros(len(_PROPS) * len(distances)))
            continue
        levels = _LEVELS if index == 0 else _LEVELS // 2
        grey = _quantized(scale[0], scale[1], levels)
        glcm = graycomatrix(grey, distances=distances, angles=_ANGLES, levels=levels,
                            symmetric=True, normed=False)  # fmt: skip
        glcm[0, :, :, :] = 0  # pairs that touch the background say nothing about tissue
        glcm[:, 0, :, :] = 0
        texture.append(np.concatenate([graycoprops(glcm, prop).mean(axis=1) for prop in _PROPS]))
    return np.concatenate(texture)


def _run_lengths(scales: list[_Scale | None]) -> NDArray[np.float64]:
    """Grey-level run-length statistics (Galloway; Chu, Dasarathy) of rows and of columns at
    each scale: short- and long-run emphasis, grey-level and run-length non-uniformity (as
    shares), run percentage, low and high grey-level run emphasis."""
    stats = []
    for scale in scales:
        for transpose in (False, True):
            if scale is None:
                stats.append(np.zeros(_RUN_STATS))
                continue
            grey = _quantized(scale[0], scale[1], _RUN_LEVELS + 1)
            stats.append(_run_statistics(grey.T if transpose else grey))
    return np.concatenate(stats)


def _run_statistics(grey: NDArray[np.uint8]) -> NDArray[np.float64]:
    """The :data:`_RUN_STATS` statistics of the runs along the rows of ``grey`` (0 = outside)."""
    padded = np.pad(grey.astype(np.int16), ((0, 0), (0, 1)), constant_values=-1).ravel()
    starts = np.flatnonzero(np.diff(padded, prepend=-2) != 0)
    lengths = np.diff(np.append(starts, padded.size)).astype(np.float64)
    levels = padded[starts]
    keep = levels > 0
    lengths, levels = lengths[keep], levels[keep].astype(np.float64)
    if lengths.size == 0:
        return np.zeros(_RUN_STATS)
    runs = lengths.size
    by_level = np.bincount(levels.astype(np.int64), minlength=_RUN_LEVELS + 1)
    by_length = np.bincount(lengths.astype(np.int64))
    return np.array([
        float(np.mean(1.0 / lengths**2)),
        float(np.mean(lengths**2)) / grey.shape[1],
        float(np.sum(by_level.astype(np.float64) ** 2)) / runs**2,
        float(np.sum(by_length.astype(np.float64) ** 2)) / runs**2,
        runs / float(lengths.sum()),
        float(np.mean(1.0 / levels**2)),
        float(np.mean(levels**2)) / _RUN_LEVELS**2,
    ])  # fmt: skip


def _scaled(square: NDArray[Any], mask: NDArray[np.bool_]) -> NDArray[Any]:
    """Intensities relative to the breast's own 1st-99th percentile range (robust to exposure
    and film), clipped to [0, 1]."""
    lo, hi = np.percentile(square[mask], [1, 99])
    scaled: NDArray[Any] = np.clip((square - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return scaled


def _lbp_histograms(scaled: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Uniform LBP histograms (one per :data:`_LBP` entry) of the pixels inside ``mask``."""
    from skimage.feature import local_binary_pattern

    grey = (scaled * 255).astype(np.uint8)
    hists = []
    for points, radius in _LBP:
        lbp = local_binary_pattern(grey, points, radius, "uniform")
        counts = np.bincount(lbp[mask].astype(np.int64), minlength=points + 2)[: points + 2]
        hists.append(counts / max(counts.sum(), 1))
    return np.concatenate(hists)


def group_slices(groups: Sequence[str] = GROUPS) -> dict[str, slice]:
    """Where each of ``groups`` lies in a feature vector of them."""
    slices, start = {}, 0
    for name in groups:
        slices[name] = slice(start, start + CANDIDATES[name])
        start += CANDIDATES[name]
    return slices


def _group_weights() -> NDArray[np.float64]:
    vector = np.zeros(_feature_count())
    for name, part in group_slices().items():
        vector[part] = _WEIGHTS[name]
    return vector


def _feature_count(groups: Sequence[str] = GROUPS) -> int:
    return sum(CANDIDATES[name] for name in groups)


class RadiomicsEmbedder:
    """Weight-free density/texture image vectors and hashed BI-RADS-term text vectors.

    Args:
        stats: Feature means and standard deviations (``{"mean": [...], "std": [...]}``), as
            :attr:`stats` returns after :meth:`fit`; without them features are only scaled to
            unit length.
    """

    name = "radiomics.v1"
    model_id = (
        "radiomics.v1 (weight-free; rev 4: pectoral muscle excluded, relative dense fractions, "
        "GLCM and LBP at 3 scales)"
    )
    supports_cross_modal = False
    prepared_size = PREPARED_SIZE
    preprocess: dict[str, Any] = {"size": _SIDE, "mean": None, "std": None}
    weights_sha256 = None

    def __init__(self, stats: dict[str, list[float]] | None = None) -> None:
        self.dim = _feature_count()
        self.text_dim = _TEXT_DIM
        self._mean: NDArray[np.float64] | None = None
        self._std: NDArray[np.float64] | None = None
        if stats is not None:
            self.set_stats(stats)

    @property
    def stats(self) -> dict[str, list[float]] | None:
        """The fitted standardisation statistics (JSON-ready), or ``None``."""
        if self._mean is None or self._std is None:
            return None
        return {"mean": self._mean.tolist(), "std": self._std.tolist()}

    def set_stats(self, stats: dict[str, list[float]]) -> None:
        """Use stored standardisation statistics.

        Raises:
            ConfigError: They do not match this version's feature count.
        """
        mean = np.asarray(stats.get("mean", []), dtype=np.float64)
        std = np.asarray(stats.get("std", []), dtype=np.float64)
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ConfigError(
                f"radiomics statistics have {mean.size} features; radiomics.v1 (rev 4) has "
                f"{self.dim}: they were fitted by another revision of its features",
                fix="rebuild the index (or retrain the density model) with this version",
            )
        self._mean, self._std = mean, np.where(std > 1e-9, std, 1.0)

    def features(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float64]:
        """Raw (unstandardised) features, ``n×dim``."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float64)
        return np.stack([image_features(img) for img in images])

    def fit(self, images: Sequence[NDArray[np.float32]]) -> RadiomicsEmbedder:
        """Fit the standardisation statistics on a collection of images."""
        self.fit_features(self.features(images))
        return self

    def fit_features(self, features: NDArray[np.float64]) -> dict[str, list[float]]:
        """Fit the statistics on raw features (``n×dim``); returns them (for the index)."""
        stats = {"mean": features.mean(axis=0).tolist(), "std": features.std(axis=0).tolist()}
        self.set_stats(stats)
        return stats

    def embed_features(self, features: NDArray[np.float64]) -> NDArray[np.float32]:
        """Standardise (when fitted), weight the feature groups and L2-normalise raw features."""
        if self._mean is not None and self._std is not None:
            features = (features - self._mean) / self._std
        return l2_normalize(features * _group_weights())

    def embed_images(self, images: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Embed breast-cropped H×W float32 images in [0, 1]; returns ``n×dim``."""
        return self.embed_features(self.features(images))

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Hashed words and word pairs of canonical report texts; returns ``n×256``."""
        from sklearn.feature_extraction.text import HashingVectorizer

        vectorizer = HashingVectorizer(
            n_features=_TEXT_DIM, ngram_range=(1, 2), alternate_sign=False, norm=None
        )
        matrix = vectorizer.transform(list(texts)).toarray()
        return l2_normalize(matrix)


@embedders.register("radiomics.v1")
def create_radiomics(**options: Any) -> RadiomicsEmbedder:
    """Factory of :class:`RadiomicsEmbedder` (``stats``)."""
    return RadiomicsEmbedder(**options)

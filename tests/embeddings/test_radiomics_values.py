"""The radiomics features on values reasoned by hand or by an independent reference.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md): small
synthetic breasts whose intensities, dense fractions, quantised grey levels, LBP codes and hashed
words are known, and the co-occurrence and LBP groups against scikit-image's own functions on
the same grey levels. Fast (no shared data): the mutation check runs this file for every mutant.
tests/embeddings/test_radiomics.py holds the phantom and MIAS behaviour.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from skimage.filters import threshold_multiotsu, threshold_otsu
from sklearn.utils import murmurhash3_32

from mammosearch.embeddings.radiomics import (
    RadiomicsEmbedder,
    _cooccurrence,
    _density,
    _feature_count,
    _group_weights,
    _intensity,
    _lbp_histograms,
    _quantized,
    _run_lengths,
    _run_statistics,
    _scaled,
    create_radiomics,
    group_slices,
    image_features,
)
from mammosearch.errors import ConfigError
from mammosearch.imaging import tissue_square

_ANGLES = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
_PROPS = ("contrast", "homogeneity", "energy", "correlation", "dissimilarity")


def two_tone(low: float = 0.25, high: float = 0.625) -> np.ndarray:
    """A 256×256 image (the features' own size: fitted unchanged) whose breast is its left half,
    ``low`` above and ``high`` below; no pectoral muscle to remove."""
    image = np.zeros((256, 256), dtype=np.float32)
    image[:128, :128], image[128:, :128] = low, high
    return image


def random_scale(seed: int, side: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Scaled intensities in [0, 1] (a few exactly 0 and 1) and a disc-shaped breast mask."""
    rng = np.random.default_rng(seed)
    scaled = rng.random((side, side))
    scaled[0, :3], scaled[-1, :3] = 0.0, 1.0
    yy, xx = np.mgrid[0:side, 0:side]
    mask = (yy - side / 2) ** 2 + (xx - side / 3) ** 2 < (side / 2.2) ** 2
    return scaled, mask


# --- intensity -----------------------------------------------------------------------------


def test_intensity_moments_percentiles_and_histogram() -> None:
    inside = np.array([0.0, 0.0, 0.5, 1.0])
    raw = np.array([0.2, 0.3, 0.5, 0.9])
    got = _intensity(inside, raw, 0.3)
    assert got.shape == (31,)
    expected_moments = [
        0.375,  # mean
        float(np.sqrt(0.171875)),  # population sd: squared deviations 0.6875 over 4
        float(sps.skew(inside)),
        float(sps.kurtosis(inside, fisher=False)),  # plain (not excess) kurtosis
        0.25,  # median of 0, 0, 0.5, 1
        0.3,  # the area as given
        0.475,  # raw mean
        float(np.std(raw)),
    ]
    np.testing.assert_allclose(got[:8], expected_moments, rtol=1e-12)
    # percentiles 5 10 25 50 75 90 95, linear between the sorted values 0 0 0.5 1
    np.testing.assert_allclose(got[8:15], [0, 0, 0, 0.25, 0.625, 0.85, 0.925], atol=1e-12)
    # 16 bins over [0, 1] as shares: 0 twice in the first, 0.5 in the ninth, 1 in the last
    hist = np.zeros(16)
    hist[0], hist[8], hist[15] = 0.5, 0.25, 0.25
    np.testing.assert_allclose(got[15:], hist, atol=1e-12)


def test_a_flat_breast_has_zero_skew_and_kurtosis() -> None:
    got = _intensity(np.full(10, 0.4), np.full(10, 0.7), 0.1)
    np.testing.assert_allclose(got[:8], [0.4, 0.0, 0.0, 0.0, 0.4, 0.1, 0.7, 0.0], atol=1e-12)
    # the histogram's bins are fixed on [0, 1], not on the breast's own range: 0.4 falls in
    # the seventh of 16
    assert got[15:].tolist() == [0.0] * 6 + [1.0] + [0.0] * 9


def test_image_features_of_a_two_tone_breast() -> None:
    """Left half of the square, 0.25 above and 0.625 below: scaled to its own 1st-99th
    percentiles the breast is 0 and 1 in equal halves."""
    image = two_tone()
    assert np.array_equal(tissue_square(image, 256), image)  # the premise: fitted unchanged
    got = image_features(image, groups=("intensity", "density"))
    assert got.shape == (31 + 15,)
    moments = [0.5, 0.5, 0.0, 1.0, 0.5, 0.5, 0.4375, 0.1875]  # area: half the square
    percentiles = [0, 0, 0, 0.5, 1, 1, 1]
    hist = [0.5] + [0.0] * 14 + [0.5]
    np.testing.assert_allclose(got[:31], moments + percentiles + hist, atol=1e-6)
    dense = got[31:]
    np.testing.assert_allclose(dense[:4], 0.5)  # scaled levels 0.4-0.7: the lower half is 0
    # mean + k·sd = 0.25, 0.5, 0.75, 1.0: nothing lies above 1
    np.testing.assert_allclose(dense[4:8], [0.5, 0.5, 0.5, 0.0])
    assert 0.0 <= dense[8] < 1.0 and dense[9] == dense[10] == 0.5
    # raw levels 0.4-0.7: 0.625 is above the first three only
    np.testing.assert_allclose(dense[11:], [0.5, 0.5, 0.5, 0.0])


def test_image_features_needs_64_breast_pixels_and_16_at_a_coarse_scale() -> None:
    block = np.zeros((256, 256), dtype=np.float32)
    block[100:108, 100:108] = 0.5  # 64 pixels: at 64 px, 2×2 blurred over exactly 16 pixels
    every = ("intensity", "density", "glcm", "lbp")
    features = image_features(block, groups=every)
    slices = group_slices(every)
    assert features[slices["intensity"]][5] == pytest.approx(64 / 256**2)  # the area
    lbp = features[slices["lbp"]]
    # every scale has a histogram of its own, the 64 px one too (16 pixels are enough)
    assert [round(lbp[a:b].sum(), 9) for a, b in ((0, 28), (28, 56), (56, 84))] == [2, 2, 2]
    block[100, 100] = 0.0  # 63 pixels: too few, a zero vector
    assert not image_features(block, groups=every).any()
    faint = np.zeros((256, 256), dtype=np.float32)
    faint[100:110, 100:110] = 0.002  # above the 0.001 background cut
    assert image_features(faint, groups=("intensity",))[5] == pytest.approx(100 / 256**2)
    faint[100:110, 100:110] = 0.001  # at the cut: background
    assert not image_features(faint, groups=("intensity",)).any()


def test_a_coarse_scale_with_too_few_pixels_gives_zeros() -> None:
    block = np.zeros((256, 256), dtype=np.float32)
    # 100 faint pixels: the anti-aliased reductions lose its edge below the background cut,
    # 25 pixels left at 128 px, 4 at 64 px (too few: that scale has no texture)
    block[100:110, 100:110] = 0.002
    every = ("glcm", "lbp")
    features = image_features(block, groups=every)
    glcm, lbp = features[:35], features[35:]
    assert not glcm[25:].any() and glcm[:25].any()  # 15 + 10 at 256 and 128 px, 10 zeros
    assert [round(lbp[a:b].sum(), 9) for a, b in ((0, 28), (28, 56), (56, 84))] == [2, 2, 0]


def test_coarse_scales_are_the_breast_reduced_and_scaled_on_its_own() -> None:
    """At 128 and 64 px the texture is that of the square reduced with anti-aliasing
    (scikit-image's resize), its breast the pixels above the background cut, its intensities
    scaled to that breast's own percentiles (not the background's)."""
    from skimage.transform import resize

    image = two_tone()
    got = image_features(image, groups=("glcm", "lbp"))
    scales = []
    for side in (128, 64):
        small = resize(image, (side, side), anti_aliasing=True, preserve_range=True)
        mask = small > 1e-3
        scales.append((_scaled(small, mask), mask))
    np.testing.assert_allclose(got[15:35], _cooccurrence([None, *scales])[15:], rtol=1e-9)
    np.testing.assert_allclose(
        got[35 + 28 :], np.concatenate([_lbp_histograms(*s) for s in scales])
    )


# --- density -------------------------------------------------------------------------------


def test_dense_fractions_at_fixed_and_spread_levels() -> None:
    """0, 0.5 and 1 ten times each: mean 0.5, sd √(1/6) = 0.408; the raw values 0.3, 0.5 and
    0.65. A value equal to a level is not above it."""
    inside = np.repeat([0.0, 0.5, 1.0], 10)
    raw = np.repeat([0.3, 0.5, 0.65], 10)
    got = _density(inside, raw)
    assert got.shape == (15,)
    np.testing.assert_allclose(got[:4], [2 / 3, 1 / 3, 1 / 3, 1 / 3])  # levels 0.4 0.5 0.6 0.7
    # mean + k·sd for k = -0.5, 0, 0.5, 1: 0.296, 0.5, 0.704, 0.908
    np.testing.assert_allclose(got[4:8], [2 / 3, 1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(got[11:], [2 / 3, 1 / 3, 1 / 3, 0.0])  # the raw values


def test_otsu_and_the_upper_class_of_three() -> None:
    """50 pixels at 0.1, 30 at 0.5, 20 at 0.9: Otsu splits off the 0.1s (half the breast above
    it), the three-class split's upper class is the 0.9s (a fifth)."""
    inside = np.repeat([0.1, 0.5, 0.9], [50, 30, 20])
    got = _density(inside, inside)
    assert got[8] == threshold_otsu(inside) and 0.1 <= got[8] < 0.5
    assert 0.5 <= threshold_multiotsu(inside, classes=3)[1] < 0.9
    assert (got[9], got[10]) == (0.5, 0.2)


def test_a_pixel_at_the_threshold_is_not_dense() -> None:
    """0, 101/512 and 1: scikit-image's thresholds are the centres of 256 bins over [0, 1],
    (2i + 1)/512, so both the Otsu and the three-class split fall exactly on the middle value
    (the first of equally good splits): the dense pixels are those above it (scikit-image's
    foreground, ``image > threshold``), the 1s only."""
    middle = 101 / 512
    inside = np.repeat([0.0, middle, 1.0], [40, 20, 40])
    assert threshold_otsu(inside) == middle == threshold_multiotsu(inside, classes=3)[1]
    got = _density(inside, inside)
    assert (got[8], got[9], got[10]) == (middle, 0.4, 0.4)


def test_two_grey_values_and_a_flat_breast() -> None:
    two = np.repeat([0.2, 0.8], [30, 70])
    got = _density(two, two)
    assert got[8] == threshold_otsu(two) and (got[9], got[10]) == (0.7, 0.7)
    # three values, two of them in one of the 256 bins of the three-class split: no three
    # classes, the upper one is Otsu's
    close = np.repeat([0.2, 0.2 + 1e-6, 0.8], [20, 10, 70])
    got = _density(close, close)
    assert got[8] == threshold_otsu(close) and (got[9], got[10]) == (0.7, 0.7)
    flat = _density(np.full(20, 0.375), np.full(20, 0.375))
    # no spread: Otsu's threshold is taken as 0.5 and nothing is dense
    assert flat.tolist() == [0.0] * 8 + [0.5, 0.0, 0.0] + [0.0] * 4


# --- grey levels, co-occurrence, run lengths -----------------------------------------------


def test_quantized_grey_levels() -> None:
    scaled = np.array([[0.0, 0.5, 0.99, 1.0, 1.0]])
    mask = np.array([[True, True, True, True, False]])
    # 32 levels: 1 + floor(31 x), the top value folded into 31; 0 outside
    assert _quantized(scaled, mask, 32).tolist() == [[1, 16, 31, 31, 0]]
    assert _quantized(scaled, mask, 17).tolist() == [[1, 9, 16, 16, 0]]
    assert _quantized(scaled, mask, 32).dtype == np.uint8


def _reference_glcm(grey: np.ndarray, distances: tuple[int, ...], levels: int) -> np.ndarray:
    glcm = graycomatrix(grey, distances=distances, angles=_ANGLES, levels=levels, symmetric=True)
    glcm[0, :], glcm[:, 0] = 0, 0
    return np.concatenate([graycoprops(glcm, p).mean(axis=1) for p in _PROPS])


def test_cooccurrence_against_scikit_image() -> None:
    """Per scale: the five properties (property by property, distances within), averaged over
    the four angles, pairs that touch the background left out; 32 grey levels at full scale,
    16 at the coarser ones; a missing scale gives zeros."""
    full, coarse = random_scale(1), random_scale(2, side=20)
    got = _cooccurrence([full, None, coarse])
    assert got.shape == (35,)
    grey_full = _quantized(full[0], full[1], 32)
    grey_coarse = _quantized(coarse[0], coarse[1], 16)
    np.testing.assert_allclose(got[:15], _reference_glcm(grey_full, (1, 3, 6), 32), rtol=1e-12)
    assert not got[15:25].any()
    np.testing.assert_allclose(got[25:], _reference_glcm(grey_coarse, (1, 2), 16), rtol=1e-12)
    # the background pairs matter: with them the contrast is another number
    kept = graycoprops(
        graycomatrix(grey_full, distances=(1,), angles=_ANGLES, levels=32, symmetric=True),
        "contrast",
    ).mean()
    assert abs(got[0] - kept) > 1.0


def test_cooccurrence_of_stripes_by_hand() -> None:
    """Columns alternating grey levels 1 and 2 (scaled 0 and 1/31), all breast: pairs differ by
    one level when their column offset is odd. Distance 1 (offsets 1, 1, 0, 1 columns at 0, 45,
    90, 135 degrees): contrast 3/4; distance 3 (the diagonals round to 2 rows and 2 columns):
    1/4; distance 6: 0."""
    scaled = np.tile([0.0, 1 / 31 + 1e-9], (12, 6))
    mask = np.ones_like(scaled, dtype=bool)
    got = _cooccurrence([(scaled, mask), None, None])
    contrast = got[0:3]
    np.testing.assert_allclose(contrast, [0.75, 0.25, 0.0], atol=1e-12)
    dissimilarity = got[12:15]
    np.testing.assert_allclose(dissimilarity, [0.75, 0.25, 0.0], atol=1e-12)
    assert not got[15:].any()


def test_run_lengths_of_rows_then_columns_at_each_scale() -> None:
    full = random_scale(3)
    got = _run_lengths([full, None, full])
    assert got.shape == (42,)
    grey = _quantized(full[0], full[1], 17)  # 16 grey levels inside the breast
    rows, columns = _run_statistics(grey), _run_statistics(grey.T)
    np.testing.assert_allclose(got[:14], np.concatenate([rows, columns]), rtol=1e-12)
    assert not got[14:28].any()
    np.testing.assert_allclose(got[28:], np.concatenate([rows, columns]), rtol=1e-12)
    assert not np.allclose(rows, columns)


def test_run_statistics_count_a_first_run_at_any_level() -> None:
    """Rows 2 2 1 and 2 · ·: runs of 2, 1 and 1 at levels 2, 1, 2."""
    grey = np.array([[2, 2, 1], [2, 0, 0]], dtype=np.uint8)
    got = _run_statistics(grey)
    assert got[4] == pytest.approx(3 / 4)  # three runs over four breast pixels
    assert got[0] == pytest.approx((1 / 4 + 1 + 1) / 3)
    assert got[5] == pytest.approx((1 / 4 + 1 + 1 / 4) / 3)


def test_run_statistics_of_one_long_run() -> None:
    """One row of five pixels at the top grey level 16 and one of five outside."""
    grey = np.array([[16] * 5, [0] * 5], dtype=np.uint8)
    expected = [1 / 25, 25 / 5, 1.0, 1.0, 1 / 5, 1 / 256, 1.0]
    np.testing.assert_allclose(_run_statistics(grey), expected, rtol=1e-12)


# --- scaling and local binary patterns -----------------------------------------------------


def test_scaled_to_the_first_and_99th_percentiles() -> None:
    square = np.arange(101, dtype=np.float64) / 100  # 0.00 ... 1.00: percentiles 0.01 and 0.99
    mask = np.ones(101, dtype=bool)
    mask[-1] = False  # 1.00 left out: the percentiles of 0.00 ... 0.99 are 0.0099 and 0.9801
    lo, hi = 0.0099, 0.9801
    got = _scaled(square, mask)
    np.testing.assert_allclose(got[[1, 50, 98]], [(v - lo) / (hi - lo) for v in (0.01, 0.5, 0.98)])
    assert got[0] == 0.0 and got[99] == 1.0 and got[100] == 1.0  # clipped below and above
    flat = np.where(np.arange(10) < 5, 0.4, 0.0)
    assert _scaled(flat, flat > 0).tolist() == [0.0] * 10  # no range: no division by zero


def test_lbp_histograms_against_scikit_image() -> None:
    scaled, mask = random_scale(4)
    got = _lbp_histograms(scaled, mask)
    assert got.shape == (28,)
    grey = (scaled * 255).astype(np.uint8)
    expected = []
    for points, radius in ((8, 1), (16, 2)):
        codes = local_binary_pattern(grey, points, radius, "uniform")[mask].astype(int)
        expected.append(np.bincount(codes, minlength=points + 2) / mask.sum())
    np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-12)


def test_lbp_of_a_flat_patch_is_one_code() -> None:
    """Every neighbour equals the centre: the uniform code P (all bits set) everywhere."""
    flat = np.full((9, 9), 0.5)
    inner = np.zeros((9, 9), dtype=bool)
    inner[2:-2, 2:-2] = True  # the codes of the border pixels compare with outside the image
    got = _lbp_histograms(flat, inner)
    expected = np.zeros(28)
    expected[8], expected[10 + 16] = 1.0, 1.0
    np.testing.assert_array_equal(got, expected)
    assert not _lbp_histograms(flat, np.zeros((9, 9), dtype=bool)).any()  # no breast: zeros
    one = np.zeros((9, 9), dtype=bool)
    one[4, 4] = True  # one breast pixel: each histogram is that pixel's code, share 1
    np.testing.assert_array_equal(_lbp_histograms(flat, one), expected)


# --- groups, statistics, embedding ---------------------------------------------------------


def test_group_slices_weights_and_counts() -> None:
    assert group_slices(("density", "lbp")) == {"density": slice(0, 15), "lbp": slice(15, 99)}
    assert group_slices(("runlength",)) == {"runlength": slice(0, 42)}
    assert _feature_count() == 165 and _feature_count(("glcm", "runlength")) == 35 + 42
    weights = _group_weights()
    expected = np.concatenate([np.full(31 + 15 + 35, 0.15), np.ones(84)])
    np.testing.assert_array_equal(weights, expected)


def test_set_stats_rejects_other_feature_counts() -> None:
    embedder = RadiomicsEmbedder()
    assert (embedder.dim, embedder.text_dim, embedder.stats) == (165, 256, None)
    with pytest.raises(ConfigError) as error:
        embedder.set_stats({"mean": [0.0] * 207, "std": [1.0] * 207})
    assert str(error.value).startswith(
        "E010: radiomics statistics have 207 features; radiomics.v1 (rev 4) has 165: they were fitted "
        "by another revision of its features"
    )
    assert error.value.fix == "rebuild the index (or retrain the density model) with this version"
    with pytest.raises(ConfigError, match="have 165 features"):
        embedder.set_stats({"mean": [0.0] * 165, "std": [1.0] * 164})
    with pytest.raises(ConfigError, match="have 0 features"):
        embedder.set_stats({"std": [1.0] * 165})
    with pytest.raises(ConfigError):
        embedder.set_stats({"mean": [0.0] * 165})
    assert embedder.stats is None


def test_fit_standardises_weights_groups_and_normalises() -> None:
    """Two rows apart by a step of its own in every column but the last (0.1 to 3): standardised
    they are ±1 there (population sd: half the step), and 0 in the last (sd 0 counts as 1);
    weighted 0.15 in the first 81 columns, 1 in the LBP columns; then unit length."""
    base = np.linspace(0.0, 2.0, 165)
    step = np.linspace(0.1, 3.0, 165)
    rows = np.stack([base, base + step])
    rows[:, -1] = 3.0
    embedder = RadiomicsEmbedder()
    stats = embedder.fit_features(rows)
    np.testing.assert_allclose(stats["mean"][:-1], (base + step / 2)[:-1])
    np.testing.assert_allclose(stats["std"], [*(step[:-1] / 2), 0.0])
    assert embedder.stats is not None
    np.testing.assert_allclose(embedder.stats["std"], [*(step[:-1] / 2), 1.0])  # sd 0 stored 1
    got = embedder.embed_features(rows)
    assert got.dtype == np.float32
    norm = np.sqrt(81 * 0.15**2 + 83 * 1.0)
    expected = np.concatenate([np.full(81, 0.15), np.ones(83), [0.0]]) / norm
    np.testing.assert_allclose(got, np.stack([-expected, expected]), rtol=1e-6, atol=1e-7)


def test_embed_features_unfitted_only_weights_and_normalises() -> None:
    features = np.ones((1, 165))
    norm = np.sqrt(81 * 0.15**2 + 84)
    expected = np.concatenate([np.full(81, 0.15), np.ones(84)]) / norm
    np.testing.assert_allclose(RadiomicsEmbedder().embed_features(features)[0], expected, 1e-6)


def test_fit_returns_the_embedder_and_stores_image_statistics() -> None:
    images = [two_tone(), two_tone(0.25, 0.75)]
    embedder = RadiomicsEmbedder()
    assert embedder.fit(images) is embedder
    features = embedder.features(images)
    assert embedder.stats is not None
    np.testing.assert_allclose(embedder.stats["mean"], features.mean(axis=0))
    assert embedder.features([]).shape == (0, 165) and embedder.features([]).dtype == np.float64
    again = create_radiomics(stats=embedder.stats)
    assert again.stats == embedder.stats


def _hashed(text: str) -> np.ndarray:
    """Counts of the lower-cased words of 2+ characters and of adjacent word pairs, each in
    bucket |murmurhash3_32| mod 256, as unit vector."""
    import re

    words = re.findall(r"\b\w\w+\b", text.lower())
    terms = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    vector = np.zeros(256)
    for term in terms:
        vector[abs(murmurhash3_32(term, seed=0)) % 256] += 1
    return vector / np.linalg.norm(vector)


def test_text_vectors_are_hashed_counts_of_words_and_pairs() -> None:
    texts = ["Mass mass calcification, ACR C.", "Benign calcifications a b"]
    got = RadiomicsEmbedder().embed_texts(texts)
    assert got.shape == (2, 256) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.stack([_hashed(t) for t in texts]), rtol=1e-6)
    # the signs are all positive: some of these terms hash to negative numbers
    terms = ["mass", "mass mass", "calcification", "acr", "benign", "calcifications"]
    assert any(murmurhash3_32(t, seed=0) < 0 for t in terms)

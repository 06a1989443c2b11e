from __future__ import annotations

import csv

import numpy as np
import pytest

from mammosearch.embeddings import create_embedder, list_embedders
from mammosearch.embeddings.radiomics import (
    CANDIDATES,
    GROUPS,
    RadiomicsEmbedder,
    _density,
    _run_statistics,
    group_slices,
    image_features,
)
from mammosearch.errors import ConfigError, RegistryError
from mammosearch.imaging import prepare_image, read_image
from tests.conftest import shared_path


def breast(density: float, seed: int = 0) -> np.ndarray:
    """A breast phantom whose dense fraction grows with ``density``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:200, 0:120]
    inside = (xx / 110.0) ** 2 + ((yy - 100) / 90.0) ** 2 < 1
    tissue = 0.3 + 0.5 * (rng.random((200, 120)) < density) * rng.uniform(0.6, 1.0, (200, 120))
    return np.where(inside, tissue, 0.0).astype(np.float32)


def test_registry_lists_and_rejects() -> None:
    assert {"auto", "biomedclip.v1", "radiomics.v1"} <= set(list_embedders())
    with pytest.raises(RegistryError, match="radiomics.v1"):
        create_embedder("nope.v1")


def test_vectors_are_normalised_and_deterministic() -> None:
    embedder = create_embedder("radiomics.v1")
    batch = [breast(0.1, 1), breast(0.8, 2)]
    a, b = embedder.embed_images(batch), embedder.embed_images(batch)
    assert a.shape == (2, embedder.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, b)


def test_density_signal_orders_neighbours() -> None:
    embedder = RadiomicsEmbedder()
    train = [breast(d, s) for s, d in enumerate([0.05, 0.1, 0.5, 0.55, 0.9, 0.95])]
    embedder.fit(train)
    vectors = embedder.embed_images(train)
    query = embedder.embed_images([breast(0.92, 99)])[0]
    assert int(np.argmax(vectors @ query)) in (4, 5)


def test_feature_groups_tile_the_vector() -> None:
    slices = group_slices()
    assert list(slices) == list(GROUPS) == ["intensity", "density", "glcm", "lbp"]
    assert [s.start for s in slices.values()] == [0, 31, 46, 81]
    assert slices["lbp"].stop == RadiomicsEmbedder().dim == 165
    # every candidate group, run lengths included, in CANDIDATES' order; the adopted groups'
    # columns are the same values
    image = breast(0.4, 7)
    every = image_features(image, groups=tuple(CANDIDATES))
    assert every.shape == (207,)
    columns = group_slices(tuple(CANDIDATES))
    adopted = np.concatenate([every[columns[name]] for name in GROUPS])
    np.testing.assert_array_equal(adopted, image_features(image))


def test_run_length_statistics_by_hand() -> None:
    """Rows 1 1 2 2 and 2 3 3 · (· = outside the breast): runs of lengths 2, 2, 1, 2 at grey
    levels 1, 2, 2, 3 over 7 breast pixels; the 2 2 that ends the first row and the 2 that
    starts the second are two runs, not one."""
    grey = np.array([[1, 1, 2, 2], [2, 3, 3, 0]], dtype=np.uint8)
    expected = [
        (1 / 4 + 1 / 4 + 1 + 1 / 4) / 4,  # short-run emphasis: mean of 1/length²
        (4 + 4 + 1 + 4) / 4 / 4,  # long-run emphasis: mean of length², per row width
        (1 + 2**2 + 1) / 4**2,  # grey-level non-uniformity: runs per level, as a share
        (1 + 3**2) / 4**2,  # run-length non-uniformity: one run of length 1, three of 2
        4 / 7,  # run percentage: runs per breast pixel
        (1 + 1 / 4 + 1 / 4 + 1 / 9) / 4,  # low grey-level run emphasis: mean of 1/level²
        (1 + 4 + 4 + 9) / 4 / 16**2,  # high grey-level run emphasis, per the top level²
    ]
    np.testing.assert_allclose(_run_statistics(grey), expected, rtol=1e-12)
    # down the columns (1 2, 1 3, 2 3, 2 ·) every breast pixel is a run of its own
    assert _run_statistics(grey.T)[4] == pytest.approx(1.0)
    assert _run_statistics(np.zeros((3, 3), dtype=np.uint8)).tolist() == [0.0] * 7


def test_dense_fraction_grows_with_density() -> None:
    """The density group's fractions rise with the phantom's dense share."""
    features = RadiomicsEmbedder().features([breast(d, 3) for d in (0.1, 0.5, 0.9)])
    dense = features[:, group_slices()["density"]]
    otsu_fraction = dense[:, 9]  # after 4 scaled levels, 4 mean + k·sd levels, Otsu itself
    assert otsu_fraction[0] < otsu_fraction[1] < otsu_fraction[2]


def test_a_breast_of_two_grey_values_has_dense_fractions() -> None:
    """No three-class split exists: the upper class is Otsu's (half the pixels above it)."""
    values = np.array([0.2] * 50 + [0.8] * 50)
    dense = _density(values, values)
    assert dense[9] == dense[10] == 0.5  # Otsu's fraction, the upper class's fraction


def test_lbp_histograms_at_three_scales() -> None:
    features = RadiomicsEmbedder().features([breast(0.3)])[0]
    assert features.shape == (165,)
    sizes = [10, 18] * 3  # P8R1 and P16R2 uniform codes at 256, 128 and 64 px
    cuts = np.cumsum([0, *sizes])
    hists = [features[-84:][a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    assert all(abs(h.sum() - 1.0) < 1e-9 for h in hists)
    # a pixel-level speckle looks like noise at 256 px and smooths out when reduced
    assert not np.allclose(hists[0], hists[4], atol=0.05)


def test_stats_round_trip_and_mismatch() -> None:
    fitted = RadiomicsEmbedder().fit([breast(0.2, 1), breast(0.7, 2), breast(0.4, 3)])
    stats = fitted.stats
    assert stats is not None
    again = RadiomicsEmbedder(stats=stats)
    img = [breast(0.5, 5)]
    np.testing.assert_array_equal(fitted.embed_images(img), again.embed_images(img))
    with pytest.raises(ConfigError, match="rebuild the index"):
        RadiomicsEmbedder(stats={"mean": [0.0], "std": [1.0]})


def test_blank_image_gives_a_zero_vector() -> None:
    vec = RadiomicsEmbedder().embed_images([np.zeros((50, 50), dtype=np.float32)])
    assert np.all(vec == 0)


def test_text_vectors() -> None:
    embedder = RadiomicsEmbedder()
    vecs = embedder.embed_texts(
        ["Breast composition: ACR C. Assessment: BI-RADS 4A.", "Breast composition: ACR C.", ""]
    )
    assert vecs.shape == (3, 256)
    assert vecs[0] @ vecs[1] > 0.5 and np.all(vecs[2] == 0)


@pytest.mark.slow
@pytest.mark.shared_data
def test_mias_leave_one_patient_out_accuracy() -> None:
    """Nearest neighbour of each image among other patients' images, with the standardisation
    statistics fitted on those other patients only (the query's own patient never shapes them).
    A check, not an accuracy: the feature set was chosen while looking at these films."""
    folder = shared_path("mini-mias")
    with (folder / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    embedder = RadiomicsEmbedder()
    images = [prepare_image(read_image(folder / r["image"]), 512) for r in rows]
    features = embedder.features(images)
    labels = np.array([r["density"] for r in rows])
    patients = np.array([r["patient_id"] for r in rows])
    correct = 0
    for patient in np.unique(patients):
        held, train = patients == patient, patients != patient
        embedder.set_stats({"mean": features[train].mean(0).tolist(),
                            "std": features[train].std(0).tolist()})  # fmt: skip
        vectors = embedder.embed_features(features)
        sims = vectors[held] @ vectors[train].T
        correct += int(np.sum(labels[train][sims.argmax(axis=1)] == labels[held]))
    accuracy = correct / len(rows)
    assert accuracy >= 0.55, accuracy  # majority class is 0.35

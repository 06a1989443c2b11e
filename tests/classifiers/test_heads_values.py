"""The density heads on values worked out by hand or by scikit-learn directly: the linear
probe's regularisation (patient-grouped cross-validation over the grid, by log-loss), its
weights placed in the label rows (two classes, a label without training images), the folds,
the standardised softmax, the saved file; the prompt ensembles; the zero-shot class vectors
and their scaled softmax.

Fast (a few seconds), so that the mutation check (bench/mutation.py, docs/MUTATION.md) can run
it for every mutant of ``classifiers/heads.py``; tests/classifiers/test_heads.py holds the
behaviour on realistic data, images and the CLI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler

from mammosearch.classifiers import LinearProbe, ZeroShotDensity, density_prompts
from mammosearch.errors import InputError, ModelLoadError

GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # the documented grid of C
BIRADS = ["A", "B", "C", "D"]
MIAS = ["F", "G", "D"]


def _standardise(x: NDArray[np.float64]) -> NDArray[np.float64]:
    z: NDArray[np.float64] = (x - x.mean(axis=0)) / x.std(axis=0)
    return z


def _reference_c(x: NDArray[np.float64], y: NDArray[np.int_], groups: Sequence[str], n_splits: int,
                 seed: int) -> float:  # fmt: skip
    """The C of the grid with the lowest mean log-loss over patient-grouped folds, by hand; a
    class a fold's training rows lack has probability 0 there (clipped by ``log_loss``)."""
    z, classes = _standardise(x), sorted(set(y.tolist()))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    splits = list(splitter.split(z, y, np.asarray(groups)))
    best: tuple[float, float] | None = None
    for c in GRID:
        losses = []
        for train, test in splits:
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
            model.fit(z[train], y[train])
            probabilities = np.zeros((len(test), len(classes)))
            probabilities[:, [classes.index(k) for k in model.classes_]] = model.predict_proba(
                z[test]
            )
            losses.append(log_loss(y[test], probabilities, labels=classes))
        if best is None or float(np.mean(losses)) < best[0]:
            best = (float(np.mean(losses)), c)
    assert best is not None
    return best[1]


def _uneven() -> tuple[NDArray[np.float64], NDArray[np.int_], list[str], list[str]]:
    """A, B and D of the BI-RADS labels (C has no image), 10, 6 and 4 images, two per patient:
    D has two patients, which caps the folds at 2. A noisy signal (chosen so that the grid's
    choice is neither end, and differs with the folds' seed and without class weights)."""
    rng = np.random.default_rng(11)
    y = np.asarray([0] * 10 + [1] * 6 + [3] * 4)
    x = rng.normal(size=(20, 3))
    x[:, 0] += 0.9 * y
    x[:, 1] += 0.45 * (y == 1)
    x = x.astype(np.float32).astype(np.float64)  # the float32 the probe takes, exactly
    return x, y, [BIRADS[i] for i in y], [f"p{i // 2}" for i in range(20)]


@pytest.fixture(scope="module")
def uneven() -> tuple[LinearProbe, LogisticRegression, NDArray[np.float64], float]:
    x, y, truth, patients = _uneven()
    probe = LinearProbe.fit(x.astype(np.float32), truth, patients, BIRADS)
    c = _reference_c(x, y, patients, 2, seed=0)
    z = _standardise(x)
    reference = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(z, y)
    return probe, reference, z, c


def test_probe_chooses_c_by_grouped_cross_validated_log_loss(uneven: Any) -> None:
    probe, _, _, c = uneven
    assert c == 0.3  # the reference's choice on these data: inside the grid
    assert probe.info == {"C": 0.3, "n": 20, "folds": 2}  # 2 folds: D has two patients


def test_probe_fold_seed_changes_the_split() -> None:
    x, y, truth, patients = _uneven()
    probe = LinearProbe.fit(x.astype(np.float32), truth, patients, BIRADS, seed=1)
    c = _reference_c(x, y, patients, 2, seed=1)
    assert c == 1.0 and probe.info["C"] == 1.0  # seed 0 chooses 0.3


def test_probe_weights_sit_in_their_label_rows_and_an_absent_label_is_never_chosen(
    uneven: Any,
) -> None:
    probe, reference, z, _ = uneven
    x, _, _, _ = _uneven()
    np.testing.assert_allclose(probe.mean, x.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(probe.scale, x.std(axis=0), rtol=1e-9)
    assert probe.labels == BIRADS
    np.testing.assert_allclose(probe.coef[[0, 1, 3]], reference.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probe.intercept[[0, 1, 3]], reference.intercept_, rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    assert np.all(probe.coef[2] == 0.0) and probe.intercept[2] <= -1e9
    probs = probe.predict_proba(x.astype(np.float32))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs[:, [0, 1, 3]], reference.predict_proba(z), atol=1e-5)
    assert np.all(probs[:, 2] == 0.0)
    expected = [BIRADS[[0, 1, 3][i]] for i in reference.predict_proba(z).argmax(axis=1)]
    assert probe.predict(x.astype(np.float32)) == expected
    assert set(expected) == {"A", "B", "D"}  # every present label is predicted somewhere


class _Embedder:
    name, model_id, dim = "stub.v1", "stub-model", 2


def test_probe_two_classes_without_enough_patients_to_cross_validate() -> None:
    """F and D of F, G, D; F has one patient: no folds, scikit-learn's C=1. scikit-learn keeps
    one row of weights for two classes (D against F); the probe's F row is zero."""
    x = np.asarray([[0.0, 1.0], [0.5, 0.0], [2.0, 1.0], [3.0, 0.5], [2.5, 2.0], [4.0, 1.0]])
    truth = ["F", "F", "D", "D", "D", "D"]
    patients = ["p0", "p0", "p1", "p2", "p3", "p3"]
    probe = LinearProbe.fit(x.astype(np.float32), truth, patients, MIAS, embedder=_Embedder())
    assert probe.info == {"C": 1.0, "n": 6, "folds": 1, "embedder": "stub.v1",
                          "model_id": "stub-model", "dim": 2}  # fmt: skip
    z = StandardScaler().fit_transform(x)
    reference = LogisticRegression(C=1.0, class_weight="balanced").fit(z, [0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(probe.coef[0], 0.0)
    # float64 throughout: a fit in float32 differs from scikit-learn's by about 1e-7
    np.testing.assert_allclose(probe.coef[2], reference.coef_[0], rtol=1e-10)
    assert probe.intercept[0] == 0.0
    assert probe.intercept[2] == pytest.approx(reference.intercept_[0], rel=1e-10)
    assert np.all(probe.coef[1] == 0.0) and probe.intercept[1] <= -1e9
    probs = probe.predict_proba(x.astype(np.float32))
    np.testing.assert_allclose(probs[:, [0, 2]], reference.predict_proba(z), atol=1e-5)
    assert probe.predict(x.astype(np.float32)) == ["F", "F", "D", "D", "D", "D"]


def test_probe_noise_takes_the_strongest_regularisation_and_the_folds_asked() -> None:
    """No signal at all: the smallest C of the grid fits held-out patients best."""
    x = np.random.default_rng(0).normal(size=(24, 3))
    truth = [MIAS[i % 3] for i in range(24)]
    probe = LinearProbe.fit(x.astype(np.float32), truth, [f"p{i}" for i in range(24)], MIAS,
                            folds=2)  # fmt: skip
    assert probe.info == {"C": 0.01, "n": 24, "folds": 2}


def test_probe_separable_classes_take_the_weakest_regularisation_and_five_folds() -> None:
    """Six patients per class, far apart: the largest C of the grid, 5 folds by default."""
    rng = np.random.default_rng(0)
    y = np.arange(18) % 3
    x = rng.normal(size=(18, 3))
    x[:, 0] += 4.0 * y
    probe = LinearProbe.fit(x.astype(np.float32), [MIAS[i] for i in y],
                            [f"p{i}" for i in range(18)], MIAS)  # fmt: skip
    assert probe.info == {"C": 10.0, "n": 18, "folds": 5}


def test_probe_scores_folds_that_lack_a_class_over_every_class() -> None:
    """Patients with images of several classes: the seeded grouped split holds out both of D's
    patients in one fold, so the other fold has no D to train on and none held out. Each fold
    is still scored over F, G and D (``predict_proba`` of the D-less fold has two columns; its
    scores were NaN for every C, and C fell to the grid's first, 0.01, with warnings)."""
    y = np.asarray([2, 0, 0, 0, 0, 2, 2, 1, 0, 0, 0, 1])
    patients = [f"p{g}" for g in (3, 2, 1, 0, 3, 3, 0, 0, 2, 1, 4, 2)]
    splitter = StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=0)
    held_out = [set(y[test].tolist()) for _, test in splitter.split(y, y, patients)]
    assert {0, 1} in held_out  # the case this test is about: no D held out
    x = np.random.default_rng(3).normal(size=(12, 2))
    x[:, 0] += y
    x = x.astype(np.float32).astype(np.float64)
    probe = LinearProbe.fit(x.astype(np.float32), [MIAS[i] for i in y], patients, MIAS)
    c = _reference_c(x, y, patients, 2, seed=0)
    assert c == 3.0 and probe.info == {"C": 3.0, "n": 12, "folds": 2}


def test_probe_fit_errors() -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    for truth, patients in ((["F", "D", "F"], ["p0", "p1", "p2", "p3"]),
                            (["F", "D", "F", "D"], ["p0", "p1", "p2"])):  # fmt: skip
        with pytest.raises(InputError) as raised:
            LinearProbe.fit(x, truth, patients, MIAS)
        assert raised.value.message == "vectors, labels and patients differ in length"
    with pytest.raises(InputError, match=r"labels outside the label set: \['X', 'Y'\]"):
        LinearProbe.fit(x, ["Y", "F", "X", "D"], ["p0", "p1", "p2", "p3"], MIAS)
    with pytest.raises(InputError) as raised:
        LinearProbe.fit(x, ["G"] * 4, ["p0", "p1", "p2", "p3"], MIAS)
    assert raised.value.message == "a probe needs images of at least two density classes"


def _hand_probe() -> LinearProbe:
    return LinearProbe(["F", "G", "D"], np.asarray([1.0, 2.0]), np.asarray([2.0, 4.0]),
                       np.asarray([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]),
                       np.asarray([0.0, 0.5, 0.0]), {"C": 0.3, "n": 9})  # fmt: skip


def test_probe_probabilities_are_the_softmax_of_standardised_inputs() -> None:
    probe = _hand_probe()
    x = np.asarray([[3.0, 6.0], [1.0, 2.0], [-1.0, -2.0]], dtype=np.float32)
    # standardised: (1, 1), (0, 0), (-1, -1); logits: (1, 1.5, -2), (0, 0.5, 0), (-1, -0.5, 2)
    logits = np.asarray([[1.0, 1.5, -2.0], [0.0, 0.5, 0.0], [-1.0, -0.5, 2.0]])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = probe.predict_proba(x)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    assert probe.predict(x) == ["G", "G", "D"]


def test_probe_probabilities_do_not_overflow_and_rows_are_shifted_alone() -> None:
    """Logits of 1000 overflow ``exp`` unless shifted by the row's maximum; shifting by the
    maximum of all rows would underflow the second row to 0/0."""
    probe = LinearProbe(["F", "D"], np.zeros(1), np.ones(1), np.asarray([[1.0], [-1.0]]),
                        np.zeros(2))  # fmt: skip
    probs = probe.predict_proba(np.asarray([[1000.0], [1.0]], dtype=np.float32))
    e = np.exp(1.0)
    np.testing.assert_allclose(probs, [[1.0, 0.0], [e / (e + 1 / e), (1 / e) / (e + 1 / e)]],
                               rtol=1e-6)  # fmt: skip


def test_probe_rejects_vectors_of_another_length() -> None:
    probe = _hand_probe()
    for bad, shape in ((np.zeros((2, 3)), "(2, 3)"), (np.zeros(2), "(2,)")):
        with pytest.raises(InputError) as raised:
            probe.predict_proba(bad.astype(np.float32))
        assert raised.value.message == f"the probe takes 2-dimensional vectors, got shape {shape}"
        assert raised.value.fix == "embed the images with the embedder the probe was fitted on"


def test_probe_save_writes_its_format_and_load_reads_it_back(tmp_path: Path) -> None:
    probe = _hand_probe()
    path = probe.save(tmp_path / "new" / "probe")
    assert path == tmp_path / "new" / "probe" / "probe.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "format": "mammosearch.linear_probe.v1", "labels": ["F", "G", "D"],
        "info": {"C": 0.3, "n": 9}, "mean": [1.0, 2.0], "scale": [2.0, 4.0],
        "coef": [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], "intercept": [0.0, 0.5, 0.0],
    }  # fmt: skip
    assert probe.save(tmp_path / "new" / "probe") == path  # an existing folder is fine
    again = LinearProbe.load(tmp_path / "new" / "probe")
    assert again.labels == probe.labels and again.info == probe.info
    for name in ("mean", "scale", "coef", "intercept"):
        np.testing.assert_array_equal(getattr(again, name), getattr(probe, name))
    x = np.asarray([[3.0, 6.0], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(again.predict_proba(x), probe.predict_proba(x))


def test_probe_load_errors_and_a_file_without_info(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as raised:
        LinearProbe.load(tmp_path / "empty")
    assert raised.value.message == "no linear probe in 'empty'"
    assert raised.value.fix == "write one with 'mammosearch evaluate probe MANIFEST --save DIR'"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "probe.json").write_text(json.dumps({"format": "something.else"}))
    with pytest.raises(ModelLoadError) as raised:
        LinearProbe.load(tmp_path / "other")
    assert raised.value.message == "probe.json in 'other' is another kind of model"
    (tmp_path / "bare").mkdir()
    body = {"format": "mammosearch.linear_probe.v1", "labels": ["F", "D"], "mean": [0.0],
            "scale": [1.0], "coef": [[1.0], [-1.0]], "intercept": [0.0, 0.0]}  # fmt: skip
    (tmp_path / "bare" / "probe.json").write_text(json.dumps(body))
    assert LinearProbe.load(tmp_path / "bare").info == {}


def test_bundled_prompts_fill_every_template_with_every_description() -> None:
    birads = density_prompts(BIRADS)
    assert list(birads) == BIRADS and all(len(p) == 6 * 4 for p in birads.values())
    assert birads["A"][:5] == [
        "a mammogram of almost entirely fatty breasts.",
        "a mammogram of a fatty breast, BI-RADS breast density category A.",
        "a mammogram of predominantly fatty breast tissue.",
        "a mammogram of breasts composed almost entirely of fat.",
        "a screening mammography image showing almost entirely fatty breasts.",
    ]
    assert birads["D"][-1] == (
        "a craniocaudal or mediolateral oblique mammographic view of a breast composed almost "
        "entirely of dense glandular tissue."
    )
    mias = density_prompts(["D", "F"])  # a subset, in the order asked, of the MIAS set
    assert list(mias) == ["D", "F"] and mias["D"][0] == "a mammogram of a dense-glandular breast."
    assert density_prompts(MIAS)["F"][0].startswith("a mammogram of ")


def test_custom_prompts_files(tmp_path: Path) -> None:
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"low": ["a fatty breast", "fat"], "high": ["a dense breast"]}))
    assert density_prompts(["low", "high"], flat) == {
        "low": ["a fatty breast", "fat"],
        "high": ["a dense breast"],
    }
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"label_sets": {"one": {"x": ["ex"]}, "two": {"x": ["ix"],
                                                                            "y": ["why"]}}}))  # fmt: skip
    assert density_prompts(["x", "y"], sets) == {"x": ["ix"], "y": ["why"]}  # templates: "{}"
    assert density_prompts(["x"], sets) == {"x": ["ex"]}  # the first set that covers the labels
    both = tmp_path / "both.json"
    both.write_text(
        json.dumps({"templates": ["<{}>", "{}!"], "label_sets": {"s": {"x": ["a", "b"]}}})
    )
    assert density_prompts(["x"], both) == {"x": ["<a>", "<b>", "a!", "b!"]}


def test_prompts_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        density_prompts(["low", "high"])
    assert raised.value.message == "no zero-shot prompts for the labels ['low', 'high']"
    assert raised.value.fix == (
        'pass --prompts FILE with {"LABEL": ["prompt", ...], ...} for every label'
    )
    with pytest.raises(InputError, match=r"^E020: cannot read prompts file nope\.json "
                       r"\(FileNotFoundError\)$"):  # fmt: skip
        density_prompts(["x"], tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"cannot read prompts file bad\.json \(JSONDecodeError\)"):
        density_prompts(["x"], tmp_path / "bad.json")
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"low": ["a fatty breast"]}))
    with pytest.raises(InputError, match="no zero-shot prompts"):
        density_prompts(["low", "high"], flat)


class _TextTower:
    """A cross-modal stand-in: each prompt maps to a chosen vector; records what it embeds."""

    name, model_id, dim, supports_cross_modal = "stub.v1", "stub", 3, True

    def __init__(self, table: dict[str, list[float]], logit_scale: float | None = None) -> None:
        self.table, self.calls = table, []  # type: ignore[var-annotated]
        if logit_scale is not None:
            self.logit_scale = logit_scale

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.asarray([self.table[t] for t in texts], dtype=np.float32)


def test_zero_shot_class_vectors_are_unit_means_even_of_short_vectors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Text vectors of norm 0.001 average and normalise to unit length; the default scale is
    CLIP's 100 when the embedder has none."""
    tower = _TextTower({"p": [0.001, 0.0, 0.0], "q": [0.0, 0.001, 0.0], "r": [0.0, 0.0, 0.002]})
    with caplog.at_level(logging.INFO, logger="mammosearch.classifiers.heads"):
        head = ZeroShotDensity(tower, ["lo", "hi"], {"lo": ["p", "q"], "hi": ("r",)})
    assert caplog.messages == ["zero-shot: 2 classes, 3 prompts"]
    assert tower.calls == [["p", "q"], ["r"]]
    assert head.prompts == {"lo": ["p", "q"], "hi": ["r"]} and head.labels == ["lo", "hi"]
    assert head.embedder is tower
    half = np.sqrt(0.5)
    assert head.class_vectors.dtype == np.float32
    np.testing.assert_allclose(head.class_vectors, [[half, half, 0.0], [0.0, 0.0, 1.0]],
                               rtol=1e-6)  # fmt: skip
    assert head.logit_scale == 100.0
    images = np.asarray([[0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]], dtype=np.float32)
    sims = np.asarray([[1.4 * half, 0.0], [0.6 * half, 0.8], [0.0, 1.0]])  # by hand
    expected = np.exp(100 * (sims - sims.max(axis=1, keepdims=True)))
    expected /= expected.sum(axis=1, keepdims=True)  # exp(100 s) alone overflows float32
    probs = head.predict_proba(images)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-30)
    assert head.predict(images) == ["lo", "hi", "hi"]


def test_zero_shot_takes_the_embedders_scale_and_a_zero_mean_stays_zero() -> None:
    tower = _TextTower({"a": [1.0, 0.0, 0.0], "b": [-1.0, 0.0, 0.0], "c": [0.0, 2.0, 0.0]},
                       logit_scale=2.0)  # fmt: skip
    head = ZeroShotDensity(tower, ["x", "y"], {"x": ["a", "b"], "y": ["c"]})
    np.testing.assert_array_equal(head.class_vectors, [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert head.logit_scale == 2.0
    probs = head.predict_proba(np.asarray([[0.0, 1.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probs, [[1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-2.0))]],
                               rtol=1e-6)  # fmt: skip


def test_zero_shot_default_prompts_are_the_bundled_ensembles() -> None:
    bundled = density_prompts(MIAS)
    table = {p: [1.0, float(i), 0.0] for i, lab in enumerate(MIAS) for p in bundled[lab]}
    tower = _TextTower(table)
    head = ZeroShotDensity(tower, MIAS)
    assert head.prompts == bundled and tower.calls == [bundled[lab] for lab in MIAS]


def test_zero_shot_errors() -> None:
    flat = _TextTower({})
    flat.supports_cross_modal = False
    with pytest.raises(InputError) as raised:
        ZeroShotDensity(flat, ["x"], {"x": ["a"]})
    assert (
        raised.value.message == "zero-shot needs an image-text model; stub.v1 has no shared space"
    )
    assert raised.value.fix == "use --embedder biomedclip.v1 (with --model local-dir:PATH offline)"
    tower = _TextTower({"a": [1.0, 0.0, 0.0]})
    with pytest.raises(InputError) as raised:
        ZeroShotDensity(tower, ["x", "y", "z"], {"x": ["a"], "y": []})
    assert raised.value.message == "no prompts for ['y', 'z']"

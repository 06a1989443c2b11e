"""The policy chosen by patient-grouped cross-validation, scored by nested cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from mammosearch.classifiers import choose_policy, nested_scores
from mammosearch.classifiers.policy import apply_policy
from mammosearch.classifiers.selection import fit_temperature
from mammosearch.errors import InputError

LABELS = ["F", "G", "D"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _paths(seed: int, patients: int = 150) -> dict:
    """Two views per patient with one label. ``probe`` and ``convnext`` carry the label with
    independent noise (``convnext`` overconfident: its logits ×6); ``vote`` is overconfident
    noise that knows nothing."""
    rng = np.random.default_rng(seed)
    t = np.repeat(rng.integers(0, 3, patients), 2)
    n = len(t)

    def informative(scale: float) -> np.ndarray:
        return _softmax(scale * (1.2 * np.eye(3)[t] + rng.normal(0, 1, (n, 3))))

    return {
        "truth": [LABELS[i] for i in t],
        "patients": [f"p{i // 2}" for i in range(n)],
        "probabilities": {
            "probe": informative(1.0),
            "convnext": informative(6.0),
            "vote": _softmax(8 * rng.normal(0, 1, (n, 3))),
        },  # fmt: skip
        "margins": rng.uniform(0, 1, n),
        "fold": np.repeat(rng.permutation(np.arange(patients) % 5), 2),
    }


def _nested(data: dict, **kwargs: object) -> dict:
    return nested_scores(data["truth"], LABELS, data["probabilities"], data["patients"],
                         data["margins"], None, data["fold"], **kwargs)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_nested_policy_is_not_worse_than_its_best_path_and_ignores_noise(seed: int) -> None:
    data = _paths(seed)
    scores = _nested(data)["scores"]
    paths = {p: s for p, s in scores.items() if p != "combined"}
    best = max(paths, key=lambda p: paths[p]["mean"])
    noise = paths[best]["sd"] / np.sqrt(len(paths[best]["folds"]))
    assert scores["combined"]["mean"] >= paths[best]["mean"] - noise, scores
    chosen = choose_policy(data["truth"], LABELS, data["probabilities"], data["patients"],
                           data["margins"])  # fmt: skip
    assert "vote" not in chosen["weights"] and chosen["vote_margin"] > 1, chosen["rule"]
    assert chosen["temperatures"]["vote"] > 10 * chosen["temperatures"]["probe"]
    assert chosen["candidates"][chosen["rule"]]["mean"] >= chosen["floor"]


def test_calibration_lets_an_overconfident_path_count_fairly() -> None:
    """Averaged after calibration, the two informative paths beat each alone, on the inner
    folds and on the outer folds; averaged as they are, the overconfident one drowns the
    other."""
    data = _paths(3, patients=250)
    scores = _nested(data)["scores"]
    best_alone = max(scores["probe"]["mean"], scores["convnext"]["mean"])
    assert scores["combined"]["mean"] > best_alone + 0.03, scores
    chosen = choose_policy(data["truth"], LABELS, data["probabilities"], data["patients"],
                           data["margins"])  # fmt: skip
    table = chosen["candidates"]
    assert table["mean(convnext, probe)"]["mean"] > table["convnext"]["mean"] + 0.03, table
    t = np.asarray([LABELS.index(x) for x in data["truth"]])
    as_they_are = apply_policy(
        {"weights": {"convnext": 0.5, "probe": 0.5}},
        data["probabilities"],
        data["margins"],
        np.zeros(len(t), bool),
    )
    raw = float(np.mean(as_they_are.argmax(axis=1) == t))
    assert raw < table["mean(convnext, probe)"]["mean"] - 0.03, (raw, table)


def test_the_scored_folds_labels_never_reach_their_policy() -> None:
    """Outer folds only score: scrambling one fold's labels leaves its predictions unchanged
    (and changes the other folds' policies, which did learn from those rows)."""
    data = _paths(4)
    before = _nested(data)["combined"]
    scrambled = dict(data, truth=list(data["truth"]))
    rng = np.random.default_rng(0)
    for i in np.flatnonzero(data["fold"] == 0):
        scrambled["truth"][i] = LABELS[int(rng.integers(0, 3))]
    after = _nested(scrambled)["combined"]
    scored = data["fold"] == 0
    np.testing.assert_array_equal(before[scored], after[scored])
    assert not np.array_equal(before[~scored], after[~scored])


def test_an_outer_folds_policy_is_the_one_chosen_on_the_other_folds() -> None:
    data = _paths(5)
    nested = _nested(data)
    keep = data["fold"] != 2
    other = choose_policy([t for t, k in zip(data["truth"], keep, strict=True) if k], LABELS,
                          {p: v[keep] for p, v in data["probabilities"].items()},
                          [p for p, k in zip(data["patients"], keep, strict=True) if k],
                          data["margins"][keep])  # fmt: skip
    assert nested["rules"][2] == other["rule"]
    held = {p: v[~keep] for p, v in data["probabilities"].items()}
    np.testing.assert_allclose(nested["combined"][~keep],
                               apply_policy(other, held, data["margins"][~keep],
                                            np.zeros((~keep).sum(), bool)))  # fmt: skip


def test_a_confident_vote_is_gated_when_that_clearly_pays() -> None:
    """The vote is right when its margin is high, the ConvNeXt 80% throughout: the vote gate
    beats every path alone by far more than the noise, so it is chosen."""
    rng = np.random.default_rng(7)
    n = 400
    t = rng.integers(0, 3, n)
    margins = rng.uniform(0, 1, n)

    def path(right: np.ndarray) -> np.ndarray:
        out = np.full((n, 3), 0.15)
        out[np.arange(n), np.where(right, t, (t + rng.integers(1, 3, n)) % 3)] = 0.7
        return out

    vote = path(rng.uniform(size=n) < np.where(margins > 0.5, 0.97, 0.3))
    probabilities = {"vote": vote, "convnext": path(rng.uniform(size=n) < 0.8),
                     "probe": path(rng.uniform(size=n) < 0.6)}  # fmt: skip
    chosen = choose_policy([LABELS[i] for i in t], LABELS, probabilities,
                           [f"p{i}" for i in range(n)], margins)  # fmt: skip
    assert chosen["rule"].startswith("gate(") and 0.3 <= chosen["vote_margin"] <= 0.7
    assert chosen["accuracy"]["convnext"] < 0.85


def test_two_copies_of_a_path_average_to_the_path() -> None:
    data = _paths(6)
    probe = data["probabilities"]["probe"]
    probabilities = {"probe": probe, "convnext": probe.copy()}
    chosen = choose_policy(data["truth"], LABELS, probabilities, data["patients"], data["margins"])
    assert chosen["rule"] == "mean(convnext, probe)"  # the folds cannot tell them apart
    final = apply_policy(chosen, probabilities, data["margins"], np.zeros(len(probe), bool))
    np.testing.assert_array_equal(final.argmax(axis=1), probe.argmax(axis=1))


def test_temperature_fits() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, 600)
    honest = _softmax(np.eye(3)[t] * 1.5 + rng.normal(0, 1, (600, 3)))
    assert 0.5 < fit_temperature(honest, t) < 2.0
    assert fit_temperature(honest**8 / (honest**8).sum(axis=1, keepdims=True), t) > 4
    assert fit_temperature(_softmax(8 * rng.normal(0, 1, (600, 3))), t) > 50


def test_too_few_patients_to_choose() -> None:
    with pytest.raises(InputError, match="too few patients per class"):
        choose_policy(["F", "F", "G", "G"], LABELS, {"probe": np.full((4, 3), 1 / 3)},
                      ["a", "a", "b", "b"], [0.0] * 4)  # fmt: skip

"""The policy choice on values reasoned by hand: the vote gate and its threshold, abstention,
the candidates and their simplicity, the simplest-within-one-SE rule, the stored scores (keys,
rounding to 4 places, the standard error with ``ddof=1``), the folds and seeds, temperatures.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md);
tests/classifiers/test_selection.py holds the behaviour on realistic, noisy paths.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from mammosearch.classifiers import choose_policy, nested_scores
from mammosearch.classifiers.policy import calibrate
from mammosearch.classifiers.selection import _candidates, _simplex, _weights, fit_temperature
from mammosearch.errors import InputError

LABELS = ["F", "G", "D"]


def _probs(predicted: np.ndarray, top: float = 0.8) -> np.ndarray:
    """Rows with ``top`` on the predicted label and the rest shared by the others."""
    out = np.full((len(predicted), len(LABELS)), (1 - top) / (len(LABELS) - 1))
    out[np.arange(len(predicted)), predicted] = top
    return out


def _names(t: np.ndarray) -> list[str]:
    return [LABELS[int(x)] for x in t]


def _patients(n: int) -> list[str]:
    return [f"p{i}" for i in range(n)]


def _gate_rows() -> dict:
    """66 rows of one patient each. The vote is right wherever it does not abstain, whatever its
    margin (0 to 0.9); it abstains on every 7th row (10 rows), with margin 0.99, and is wrong
    there. The probe is right exactly where the vote abstains."""
    i = np.arange(66)
    t = i % 3
    abstain = i % 7 == 0
    margins = np.full(66, 0.99)
    margins[~abstain] = np.linspace(0.0, 0.9, int((~abstain).sum()))
    vote = _probs(np.where(abstain, (t + 1) % 3, t))
    probe = _probs(np.where(abstain, t, (t + 2) % 3))
    return {"t": t, "abstain": abstain, "margins": margins, "fold": (i // 3) % 3,
            "probabilities": {"probe": probe, "vote": vote}}  # fmt: skip


def test_the_gate_trusts_every_vote_that_does_not_abstain_when_only_that_is_right() -> None:
    """Only threshold 0 (every decile leaves right votes to the probe) with abstention respected
    (the abstaining rows have the highest margins) is right everywhere: the gate is perfect on
    every inner fold, its standard error 0, and it is the only candidate within it."""
    data = _gate_rows()
    chosen = choose_policy(_names(data["t"]), LABELS, data["probabilities"], _patients(66),
                           data["margins"], data["abstain"])  # fmt: skip
    assert chosen["rule"] == "gate(probe)"
    assert chosen["weights"] == {"probe": 1.0}
    assert chosen["vote_margin"] == 0.0
    table = chosen["candidates"]
    assert set(table) == {"probe", "vote", "mean(probe, vote)", "gate(probe)", "weighted"}
    assert table["gate(probe)"] == {"mean": 1.0, "se": 0.0, "folds": [1.0] * 5}
    assert chosen["best"] == "gate(probe)" and chosen["floor"] == 1.0
    assert chosen["inner_folds"] == 5 and chosen["n"] == 66
    # each path alone: the probe is right on the 10 abstaining rows, the vote on the 56 others
    assert chosen["accuracy"] == {"probe": 0.1515, "vote": 0.8485}


def test_nested_scores_respect_abstention_in_the_scored_folds() -> None:
    data = _gate_rows()
    abstain, fold, vote = data["abstain"], data["fold"], data["probabilities"]["vote"]
    nested = nested_scores(_names(data["t"]), LABELS, data["probabilities"], _patients(66),
                           data["margins"], abstain, fold)  # fmt: skip
    assert nested["rules"] == ["gate(probe)"] * 3
    assert nested["scores"]["combined"] == {"folds": [1.0] * 3, "mean": 1.0, "sd": 0.0}
    # the vote answers where it does not abstain, with its own probabilities; the probe elsewhere
    np.testing.assert_array_equal(nested["combined"][~abstain], vote[~abstain].astype(np.float32))
    np.testing.assert_array_equal(nested["combined"][abstain].argmax(axis=1), data["t"][abstain])
    right_votes = [round(float(np.mean(~abstain[fold == f])), 4) for f in range(3)]
    assert nested["scores"]["vote"]["folds"] == right_votes


def test_the_vote_threshold_is_the_decile_that_separates_right_votes() -> None:
    """101 margins i/101; the vote is right from row 50 on, the probe before it. Of 0 and the
    deciles (i/101 for i = 10, 20, ..., 90), only the median 50/101 = 0.4950495 separates them:
    stored to 4 places, 0.495."""
    i = np.arange(101)
    t = i % 3
    probabilities = {"vote": _probs(np.where(i >= 50, t, (t + 1) % 3)),
                     "probe": _probs(np.where(i < 50, t, (t + 2) % 3))}  # fmt: skip
    chosen = choose_policy(_names(t), LABELS, probabilities, _patients(101), i / 101)
    assert chosen["rule"] == "gate(probe)"
    assert chosen["vote_margin"] == 0.495


def test_a_weighted_mean_finds_the_one_path_that_is_right() -> None:
    """The probe is always right, the ConvNeXt uniform: every grid point with any probe weight
    is right everywhere, so the weighted rule is perfect on every fold; so is the plain mean,
    but the uniform ConvNeXt is no better than the majority class, so it enters no mean, and
    the probe alone, simplest, is chosen."""
    t = np.arange(30) % 3
    probabilities = {"convnext": np.full((30, 3), 1 / 3), "probe": _probs(t)}
    chosen = choose_policy(_names(t), LABELS, probabilities, _patients(30), np.zeros(30))
    assert chosen["candidates"]["weighted"]["folds"] == [1.0] * 5
    assert chosen["candidates"]["mean(convnext, probe)"]["folds"] == [1.0] * 5
    assert chosen["idle"] == ["convnext"]
    assert chosen["rule"] == "probe" and chosen["weights"] == {"probe": 1.0}


def _noisy(seed: int, patients: int = 60) -> dict:
    """Two views per patient: two informative paths with independent noise (the ConvNeXt
    overconfident) and a vote of noise."""
    rng = np.random.default_rng(seed)
    t = np.repeat(rng.integers(0, 3, patients), 2)

    def informative(scale: float) -> np.ndarray:
        z = scale * (1.2 * np.eye(3)[t] + rng.normal(0, 1, (len(t), 3)))
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return {"truth": _names(t), "patients": [f"p{i // 2}" for i in range(len(t))],
            "probabilities": {"probe": informative(1.0), "convnext": informative(4.0),
                              "vote": _probs(rng.integers(0, 3, len(t)), 0.9)},
            "margins": rng.uniform(0, 1, len(t))}  # fmt: skip


def _rank(rule: str, paths: int) -> tuple[int, int]:
    """The module docstring's table: simplicity (alone or mean 1, gate 2, weighted 3), then
    more paths first (a gate counts the vote)."""
    if rule == "weighted":
        return 3, -paths
    if rule.startswith("gate("):
        return 2, -1 + _rank(rule[5:-1], paths)[1]
    if rule.startswith("mean("):
        return 1, -len(rule[5:-1].split(", "))
    return 1, -1


def test_stored_scores_and_the_simplest_rule_within_one_standard_error() -> None:
    data = _noisy(11)
    args = (data["truth"], LABELS, data["probabilities"], data["patients"], data["margins"])
    chosen = choose_policy(*args)
    table = chosen["candidates"]
    assert set(table) == {"convnext", "probe", "vote", "mean(convnext, probe)",
                          "mean(convnext, vote)", "mean(probe, vote)",
                          "mean(convnext, probe, vote)", "gate(convnext)", "gate(probe)",
                          "gate(mean(convnext, probe))", "weighted"}  # fmt: skip
    assert chosen["inner_folds"] == 5 and chosen["n"] == 120
    for scores in table.values():
        assert set(scores) == {"mean", "se", "folds"} and len(scores["folds"]) == 5
        # every figure to 4 places; the standard error of the mean of the folds, sample sd
        for value in (scores["mean"], scores["se"], *scores["folds"]):
            assert value == round(value, 4) and isinstance(value, float)
        assert scores["mean"] == pytest.approx(statistics.mean(scores["folds"]), abs=1e-4)
        se = statistics.stdev(scores["folds"]) / math.sqrt(5)
        assert scores["se"] == pytest.approx(se, abs=1.5e-4)
    means = {r: s["mean"] for r, s in table.items()}
    top = max(means.values())
    assert chosen["best"] == min((r for r in means if means[r] == top), key=lambda r: _rank(r, 3))
    assert chosen["floor"] == round(top - table[chosen["best"]]["se"], 4)
    # a path not one standard error above the majority-class rate (the vote of noise) enters no
    # mean; of the rest within one standard error of the best: the simplest, most paths
    majority = max(data["truth"].count(x) for x in LABELS) / len(data["truth"])
    idle = {p for p in ("convnext", "probe", "vote") if means[p] - table[p]["se"] <= majority}
    assert chosen["idle"] == sorted(idle) == ["vote"]
    within = [r for r in table if means[r] >= chosen["floor"] - 1e-9
              and not (r.startswith("mean(") and "vote" in r)]  # fmt: skip
    assert chosen["rule"] == min(within, key=lambda r: (_rank(r, 3), -means[r]))
    assert chosen["rule"] == "mean(convnext, probe)"
    # the folds are the seed's: the default seed is 0, another seed gives other folds
    assert choose_policy(*args, seed=0) == chosen
    assert choose_policy(*args, seed=1)["candidates"] != table
    three = choose_policy(*args, folds=3)
    assert three["inner_folds"] == 3
    assert all(len(s["folds"]) == 3 for s in three["candidates"].values())


def test_between_equal_candidates_the_best_is_the_simplest() -> None:
    """Two copies of one path: every candidate scores the same; the best and the choice are
    the simplest of the most paths, their mean."""
    data = _noisy(12, patients=40)
    probe = data["probabilities"]["probe"]
    chosen = choose_policy(data["truth"], LABELS, {"probe": probe, "convnext": probe.copy()},
                           data["patients"], data["margins"])  # fmt: skip
    assert len({s["mean"] for s in chosen["candidates"].values()}) == 1
    assert chosen["best"] == chosen["rule"] == "mean(convnext, probe)"


def test_within_the_noise_a_mean_of_both_paths_is_chosen_over_the_better_one() -> None:
    """The ConvNeXt is the probe spoilt on 3 rows (each 1/120 of the mean of 5 folds of 24
    rows): both are within one standard error of the best, so the folds cannot tell them
    apart, and their mean, as simple and of more paths, is chosen over the probe alone."""
    data = _noisy(11)
    probe = data["probabilities"]["probe"]
    t = np.asarray([LABELS.index(x) for x in data["truth"]])
    spoilt = np.flatnonzero(probe.argmax(axis=1) == t)[:3]
    convnext = probe.copy()
    convnext[spoilt] = _probs((t[spoilt] + 1) % 3, 0.9)
    chosen = choose_policy(data["truth"], LABELS, {"probe": probe, "convnext": convnext},
                           data["patients"], data["margins"])  # fmt: skip
    table = chosen["candidates"]
    assert table["convnext"]["mean"] == pytest.approx(table["probe"]["mean"] - 0.025, abs=1e-4)
    assert table["convnext"]["mean"] >= chosen["floor"]
    assert table["mean(convnext, probe)"]["mean"] >= chosen["floor"] and not chosen["idle"]
    assert chosen["rule"] == "mean(convnext, probe)"


def test_two_patients_per_class_make_two_folds_and_one_is_too_few() -> None:
    t = np.array([0, 0, 1, 1, 2, 2])
    probe = {"probe": _probs(t)}
    chosen = choose_policy(_names(t), LABELS, probe, _patients(6), np.zeros(6))
    assert chosen["inner_folds"] == 2 and len(chosen["candidates"]["probe"]["folds"]) == 2
    with pytest.raises(InputError, match="too few patients per class") as raised:
        choose_policy(_names(t), LABELS, probe, ["a", "a", "b", "b", "c", "c"], np.zeros(6))
    assert raised.value.fix == "label more patients of each class, or train with --policy-folds 0"
    with pytest.raises(InputError, match="too few patients per class"):
        choose_policy([], LABELS, {"probe": np.zeros((0, 3))}, [], [])


def _one_path_two_folds() -> dict:
    """24 rows in 2 outer folds of 12 (4 per label); the ConvNeXt, 0.7 sure of its label, is
    right on 8 rows of fold 0 and 5 of fold 1."""
    i = np.arange(24)
    t = i % 3
    fold = (i >= 12).astype(int)
    right = np.where(fold == 0, i % 12 < 8, i % 12 < 5)
    return {"t": t, "fold": fold,
            "probabilities": {"convnext": _probs(np.where(right, t, (t + 1) % 3), 0.7)}}  # fmt: skip


def test_nested_scores_by_hand() -> None:
    """Folds 8/12 and 5/12: mean 13/24 = 0.541667; sample sd |8/12 - 5/12| / sqrt(2) =
    0.176777. One path: the policy is that path, calibrated on the other fold (same argmax)."""
    data = _one_path_two_folds()
    t, fold, probs = data["t"], data["fold"], data["probabilities"]
    nested = nested_scores(_names(t), LABELS, probs, _patients(24), np.zeros(24), None, fold)
    expected = {"folds": [0.6667, 0.4167], "mean": 0.5417, "sd": 0.1768}
    assert nested["scores"] == {"combined": expected, "convnext": expected}
    assert nested["rules"] == ["convnext", "convnext"]
    for f in (0, 1):
        temperature = fit_temperature(probs["convnext"][fold != f], t[fold != f])
        assert temperature > 1.05  # 0.7 sure, right 5 or 8 times in 12: overconfident
        np.testing.assert_allclose(nested["combined"][fold == f],
                                   calibrate(probs["convnext"][fold == f], temperature),
                                   rtol=1e-6)  # fmt: skip


def test_nested_scores_uncalibrated_keep_the_probabilities() -> None:
    data = _one_path_two_folds()
    t, fold, probs = data["t"], data["fold"], data["probabilities"]
    nested = nested_scores(_names(t), LABELS, probs, _patients(24), np.zeros(24), None, fold,
                           calibrated=False)  # fmt: skip
    np.testing.assert_array_equal(nested["combined"], probs["convnext"].astype(np.float32))


def _calibrated_rows() -> tuple[np.ndarray, np.ndarray]:
    """Rows of three shapes whose labels occur exactly as often as the path says: (0.8, 0.1,
    0.1) 10 times (labels 8, 1, 1), (0.5, 0.25, 0.25) 4 times (2, 1, 1), (0.1, 0.3, 0.6) 10
    times (1, 3, 6)."""
    shapes = [((0.8, 0.1, 0.1), (8, 1, 1)), ((0.5, 0.25, 0.25), (2, 1, 1)),
              ((0.1, 0.3, 0.6), (1, 3, 6))]  # fmt: skip
    rows, t = [], []
    for shape, counts in shapes:
        for label, count in enumerate(counts):
            rows += [shape] * count
            t += [label] * count
    return np.array(rows), np.array(t)


def test_temperature_of_a_calibrated_path_and_of_a_sharpened_one() -> None:
    """A path whose probabilities are the labels' frequencies is calibrated: T = 1. The same
    path sharpened (p^1.5, renormalised) is undone by T = 1.5. The optimum is found to 1e-3 in
    log T and stored to 4 places."""
    p, t = _calibrated_rows()
    calibrated = fit_temperature(p, t)
    sharp = p**1.5 / (p**1.5).sum(axis=1, keepdims=True)
    sharpened = fit_temperature(sharp, t)
    assert calibrated == pytest.approx(1.0, abs=0.002)
    assert sharpened == pytest.approx(1.5, abs=0.003)
    for temperature in (calibrated, sharpened):
        assert isinstance(temperature, float) and temperature == round(temperature, 4)


def test_the_candidates_are_ordered_as_the_module_table_says() -> None:
    """Simplicity first (alone or mean, gate, weighted), then more paths (a gate counts the
    vote); equal ranks are ties. Only the order matters to the choice."""
    paths = ["convnext", "probe", "vote"]
    ranks = dict(_candidates(paths))
    assert list(ranks) == ["convnext", "probe", "vote", "mean(convnext, probe)",
                           "mean(convnext, vote)", "mean(probe, vote)",
                           "mean(convnext, probe, vote)", "gate(convnext)", "gate(probe)",
                           "gate(mean(convnext, probe))", "weighted"]  # fmt: skip
    for a, b in itertools.product(ranks, repeat=2):
        assert (ranks[a] < ranks[b]) == (_rank(a, 3) < _rank(b, 3)), (a, b)
        assert (ranks[a] == ranks[b]) == (_rank(a, 3) == _rank(b, 3)), (a, b)
    assert [r for r, _ in _candidates(["convnext", "vote"])] == [
        "convnext", "vote", "mean(convnext, vote)", "gate(convnext)", "weighted"]  # fmt: skip
    assert [r for r, _ in _candidates(["convnext", "probe"])] == [
        "convnext", "probe", "mean(convnext, probe)", "weighted"]  # fmt: skip
    assert [r for r, _ in _candidates(["probe"])] == ["probe"]


def test_the_weight_grid_and_the_weights_of_a_mean() -> None:
    """Weights in steps of 0.1 summing to 1, paths of weight 0 left out; a mean weighs its
    paths equally, to 6 places."""
    assert _simplex(["convnext", "probe"]) == [
        {"probe": 1.0}, {"convnext": 0.1, "probe": 0.9}, {"convnext": 0.2, "probe": 0.8},
        {"convnext": 0.3, "probe": 0.7}, {"convnext": 0.4, "probe": 0.6},
        {"convnext": 0.5, "probe": 0.5}, {"convnext": 0.6, "probe": 0.4},
        {"convnext": 0.7, "probe": 0.3}, {"convnext": 0.8, "probe": 0.2},
        {"convnext": 0.9, "probe": 0.1}, {"convnext": 1.0}]  # fmt: skip
    grid = _simplex(["convnext", "probe", "vote"])
    assert len(grid) == 66  # (10 + 2 choose 2) points
    assert {"vote": 1.0} in grid and {"convnext": 0.3, "probe": 0.3, "vote": 0.4} in grid
    assert all(sum(w.values()) == pytest.approx(1.0) for w in grid)
    assert _weights("probe") == {"probe": 1.0}
    assert _weights("mean(convnext, probe)") == {"convnext": 0.5, "probe": 0.5}
    assert _weights("mean(convnext, probe, vote)") == dict.fromkeys(
        ["convnext", "probe", "vote"], 0.333333
    )


def test_without_calibration_an_overconfident_path_needs_weights() -> None:
    """The ConvNeXt is right on every other row, 0.999 sure, and wrong on the others, 0.99
    sure; the probe is right where the ConvNeXt is wrong, 0.9 sure, and 0.5 sure of a wrong
    label elsewhere. As they are, a plain mean always follows the ConvNeXt (right half the
    time) and only weights 1.16 to 3.99 times larger on the probe are right everywhere, so
    uncalibrated the weighted rule is chosen; calibrated (the ConvNeXt softened), the plain mean
    is right everywhere and, simpler, is chosen."""
    i = np.arange(36)
    t, wrong = i % 3, (i + 1) % 3
    convnext_right = i % 2 == 0
    convnext = np.repeat(np.where(convnext_right, 0.0005, 0.005)[:, None], 3, axis=1)
    convnext[i, np.where(convnext_right, t, wrong)] = np.where(convnext_right, 0.999, 0.99)
    probe = np.repeat(np.where(convnext_right, 0.25, 0.05)[:, None], 3, axis=1)
    probe[i, np.where(convnext_right, wrong, t)] = np.where(convnext_right, 0.5, 0.9)
    args = (_names(t), LABELS, {"convnext": convnext, "probe": probe}, _patients(36),
            np.zeros(36), None, (i // 6) % 3)  # fmt: skip
    raw = nested_scores(*args, calibrated=False)
    assert raw["rules"] == ["weighted"] * 3 and raw["scores"]["combined"]["mean"] == 1.0
    calibrated = nested_scores(*args)
    assert calibrated["rules"] == ["mean(convnext, probe)"] * 3
    assert calibrated["scores"]["combined"]["mean"] == 1.0


def test_nested_scores_default_to_five_inner_folds_and_seed_0() -> None:
    """On paths close enough that the folds decide between them, the defaults give what
    ``folds=5, seed=0`` give, and 6 folds or seed 1 choose otherwise."""
    data = _noisy(7, patients=30)
    probabilities = {p: data["probabilities"][p] for p in ("probe", "convnext")}
    args = (data["truth"], LABELS, probabilities, data["patients"], data["margins"], None,
            np.repeat(np.arange(30) % 3, 2))  # fmt: skip
    default = nested_scores(*args)
    explicit = nested_scores(*args, folds=5, seed=0)
    assert default["rules"] == explicit["rules"] and default["scores"] == explicit["scores"]
    np.testing.assert_array_equal(default["combined"], explicit["combined"])
    assert nested_scores(*args, folds=6)["rules"] != default["rules"]
    assert nested_scores(*args, seed=1)["rules"] != default["rules"]

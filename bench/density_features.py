"""What each group of the weight-free image features buys for density, by nested CV.

The radiomics feature groups (:data:`mammosearch.embeddings.radiomics.CANDIDATES`: intensity,
density fractions, co-occurrence texture, run lengths, local binary patterns; the embedder keeps
those of ``GROUPS``) feed two density paths:
the linear probe (a logistic regression on the standardised features) and the neighbour vote
(nearest images in the embedded space, which weights the groups). This script scores both with
patient-grouped cross-validation on a labelled manifest:

1. **Each group's worth** (cross-validated, not nested): the probe on all groups and on all
   but one; the vote with each weighting of :data:`VOTE_WEIGHTS`.
2. **Nested estimate of the choice** (the figure to quote): in each outer fold the feature
   subset (of :data:`SUBSETS`) and the vote's weighting are chosen by inner patient-grouped
   folds on the outer training patients only, the simplest within one standard error of the
   best; the outer fold only scores them. Repeated over several fold seeds; mean ± sd.
3. **The choice on every film**: the same rule once on 3 patient-grouped folds of all the
   films, and how often each option was chosen over the outer folds (a choice that changes
   with the split is one among options the films cannot tell apart).

Every standardisation statistic and model is fitted on training patients only. On MIAS the
figures are checks of the procedure (the feature list was written while reading these films),
not accuracy on unseen patients.

Usage: ``python bench/density_features.py [MANIFEST] [--seeds 0 1 2] [--cache FILE]``
(default manifest: ``../shared/data/mini-mias/manifest.csv``; about 15 minutes a seed on 2
idle cores).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammosearch.accel import parallel_map  # noqa: E402
from mammosearch.classifiers.heads import LinearProbe  # noqa: E402
from mammosearch.embeddings.base import l2_normalize  # noqa: E402
from mammosearch.embeddings.radiomics import (  # noqa: E402
    _WEIGHTS,
    CANDIDATES,
    group_slices,
    image_features,
)
from mammosearch.index.vectors import VectorIndex  # noqa: E402
from mammosearch.index.vote import vote_density  # noqa: E402
from mammosearch.pipeline.density import labelled_images  # noqa: E402
from mammosearch.pipeline.stages import fit_vote_by_patient  # noqa: E402
from mammosearch.records import Neighbour  # noqa: E402

NAMES = tuple(CANDIDATES)
_ALL = functools.partial(image_features, groups=NAMES)
# the probe's candidate feature subsets: every group, and every group but one
SUBSETS: dict[str, tuple[str, ...]] = {
    "all": NAMES,
    **{f"all - {name}": tuple(n for n in NAMES if n != name) for name in NAMES},
}
# the vote's candidate group weightings (the embedded vector's groups scaled before L2)
VOTE_WEIGHTS: dict[str, dict[str, float]] = {
    "lbp 1, others 0.15": {n: 1.0 if n == "lbp" else 0.15 for n in NAMES},
    "equal": dict.fromkeys(NAMES, 1.0),
    "intensity, density 1, texture 0.5": {
        n: 1.0 if n in ("intensity", "density") else 0.5 for n in NAMES
    },
    "lbp, density 1, others 0.3": {n: 1.0 if n in ("lbp", "density") else 0.3 for n in NAMES},
    "per feature": {},  # every feature weighted alike: groups scaled by 1/sqrt(size)
}


def _columns(subset: tuple[str, ...]) -> NDArray[np.int64]:
    slices = group_slices(NAMES)
    return np.concatenate([np.arange(slices[n].start, slices[n].stop) for n in subset])


def _standardised(train: NDArray[Any], test: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def probe_accuracy(
    x: NDArray[Any], y: NDArray[Any], groups: NDArray[Any], train: NDArray[Any],
    test: NDArray[Any], subset: tuple[str, ...], labels: list[str], folds: int = 5,
) -> float:  # fmt: skip
    """The probe as ``train-density`` fits it (on the embedded vectors: standardised, groups
    weighted, L2-normalised), on the columns of ``subset``."""
    cols = _columns(subset)
    z_train, z_test = _standardised(x[train], x[test])
    weights = _scales(_WEIGHTS | {"runlength": 0.15})
    v_train = l2_normalize(z_train[:, cols] * weights[cols])
    v_test = l2_normalize(z_test[:, cols] * weights[cols])
    probe = LinearProbe.fit(v_train, list(y[train]), list(groups[train]), labels, folds=folds)
    return float(np.mean(np.asarray(probe.predict(v_test)) == y[test]))


def _scales(weights: dict[str, float]) -> NDArray[np.float64]:
    """Each column's weight; ``{}``: every feature alike (a group scaled by 1/sqrt(its size))."""
    scale = np.zeros(sum(CANDIDATES.values()))
    for name, part in group_slices(NAMES).items():
        size = part.stop - part.start
        scale[part] = weights[name] if weights else 1.0 / np.sqrt(size)
    return scale


def _weighted(z: NDArray[Any], weights: dict[str, float]) -> NDArray[Any]:
    return l2_normalize(z * _scales(weights))


def vote_accuracy(
    x: NDArray[Any], y: NDArray[Any], groups: NDArray[Any], train: NDArray[Any],
    test: NDArray[Any], weights: dict[str, float], labels: list[str],
) -> float:  # fmt: skip
    z_train, z_test = _standardised(x[train], x[test])
    v_train, v_test = _weighted(z_train, weights), _weighted(z_test, weights)
    truth = list(y[train])
    params, _ = fit_vote_by_patient(
        VectorIndex.build(v_train, np.arange(len(train), dtype=np.int64)),
        [(n, str(p), str(t)) for n, (p, t) in enumerate(zip(groups[train], truth, strict=True))],
        labels,
    )
    sims = v_test @ v_train.T
    correct = 0
    for row, i in enumerate(test):
        top = np.argsort(-sims[row])[: params.k]
        neighbours = [
            Neighbour(row_id=int(j), case_id="", patient_id="", score=float(sims[row, j]),
                      label=str(truth[j]))
            for j in top
        ]  # fmt: skip
        vote = vote_density(neighbours, labels, params)
        correct += int(max(vote.probabilities, key=vote.probabilities.__getitem__) == y[i])
    return correct / len(test)


def _folds(y: NDArray[Any], groups: NDArray[Any], n: int, seed: int) -> list[Any]:
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def _choose(scores: dict[str, list[float]], size: dict[str, int]) -> str:
    """The smallest candidate whose mean is within one standard error of the best mean."""
    means = {k: float(np.mean(v)) for k, v in scores.items()}
    best = max(means, key=means.__getitem__)
    floor = means[best] - float(np.std(scores[best], ddof=1)) / np.sqrt(len(scores[best]))
    within = [k for k in scores if means[k] >= floor]
    return min(within, key=lambda k: (size[k], -means[k]))


def features_of(manifest: Path, cache: Path | None, workers: int) -> tuple[Any, Any, Any, list]:
    rows, images = labelled_images(manifest, 512)
    if cache is not None and cache.is_file():
        x = np.load(cache)["x"]
    else:
        x = np.stack(list(parallel_map(_ALL, images, workers=workers)))
        if cache is not None:
            np.savez(cache, x=x)
    y = np.asarray([str(r.label) for r in rows])
    groups = np.asarray([r.patient_id for r in rows])
    return x, y, groups, sorted(set(y.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", nargs="?", type=Path,
                        default=Path("../shared/data/mini-mias/manifest.csv"))  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cache", type=Path, help="features .npz (computed once, then reused)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-groups", action="store_true", help="only the nested estimate")
    args = parser.parse_args()
    started = time.perf_counter()
    x, y, groups, labels = features_of(args.manifest, args.cache, args.workers)
    print(f"{len(y)} images, {len(set(groups))} patients, {x.shape[1]} features "
          f"({', '.join(f'{n} {s}' for n, s in CANDIDATES.items())}); "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    probe = functools.partial(probe_accuracy, x, y, groups, labels=labels)
    vote = functools.partial(vote_accuracy, x, y, groups, labels=labels)

    if not args.skip_groups:
        print("\n1. cross-validated accuracy per film (mean ± sd over seeds of the fold means)")
        for name, subset in SUBSETS.items():
            per_seed = [np.mean([probe(tr, te, subset=subset)
                                 for tr, te in _folds(y, groups, args.folds, s)])
                        for s in args.seeds]  # fmt: skip
            print(f"  probe  {name:<36} {np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}")
        for name, weights in VOTE_WEIGHTS.items():
            per_seed = [np.mean([vote(tr, te, weights=weights)
                                 for tr, te in _folds(y, groups, args.folds, s)])
                        for s in args.seeds]  # fmt: skip
            print(f"  vote   {name:<36} {np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}")

    print("\n2. nested: chosen on inner folds of the outer training patients, scored outside")
    sizes = {k: len(_columns(v)) for k, v in SUBSETS.items()}
    vote_sizes = {k: i for i, k in enumerate(VOTE_WEIGHTS)}  # ties: the earlier weighting

    def choose(inner: list[tuple[Any, Any]]) -> tuple[str, str]:
        """The probe's subset and the vote's weighting the rule picks on ``inner`` folds."""
        probe_scores = {k: [probe(a, b, subset=v, folds=3) for a, b in inner]
                        for k, v in SUBSETS.items()}  # fmt: skip
        vote_scores = {k: [vote(a, b, weights=w) for a, b in inner]
                       for k, w in VOTE_WEIGHTS.items()}  # fmt: skip
        return _choose(probe_scores, sizes), _choose(vote_scores, vote_sizes)

    nested: dict[str, list[float]] = {"probe": [], "vote": []}
    chosen: list[tuple[str, str]] = []
    for seed in args.seeds:
        outer_probe, outer_vote = [], []
        picks: list[tuple[str, str]] = []
        for train, test in _folds(y, groups, args.folds, seed):
            inner = [(train[a], train[b]) for a, b in _folds(y[train], groups[train], 3, seed)]
            picks.append(choose(inner))
            outer_probe.append(probe(train, test, subset=SUBSETS[picks[-1][0]]))
            outer_vote.append(vote(train, test, weights=VOTE_WEIGHTS[picks[-1][1]]))
        chosen += picks
        nested["probe"].append(float(np.mean(outer_probe)))
        nested["vote"].append(float(np.mean(outer_vote)))
        print(f"  seed {seed}: probe {nested['probe'][-1]:.3f}  vote {nested['vote'][-1]:.3f}  "
              f"folds {' / '.join(f'{a:.2f}' for a in outer_probe)}")  # fmt: skip
        for on, weighting in picks:
            print(f"    chose probe on [{on}], vote weights [{weighting}]")
    for path, values in nested.items():
        print(f"  nested {path}: {np.mean(values):.3f} ± {np.std(values):.3f} over seeds "
              f"{args.seeds}")  # fmt: skip
    on, weighting = choose(_folds(y, groups, 3, args.seeds[0]))
    print(
        f"\n3. the same rule once on every film (3 folds, seed {args.seeds[0]}): probe on "
        f"[{on}], vote weights [{weighting}]"
    )
    for n, part in enumerate(("probe on", "vote weights")):
        counts = Counter(pick[n] for pick in chosen).most_common()
        print(f"   the outer folds' choices, {part}: "
              + ", ".join(f"[{name}] × {count}" for name, count in counts))  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

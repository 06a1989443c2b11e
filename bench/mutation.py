"""Mutation check of the modules that compute numbers (mutmut 3), module by module.

For each module the script builds a scratch copy of the project (``mammosearch/``, ``tests/``
and ``pyproject.toml`` with a ``[tool.mutmut]`` section of its own) under ``--workdir``, outside
the repository, and runs ``mutmut run`` there. mutmut mutates its ``mutants/`` copy and puts it
first on ``sys.path``; the scratch copy keeps the repository (and an editable install of it)
out of the way, and the script stops with an error when no test reached any mutant (the tests
then imported an unmutated ``mammosearch``). Only the test files named for the module run,
under ``nice -n 10``.

It prints the score per module (killed / (killed + survived + no tests)) and every surviving
mutant with its line and the changed line; ``docs/MUTATION.md`` lists and explains them.

Usage::

    python bench/mutation.py                       # every module of the default list
    python bench/mutation.py --modules vote,metrics
    python bench/mutation.py --list                # the modules and their tests
    python bench/mutation.py --modules findings --recheck   # an earlier run's survivors only
    python bench/mutation.py --modules selection --recheck \
        --survivors docs/mutation/selection-survivors.txt  # the survivors a file lists

A run over the default list takes about an hour on 2 shared cores; ``radiomics``, ``heads``,
``convnext``, ``biomedclip`` and ``convnext-embedder`` are opt-in by name. ``radiomics`` runs
its value tests and its phantom tests without the slow MIAS accuracy test (``-m "not slow"``): 5
to 10 minutes. ``heads`` runs only ``tests/classifiers/test_heads_values.py`` (11 s of CPU):
``test_heads.py`` trains probes on images, 2.5 min per run, too slow to run for each mutant.
``convnext`` mutates only the functions that compute numbers without training and runs only
``tests/classifiers/test_convnext_values.py`` (6 s): 3 minutes; its training is guarded by
``test_learning.py``. ``biomedclip`` and ``convnext-embedder`` (the embedders) run
``tests/embeddings/test_embedder_values.py`` with their older test files, on tiny models built
in the tests (BiomedCLIP's of ``tests/tinyclip.py``; a hub download never runs). mutmut runs
with ``OMP_NUM_THREADS=1``: it forks each mutant's test run, and a forked child hangs in an
OpenMP pool (torch's) that its parent started.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """A module to mutate, the tests that may kill its mutants, and which functions."""

    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # mutant-name globs; empty: every function of the module
    markers: str = ""  # a pytest ``-m`` expression: tests it leaves out never run for a mutant


_BINDING = (  # the findings binding: cues, descriptors, locations, sizes and sides to findings
    "*FindingsExtractor*_apply_context*",
    "*FindingsExtractor*_forward*",
    "*FindingsExtractor*_backward*",
    "*FindingsExtractor*_nearest*",
    "*FindingsExtractor*_attach_*",
    "*FindingsExtractor*_accepts*",
)

_CONVNEXT = tuple(  # the ConvNeXt path's numbers without training (training: test_learning.py)
    f"*.x{name}__mutmut_*"
    for name in (
        "_patient_split", "__augment", "_tissue_inputs", "__to_tensor", "__normalise",
        "\u01c1ConvNeXtDensity\u01c1*", "__member_file", "_data_hash", "__load_probe",
    )
)  # fmt: skip

TARGETS: dict[str, Target] = {
    "vote": Target("mammosearch/index/vote.py", ("tests/index/test_vote.py",)),
    "metrics": Target(
        "mammosearch/classifiers/metrics.py",
        ("tests/classifiers/test_metrics.py", "tests/classifiers/test_metrics_values.py"),
    ),
    "policy": Target(
        "mammosearch/classifiers/policy.py",
        ("tests/classifiers/test_policy.py", "tests/classifiers/test_policy_values.py"),
    ),
    "selection": Target(
        "mammosearch/classifiers/selection.py",
        (
            "tests/classifiers/test_selection.py",
            "tests/classifiers/test_selection_values.py",
            "tests/classifiers/test_policy.py",
        ),
    ),
    "context": Target(
        "mammosearch/nlp/context.py",
        (
            "tests/nlp/test_context.py",
            "tests/nlp/test_assessment.py",
            "tests/nlp/test_density.py",
        ),
    ),
    "findings": Target(
        "mammosearch/nlp/findings.py",
        (
            "tests/nlp/test_findings.py",
            "tests/nlp/test_findings_binding.py",
            "tests/nlp/test_findings_binding_gaps.py",
        ),
        functions=_BINDING,
    ),
    "embeddings-base": Target("mammosearch/embeddings/base.py", ("tests/embeddings/test_base.py",)),
}
OPT_IN: dict[str, Target] = {
    "radiomics": Target(  # the MIAS accuracy test (slow, 13 s) is left out of each mutant's run
        "mammosearch/embeddings/radiomics.py",
        ("tests/embeddings/test_radiomics_values.py", "tests/embeddings/test_radiomics.py"),
        markers="not slow",
    ),
    # test_heads.py trains probes on images (2.5 min per run): the value tests only (seconds)
    "heads": Target(
        "mammosearch/classifiers/heads.py", ("tests/classifiers/test_heads_values.py",)
    ),
    "convnext": Target(
        "mammosearch/classifiers/convnext.py",
        ("tests/classifiers/test_convnext_values.py",),
        functions=_CONVNEXT,
    ),
    "biomedclip": Target(  # the tiny model of tests/tinyclip.py; hub downloads never run
        "mammosearch/embeddings/biomedclip.py",
        (
            "tests/embeddings/test_embedder_values.py",
            "tests/embeddings/test_biomedclip.py",
            "tests/embeddings/test_biomedclip_reference.py",
        ),
    ),
    "convnext-embedder": Target(
        "mammosearch/embeddings/convnext.py",
        ("tests/embeddings/test_embedder_values.py", "tests/embeddings/test_convnext_embedder.py"),
    ),
}
_DETECTED = {"killed", "timeout", "segfault", "caught by type check"}


def _toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(target: Target, work: Path) -> None:
    """A fresh scratch copy of the project with a ``[tool.mutmut]`` section for ``target``."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("mammosearch", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    selection = [*(["-m", target.markers] if target.markers else []), *target.tests]
    if "[tool.mutmut]" in pyproject:
        raise SystemExit("pyproject.toml has a [tool.mutmut] section: this script writes its own")
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["mammosearch"]\n'
        f"only_mutate = {_toml_list([target.path])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(selection)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")


def run_mutmut(target: Target, work: Path, jobs: int) -> None:
    """``mutmut run`` in the scratch copy, niced, without the caller's PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # mutmut forks each mutant's run: a forked child hangs in
    # an OpenMP pool its parent started (torch), and the hang read as a 'timeout' kill
    cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
    with open(work / "mutmut.log", "w", encoding="utf-8") as log:
        subprocess.run([*cmd, *target.functions], cwd=work, env=env, stdout=log, stderr=log,
                       check=True)  # fmt: skip


def _function_lines(source: str) -> dict[str, int]:
    """First line (decorators included) of each function, by mutmut's key (``x_f``, ``xǁCǁm``)."""
    lines: dict[str, int] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[f"x_{node.name}"] = min([node.lineno] + [d.lineno for d in node.decorator_list])
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    first = min([item.lineno] + [d.lineno for d in item.decorator_list])
                    lines[f"x\u01c1{node.name}\u01c1{item.name}"] = first
    return lines


def _changed_line(diff: str, first_line: int) -> tuple[int, str, str]:
    """File line of the first changed line of a mutmut diff, with the old and new text."""
    old: list[str] = []
    new: list[str] = []
    line = 0
    position = 0
    for row in diff.splitlines():
        if row.startswith("@@"):
            position = int(row.split()[1].split(",")[0][1:])
        elif row.startswith(("---", "+++")):
            continue
        elif row.startswith("-"):
            line = line or first_line + position - 1
            old.append(row[1:].strip())
            position += 1
        elif row.startswith("+"):
            new.append(row[1:].strip())
        elif position:
            position += 1
    return line, " / ".join(old), " / ".join(new)


def collect(target: Target, work: Path) -> dict[str, object]:
    """Counts, score and surviving mutants (line, old and new text) of one module's run."""
    import fnmatch

    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / (target.path + ".meta")).read_text(encoding="utf-8"))
    source = (ROOT / target.path).read_text(encoding="utf-8")
    starts = _function_lines(source)
    counts: dict[str, int] = {}
    survivors: list[dict[str, object]] = []
    previous = Path.cwd()
    os.chdir(work)
    reset_config()
    try:
        for name, code in sorted(meta["exit_code_by_key"].items()):
            if target.functions and not any(fnmatch.fnmatch(name, g) for g in target.functions):
                continue
            status = status_by_exit_code[code]
            counts[status] = counts.get(status, 0) + 1
            if status in _DETECTED or status == "not checked":
                continue
            key = name.rsplit(".", 1)[1].split("__mutmut_")[0]
            line, old, new = _changed_line(
                get_diff_for_mutant(name, path=target.path), starts.get(key, 0)
            )
            survivors.append({"mutant": name.rsplit(".", 1)[1], "status": status, "line": line,
                              "old": old, "new": new})  # fmt: skip
    finally:
        os.chdir(previous)
        reset_config()
    detected = sum(v for k, v in counts.items() if k in _DETECTED)
    scored = detected + counts.get("survived", 0) + counts.get("no tests", 0)
    if scored and detected == 0 and counts.get("no tests", 0) == scored:
        raise SystemExit(
            f"{target.path}: no test reached any mutant; the tests imported an unmutated "
            "mammosearch (an installed copy ahead of mutants/ on sys.path?). See "
            f"{work / 'mutmut.log'}"
        )
    return {"module": target.path, "counts": counts, "detected": detected, "scored": scored,
            "score": round(detected / scored, 4) if scored else None,
            "survivors": sorted(survivors, key=lambda s: (s["line"], s["mutant"]))}  # fmt: skip


def recheck(target: Target, work: Path, jobs: int) -> dict[str, object]:
    """Run an earlier run's survivors again, against the module's tests as they are now.

    The survivors of the run in ``work`` are run again by name in a fresh scratch copy
    (``work`` with ``-recheck`` appended): a quick check of new tests without a full run. The
    result counts the earlier run's kills plus the survivors killed now.
    """
    first = collect(target, work)
    module = target.path[:-3].replace("/", ".")
    names = [f"{module}.{s['mutant']}" for s in first["survivors"]]  # type: ignore[attr-defined]
    again = work.with_name(work.name + "-recheck")
    prepare(target, again)
    if names:
        run_mutmut(replace(target, functions=tuple(names)), again, jobs)
    second = collect(replace(target, functions=tuple(names)), again) if names else first
    killed = len(names) - len(second["survivors"])  # type: ignore[arg-type]
    detected = int(first["detected"]) + killed  # type: ignore[call-overload]
    scored = int(first["scored"])  # type: ignore[call-overload]
    earlier: dict[str, int] = first["counts"]  # type: ignore[assignment]
    counts = {**earlier, "killed": earlier.get("killed", 0) + killed,
              "survived": len(second["survivors"])}  # type: ignore[arg-type]  # fmt: skip
    return {**first, "counts": counts, "detected": detected, "score": round(detected / scored, 4),
            "survivors": second["survivors"], "rechecked": len(names)}  # fmt: skip


def listed_survivors(path: Path) -> tuple[list[str], int]:
    """The mutant names and the module's mutant count of a survivors file (the format of
    ``docs/mutation/*-survivors.txt``: a header saying ``N of M mutants``, then one
    ``line L  NAME: old  ->  new`` row per survivor)."""
    text = path.read_text(encoding="utf-8")
    counted = re.search(r"(\d+) of (\d+) mutants", text.splitlines()[0] if text else "")
    names = re.findall(r"^line +\d+ +(\S+?): ", text, flags=re.MULTILINE)
    if counted is None or int(counted.group(1)) != len(names):
        raise SystemExit(f"{path}: expected a header 'N of M mutants' and N survivor rows")
    return names, int(counted.group(2))


def recheck_listed(target: Target, work: Path, jobs: int, listed: Path) -> dict[str, object]:
    """:func:`recheck` for the survivors written in a file, when the run's folder is gone."""
    names, total = listed_survivors(listed)
    if not names:
        raise SystemExit(f"{listed}: no survivors to run again")
    module = target.path[:-3].replace("/", ".")
    only = replace(target, functions=tuple(f"{module}.{n}" for n in names))
    again = work.with_name(work.name + "-recheck")
    prepare(target, again)
    run_mutmut(only, again, jobs)
    second = collect(only, again)
    survived = len(second["survivors"])  # type: ignore[arg-type]
    detected = total - survived
    counts = {"killed": detected, "survived": survived}
    return {**second, "counts": counts, "detected": detected, "scored": total,
            "score": round(detected / total, 4), "rechecked": len(names)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", default=",".join(TARGETS), help="comma-separated names")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mammosearch-mutation"))
    parser.add_argument("--report", type=Path, help="write the results as JSON here")
    parser.add_argument("--reuse", action="store_true", help="only collect an earlier run")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run an earlier run's survivors again, against the tests as they are now",
    )
    parser.add_argument(
        "--survivors",
        type=Path,
        help="with --recheck and one module: the earlier survivors from this file (the format "
        "of docs/mutation/*-survivors.txt) instead of the earlier run's folder",
    )
    parser.add_argument("--list", action="store_true", help="print the modules and exit")
    args = parser.parse_args()
    known = {**TARGETS, **OPT_IN}
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("mutmut is not installed: pip install -e '.[dev]' (a dev extra)") from None
    if args.list:
        for name, t in known.items():
            marked = f"  (-m {t.markers!r})" if t.markers else ""
            print(f"{name:16} {t.path:40} {' '.join(t.tests)}{marked}")
        return
    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    if args.survivors and not (args.recheck and len(names) == 1):
        raise SystemExit("--survivors goes with --recheck and one module")
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown modules {unknown}; known: {sorted(known)}")
    missing = [t for n in names for t in known[n].tests if not (ROOT / t).exists()]
    if missing:
        raise SystemExit(f"test files not found: {missing}")
    results = []
    for name in names:
        target, work = known[name], args.workdir / name
        if args.recheck and args.survivors:
            result = recheck_listed(target, work, args.jobs, args.survivors)
        elif args.recheck:
            result = recheck(target, work, args.jobs)
        else:
            if not args.reuse:
                prepare(target, work)
                run_mutmut(target, work, args.jobs)
            result = collect(target, work)
        results.append(result)
        c: dict[str, int] = result["counts"]  # type: ignore[assignment]
        print(f"{target.path:40} score {result['score']}  killed {result['detected']}/"
              f"{result['scored']}  survived {c.get('survived', 0)}  no tests "
              f"{c.get('no tests', 0)}", flush=True)  # fmt: skip
        for s in result["survivors"]:  # type: ignore[attr-defined]
            print(f"    {s['status']:9} line {s['line']:4}  {s['old']}  ->  {s['new']}")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()

"""Report PHI scrubbing: recall per kind on two corpora side by side, over-redaction, speed.

- **independent** (``tests/phi_corpus.py``): the real reports of ``../shared/data/reports-real``
  with identifiers planted in header, body and signature, drawn from sources the scrubber never
  loads (hand-written names, national identifiers generated from their specifications, dates,
  phones and addresses of several countries). Reported on its *dev* half (sha256 of the report
  id, first byte even: the rules were tuned there) and its *test* half (odd: held out).
- **generator** (``mammosearch.samples.phi``): generated reports wrapped in Faker identities,
  written together with the scrubber: an upper bound, not evidence of generality.

A planted value counts as caught when the scrubbed spans cover every letter and digit of it.
Also: the words removed from the real and example reports (which carry no PHI but dates), the
reports whose density, category or findings change with scrubbing, how much of each name
source the scrubber's shipped lists hold, scrubbing speed (one process), and the throughput of the
``normalize --scrub`` job (``normalize_reports``, worker start-up included) with 1 and 2 workers
on both corpora's texts cycled to ``--job-reports`` records, ``--rounds`` times each, the
settings interleaved (the machine is shared): best and median reports/s, and reports per CPU
second of the job's processes together.

``--scrubber-root DIR`` scores the ``mammosearch`` found in DIR instead (e.g. a checkout of an
older commit, for before/after figures); the corpus is always this checkout's.

Usage: ``python bench/phi.py [--reports 1000] [--copies 3] [--seed 0] [--scrubber-root DIR]
[--job-reports 3000] [--rounds 3] [--job-only]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("phi_corpus", REPO / "tests" / "phi_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["phi_corpus"] = module
    spec.loader.exec_module(module)
    return module


def _table(columns: dict[str, dict[str, tuple[int, int]]]) -> None:
    kinds = sorted({kind for scores in columns.values() for kind in scores})
    print(f"{'kind':<13}" + "".join(f"{name:>24}" for name in columns))
    for kind in kinds + ["all"]:
        cells = []
        for scores in columns.values():
            if kind == "all":
                caught, total = (sum(c for c, _ in scores.values()),
                                 sum(t for _, t in scores.values()))  # fmt: skip
            else:
                caught, total = scores.get(kind, (0, 0))
            cells.append(f"{caught / total:.4f} ({caught}/{total})" if total else "-")
        print(f"{kind:<13}" + "".join(f"{cell:>24}" for cell in cells))


def _overlap(corpus: ModuleType) -> None:
    """How much of each of the corpus's name sources the scrubber's shipped lists hold."""
    try:
        from mammosearch.nlp._allowlist import fold, phi_lists
    except ImportError:
        return
    lists = phi_lists()
    faker: set[str] = set()
    for locale in ("en_US", "es_ES", "es_MX"):
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        faker |= {fold(str(n)) for n in [*provider.first_names, *provider.last_names]}
    places = [w for p in corpus.PLACES.values() for w in " ".join(p).split()]
    sources = {
        "given names": corpus.GIVEN.split(),
        "surnames": corpus.SURNAMES.split(),
        "places": places,
    }
    print("\nname sources of the independent corpus vs the scrubber's shipped lists")
    print(f"{'source':<13}{'words':>6}{'in names hint':>15}{'on allow-list':>15}"
          f"{'in Faker en_US/es_ES/es_MX':>28}")  # fmt: skip
    for name, words in sources.items():
        folded = {fold(w) for w in words if len(w) > 2}
        hint = len(folded & lists.person_names) / len(folded)
        allowed = len(folded & lists.allowed) / len(folded)
        print(f"{name:<13}{len(folded):>6}{hint:>15.2f}{allowed:>15.2f}"
              f"{len(folded & faker) / len(folded):>28.2f}")  # fmt: skip


def _without_name_hints(
    corpus: ModuleType, real: list[tuple[str, str, str]], args: argparse.Namespace, find: object
) -> dict[str, tuple[int, int]]:
    """The test half scored with the name hints emptied (the allow-list alone decides)."""
    import dataclasses

    from mammosearch.nlp import _phi_zones
    from mammosearch.nlp._allowlist import phi_lists

    lists = dataclasses.replace(phi_lists(), names=frozenset(), person_names=frozenset())
    saved = _phi_zones.phi_lists
    _phi_zones.phi_lists = lambda: lists  # type: ignore[assignment]
    try:
        reports = [r for r in real if corpus.half(r[0]) == "test"]
        planted = corpus.plant(reports, copies=args.copies, seed=args.seed)
        return dict(corpus.recall_by_kind([(p.text, p.spans) for p in planted], find))
    finally:
        _phi_zones.phi_lists = saved


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children, including the job's workers:
    those are the forkserver's children, which it reaps (read from ``/proc``; Linux)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                           resource.RUSAGE_CHILDREN))  # fmt: skip
    seconds = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # noqa: SLF001 - a bench
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    return seconds


def _job_throughput(corpora: dict[str, list[str]], n: int, rounds: int) -> None:
    """``normalize --scrub`` as the CLI runs it (``normalize_reports`` over a JSON Lines file),
    start-up included: reports/s with 1 and 2 workers, and 2 workers without scrubbing."""
    from mammosearch.config import load_settings
    from mammosearch.pipeline import normalize_reports

    settings = load_settings()
    jobs = (("--scrub --workers 1", 1, True), ("--scrub --workers 2", 2, True),
            ("--workers 2 (no --scrub)", 2, False))  # fmt: skip
    print(f"\nnormalize job, {n} reports per run, best / median of {rounds} (reports/s; "
          "reports per CPU second of all the job's processes); load average before: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, texts in corpora.items():
            source = Path(tmp) / f"{name}.jsonl"
            with source.open("w", encoding="utf-8") as f:
                for i in range(n):
                    f.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
            rates: dict[str, list[float]] = {label: [] for label, _, _ in jobs}
            per_cpu: dict[str, list[float]] = {label: [] for label, _, _ in jobs}
            for _ in range(rounds):
                for label, workers, scrub in jobs:
                    start, cpu = time.perf_counter(), _cpu_seconds()
                    summary = normalize_reports(source, Path(tmp) / "out.jsonl", settings=settings,
                                                workers=workers, scrub=scrub)  # fmt: skip
                    seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu
                    assert summary.total == n and summary.failed == 0
                    rates[label].append(n / seconds)
                    per_cpu[label].append(n / cpu_seconds)
            for label, _, _ in jobs:
                print(f"{name:<12} {label:<26} {max(rates[label]):6.0f} / "
                      f"{statistics.median(rates[label]):6.0f} reports/s   "
                      f"{statistics.median(per_cpu[label]):6.0f} per CPU s")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f} (2 cores shared with other sessions)")


def _scores(
    args: argparse.Namespace,
    corpus: ModuleType,
    real: list[tuple[str, str, str]],
    generated: list[Any],
) -> None:
    """Recall per kind on both corpora, over-redaction, and scrubbing speed in one process."""
    from mammosearch.nlp import normalize
    from mammosearch.nlp.scrub import Scrubber

    scrubber = Scrubber()
    find = scrubber.find
    find("warm up: Dr. Ana Ruiz, MRN 1234567, ana@example.org")
    columns: dict[str, dict[str, tuple[int, int]]] = {}
    for which in ("dev", "test"):
        reports = [r for r in real if corpus.half(r[0]) == which]
        if reports:
            planted = corpus.plant(reports, copies=args.copies, seed=args.seed)
            columns[f"independent {which}"] = corpus.recall_by_kind(
                [(p.text, p.spans) for p in planted], find
            )
    if "independent test" in columns and args.scrubber_root.resolve() == REPO:
        columns["test, no name hints"] = _without_name_hints(corpus, real, args, find)
    columns["generator"] = corpus.recall_by_kind([(r.text, r.spans) for r in generated], find)
    print("\nrecall per kind (independent: real reports with planted values the scrubber never "
          "saw; generator: mammosearch.samples.phi)")  # fmt: skip
    _table(columns)

    texts = [p.read_text(encoding="utf-8") for folder in ("reports-real", "reports-examples")
             for p in sorted((SHARED / folder).rglob("*.txt"))]  # fmt: skip
    if texts:
        words = removed = dates = changed = 0
        for text in texts:
            found = find(text)
            spans = [(s, e) for s, e, kind in found if kind != "DATE"]
            tokens = [m.span() for m in re.finditer(r"[^\W_]+", text)]
            words += len(tokens)
            removed += sum(1 for a, b in tokens if any(s < b and e > a for s, e in spans))
            dates += sum(kind == "DATE" for _, _, kind in found)
            before, after = normalize(text), normalize(scrubber.scrub(text).text)
            changed += (
                (before.density and before.density.category,
                 before.birads and before.birads.category,
                 sorted(repr((f.type, f.laterality, f.negated, f.descriptors))
                        for f in before.findings))
                != (after.density and after.density.category,
                    after.birads and after.birads.category,
                    sorted(repr((f.type, f.laterality, f.negated, f.descriptors))
                           for f in after.findings))
            )  # fmt: skip
        print(f"\nreal + example reports ({len(texts)}, no PHI but dates): {removed} of {words} "
              f"words removed ({removed / words:.2%}; besides, {dates} dates); density, category "
              f"or findings changed by scrubbing in {changed}")  # fmt: skip
        start, cpu = time.perf_counter(), time.process_time()
        rounds = 5
        for _ in range(rounds):
            for text in texts:
                scrubber.scrub(text)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        print(
            f"speed: {rounds * len(texts) / seconds:.0f} reports/s scrubbed, "
            f"{rounds * len(texts) / cpu_seconds:.0f} per CPU second (one process, "
            f"{sum(map(len, texts)) / len(texts):.0f} characters on average)"
        )
    _overlap(corpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1000, help="generated reports")
    parser.add_argument("--copies", type=int, default=3, help="plantings per real report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scrubber-root", type=Path, default=REPO)
    parser.add_argument("--job-reports", type=int, default=3000,
                        help="reports per normalize job run (0: no job runs)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="runs of each job setting")
    parser.add_argument("--job-only", action="store_true", help="only the normalize job runs")
    args = parser.parse_args()
    sys.path.insert(0, str(args.scrubber_root.resolve()))

    corpus = _corpus()
    from mammosearch.samples.phi import generate_phi_reports

    print(f"scrubber: {sys.modules['mammosearch'].__file__}")
    real = (
        corpus.real_reports(SHARED / "reports-real") if (SHARED / "reports-real").exists() else []
    )
    generated = generate_phi_reports(args.reports, seed=args.seed)
    if not args.job_only:
        _scores(args, corpus, real, generated)
    if args.job_reports > 0:
        corpora = {"generator": [r.text for r in generated]}
        if real:  # both halves: nothing is tuned on a speed
            planted = corpus.plant(real, copies=args.copies, seed=args.seed)
            corpora = {"independent": [p.text for p in planted], **corpora}
        _job_throughput(corpora, args.job_reports, args.rounds)


if __name__ == "__main__":
    main()

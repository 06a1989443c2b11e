"""Report normalization throughput, side by side with a plain medspaCy pipeline.

Generates N synthetic EN/ES reports of about W words (mammosearch.samples.reports), then
times, on the same texts:

* mammosearch ``normalize_many`` with 1 and with 2 processes (density, BI-RADS, findings with
  descriptors, laterality, location, context, recommendation, standardized text);
* the normalize job's outputs (the target: tables add at most 10%; ``--only-tables`` runs just
  this): their CPU budget (what differs between JSON Lines, Parquet and CSV, per part: the
  workers' serialising, pickling, the parent's part), then ``mammosearch normalize`` end to end
  to JSON Lines, Parquet and CSV in alternating rounds, each format's median against the median
  JSON Lines job;
* the peer: ``spacy.blank("en")`` + ``sentencizer`` + medspaCy ``TargetMatcher`` over the same
  finding terms (mammosearch's trigger phrases) + medspaCy ``ConText`` with its default rules,
  in one process. The peer only finds terms and marks their context.

The peer is installed for the benchmark only (``make bench`` does it; see STACK-NOTES):
``pip install --no-deps medspacy==1.3.1 PyRuSH==1.0.13 PyFastNER quicksectx loguru pysbd==0.3.4
jsonschema medspacy-quickumls six unidecode nltk pysimstring``.

Usage: ``python bench/normalize.py [--reports 10000] [--words 150] [--seed 0] [--workers 2]
[--only-tables] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mammosearch.nlp import Normalizer
from mammosearch.nlp._resources import load_data
from mammosearch.samples.reports import generate_reports


def _peer() -> Any | None:
    try:
        import medspacy  # noqa: F401
        import spacy
        from medspacy.target_matcher import TargetRule
    except ImportError as e:
        print(f"peer skipped: medspaCy is not installed ({e.name}); run `make bench`")
        return None
    logging.getLogger("PyRuSH").setLevel(logging.WARNING)
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    matcher = nlp.add_pipe("medspacy_target_matcher")
    rules = []
    for trigger in load_data("findings.json")["triggers"]:
        label = trigger["type"].upper()
        rules += [TargetRule(phrase, label) for phrase in trigger["phrases"]]
    matcher.add(rules)
    nlp.add_pipe("medspacy_context")
    return nlp


def _time(label: str, fn: Any, n: int, words: float) -> float:
    start = time.perf_counter()
    extracted = fn()
    seconds = time.perf_counter() - start
    rate = n / seconds
    print(f"{label:<44} {seconds:8.2f} s {rate:10.0f} reports/s  ({extracted})")
    return rate


def _job(source: Path, out: Path, workers: int) -> float:
    """One ``mammosearch normalize`` in a fresh process (as a user runs it): wall seconds."""
    command = [sys.executable, "-c", "from mammosearch.cli import main; main()", "-q",
               "normalize", str(source), "-o", str(out), "--workers", str(workers),
               "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def tables(texts: list[str], workers: int, rounds: int) -> None:
    """What ``-o OUT.parquet`` / ``OUT.csv`` adds to the normalize job.

    Whole jobs end to end, each in a fresh process, in rounds of JSON Lines, Parquet, CSV (the
    formats alternate, so that a shared machine's load falls on all three alike); the median of
    each format against the median JSON Lines job is the tables' share (the target is at most
    +10%). The table writers have no part that runs alone any more: the job's workers flatten
    the rows and its parent appends them (mammosearch.pipeline.tables).
    """
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        source = folder / "reports.csv"
        with source.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows((f"r{i}", text) for i, text in enumerate(texts))
        runs: dict[str, list[float]] = {"jsonl": [], "parquet": [], "csv": []}
        for round_ in range(rounds):
            for fmt, times in runs.items():
                times.append(_job(source, folder / f"run{round_}.{fmt}", workers))
                print(f"{'normalize -o OUT.' + fmt + ', ' + str(workers) + ' processes':<44} "
                      f"{times[-1]:8.2f} s")  # fmt: skip
        lines = statistics.median(runs["jsonl"])
        for fmt in ("parquet", "csv"):
            whole = statistics.median(runs[fmt])
            print(f"{'end to end (' + fmt + '), median of ' + str(rounds):<44} {whole:8.2f} s  "
                  f"{100 * (whole - lines) / lines:+.1f}% vs the median JSON Lines job "
                  f"({', '.join(f'{t:.2f}' for t in runs['jsonl'])} s)")  # fmt: skip


def _cpu(fn: Any, reps: int = 3) -> float:
    """The least CPU seconds of this process over ``reps`` calls of ``fn``."""
    spent = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        spent.append(time.process_time() - start)
    return min(spent)


def table_cpu(texts: list[str]) -> None:
    """The outputs' CPU budget, which a shared machine's load moves far less than wall time.

    The reports are normalized once in this process (the job's own work, the same for every
    output); then, per output, the CPU seconds of what differs: serialising each record in the
    worker (a JSON line, or its encoded table rows), pickling the workers' batches of 64, and
    the parent's part (unpickling the batches as they stream in, and writing the file or the
    tables). With two workers on two cores the job's wall time follows its CPU time, the
    parent's included.
    """
    import json
    import pickle

    from mammosearch.nlp.normalizer import ReportLine
    from mammosearch.pipeline.reports import write_report_lines
    from mammosearch.pipeline.tables import TableRows, write_table_lines

    normalizer = Normalizer()
    normalizer.normalize("warm-up: heterogeneously dense; spiculated mass; BI-RADS 4")
    start = time.process_time()
    reports = [normalizer.normalize_safe((f"r{i}", text)) for i, text in enumerate(texts)]
    records = [report.to_dict() for report in reports]
    work = time.process_time() - start

    def lines(payloads: list[Any], table: bool) -> list[ReportLine]:
        return [ReportLine("" if table else p, r.error, r.density is not None,
                           r.birads is not None, r.language, p if table else None)
                for p, r in zip(payloads, reports, strict=True)]  # fmt: skip

    def batches(made: list[ReportLine]) -> list[bytes]:
        return [pickle.dumps(made[i : i + 64]) for i in range(0, len(made), 64)]

    def stream(blobs: list[bytes]) -> Any:
        for blob in blobs:
            yield from pickle.loads(blob)

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        parts: dict[str, tuple[float, float, float]] = {}
        encoders: dict[str, Any] = {
            "jsonl": lambda d: json.dumps(d, ensure_ascii=False),
            "parquet": TableRows("parquet"),
            "csv": TableRows("csv"),
        }
        for fmt, encode in encoders.items():
            made = lines([encode(d) for d in records], fmt != "jsonl")
            blobs = batches(made)
            out = folder / f"cpu.{fmt}"
            write: Any = write_report_lines if fmt == "jsonl" else write_table_lines
            parts[fmt] = (_cpu(lambda e=encode: [e(d) for d in records]),
                          _cpu(lambda m=made: batches(m)),
                          _cpu(lambda b=blobs, w=write, o=out: w(stream(b), o)))  # fmt: skip
        base = work + sum(parts["jsonl"])
        print(f"{'CPU: normalizing ' + str(len(texts)) + ' reports':<44} {work:8.2f} s")
        for fmt, (encode_s, pickle_s, parent_s) in parts.items():
            extra = sum(parts[fmt]) - sum(parts["jsonl"])
            print(f"{'CPU: output ' + fmt:<44} {sum(parts[fmt]):8.2f} s  (serialise "
                  f"{encode_s:.2f}, pickle {pickle_s:.2f}, parent {parent_s:.2f}); "
                  f"{100 * extra / base:+.1f}% of the JSON Lines job's CPU")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes of the normalize job")
    parser.add_argument("--only-tables", action="store_true", help="time the table outputs only")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the table outputs")
    args = parser.parse_args()

    reports = generate_reports(args.reports, seed=args.seed, min_words=args.words)
    texts = [r.text for r in reports]
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{len(texts)} synthetic reports, {words:.0f} words on average (EN/ES), "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")  # fmt: skip

    if args.only_tables:
        table_cpu(texts)
        tables(texts, args.workers, args.rounds)
        return
    normalizer = Normalizer()
    normalizer.normalize("warm-up: heterogeneously dense; spiculated mass; BI-RADS 4")

    def ours(n_process: int) -> str:
        out = list(normalizer.normalize_many(texts, n_process=n_process, batch_size=128))
        findings = sum(len(r.findings) for r in out)
        return f"{findings} findings, {sum(r.birads is not None for r in out)} categories"

    def job(n_process: int) -> str:
        lines = list(normalizer.normalize_lines(texts, n_process=n_process, batch_size=128))
        return f"{sum(len(line.json) for line in lines) / 1e6:.1f} MB of JSON Lines"

    one = _time("mammosearch, 1 process", lambda: ours(1), len(texts), words)
    _time("mammosearch, 2 processes (incl. start-up)", lambda: ours(2), len(texts), words)
    _time("normalize job (JSON Lines), 1 process", lambda: job(1), len(texts), words)
    _time("normalize job (JSON Lines), 2 processes", lambda: job(2), len(texts), words)
    table_cpu(texts)
    tables(texts, args.workers, args.rounds)
    peer = _peer()
    if peer is None:
        return
    peer("warm-up mass")

    def theirs() -> str:
        ents = negated = 0
        for doc in peer.pipe(texts, batch_size=128):
            ents += len(doc.ents)
            negated += sum(bool(e._.is_negated) for e in doc.ents)
        return f"{ents} terms, {negated} negated"

    other = _time("medspaCy sentencizer+TargetMatcher+ConText", theirs, len(texts), words)
    print(f"ratio, 1 process: mammosearch / medspaCy = {one / other:.2f}x")


if __name__ == "__main__":
    main()

"""Report normalization throughput, side by side with a plain medspaCy pipeline.

Generates N synthetic EN/ES reports of about W words (mammosearch.samples.reports), then
times, on the same texts:

* mammosearch ``normalize_many`` with 1 and with 2 processes (density, BI-RADS, findings with
  descriptors, laterality, location, context, recommendation, standardized text);
* the normalize job's outputs: ``normalize_reports`` to JSON Lines, and the table writers
  (``-o OUT.parquet`` / ``OUT.csv``) on those lines, as a share of the job's time (the target is
  at most +10%; ``--only-tables`` runs just this);
* the peer: ``spacy.blank("en")`` + ``sentencizer`` + medspaCy ``TargetMatcher`` over the same
  finding terms (mammosearch's trigger phrases) + medspaCy ``ConText`` with its default rules,
  in one process. The peer only finds terms and marks their context.

The peer is installed for the benchmark only (``make bench`` does it; see STACK-NOTES):
``pip install --no-deps medspacy==1.3.1 PyRuSH==1.0.13 PyFastNER quicksectx loguru pysbd==0.3.4
jsonschema medspacy-quickumls six unidecode nltk pysimstring``.

Usage: ``python bench/normalize.py [--reports 10000] [--words 150] [--seed 0] [--workers 2]
[--only-tables]``
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mammosearch.config import load_settings
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


def tables(texts: list[str], workers: int) -> None:
    """The normalize job to JSON Lines, then the table writers on its lines (what ``-o
    OUT.parquet`` adds: the engine's work is the same), then whole jobs to Parquet and again to
    JSON Lines."""
    from mammosearch.pipeline import normalize_reports, write_report_tables

    settings = load_settings()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "reports.csv"
        with source.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows((f"r{i}", text) for i, text in enumerate(texts))
        lines = Path(folder) / "normalized.jsonl"
        write_report_tables([], Path(folder) / "warm-up.parquet")  # pyarrow's import, once
        start = time.perf_counter()
        summary = normalize_reports(source, lines, settings=settings, workers=workers)
        job = time.perf_counter() - start
        print(f"{'normalize job to JSON Lines, ' + str(workers) + ' processes':<44} {job:8.2f} s  "
              f"({summary.ok} ok, {summary.failed} failed)")  # fmt: skip
        for fmt in ("parquet", "csv"):
            start = time.perf_counter()
            rows = write_report_tables(lines, Path(folder) / f"reports.{fmt}")
            added = time.perf_counter() - start
            print(f"{'+ table writers (' + fmt + ')':<44} {added:8.2f} s  "
                  f"+{100 * added / job:.1f}% ({rows[0]} reports, {rows[1]} findings)")  # fmt: skip
        whole = {}
        for name in ("whole.parquet", "again.jsonl"):  # end to end, the JSON Lines job twice
            start = time.perf_counter()
            summary = normalize_reports(source, Path(folder) / name, settings=settings,
                                        workers=workers)  # fmt: skip
            whole[name] = time.perf_counter() - start
            print(f"{'normalize job to ' + name:<44} {whole[name]:8.2f} s  "
                  f"({summary.ok} ok, {summary.failed} failed)")  # fmt: skip
        lines_mean = (job + whole["again.jsonl"]) / 2
        print(
            f"{'normalize job to Parquet, end to end':<44} {whole['whole.parquet']:8.2f} s  "
            f"{100 * (whole['whole.parquet'] - lines_mean) / lines_mean:+.1f}% vs the mean of "
            f"two JSON Lines jobs ({job:.2f} s, {whole['again.jsonl']:.2f} s; run-to-run "
            "noise included)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes of the normalize job")
    parser.add_argument("--only-tables", action="store_true", help="time the table writers only")
    args = parser.parse_args()

    reports = generate_reports(args.reports, seed=args.seed, min_words=args.words)
    texts = [r.text for r in reports]
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{len(texts)} synthetic reports, {words:.0f} words on average (EN/ES), "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")  # fmt: skip

    if args.only_tables:
        tables(texts, args.workers)
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
    tables(texts, args.workers)
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

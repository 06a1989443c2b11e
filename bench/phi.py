"""Report PHI scrubbing: recall and precision per PHI kind, and speed.

Over ``--reports`` PHI-laden synthetic reports (``mammosearch.samples.phi``: generated EN/ES
reports wrapped in Faker identities, with the span of every planted value), a planted value
counts as caught when scrubbed spans cover all of it; a scrubbed span is a false positive when it
touches no planted value. The generator and the scrubber were written together, so these figures
are an upper bound: real reports will show formats neither anticipated. Also prints what the
scrubber removes from the public example reports in ``../shared/data`` (which carry no names),
and the time per report.

Usage: ``python bench/phi.py [--reports 1000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from mammosearch.nlp.scrub import Scrubber, score_scrubbing, scrub
    from mammosearch.samples.phi import generate_phi_reports

    reports = generate_phi_reports(args.reports, seed=args.seed)
    scrub("warm up: Dr. Ana Ruiz, MRN 1234567, ana@example.org")
    start = time.perf_counter()
    scores = score_scrubbing([(r.text, list(r.spans)) for r in reports], Scrubber())
    seconds = time.perf_counter() - start
    chars = sum(len(r.text) for r in reports) / len(reports)
    print(f"{len(reports)} PHI-laden reports (EN/ES, {chars:.0f} characters on average): "
          f"{1000 * seconds / len(reports):.1f} ms per report")  # fmt: skip
    print(f"{'kind':<13}{'planted':>8}{'recall':>9}{'found':>8}{'precision':>11}")
    for kind, figures in scores.items():
        print(f"{kind:<13}{figures['planted']:>8}{figures['recall']:>9.4f}{figures['found']:>8}"
              f"{figures['precision']:>11.4f}")  # fmt: skip
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    for folder in ("reports-examples", "reports-real/paraguay-es", "reports-real/dmid-en"):
        texts = sorted((shared / folder).rglob("*.txt"))
        if not texts:
            continue
        kinds: Counter[str] = Counter()
        for path in texts:
            kinds.update(scrub(path.read_text(encoding="utf-8")).counts)
        print(f"../shared/data/{folder}: {len(texts)} reports, scrubbed {dict(kinds) or 'nothing'}")


if __name__ == "__main__":
    main()

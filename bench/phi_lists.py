"""Build the word lists that the PHI scrubber ships (a development-time step, not run by tests).

Writes two files into ``mammosearch/nlp/data`` (folded: lower case, no accents, one per line,
gzip):

- ``phi_vocabulary.txt.gz``: the general vocabulary of the allow-list, the ``--top`` most frequent
  words of English and of Spanish in wordfreq, minus every word that is a personal name in any
  name list below (frequency alone cannot tell "garcia" from "mass"). The most frequent
  ``--protect`` words of each language that no curated list (Faker, gender-guesser) names stay
  in, since names-dataset, mined from social-network profiles, also lists "the" and "de".
- ``phi_names.txt.gz``: the personal names of those lists, a hint for body text (names next to a
  person cue); the scrubber's design does not depend on it.

The name lists, none of which the runtime loads:

- Faker's person providers, every locale (first and last names);
- gender-guesser's ``nam_dict.txt`` (given names of about 50 countries);
- names-dataset v3 (first and last names with a rank of at most ``--rank`` in any country).

Run ``python bench/phi_lists.py`` after ``pip install names-dataset gender-guesser`` (the ``dev``
extra); loading names-dataset needs about 2 GB of memory and half a minute.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import pkgutil
import unicodedata
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "mammosearch" / "nlp" / "data"


def fold(word: str) -> str:
    """Lower case without accents (the scrubber folds its tokens the same way)."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _tokens(name: str) -> set[str]:
    """The folded words of a name; of a name of several words, the capitalised ones ("de la
    Cruz" gives "cruz", not "de" or "la")."""
    parts = "".join(c if c.isalpha() or c == "'" else " " for c in name).split()
    if len(parts) > 1:
        parts = [p for p in parts if p[0].isupper()]
    return {fold(p) for p in parts if len(p) > 1}


def faker_names() -> set[str]:
    """First and last names of every Faker locale that has a person provider."""
    import faker.providers.person as person

    names: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        module = importlib.import_module(f"faker.providers.person.{info.name}")
        provider = getattr(module, "Provider", None)
        for attr in ("first_names", "first_names_female", "first_names_male", "last_names"):
            values = getattr(provider, attr, None)
            if isinstance(values, dict):  # weighted: name -> frequency
                values = list(values)
            if not isinstance(values, (list, tuple)):
                continue
            for value in values:
                names |= _tokens(str(value))
    return names


def gender_guesser_names() -> set[str]:
    """Given names of gender-guesser's ``nam_dict.txt``."""
    import gender_guesser

    path = Path(gender_guesser.__file__).parent / "data" / "nam_dict.txt"
    names: set[str] = set()
    for line in path.read_text(encoding="iso-8859-1").splitlines():
        if line.startswith("#") or len(line) < 30:
            continue
        field = line[3:29].strip()
        if "<" not in field:
            names |= _tokens(field.replace("+", " "))
    return names


def names_dataset_names(max_rank: int) -> set[str]:
    """Names of names-dataset v3 ranked at most ``max_rank`` in some country."""
    from names_dataset import NameDataset

    dataset = NameDataset()
    names: set[str] = set()
    for table in (dataset.first_names, dataset.last_names):
        for name, info in table.items():
            ranks = [r for r in (info.get("rank") or {}).values() if r]
            if ranks and min(ranks) <= max_rank and " " not in name:
                names |= _tokens(name)
    return names


def _write(path: Path, words: set[str]) -> None:
    data = ("\n".join(sorted(words)) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{path.relative_to(DATA.parents[2])}: {len(words)} words, {path.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=40000, help="words per language")
    parser.add_argument("--protect", type=int, default=400, help="function words kept")
    parser.add_argument("--rank", type=int, default=1000, help="names-dataset rank cut")
    args = parser.parse_args()

    import wordfreq

    curated = faker_names() | gender_guesser_names()
    mined = names_dataset_names(args.rank)
    print(f"names: Faker+gender-guesser {len(curated)}, names-dataset {len(mined)}")
    vocabulary: set[str] = set()
    protected: set[str] = set()
    for language in ("en", "es"):
        words = [fold(w) for w in wordfreq.top_n_list(language, args.top)]
        words = [w for w in words if w.isalpha() and (len(w) > 1 or w in "aeoyu")]
        vocabulary.update(words)
        protected.update(w for w in words[: args.protect] if w not in curated)
    names = curated | mined
    kept = (vocabulary - names) | (vocabulary & protected)
    print(f"vocabulary {len(vocabulary)}: {len(vocabulary) - len(kept)} names taken out")
    _write(DATA / "phi_vocabulary.txt.gz", kept)
    _write(DATA / "phi_names.txt.gz", {n for n in names if len(n) > 2})


if __name__ == "__main__":
    main()

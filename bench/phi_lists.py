"""Build the word lists that the PHI scrubber ships (a development-time step, not run by tests).

Writes two files into ``mammosearch/nlp/data`` (folded: lower case, no accents, one per line,
gzip):

- ``phi_vocabulary.txt.gz``: the general vocabulary of the allow-list, the ``--top`` most frequent
  words of English and of Spanish in wordfreq, minus every word that is a personal name in any
  name list below (frequency alone cannot tell "garcia" from "mass"). The most frequent
  ``--protect`` words of each language that no curated list (Faker, gender-guesser) names stay
  in, since names-dataset, mined from social-network profiles, also lists "the", "de" and
  "normal"; below them, a word that any list names is out ("zubizarreta" is among the 100,000
  most frequent Spanish words), and so is every place name of Faker's address providers and
  pycountry (cities, provinces, states, countries).
- ``phi_common.txt.gz``: vocabulary words that only names-dataset calls names ("compara"):
  allowed in lower case inside mixed-case text and in sentences in capitals.
- ``phi_lowercase.txt.gz``: the rarer words down to the ``--lower`` most frequent
  ("percutánea"), less the curated names and the places, and the ``--protect`` commonest that
  a curated list calls names ("made"): allowed when written in lower case inside mixed-case
  text, where a name would be capitalised.
- ``phi_names.txt.gz``: the personal names of the curated lists and names-dataset's
  ``--hint-rank`` best ranked, a hint for body text (names next to a person cue); the
  scrubber's design does not depend on it.

The name lists, none of which the runtime loads:

- Faker's person providers, every locale (first and last names);
- gender-guesser's ``nam_dict.txt`` (given names of about 50 countries);
- names-dataset v3 (first and last names of one word, all of them unless ``--rank`` cuts).

Run ``python bench/phi_lists.py`` after ``pip install -e .[phi-lists]``; loading names-dataset
needs about 2 GB of memory and half a minute. The output is deterministic for given package
versions.
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


def names_dataset_names(max_rank: int, hint_rank: int) -> tuple[set[str], set[str]]:
    """Names of one word of names-dataset v3 ranked at most ``max_rank`` in some country (all
    when unranked), and those ranked at most ``hint_rank``."""
    from names_dataset import NameDataset

    dataset = NameDataset()
    names: set[str] = set()
    top: set[str] = set()
    for table in (dataset.first_names, dataset.last_names):
        for name, info in table.items():
            if " " in name:
                continue
            rank = min([r for r in (info.get("rank") or {}).values() if r] or [max_rank])
            if rank <= max_rank:
                names |= _tokens(name)
            if rank <= hint_rank:
                top |= _tokens(name)
    return names, top


def place_names() -> set[str]:
    """City, province and state names of every Faker address provider, and the names of
    pycountry's countries and subdivisions."""
    import faker.providers.address as address
    import pycountry

    places: set[str] = set()
    attrs = ("cities", "city_names", "provinces", "states", "departments", "municipalities",
             "regions", "city_name", "towns", "districts", "prefectures", "countries")  # fmt: skip
    for info in pkgutil.iter_modules(address.__path__):
        module = importlib.import_module(f"faker.providers.address.{info.name}")
        provider = getattr(module, "Provider", None)
        for attr in attrs:
            values = getattr(provider, attr, None)
            if isinstance(values, dict):
                values = list(values.values()) if attr == "states" else list(values)
            if isinstance(values, (list, tuple)):
                for value in values:
                    places |= _tokens(str(value))
    for country in pycountry.countries:
        places |= _tokens(country.name)
    for subdivision in pycountry.subdivisions:
        places |= _tokens(subdivision.name)
    return places


def _write(path: Path, words: set[str]) -> None:
    data = ("\n".join(sorted(words)) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"{path.relative_to(DATA.parents[2])}: {len(words)} words, {path.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=100000, help="words per language")
    parser.add_argument("--lower", type=int, default=200000, help="words per language (lower case)")
    parser.add_argument("--protect", type=int, default=5000, help="common words kept")
    parser.add_argument("--rank", type=int, default=10**9, help="names-dataset rank cut")
    parser.add_argument(
        "--hint-rank", type=int, default=2000, help="names-dataset rank cut (hints)"
    )
    args = parser.parse_args()

    import wordfreq

    curated = faker_names() | gender_guesser_names()
    mined, mined_top = names_dataset_names(args.rank, args.hint_rank)
    print(f"names: Faker+gender-guesser {len(curated)}, names-dataset {len(mined)}")
    vocabulary: set[str] = set()
    protected: set[str] = set()
    for language in ("en", "es"):
        words = [fold(w) for w in wordfreq.top_n_list(language, args.top)]
        words = [w for w in words if w.isalpha() and (len(w) > 1 or w in "aeoyu")]
        vocabulary.update(words)
        protected.update(w for w in words[: args.protect] if w not in curated)
    places = place_names()
    print(f"places: {len(places)}")
    names = curated | mined | places
    kept = (vocabulary - names) | (vocabulary & protected)
    print(f"vocabulary {len(vocabulary)}: {len(vocabulary) - len(kept)} names taken out")
    _write(DATA / "phi_vocabulary.txt.gz", kept)
    # words that only names-dataset calls names: allowed in prose and in lower case
    _write(DATA / "phi_common.txt.gz", (vocabulary & mined) - kept - curated - places)
    # the rarer words down to --lower, and the --protect commonest even when a curated list
    # names them ("made", "will"): allowed in lower case in mixed-case text
    rare: set[str] = set()
    common_words: set[str] = set()
    for language in ("en", "es"):
        words = [fold(w) for w in wordfreq.top_n_list(language, args.lower)]
        rare.update(w for w in words if w.isalpha() and len(w) > 2)
        common_words.update(words[: args.protect])
    lowercase = (rare - vocabulary - curated - places) | (common_words - kept - places)
    _write(DATA / "phi_lowercase.txt.gz", {w for w in lowercase if w.isalpha()})
    _write(DATA / "phi_names.txt.gz", {n for n in curated | mined_top if len(n) > 2})


if __name__ == "__main__":
    main()

"""The word lists of PHI scrubbing: the allow-list, its parts, and the cue phrases.

The allow-list (what may stay in an identifier zone) is the union of:

- every word of the project's own lexicons (the other JSON files of ``mammosearch/nlp/data``:
  BI-RADS, density, findings, locations, sections, context cues, recommendations), and the
  breast-imaging words of ``phi.json``'s ``clinical_words`` that their patterns do not spell
  out ("palpable", "axilla", "telorrea"): clinical words, never names;
- the report-structure and function words of ``phi.json``;
- ``phi_vocabulary.txt.gz``: the most frequent English and Spanish words (wordfreq) minus every
  word that is a personal or place name in any of several lists (prebuilt by
  ``bench/phi_lists.py``).

``phi_common.txt.gz`` holds the frequent words that only the noisiest name list (names-dataset,
mined from social-network profiles) calls names: they may stay in a sentence in capitals and
when written in lower case inside mixed-case text, where a name would be capitalised; so may
the rarer words of ``phi_lowercase.txt.gz``, in lower case only.

Words are folded (lower case, no accents). ``phi_names.txt.gz`` (the same name lists) is a hint
for body text only; nothing depends on a name being listed.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import chain
from typing import Any

__all__ = ["PhiLists", "fold", "phi_lists"]

_LEXICONS = (
    "birads.json", "density.json", "findings.json", "location.json", "recommendations.json",
    "sections.json", "context.json", "context_findings.json", "consistency.json",
)  # fmt: skip
# the lexicons whose words make a stretch of text clinical (context cues are common words)
_CLINICAL = (
    "birads.json",
    "density.json",
    "findings.json",
    "location.json",
    "recommendations.json",
)
_WORDS = re.compile(r"[a-z]{3,}")
_ESCAPES = re.compile(r"\\[a-zA-Z]")


@lru_cache(maxsize=1 << 14)  # words repeat from report to report
def fold(word: str) -> str:
    """Lower case without accents (``"García"`` → ``"garcia"``)."""
    lowered = word.lower()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _data(name: str) -> bytes:
    return resources.files("mammosearch.nlp").joinpath("data").joinpath(name).read_bytes()


def _strings(value: Any, key: str = "") -> list[str]:
    """Every string inside a JSON value, comments left out."""
    if key.startswith("_"):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in ([k] + _strings(v, k))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@dataclass(frozen=True, slots=True)
class PhiLists:
    """The folded word sets of PHI scrubbing (see the module docstring)."""

    allowed: frozenset[str]
    common: frozenset[str]
    lowercase: frozenset[str]
    clinical: frozenset[str]
    names: frozenset[str]
    person_names: frozenset[str]
    particles: frozenset[str]
    function_words: frozenset[str]
    structure: frozenset[str]
    institution_words: frozenset[str]
    titles: frozenset[str]
    units: frozenset[str]
    category_cues: frozenset[str]
    identifier_labels: frozenset[str]
    address_labels: frozenset[str]
    person_labels: frozenset[str]
    roles: frozenset[str]
    section_words: frozenset[str]
    identifying_labels: frozenset[str]
    age_labels: frozenset[str]
    person_cues: tuple[tuple[str, ...], ...]
    place_cues: tuple[tuple[str, ...], ...]
    signature_cues: tuple[tuple[str, ...], ...]


def _phrases(values: list[str]) -> tuple[tuple[str, ...], ...]:
    """Cue phrases as folded word tuples, longest first."""
    phrases = {tuple(fold(v).replace(".", " ").split()) for v in values}
    return tuple(sorted(phrases, key=lambda p: (-len(p), p)))


def _section_words() -> frozenset[str]:
    """Words of section headers ("Findings", "Técnica", "Recomendaciones") and of the
    connectors between them: a ``label:`` made of them opens clinical text."""
    data = json.loads(_data("sections.json"))
    words = {"de", "la", "del", "of", "the", "and", "y", "e"}
    for phrase in _strings(data["kinds"]) + _strings(data["sides"]) + data["colon_only"]:
        words.update(fold(phrase).split())
    return frozenset(words)


@cache
def phi_lists() -> PhiLists:
    """The shipped lists, loaded once per process."""
    rules = json.loads(_data("phi.json"))
    lexicon: set[str] = set()
    clinical: set[str] = set()
    for name in _LEXICONS:
        for text in _strings(json.loads(_data(name))):
            words = _WORDS.findall(fold(_ESCAPES.sub(" ", text)))
            lexicon.update(words)
            if name in _CLINICAL:
                clinical.update(words)
    # breast-imaging words the lexicons' patterns do not spell out ("axil(?:a|ae)")
    clinical_words = {fold(w) for w in rules["clinical_words"]}
    lexicon |= clinical_words
    clinical |= clinical_words
    structure = {fold(w) for w in rules["structure_words"] + rules["function_words"]}
    vocabulary = gzip.decompress(_data("phi_vocabulary.txt.gz")).decode("utf-8").split()
    names = gzip.decompress(_data("phi_names.txt.gz")).decode("utf-8").split()
    common = gzip.decompress(_data("phi_common.txt.gz")).decode("utf-8").split()
    lowercase = gzip.decompress(_data("phi_lowercase.txt.gz")).decode("utf-8").split()
    person_names = frozenset(names)  # each set built in one pass (worker start-up)
    common_words = frozenset(common)
    return PhiLists(
        allowed=frozenset(chain(vocabulary, lexicon, structure)),
        common=common_words,
        lowercase=common_words.union(lowercase),
        clinical=frozenset(clinical - structure),
        names=person_names.difference(lexicon, structure),
        person_names=person_names,
        particles=frozenset(rules["particles"]),
        function_words=frozenset(fold(w) for w in rules["function_words"]),
        structure=frozenset(fold(w) for w in rules["structure_words"]),
        institution_words=frozenset(fold(w) for w in rules["institution_words"]),
        titles=frozenset(rules["titles"]),
        units=frozenset(rules["units"]),
        category_cues=frozenset(rules["category_cues"]),
        identifier_labels=frozenset(rules["identifier_labels"]),
        address_labels=frozenset(rules["address_labels"]),
        person_labels=frozenset(rules["person_labels"]),
        roles=frozenset(rules["roles"]),
        section_words=_section_words() - frozenset(rules["person_labels"]),
        identifying_labels=frozenset(
            rules["person_labels"]
            + rules["identifier_labels"]
            + rules["address_labels"]
            + rules["age_labels"]
            + rules["titles"]
            + rules["contact_labels"]
        ),
        age_labels=frozenset(rules["age_labels"]),
        person_cues=_phrases(rules["person_cues"] + rules["titles"]),
        place_cues=_phrases(rules["place_cues"]),
        signature_cues=_phrases(rules["signature_cues"]),
    )

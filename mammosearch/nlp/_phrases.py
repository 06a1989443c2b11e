"""Word tokens of folded text, longest-match phrase lookup, and typo correction to a lexicon."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate, compress
from operator import not_
from typing import Generic, TypeVar

__all__ = ["PhraseIndex", "Speller", "Tokens", "phrase_words", "tokenize"]

P = TypeVar("P")

# one capturing group: split() gives gap, word, gap, word, ..., gap
_WORD = re.compile(r"([^\W_]+|[,;:/&()])")
_SPLIT = re.compile(r"[^\W_]+|[,;:/&()]")


def phrase_words(phrase: str) -> tuple[str, ...]:
    """The words of a lexicon phrase, split as report text is ("ill-defined" → ill, defined)."""
    return tuple(_SPLIT.findall(phrase.lower()))


@dataclass(frozen=True, slots=True)
class Tokens:
    """Word tokens of a folded text: normalised form and offsets in the analysis text."""

    norms: list[str]
    starts: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.norms)


def tokenize(folded: str) -> Tokens:
    """Split folded text into words and the punctuation that delimits lists and clauses."""
    # Offsets come from the running length of the pieces (no match object per word): the
    # end of each gap is where the next word starts.
    parts = _WORD.split(folded)
    if len(parts) == 1:
        return Tokens([], [], [])
    offsets = list(accumulate(map(len, parts)))
    return Tokens(parts[1::2], offsets[0:-1:2], offsets[1::2])


class PhraseIndex(Generic[P]):
    """Greedy longest-match lookup of multi-word phrases over a token sequence.

    Args:
        entries: ``(phrase, payload)`` pairs; a phrase may carry several payloads.
    """

    def __init__(self, entries: Iterable[tuple[str, P]]) -> None:
        by_words: dict[tuple[str, ...], list[P]] = {}
        for phrase, payload in entries:
            words = phrase_words(phrase)
            if words:
                by_words.setdefault(words, []).append(payload)
        self._first: dict[str, list[tuple[tuple[str, ...], int, list[P]]]] = {}
        for words, payloads in by_words.items():
            self._first.setdefault(words[0], []).append((words, len(words), payloads))
        for options in self._first.values():
            options.sort(key=lambda o: o[1], reverse=True)
        self.words = frozenset(w for words in by_words for w in words)

    def scan(
        self, norms: Sequence[str], lo: int = 0, hi: int | None = None
    ) -> list[tuple[int, int, list[P]]]:
        """Non-overlapping longest matches in ``norms[lo:hi]`` as ``(start, end, payloads)``."""
        hi = len(norms) if hi is None else hi
        out: list[tuple[int, int, list[P]]] = []
        first = self._first
        free = lo  # the first position not covered by an earlier match
        # the positions of first words, found at C speed
        for i in compress(range(lo, hi), map(first.__contains__, norms[lo:hi])):
            if i < free:
                continue
            for words, n, payloads in first[norms[i]]:
                if i + n <= hi and (
                    n == 1 or (norms[i + 1] == words[1] and tuple(norms[i : i + n]) == words)
                ):
                    out.append((i, i + n, payloads))
                    free = i + n
                    break
        return out


@cache
def _folded_zipf() -> dict[str, float]:
    """Zipf frequency of accent-free lower-case words in English or Spanish (the higher).

    Reports often lose their accents ("CLASIFICACION"); folding wordfreq's lists the same way
    keeps such words recognisable as ordinary words.
    """
    from wordfreq import get_frequency_dict

    from mammosearch.nlp._text import fold

    table: dict[str, float] = {}
    for lang in ("en", "es"):
        for word, freq in get_frequency_dict(lang, wordlist="small").items():
            key = fold(word)
            zipf = math.log10(freq) + 9.0 if freq > 0 else 0.0
            if zipf > table.get(key, 0.0):
                table[key] = zipf
    return table


_PLAIN_LIMIT = 200_000  # words remembered as needing no correction (bounded memory)


class Speller:
    """Correct typos in report words toward a lexicon ("speculated" → "spiculated").

    A word is corrected when it is not a lexicon word, is at least five letters long, starts
    with the same letter as exactly one closest lexicon word within the edit budget
    (optimal string alignment distance 1 up to seven letters, 2 beyond), and is rare in general
    English and Spanish (word frequency from ``wordfreq``): below Zipf 3, or below Zipf 4 when a
    lexicon anchor word ("margins", "mass") stands within two words.

    Args:
        vocabulary: The lexicon's words (what words are corrected to).
        anchors: Words that make a nearby moderately common word a likely typo.
        known: Other words of the report vocabulary that are never corrected.
        classes: Words that mean the same thing ("distortion", "distorsion") share a class; a
            typo equally close to several words of one class is corrected to one of them.
    """

    RARE = 3.0
    UNCOMMON = 4.0

    def __init__(
        self,
        vocabulary: Iterable[str],
        anchors: Iterable[str],
        known: Iterable[str] = (),
        classes: Mapping[str, str] | None = None,
    ) -> None:
        self.vocabulary = frozenset(w for w in vocabulary if w.isalpha())
        self.anchors = frozenset(anchors)
        self.known = frozenset(known) - self.vocabulary
        self.classes = dict(classes or {})
        self._buckets: dict[tuple[str, int], list[str]] = {}
        for w in self.vocabulary:
            if len(w) >= 4:
                self._buckets.setdefault((w[0], len(w)), []).append(w)
        # other report words: a typo as close to one of them ("calsificacion" for
        # "clasificacion") is not corrected into the lexicon
        self._known_buckets: dict[tuple[str, int], list[str]] = {}
        for w in self.known:
            if len(w) >= 4 and w.isalpha():
                self._known_buckets.setdefault((w[0], len(w)), []).append(w)
        self._lookup = lru_cache(maxsize=65_536)(self._candidate)
        self._plain: set[str] = set(self.vocabulary)

    def _candidate(self, word: str) -> tuple[str, float] | None:
        from rapidfuzz.distance import OSA

        if word in self.known:
            return None
        zipf = _folded_zipf().get(word, 0.0)
        if zipf >= self.UNCOMMON:
            return None
        budget = 1 if len(word) <= 7 else 2
        best: list[str] = []
        best_d = budget + 1
        for length in range(len(word) - budget, len(word) + budget + 1):
            for cand in self._buckets.get((word[0], length), ()):
                d = OSA.distance(word, cand, score_cutoff=budget)
                if d > budget:
                    continue
                if d < best_d:
                    best, best_d = [cand], d
                elif d == best_d:
                    best.append(cand)
        if len({self.classes.get(w, w) for w in best}) != 1:
            return None
        for length in range(len(word) - best_d, len(word) + best_d + 1):
            for other in self._known_buckets.get((word[0], length), ()):
                if OSA.distance(word, other, score_cutoff=best_d) <= best_d:
                    return None
        return min(best), zipf

    @property
    def plain(self) -> set[str]:
        """Words known to need no correction (the lexicon and words seen before)."""
        return self._plain

    def correct(
        self, norms: list[str], protected: Callable[[int], bool] | None = None
    ) -> list[str]:
        """A copy of ``norms`` with likely typos replaced by their lexicon word.

        Args:
            norms: Folded words.
            protected: Whether the word at a position must never be corrected (a proper name,
                a signature or label line); asked only about words that would be corrected.
        """
        out = norms
        plain = self._plain
        # the positions of words not known to be plain, found at C speed before any is added
        for i in list(compress(range(len(norms)), map(not_, map(plain.__contains__, norms)))):
            word = norms[i]
            found = None
            if len(word) >= 5 and word not in self.vocabulary and word.isalpha():
                found = self._lookup(word)
            if found is None:
                if len(plain) < _PLAIN_LIMIT:
                    plain.add(word)  # never a typo: skip it quickly next time
                continue
            fixed, zipf = found
            if protected is not None and protected(i):
                continue
            if zipf >= self.RARE and not any(
                norms[j] in self.anchors for j in range(max(0, i - 2), min(len(norms), i + 3))
            ):
                continue
            if out is norms:
                out = list(norms)
            out[i] = fixed
        return out

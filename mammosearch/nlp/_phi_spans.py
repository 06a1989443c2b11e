"""Spans of PHI scrubbing grown to what belongs to them: an institution takes its generic
words ("Scan Centre", "Diagnóstico por Imágenes", "S.A."), a street address the town, state
and postcode after it on its line."""

from __future__ import annotations

import re

from mammosearch.nlp._allowlist import fold, phi_lists
from mammosearch.nlp._phi_patterns import AU_STATES, US_STATES

__all__ = ["address_tails", "institutions"]

Span = tuple[int, int, str]

_WORD_AT = re.compile(r"[ \t]*(?:&[ \t]*)?([^\W\d_][\w.']*)")
_TRAILING = re.compile(r"(?:[ \t]+(?:[a-záéíóúñ]+|&))+\Z")
_LEADING = re.compile(r"(?:(?:[a-záéíóúñ]+|&)[ \t]+)+")
# the word (and "&") just before a position, read backwards: on the reversed 40 characters
# before it, the same as searching ``([^\W\d_][\w.']*)[ \t]*(?:&[ \t]*)?\Z`` in them (the
# leftmost start of that search is the farthest letter of the run), without a try at each start
_WORD_BEFORE_REVERSED = re.compile(r"[ \t]*(?:&[ \t]*)?([\w.']*[^\W\d_])")


_WORDS = re.compile(r"[^\W\d_][\w.']*")


def _word_before(text: str, end: int) -> tuple[int, str] | None:
    """``(start, word)`` of the word that ends just before ``end`` (spaces and one "&" between
    them allowed), within the 40 characters before it; ``None`` when there is none."""
    low = max(0, end - 40)
    m = _WORD_BEFORE_REVERSED.match(text[low:end][::-1])
    return (end - m.end(), m.group(1)[::-1]) if m else None


def _grown(text: str, start: int, end: int, words: frozenset[str]) -> tuple[int, int]:
    """``start, end`` grown over the institution words (and their connectors) on each side."""
    lists = phi_lists()
    new_start, new_end = start, end
    while m := _WORD_AT.match(text, new_end):
        if fold(m.group(1)).rstrip(".") not in words:
            break
        new_end = m.end()
    while before := _word_before(text, new_start):
        word_start, raw = before
        word = fold(raw).rstrip(".")
        if word not in words:
            # a capitalised word in front of an institution word is its name ("Kuarahy Imágenes")
            after = text[new_start : new_start + 30].split(" ", maxsplit=1)[0]
            named = fold(after).rstrip(".,") in lists.institution_words
            if not (raw[0].isupper() and named and word not in lists.clinical):
                break
        new_start = word_start
    lead = _LEADING.match(text, new_start, start)
    trail = _TRAILING.search(text, end, new_end)
    return (lead.end() if lead else new_start), (trail.start() if trail else new_end)


def institutions(text: str, found: list[Span]) -> list[Span]:
    """A name or institution next to institution words ("Scan Centre", "Diagnóstico por
    Imágenes", "S.A.") is an institution that takes them.

    Args:
        text: The report's text.
        found: Disjoint spans ``(start, end, kind)``.

    Returns:
        The spans, names next to institution words turned into institutions and grown.
    """
    lists = phi_lists()
    words = lists.institution_words | lists.particles | lists.function_words | {"&"}
    out = []
    for start, end, kind in found:
        if kind not in ("NAME", "INSTITUTION"):
            out.append((start, end, kind))
            continue
        new_start, new_end = _grown(text, start, end, words)
        added = text[new_start:start] + " " + text[end:new_end]
        head = {fold(w).rstrip(".") for w in _WORDS.findall(added)}
        if head & lists.institution_words or kind == "INSTITUTION":
            out.append((new_start, len(text[:new_end].rstrip(" \t")), "INSTITUTION"))
        else:
            out.append((start, end, kind))
    return out


# what follows a street address on its line: ", Town", " - 560034", ", OK 74158", " KY4 7HQ",
# " c/ Cross Street" (a corner)
_TAIL = re.compile(
    r"[ \t]*(?:[,\-–]|\b(?:c/|esq\.|esquina|casi))[ \t]*"
    r"(?:[A-Z]{2}[ \t]+\d{4,6}\b|\d{4,6}\b|[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}\b"
    r"|[^\W\d_]+(?:['.\-][^\W\d_]+)*\b\.?(?:[ \t]+(?:(?:de|del|la|el)[ \t]+)?"
    r"[^\W\d_]+(?:['.\-][^\W\d_]+)*\b\.?){0,3}"
    r"(?:[ \t]+(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}|\d{4,6})\b)?)"
)


# what follows an institution on its line when it is a place: ", Lake Success NY", ", Austin,
# TX 78701", ", Camperdown NSW 2050" (a town, then a US or Australian state)
_STATES = f"{US_STATES}|{AU_STATES}"
_PLACE_TAIL = re.compile(
    r"[ \t]*,[ \t]*(?:[A-Z][^\W\d_]+(?:['.\-][^\W\d_]+)*[ \t]+){0,3}[A-Z][^\W\d_]+,?[ \t]+"
    rf"(?:{_STATES})\b(?:[ \t]+\d{{4,5}}(?:-\d{{4}})?\b)?"
)
# a town after an institution, up to the end of its clause: "Clínica del Country, Bogotá."
_TOWN_TAIL = re.compile(
    r"[ \t]*,[ \t]*((?:[A-ZÁÉÍÓÚÑ][^\W\d_]+)(?:[ \t]+(?:(?:de|del|la|las|los|el)[ \t]+)?"
    r"[A-ZÁÉÍÓÚÑ][^\W\d_]+){0,3})(?=[ \t]*(?:$|[.,;)]|[ \t]-))",
    re.MULTILINE,
)
# a word of five letters or more and a period: a sentence ends there, not an abbreviation
_SENTENCE_END = re.compile(r"[^\W\d_]{5}\.(?=[ \t])")
# the words of an address's parts and corners, which a tail may pass over (", barrio X",
# ", CP 1234", " c/ ")
_ADDRESS_WORDS = frozenset(
    {"barrio", "colonia", "col", "cp", "localidad", "distrito", "municipio", "provincia", "depto",
     "departamento", "sector", "zona", "urbanización", "urb", "fraccionamiento", "parroquia",
     "comuna", "county", "district", "town", "city", "c", "esq", "esquina", "casi"}
)  # fmt: skip


def address_tails(text: str, found: list[Span]) -> list[Span]:
    """A street address takes the town, state and postcode written after it on its line, an
    institution the town (and US or Australian state) after it.

    Args:
        text: The report's text.
        found: Disjoint spans ``(start, end, kind)``.

    Returns:
        The spans, each address grown over what follows it.
    """
    lists = phi_lists()
    out = []
    for start, end, kind in found:
        stop = end
        if kind == "INSTITUTION" and (m := _PLACE_TAIL.match(text, stop)):
            stop = m.end()
        elif kind == "INSTITUTION" and (m := _TOWN_TAIL.match(text, stop)):
            words = [fold(w) for w in re.findall(r"[^\W\d_]+", m.group(1))]
            if not any(w in lists.clinical or w in lists.section_words for w in words):
                stop = m.end()
        while kind == "ADDRESS" and (m := _TAIL.match(text, stop)):
            tail = m.group()
            if sentence_end := _SENTENCE_END.search(tail):  # "Puerto Nuevo. Mamografía ..."
                tail = tail[: sentence_end.end() - 1]
            words = re.findall(r"[^\W\d_]+", tail)
            named = [w for w in words if w not in lists.particles and w not in _ADDRESS_WORDS]
            if any(w[0].islower() for w in named) or (  # running text, or only clinical words
                named and all(fold(w) in lists.clinical for w in named)
            ):
                break
            stop = m.start() + len(tail)
            if sentence_end:
                break
        out.append((start, stop, kind))
    return out

"""The allow-list part of PHI scrubbing: identifier zones, person cues and identifying numbers.

See :mod:`mammosearch.nlp.scrub` for the design. :func:`find_zoned` takes the spans that the
pattern recognizers already took (left as they are) and the spans never to touch (clock times),
and returns the names and identifiers it finds besides.
"""

from __future__ import annotations

import bisect
import re

from rapidfuzz.distance import Levenshtein

from mammosearch.nlp._allowlist import PhiLists, fold, phi_lists
from mammosearch.nlp._phi_tokens import Token, allowed, is_capitalised, number_kind

__all__ = ["find_zoned"]

# a token ends in a letter or digit (never in a full stop: cue look-ups take it as it is)
_TOKEN = re.compile(r"[^\W_]+(?:['’\-./][^\W_]+)*")
# sentence ends and wide gaps cut a line into stretches
_CUT = re.compile(r"[.;!?](?=\s)|\s{3,}|\t|\s\|\s|\s{2,}(?=\S+(?:\s\S+){0,3}\s*:)")
_ABBREVIATIONS = frozenset(
    "no nº n° nro num reg prof mat col avda av dr dra dres drs sr sra srta mr mrs ms st lic "  # noqa: SIM905
    "lcda licda c.i ci tel telf tfno fig approx aprox vs etc cf hosp dept".split()
)
# codes of letters and a few digits that reports use: 4A, T1, 3D, 12mm, 2nd, 1º, MLO2
_NAME_GAP = re.compile(r"[\s,.'’\-]*")


_BY_FIRST: dict[int, tuple[tuple[tuple[str, ...], ...], dict[str, list[tuple[str, ...]]]]] = {}


def _by_first(cues: tuple[tuple[str, ...], ...]) -> dict[str, list[tuple[str, ...]]]:
    """The cue phrases by their first word (kept per cue tuple: hashing the tuple on every
    token would cost more than the look-up)."""
    entry = _BY_FIRST.get(id(cues))
    if entry is None or entry[0] is not cues:
        index: dict[str, list[tuple[str, ...]]] = {}
        for phrase in cues:  # longest first
            index.setdefault(phrase[0], []).append(phrase)
        entry = _BY_FIRST[id(cues)] = (cues, index)
    return entry[1]


def _cue_at(tokens: list[Token], i: int, cues: tuple[tuple[str, ...], ...]) -> int:
    """The length of the cue phrase that starts at token ``i`` (0 when none)."""
    phrases = _by_first(cues).get(tokens[i].folded)
    return _phrase_at(tokens, i, phrases) if phrases else 0


def _phrase_at(tokens: list[Token], i: int, phrases: list[tuple[str, ...]]) -> int:
    """The length of the first of ``phrases`` (cue phrases with the first word of token ``i``)
    that the tokens from ``i`` spell (0 when none)."""
    for phrase in phrases:
        n = len(phrase)
        if tuple(t.folded for t in tokens[i : i + n]) == phrase:
            return n
    return 0


def _name_run(tokens: list[Token], i: int, text: str, lists: PhiLists, titled: bool) -> int:
    """How many tokens from ``i`` make a name after a person cue (0 when none)."""
    taken = 0
    j = i
    while j < len(tokens) and j - i < 7:
        token = tokens[j]
        gap = text[tokens[j - 1].end : token.start] if j > i else ""
        if j > i and not _NAME_GAP.fullmatch(gap):
            break
        word = token.folded
        if token.state == 1 or not token.text[0].isalpha():
            break
        if word in lists.particles or (len(word) == 1 and token.text.isupper()):
            j += 1
            continue
        if not is_capitalised(token.text) or word in lists.titles:
            break
        known = lists.person_names if titled else lists.names
        # after a title a capitalised word is a name even when it is a common word ("Dr. Naomi
        # Feldstein", "Dr. Rich"), unless it is a role, a structure, section or clinical word
        # ("Dr. Lee Radiology", "Sra. Mamografía")
        plain = not titled or _role(word, lists) or _report_word(word, lists)
        if allowed(token, lists) and word not in known and plain:
            break
        j += 1
        taken = j - i
    return taken


def _report_word(word: str, lists: PhiLists) -> bool:
    """A clinical or section-header word: never a name or a place, capitalised or not."""
    return word in lists.clinical or word in lists.section_words


def _places(tokens: list[Token], text: str, lists: PhiLists, skip: int) -> list[tuple[int, str]]:
    """The places named after a place cue, in clinical text and identifier zones alike."""
    cues = _by_first(lists.place_cues)
    out: list[tuple[int, str]] = []
    for i in range(skip, len(tokens)):
        key = tokens[i].folded
        if key in cues and (cue := _phrase_at(tokens, i, cues[key])):
            run = _place_run(tokens, i + cue, text, lists)
            out.extend((i + cue + j, "ADDRESS") for j in range(run))
    return out


def _place_run(tokens: list[Token], i: int, text: str, lists: PhiLists) -> int:
    """How many tokens from ``i`` make a place after a place cue ("procedente de Ciudad del
    Este, Alto Paraná"): capitalised words, the particles between them, on one line."""
    taken = 0
    j = i
    while j < len(tokens) and j - i < 8:
        token = tokens[j]
        gap = text[tokens[j - 1].end : token.start] if j > i else ""
        if "\n" in gap or not _NAME_GAP.fullmatch(gap) or token.state:
            break
        if token.folded in lists.particles and j > i:
            j += 1
            continue
        if not (token.text.isalpha() and is_capitalised(token.text)):
            break
        if _report_word(token.folded, lists):
            break
        j += 1
        taken = j - i
    return taken


# the Latin-1 characters that are not letters, and those that are not lower-case letters
_NOT_LETTERS = bytes(c for c in range(256) if not chr(c).isalpha())
_NOT_LOWER = bytes(c for c in range(256) if not (chr(c).isalpha() and chr(c).islower()))


def _mixed_case(tokens: list[Token], text: str) -> bool:
    """Whether over a third of the letters of ``tokens`` (consecutive tokens of one stretch:
    every letter between the first and the last is in one of them) are lower case."""
    if not tokens:
        return False
    span = text[tokens[0].start : tokens[-1].end]
    try:  # counted on bytes when the span is Latin-1 (most reports)
        data = span.encode("latin-1")
    except UnicodeEncodeError:
        letters = "".join(filter(str.isalpha, span))
        return sum(map(str.islower, letters)) > len(letters) // 3
    return len(data.translate(None, _NOT_LOWER)) > len(data.translate(None, _NOT_LETTERS)) // 3


def _role(word: str, lists: PhiLists) -> bool:
    """A word that stays in a person zone: roles, degrees and labels, structure words that
    are no name, function words, single letters."""
    return (
        word in lists.roles
        or word in lists.identifying_labels
        or (word in lists.structure and word not in lists.person_names)
        or word in lists.function_words
        or word in lists.particles
        or len(word) == 1
    )


def _person_start(tokens: list[Token], lists: PhiLists) -> int:
    """Where a person zone starts: its first title or signature cue, else its start."""
    for i, token in enumerate(tokens):
        if token.folded in lists.titles or _cue_at(tokens, i, lists.signature_cues):
            return i
    return 0


def _prose(tokens: list[Token], lists: PhiLists) -> bool:
    """A sentence in capitals ("SE COMPARA CON ESTUDIOS ANTERIORES") keeps its common words:
    four words or more, six in ten of them on the allow-list."""
    words = [t for t in tokens if t.text.isalpha()]
    return len(words) >= 4 and (sum(allowed(t, lists) for t in words) >= 0.6 * len(words))


def _strict(
    tokens: list[Token],
    text: str,
    kind: str,
    lists: PhiLists,
    skip: int = 0,
    *,
    person: bool = False,
) -> list[tuple[int, str]]:
    """Identifier zone: every word off the allow-list and every non-clinical number goes; a
    capitalised word that a name list knows goes unless it is a lexicon word, and in a
    ``person`` zone (the value of "Patient:", "Radiólogo:", what follows "Reported by") even
    then, since "Redondo" and "Ward" are surnames there."""
    out = []
    person_from = _person_start(tokens, lists) if person else len(tokens)
    mixed_case = prose = None  # worked out when a word off the allow-list needs them
    for i, token in enumerate(tokens):
        if token.state or i < skip:
            continue
        word = token.folded
        if not word.isalpha() and any(map(str.isdigit, word)):  # no letter is a digit
            found = number_kind(tokens, i, text, lists, strict=True)
            if found:
                out.append((i, found))
        elif kind == "ADDRESS":  # an address keeps only its function words
            if word not in lists.particles and word not in lists.function_words:
                out.append((i, kind))
        elif i >= person_from and token.text.isalpha() and not _role(word, lists):
            # a person zone: "john smith" in lower case too, and a capitalised common word
            # ("Dr. Naomi Feldstein") unless it is clinical or a section's
            named = is_capitalised(token.text) and not _report_word(word, lists)
            if not allowed(token, lists) or word in lists.person_names or named:
                out.append((i, kind))
        elif not allowed(token, lists):
            if mixed_case is None:
                mixed_case = _mixed_case(tokens, text)
            if prose is None:
                prose = not person and _prose(tokens[skip:], lists)
            lower = mixed_case and token.text.islower()
            upper_prose = prose and not mixed_case
            if not ((lower and word in lists.lowercase) or (upper_prose and word in lists.common)):
                out.append((i, kind))
        elif token.text[0].isupper():  # capitalised (no digit is upper case)
            if i >= person_from:
                kept = word in lists.roles or word in lists.identifying_labels
                kept = kept or (word in lists.structure and word not in lists.person_names)
                kept = kept or len(word) == 1
                if not (kept or word in lists.particles):
                    out.append((i, kind))
            elif word in lists.names:
                out.append((i, kind))
    return out


def _body(tokens: list[Token], text: str, lists: PhiLists, skip: int = 0) -> list[tuple[int, str]]:
    """Clinical text: names after person cues, capitalised words off the allow-list in
    mid-sentence, identifying numbers; after a signature cue, an identifier zone."""
    return _grown_names(_body_hits(tokens, text, lists, skip), tokens, text, lists, skip)


def _grown_names(
    out: list[tuple[int, str]], tokens: list[Token], text: str, lists: PhiLists, skip: int
) -> list[tuple[int, str]]:
    """``out`` with each word off the allow-list next to a name taken as part of it ("ZULEMA
    ACHUCARRO"; "mary ann jones" in lower case, when the word is a listed name)."""
    named = {i for i, kind in out if kind == "NAME"}
    grown = True
    while grown:
        grown = False
        for i in sorted(named):
            for k in (i - 1, i + 1):
                token = tokens[k] if skip <= k < len(tokens) else None
                if token is None or k in named or token.state or not token.text.isalpha():
                    continue
                gap = text[tokens[min(i, k)].end : tokens[max(i, k)].start]
                beside = _NAME_GAP.fullmatch(gap) and "\n" not in gap
                if (
                    beside
                    and (is_capitalised(token.text) or token.folded in lists.person_names)
                    and not allowed(token, lists)
                    and token.folded not in lists.clinical
                ):
                    named.add(k)
                    out.append((k, "NAME"))
                    grown = True
    return out


def _body_hits(tokens: list[Token], text: str, lists: PhiLists, skip: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    mixed_case = None  # worked out when a capitalised word off the allow-list needs it
    signature_cues, person_cues = _by_first(lists.signature_cues), _by_first(lists.person_cues)
    resume = skip  # the token after a person cue and its name
    for i in range(skip, len(tokens)):
        if i < resume:
            continue
        token = tokens[i]
        key = token.folded
        if key in signature_cues:
            signed = _phrase_at(tokens, i, signature_cues[key])
            if signed:
                return out + _strict(tokens, text, "NAME", lists, skip=i + signed, person=True)
        if key in person_cues:
            cue = _phrase_at(tokens, i, person_cues[key])
            if cue:
                titled = key in lists.titles
                run = _name_run(tokens, i + cue, text, lists, titled)
                out.extend((i + cue + j, "NAME") for j in range(run))
                resume = i + cue + max(run, 0)
                continue
        if token.state == 0:
            if not key.isalpha() and any(map(str.isdigit, key)):  # no letter is a digit
                # a number after an identifier label is one, whatever its length ("MP 4471")
                labelled = any(t.folded in lists.identifier_labels
                               for t in tokens[max(skip, i - 2) : i])  # fmt: skip
                found = number_kind(tokens, i, text, lists, strict=labelled)
                if found:
                    out.append((i, found))
            elif i > skip and token.text[0].isupper() and not allowed(token, lists):
                word = token.folded
                listed = word in lists.names
                if mixed_case is None:
                    mixed_case = _mixed_case(tokens, text)
                titlecase = mixed_case and (token.text[1:].islower() or listed)
                beside = any(
                    0 <= k < len(tokens) and not allowed(tokens[k], lists) for k in (i - 1, i + 1)
                )
                if titlecase or (listed and beside):
                    out.append((i, "NAME"))
    return out


def _stretches(text: str, lists: PhiLists) -> list[tuple[int, int]]:
    """Lines cut at sentence ends (not after an abbreviation) and wide gaps."""
    out = []
    at = 0
    for line in text.split("\n"):
        end = at + len(line)
        start = at
        for m in _CUT.finditer(line):
            if m.group().startswith("."):
                # the last word of the 40 characters before the stop (as ``(\S+)\s*\Z``)
                words = line[max(0, m.start() - 40) : m.start()].rsplit(None, 1)
                raw = words[-1] if words else ""
                last = fold(raw)
                # "Tte.", "Mcal.": a short capitalised word that is no name is an abbreviation
                short = len(last) <= 4 and raw[:1].isupper() and last not in lists.person_names
                initial = len(last) == 1 and last.isalpha()
                if last in _ABBREVIATIONS or initial or short:
                    continue
            out.append((start, at + m.end()))
            start = at + m.end()
        out.append((start, end))
        at = end + 1
    return [(s, e) for s, e in out if text[s:e].strip()]


def _labelled(tokens: list[Token], text: str) -> list[tuple[int, int]]:
    """Token ranges cut at every ``label:``: ``(first token, label length)`` of each part. A
    label is up to three words (no numbers) before a colon or ``#``."""
    parts = [(0, 0)]
    span = text[tokens[0].start : tokens[-1].end + 3]
    if ":" not in span and "#" not in span:
        return parts
    for i, token in enumerate(tokens):
        follow = text[token.end : token.end + 3].lstrip(" .")
        if follow[:1] not in (":", "#") or not any(c.isalpha() for c in token.text):
            continue
        floor = parts[-1][0] + parts[-1][1]  # the previous label's value starts there
        first = i
        while first > floor and i - first < 3:
            gap = text[tokens[first - 1].end : tokens[first].start]
            if gap.strip(" .") or any(map(str.isdigit, tokens[first - 1].text)):
                break
            first -= 1
        if first == 0 and parts == [(0, 0)]:
            parts[-1] = (0, i + 1)
        elif first >= floor:
            parts.append((first, i + 1 - first))
    return parts


def _misspelt_section(word: str, lists: PhiLists) -> bool:
    """Whether ``word`` is one or two edits from a section header word ("Fundings")."""
    if len(word) < 5:
        return False
    limit = 1 if len(word) < 7 else 2
    return any(
        abs(len(word) - len(header)) <= limit and Levenshtein.distance(word, header) <= limit
        for header in lists.section_words
    )


def _touched(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether any of ``spans`` (sorted, disjoint) overlaps ``start, end``."""
    n = bisect.bisect_left(spans, (end, 0)) - 1
    return n >= 0 and spans[n][1] > start


def _state(taken: list[tuple[int, int]], keep: list[tuple[int, int]], start: int, end: int) -> int:
    """1 when a pattern took the token whole (it is done; one taken in part is looked at
    again), 2 when it touches a span to keep, else 0. Both lists are sorted and disjoint."""
    n = bisect.bisect_right(taken, (start, 1 << 62)) - 1
    if n >= 0 and taken[n][0] <= start and taken[n][1] >= end:
        return 1
    n = bisect.bisect_left(keep, (end, 0)) - 1
    return 2 if n >= 0 and keep[n][1] > start else 0


def find_zoned(
    text: str, taken: list[tuple[int, int, str]], keep: list[tuple[int, int]]
) -> list[tuple[int, int, str]]:
    """Names and identifiers that the allow-list rules find.

    Args:
        text: One report's text.
        taken: Spans the pattern recognizers found (their tokens are not looked at again).
        keep: Spans never to remove (clock times).

    Returns:
        ``(start, end, kind)`` spans; touching spans of one kind are joined, with the
        particles, initials and punctuation between them.
    """
    lists = phi_lists()
    taken_spans = sorted((s, e) for s, e, _ in taken)
    keep_spans = sorted(keep)
    found: list[tuple[int, int, str]] = []
    signature_cues = _by_first(lists.signature_cues)
    for start, end in _stretches(text, lists):
        tokens = [Token(*m.span(), (word := m.group()), fold(word))
                  for m in _TOKEN.finditer(text, start, end)]  # fmt: skip
        if not tokens:
            continue
        if _touched(taken_spans, start, end) or _touched(keep_spans, start, end):
            for token in tokens:  # else nothing taken or kept here: every token is free
                token.state = _state(taken_spans, keep_spans, token.start, token.end)
        parts = _labelled(tokens, text)
        for n, (first, label_len) in enumerate(parts):
            last = parts[n + 1][0] if n + 1 < len(parts) else len(tokens)
            part = tokens[first:last]
            label = {t.folded for t in part[:label_len]}
            body = part[label_len:]
            kind = "ADDRESS" if label & lists.address_labels else "NAME"
            clinical = any(map(lists.clinical.__contains__, [t.folded for t in body]))
            identifying = label & lists.identifying_labels
            is_section = bool(label) and label <= lists.section_words
            if (clinical or is_section) and not identifying:
                hits = _body(part, text, lists, skip=label_len)
            else:
                person = bool(label & (lists.person_labels | lists.titles)) or any(
                    key in lists.titles
                    or (key in signature_cues and _phrase_at(part, j, signature_cues[key]))
                    for j, key in enumerate([t.folded for t in part])
                )
                hits = _strict(part, text, kind, lists, skip=label_len, person=person)
                hits = _grown_names(hits, part, text, lists, label_len)
            hits += _places(part, text, lists, label_len)
            # the label itself: its words are structure words, anything else goes (but a
            # misspelt section header, "Finidngs:", is a header)
            if label_len:
                hits += [
                    (j, k)
                    for j, k in _strict(part[:label_len], text, "NAME", lists)
                    if not part[j].text.isalpha()
                    or (
                        is_capitalised(part[j].text)
                        and not _misspelt_section(part[j].folded, lists)
                    )
                ]
            for j, hit_kind in hits:
                found.append((part[j].start, part[j].end, hit_kind))
    return _join(text, found, lists)


_INITIAL_BEFORE = re.compile(r"(?:\b[A-ZÁÉÍÓÚÑ]\.?[ \t]*){1,3}\Z")
_INITIAL_AFTER = re.compile(r"(?:,?[ \t]+[A-ZÁÉÍÓÚÑ]\.(?![^\W\d_])){1,3}")


def _join(
    text: str, found: list[tuple[int, int, str]], lists: PhiLists
) -> list[tuple[int, int, str]]:
    """Spans of one kind joined across particles, initials and punctuation; a name takes the
    initials in front of and after it."""
    found.sort()
    for n, (start, end, kind) in enumerate(found):
        if kind == "NAME":
            before = _INITIAL_BEFORE.search(text, max(0, start - 12), start)
            after = _INITIAL_AFTER.match(text, end)
            found[n] = (before.start() if before else start, after.end() if after else end, kind)
    joined: list[tuple[int, int, str]] = []
    for start, end, kind in found:
        if joined and joined[-1][2] == kind:
            gap = text[joined[-1][1] : start]
            words = [fold(w) for w in re.split(r"[\s,.'’\-]+", gap) if w]
            if "\n" not in gap and all(w in lists.particles or len(w) == 1 for w in words):
                joined[-1] = (joined[-1][0], end, kind)
                continue
        joined.append((start, end, kind))
    return joined

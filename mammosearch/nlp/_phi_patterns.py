"""Pattern recognizers of PHI scrubbing: what has a shape of its own (dates, e-mail and web
addresses, phone numbers, ages over 89, institutions and street addresses with their heads).

Each is ``(kind, compiled pattern)``; the span reported is the pattern's group ``v``. Names and
identifiers are the allow-list's work (:mod:`mammosearch.nlp.scrub`), not these patterns'.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import regex

__all__ = [
    "AU_STATES",
    "KEEP",
    "US_STATES",
    "gated_patterns",
    "gates",
    "line_windows",
    "lowered",
    "patterns",
]

_U = r"\p{Lu}"
_L = r"\p{Ll}"
_WORD = rf"(?:[{_U}][{_L}]+(?:[{_U}][{_L}]+)?(?:['’\-][{_U}]?[{_L}]+)*|[{_U}]{{2,}}|[{_U}]\.)"
_PARTICLE = r"(?:de|del|la|las|los|y|i|van|von|da|di|du|le|st\.?)"
US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|"
    "NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
AU_STATES = "NSW|VIC|QLD|TAS|ACT|WA|SA|NT"
_MONTHS_EN = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
              r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")  # fmt: skip
_MONTHS_ES = (r"ene(?:ro)?|feb(?:rero)?|mar(?:zo)?|abr(?:il)?|may(?:o)?|jun(?:io)?|jul(?:io)?|"
              r"ago(?:sto)?|sep(?:t(?:iembre)?)?|set(?:iembre)?|oct(?:ubre)?|nov(?:iembre)?|"
              r"dic(?:iembre)?")  # fmt: skip
_MONTH = rf"(?:{_MONTHS_EN}|{_MONTHS_ES})"
_FULL_MONTH = (r"(?:january|february|march|april|june|july|august|september|october|november|"
               r"december|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|"
               r"octubre|noviembre|diciembre)")  # fmt: skip
_ROMAN = r"(?:i{1,3}|iv|vi{0,3}|ix|xi{0,2})"
_DAY = r"(?:lunes|martes|mi[eé]rcoles|jueves|viernes|s[aá]bado|domingo|monday|tuesday|wednesday|" \
       r"thursday|friday|saturday|sunday)"  # fmt: skip
_STREET_EN = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"parkway|pkwy|terrace|circle|nagar|marg|colony|layout|cross|main|grove|gardens|close|"
    r"crescent|row|square|sq|hill|park|green|walk|mews|vale|highway|hwy"
)
_STREET_ES = (
    r"calle|c/|avda|avenida|av|paseo|plaza|pza|camino|carretera|ctra|ronda|traves[ií]a|rambla|"
    r"glorieta|urbanizaci[oó]n|urb|pasaje|psje|barrio|b[º°]"
)
_INSTITUTION_HEADS = (
    r"Hospital(?:\s+Universitario|\s+General|\s+Cl[ií]nico|\s+Regional|\s+Provincial)?|Hosp\.|"
    r"Cl[ií]nica|Clinic|Policl[ií]nica|Centro(?:\s+M[eé]dico|\s+de\s+Salud|\s+de\s+Diagn[oó]stico)?|"
    r"Sanatorio|Instituto|Institute|Fundaci[oó]n|Complejo\s+Hospitalario|Medical\s+Cent(?:er|re)|"
    r"Imaging\s+Cent(?:er|re)|Breast\s+Cent(?:er|re)|Cancer\s+Cent(?:er|re)|Diagn[oó]stico\s+por\s+"
    r"Im[aá]genes|Laboratorio|Policlinic|Nursing\s+Home"
)
_INSTITUTION_TAILS = (
    r"General\s+Hospital|Memorial\s+Hospital|Community\s+Hospital|Children's\s+Hospital|Hospitals?|"
    r"Medical\s+(?:Cent(?:er|re)|College|Institute)|Health(?:\s+System|care|\s+City)?|Clinic|"
    r"Imaging\s+Cent(?:er|re)|Diagnostics|Scans?|Radiology\s+(?:Associates|Group|Partners|Services)|"
    r"Women's\s+(?:Center|Imaging)|Institute|Nursing\s+Home|Polyclinic|Labs?|Infirmary|"
    r"Presbyterian|Methodist|Baptist|Practice|Family\s+(?:Medicine|Health)|Medical\s+(?:Group|Associates)"
)

# never PHI although they look like it: clock times and clock-face positions
KEEP = regex.compile(r"\b(?:[01]?\d|2[0-3])[:.h][0-5]\d\b(?!\s*[/.\-]\s*\d)")


def _c(pattern: str, *, ignore_case: bool = False) -> Any:
    return regex.compile(pattern, regex.VERSION1 | (regex.IGNORECASE if ignore_case else 0))


_GATE_WORDS = {
    "month": "jan january feb february mar march apr april may jun june jul july aug august sep "
    "sept september oct october nov november dec december ene enero febrero marzo abr abril mayo "
    "junio julio ago agosto septiembre set setiembre octubre noviembre dic diciembre",
    "head": "hospital hosp clinica clínica clinic policlinica policlínica centro sanatorio "
    "instituto "
    "institute fundacion fundación complejo medical imaging breast cancer diagnostico diagnóstico "
    "laboratorio policlinic nursing",
    "tail": "hospital hospitals medical health healthcare clinic imaging diagnostics scan scans "
    "radiology women institute nursing polyclinic lab labs infirmary presbyterian methodist "
    "baptist practice family",
    "street": _STREET_EN.replace("|", " ") + " flat apt apartment unit suite house door plot",
    "street_es": "calle c avda avenida av paseo plaza pza camino carretera ctra ronda travesia "
    "travesía rambla glorieta urbanizacion urbanización urb pasaje psje barrio b",
}
_GATE_SETS = {name: frozenset(words.split()) for name, words in _GATE_WORDS.items()}
# which gate a recognizer needs to pass first, by position: a word of the gate's set in the
# text (or, for numeric dates, a digit followed by a date separator)
_GATED = {2: "month", 3: "month", 4: "numeric_date", 11: "head", 12: "tail", 13: "street",
          14: "street", 15: "street_es"}  # fmt: skip
_LOWER_WORDS = re.compile(r"[^\W\d_]+")
_NUMERIC_DATE = re.compile(r"\d[/.\-]\d")


def gates(text: str) -> frozenset[str]:
    """The names of the gates that ``text`` passes (see :func:`gated_patterns`)."""
    words = set(_LOWER_WORDS.findall(text.lower()))
    passed = {name for name, keys in _GATE_SETS.items() if not words.isdisjoint(keys)}
    if "#" in text:
        passed.add("street")
    if _NUMERIC_DATE.search(text):
        passed.add("numeric_date")
    return frozenset(passed)


# Recognizers whose matches never take a line break (no part of them matches one) and their
# anchor, a pattern that finds each part every match of theirs contains (or more): they run only
# on the lines where the anchor is found, which gives the same matches (a match starts at or
# after its line's start, ends at or before its end, and what the pattern asks of the character
# before or after a line is the same for a line break as for no character). The street-address
# anchors are searched in the lowered text (:func:`lowered`), case-sensitively: every word that
# ``(?i:...)`` matches reads there as the lower-case word, and a character that is no word
# character beside it (``\b``) is no lower-case ASCII letter there.
_ANCHORS = {  # pattern, searched in the lowered text
    0: ("@", False),
    4: (r"\d[/.\-]", False),
    13: (rf"[ \t](?:{_STREET_EN})(?![a-z])", True),
    14: (r"(?<![a-z])(?:flat|apt|apartment|unit|suite|house|door|plot)|#", True),
}


def _anchor(n: int) -> tuple[Any, bool] | None:
    if n not in _ANCHORS:
        return None
    pattern, on_lowered = _ANCHORS[n]
    # an anchor on the text is compiled like its recognizer (numeric dates ignore case)
    return (re.compile(pattern) if on_lowered else _c(pattern, ignore_case=n == 4)), on_lowered


@cache
def gated_patterns() -> tuple[tuple[str, Any, str | None, tuple[Any, bool] | None], ...]:
    """``(kind, compiled pattern, gate, anchor)``: the pattern runs only when the text passes its
    gate (:func:`gates`; ``None``: always), and with an anchor only on the lines where the
    anchor is found (:func:`line_windows`; ``None``: on the whole text)."""
    return tuple(
        (kind, pattern, _GATED.get(n), _anchor(n)) for n, (kind, pattern) in enumerate(patterns())
    )


def lowered(text: str) -> str:
    """``text`` in lower case, character for character: "İ" and "ſ" (which ``(?i:i)`` and
    ``(?i:s)`` match, and which alone do not lower to an ASCII letter; "İ" alone lowers to two
    characters) read as "i" and "s"."""
    if "\u0130" in text or "\u017f" in text:
        text = text.replace("\u0130", "i").replace("\u017f", "s")
    return text.lower()


def line_windows(
    text: str, anchor: tuple[Any, bool] | None, lower: str | None = None
) -> list[tuple[int, int]]:
    """``(start, end)`` of each line of ``text`` where ``anchor`` matches (line break left
    out), in order; the whole text when ``anchor`` is ``None``. ``lower``: :func:`lowered`
    of ``text``, when the caller has it."""
    if anchor is None:
        return [(0, len(text))]
    pattern, on_lowered = anchor
    haystack = (lower if lower is not None else lowered(text)) if on_lowered else text
    out: list[tuple[int, int]] = []
    for match in pattern.finditer(haystack):
        if out and match.start() < out[-1][1]:
            continue  # on a line already taken
        end = text.find("\n", match.end())
        out.append((text.rfind("\n", 0, match.start()) + 1, len(text) if end < 0 else end))
    return out


@cache
def patterns() -> tuple[tuple[str, Any], ...]:
    """``(kind, compiled pattern)`` of every recognizer; the span is the group ``v``."""
    sep = r"[/.\-]"
    return (
        ("EMAIL", _c(r"(?P<v>[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)")),
        ("URL", _c(r"(?P<v>\b(?:https?://|www\.)[^\s<>\"]+[^\s<>\".,;:)])", ignore_case=True)),
        (
            "DATE",
            _c(
                rf"(?P<v>\b(?:{_DAY},?\s+)?\d{{1,2}}(?:º|o|er|st|nd|rd|th)?\s*(?:de\s+|of\s+|-\s*"
                rf"|/\s*|\.\s*)?(?:(?:{_MONTH})\.?\s*(?:,|de|del|-|/|\.)?\s*(?:\d{{4}}|'?\d{{2}}\b)"
                rf"|{_FULL_MONTH}\b))",
                ignore_case=True,
            ),
        ),  # fmt: skip
        (
            "DATE",
            _c(
                rf"(?P<v>\b(?:{_DAY},?\s+)?(?:(?:{_MONTH})\.?[ \-]?\d{{1,2}}(?:st|nd|rd|th)?,?\s*"
                rf"\d{{4}}|(?:{_MONTH})\.?\s*(?:de\s+|del\s+|,\s*|-|/)?\d{{4}}|{_FULL_MONTH}\s+"
                rf"\d{{1,2}}(?:st|nd|rd|th)?)\b)",
                ignore_case=True,
            ),
        ),  # fmt: skip
        (
            "DATE",
            _c(
                rf"(?<![\d.\-/])(?P<v>\d{{1,2}}{sep}(?:\d{{1,2}}|{_ROMAN}){sep}(?:\d{{4}}|\d{{2}})"
                rf"|\d{{4}}{sep}\d{{1,2}}{sep}\d{{1,2}}|(?:0?[1-9]|1[0-2])/(?:19|20)\d{{2}})(?![\d.\-/]\d|\d)",
                ignore_case=True,
            ),
        ),  # fmt: skip
        (
            "DATE",
            _c(r"(?<![\d.\-/])(?P<v>(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)"),
        ),
        (
            "AGE",
            _c(
                r"\b(?P<v>9\d|1[01]\d)(?=\s*-?\s*(?:years?|yrs?|y/?o|year-old|a[ñn]os|a\.)\b)",
                ignore_case=True,
            ),
        ),  # fmt: skip
        ("AGE", _c(r"(?i:\b(?:age|aged|edad))\s*:?\s*(?P<v>9\d|1[01]\d)\b")),
        (
            "PHONE",
            _c(
                r"(?<![\w/.\-])(?P<v>(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,5}\)[ .\-]?|\d{2,5}[ .\-])"
                r"\d{2,5}(?:[ .\-]\d{2,5}){0,3})(?![\w/]|[.\-]\d)"
            ),
        ),  # fmt: skip
        ("PHONE", _c(r"(?<![\w/.\-])(?P<v>\+\d{7,14})(?!\d)")),
        (
            "PHONE",
            _c(
                r"(?i:\b(?:tel[eé]fono|tel|tfno|telf|phone|fax|m[oó]vil|cel(?:ular|l)?|mobile|"
                r"contact)s?)\.?\s*(?:no\.?|n[º°]|#)?\s*:?\s*(?P<v>\+?[\d(][\d\s().\-/]{5,22}\d)"
            ),
        ),  # fmt: skip
        (
            "INSTITUTION",
            _c(
                rf"(?P<v>\b(?:{_INSTITUTION_HEADS})(?:[ \t]+(?:{_WORD}|(?:{_PARTICLE}|of|the|and|"
                rf"San|Santa|Sant)\b)){{1,6}})"
            ),
        ),  # fmt: skip
        (
            "INSTITUTION",
            _c(
                rf"(?P<v>(?:\b(?:St\.|Saint|San|Santa)[ \t]+)?\b(?:{_WORD}[ \t]+){{1,3}}"
                rf"(?:{_INSTITUTION_TAILS}))\b"
            ),
        ),
        (
            "ADDRESS",
            _c(
                rf"(?P<v>(?:(?i:flat|apt|apartment|unit|suite|house|door|plot|no\.?)[ \t]*|#)?"
                rf"\b\d{{1,5}}[A-Z]?,?[ \t]+(?:{_WORD}[ \t]+){{1,4}}(?i:{_STREET_EN})\b\.?"
                rf"(?:,[ \t]*(?:\d{{1,3}}(?:st|nd|rd|th)?[ \t]+)?(?:{_WORD}[ \t]+){{0,3}}"
                rf"(?i:{_STREET_EN})\b\.?)*"
                r"(?:,?[ \t]*(?i:apt|suite|ste|unit|flat|#)\.?[ \t]*\w+)?"
                rf"(?:,[ \t]*{_WORD}(?:[ \t]+{_WORD})*,?[ \t]+[A-Z]{{2}}[ \t]+"
                r"\d{5}(?:-\d{4})?)?)"
            ),
        ),  # fmt: skip
        (
            "ADDRESS",
            _c(
                r"(?P<v>(?:\b(?i:flat|apt|apartment|unit|suite|house|door|plot)[ \t]*|#)"
                r"[\w/\-]{1,6},"
                r"[ \t]*(?:[^\W_]+[ \t,]+){0,6}(?i:" + _STREET_EN + r")\b\.?"
                rf"|\b(?i:flat|apt|apartment|unit|suite|house|door|plot)[ \t]*[\w/\-]{{1,6}},[ \t]*"
                rf"\d{{1,5}}[A-Z]?[ \t]+{_WORD}(?:[ \t]+{_WORD}){{0,3}})"
            ),
        ),  # fmt: skip
        (
            "ADDRESS",
            _c(
                rf"(?P<v>\b(?i:{_STREET_ES})\.?[ \t]+(?:(?:{_PARTICLE})[ \t]+)*{_WORD}"
                rf"(?:[ \t]+(?:(?:{_PARTICLE})[ \t]+)?{_WORD}){{0,4}},?[ \t]*"
                r"(?:n[º°o]\.?[ \t]*)?\d{1,5}"
                r"(?:[, \t]+\d{1,2}[º°ªa-z]?(?:[ \t]*[A-Z])?)?(?:,?[ \t]+\d{4,5}(?:[ \t]+"
                + _WORD
                + r")+)?)"
            ),
        ),  # fmt: skip
        (
            "ADDRESS",
            _c(
                r"(?i:\b(?:address|direcci[oó]n|domicilio|residencia|residence))\s*:\s*"
                # a period ends the value unless it ends an abbreviation ("Mcal.", "Avda.")
                r"(?P<v>[^\n;]{4,120}?)(?=(?<!(?<![^\W\d_])[^\W\d_]{1,4})\.\s|\.?$|\n|;|\s{2,}|\t)"
            ),
        ),
        (
            "ADDRESS",  # number, street, town, then a US state and ZIP code: no street type needed
            _c(
                rf"(?P<v>\b\d{{1,5}}[A-Z]?[ \t]+{_WORD}(?:[ \t]+{_WORD}){{0,3}},[ \t]*"
                rf"{_WORD}(?:[ \t]+{_WORD}){{0,2}},?[ \t]+[A-Z]{{2}}[ \t]+\d{{5}}(?:-\d{{4}})?)\b"
            ),
        ),  # fmt: skip
        (
            "ADDRESS",  # a town, then a US state and ZIP code or an Australian state and postcode
            _c(
                rf"(?P<v>\b{_WORD}(?:[ \t]+{_WORD}){{0,2}},?[ \t]+(?:[A-Z]{{2}}[ \t]+\d{{5}}"
                rf"(?:-\d{{4}})?|(?:{AU_STATES})[ \t]+\d{{4}}))\b"
            ),
        ),  # fmt: skip
        ("ADDRESS", _c(r"(?<![\w\-])(?P<v>[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2})\b")),  # UK postcode
        (
            "INSTITUTION",  # a company: "Diagnóstico Médico Integral S.A.", "Vista Imaging LLC"
            _c(
                rf"(?P<v>\b(?:{_WORD}[ \t]+){{1,4}}(?:S\.A\.(?:[ \t]*de[ \t]*C\.V\.)?|S\.R\.L\.?|"
                r"SRL\b|S\.A\.S\.|S\.L\.|Ltda\.?|LLC\b|PLLC\b|Inc\.|P\.C\.|S\.C\.))"
            ),
        ),  # fmt: skip
        (
            "ADDRESS",  # a Canadian postal code, with the town and province before it
            _c(
                rf"(?<![\w\-])(?P<v>(?:{_WORD}(?:[ \t]+{_WORD}){{0,2}},?[ \t]+"
                r"(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)[ \t]+)?[A-Z]\d[A-Z][ \-]?\d[A-Z]\d)\b"
            ),
        ),  # fmt: skip
    )

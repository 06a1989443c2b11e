"""Cleaning of report text, with an exact map back to the input offsets.

Reports arrive (decoded by :mod:`._decode`) with HL7 v2 OBX-5 values (``\\.br\\`` and ``~``
escapes), HTML or markdown fragments, and with mojibake (``aÃ±os``). The extractors work on a
cleaned *analysis text*; :class:`PreparedText` keeps, for every analysis character, the span of
input characters it came from, so that evidence spans always index the text the caller passed.
"""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import ftfy
from ftfy.badness import is_bad

__all__ = ["PreparedText", "fold", "prepare"]


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x80, 0x250):
        char = chr(code)
        base = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in base if not unicodedata.combining(c)).lower()
        if len(base) == 1 and base != char:
            table[code] = base
    # Typographic punctuation folds to ASCII so that patterns need one form.
    for src, dst in {"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
                     "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                     "\u00a0": " ", "\u00ba": "o", "\u00aa": "a"}.items():  # fmt: skip
        table[ord(src)] = dst
    return table


_FOLD_TABLE = _build_fold_table()


def fold(text: str) -> str:
    """Lower-case, strip accents and fold typographic punctuation, keeping the length.

    The result has exactly one character per input character, so offsets carry over.
    """
    folded = text.translate(_FOLD_TABLE)
    lowered = folded.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower-case to two (e.g. 'İ'): keep those as they are.
    return "".join(low if len(low := c.lower()) == 1 else c for c in folded)


@dataclass(frozen=True, slots=True)
class PreparedText:
    """A report's analysis text with the map back to the caller's text.

    Attributes:
        original: The text as passed in.
        text: The cleaned analysis text (HL7/HTML/markdown removed, mojibake repaired).
        folded: ``fold(text)``: lower-case, accent-free, same length as ``text``.
        starts: For each character of ``text``, where its source starts in ``original``;
            ``None`` when ``text == original``.
        ends: Likewise, where its source ends (exclusive).
    """

    original: str
    text: str
    folded: str
    starts: Sequence[int] | None
    ends: Sequence[int] | None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map an analysis span ``[start, end)`` to the original text."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


# One pass over the input: every construct that the analysis text replaces.
_HL7_ESCAPES = {
    r"\.br\ ": "\n", r"\X0D\ ": "\n", r"\X0A\ ": "\n", r"\X0D0A\ ": "\n",
    r"\T\ ": "&", r"\S\ ": "^", r"\F\ ": "|", r"\R\ ": "~", r"\E\ ": "\\",
    r"\H\ ": "", r"\N\ ": "", r"\.sp\ ": "\n", r"\.fi\ ": "", r"\.nf\ ": "",
}  # fmt: skip
_HL7_ESCAPES = {k.rstrip(): v for k, v in _HL7_ESCAPES.items()}
_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5",
               "h6", "hr", "section", "article", "header", "footer", "blockquote", "pre",
               "dt", "dd"}  # fmt: skip

_TOKEN = re.compile(
    r"""(?P<hl7>\\(?:\.br|X0D0A|X0D|X0A|T|S|F|R|E|H|N|\.sp|\.fi|\.nf)\\)
      | (?P<tag></?(?P<tagname>[A-Za-z][A-Za-z0-9]*)(?:\s[^<>]{0,500})?/?>)
      | (?P<entity>&(?:\#\d{1,6}|\#x[0-9A-Fa-f]{1,6}|[A-Za-z]{2,10});)
      | (?P<crlf>\r\n?)
      | (?P<md>\*\*|__|^[ \t]{0,3}\#{1,6}[ \t]+)
      | (?P<tilde>~)
      | (?P<space>[\u00a0\u2000-\u200b\u202f\u205f\u3000\ufeff\t\f\v])
    """,
    re.VERBOSE | re.MULTILINE,
)
_QUICK_CHECK = re.compile(r"[\\<&\r*_#~\u00a0\u2000-\u200b\u202f\u205f\u3000\ufeff\t\f\v]")
_WORD = re.compile(r"\S+")
# Characters that UTF-8 read as cp1252/latin-1 produces ("Ã±", "â€™", "Â "): ftfy runs only then.
_MOJIBAKE_HINT = re.compile("[\u00c2\u00c3\u00c5\u00e2\u00ce\u00cf\u00d0\u00d1\u0080-\u009f\ufffd]")


def _tilde_is_separator(text: str) -> bool:
    """HL7 OBX-5 text uses ``~`` as a line break; a lone ``~5 mm`` means "about"."""
    return text.count("~") >= 2


def prepare(text: str) -> PreparedText:
    """Clean a report for analysis, keeping the offset map back to ``text``.

    Args:
        text: The report as decoded.

    Returns:
        The prepared text; ``prepared.text[i]`` comes from
        ``text[prepared.starts[i]:prepared.ends[i]]``.
    """
    needs_markup = _QUICK_CHECK.search(text) is not None
    needs_repair = _MOJIBAKE_HINT.search(text) is not None and is_bad(text)
    needs_nfc = not unicodedata.is_normalized("NFC", text)
    if not (needs_markup or needs_repair or needs_nfc):
        return PreparedText(text, text, fold(text), None, None)

    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(replacement: str, src_start: int, src_end: int) -> None:
        pieces.append(replacement)
        starts.extend([src_start] * len(replacement))
        ends.extend([src_end] * len(replacement))

    def emit_plain(begin: int, end: int) -> None:
        if begin >= end:
            return
        if not (needs_repair or needs_nfc):
            emit_identity(begin, end)
            return
        pos = begin
        for word in _WORD.finditer(text[begin:end]):
            w_start, w_end = begin + word.start(), begin + word.end()
            emit_identity(pos, w_start)
            fixed = unicodedata.normalize("NFC", ftfy.fix_text(word.group(), normalization="NFC"))
            if fixed == word.group():
                emit_identity(w_start, w_end)
            else:
                emit_aligned(word.group(), fixed, w_start)
            pos = w_end
        emit_identity(pos, end)

    def emit_aligned(source: str, fixed: str, offset: int) -> None:
        """Map a repaired word back character by character where the two agree."""
        matcher = difflib.SequenceMatcher(None, source, fixed, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                emit_identity(offset + i1, offset + i2)
            elif tag == "replace":
                emit(fixed[j1:j2], offset + i1, offset + i2)
            elif tag == "insert":  # attach to the source character before (or the first)
                anchor = max(i1 - 1, 0)
                emit(fixed[j1:j2], offset + anchor, offset + anchor + 1)

    def emit_identity(begin: int, end: int) -> None:
        if begin < end:
            pieces.append(text[begin:end])
            starts.extend(range(begin, end))
            ends.extend(range(begin + 1, end + 1))

    tilde_breaks = _tilde_is_separator(text)
    pos = 0
    if needs_markup:
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            start, end = match.span()
            replacement: str | None
            if kind == "hl7":
                replacement = _HL7_ESCAPES[match.group()]
            elif kind == "tag":
                name = (match.group("tagname") or "").lower()
                replacement = "\n" if name in _BLOCK_TAGS else ""
            elif kind == "entity":
                replacement = html.unescape(match.group())
                if replacement == match.group():
                    replacement = None
                elif replacement == "\u00a0":
                    replacement = " "
            elif kind == "crlf":
                replacement = "\n"
            elif kind == "md":
                replacement = ""
            elif kind == "tilde":
                replacement = "\n" if tilde_breaks else None
            else:  # space-like characters
                replacement = " "
            if replacement is None:
                continue
            emit_plain(pos, start)
            emit(replacement, start, end)
            pos = end
    emit_plain(pos, len(text))
    clean = "".join(pieces)
    return PreparedText(text, clean, fold(clean), starts, ends)

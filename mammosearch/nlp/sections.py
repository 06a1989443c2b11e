"""Sections, side headers and sentences of a report.

Reports come in every layout: headed sections ("FINDINGS:", "HALLAZGOS", "IMPRESIÓN
DIAGNÓSTICA"), side headers ("RIGHT BREAST:", "Mama izquierda:", "MD:"), bullet lists, hard-
wrapped lines, one paragraph without punctuation. :class:`Segmenter` turns the analysis text
into sentences, each tagged with its section kind and the side its header names. Headers are
data (``data/sections.json``).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

from mammosearch.nlp._resources import alternation, compile_pattern, load_data
from mammosearch.records import Laterality

__all__ = ["SECTION_KINDS", "Segmentation", "Segmenter", "Sentence"]

SECTION_KINDS = (
    "preamble",
    "history",
    "comparison",
    "technique",
    "composition",
    "findings",
    "impression",
    "recommendation",
    "ultrasound",
    "other",
)
# Sections whose statements describe the past or the request, not the current exam.
_CONTEXT_SECTIONS = frozenset({"history", "comparison", "technique", "preamble"})
_SCOPED_SECTIONS = frozenset({"history", "comparison", "technique"})

_TERMINATOR = re.compile(r"[.!?;]+(?=[\s\-)\"']|$)")
_BULLET = re.compile(r"^\s*(?:[-*\u2022\u00b7\u25aa\u2013]|\d{1,2}[.)]|[a-d][.)])\s")
_FULL_STOP = re.compile(r"[^\W\d_]\.(?:\s|$)")  # a word's full stop (not "1.5", not "Dr.X")
_US_PARAGRAPH = re.compile(
    r"[ \t]*(?:(?:bilateral|left|right|targeted|additional|complementary|breast|the)[ \t]+)*"
    r"(?:ultrasound|ultrasonography|sonography|ultrasonographic imaging)\b[^\n.]*?"
    r"\b(?:performed|demonstrat|show|reveal)"
    r"|[ \t]*(?:se (?:realiza|realizo|complementa con) )?(?:ecografia|ultrasonido)\b[^\n.]*?"
    r"\b(?:realiz|muestra|evidencia|demuestra|informa)"
)
_WRAP_MIN = 45  # a line at least this long that does not end a sentence may be hard-wrapped
_TAIL = re.compile(r"[a-z.]+$")  # the word before a full stop (abbreviation check)
_UNITS = frozenset({"mm", "cm"})  # abbreviations that a sentence often ends with
_HEADER_REACH = 60  # a header label ends within this many characters of its line's start


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of the analysis text with its section kind and header side."""

    start: int
    end: int
    section: str
    side: Laterality | None

    def to_list(self) -> list[Any]:
        """Compact serialisable form ``[start, end, section, side]``."""
        return [self.start, self.end, self.section, self.side.value if self.side else None]

    @classmethod
    def from_list(cls, data: list[Any]) -> Sentence:
        """Inverse of :meth:`to_list`."""
        return cls(
            int(data[0]), int(data[1]), str(data[2]), Laterality(data[3]) if data[3] else None
        )


class Segmentation:
    """The sentences of one report, in order."""

    __slots__ = ("_starts", "headers", "sentences")

    def __init__(self, sentences: tuple[Sentence, ...], headers: tuple[int, ...] = ()) -> None:
        self.sentences = sentences
        self.headers = headers  # where each section or side header starts
        self._starts = [s.start for s in sentences]

    def at(self, pos: int) -> Sentence | None:
        """The sentence containing analysis offset ``pos``."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < self.sentences[i].end:
            return self.sentences[i]
        return None

    def previous_end(self, pos: int) -> int:
        """End of the last sentence that ends before ``pos`` (0 when none)."""
        i = bisect.bisect_right(self._starts, pos) - 1
        while i >= 0 and self.sentences[i].end > pos:
            i -= 1
        return self.sentences[i].end if i >= 0 else 0


class Segmenter:
    """Split analysis text into sentences tagged with section and side.

    Args:
        data: The parsed ``sections.json`` (defaults to the shipped file).
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data if data is not None else load_data("sections.json")
        kinds: dict[str, list[str]] = self.data["kinds"]
        sides: dict[str, list[str]] = self.data["sides"]
        colon_only = set(self.data.get("colon_only", []))
        self._kind_of: dict[str, str] = {}
        for kind, phrases in kinds.items():
            if kind not in SECTION_KINDS:
                raise ValueError(f"unknown section kind {kind!r} in sections.json")
            for phrase in phrases:
                self._kind_of[phrase] = kind
        for side, phrases in sides.items():
            for phrase in phrases:
                self._kind_of[phrase] = f"side:{side}"
        free = [p for p in self._kind_of if p not in colon_only]
        bounded = [p for p in self._kind_of if p in colon_only]
        lead = r"^[ \t>*#\-\u2022\u00b7]*"
        self._header = compile_pattern(
            lead + rf"(?P<h>{alternation(free)})[ \t]*(?P<end>:|[ \t]-[ \t]|\.?[ \t]*$)"
            + "|" + lead + rf"(?P<hc>{alternation(bounded)})[ \t]*(?P<endc>:)",
            source="sections.json",
        )  # fmt: skip
        self._generic = re.compile(
            r"^[ \t>*#\-\u2022\u00b7]*(?P<h>[A-Za-z][\w'/&()\- ]{0,40}?)[ \t]*:", re.MULTILINE
        )
        self._abbrev = frozenset(self.data.get("abbreviations", []))

    def _header_at(self, text: str, folded: str, start: int, end: int) -> tuple[str, int] | None:
        """The section kind and content start of a header at the start of a line."""
        line = folded[start:end]
        head = line[:_HEADER_REACH]
        if len(line.strip()) > _HEADER_REACH and ":" not in head and " - " not in head:
            return None  # a long line with no label at its start is content
        m = self._header.match(line)
        if m:
            phrase = m.group("h") or m.group("hc")
            key = re.sub(r"\s+", " ", phrase)
            kind = self._kind_of.get(key)
            if kind is not None:
                return kind, start + m.end()
        # the generic label pattern needs a colon on the line: most lines have none
        g = self._generic.match(text, start, end) if text.find(":", start, end) >= 0 else None
        if g:
            words = g.group("h").split()
            first = g.group("h").lstrip("(")[:1]
            if 1 <= len(words) <= 4 and first.isupper():
                return "other", g.end()
        return None

    def _ends_sentence(self, text: str, folded: str, m: re.Match[str]) -> bool:
        if m.group() == ".":
            j = m.start()
            tail = _TAIL.search(folded, max(0, j - 8), j)
            if tail is not None and tail.group() in self._abbrev:
                # a unit written in lower case ends its sentence when a capital follows
                # ("... 11 mm. Calcifications"); "5 mm. de diametro" and capitals throughout
                # ("5 MM. DE DIAMETRO") go on
                if tail.group() in _UNITS and text[m.start() - 2 : m.start()].islower():
                    rest = text[m.end() : m.end() + 3].lstrip(" \t")
                    return rest[:1].isupper()
                return False
        return True

    def __call__(self, text: str, folded: str) -> Segmentation:
        """Segment ``text`` (``folded`` is its fold, same length)."""
        sentences: list[Sentence] = []
        headers: list[int] = []
        section = "preamble"
        side: Laterality | None = None
        side_has_content = False
        side_inline = False
        # dictation without a single full stop: each line is a statement, not a wrapped one
        unpunctuated = _FULL_STOP.search(text) is None and text.count("\n") >= 2
        # A history/comparison/technique header with text on its line covers that line; one on
        # a line of its own covers the paragraph below it. What follows is the report body.
        scope: str | None = None
        scope_has_content = False
        cur_start: int | None = None
        cur_attrs: tuple[str, Laterality | None] = (section, side)
        prev_line = ""

        def close(end: int) -> None:
            nonlocal cur_start
            if cur_start is not None:
                stop = cur_start + len(text[cur_start:end].rstrip())
                if stop > cur_start:
                    sentences.append(Sentence(cur_start, stop, *cur_attrs))
            cur_start = None

        def open_at(pos: int, end: int) -> int | None:
            nonlocal cur_start, cur_attrs
            chunk = text[pos:end]
            stripped = chunk.lstrip()
            if not stripped:
                return None
            pos += len(chunk) - len(stripped)
            if cur_start is None:
                cur_start = pos
                cur_attrs = (section, side)
            return pos

        line_start = 0
        n = len(text)
        while line_start <= n:
            line_end = text.find("\n", line_start)
            if line_end < 0:
                line_end = n
            line = text[line_start:line_end]
            if not line.strip():
                close(line_start)
                if side is not None and side_has_content:
                    side = None
                if scope == "block" and scope_has_content:
                    section, scope = "findings", None
                prev_line = ""
                line_start = line_end + 1
                continue
            pos = line_start
            header = self._header_at(text, folded, line_start, line_end)
            if header is not None:
                close(line_start)
                kind, pos = header
                headers.append(line_start + len(line) - len(line.lstrip()))
                scope = None
                if kind.startswith("side:"):
                    name = kind[5:]
                    side = None if name == "bilateral" else Laterality(name)
                    if section in _CONTEXT_SECTIONS:
                        section = "findings"
                    side_has_content = bool(text[pos:line_end].strip())
                    side_inline = side_has_content
                else:
                    if kind == "other":
                        if section in _CONTEXT_SECTIONS:
                            section = "other"
                    else:
                        section = kind
                    side = None
                    if section in _SCOPED_SECTIONS:
                        scope_has_content = bool(text[pos:line_end].strip())
                        scope = "inline" if scope_has_content else "block"
            else:
                continues = not unpunctuated and self._continues(prev_line, line)
                if not prev_line.strip() and _US_PARAGRAPH.match(folded, line_start, line_end):
                    # "Bilateral breast ultrasound was subsequently performed, which showed ...":
                    # a paragraph that opens with an ultrasound is about it to its end
                    close(line_start)
                    section, scope, scope_has_content = "ultrasound", "block", True
                if side_inline and not continues:
                    # "Mama izquierda: ganglio intramamario." covers its line (and the lines
                    # that continue it); a side header on a line of its own covers the paragraph
                    side, side_inline = None, False
                if scope == "inline" and not continues:
                    section, scope = "findings", None
                elif scope == "block":
                    scope_has_content = True
                if cur_start is not None and not continues:
                    close(line_start)
            if side is not None and text[pos:line_end].strip():
                side_has_content = True
            for m in _TERMINATOR.finditer(text, pos, line_end):
                if not self._ends_sentence(text, folded, m):
                    continue
                open_at(pos, m.end())
                close(m.end())
                pos = m.end()
            open_at(pos, line_end)
            prev_line = line
            line_start = line_end + 1
        close(n)
        return Segmentation(tuple(sentences), tuple(headers))

    @staticmethod
    def _continues(prev_line: str, line: str) -> bool:
        """Whether ``line`` continues a hard-wrapped sentence of ``prev_line``."""
        prev = prev_line.rstrip()
        if not prev or prev[-1] in ".!?;:" or _BULLET.match(line):
            return False
        first = line.lstrip()[:1]
        if prev[-1] == ")" and first.isupper():
            return False  # a closed parenthesis, then a capital: "(CLASIFICACION DE KAJAVA)"
        return first.islower() or (len(prev) >= _WRAP_MIN and not first.isdigit())

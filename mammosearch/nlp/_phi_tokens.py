"""Tokens of PHI scrubbing and what each may be: an allowed word, a name-like word, a number
that identifies someone or one that measures something."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mammosearch.nlp._allowlist import PhiLists

__all__ = ["Token", "allowed", "is_capitalised", "number_kind"]

_CODE = re.compile(
    r"\d{1,2}[a-c]|[a-z]{1,4}\d{1,2}|\d{1,2}(?:st|nd|rd|th|er|do|ro|to|vo|mo|no|a|o|d|h|yo|y)"
    r"|\d{1,3}(?:[.,]\d{1,2})?(?:mm|cm|x\d{1,3}(?:[.,]\d)?(?:mm|cm)?)"
)
_YEAR_CUES = frozenset(
    ["ano", "anos", "year", "years", "del", "de", "en", "in", "since", "desde", "of", "from"]
)
_KEPT_CODE = re.compile(
    r"\d{1,2}(?:st|nd|rd|th|er|do|ro|to|vo|mo|no|º|ª)|\d{1,3}(?:[.,]\d{1,2})?(?:mm|cm)"
    r"|[a-z]{1,4}\d"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_AGE_CODE = re.compile(r"0?(\d{1,3})(?:y|yo|yr|yrs|a)")  # "47Y", DICOM's "047Y"


@dataclass(slots=True)
class Token:
    """A word or number of the text, folded, with what the patterns did to it."""

    start: int
    end: int
    text: str
    folded: str
    state: int = 0  # 0 free, 1 taken by a pattern, 2 kept (a clock time)


_ROMAN_CATEGORY = re.compile(r"(?:i{1,3}|iv|vi?)[abc]?")
_JOINERS = re.compile(r"['’\-./]")


def allowed(token: Token, lists: PhiLists) -> bool:
    word = token.folded
    if word in lists.allowed or len(word) == 1 or _ROMAN_CATEGORY.fullmatch(word):
        return True
    # an inflection of a lexicon word: "benignos", "benigno" (a first name, too) of "benign"
    if len(word) > 6 and any(word[:-n] in lists.clinical for n in (1, 2, 3)):
        return True
    parts = [p for p in _JOINERS.split(word) if p]
    return len(parts) > 1 and all(p in lists.allowed or len(p) == 1 for p in parts)


def is_capitalised(text: str) -> bool:
    return text[0].isupper()  # no digit is upper case


def number_kind(tokens: list[Token], i: int, text: str, lists: PhiLists, strict: bool) -> str:
    """``""`` when the number token ``i`` is no identifier, else its kind (``ID`` or ``AGE``)."""
    token = tokens[i]
    word = token.folded
    digits = sum(c.isdigit() for c in word)
    if not word.replace(".", "").replace(",", "").isdigit():  # letters and digits
        age = _AGE_CODE.fullmatch(word)
        if age and any(t.folded in lists.age_labels for t in tokens[max(0, i - 3) : i]):
            return "" if int(age.group(1)) < 90 else "AGE"  # "Age: 47Y"
        parts = re.split(r"[-./]", word)
        if any(sum(c.isdigit() for c in p) >= 3 for p in parts) and not _CODE.fullmatch(word):
            return "ID"
        if not strict:
            return ""
        # in an identifier zone a code stays only as a category ("BI-RADS 4A"), an ordinal or
        # a measurement ("12mm"); "6A" of "Flat 6A" goes
        cued = any(b in lists.category_cues for b in [t.folded for t in tokens[max(0, i - 2) : i]])
        return "" if (cued and _CODE.fullmatch(word)) or _KEPT_CODE.fullmatch(word) else "ID"
    after = text[token.end : token.end + 2]
    nxt = tokens[i + 1].folded if i + 1 < len(tokens) else ""
    before = [t.folded for t in tokens[max(0, i - 3) : i]]
    measured = after.lstrip()[:1] == "%" or nxt in lists.units or "x" in before[-1:]
    if not strict:
        return "ID" if digits >= 5 and not measured else ""
    if not _NUMBER.fullmatch(word):
        return "ID"
    value = float(word.replace(",", ".")) if word.count(".") + word.count(",") <= 1 else 1e9
    if any(b in lists.age_labels for b in before) or nxt in {"years", "anos", "y/o", "yo"}:
        return "" if value < 90 else "AGE"
    if measured and digits <= 4 or digits == 1:  # one digit identifies no one: "1." of a list
        return ""
    if digits == 4 and 1900 <= value <= 2099 and before[-1:] and before[-1] in _YEAR_CUES:
        return ""  # a year alone is no identifier: "del año 2020"
    if any(b in lists.category_cues for b in before[-2:]) and value <= 6:
        return ""
    return "ID"

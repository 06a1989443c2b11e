"""Warnings for reports whose stated category contradicts their own wording.

A report that states BI-RADS 1 or 2 while describing spiculated margins or pleomorphic
calcifications keeps its stated category (the radiologist's assessment is the record) and gets
a warning, so that a reviewer can look. Cues are data (``data/consistency.json``).
"""

from __future__ import annotations

from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union
from mammosearch.nlp.sections import Segmentation

__all__ = ["ConsistencyCheck"]

_SRC = "consistency.json"


class ConsistencyCheck:
    """Compare a stated BI-RADS category with the report's wording.

    Args:
        data: The parsed ``consistency.json`` (defaults to the shipped file).
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data if data is not None else load_data(_SRC)
        self._low = frozenset(self.data["low_categories"])
        self._suspicious = compile_pattern(union(self.data["suspicious"]), source=_SRC)
        self._negation = compile_pattern(self.data["negation"], source=_SRC)

    def warnings(self, folded: str, seg: Segmentation, category: str | None) -> list[str]:
        """Warnings about ``category`` given the report's folded text."""
        if category not in self._low:
            return []
        for m in self._suspicious.finditer(folded):
            sentence = seg.at(m.start())
            start = sentence.start if sentence else max(0, m.start() - 80)
            if sentence is not None and sentence.section in ("history", "comparison"):
                continue
            if self._negation.search(folded, start, m.start()):
                continue
            return [
                f"W203: the stated BI-RADS {category} contradicts suspicious wording in the "
                f"report (at {m.start()}-{m.end()}); kept the stated category"
            ]
        return []

"""The management recommendation a report states (EN/ES).

Kinds are tried in priority order (biopsy, additional imaging, short-interval follow-up,
clinical correlation, routine screening); statements in the recommendation section win over
the impression, and both over the rest of the report; negated or past ones ("no biopsy is
needed", "status post biopsy") and a modality named as a past result or a report section
("ecografia mamaria previa informa", "ultrasound findings") do not count. Patterns are data
(``data/recommendations.json``).
"""

from __future__ import annotations

import re
from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union, word_matches
from mammosearch.nlp.sections import Segmentation
from mammosearch.records import Recommendation

__all__ = ["RecommendationFinder"]

_SRC = "recommendations.json"
_PREFERRED = frozenset({"recommendation", "impression"})
_IGNORED = frozenset({"history", "comparison", "technique"})


class RecommendationFinder:
    """Find the recommendation of a report.

    Args:
        data: Parsed ``recommendations.json`` (default: the shipped file).
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data if data is not None else load_data(_SRC)
        self._kinds = [
            (Recommendation(k["value"]), compile_pattern(union(k["patterns"]), source=_SRC))
            for k in self.data["kinds"]
        ]
        self._negation = compile_pattern(self.data["negation"], source=_SRC)
        self._past = compile_pattern(self.data["past"], source=_SRC)
        self._result_after = compile_pattern(self.data.get("result_after", "(?!)"), source=_SRC)

    def __call__(self, folded: str, seg: Segmentation) -> Recommendation | None:
        """The recommendation stated in the folded analysis text, or ``None``."""
        stated = [(s.start, s.end) for s in seg.sentences if s.section == "recommendation"]
        preferred = [(s.start, s.end) for s in seg.sentences if s.section in _PREFERRED]
        for ranges in (_merge(stated), _merge(preferred), [(0, len(folded))]):
            if not ranges:
                continue
            for kind, pattern in self._kinds:
                for lo, hi in ranges:
                    if self._stated(folded, seg, pattern, lo, hi):
                        return kind
        return None

    def _stated(
        self, folded: str, seg: Segmentation, pattern: re.Pattern[str], lo: int, hi: int
    ) -> bool:
        for m in word_matches(pattern, folded, lo, hi):
            sentence = seg.at(m.start())
            if sentence is not None and sentence.section in _IGNORED:
                continue
            start = sentence.start if sentence else 0
            before = folded[max(start, m.start() - 60) : m.start()]
            if self._negation.search(before) or self._past.search(before):
                continue
            if self._result_after.match(folded, m.end(), min(hi, m.end() + 60)):
                continue  # "ecografia mamaria previa informa ...": a result, not advice
            return True
        return False


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent sentence ranges joined into one."""
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo - merged[-1][1] <= 2:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged

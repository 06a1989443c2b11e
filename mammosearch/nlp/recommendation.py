"""The management recommendation a report states (EN/ES).

Kinds are tried in priority order (biopsy, additional imaging, short-interval follow-up,
clinical correlation, routine screening); statements in the recommendation or impression
sections win over the rest of the report, and negated or past ones ("no biopsy is needed",
"status post biopsy") do not count. Patterns are data (``data/recommendations.json``).
"""

from __future__ import annotations

from typing import Any

from mammosearch.nlp._resources import compile_pattern, load_data, union
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

    def __call__(self, folded: str, seg: Segmentation) -> Recommendation | None:
        """The recommendation stated in the folded analysis text, or ``None``."""
        found: dict[Recommendation, bool] = {}
        for kind, pattern in self._kinds:
            for m in pattern.finditer(folded):
                sentence = seg.at(m.start())
                section = sentence.section if sentence else "preamble"
                if section in _IGNORED:
                    continue
                lo = sentence.start if sentence else max(0, m.start() - 60)
                before = folded[max(lo, m.start() - 60) : m.start()]
                if self._negation.search(before) or self._past.search(before):
                    continue
                found[kind] = found.get(kind, False) or section in _PREFERRED
        if not found:
            return None
        preferred = [k for k, _ in self._kinds if found.get(k)]
        if preferred:
            return preferred[0]
        return next(k for k, _ in self._kinds if k in found)

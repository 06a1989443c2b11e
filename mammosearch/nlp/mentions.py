"""Category mentions (density, BI-RADS) and the side they are stated for."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mammosearch.nlp.context import Status
from mammosearch.records import Laterality

__all__ = ["CategoryMention", "Resolution", "SideFinder", "highest_by_side"]


@dataclass(frozen=True, slots=True)
class CategoryMention:
    """One statement of a category in the analysis text.

    Attributes:
        value: The category (``"C"``, ``"4A"``).
        start: Start of the evidence in the analysis text.
        end: End of the evidence.
        tier: Strength of the wording: 2 for an explicit code or keyword, 1 for a description.
        side: The side it is stated for, ``None`` when both or unstated.
        status: Current, prior, negated, explanatory or template.
        section: Section kind it stands in.
        ambiguous: Stated as one of alternatives ("BI-RADS 3 or 4").
        final: Stated as superseding the others (a combined or recategorized assessment).
    """

    value: str
    start: int
    end: int
    tier: int
    side: Laterality | None
    status: Status
    section: str
    ambiguous: bool = False
    final: bool = False

    def to_list(self) -> list[Any]:
        """Compact serialisable form."""
        return [
            self.value, self.start, self.end, self.tier,
            self.side.value if self.side else None, self.status.value, self.section, self.ambiguous,
            self.final,
        ]  # fmt: skip

    @classmethod
    def from_list(cls, data: list[Any]) -> CategoryMention:
        """Inverse of :meth:`to_list`."""
        return cls(
            value=str(data[0]), start=int(data[1]), end=int(data[2]), tier=int(data[3]),
            side=Laterality(data[4]) if data[4] else None, status=Status(data[5]),
            section=str(data[6]), ambiguous=bool(data[7]), final=bool(data[8]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Resolution:
    """The current category of a report: the deciding statement, per side, and warnings."""

    overall: CategoryMention | None
    by_side: dict[Laterality, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def highest_by_side(
    mentions: Iterable[CategoryMention], rank: Callable[[str], int]
) -> dict[Laterality, str]:
    """The highest-ranked value stated for each of the left and right sides."""
    by_side: dict[Laterality, str] = {}
    for m in mentions:
        if m.side in (Laterality.LEFT, Laterality.RIGHT):
            best = by_side.get(m.side)
            if best is None or rank(m.value) > rank(best):
                by_side[m.side] = m.value
    return by_side


_RIGHT = r"right|derech[oa]s?|rt|r(?=\s*:)"
_LEFT = r"left|izquierd[oa]s?|lt|l(?=\s*:)"
_BOTH = r"bilateral(?:es|mente)?|both|ambas|ambos|either|each|cada"
# What may stand right before a side word that opens a statement ("…; izquierda: BI-RADS 3").
_OPENING = (",", ";", "/", "|", ".", ":", "-", "(")


class SideFinder:
    """Which side a statement names, from the words around it.

    ``tight`` binding (BI-RADS) accepts a side word only right before the statement and set off
    by punctuation or opening its clause ("Right breast: BI-RADS 2", "MD: BI-RADS 4A"), or right
    after its value ("BI-RADS 4A left breast");
    loose binding (density) accepts one anywhere in the clause before ("the right breast is
    heterogeneously dense").
    """

    _word = re.compile(
        rf"(?<![a-z])(?:(?P<right>{_RIGHT})|(?P<left>{_LEFT})|(?P<both>{_BOTH})"
        r"|(?P<md>\(?md\s*[:)])|(?P<mi>\(?mi\s*[:)]))(?![a-z])"
    )
    _tight_before = re.compile(
        r"(?<![a-z])(?:(?:mama|breast)\s+)?"
        rf"(?:(?P<right>{_RIGHT})|(?P<left>{_LEFT})|(?P<both>{_BOTH})|(?P<md>\bmd)|(?P<mi>\bmi))"
        r"(?:\s+(?:breast|mama|side|lado))?(?P<sep>\W{0,4})$"
    )
    _tight_after = re.compile(
        r"^\W{0,3}(?:\([^()]{0,40}\)\W{0,3})?(?:(?:en|in|de|of|for|para)\s+)?"
        r"(?:(?:the|la|el)\s+)?(?:(?:breast|mama)\s+)?"
        rf"(?:(?P<right>{_RIGHT})|(?P<left>{_LEFT})|(?P<both>{_BOTH})|(?P<md>md)|(?P<mi>mi))(?![a-z])"
    )

    @staticmethod
    def _side(m: re.Match[str]) -> Laterality | None | bool:
        if m.group("right") or m.group("md"):
            return Laterality.RIGHT
        if m.group("left") or m.group("mi"):
            return Laterality.LEFT
        return None  # explicitly both

    def tight(self, before: str, after: str) -> Laterality | None | bool:
        """Side bound tightly; ``False`` when no side word is there."""
        m = self._tight_before.search(before)
        # "Right breast: BI-RADS 2" or a clause that opens with the side; not "… node in the
        # left breast BI-RADS 2" in a report without punctuation.
        if m:
            prefix = before[: m.start()].rstrip()
            if any(c in m.group("sep") for c in ":-=(") or not prefix or prefix.endswith(_OPENING):
                return self._side(m)
        m = self._tight_after.search(after)
        if m:
            return self._side(m)
        return False

    def loose(self, before: str, after: str) -> Laterality | None | bool:
        """Side named in the clause; ``None`` for both or conflicting, ``False`` for none."""
        sides = {self._side(m) for text in (before, after) for m in self._word.finditer(text)}
        if not sides:
            return False
        if len(sides) == 1:
            return next(iter(sides))
        return None

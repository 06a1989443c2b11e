"""Synthetic mammography reports (EN/ES) with their truth known by construction.

Used by the tests and benchmarks of the normalizer and by the demo corpus. The phrase bank
(``phrasebank.json``) is written independently of the normalizer's lexicon, from the BI-RADS
atlas wording and the CBIS-DDSM descriptor vocabulary. Reports vary in section layout, side
headers or inline sides, order, case, accents, hard typos in finding words, negation lists,
prior-exam statements, HL7 and HTML wrapping. Everything is seeded and reproducible.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["SyntheticReport", "generate_reports"]

_TYPE_WEIGHTS = {
    "mass": 34, "calcification": 30, "asymmetry": 9, "architectural_distortion": 7,
    "lymph_node": 6, "skin_thickening": 3, "skin_retraction": 2, "nipple_retraction": 2,
    "dilated_duct": 2, "implant": 2, "post_surgical": 3,
}  # fmt: skip
_BIRADS = ["0", "1", "2", "3", "4", "4A", "4B", "4C", "5"]
_ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV", "4A": "IVa", "4B": "IVb",
          "4C": "IVc", "5": "V", "6": "VI"}  # fmt: skip
_RECOMMENDATION = {"0": "additional_imaging", "1": "routine_screening", "2": "routine_screening",
                   "3": "short_interval_follow_up", "4": "biopsy", "4A": "biopsy", "4B": "biopsy",
                   "4C": "biopsy", "5": "biopsy"}  # fmt: skip
_WORD = re.compile(r"[^\W\d_]{6,}")


@dataclass(frozen=True, slots=True)
class SyntheticReport:
    """A generated report and its truth (the gold format of the shared example reports).

    ``truth`` has ``id``, ``language``, ``density`` (A-D), ``birads``, ``recommendation`` and
    ``findings`` (``type``, ``laterality``, ``negated``, ``descriptors``, ``location``).
    """

    id: str
    language: str
    text: str
    truth: dict[str, Any]


@cache
def _bank() -> dict[str, Any]:
    raw = resources.files("mammosearch.samples").joinpath("phrasebank.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


class _Builder:
    def __init__(self, rng: random.Random, lang: str, typo_rate: float) -> None:
        self.rng = rng
        self.lang = lang
        self.bank = _bank()
        self.typo_rate = typo_rate

    def pick(self, options: list[Any]) -> Any:
        return self.rng.choice(options)

    def words(self, table: dict[str, Any], key: str) -> str:
        return str(self.pick(table[key][self.lang]))

    def typo(self, text: str) -> str:
        """Misspell some long words (first letter kept), as radiologists' dictation does."""

        def mutate(m: re.Match[str]) -> str:
            w = m.group()
            if self.rng.random() >= self.typo_rate:
                return w
            i = self.rng.randrange(1, len(w) - 2)
            kind = self.rng.randrange(3)
            if kind == 0:  # swap two neighbours
                return w[:i] + w[i + 1] + w[i] + w[i + 2 :]
            if kind == 1:  # drop one letter
                return w[:i] + w[i + 1 :]
            return w[:i] + w[i] + w[i:]  # double one letter

        return _WORD.sub(mutate, text)

    def finding(self, kind: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """A positive finding phrase with its descriptors and location."""
        b, lang, rng = self.bank, self.lang, self.rng
        descriptors: dict[str, Any] = {}
        if kind == "mass":
            shape = self.pick(list(b["shape"]))
            margin = self.pick(list(b["margin"]))
            density = self.pick([None, *b["mass_density"]])
            size = rng.choice([None, rng.randint(5, 35)])
            descriptors = {"shape": [shape], "margin": [margin]}
            if density:
                descriptors["mass_density"] = [density]
            if size:
                descriptors["size_mm"] = float(size)
            template = self.pick(b["mass_phrase"][lang])
            phrase = template.format(
                shape=self.words(b["shape"], shape),
                margin=self.words(b["margin"], margin),
                density=f"{self.words(b['mass_density'], density)} " if density else "",
                density_es=f"{self.words(b['mass_density'], density)}, " if density else "",
                size=f"{size} mm " if size else "",
                size_after=f", {size} mm" if size else "",
            )
            if density and "{density" not in template:
                descriptors.pop("mass_density")
            if size and "{size" not in template:
                descriptors.pop("size_mm")
            phrase = " ".join(phrase.split())
            if lang == "en":
                phrase = re.sub(r"\ban? (?=[aeiou])", "an ", phrase)
                phrase = re.sub(r"\ban (?=[^aeiou])", "a ", phrase)
        elif kind == "calcification":
            morph = self.pick(list(b["calc_morphology"]))
            dist = self.pick(list(b["calc_distribution"]))
            template = self.pick(b["calc_phrase"][lang])
            phrase = template.format(
                morph=self.words(b["calc_morphology"], morph),
                dist=self.words(b["calc_distribution"], dist),
            )
            descriptors = {"calc_morphology": [morph]}
            if "{dist}" in template:
                descriptors["calc_distribution"] = [dist]
            elif "group" in template or "grupo" in template:
                descriptors["calc_distribution"] = ["grouped"]
        elif kind == "asymmetry":
            which = self.pick(list(b["asymmetry"]))
            phrase = self.words(b["asymmetry"], which)
            descriptors = {"asymmetry": which}
        else:
            phrase = self.words(b["simple"], kind)
        location: dict[str, Any] = {}
        parts = []
        if kind in ("mass", "calcification", "asymmetry", "architectural_distortion"):
            if rng.random() < 0.6:
                quadrant = self.pick(list(b["location"]["quadrant"]))
                parts.append(b["location"]["quadrant"][quadrant][lang])
                location["quadrant"] = quadrant
            if rng.random() < 0.4:
                hour = rng.randint(1, 12)
                parts.append(b["location"]["clock"][lang].format(h=hour))
                location["clock"] = f"{hour}:00"
            if rng.random() < 0.4:
                depth = self.pick(list(b["location"]["depth"]))
                parts.append(b["location"]["depth"][depth][lang])
                location["depth"] = depth
        return self.typo(phrase) + (", " + ", ".join(parts) if parts else ""), descriptors, location


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    )


def _one(
    index: int, rng: random.Random, languages: tuple[str, ...], typo_rate: float, min_words: int
) -> SyntheticReport:
    lang = rng.choice(languages)
    g = _Builder(rng, lang, typo_rate)
    b = g.bank
    density = rng.choice("ABCD")
    birads = rng.choice(_BIRADS)
    findings: list[dict[str, Any]] = []
    by_side: dict[str, list[str]] = {"right": [], "left": []}
    n_positive = 0 if birads == "1" else rng.choice([1, 1, 2, 2, 3])
    kinds = list(_TYPE_WEIGHTS)
    weights = list(_TYPE_WEIGHTS.values())
    used: set[tuple[str, str]] = set()
    for _ in range(n_positive):
        kind = rng.choices(kinds, weights)[0]
        side = rng.choice(["right", "left"])
        if (kind, side) in used:
            continue
        used.add((kind, side))
        phrase, descriptors, location = g.finding(kind)
        by_side[side].append(phrase)
        findings.append({"type": kind, "laterality": side, "negated": False,
                         "descriptors": descriptors, "location": location})  # fmt: skip
    use_headers = rng.random() < 0.5
    body: list[str] = []
    negatable = list(b["negatable"])
    for side in ("right", "left"):
        sentences = []
        for phrase in by_side[side]:
            template = g.pick(b["finding_sentence"][lang])
            side_words = g.pick(b["side"][lang][side])
            if use_headers:
                template = template.replace(" {side}", "").replace("{side_cap}: ", "")
                if "{Finding}" not in template and "{finding}" not in template:
                    template = "{finding}{location}."
            sentence = template.format(
                finding=phrase, Finding=phrase[0].upper() + phrase[1:], side=side_words,
                side_cap=side_words.split(" ", 2)[-1].capitalize(), location="",
            )  # fmt: skip
            sentences.append(sentence)
        absent = [k for k in negatable if (k, side) not in used]
        if use_headers and absent:
            chosen = rng.sample(absent, k=min(len(absent), rng.choice([1, 2, 3])))
            sentences.append(_negation(g, chosen, side, header=True))
            findings += [{"type": k, "laterality": side, "negated": True} for k in chosen]
        if use_headers and sentences:
            body.append(b["side_header"][lang][side] + " " + " ".join(sentences))
        else:
            body += sentences
    if not use_headers:
        absent = [k for k in negatable if (k, "right") not in used and (k, "left") not in used]
        if absent:
            chosen = rng.sample(absent, k=min(len(absent), rng.choice([1, 2, 3])))
            body.append(_negation(g, chosen, "bilateral", header=False))
            findings += [{"type": k, "laterality": "bilateral", "negated": True} for k in chosen]
    rng.shuffle(body)
    recommendation = _RECOMMENDATION[birads]
    meaning = b["birads_meaning"]["en"][birads]
    meaning_es = b["birads_meaning"]["es"][birads]
    statement = g.pick(b["birads"][lang]).format(
        n=birads, roman=_ROMAN[birads], meaning=meaning, meaning_es=meaning_es
    )
    headers = b["headers"][lang]
    fillers = rng.sample(b["filler"][lang], k=rng.choice([3, 4, 5]))
    parts = [g.pick(b["titles"][lang]), *fillers[:2]]
    if rng.random() < 0.3:
        prior = rng.choice([c for c in _BIRADS if c != birads])
        parts.append(g.pick(b["prior_birads"][lang]).format(n=prior))
    parts.append(g.pick(headers["findings"]) + " " + g.pick(b["density"][lang][density]))
    parts += body + fillers[2:]
    words = sum(len(p.split()) for p in parts) + 12
    while words < min_words:  # longer reports: more of the normal-anatomy sentences
        extra = rng.choice(b["filler"][lang][3:])
        parts.insert(rng.randrange(3, len(parts) + 1), extra)
        words += len(extra.split())
    # DESIGN: normal or unremarkable axillae -> lymph_node negated (a filler sentence may say so)
    normal_axillae = {"type": "lymph_node", "laterality": "bilateral", "negated": True}
    axillae = b["normal_axillae"][lang]
    if any(p in axillae for p in parts) and normal_axillae not in findings:
        findings.append(normal_axillae)
    parts.append(g.pick(headers["impression"]) + " " + statement)
    parts.append(
        g.pick(headers["recommendation"]) + " " + g.pick(b["recommendation"][recommendation][lang])
    )
    text = _style(rng, "\n".join(parts), lang)
    rid = f"syn-{index:05d}"
    truth = {"id": rid, "language": lang, "density": density, "birads": birads,
             "recommendation": recommendation, "findings": findings}  # fmt: skip
    return SyntheticReport(rid, lang, text, truth)


def _negation(g: _Builder, kinds: list[str], side: str, *, header: bool) -> str:
    b, lang = g.bank, g.lang
    names = [g.words(b["negatable"], k) for k in kinds]
    first, last = b["list_join"][lang]
    listed = first.join(names[:-1]) + (last if len(names) > 1 else "") + names[-1]
    template = g.pick([t for t in b["negation"][lang] if "{side_cap}" not in t])
    side_words = "" if header else g.pick(b["side"][lang][side])
    return " ".join(template.format(list=listed, side=side_words, side_cap="").split()).replace(
        " .", "."
    )


def _style(rng: random.Random, text: str, lang: str) -> str:
    """House styles: plain, ALL CAPS, lower case, no accents, HL7 line breaks, HTML."""
    roll = rng.random()
    if lang == "es" and rng.random() < 0.3:
        text = _strip_accents(text)
    if roll < 0.12:
        text = text.upper()
    elif roll < 0.18:
        text = text.lower()
    roll = rng.random()
    if roll < 0.08:
        text = text.replace("\n", "~")
    elif roll < 0.14:
        text = "".join(f"<p>{line}</p>" for line in text.split("\n"))
    return text


def generate_reports(
    n: int,
    *,
    seed: int = 0,
    languages: tuple[str, ...] = ("en", "es"),
    typo_rate: float = 0.1,
    min_words: int = 0,
) -> list[SyntheticReport]:
    """Generate ``n`` reports with their truth.

    Args:
        n: How many reports.
        seed: Seed of the random generator (same seed, same reports).
        languages: Languages to draw from.
        typo_rate: Probability that a long word of a finding phrase is misspelled.
        min_words: Pad each report with normal-anatomy sentences up to about this length.

    Example:
        >>> reports = generate_reports(3, seed=1)
        >>> sorted(reports[0].truth)
        ['birads', 'density', 'findings', 'id', 'language', 'recommendation']
    """
    rng = random.Random(seed)
    return [_one(i, rng, languages, typo_rate, min_words) for i in range(n)]

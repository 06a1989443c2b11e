"""PHI scrubbing of report text (English and Spanish), before anything is stored or shown.

Rule- and pattern-based, offline: Presidio's pattern recognizers (e-mail, phone for ES/US/MX/GB,
URL, numeric dates, IP, US SSN, Spanish NIF/NIE, medical licence) called without an NLP model,
plus this module's patterns with context cues: labelled identifiers (MRN, NHC, historia clínica,
accession, DNI ...), long dates in both languages, names after titles and labels (Dr./Dra.,
Paciente:, Reported by, Firmado por ...) or before MD, first-name + surname pairs from Faker's
en_US / es_ES / es_MX name lists, institutions (Hospital ..., ... Medical Center), street
addresses, and ages over 89. Each hit is replaced by a typed placeholder (``[NAME]``, ``[ID]``,
``[DATE]`` ...; an age over 89 becomes ``90+``), so the BI-RADS content around it is untouched and
the normalizer runs on the scrubbed text: its evidence spans index the text that is stored.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

import regex

__all__ = ["PHI_KINDS", "PhiSpan", "ScrubResult", "Scrubber", "score_scrubbing", "scrub"]

PHI_KINDS = ("NAME", "ID", "DATE", "AGE", "PHONE", "EMAIL", "ADDRESS", "INSTITUTION", "URL")
_PLACEHOLDER = {kind: f"[{kind}]" for kind in PHI_KINDS} | {"AGE": "90+"}
# which kind wins an overlap (higher first), then the longer span, then the surer
_PRIORITY = {"EMAIL": 9, "URL": 8, "ID": 7, "ADDRESS": 6, "INSTITUTION": 5, "NAME": 4,
             "PHONE": 3, "DATE": 2, "AGE": 1}  # fmt: skip
_PRESIDIO = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "URL": "URL", "DATE_TIME": "DATE",
    "IP_ADDRESS": "ID", "US_SSN": "ID", "ES_NIF": "ID", "ES_NIE": "ID", "MEDICAL_LICENSE": "ID",
}  # fmt: skip
_THRESHOLD = 0.35

_U = "A-ZÁÉÍÓÚÑÜÀÈÌÒÙÇ"
_L = "a-záéíóúñüàèìòùç"
_WORD = (
    rf"(?:[{_U}](?:[{_L}]+(?:[{_U}][{_L}]+)?|['’][{_U}][{_L}]+)(?:['’\-][{_U}]?[{_L}]+)*"
    rf"|[{_U}](?:[{_U}]|['’\-][{_U}])+|[{_U}]\.)"
)
_PARTICLE = r"(?:de|del|la|las|los|y|i|van|von|da|di|du|le|st\.?)"
# words that end a name: labels and report vocabulary written in capitals after it
_NOT_NAME = (
    r"(?!(?i:mrn|nhc|dob|fdn|id|dni|nif|nie|nss|acr|bi-?rads|cc|mlo|md|do|phd|rt|tel|phone|fax|"
    r"fecha|date|edad|age|sexo|sex|f|m|female|male|mujer)\b)"
)
_NAME = rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+){{0,2}}{_NOT_NAME}{_WORD}){{0,3}}"
_TITLES = r"Dr|Dra|Dres|Doctor|Doctora|Prof|Profa|Sr|Sra|Srta|Mr|Mrs|Ms|Miss|Lic|Lcda?|Licda?"
_NAME_LABELS = (
    r"patient(?:'s)?\s+name|patient|name|nombre(?:\s+del\s+paciente)?|nombre\s+y\s+apellidos|"
    r"paciente|apellidos?|referring(?:\s+physician|\s+doctor)?|ordering(?:\s+physician|\s+provider)?|"
    r"radiologist|radi[oó]log[oa]|attending|technologist|tech|t[eé]cnico|"
    r"m[eé]dico(?:\s+solicitante|\s+remitente|\s+informante)?|solicitante|cc"
)
_SIGNATURE = (
    r"reported\s+by|dictated\s+by|signed(?:\s+electronically)?\s+by|read\s+by|interpreted\s+by|"
    r"transcribed\s+by|requested\s+by|verified\s+by|informado\s+por|firmado(?:\s+electr[oó]nicamente)?"
    r"\s+por|dictado\s+por|solicitado\s+por|validado\s+por|revisado\s+por|atentamente|sincerely"
)
_ID_LABELS = (
    r"MRN|NHC|N\.?\s?H\.?\s?C\.?|H\.\s?C\.|historia(?:\s+cl[ií]nica)?|n[º°o]\.?\s*(?:de\s+)?historia|"
    r"accession(?:\s+(?:number|no\.?|#))?|acc\.?|acces?i[oó]n|expediente|record(?:\s+(?:number|no\.?))?|"
    r"patient\s+id|id(?:\s+(?:paciente|patient))?|DNI|NIE|NIF|NSS|CIP|SIP|TSI|NUSS|SSN|"
    r"n[º°o]\.?\s*(?:de\s+)?(?:petici[oó]n|estudio|solicitud|episodio|orden|caso)|"
    r"(?:study|order|episode|case|exam|visit|encounter)\s*(?:id|number|no\.?|#)|"
    r"petici[oó]n|episodio|seguridad\s+social|social\s+security(?:\s+number)?"
)
_MONTHS_EN = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
              r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")  # fmt: skip
_MONTHS_ES = (r"ene(?:ro)?|feb(?:rero)?|mar(?:zo)?|abr(?:il)?|may(?:o)?|jun(?:io)?|jul(?:io)?|"
              r"ago(?:sto)?|sep(?:t(?:iembre)?)?|set(?:iembre)?|oct(?:ubre)?|nov(?:iembre)?|"
              r"dic(?:iembre)?")  # fmt: skip
# a month without a year only when it cannot be the verb "may"
_MONTH_EN_DAY = "(?:(?i:" + _MONTHS_EN.replace("may|", "") + ")|May|MAY)"
_STREET_EN = (r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|court|ct|way|place|pl|"
              r"parkway|pkwy|terrace|circle")  # fmt: skip
_STREET_ES = (r"calle|c/|avda|avenida|av|paseo|plaza|pza|camino|carretera|ctra|ronda|traves[ií]a|"
              r"rambla|glorieta|urbanizaci[oó]n|urb")  # fmt: skip
_INSTITUTION_HEADS = (
    r"Hospital(?:\s+Universitario|\s+General|\s+Cl[ií]nico|\s+Regional|\s+Provincial)?|Hosp\.|"
    r"Cl[ií]nica|Clinic|Policl[ií]nica|Centro(?:\s+M[eé]dico|\s+de\s+Salud|\s+de\s+Diagn[oó]stico)?|"
    r"Sanatorio|Instituto|Fundaci[oó]n|Complejo\s+Hospitalario|Medical\s+Cent(?:er|re)|"
    r"Imaging\s+Cent(?:er|re)|Breast\s+Cent(?:er|re)|Cancer\s+Cent(?:er|re)"
)
_INSTITUTION_TAILS = (
    r"General\s+Hospital|Memorial\s+Hospital|Community\s+Hospital|Children's\s+Hospital|Hospital|"
    r"Medical\s+Cent(?:er|re)|Health(?:\s+System|care)?|Clinic|Imaging\s+Cent(?:er|re)|"
    r"Radiology\s+(?:Associates|Group|Partners)|Women's\s+(?:Center|Imaging)"
)
# report words that are also first names or surnames in Faker's lists: never a name on their own
_CLINICAL_WORDS = (
    "mama mamas masa masas densa densas dolores rosa luz pilar mercedes consuelo amparo socorro "
    "normal benign benigna birads bi-rads acr left right izquierda derecha cc mlo mass "
    "calcification breast breasts mamografia mammography ecografia ultrasound biopsy biopsia "
    "grasa fatty dense mayor menor cruz santos blanco moreno nuevo nueva control screening "
    "follow-up axila axilar clinical clinica radiology radiologia report informe signo signos"
)
_CLINICAL = frozenset(_CLINICAL_WORDS.split())


@dataclass(frozen=True, slots=True)
class PhiSpan:
    """One scrubbed span: its kind, where it was in the original text and where its placeholder
    is in the scrubbed text (no value)."""

    kind: str
    start: int
    end: int
    new_start: int
    new_end: int


@dataclass(frozen=True, slots=True)
class ScrubResult:
    """The scrubbed text and what was replaced."""

    text: str
    spans: tuple[PhiSpan, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Scrubbed spans per kind."""
        return dict(Counter(span.kind for span in self.spans))

    def map_offset(self, offset: int) -> int:
        """An offset in the original text → the scrubbed text (inside a replaced span: its
        placeholder's start)."""
        shift = 0
        for span in self.spans:
            if offset < span.start:
                break
            if offset < span.end:
                return span.new_start
            shift = span.new_end - span.end
        return offset + shift


def _compile(pattern: str, *, ignore_case: bool = False) -> Any:
    return regex.compile(pattern, regex.VERSION1 | (regex.IGNORECASE if ignore_case else 0))


@cache
def _patterns() -> list[tuple[str, Any, str]]:
    """``(kind, compiled pattern, group)``: the span reported is that named group."""
    return [
        (
            "ID",
            _compile(
                rf"(?i:\b(?:{_ID_LABELS}))\s*(?:[:#=]|n[º°o]\.?|number|no\.?)?\s*"
                r"(?P<v>[A-Z]{0,4}[-/]?\d[\dA-Z\-/.]{2,20}\d?[A-Z]?)\b"
            ),
            "v",
        ),  # fmt: skip
        ("NAME", _compile(rf"\b(?i:{_TITLES})\.?\s+(?P<v>{_NAME})"), "v"),
        (
            "NAME",
            _compile(
                rf"(?i:\b(?:{_NAME_LABELS}))\s*[:\-]\s*(?:(?i:{_TITLES})\.?\s+)?"
                rf"(?P<v>{_NAME})"
            ),
            "v",
        ),  # fmt: skip
        (
            "NAME",
            _compile(rf"(?i:\b(?:{_SIGNATURE}))\s*[:,]?\s*(?:(?i:{_TITLES})\.?\s+)?(?P<v>{_NAME})"),
            "v",
        ),  # fmt: skip
        (
            "NAME",
            _compile(rf"(?P<v>{_NAME}),?\s+(?:M\.?D\.?|D\.?O\.?|Ph\.?D\.?|R\.?T\.?|FACR)\b"),
            "v",
        ),
        # "Patient Zebulon QUIXOTEVANS": a label without a colon, then a title-case first name
        (
            "NAME",
            _compile(
                rf"(?i:\b(?:patient|paciente|pt|name|nombre))[ \t]+(?P<v>[{_U}][{_L}]+"
                rf"(?:[ \t]+(?:{_PARTICLE}[ \t]+){{0,2}}{_NOT_NAME}{_WORD}){{1,3}})"
            ),
            "v",
        ),  # fmt: skip
        (
            "DATE",
            _compile(
                rf"\b(?P<v>\d{{1,2}}\s+(?:de\s+)?(?:{_MONTHS_ES})\.?\s+(?:de\s+|del\s+)?\d{{4}})\b",
                ignore_case=True,
            ),
            "v",
        ),  # fmt: skip
        (
            "DATE",
            _compile(
                rf"\b(?P<v>(?:{_MONTHS_EN})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})\b",
                ignore_case=True,
            ),
            "v",
        ),  # fmt: skip
        (
            "DATE",
            _compile(
                rf"\b(?P<v>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS_EN})\.?,?\s+\d{{4}})\b",
                ignore_case=True,
            ),
            "v",
        ),  # fmt: skip
        (
            "DATE",
            _compile(
                r"\b(?P<v>\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2})\b"
            ),
            "v",
        ),  # fmt: skip
        ("DATE", _compile(rf"\b(?P<v>{_MONTH_EN_DAY}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?)\b"), "v"),
        ("DATE", _compile(rf"\b(?P<v>\d{{1,2}}\s+de\s+(?:{_MONTHS_ES}))\b", ignore_case=True), "v"),
        (
            "AGE",
            _compile(
                r"\b(?P<v>9\d|1[01]\d)(?=\s*-?\s*(?:years?|yrs?|y/?o|year-old|años|anos)\b)",
                ignore_case=True,
            ),
            "v",
        ),  # fmt: skip
        ("AGE", _compile(r"(?i:\b(?:age|edad))\s*:?\s*(?P<v>9\d|1[01]\d)\b"), "v"),
        (
            "INSTITUTION",
            _compile(
                rf"(?P<v>\b(?:{_INSTITUTION_HEADS})(?:[ \t]+(?:{_WORD}|(?:{_PARTICLE}|of|the|and|"
                rf"San|Santa|Sant)\b)){{1,6}})"
            ),
            "v",
        ),  # fmt: skip
        (
            "INSTITUTION",
            _compile(
                rf"(?P<v>(?:\b(?:St\.|Saint|San|Santa)[ \t]+)?\b(?:{_WORD}[ \t]+){{1,3}}"
                rf"(?:{_INSTITUTION_TAILS}))\b"
            ),
            "v",
        ),
        (
            "ADDRESS",
            _compile(
                rf"(?P<v>\b\d{{1,5}}[ \t]+(?:{_WORD}[ \t]+){{1,4}}(?i:{_STREET_EN})\.?"
                r"(?:,?[ \t]*(?i:apt|suite|ste|unit|#)\.?[ \t]*\w+)?"
                rf"(?:,[ \t]*{_WORD}(?:[ \t]+{_WORD})*,?[ \t]+[A-Z]{{2}}[ \t]+"
                r"\d{5}(?:-\d{4})?)?)"
            ),
            "v",
        ),  # fmt: skip
        (
            "ADDRESS",
            _compile(
                rf"(?P<v>\b(?i:{_STREET_ES})\.?[ \t]+(?:(?:{_PARTICLE})[ \t]+)*{_WORD}"
                rf"(?:[ \t]+(?:(?:{_PARTICLE})[ \t]+)?{_WORD}){{0,4}},?[ \t]*"
                r"(?:n[º°o]\.?[ \t]*)?\d{1,4}"
                r"(?:[, \t]+\d{1,2}[º°ªa-z]?(?:[ \t]*[A-Z])?)?(?:,?[ \t]+\d{5}(?:[ \t]+"
                + _WORD
                + r")+)?)"
            ),
            "v",
        ),  # fmt: skip
        (
            "ADDRESS",
            _compile(
                r"(?i:\b(?:address|direcci[oó]n|domicilio))\s*:\s*"
                r"(?P<v>[^\n;]{4,120}?)(?=\.\s|\.?$|\n|;)"
            ),
            "v",
        ),
        (
            "PHONE",
            _compile(
                r"(?<![\w/.\-])(?P<v>(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\d{2,4}[ .\-])"
                r"\d{2,4}(?:[ .\-]\d{2,4}){1,2})(?![\w/]|[.\-]\d)"
            ),
            "v",
        ),  # fmt: skip
        (
            "PHONE",
            _compile(
                r"(?i:\b(?:tel[eé]fono|tel|tfno|phone|fax|m[oó]vil|cell))\.?\s*:?\s*"
                r"(?P<v>\+?[\d(][\d\s().\-]{6,18}\d)"
            ),
            "v",
        ),  # fmt: skip
    ]


@cache
def _name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """First names and surnames (lower case) from Faker's en_US, es_ES and es_MX locales."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in ("en_US", "es_ES", "es_MX"):
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        first.update(str(n).lower() for n in provider.first_names)
        last.update(str(n).lower() for n in provider.last_names)
    return frozenset(first - _CLINICAL), frozenset(last - _CLINICAL)


_LOCK = threading.Lock()


@cache
def _presidio() -> list[Any]:
    """Presidio's pattern recognizers, made offline-safe (no public-suffix-list download)."""
    with _LOCK:
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        import tldextract.tldextract as tld

        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)
        from presidio_analyzer.predefined_recognizers import (
            DateRecognizer,
            EmailRecognizer,
            EsNieRecognizer,
            EsNifRecognizer,
            IpRecognizer,
            MedicalLicenseRecognizer,
            PhoneRecognizer,
            UrlRecognizer,
            UsSsnRecognizer,
        )

        return [
            EmailRecognizer(), UrlRecognizer(), DateRecognizer(), IpRecognizer(),
            UsSsnRecognizer(), EsNifRecognizer(supported_language="en"),
            EsNieRecognizer(supported_language="en"), MedicalLicenseRecognizer(),
            PhoneRecognizer(supported_regions=("ES", "US", "MX", "GB")),
        ]  # fmt: skip


_TRIM = " \t\n.,;:)(]["


class Scrubber:
    """Finds and replaces PHI in report text (thread-safe after the first call)."""

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, kind)`` of every PHI span, disjoint and in order."""
        hits: list[tuple[int, int, str, float]] = []
        for recognizer in _presidio():
            for result in recognizer.analyze(text, list(recognizer.supported_entities), None):
                if result.score >= _THRESHOLD and result.entity_type in _PRESIDIO:
                    hits.append((result.start, result.end, _PRESIDIO[result.entity_type],
                                 result.score))  # fmt: skip
        for kind, pattern, group in _patterns():
            for match in pattern.finditer(text):
                if kind == "PHONE" and not 9 <= sum(c.isdigit() for c in match.group(group)) <= 13:
                    continue
                hits.append((match.start(group), match.end(group), kind, 0.9))
        hits.extend((s, e, "NAME", 0.7) for s, e in self._name_pairs(text))
        return self._resolve(text, hits)

    @staticmethod
    def _name_pairs(text: str) -> list[tuple[int, int]]:
        """A capitalised first name followed by one or two capitalised surnames."""
        first, last = _name_lists()
        tokens = [(m.start(), m.end(), m.group()) for m in regex.finditer(_WORD, text)]
        found = []
        i = 0
        while i < len(tokens) - 1:
            start, end, word = tokens[i]
            nxt = tokens[i + 1]
            gap = text[end : nxt[0]]
            if word.lower() in first and nxt[2].lower() in last and gap.strip() == "":
                stop = nxt[1]
                j = i + 2
                if (
                    j < len(tokens)
                    and tokens[j][2].lower() in last
                    and not text[stop : tokens[j][0]].strip()
                ):
                    stop = tokens[j][1]
                    j += 1
                found.append((start, stop))
                i = j
            else:
                i += 1
        return found

    @staticmethod
    def _resolve(text: str, hits: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str]]:
        cleaned = []
        for found_start, found_end, kind, score in hits:
            start, end = found_start, found_end
            while (
                start < end
                and text[start] in _TRIM
                and not (kind == "PHONE" and text[start] == "(")
            ):
                start += 1
            while (
                end > start
                and text[end - 1] in _TRIM
                and not (kind == "NAME" and text[end - 1] == ".")
            ):
                end -= 1
            if end > start:
                cleaned.append((start, end, kind, score))
        cleaned.sort(key=lambda h: (-_PRIORITY[h[2]], -(h[1] - h[0]), -h[3]))
        taken: list[tuple[int, int, str]] = []
        for start, end, kind, _ in cleaned:
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, kind))
        return sorted(taken)

    def scrub(self, text: str) -> ScrubResult:
        """The text with every PHI span replaced by its placeholder."""
        pieces: list[str] = []
        spans: list[PhiSpan] = []
        at = 0
        length = 0
        for start, end, kind in self.find(text):
            pieces.append(text[at:start])
            length += start - at
            placeholder = _PLACEHOLDER[kind]
            spans.append(PhiSpan(kind, start, end, length, length + len(placeholder)))
            pieces.append(placeholder)
            length += len(placeholder)
            at = end
        pieces.append(text[at:])
        return ScrubResult("".join(pieces), tuple(spans))


@cache
def _default() -> Scrubber:
    return Scrubber()


def scrub(text: str) -> ScrubResult:
    """Scrub one report's text with the default :class:`Scrubber`."""
    return _default().scrub(text)


def score_scrubbing(
    items: list[tuple[str, list[tuple[int, int, str]]]], scrubber: Scrubber | None = None
) -> dict[str, dict[str, float]]:
    """Recall and precision per PHI kind over ``(text, planted spans)`` pairs.

    A planted span is caught when the scrubbed spans cover every character of it; a scrubbed
    span is a false positive when it touches no planted span. Precision is per kind of the
    scrubbed span.
    """
    scrubber = scrubber or _default()
    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    found: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for text, spans in items:
        hits = scrubber.find(text)
        covered = bytearray(len(text))
        for start, end, _ in hits:
            covered[start:end] = b"\1" * (end - start)
        for start, end, kind in spans:
            planted[kind] += 1
            caught[kind] += all(covered[start:end])
        for start, end, kind in hits:
            found[kind] += 1
            right[kind] += any(start < e and end > s for s, e, _ in spans)
    kinds = sorted(set(planted) | set(found))
    return {
        kind: {
            "planted": planted[kind],
            "recall": caught[kind] / planted[kind] if planted[kind] else float("nan"),
            "found": found[kind],
            "precision": right[kind] / found[kind] if found[kind] else float("nan"),
        }
        for kind in kinds
    }

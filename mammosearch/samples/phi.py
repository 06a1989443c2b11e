"""PHI-laden synthetic reports: generated reports wrapped in the identifiers real ones carry.

Each report (:func:`mammosearch.samples.reports.generate_reports`) gets a header, a footer and
sometimes inline mentions in its language's house style, filled by Faker: patient and clinician
names (drawn from en_GB, en_US, es_ES, es_MX, es_AR and es_CO, wider than the scrubber's own name
lists, so cue-based detection is what is measured), record and accession numbers, dates, ages
over 89, phone numbers, e-mail and postal addresses, institutions. The exact span and kind of
every planted value is returned, so scrubbing can be scored per kind. All of it is fake.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mammosearch.samples.reports import SyntheticReport, generate_reports

__all__ = ["PhiReport", "generate_phi_reports"]

_NAME_LOCALES = {"en": ("en_GB", "en_US"), "es": ("es_ES", "es_MX", "es_AR", "es_CO")}
_MONTHS_ES = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre")  # fmt: skip


@dataclass(frozen=True, slots=True)
class PhiReport:
    """A report with planted PHI: ``spans`` are ``(start, end, kind)`` of every planted value;
    ``base`` is the report without it (its ``truth`` holds the BI-RADS content)."""

    text: str
    spans: tuple[tuple[int, int, str], ...]
    base: SyntheticReport


class _Writer:
    """Builds a text from pieces, remembering where each PHI value lands."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int, str]] = []

    def add(self, text: str, kind: str | None = None) -> None:
        if kind is not None:
            self.spans.append((self.length, self.length + len(text), kind))
        self.parts.append(text)
        self.length += len(text)

    def line(self, template: str, **values: tuple[str, str]) -> None:
        """``template`` with ``{key}`` slots filled by ``(value, kind)``; then a newline."""
        rest = template
        while "{" in rest:
            before, _, after = rest.partition("{")
            key, _, rest = after.partition("}")
            self.add(before)
            value, kind = values[key]
            self.add(value, kind)
        self.add(rest + "\n")


def _fakers(seed: int) -> dict[str, list[Any]]:
    from faker import Faker

    fakers: dict[str, list[Any]] = {}
    for language, locales in _NAME_LOCALES.items():
        fakers[language] = []
        for n, locale in enumerate(locales):
            fake = Faker(locale)
            fake.seed_instance(seed * 31 + n)
            fakers[language].append(fake)
    return fakers


def _values(fake: Any, rng: random.Random, language: str) -> dict[str, tuple[str, str]]:
    person = f"{fake.first_name()} {fake.last_name()}"
    if rng.random() < 0.3:
        person += f" {fake.last_name()}"
    if rng.random() < 0.2:
        person = person.upper()
    exam = fake.date_between("-3y", "today")
    birth = fake.date_of_birth(minimum_age=40, maximum_age=88)
    if language == "es":
        long_date = f"{exam.day} de {_MONTHS_ES[exam.month - 1]} de {exam.year}"
        phone = rng.choice([fake.numerify("+34 9## ### ###"), fake.numerify("9# ### ## ##"),
                            fake.numerify("6## ## ## ##")])  # fmt: skip
        city = fake.city()
        institution = rng.choice([f"Hospital Universitario {fake.last_name()}",
                                  f"Hospital General de {city}", f"Clínica {fake.last_name()}",
                                  f"Centro Médico {fake.last_name()}"])  # fmt: skip
        address = f"Calle {fake.last_name()} {rng.randint(1, 199)}, {fake.postcode()} {city}"
    else:
        long_date = exam.strftime(rng.choice(["%B %d, %Y", "%d %B %Y"]))
        phone = rng.choice([fake.numerify("(###) ###-####"), fake.numerify("###-###-####"),
                            fake.numerify("+1 ### ### ####")])  # fmt: skip
        city = fake.city()
        institution = rng.choice([f"{fake.last_name()} Memorial Hospital",
                                  f"{city} General Hospital", f"{fake.last_name()} Medical Center",
                                  f"Hospital of {fake.last_name()}"])  # fmt: skip
        address = f"{rng.randint(1, 9999)} {fake.last_name()} Street, {city}"
    return {
        "patient": (person, "NAME"),
        "doctor": (f"{fake.first_name()} {fake.last_name()}", "NAME"),
        "reader": (f"{fake.first_name()} {fake.last_name()}", "NAME"),
        "mrn": (fake.numerify(rng.choice(["########", "######", "##-####-##"])), "ID"),
        "acc": (fake.bothify(rng.choice(["A#######", "ACC########", "##########"])), "ID"),
        "dob": (birth.strftime(rng.choice(["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d"])), "DATE"),
        "date": (long_date, "DATE"),
        "num_date": (exam.strftime("%d/%m/%Y"), "DATE"),
        "age": (str(rng.randint(90, 104)), "AGE"),
        "phone": (phone, "PHONE"),
        "email": (fake.email(), "EMAIL"),
        "institution": (institution, "INSTITUTION"),
        "address": (address, "ADDRESS"),
    }


_HEADERS = {
    "en": ["Patient: {patient}", "Name: {patient}", "MRN: {mrn}", "Patient ID: {mrn}",
           "Accession #: {acc}", "DOB: {dob}", "Exam date: {date}", "Age: {age}",
           "Referring physician: Dr. {doctor}", "{institution}", "Address: {address}",
           "Phone: {phone}"],
    "es": ["Paciente: {patient}", "Nombre: {patient}", "NHC: {mrn}",
           "Nº de historia clínica: {mrn}", "Nº de petición: {acc}",
           "Fecha de nacimiento: {dob}", "Fecha: {date}", "Edad: {age}",
           "Médico solicitante: Dr. {doctor}", "{institution}", "Domicilio: {address}",
           "Teléfono: {phone}"],
}  # fmt: skip
_FOOTERS = {
    "en": ["Reported by {reader}, MD", "Electronically signed by Dr. {reader} on {num_date}",
           "Dictated by: {reader}", "Questions: {email} or {phone}", "Radiologist: {reader}"],
    "es": ["Informado por: Dra. {reader}",
           "Firmado electrónicamente por Dr. {reader} el {num_date}", "Radiólogo: {reader}",
           "Consultas: {email} o {phone}"],
}  # fmt: skip


def generate_phi_reports(n: int, *, seed: int = 0) -> list[PhiReport]:
    """``n`` PHI-laden reports (EN and ES) with the span and kind of every planted value."""
    rng = random.Random(seed)
    fakers = _fakers(seed)
    out = []
    for base in generate_reports(n, seed=seed, typo_rate=0.05):
        language = base.language if base.language in _HEADERS else "en"
        values = _values(rng.choice(fakers[language]), rng, language)
        writer = _Writer()
        for template in rng.sample(_HEADERS[language], rng.randint(4, len(_HEADERS[language]))):
            writer.line(template, **values)
        writer.add(base.text.rstrip() + "\n")
        for template in rng.sample(_FOOTERS[language], rng.randint(1, 2)):
            writer.line(template, **values)
        out.append(PhiReport("".join(writer.parts), tuple(writer.spans), base))
    return out

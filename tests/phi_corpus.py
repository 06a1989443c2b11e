"""An independent PHI test corpus: identifiers the scrubber has never seen, planted in real reports.

Nothing here comes from the scrubber's sources: the names are written down here by hand (no
Faker, no name package), the identifiers are generated from the published specifications of
each format (check digits included), and the templates are written apart from
``mammosearch.samples.phi``. ``mammosearch`` never imports this module (a test holds it). The
report texts are the real ones of ``../shared/data/reports-real``, read at run time and never
copied; each gets a header, one or two sentences in its body and a signature, in its language.

Split: a report is in the *dev* half when the first byte of ``sha256(report id)`` is even, in
the *test* half when it is odd. Rules are tuned on dev only.

Scoring (:func:`recall_by_kind`): a planted value counts as caught when the scrubbed spans
cover every letter and digit of it.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GIVEN",
    "PLACES",
    "SURNAMES",
    "PlantedReport",
    "half",
    "plant",
    "real_reports",
    "recall_by_kind",
]

# Written for this corpus: Paraguayan (Guaraní and Spanish), Basque, Catalan, Galician,
# Argentine, Mexican, Indian (several regions), English, Irish, Scottish, and others.
GIVEN = """
Arami Yeruti Jasy Kuarahy Mbali Araceli Ñasaindy Tupãsy Porã Mirta Nilda Zunilda Ramona Celsa
Librada Edelmira Gumersinda Eulogia Felicia Nimia Perla Liz Rocío Itziar Ainhoa Nerea Idoia Edurne
Maitane Leire Arantxa Montserrat Núria Meritxell Roser Mireia Uxía Iria Antía Xiana Sabela Brais
Guadalupe Xóchitl Itzel Citlali Yatziri Nayeli Marisol Belén Milagros Florencia Agustina Catalina
Priyanka Lakshmi Padmavathi Shobha Kavitha Anjali Nandini Sunita Meenakshi Bhavani Rukmini Savitri
Deepika Harpreet Gurleen Manpreet Fathima Ayesha Shabana Tanuja Vasanthi Kamala Sowmya Hemalatha
Siobhan Niamh Aoife Ciara Eithne Sorcha Morag Isla Ailsa Kirsty Gwyneth Bronwen Eleri Philippa
Henrietta Prudence Winifred Agatha Beryl Doreen Marjorie Mildred Hope Grace Joy Rosa Luz Paz
Małgorzata Agnieszka Wiebke Hildegard Annelies Giuseppina Concetta Olusola Chiamaka Ngozi Mei Yuki
"""
SURNAMES = """
Ñamandú Arevalos Duarte Giménez Ayala Villalba Ocampos Cardozo Ojeda Benítez Insfrán Caballero
Recalde Melgarejo Cantero Ortellado Zaracho Báez Cabañas Brítez Florentín Samaniego Vera Galeano
Etxeberria Goikoetxea Urquiza Arrizabalaga Zubizarreta Aguirrezabala Elorza Ibarguren Uribe
Puigdemont Vilanova Casademunt Prats Roig Ferrer Bosch Castells Oliveras Soler Feijóo Outeiro
Pereiro Lourenzo Seoane Carballo Quiroga Montenegro Tlapalcoyoa Cuauhtémoc Xicoténcatl Huerta
Zapata Ibarra Echeverría Landa Venkataraman Raghunathan Subramaniam Chakraborty Bhattacharya
Mukherjee Deshpande Kulkarni Gokhale Iyengar Nambiar Menon Pillai Reddy Naidu Sandhu Dhillon
Grewal Siddiqui Qureshi Hegde Shetty Bhat Kamath Srinivasan Chandrasekhar Balasubramanian
O'Sullivan MacAlister Fitzgerald Donnelly McCracken Featherstonehaugh Cholmondeley Postlethwaite
Braithwaite Ramsbottom Higginbotham Whitlock Ashworth Blackwood Kowalczyk Wiśniewska Schröder
Brückner Esposito Lombardi Adeyemi Okonkwo Nakamura Tanaka Zhang Nguyen Blanco Moreno Young Rich
"""
_GIVEN = GIVEN.split()
_SURNAMES = SURNAMES.split()
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_MONTHS = {
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
}


@dataclass(frozen=True, slots=True)
class PlantedReport:
    """A real report with planted values: ``spans`` are ``(start, end, kind)`` of each one;
    ``original`` is the real report's text, ``where`` ``header``/``body``/``signature`` of each
    span."""

    report_id: str
    language: str
    text: str
    original: str
    spans: tuple[tuple[int, int, str], ...]
    where: tuple[str, ...]


def half(report_id: str) -> str:
    """``"dev"`` or ``"test"``: the first byte of ``sha256(report id)``, even or odd."""
    return "dev" if hashlib.sha256(report_id.encode()).digest()[0] % 2 == 0 else "test"


def real_reports(root: Path) -> list[tuple[str, str, str]]:
    """``(report id, language, text)`` of the real reports under ``root`` (reports-real)."""
    out = []
    for folder, language in (("paraguay-es", "es"), ("dmid-en", "en")):
        for path in sorted((root / folder / "texts").glob("*.txt")):
            out.append((path.stem, language, path.read_text(encoding="utf-8")))
    return out


# identifiers from their specifications -------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _dots(number: str) -> str:
    return f"{int(number):,}".replace(",", ".")


def spanish_dni(rng: random.Random) -> str:
    """Spanish DNI: 8 digits and the letter of the number mod 23."""
    number = rng.randint(1_000_000, 99_999_999)
    letter = _DNI_LETTERS[number % 23]
    return rng.choice(
        [f"{number:08d}{letter}", f"{number:08d}-{letter}", f"{_dots(str(number))}-{letter}"]
    )


def spanish_nie(rng: random.Random) -> str:
    """Spanish NIE: X/Y/Z (0/1/2), 7 digits, the DNI letter of the whole."""
    head = rng.choice("XYZ")
    body = rng.randint(0, 9_999_999)
    letter = _DNI_LETTERS[int(f"{'XYZ'.index(head)}{body:07d}") % 23]
    return rng.choice([f"{head}{body:07d}{letter}", f"{head}-{body:07d}-{letter}"])


def paraguay_ci(rng: random.Random) -> str:
    """Paraguayan cédula de identidad: up to 7 digits, written with thousands dots."""
    return _dots(str(rng.randint(300_000, 7_999_999)))


def argentina_dni(rng: random.Random) -> str:
    """Argentine DNI (8 digits with dots) or CUIL (prefix, DNI, mod-11 check digit)."""
    dni = rng.randint(10_000_000, 45_999_999)
    if rng.random() < 0.5:
        return _dots(str(dni))
    prefix = rng.choice(["20", "23", "27"])
    base = f"{prefix}{dni:08d}"
    total = sum(int(d) * w for d, w in zip(base, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2], strict=True))
    check = (11 - total % 11) % 11
    return f"{prefix}-{dni:08d}-{check if check < 10 else 9}"


def mexico_curp(rng: random.Random) -> str:
    """Mexican CURP: 4 letters, birth date, sex, state, 3 consonants, a character, a check digit."""
    consonants = "BCDFGHJKLMNPQRSTVWXYZ"
    head = (
        rng.choice(consonants)
        + rng.choice("AEIOU")
        + rng.choice(consonants)
        + rng.choice(consonants)
    )
    date = f"{rng.randint(40, 85):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    state = rng.choice(["DF", "JC", "NL", "PL", "VZ", "OC", "YN"])
    body = head + date + "M" + state + "".join(rng.choice(consonants) for _ in range(3)) + "0"
    alphabet = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
    total = sum(alphabet.index(c) * (18 - i) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def us_ssn(rng: random.Random) -> str:
    """US SSN: area 001-899 but 666, group 01-99, serial 0001-9999."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _verhoeff(number: str) -> str:
    d = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
         [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
         [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
         [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
         [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]  # fmt: skip
    p = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
         [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
         [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
         [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]  # fmt: skip
    inverse = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]
    c = 0
    for i, digit in enumerate(reversed(number)):
        c = d[c][p[(i + 1) % 8][int(digit)]]
    return number + str(inverse[c])


def aadhaar(rng: random.Random) -> str:
    """Indian Aadhaar-like number: 12 digits, first 2-9, Verhoeff check digit, groups of 4."""
    number = _verhoeff(str(rng.randint(2, 9)) + _digits(rng, 10))
    return rng.choice([f"{number[:4]} {number[4:8]} {number[8:]}", number])


def nhs_number(rng: random.Random) -> str:
    """UK NHS number: 9 digits and a mod-11 check digit (never 10), written 3-3-4."""
    while True:
        base = _digits(rng, 9)
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(base)) % 11
        if check != 10:
            number = base + str(0 if check == 11 else check)
            return rng.choice([f"{number[:3]} {number[3:6]} {number[6:]}", number])


def chile_rut(rng: random.Random) -> str:
    """Chilean RUT: number with dots, hyphen, mod-11 check (K for 10)."""
    number = rng.randint(5_000_000, 25_000_000)
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(str(number))))
    check = 11 - total % 11
    digit = {10: "K", 11: "0"}.get(check, str(check))
    return f"{_dots(str(number))}-{digit}"


def brazil_cpf(rng: random.Random) -> str:
    """Brazilian CPF: 9 digits and two mod-11 check digits, 000.000.000-00."""
    digits = [int(c) for c in _digits(rng, 9)]
    for n in (10, 11):
        total = sum(d * (n - i) for i, d in enumerate(digits))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    s = "".join(map(str, digits))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


def record_number(rng: random.Random) -> str:
    """Hospital record and accession numbers in several house styles."""
    return rng.choice([
        f"{rng.choice(['HC', 'MR', 'RX', 'MG', 'H'])}-{_digits(rng, 6)}",
        f"{rng.choice(['A', 'X', 'RAD', 'ACC'])}{_digits(rng, 7)}",
        f"{rng.randint(2015, 2025)}-{_digits(rng, 6)}",
        f"{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}",
        f"{rng.choice(['PY', 'AS', 'UH'])}/{_digits(rng, 5)}/{rng.randint(18, 25)}",
        f"{_digits(rng, 4)}.{_digits(rng, 4)}",
        _digits(rng, rng.randint(6, 10)),
    ])  # fmt: skip


def registration(rng: random.Random) -> str:
    """A radiologist's professional registration number."""
    return rng.choice([_digits(rng, 4), _digits(rng, 5), f"{_digits(rng, 2)}/{_digits(rng, 5)}",
                       f"{_digits(rng, 2)}.{_digits(rng, 3)}"])  # fmt: skip


# dates, phones, contact, places ------------------------------------------------------------


def date(rng: random.Random, language: str) -> str:
    """A date in one of the styles of the language's countries."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1990, 2025)
    name = _MONTHS[language][month - 1]
    styles = [f"{day:02d}/{month:02d}/{year}", f"{day}/{month}/{year % 100:02d}",
              f"{year}-{month:02d}-{day:02d}", f"{day:02d}.{month:02d}.{year}",
              f"{day:02d}-{name[:3]}-{year}", f"{day:02d}-{month:02d}-{year}"]  # fmt: skip
    if language == "es":
        styles += [f"{day} de {name} de {year}", f"{day} de {name} del {year}",
                   f"{name} de {year}", f"{day}/{['I', 'II', 'III', 'IV', 'V', 'VI', 'VII', 'VIII', 'IX', 'X', 'XI', 'XII'][month - 1]}/{year}"]  # fmt: skip
    else:
        styles += [f"{name} {day}, {year}", f"{day}th {name} {year}", f"{name[:3]} {day} {year}",
                   f"{month}/{day}/{year}", f"{day} {name[:3]}. {year}"]  # fmt: skip
    return rng.choice(styles)


def phone(rng: random.Random, language: str) -> str:
    """A phone number of Paraguay, Argentina, Spain, Mexico, India, the UK or the US."""
    es = [f"(0981) {_digits(rng, 3)}-{_digits(rng, 3)}", f"+595 21 {_digits(rng, 3)} {_digits(rng, 3)}",
          f"021-{_digits(rng, 6)}", f"+54 11 {_digits(rng, 4)}-{_digits(rng, 4)}",
          f"+34 6{_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
          f"55 {_digits(rng, 4)} {_digits(rng, 4)}"]  # fmt: skip
    en = [f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}", f"080-{_digits(rng, 8)}",
          f"020 7{_digits(rng, 3)} {_digits(rng, 4)}", f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
          f"0{_digits(rng, 4)} {_digits(rng, 6)}"]  # fmt: skip
    return rng.choice(es if language == "es" else en)


def email(rng: random.Random, given: str, surname: str) -> str:
    """An e-mail address made of a name."""
    import unicodedata

    def ascii_(s: str) -> str:
        return "".join(
            c for c in unicodedata.normalize("NFD", s.lower()) if c.isalpha() and c.isascii()
        )

    domain = rng.choice(
        ["tigo.com.py", "gmail.com", "rediffmail.com", "nhs.net", "yahoo.com.ar", "outlook.es"]
    )
    return f"{ascii_(given)}.{ascii_(surname)}{rng.randint(1, 99)}@{domain}"


def url(rng: random.Random, surname: str) -> str:
    """A web address naming a practice."""
    import unicodedata

    plain = "".join(
        c for c in unicodedata.normalize("NFD", surname.lower()) if c.isascii() and c.isalpha()
    )
    return rng.choice([f"https://www.{plain}-imagenes.com.py/resultados", f"www.{plain}diagnostics.in",
                       f"http://portal.{plain}.org/pacs?id={_digits(rng, 6)}"])  # fmt: skip


PLACES = {
    "es": ["Asunción", "Luque", "San Lorenzo", "Fernando de la Mora", "Lambaré", "Capiatá", "Encarnación",
           "Ciudad del Este", "Villarrica", "Caacupé", "Itauguá", "Ñemby", "Mariano Roque Alonso",
           "Concepción", "Pilar", "Vitoria-Gasteiz", "Ourense", "Girona", "Rosario", "Tlaquepaque"],
    "en": ["Bengaluru", "Mysuru", "Hubballi", "Mangaluru", "Thiruvananthapuram", "Coimbatore", "Pune",
           "Nagpur", "Ludhiana", "Leamington Spa", "Kirkcaldy", "Aberystwyth", "Tulsa", "Wichita"],
}  # fmt: skip
_STREETS = {
    "es": ["Mariscal López", "Eusebio Ayala", "España", "Sacramento", "Tte. Fariña", "Cerro Corá",
           "Defensores del Chaco", "Mcal. Estigarribia", "Juan de Salazar", "Iturbe"],
    "en": ["Residency Road", "MG Road", "Brigade Road", "Hosur Road", "Sarjapur Main Road",
           "Kingsway", "Elm Grove", "Oakridge Drive", "Church Lane", "Station Road"],
}  # fmt: skip


def address(rng: random.Random, language: str) -> list[tuple[str, str | None]]:
    """A postal address as pieces: ``(text, kind or None)``; only identifying pieces are PHI."""
    place = rng.choice(PLACES[language])
    street = rng.choice(_STREETS[language])
    number = str(rng.randint(10, 4999))
    if language == "es":
        return rng.choice([
            [("Avda. ", None), (f"{street} {number}", "ADDRESS"), (" c/ ", None),
             (rng.choice(_STREETS["es"]), "ADDRESS"), (", ", None), (place, "ADDRESS")],
            [("Calle ", None), (f"{street} Nº {number}", "ADDRESS"), (", barrio ", None),
             (rng.choice(["San Vicente", "Villa Morra", "Recoleta", "Sajonia", "Trinidad"]), "ADDRESS"),
             (", ", None), (place, "ADDRESS")],
            [(f"{street} {number}", "ADDRESS"), (", CP ", None), (_digits(rng, 4), "ADDRESS"),
             (" - ", None), (place, "ADDRESS")],
        ])  # fmt: skip
    return rng.choice([
        [(f"#{number}, {rng.randint(1, 20)}th Cross, {street}", "ADDRESS"), (", ", None),
         (place, "ADDRESS"), (" - ", None), (f"560{_digits(rng, 3)}", "ADDRESS")],
        [(f"Flat {rng.randint(1, 40)}{rng.choice('ABC')}, {number} {street}", "ADDRESS"), (", ", None),
         (place, "ADDRESS"), (" ", None), (f"KY{rng.randint(1, 9)} {rng.randint(1, 9)}HQ", "ADDRESS")],
        [(f"{number} {street}", "ADDRESS"), (", ", None), (place, "ADDRESS"), (", OK ", None),
         (f"74{_digits(rng, 3)}", "ADDRESS")],
    ])  # fmt: skip


def institution(rng: random.Random, language: str) -> str:
    """A hospital or practice name, with or without a word such as "Hospital"."""
    surname = rng.choice(_SURNAMES)
    if language == "es":
        return rng.choice([f"Sanatorio {surname}", f"Centro de Diagnóstico {surname}",
                           f"Clínica {surname} & {rng.choice(_SURNAMES)}", f"Instituto {surname} de Imágenes",
                           f"Diagnóstico por Imágenes {surname}", f"{surname} Diagnóstico S.A.",
                           f"Kuarahy Imágenes {surname}"])  # fmt: skip
    return rng.choice([f"{surname} Diagnostics", f"{surname} Scan Centre", f"{surname} Imaging Pvt Ltd",
                       f"{surname} Memorial Hospital", f"{surname} Multispeciality Hospital",
                       f"Sri {surname} Health Centre", f"{surname} Radiology"])  # fmt: skip


# names ---------------------------------------------------------------------------------------


def person(rng: random.Random) -> tuple[str, str, str]:
    """``(given, surname, full name as written)`` in one of several orders and cases."""
    given = rng.choice(_GIVEN)
    if rng.random() < 0.3:
        given += " " + rng.choice(_GIVEN)
    surname = rng.choice(_SURNAMES)
    if rng.random() < 0.4:
        surname += rng.choice([" ", "-"]) + rng.choice(_SURNAMES)
    style = rng.random()
    if style < 0.25:
        full = f"{surname.upper()}, {given}"
    elif style < 0.4:
        full = f"{surname}, {given}"
    elif style < 0.6:
        full = f"{given} {surname}".upper()
    elif style < 0.7:
        full = f"{given[0]}. {surname}"
    else:
        full = f"{given} {surname}"
    return given, surname, full


# planting ------------------------------------------------------------------------------------

Piece = tuple[str, str | None]


def _fill(template: str, values: dict[str, list[Piece]]) -> list[Piece]:
    out: list[Piece] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        key, _, rest = after.partition("}")
        out.append((before, None))
        out.extend(values[key])
    out.append((rest, None))
    return out


_HEADER = {
    "es": ["{institution}", "PACIENTE: {patient}", "Nombre y apellido: {patient}   C.I. Nº {ci}",
           "{patient}", "Paciente {patient} - Edad: {age} años", "DNI {dni} · NHC {mrn}",
           "Historia clínica N° {mrn}   Fecha: {date}", "CURP: {curp}", "CUIL {ar}", "NIE {nie}",
           "Nº de estudio: {acc}", "Acc.{acc}", "HC:{mrn}", "Fecha de nacimiento: {dob}",
           "Derivada por: Dra. {doctor}", "Médico tratante: {doctor}", "Dirección: {address}",
           "Tel.: {phone}", "Correo: {email}", "Seguro: IPS - Asegurado Nº {mrn}", "RUT {rut}"],
    "en": ["{institution}", "Name : {patient}    Age/Sex : {age}/F", "UHID: {mrn}   Ref. by: Dr. {doctor}",
           "Patient: {patient}", "{patient}", "NHS No: {nhs}", "Aadhaar: {aadhaar}", "SSN {ssn}",
           "Accession: {acc}", "MRN-{mrn}", "Date of exam: {date}", "DOB {dob}",
           "{institution}, {address}", "Ph: {phone}, {email}", "Portal: {url}", "CPF {cpf}",
           "Referring clinician: {doctor}", "IP No.{acc}"],
}  # fmt: skip
_BODY = {
    "es": ["La paciente {patient} concurre acompañada de su hija {relative}.",
           "Se compara con estudio previo del {date} realizado en {institution}.",
           "Paciente de {age} años.", "Estudio solicitado por el Dr. {doctor} (Mat. {reg}).",
           "Informe comunicado a {relative} al {phone}.", "REFIERE {patient} ANTECEDENTE FAMILIAR.",
           "Nº de orden {acc}."],
    "en": ["Mrs {patient} attended with her daughter {relative}.",
           "Comparison is made with the study of {date} at {institution}.",
           "The patient, {patient}, is {age} years old.", "Results discussed with Dr {doctor} on {date}.",
           "Prior accession {acc}.", "Patient ID {mrn} confirmed at the desk."],
}  # fmt: skip
_SIGNATURE = {
    "es": ["Dra. {doctor}\nMédica Radióloga - Reg. Prof. {reg}", "Firma: {doctor}\nMat. Nac. {reg}",
           "Informó: Dr. {doctor}", "Atte.,\n{doctor}\nRP {reg}", "Validado por {doctor} el {date}",
           "{doctor}\nMédico Especialista en Diagnóstico por Imágenes\nM.P. {reg}",
           "Consultas: {email} / {url}"],
    "en": ["{doctor}, MBBS, DMRD\nConsultant Radiologist\nReg. No. {reg}",
           "Electronically signed: {doctor} MD {date}", "Reporting radiologist: {doctor} (GMC {reg})",
           "Thanks,\n{doctor}", "Verified by {doctor} on {date}", "{doctor}\nKMC Reg {reg}"],
}  # fmt: skip


def _values(rng: random.Random, language: str) -> dict[str, list[Piece]]:
    given, surname, full = person(rng)
    _, _, doctor = person(rng)
    _, _, relative = person(rng)
    return {
        "patient": [(full, "NAME")], "doctor": [(doctor, "NAME")], "relative": [(relative, "NAME")],
        "ci": [(paraguay_ci(rng), "ID")], "dni": [(spanish_dni(rng), "ID")],
        "nie": [(spanish_nie(rng), "ID")], "ar": [(argentina_dni(rng), "ID")],
        "curp": [(mexico_curp(rng), "ID")], "ssn": [(us_ssn(rng), "ID")],
        "aadhaar": [(aadhaar(rng), "ID")], "nhs": [(nhs_number(rng), "ID")],
        "rut": [(chile_rut(rng), "ID")], "cpf": [(brazil_cpf(rng), "ID")],
        "mrn": [(record_number(rng), "ID")], "acc": [(record_number(rng), "ID")],
        "reg": [(registration(rng), "ID")], "date": [(date(rng, language), "DATE")],
        "dob": [(date(rng, language), "DATE")], "age": [(str(rng.randint(90, 104)), "AGE")],
        "phone": [(phone(rng, language), "PHONE")], "email": [(email(rng, given, surname), "EMAIL")],
        "url": [(url(rng, surname), "URL")], "address": address(rng, language),
        "institution": [(institution(rng, language), "INSTITUTION")],
    }  # fmt: skip


def _adder(
    pieces: list[tuple[str, str | None, str]],
) -> Callable[[list[Piece], str], None]:
    def add(items: list[Piece], where: str) -> None:
        pieces.extend((text, kind, where) for text, kind in items)

    return add


def plant(
    reports: Iterable[tuple[str, str, str]], *, copies: int = 2, seed: int = 0
) -> list[PlantedReport]:
    """Each real report ``copies`` times with a planted header, body sentences and signature.

    Args:
        reports: ``(report id, language, text)``, e.g. from :func:`real_reports`.
        copies: Planted variants per report.
        seed: Random seed (the corpus is deterministic for a seed).

    Returns:
        The planted reports with the span, kind and position of every planted value.
    """
    out = []
    for report_id, language, original in reports:
        for copy in range(copies):
            rng = random.Random(f"{seed}:{report_id}:{copy}")
            values = _values(rng, language)
            pieces: list[tuple[str, str | None, str]] = []
            add = _adder(pieces)

            header = rng.sample(_HEADER[language], rng.randint(3, 6))
            for template in header:
                add(_fill(template, values) + [("\n", None)], "header")
            lines = original.rstrip("\n").split("\n")
            # between sentences: after a blank line or a line that ends one, before a header
            # or a blank line, so that no statement of the report is cut in two
            breaks = [i for i in range(1, len(lines))
                      if (not lines[i - 1].strip() or lines[i - 1].rstrip().endswith("."))
                      and (not lines[i].strip() or lines[i].rstrip().endswith(":"))]  # fmt: skip
            at = rng.choice(breaks) if breaks else len(lines)
            inserts = rng.sample(_BODY[language], rng.randint(1, 2))
            add([("\n".join(lines[:at]) + "\n", None)], "body")
            for template in inserts:
                add(_fill(template, values) + [("\n", None)], "body")
            add([("\n".join(lines[at:]) + "\n\n", None)], "body")
            for template in rng.sample(_SIGNATURE[language], rng.randint(1, 2)):
                add(_fill(template, values) + [("\n", None)], "signature")
            text_parts: list[str] = []
            spans: list[tuple[int, int, str]] = []
            where: list[str] = []
            length = 0
            for text, kind, position in pieces:
                if kind is not None:
                    spans.append((length, length + len(text), kind))
                    where.append(position)
                text_parts.append(text)
                length += len(text)
            out.append(PlantedReport(report_id, language, "".join(text_parts), original,
                                     tuple(spans), tuple(where)))  # fmt: skip
    return out


def recall_by_kind(
    items: Iterable[tuple[str, Iterable[tuple[int, int, str]]]],
    find: Callable[[str], list[tuple[int, int, str]]],
) -> dict[str, tuple[int, int]]:
    """``kind → (caught, planted)``: a value is caught when ``find``'s spans cover every letter
    and digit of it."""
    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for text, spans in items:
        covered = bytearray(len(text))
        for start, end, _ in find(text):
            covered[start:end] = b"\1" * (end - start)
        for start, end, kind in spans:
            planted[kind] += 1
            caught[kind] += all(covered[i] or not text[i].isalnum() for i in range(start, end))
    return {kind: (caught[kind], planted[kind]) for kind in sorted(planted)}

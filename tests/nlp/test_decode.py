"""Report bytes to text: every encoding a report arrives in is read right or refused, never
silently corrupted (nlp/_decode.py). The sentences are written for these tests."""

from __future__ import annotations

import codecs
import os
import struct
import zlib

import pytest

from mammosearch.errors import ReportDecodeError, ReportParseError
from mammosearch.nlp import Normalizer, decode_report_bytes
from mammosearch.nlp._decode import TextEncoding, sniff_unicode
from mammosearch.records import NormalizedReport

SPANISH = (
    "Mamografía bilateral. Mamas heterogéneamente densas, patrón tipo c del ACR. En el "
    "cuadrante súperoexterno de la mama izquierda se observa un nódulo de márgenes "
    "espiculados. Categoría BI-RADS 4. Se sugiere biopsia."
)
SPANISH_CALCS = (
    "Señora de 58 años. Mamas con densidad fibroglandular dispersa (ACR b). "
    "Microcalcificaciones pleomórficas agrupadas en la unión de cuadrantes internos de la mama "
    "derecha. Categoría BI-RADS 4B."
)
# Typographic dash and apostrophes: bytes 0x96 and 0x92, which only cp1252 has.
ENGLISH_CP1252 = (
    "The breasts are extremely dense \u2013 this lowers sensitivity. The patient\u2019s right "
    "breast shows an irregular mass at 10 o\u2019clock with spiculated margins. BI-RADS 5."
)


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer()


def _content(report: NormalizedReport) -> dict[str, object]:
    """What a report says: everything but its warnings."""
    data = report.to_dict()
    data.pop("warnings")
    return data


ENCODED = [
    # (name, text, bytes, warning code or None)
    ("utf-8", SPANISH, SPANISH.encode("utf-8"), None),
    ("utf-8-bom", SPANISH, codecs.BOM_UTF8 + SPANISH.encode("utf-8"), None),
    ("utf-16-le-bom", SPANISH, codecs.BOM_UTF16_LE + SPANISH.encode("utf-16-le"), None),
    ("utf-16-be-bom", SPANISH, codecs.BOM_UTF16_BE + SPANISH.encode("utf-16-be"), None),
    ("utf-32-le-bom", SPANISH, codecs.BOM_UTF32_LE + SPANISH.encode("utf-32-le"), None),
    ("utf-32-be-bom", SPANISH, codecs.BOM_UTF32_BE + SPANISH.encode("utf-32-be"), None),
    ("utf-16-le", SPANISH, SPANISH.encode("utf-16-le"), "W001"),
    ("utf-16-be", SPANISH_CALCS, SPANISH_CALCS.encode("utf-16-be"), "W001"),
    ("utf-32-le", SPANISH, SPANISH.encode("utf-32-le"), "W001"),
    ("iso-8859-1", SPANISH, SPANISH.encode("iso-8859-1"), "W001"),
    ("latin-1-short", SPANISH_CALCS, SPANISH_CALCS.encode("latin-1"), "W001"),
    ("cp1252", ENGLISH_CP1252, ENGLISH_CP1252.encode("cp1252"), "W001"),
    ("utf-8-bom-then-latin-1", SPANISH, codecs.BOM_UTF8 + SPANISH.encode("latin-1"), "W001"),
]


@pytest.mark.parametrize(
    ("text", "data", "code"), [e[1:] for e in ENCODED], ids=[e[0] for e in ENCODED]
)
def test_every_encoding_is_read_as_written(text: str, data: bytes, code: str | None) -> None:
    decoded, warning = decode_report_bytes(data)
    assert decoded == text
    if code is None:
        assert warning is None
    else:
        assert warning is not None and warning.startswith(f"{code}: input is not UTF-8; decoded as")


@pytest.mark.parametrize(
    ("text", "data", "code"), [e[1:] for e in ENCODED], ids=[e[0] for e in ENCODED]
)
def test_density_category_and_findings_survive_the_encoding(
    normalizer: Normalizer, text: str, data: bytes, code: str | None
) -> None:
    expected = normalizer.normalize(text, id="r")
    assert expected.density is not None and expected.birads is not None and expected.findings
    report = normalizer.normalize(data, id="r")
    assert report.error is None
    assert _content(report) == _content(expected)
    assert [w[:4] for w in report.warnings] == ([code] if code else [])


def test_a_spanish_iso_8859_1_report_keeps_its_accented_words(normalizer: Normalizer) -> None:
    report = normalizer.normalize(SPANISH.encode("iso-8859-1"), id="es")
    assert report.language == "es"
    assert report.density is not None and report.density.category.value == "C"
    assert report.birads is not None and report.birads.category.value == "4"
    (mass,) = report.findings
    assert mass.type.value == "mass" and mass.laterality is not None
    assert mass.laterality.value == "left" and [m.value for m in mass.descriptors.margin] == [
        "spiculated"
    ]
    assert mass.evidence.text == "nódulo"  # the accented word, read as written
    assert mass.location.quadrant is not None and mass.location.quadrant.value == "UOQ"
    assert report.recommendation is not None and report.recommendation.value == "biopsy"


def test_a_cp1252_guess_is_named() -> None:
    text, warning = decode_report_bytes(ENGLISH_CP1252.encode("cp1252"))
    assert text == ENGLISH_CP1252
    assert warning == "W001: input is not UTF-8; decoded as cp1252 (guessed)"


def test_utf8_with_a_few_legacy_bytes_keeps_both() -> None:
    data = "Paciente de 61 años; ".encode() + "nódulo en la mama derecha.".encode("cp1252")
    text, warning = decode_report_bytes(data)
    assert text == "Paciente de 61 años; nódulo en la mama derecha."
    assert warning is not None and warning.startswith("W001") and "1 stray byte " in warning


def test_undecodable_characters_are_replaced_with_a_warning() -> None:
    data = codecs.BOM_UTF16_LE + SPANISH.encode("utf-16-le") + b"\x00\xd8"  # a lone surrogate
    text, warning = decode_report_bytes(data)
    assert text == SPANISH + "\ufffd"
    assert warning is not None and warning.startswith("W003: 1 character could not be decoded")


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x10\x20\x00\x30\x40")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


BINARY = [
    ("random", os.urandom(4096), "control characters or NUL"),
    ("random-short", bytes(range(256)) * 2, "control characters or NUL"),
    ("png", _png(), "a PNG image"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "a PDF"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64), "a JPEG image"),
    ("docx", b"PK\x03\x04\x14\x00\x06\x00" + bytes(64), "a ZIP archive"),
    ("dicom", bytes(128) + b"DICM" + bytes(64), "a DICOM file"),
    ("nul-heavy", b"\x00\x00\x01\x00" * 500, "not text"),
    ("int16-samples", struct.pack("<600h", *range(-300, 300)), "not text"),
    ("utf-16-mark-over-binary", codecs.BOM_UTF16_LE + b"\xfa\xff\xfe" * 500, "not text"),
]


@pytest.mark.parametrize(("data", "says"), [b[1:] for b in BINARY], ids=[b[0] for b in BINARY])
def test_binary_input_is_refused_with_a_typed_error(
    normalizer: Normalizer, data: bytes, says: str
) -> None:
    with pytest.raises(ReportDecodeError, match=says) as caught:
        decode_report_bytes(data)
    error = caught.value
    assert isinstance(error, ReportParseError) and error.code == "E023"
    assert error.fix  # says what to do
    # a batch records it and goes on
    record = normalizer.normalize_safe(("bin", data))
    assert record.error is not None and record.error.startswith("E023: the report ")


def test_the_error_never_contains_the_text() -> None:
    secret = "Ximena Quispe-Huaman"
    data = ("\x01\x02\x03 " + secret + " \x04\x05\x06\x07\x08").encode() * 5
    with pytest.raises(ReportDecodeError) as caught:
        decode_report_bytes(data, what="gold file")
    assert secret not in str(caught.value) and "Quispe" not in str(caught.value)
    assert str(caught.value).startswith("E023: the gold file is not text")


def test_a_few_control_characters_are_text() -> None:
    framed = "\x0b\x02" + SPANISH + "\x03\x1c\r"  # HL7 MLLP and STX/ETX framing
    assert decode_report_bytes(framed.encode()) == (framed, None)


def test_empty_and_ascii_take_the_fast_path() -> None:
    assert decode_report_bytes(b"") == ("", None)
    assert decode_report_bytes(b"ACR B. BI-RADS 1.") == ("ACR B. BI-RADS 1.", None)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (codecs.BOM_UTF8 + b"id,text", TextEncoding("utf-8", 3)),
        (codecs.BOM_UTF16_LE + "id,text".encode("utf-16-le"), TextEncoding("utf-16-le", 2)),
        (codecs.BOM_UTF32_LE + "id,text".encode("utf-32-le"), TextEncoding("utf-32-le", 4)),
        (codecs.BOM_UTF32_BE + "id,text".encode("utf-32-be"), TextEncoding("utf-32-be", 4)),
        ("id,text\nr1,ACR B".encode("utf-16-be"), TextEncoding("utf-16-be", 0)),
        (b"id,text\nr1,ACR B", None),
        ("id,texto\nr1,Categoría".encode("latin-1"), None),
    ],
)
def test_sniff_unicode(head: bytes, expected: TextEncoding | None) -> None:
    assert sniff_unicode(head) == expected

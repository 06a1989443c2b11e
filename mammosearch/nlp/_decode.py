"""Report bytes to text: UTF-8, byte-order marks, UTF-16/32, detected legacy code pages; binary
input refused.

:func:`decode_report_bytes` is the one place where report bytes become text. In order:

1. a known binary signature (PNG, JPEG, GIF, TIFF, PDF, ZIP/Office, OLE2, gzip, DICOM) is
   refused with :class:`~mammosearch.errors.ReportDecodeError`;
2. a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) names the encoding;
3. valid UTF-8 without control characters is returned as it is (the fast path: one
   ``bytes.decode`` and one ``bytes.translate`` scan, about a microsecond for a report);
4. UTF-16/32 without a byte-order mark is recognised by its NUL bytes in alternate positions
   (a guess: warning ``W001``);
5. data with many control or NUL bytes is refused as binary;
6. UTF-8 with a few bytes of another encoding (text pasted together) keeps its UTF-8 and reads
   the stray bytes as cp1252 (``W001``);
7. anything else is a legacy code page that charset-normalizer detects, among the Western
   European ones first (cp1252, latin-1, ISO-8859-15, Mac Roman, DOS cp850: those of English and
   Spanish reports; an unrestricted detector reads short Spanish text as Central European, ``ñ``
   as ``ń``), then among all (``W001``); when nothing fits, the input is refused.

Text decoded by a guess or with a byte-order mark is checked once more: when more than 5% of its
characters are controls, unassigned, private-use or replaced, it was not text in that encoding
and is refused. Characters that cannot be decoded are replaced by U+FFFD with warning ``W003``.
Messages name what was wrong and what to do; they never contain the input's text.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import NamedTuple

from mammosearch.errors import ReportDecodeError

__all__ = ["TextEncoding", "decode_report_bytes", "sniff_unicode"]


class TextEncoding(NamedTuple):
    """A Unicode encoding found at the start of some bytes.

    Attributes:
        codec: Python codec name (``utf-8``, ``utf-16-le``, ``utf-16-be``, ``utf-32-le``,
            ``utf-32-be``).
        bom: Length of the byte-order mark that starts the bytes; 0 when the encoding was
            recognised without one (a guess).
    """

    codec: str
    bom: int


_BOMS = (  # UTF-32 LE first: its mark starts with UTF-16 LE's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx, .xlsx or .odt document)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 document (.doc or .xls)"),
    (b"\x1f\x8b", "a gzip archive"),
)
# C0 controls that text never holds (tab, line and form feeds, carriage return, DOS end of
# file, escape and the information separators of HL7 framing are allowed), NUL and DEL.
_SIGNATURE_STARTS = tuple(signature for signature, _ in _SIGNATURES)
_BOM_STARTS = tuple(bom for bom, _ in _BOMS)
_CONTROL_CHARS = "\x00-\x08\x0e-\x19\x7f"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_CONTROL_BYTES = bytes(range(0x09)) + bytes(range(0x0E, 0x1A)) + b"\x7f"
_ESCAPED = re.compile("[\udc80-\udcff]")
_VALID_NON_ASCII = re.compile("[^\x00-\x7f\udc80-\udcff]")
_JUNK_SHARE = 0.05
_JUNK_SAMPLE = 1 << 16
_SNIFF = 4096
# Legacy code pages of English and Spanish reports, tried before any other.
_WESTERN = ("cp1252", "latin_1", "iso8859_15", "mac_roman", "cp850")


def _cp1252_or_latin1(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return chr(byte)


# Lone surrogates of ``surrogateescape`` (U+DC80..U+DCFF stand for bytes 0x80..0xFF) → cp1252.
_STRAY_BYTES = {0xDC00 + b: _cp1252_or_latin1(b) for b in range(0x80, 0x100)}


def sniff_unicode(head: bytes) -> TextEncoding | None:
    """The Unicode encoding that the start of some bytes declares or clearly is.

    Args:
        head: The first bytes (4 KiB are plenty).

    Returns:
        The encoding named by a byte-order mark, else UTF-16 or UTF-32 recognised by NUL bytes
        in alternate positions (``bom`` 0), else ``None`` (UTF-8 or a legacy code page: ASCII
        bytes mean ASCII characters).
    """
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return TextEncoding(codec, len(bom))
    wide = _wide_guess(head)
    return TextEncoding(wide, 0) if wide else None


def _wide_guess(data: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark: for text in a Latin script the high bytes of each
    code unit are NUL, so NULs crowd one position of every 2 (or 3 of every 4) bytes."""
    sample = data[:_SNIFF]
    n = len(sample) - len(sample) % 4
    if n < 8 or sample.count(0) < n // 8:
        return None
    share = [sample[k:n:4].count(0) / (n // 4) for k in range(4)]
    if share[2] > 0.9 and share[3] > 0.9 and share[0] < 0.1:
        return "utf-32-le"
    if share[0] > 0.9 and share[1] > 0.9 and share[3] < 0.1:
        return "utf-32-be"
    even, odd = (share[0] + share[2]) / 2, (share[1] + share[3]) / 2
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def decode_report_bytes(data: bytes, *, what: str = "report") -> tuple[str, str | None]:
    """Decode a report's bytes into text, never silently: see the module docstring.

    Args:
        data: The bytes as read.
        what: What the bytes are, for messages ("report", "gold file").

    Returns:
        The text and, when the encoding was guessed or characters were replaced, one warning
        (``W001: input is not UTF-8; decoded as ...`` or ``W003: ... replaced``).

    Raises:
        ReportDecodeError: The bytes are binary (an image, a document, random data) or text in
            no encoding that fits.
    """
    if data.startswith(_SIGNATURE_STARTS):
        kind = next(kind for signature, kind in _SIGNATURES if data.startswith(signature))
        raise _not_text(f"the {what} is {kind}, not text", what)
    if data[128:132] == b"DICM":
        raise _not_text(f"the {what} is a DICOM file, not text", what)
    if data.startswith(_BOM_STARTS):
        bom, codec = next((bom, codec) for bom, codec in _BOMS if data.startswith(bom))
        if codec != "utf-8":
            return _decode_unicode(data[len(bom) :], codec, what, guessed=False)
        data = data[len(bom) :]  # UTF-8: stray bytes of another code page are read as below
    text: str | None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # (control bytes never occur inside a UTF-8 sequence: counting bytes counts characters)
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if text is not None and not controls:
        return text, None  # the fast path: one decode, one C scan
    wide = _wide_guess(data)
    if wide is not None:
        return _decode_unicode(data, wide, what, guessed=True)
    if controls > _JUNK_SHARE * len(data):
        share = 100 * controls / len(data)
        raise ReportDecodeError(
            f"the {what} is not text: {share:.0f}% of its bytes are control characters or NUL",
            fix=f"pass the {what} as text (UTF-8 is best); a binary file cannot be read",
        )
    if text is not None:  # UTF-8 with a few control characters
        return text, None
    escaped = data.decode("utf-8", "surrogateescape")
    stray = len(_ESCAPED.findall(escaped))
    if stray <= len(_VALID_NON_ASCII.findall(escaped)):
        # Mostly UTF-8 with stray bytes of a legacy code page (texts pasted together).
        return escaped.translate(_STRAY_BYTES), (
            f"W001: input is not UTF-8; decoded as UTF-8 with {_count(stray, 'stray byte')} "
            "read as cp1252 (guessed)"
        )
    return _decode_legacy(data, what)


def _decode_unicode(data: bytes, codec: str, what: str, *, guessed: bool) -> tuple[str, str | None]:
    label = codec.upper()
    try:
        text, replaced = data.decode(codec), 0
    except UnicodeDecodeError:
        text = data.decode(codec, "replace")
        replaced = text.count("\ufffd") - data.decode(codec, "ignore").count("\ufffd")
    _check_text(text, what, label)
    if replaced:
        how = "guessed, no byte-order mark" if guessed else "named by its byte-order mark"
        return text, (
            f"W003: {_count(replaced, 'character')} could not be decoded as {label} ({how}) "
            "and were replaced by U+FFFD"
        )
    if guessed:
        return text, f"W001: input is not UTF-8; decoded as {label} (guessed: no byte-order mark)"
    return text, None


def _decode_legacy(data: bytes, what: str) -> tuple[str, str | None]:
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=list(_WESTERN)).best() or from_bytes(data).best()
    if best is None:
        raise ReportDecodeError(
            f"the {what} is not text in UTF-8, UTF-16, UTF-32 or a legacy code page that could "
            "be recognised",
            fix=f"save the {what} as UTF-8 text",
        )
    encoding = best.encoding
    try:
        text, replaced = data.decode(encoding), 0
    except UnicodeDecodeError:  # pragma: no cover - the detector decodes what it returns
        text = data.decode(encoding, "replace")
        replaced = text.count("\ufffd")
    _check_text(text, what, encoding)
    if replaced:  # pragma: no cover - as above
        return text, (
            f"W003: {_count(replaced, 'character')} could not be decoded as {encoding} "
            "(guessed) and were replaced by U+FFFD"
        )
    return text, f"W001: input is not UTF-8; decoded as {encoding} (guessed)"


def _check_text(text: str, what: str, label: str) -> None:
    """Refuse a decoding that is not text: too many controls, unassigned or private-use
    characters, lone surrogates or replacements."""
    sample = text[:_JUNK_SAMPLE]
    if not sample:
        return
    junk = sum(1 for c in sample if _is_junk(c))
    if junk > _JUNK_SHARE * len(sample):
        raise ReportDecodeError(
            f"the {what} is not text: read as {label}, {100 * junk / len(sample):.0f}% of its "
            "characters are controls, unassigned or undecodable",
            fix=f"pass the {what} as text (UTF-8 is best); a binary file cannot be read",
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _is_junk(char: str) -> bool:
    """A character that text in the right encoding does not hold."""
    if char == "\ufffd":
        return True
    if char < "\x20" or "\x7f" <= char <= "\x9f":
        return _CONTROL.match(char) is not None or char >= "\x7f"
    return unicodedata.category(char) in ("Cn", "Co", "Cs")


def _not_text(message: str, what: str) -> ReportDecodeError:
    return ReportDecodeError(
        message, fix=f"extract the {what}'s text from the file and pass that (UTF-8 is best)"
    )

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mammosearch.nlp._text import fold, prepare


def _span_of(prepared_text: str, needle: str) -> tuple[int, int]:
    start = prepared_text.index(needle)
    return start, start + len(needle)


@pytest.mark.parametrize(
    ("raw", "clean_has", "needle", "original_needle"),
    [
        ("FINDINGS:\\.br\\BI-RADS 2", "FINDINGS:\nBI-RADS 2", "BI-RADS 2", "BI-RADS 2"),
        ("A~~B: BI-RADS 1~C", "A\n\nB: BI-RADS 1\nC", "BI-RADS 1", "BI-RADS 1"),
        (
            "<p><b>IMPRESSION:</b> BI-RADS 4B</p>",
            "IMPRESSION: BI-RADS 4B",
            "BI-RADS 4B",
            "BI-RADS 4B",
        ),
        (
            "size &lt; 5 mm &amp; BI-RADS 3",
            "size < 5 mm & BI-RADS 3",
            "< 5 mm &",
            "&lt; 5 mm &amp;",
        ),
        ("**BI-RADS** 2", "BI-RADS 2", "BI-RADS 2", "BI-RADS** 2"),
        ("paciente de 57 aÃ±os, BI-RADS 2", "paciente de 57 años", "años", "aÃ±os"),
        ("line one\r\nline two", "line one\nline two", "one\nline", "one\r\nline"),
        ("heterog\u00e9neamente", "heterogéneamente", "é", "\u00e9"),
        (
            "heteroge\u0301neamente densas",
            "heterogéneamente densas",
            "géneamente",
            "ge\u0301neamente",
        ),
        ("tab\tand\u00a0nbsp", "tab and nbsp", "and nbsp", "and\u00a0nbsp"),
    ],
)
def test_clean_text_maps_back_to_input(
    raw: str, clean_has: str, needle: str, original_needle: str
) -> None:
    prepared = prepare(raw)
    assert clean_has in prepared.text
    start, end = _span_of(prepared.text, needle)
    o_start, o_end = prepared.to_original(start, end)
    assert raw[o_start:o_end] == original_needle


def test_plain_text_is_identity() -> None:
    prepared = prepare("Plain report. BI-RADS 1.")
    assert prepared.starts is None and prepared.text == prepared.original
    assert prepared.to_original(3, 7) == (3, 7)


def test_single_tilde_means_about() -> None:
    assert prepare("mass ~5 mm").text == "mass ~5 mm"


def test_unknown_entity_and_lone_angle_bracket_stay() -> None:
    raw = "a < b &bogus; c"
    assert prepare(raw).text == raw


def test_fold_keeps_length_and_strips_accents() -> None:
    assert fold("HETEROGÉNEAMENTE Ñandú – “x”") == 'heterogeneamente nandu - "x"'
    for text in ("İstanbul", "ß", "ﬁ", "Ǆ", "ΣΑΣ"):
        assert len(fold(text)) == len(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "BI-RADS 2",
                " ",
                "\n",
                "\\.br\\",
                "~",
                "<b>",
                "</p>",
                "&amp;",
                "Ã±",
                "é",
                "e\u0301",
                "\r\n",
                "**",
                "\t",
                "x",
                "ACR C",
                "<",
                "&",
            ]
        ),  # fmt: skip
        max_size=30,
    )
)
def test_offset_map_is_monotone_and_in_bounds(parts: list[str]) -> None:
    raw = "".join(parts)
    prepared = prepare(raw)
    assert len(prepared.folded) == len(prepared.text)
    if prepared.starts is None:
        assert prepared.text == raw
        return
    assert prepared.ends is not None
    assert len(prepared.starts) == len(prepared.ends) == len(prepared.text)
    last = 0
    for s, e in zip(prepared.starts, prepared.ends, strict=True):
        assert 0 <= s < e <= len(raw)
        assert s >= last
        last = s
    for needle in ("BI-RADS 2", "ACR C"):
        pos = prepared.text.find(needle)
        if pos >= 0:
            o = prepared.to_original(pos, pos + len(needle))
            assert raw[o[0] : o[1]] == needle

from __future__ import annotations

from mammosearch.nlp._text import prepare
from mammosearch.nlp.sections import Segmenter
from mammosearch.records import Laterality


def sentences(text: str) -> list[tuple[str, str, str | None]]:
    prepared = prepare(text)
    seg = Segmenter()(prepared.text, prepared.folded)
    return [
        (prepared.text[s.start : s.end], s.section, s.side.value if s.side else None)
        for s in seg.sentences
    ]


def test_headed_sections_and_side_headers() -> None:
    text = (
        "CLINICAL HISTORY: Screening.\n\nFINDINGS:\nRight Breast:\n- Spiculated mass.\n"
        "- No skin thickening.\n\nLeft Breast:\n- Normal.\n\nIMPRESSION: BI-RADS 4."
    )
    assert sentences(text) == [
        ("Screening.", "history", None),
        ("- Spiculated mass.", "findings", "right"),
        ("- No skin thickening.", "findings", "right"),
        ("- Normal.", "findings", "left"),
        ("BI-RADS 4.", "impression", None),
    ]


def test_spanish_headers_without_colon_and_caps() -> None:
    text = (
        "HALLAZGOS\nMamas densas.\nIMPRESIÓN DIAGNÓSTICA:\nBI-RADS 2.\nRECOMENDACIONES:\n- Control."
    )
    assert [s[1] for s in sentences(text)] == ["findings", "impression", "recommendation"]


def test_hl7_breaks_and_generic_header_reset_the_side() -> None:
    text = "FINDINGS:~Right breast: mass.~Left breast: none.~Axillary regions: no nodes."
    got = sentences(text)
    assert got[0] == ("mass.", "findings", "right")
    assert got[1] == ("none.", "findings", "left")
    assert got[2][2] is None  # "Axillary regions:" ends the left-breast block


def test_hard_wrapped_lines_are_one_sentence() -> None:
    text = (
        "A well-defined irregular soft opacity with spiculated margin seen in the upper\n"
        "quadrant suggests malignancy (BIRADS 4c).\nSkin normal."
    )
    got = [s[0] for s in sentences(text)]
    assert got[0].startswith("A well-defined") and got[0].endswith("(BIRADS 4c).")
    assert got[1] == "Skin normal."


def test_abbreviations_and_decimals_do_not_split() -> None:
    got = [
        s[0] for s in sentences("Mass of 1.4 cm, approx. 2 cm from Dr. Lee's marker. BI-RADS 4.")
    ]
    assert got == ["Mass of 1.4 cm, approx. 2 cm from Dr. Lee's marker.", "BI-RADS 4."]


def test_a_unit_ends_its_sentence_before_a_capital() -> None:
    got = [s[0] for s in sentences("Mass measuring 11 mm. Calcifications 2 cm. Asymmetry.")]
    assert got == ["Mass measuring 11 mm.", "Calcifications 2 cm.", "Asymmetry."]
    # a lower-case word goes on, and so do capitals throughout
    assert len(sentences("Nódulo de 5 mm. de diámetro.")) == 1
    assert len(sentences("NODULO DE 5 MM. DE DIAMETRO.")) == 1


def test_side_header_in_technique_starts_findings() -> None:
    text = "TECHNIQUE: CC and MLO.\nRIGHT BREAST: Oval mass.\nLEFT BREAST: Normal."
    got = sentences(text)
    assert got[1] == ("Oval mass.", "findings", "right")
    assert got[2] == ("Normal.", "findings", "left")


def test_sentence_lookup() -> None:
    prepared = prepare("One. Two.")
    seg = Segmenter()(prepared.text, prepared.folded)
    second = seg.at(6)
    assert second is not None and prepared.text[second.start : second.end] == "Two."
    assert seg.at(4) is None  # the blank between sentences
    assert Laterality("left") is Laterality.LEFT


def test_context_sections_end_with_their_line_or_paragraph() -> None:
    inline = sentences("COMPARISON: None.\nThe breasts are heterogeneously dense.")
    assert [s[1] for s in inline] == ["comparison", "findings"]
    block = sentences("HISTORY:\nScreening.\nNo complaints.\n\nScattered densities.")
    assert [s[1] for s in block] == ["history", "history", "findings"]
    wrapped = sentences(
        "HISTORY: 55-year-old woman with a family history of breast cancer, here for\n"
        "screening.\nBI-RADS 1."
    )
    assert [s[1] for s in wrapped] == ["history", "findings"]

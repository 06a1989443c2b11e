"""ContextRules on its own: clause bounds, each status and the cue windows, finality, templates.

Written against the survivors of the mutation check (bench/mutation.py, docs/MUTATION.md): the
assessment and density tests reach these rules through whole reports; here each bound is
pinned to the offset it must have.
"""

from __future__ import annotations

import pytest

from mammosearch.errors import ConfigError
from mammosearch.nlp._resources import load_data
from mammosearch.nlp.context import ContextRules, Status
from mammosearch.nlp.sections import Segmentation, Sentence

RULES = ContextRules()


def one_sentence(text: str, section: str = "findings") -> Segmentation:
    return Segmentation((Sentence(0, len(text), section, None),))


def span(text: str, mention: str = "bi-rads 2") -> tuple[int, int]:
    start = text.index(mention)
    return start, start + len(mention)


def status(text: str, mention: str = "bi-rads 2", section: str = "findings") -> Status:
    return RULES.status(text, one_sentence(text, section), *span(text, mention))


def test_clause_is_cut_at_the_breaks_around_the_mention() -> None:
    text = "mass seen, now bi-rads 2 benign; follow"
    start, end = span(text)
    # "now" is a break word: the clause starts after it, and ends at the semicolon
    assert RULES.clause(text, one_sentence(text), start, end) == (text.index("now") + 3,
                                                                  text.index(";"))  # fmt: skip
    plain = "bi-rads 2 benign"
    assert RULES.clause(plain, one_sentence(plain), 0, 9) == (0, len(plain))


def test_clause_windows_and_sentence_bounds() -> None:
    text = "x" * 200 + " bi-rads 2 " + "y" * 200
    start, end = span(text)
    seg = one_sentence(text)
    assert RULES.clause(text, seg, start, end) == (start - 90, end + 60)
    # a break past the window does not reach back into it
    assert RULES.clause(text + ", z", one_sentence(text + ", z"), start, end)[1] == end + 60
    # the sentence bounds cut the windows; outside every sentence the text's bounds do
    inner = Segmentation((Sentence(150, start + 20, "findings", None),))
    assert RULES.clause(text, inner, start, end) == (150, start + 20)
    assert RULES.clause(text, Segmentation(()), start, end) == (start - 90, end + 60)
    # a mention running past its sentence keeps its own end as the bound
    short = Segmentation((Sentence(150, start + 3, "findings", None),))
    assert RULES.clause(text, short, start, end) == (150, end)
    # the last break before the mention opens the clause
    two = "a, b, c bi-rads 2"
    assert RULES.clause(two, one_sentence(two), *span(two)) == (two.rindex(",") + 1, len(two))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("categoria bi-rads 2 benigno", Status.CURRENT),
        ("no bi-rads 2", Status.NEGATED),
        ("no sugerente de bi-rads 2", Status.NEGATED),
        ("segun el sistema bi-rads 2", Status.EXPLANATORY),
        ("estudio previo con bi-rads 2", Status.PRIOR),  # prior subject anywhere in the clause
        ("compared with bi-rads 2", Status.PRIOR),  # prior cue close before
        ("previous bi-rads 2", Status.PRIOR),  # prior word right before
        ("bi-rads 2 in 2019", Status.PRIOR),  # prior cue right after
        ("bi-rads 2 indica hallazgo benigno", Status.WEAK_EXPLANATORY),
        ("no previous bi-rads 2", Status.PRIOR),  # negation must end right before
        ("{bi-rads 2 | bi-rads 3}", Status.TEMPLATE),
    ],
)
def test_status_of_each_kind(text: str, expected: Status) -> None:
    assert status(text) is expected


def test_prior_sections_make_every_mention_prior() -> None:
    assert status("bi-rads 2", section="comparison") is Status.PRIOR
    assert status("bi-rads 2", section="history") is Status.PRIOR
    assert status("bi-rads 2", section="impression") is Status.CURRENT


def test_status_outside_every_sentence_uses_the_whole_text() -> None:
    text = "no bi-rads 2"
    assert RULES.status(text, Segmentation(()), *span(text)) is Status.NEGATED


def test_prior_cue_windows_count_back_from_the_mention() -> None:
    # prior_before ("compared with") within 45 characters; prior_adjacent ("prior") within 25
    for cue, window in (("compared with", 45), ("prior", 25)):
        near = cue + " " + "x" * (window - len(cue) - 1) + "bi-rads 2"
        far = cue + " " + "x" * (window - len(cue)) + "bi-rads 2"
        assert status(near) is Status.PRIOR, cue
        assert status(far) is Status.CURRENT, cue


def test_value_end_moves_the_after_context() -> None:
    text = "bi-rads 2 y 3 indica benignidad"
    start, end = span(text)
    value_end = text.index(" indica")
    assert RULES.status(text, one_sentence(text), start, end) is Status.CURRENT
    assert (RULES.status(text, one_sentence(text), start, end, value_end=value_end)
            is Status.WEAK_EXPLANATORY)  # fmt: skip
    # the clause reaches past the value list
    long = "bi-rads 2" + " y 3" * 20 + " indica benignidad"
    start, end = span(long)
    stated_end = long.index(" indica")
    assert (RULES.status(long, one_sentence(long), start, end, value_end=stated_end)
            is Status.WEAK_EXPLANATORY)  # fmt: skip


def test_is_final_looks_back_80_characters_within_the_sentence() -> None:
    text = "evaluacion final: bi-rads 4"
    seg = one_sentence(text)
    assert RULES.is_final(text, seg, text.index("bi-rads"))
    assert not RULES.is_final(text, seg, text.index("final"))
    far = "evaluacion final " + "x" * 70 + " bi-rads 4"
    assert not RULES.is_final(far, one_sentence(far), far.index("bi-rads"))
    near = "evaluacion final " + "x" * 60 + " bi-rads 4"
    assert RULES.is_final(near, one_sentence(near), near.index("bi-rads"))
    # a cue in an earlier sentence does not count
    two = "evaluacion final. bi-rads 4"
    split = Segmentation((Sentence(0, 17, "impression", None), Sentence(18, len(two), "impression",
                                                                         None)))  # fmt: skip
    assert not RULES.is_final(two, split, two.index("bi-rads"))


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("{bi-rads 2 | bi-rads 3}", True),
        ("[bi-rads 2 / bi-rads 3]", True),
        ("{bi-rads 2 ...}", True),
        ("{bi-rads 2 \u2026}", True),
        ("{bi-rads 2}", False),  # a brace without alternatives
        ("{a | b} bi-rads 2", False),  # closed before the mention
        ("{bi-rads 2 | no closer", False),
        ("{a |\nbi-rads 2 | b}", False),  # opened on another line
        ("{bi-rads 2\n| b}", False),  # closed on another line
        ("bi-rads 2 {a | b}", False),  # opened after the mention
        ("(bi-rads 2 | bi-rads 3)", False),  # parentheses are not template choices
        ("x\n{bi-rads 2 | bi-rads 3}\ny", True),
        ("\n{bi-rads 2 | bi-rads 3}", True),
        ("{a} {bi-rads 2 | b}", True),  # the last opener before the mention counts
        ("x\n{a\nbi-rads 2 | b}", False),  # the opener must be on the mention's line
        ("{bi-rads 2 | b\nc}\nd", False),  # so must the closer
        ("{bi-rads 2} | x}", False),  # the first closer after the mention ends the choice
        ("{x [bi-rads 2 | b]", True),  # an unclosed brace, then brackets
        ("{|bi-rads 2}", True),
    ],
)
def test_in_template(text: str, inside: bool) -> None:
    assert ContextRules.in_template(text, *span(text)) is inside


def test_status_sees_a_template_after_an_earlier_closed_brace() -> None:
    assert status("{a} x {bi-rads 2 | bi-rads 3}") is Status.TEMPLATE


def test_rules_come_from_the_data_given() -> None:
    data = load_data("context.json")
    rules = ContextRules({**data, "negation_before": ["\\bnope\\W*$"]})
    text = "nope bi-rads 2"
    assert rules.status(text, one_sentence(text), *span(text)) is Status.NEGATED
    assert ContextRules().status(text, one_sentence(text), *span(text)) is Status.CURRENT
    rules = ContextRules({**data, "final_before": ["\\bzzz"]})
    text = "zzz bi-rads 4"
    assert rules.is_final(text, one_sentence(text), text.index("bi-rads"))


@pytest.mark.parametrize("key", ["clause_breaks", "prior_subject", "final_before"])
def test_an_invalid_cue_names_its_file(key: str) -> None:
    data = load_data("context.json")
    bad = "(" if key == "clause_breaks" else ["("]
    with pytest.raises(ConfigError, match="^E010: invalid pattern in context.json: "):
        ContextRules({**data, key: bad})

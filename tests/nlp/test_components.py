"""The spaCy face of the normalizer: factories, doc annotations, serialisation."""

from __future__ import annotations

from pathlib import Path

import spacy

from mammosearch.nlp import build_pipeline, normalize
from mammosearch.nlp._resources import load_data
from mammosearch.nlp.components import PIPE_NAMES, prepared_of


def test_factories_are_registered_and_ordered() -> None:
    nlp = build_pipeline("es")
    assert tuple(nlp.pipe_names) == PIPE_NAMES
    for name in PIPE_NAMES:
        assert name in spacy.registry.factories.get_all() or nlp.has_factory(name)


def test_doc_annotations_match_normalize() -> None:
    text = "HALLAZGOS:\nMamas heterogéneamente densas (ACR tipo c).\n\nCONCLUSIÓN: BI-RADS 4A."
    nlp = build_pipeline("es")
    doc = nlp(text)
    assert [s.text.strip() for s in doc.sents] == [
        "HALLAZGOS:",
        "Mamas heterogéneamente densas (ACR tipo c).",
        "CONCLUSIÓN:",
        "BI-RADS 4A.",
    ]
    assert {(s.text, s.label_) for s in doc.spans["density"]} == {
        ("heterogéneamente densas", "C"),
        ("ACR tipo c", "C"),
    }
    assert [(s.text, s.label_) for s in doc.spans["birads"]] == [("BI-RADS 4A", "4A")]
    report = doc._.mammo_report
    direct = normalize(text, id=report.id)
    assert report.to_dict() | {"language": None} == direct.to_dict() | {"language": None}


def test_analysis_text_maps_back_for_markup() -> None:
    nlp = build_pipeline("en")
    text = "<p>IMPRESSION: <b>BI-RADS 2</b></p>"
    doc = nlp(text)
    assert "<" not in doc.text
    span = doc.spans["birads"][0]
    prepared = prepared_of(doc)
    start, end = prepared.to_original(span.start_char, span.end_char)
    assert text[start:end] == "BI-RADS 2"
    assert doc._.mammo_report.birads.evidence.text == "BI-RADS 2"


def test_docs_serialise(tmp_path: Path) -> None:
    nlp = build_pipeline("en")
    doc = nlp("Extremely dense. BI-RADS 0.")
    data = doc.to_bytes()
    back = spacy.tokens.Doc(nlp.vocab).from_bytes(data)
    assert back._.mammo_report.birads.category.value == "0"
    assert [s.label_ for s in back.spans["density"]] == ["D"]


def test_pipeline_round_trips_through_disk(tmp_path: Path) -> None:
    nlp = build_pipeline("en")
    data = load_data("density.json")
    data["vague"] = []  # a customised rule file survives the trip
    nlp.replace_pipe("mammo_density", "mammo_density", config={"data": {"density": data}})
    nlp.to_disk(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "mammo_density" / "density.json").is_file()
    loaded = spacy.load(tmp_path / "pipe")
    assert tuple(loaded.pipe_names) == PIPE_NAMES
    assert loaded.get_pipe("mammo_density").data["density"]["vague"] == []
    doc = loaded("The breasts are dense. Heterogeneously dense (ACR C). BI-RADS 1.")
    assert doc._.mammo_report.density.category.value == "C"
    warnings = loaded("The breasts are dense.")._.mammo_report.warnings
    assert not any(w.startswith("W101") for w in warnings)

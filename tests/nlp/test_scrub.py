"""PHI scrubbing of report text: what goes, what stays, recall on PHI-laden generated reports,
no BI-RADS term lost on real reports, and the jobs that scrub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mammosearch.nlp import normalize
from mammosearch.nlp.scrub import score_scrubbing, scrub
from mammosearch.samples.phi import generate_phi_reports
from tests.conftest import PHI_CANARY, shared_path

EN = (
    "Patient: Maria Lopez Garcia  MRN: 12345678  DOB: 03/04/1931. Age: 93. Referring physician: "
    "Dr. John O'Neill. Bilateral mammography at St. Mary General Hospital on March 12, 2024. The "
    "breasts are heterogeneously dense (ACR C). Right breast: oval mass 12 mm at 10 o'clock. "
    "BI-RADS 4A. Reported by Jane Doe, MD. Phone (212) 555-0187, jdoe@mercy.org. Address: 123 "
    "Main Street, Springfield, IL 62704."
)
ES = (
    "PACIENTE: ROSA MARTINEZ PEREZ. NHC 612345678. Nº de historia 998877. Fecha: 12 de marzo de "
    "2024. Hospital Universitario La Paz. Mamas heterogéneamente densas (ACR c). Sin lesiones "
    "sospechosas. BI-RADS 2. Firmado electrónicamente por Dra. Ana Pérez Ruiz. Tel. 91 234 56 78. "
    "Domicilio: Calle de Alcalá 45, 3º B, 28014 Madrid. Paciente de 95 años."
)


def _gone_and_kept(text: str, gone: list[str], kept: list[str]) -> str:
    """The scrubbed text, once every ``gone`` value is out of it and every ``kept`` one in."""
    result = scrub(text)
    for value in gone:
        assert value not in result.text, value
    for value in kept:
        assert value in result.text, value
    return result.text


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        (EN, ["Maria", "Lopez", "12345678", "1931", "93", "O'Neill", "Mary General", "March 12",
              "Jane Doe", "555-0187", "jdoe@", "Main Street", "62704"],
         ["heterogeneously dense (ACR C)", "oval mass 12 mm at 10 o'clock", "BI-RADS 4A",
          "Age: 90+", "Reported by [NAME], MD"]),
        (ES, ["ROSA", "MARTINEZ", "612345678", "998877", "marzo", "La Paz", "Ana", "Pérez",
              "234 56 78", "Alcalá", "28014", "95"],
         ["Mamas heterogéneamente densas (ACR c)", "BI-RADS 2", "Paciente de 90+ años",
          "NHC [ID]", "Dra. [NAME]"]),
    ],
)  # fmt: skip
def test_phi_goes_and_birads_content_stays(text: str, gone: list[str], kept: list[str]) -> None:
    scrubbed = _gone_and_kept(text, gone, kept)
    before, after = normalize(text), normalize(scrubbed)
    assert after.density == before.density.__class__(
        before.density.category, after.density.evidence, before.density.laterality
    )  # same category; the evidence now indexes the scrubbed text
    assert after.birads is not None and after.birads.category == before.birads.category
    evidence = after.density.evidence
    assert scrubbed[evidence.start : evidence.end] == evidence.text


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        # a labelled address goes to the end of its value, past abbreviations ("Gral.")
        ("Dirección: Calle Gral. Aquino Nº 812, barrio Jara, San Pedro del Norte\nMamas densas.",
         ["Aquino", "812", "Jara", "San Pedro", "Norte"], ["Mamas densas."]),
        # a corner ("c/") and a town of common words after a street address
        ("Avda. Los Lirios 77 c/ Tres Bocas, Puerto Nuevo. Mamografía: mamas densas.",
         ["Lirios", "77", "Tres Bocas", "Puerto Nuevo"], ["[ADDRESS]. Mamografía: mamas densas."]),
        # parts of an address named by their own words
        ("Calle Sauce 9, colonia Centro, CP 54120. Mamas grasas.",
         ["Sauce", "colonia Centro", "54120"], ["Mamas grasas."]),
        # no street type, but a town, a state and a ZIP code
        ("Seen at 4410 Maplecrest, Dunmore, PA 18512\nBreasts are almost entirely fatty.",
         ["4410", "Maplecrest", "Dunmore", "18512"], ["Breasts are almost entirely fatty."]),
        # a town, a state and a postcode after an institution (Australia), a Canadian postcode
        ("Performed at Royal Prince Alfred Hospital, Camperdown NSW 2050.\nBreasts dense.",
         ["Alfred", "Camperdown", "2050"], ["Breasts dense."]),
        ("Toronto, ON M5V 2T6. Scattered fibroglandular densities.", ["Toronto", "M5V", "2T6"],
         ["Scattered fibroglandular densities."]),
        # a period after a whole word still ends the value
        ("Domicilio: Itauguá. Mamas heterogéneamente densas.", ["Itauguá"],
         ["Mamas heterogéneamente densas."]),
    ],
)  # fmt: skip
def test_addresses_go_whole(text: str, gone: list[str], kept: list[str]) -> None:
    _gone_and_kept(text, gone, kept)


def test_clinical_text_is_left_alone() -> None:
    text = (
        "BILATERAL SCREENING MAMMOGRAM. ACR B. No mass. BI-RADS 1: negative. Breast Imaging "
        "Reporting and Data System. Follow-up in 12 months. Mass 8 x 6 mm at 2 o'clock, 4 cm FN. "
        "Masses may 2 be seen. TÉCNICA: Proyecciones cráneo-caudal y oblicua. Control en 6 meses."
    )
    assert scrub(text).text == text


def test_breast_imaging_words_stay_in_capitals_and_in_identifier_zones() -> None:
    # "palpable" is a surname in a name list and none of the lexicons spells it out
    text = (
        "IMPRESSION: ACR BI-RADS CATEGORY 1. CLINICAL MANAGEMENT OF THE PALPABLE LUMP SHOULD BE "
        "BASED ON CLINICAL GROUNDS.\nAxilla: normal.\nTelorrea: no.\nSex: F  Age: 47Y"
    )
    assert scrub(text).text == text
    assert scrub("Age: 093Y").text == "Age: 90+"


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Compared with films from St. Luke's Presbyterian dated 2021.", ["Luke", "Presbyterian"]),
        ("Prior at Manchester Royal Infirmary. ACR B.", ["Manchester", "Royal", "Infirmary"]),
    ],
)
def test_institutions_named_by_their_tail(text: str, gone: list[str]) -> None:
    _gone_and_kept(text, gone, ["[INSTITUTION]"])


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        # a company's legal form names it
        ("Comparación con mamografía realizada en Diagnóstico Médico Integral S.A. Mamas densas.",
         ["Integral", "S.A."], ["Mamas densas."]),
        ("Referred by the GP of Riverside Family Practice. ACR B.", ["Riverside", "Family"], ["ACR B."]),
        # the town and state after an institution
        ("Outside mammogram from Northwell Health, Lake Success NY, dated 2023. BI-RADS 2.",
         ["Northwell", "Lake Success", "NY"], ["BI-RADS 2."]),
        ("Clínica del Country, Bogotá.\nMamas densas (ACR C).", ["Country", "Bogotá"], ["Mamas densas"]),
        ("Referring: Pacific Family Medicine, Honolulu HI. Breasts dense.", ["Pacific", "Honolulu", "HI"],
         ["Breasts dense."]),
        ("Seen at Mercy Hospital, Right breast mass.", ["Mercy"], ["Right breast mass."]),
        # a place after a place cue, in clinical text or not
        ("Paciente de 45 años, procedente de Ciudad del Este, Alto Paraná. Mamas densas.",
         ["Ciudad del Este", "Alto"], ["45 años", "Mamas densas."]),
        ("She lives in Little Rock. Scattered fibroglandular densities.", ["Little Rock"],
         ["Scattered fibroglandular densities."]),
        # after a title a common word is a name ("feldstein" is a frequent English word)
        ("Left breast mass discussed with Dr. Feldstein today.", ["Feldstein"], ["Left breast mass", "today."]),
        ("Findings called to Dr. Wallace at 11:15 by Dr. Naomi Feldstein.", ["Wallace", "Naomi", "Feldstein"],
         ["at 11:15 by Dr."]),
        ("Mamas densas. Nódulo informado a la Dra. Rosa Blanco por teléfono.", ["Rosa", "Blanco"],
         ["Nódulo informado", "por teléfono."]),
        ("Breasts dense. BI-RADS 1.\nReported by Dr. Naomi Feldstein, Consultant Radiologist.", ["Feldstein"],
         ["Consultant Radiologist."]),
        # a name in lower case takes the listed names next to it
        ("patient mary ann jones presented for screening.", ["mary", "ann", "jones"], ["presented"]),
    ],
)  # fmt: skip
def test_places_companies_and_lower_case_names(text: str, gone: list[str], kept: list[str]) -> None:
    _gone_and_kept(text, gone, kept)


def test_offsets_map_onto_the_scrubbed_text() -> None:
    text = "Dr. Ana Ruiz. ACR C. BI-RADS 2."
    result = scrub(text)
    assert result.text == "Dr. [NAME]. ACR C. BI-RADS 2."
    at = text.index("ACR")
    assert result.text[result.map_offset(at) :].startswith("ACR C")
    assert result.map_offset(text.index("Ruiz")) == result.text.index("[NAME]")
    assert result.counts == {"NAME": 1}
    assert [(s.kind, s.start, s.end) for s in result.spans] == [("NAME", 4, 12)]


def test_recall_on_phi_laden_generated_reports() -> None:
    reports = generate_phi_reports(200, seed=2026)
    scores = score_scrubbing([(r.text, list(r.spans)) for r in reports])
    for kind in ("ID", "NAME"):
        assert scores[kind]["recall"] >= 0.99, (kind, scores[kind])
    for kind, figures in scores.items():
        assert figures["recall"] >= 0.95, (kind, figures)
        assert figures["precision"] >= 0.95, (kind, figures)
    # no BI-RADS term lost: the scrubbed report reads as the report without PHI did
    for r in reports[:60]:
        clean, scrubbed = normalize(r.base.text), normalize(scrub(r.text).text)
        assert (scrubbed.density and scrubbed.density.category) == (
            clean.density and clean.density.category
        )
        assert (scrubbed.birads and scrubbed.birads.category) == (
            clean.birads and clean.birads.category
        )
        assert sorted((f.type, f.negated) for f in scrubbed.findings) == sorted(
            (f.type, f.negated) for f in clean.findings
        )


def _content(text: str) -> tuple[object, ...]:
    """Density, category and findings (with every attribute) of a report's text."""
    report = normalize(text)
    findings = sorted(
        repr((f.type, f.laterality, f.negated, f.uncertain, f.historical, f.descriptors))
        for f in report.findings
    )
    return (
        report.density and report.density.category,
        report.birads and report.birads.category,
        findings,
    )


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "folder",
    ["reports-examples", "reports-real/paraguay-es", "reports-real/dmid-en"],
)
def test_real_reports_keep_their_clinical_content(folder: str) -> None:
    """Density, category and findings are the same before and after scrubbing, on every
    report; the words removed (dates aside: they are PHI) stay under 1% of the words."""
    import re

    path = shared_path(*folder.split("/"))
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(path.rglob("*.txt"))}
    assert len(texts) >= 19
    words = removed = 0
    for report_id, text in texts.items():
        result = scrub(text)
        assert _content(result.text) == _content(text), report_id
        tokens = [m.span() for m in re.finditer(r"[^\W_]+", text)]
        words += len(tokens)
        removed += sum(
            1
            for a, b in tokens
            for span in result.spans
            if span.kind != "DATE" and span.start < b and span.end > a
        )
    assert removed <= 0.01 * words, (removed, words)


def test_scrubbing_is_fast_and_bounded() -> None:
    scrub("warm up Dr. Ana Ruiz")
    text = (EN + "\n") * 40  # ~13 KB
    start = time.perf_counter()
    result = scrub(text)
    assert time.perf_counter() - start < 2.0
    assert result.counts["NAME"] >= 80


def test_normalize_job_scrubs(tmp_path: Path) -> None:
    from mammosearch.config import load_settings
    from mammosearch.pipeline import normalize_reports

    source = tmp_path / "reports.jsonl"
    good = json.dumps({"id": "a", "text": f"Paciente: {PHI_CANARY}. ACR C. BI-RADS 2."})
    source.write_text(good + '\n{"id": "b", "text": \n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None), scrub=True)
    written = out.read_text(encoding="utf-8")
    assert "QUIXOTEVANS" not in written and "CANARY" not in written
    records = [json.loads(line) for line in written.splitlines()]
    assert records[0]["phi"] == {"NAME": 1, "ID": 1}
    assert records[0]["text"] == "Paciente: [NAME] MRN [ID]. ACR C. BI-RADS 2."
    assert records[0]["density"]["category"] == "C"
    assert summary.failed == 1 and "text" not in records[1]


def test_recognizers_on_their_anchor_lines_find_what_they_find_on_the_whole_text() -> None:
    """The recognizers that run only on the lines where their anchor is (a speed-up) find the
    same matches as over the whole text, at line ends and starts too."""
    from mammosearch.nlp._phi_patterns import gated_patterns, line_windows

    texts = [r.text for r in generate_phi_reports(200, seed=8)] + [
        "a@b.co\nx@y.org, z@w.net\n@\nq@", "12/03/2024\n1.5 cm 03-04-22\n7/2019\n2024-1-2.",
        "Flat 6A, 12 Main Street\n#4, Rose Lane\n3 Park Road\nſtreet 4 High ſt",
        "Apt 2, 14 Elm Road, Springfield, IL 62704\n\tunit 9, 2 Oak Ave", "House 1,\n2 King St",
        "12 Main\nStreet 4, Hill Road\n", "#12, x y Road.", "MAIN ST 12 Main St.",
        "12 Main ſtreet\n4 High STREET² x\nxFlat 2, 3 Main Road\nİstanbul 12 Park Road",
        "12 Rose Avenue\u0301, x\n9 Elm Roadway\nFLAT 1, 2 Oak Rd\n12 Kİng Street",
    ]  # fmt: skip
    anchored = [(pattern, anchor) for _, pattern, _, anchor in gated_patterns() if anchor]
    assert len(anchored) == 4
    for text in texts:
        for pattern, anchor in anchored:
            whole = [m.span("v") for m in pattern.finditer(text)]
            lines = [m.span("v") for low, high in line_windows(text, anchor)
                     for m in pattern.finditer(text, low, high)]  # fmt: skip
            assert lines == whole, (pattern.pattern[:40], text)


def test_the_workers_scrub(tmp_path: Path) -> None:
    """``normalize --scrub --workers 2``: the worker processes scrub (this process never loads
    the scrubber) and the lines are those of one process, in input order."""
    from mammosearch.nlp import Normalizer, decode_report_bytes
    from mammosearch.nlp import scrub as scrub_module

    texts = [r.text for r in generate_phi_reports(24, seed=5)]
    items: list[tuple[str, str | bytes | Exception]] = [(f"r{n}", t) for n, t in enumerate(texts)]
    items += [("bytes", texts[0].encode("cp1252", "replace")), ("long", "BI-RADS 2. " * 600),
              ("unread", OSError(5, "Input/output error"))]  # fmt: skip
    normalizer = Normalizer(max_chars=5_000)
    scrub_module._default.cache_clear()
    parallel = list(normalizer.normalize_lines(items, n_process=2, batch_size=5, scrub=True))
    assert scrub_module._default.cache_info().currsize == 0  # not scrubbed here
    serial = list(normalizer.normalize_lines(items, scrub=True))
    assert parallel == serial
    records = [json.loads(line.json) for line in parallel]
    assert [r["id"] for r in records] == [item[0] for item in items]
    assert all(r["text"] == scrub(t).text for r, t in zip(records, texts, strict=False))
    decoded = decode_report_bytes(texts[0].encode("cp1252", "replace"))[0]
    assert records[-3]["text"] == scrub(decoded).text
    assert "text" not in records[-2] and records[-2]["error"].startswith("E022")  # too long
    assert "text" not in records[-1] and records[-1]["error"].startswith("E020")
    first = scrub(texts[0])
    direct = json.loads(normalizer.normalize_line(("r0", first.text)).json)
    assert "text" not in direct
    assert records[0] == {**direct, "text": first.text, "phi": first.counts}


def test_a_report_that_fails_to_scrub_is_never_normalized(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrubber failure (injected) makes an error record: no text, nothing normalized, and the
    batch goes on."""
    from mammosearch.nlp import Normalizer
    from mammosearch.nlp import normalizer as module

    def boom(text: str) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(module, "_scrub", boom)
    (line,) = Normalizer().normalize_lines([("a", f"Patient {PHI_CANARY}. ACR C.")], scrub=True)
    record = json.loads(line.json)
    assert record["error"] == "E022: the report could not be normalized (ZeroDivisionError)"
    assert record["density"] is None and "text" not in record and PHI_CANARY not in line.json
    assert "ZeroDivisionError" in caplog.text and PHI_CANARY not in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "Dr. " * 10000,
        "12 Ana Bob Cid " * 5000,
        "Hospital Ana Bob " * 5000,
        "Flat 1A, " * 5000,
        "12 Main Street" + ", Ana Bob" * 5000,
        "Ana 10:00 Bob 12345 " * 5000,
        "1" * 100000,
        " " * 100000 + "x",
        ". x " * 10000,
    ],
    ids=[
        "titles",
        "addresses",
        "institutions",
        "flats",
        "tail",
        "mixed",
        "digits",
        "spaces",
        "cuts",
    ],
)
def test_scrubbing_time_grows_linearly(text: str) -> None:
    scrub("warm up")
    start = time.perf_counter()
    scrub(text)
    assert time.perf_counter() - start < 2.0

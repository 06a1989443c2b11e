from __future__ import annotations

import logging

import pytest

from mammosearch.errors import ReportParseError
from mammosearch.nlp import Normalizer, normalize, normalize_many, report_id
from mammosearch.records import NormalizedReport

CONTRACT_KEYS = set(NormalizedReport(id="x").to_dict())


def test_every_key_is_present_and_spans_index_the_input() -> None:
    text = "BREAST COMPOSITION: Scattered fibroglandular densities.\n\nIMPRESSION: BI-RADS 1."
    data = normalize(text, id="r1").to_dict()
    assert set(data) == CONTRACT_KEYS
    assert data["id"] == "r1" and data["language"] == "en"
    for key in ("density", "birads"):
        ev = data[key]["evidence"]
        assert text[ev["start"] : ev["end"]] == ev["text"]
    assert data["standardized_text"].startswith("Breast composition: ACR B")


def test_id_defaults_to_a_hash_of_the_text() -> None:
    text = "BI-RADS 1"
    assert normalize(text).id == report_id(text)
    assert "BI-RADS" not in report_id(text)


def test_bytes_input_with_legacy_encoding() -> None:
    raw = "Mamas heterogéneamente densas. BI-RADS 2.".encode("cp1252")
    report = normalize(raw, id="b1")
    assert report.density is not None and report.density.category.value == "C"
    assert any(w.startswith("W001") for w in report.warnings)
    ev = report.density.evidence
    assert raw.decode("cp1252")[ev.start : ev.end] == ev.text


def test_empty_report_is_fine() -> None:
    report = normalize("", id="empty")
    assert report.error is None and report.density is None and report.birads is None
    assert any(w.startswith("W002") for w in report.warnings)


def test_bad_input_raises_a_typed_error() -> None:
    with pytest.raises(ReportParseError, match="str or bytes"):
        normalize(42)  # type: ignore[arg-type]
    with pytest.raises(ReportParseError, match="the limit is"):
        Normalizer(max_chars=10).normalize("x" * 11)


def test_stream_keeps_order_and_survives_bad_records() -> None:
    items: list[tuple[str, str | bytes | Exception]] = [
        ("a", "BI-RADS 1"),
        ("b", OSError(5, "Input/output error")),
        ("c", "BI-RADS 3"),
        ("d", b"ACR C"),
    ]
    out = list(Normalizer(max_chars=1_000).normalize_many(items))
    assert [r.id for r in out] == ["a", "b", "c", "d"]
    assert out[1].error is not None and out[1].error.startswith("E020")
    assert [r.birads.category.value if r.birads else None for r in out] == ["1", None, "3", None]
    assert out[3].density is not None


def test_unexpected_failures_become_records(monkeypatch: pytest.MonkeyPatch) -> None:
    normalizer = Normalizer()

    def boom(text: str | bytes, id: str | None = None) -> NormalizedReport:
        raise ZeroDivisionError

    monkeypatch.setattr(normalizer, "normalize", boom)
    (report,) = normalizer.normalize_many(["BI-RADS 1"])
    assert report.error == "E022: the report could not be normalized (ZeroDivisionError)"


@pytest.mark.slow
def test_two_processes_give_the_same_output_in_order() -> None:
    texts = [f"Report {i}. ACR {'ABCD'[i % 4]}. BI-RADS {i % 6}." for i in range(300)]
    items = [(f"r{i}", t) for i, t in enumerate(texts)]
    serial = [r.to_dict() for r in normalize_many(items)]
    parallel = [r.to_dict() for r in normalize_many(items, n_process=2, batch_size=16)]
    assert parallel == serial
    assert [r["id"] for r in parallel] == [f"r{i}" for i in range(300)]


def test_no_report_text_in_logs_or_errors(
    phi_canary: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mammosearch")
    normalizer = Normalizer(max_chars=200)
    items: list[tuple[str, str | bytes | Exception]] = [
        ("ok", f"Patient {phi_canary}. BI-RADS 2."),
        ("long", f"Patient {phi_canary}. " * 50),
        ("bad", ReportParseError("line 3 is not valid JSON")),
    ]
    out = list(normalizer.normalize_many(items))
    assert out[1].error is not None
    for report in out:
        assert phi_canary not in (report.error or "")
        assert all(phi_canary not in w for w in report.warnings)
    assert all(phi_canary not in r.getMessage() for r in caplog.records)

"""Hostile and broken inputs: each gives its typed error in bounded time and memory, and a batch
job skips and counts it without losing the good records."""

from __future__ import annotations

import csv
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammosearch.config import load_settings
from mammosearch.errors import InvalidDicomError, ReportParseError
from mammosearch.imaging import read_image
from mammosearch.nlp import normalize
from tests.conftest import PHI_CANARY, write_manifest
from tests.hostile import hostile_files

SECONDS = 2.0
PEAK_BYTES = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    return hostile_files(tmp_path_factory.mktemp("hostile"))


def _bounded(call: object) -> tuple[BaseException | None, float, int]:
    """Run ``call``; the exception it raised, seconds and the traced peak of allocations."""
    tracemalloc.start()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        call()  # type: ignore[operator]
    except BaseException as e:  # noqa: BLE001 - the test inspects whatever it raised
        error = e
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, seconds, peak


def test_every_hostile_image_gives_a_typed_error_quickly(
    corpus: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    assert len(corpus) >= 15
    for name, data in corpus:
        path = tmp_path / f"{PHI_CANARY} {name}.dcm"
        path.write_bytes(data)
        error, seconds, peak = _bounded(lambda p=path: read_image(p))
        assert isinstance(error, InvalidDicomError), f"{name}: {error!r}"
        assert seconds < SECONDS, f"{name}: {seconds:.2f} s"
        assert peak < PEAK_BYTES, f"{name}: {peak / 2**20:.0f} MiB"
        message = str(error)
        assert PHI_CANARY not in message and str(tmp_path) not in message, name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("truncated-pixel-data", "shorter than its header declares"),
        ("rows-columns-beyond-data", "shorter than its header declares"),
        ("rows-columns-huge", "the 50,000,000 accepted"),
        ("rle-rows-columns-huge", "the 50,000,000 accepted"),
        ("png-bomb", "the 50,000,000 accepted"),
        ("jpeg-bomb", "the 50,000,000 accepted"),
        ("rows-zero", "impossible dimensions"),
    ],
)
def test_forged_dimensions_are_refused_from_the_header(
    corpus: list[tuple[str, bytes]], name: str, expected: str
) -> None:
    data = dict(corpus)[name]
    with pytest.raises(InvalidDicomError, match=expected):
        read_image(data)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b"\xff\xfe\xfa" * 1000 + b"BI-RADS 2", "E023"),  # a UTF-16 mark over binary
        ("Mamas densas, categoría C. ".encode("latin-1") * 700, None),  # legacy, detected
        (("ACR B. " * 1_500_000).encode(), "E022"),
    ],
    ids=["non-text", "latin-1", "10MB"],
)
def test_hostile_reports(text: bytes, code: str | None) -> None:
    normalize("BI-RADS 1")  # the bound is on the input: load the rules first
    normalize("categoría".encode("latin-1"))  # and import the legacy-encoding detector

    def run() -> None:
        normalize(text)

    error, seconds, peak = _bounded(run)
    assert seconds < SECONDS and peak < PEAK_BYTES
    if code is None:  # bytes that are not UTF-8 are decoded as a legacy code page, with a warning
        assert error is None
    else:
        assert isinstance(error, ReportParseError) and str(error).startswith(code)


def test_index_build_skips_and_counts_hostile_images(
    corpus: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    from mammosearch.pipeline import build_index
    from mammosearch.samples.phantoms import phantom

    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for n, density in enumerate("ABCD"):
        name = f"good{n}_RCC.png"
        Image.fromarray(phantom(density, "CC", "R", seed=n)).save(folder / name)
        rows.append({"image": f"images/{name}", "case_id": f"G{n}", "patient_id": f"G{n}",
                     "density": density})  # fmt: skip
    for n, (_, data) in enumerate(corpus):
        (folder / f"bad{n}.dcm").write_bytes(data)
        rows.append({"image": f"images/bad{n}.dcm", "case_id": f"B{n}", "patient_id": PHI_CANARY,
                     "density": "A"})  # fmt: skip
    manifest = tmp_path / "manifest.csv"
    write_manifest(manifest, rows)
    settings = load_settings(None, cache_dir=tmp_path / "cache")
    report = build_index(manifest, tmp_path / "index", settings=settings, embedder="radiomics.v1")
    assert report.indexed == 4
    assert report.skipped == len(corpus) and report.reasons == {"E021": len(corpus)}
    assert PHI_CANARY not in json.dumps(report.to_dict())


def test_normalize_job_skips_and_counts_hostile_reports(tmp_path: Path) -> None:
    from mammosearch.pipeline import normalize_reports

    source = tmp_path / "reports.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": "ACR C. BI-RADS 2."}),
        json.dumps({"id": "huge", "text": "ACR B. " * 40_000}),
        json.dumps({"id": "number", "text": 12345}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "ok2", "text": "Mamas densas. BI-RADS 1."}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records][:2] == ["ok1", "huge"] and records[-1]["id"] == "ok2"
    assert summary.ok == 2 and summary.failed == 3
    assert records[0]["density"]["category"] == "C" and records[-1]["birads"]["category"] == "1"


def test_a_huge_field_in_a_csv_of_reports_fails_only_that_record(tmp_path: Path) -> None:
    from mammosearch.pipeline import normalize_reports

    source = tmp_path / "reports.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerow(["a", "ACR A. BI-RADS 1."])
        writer.writerow(["b", "x" * 300_000])
        writer.writerow(["c", "ACR D. BI-RADS 2."])
    out = tmp_path / "out.jsonl"
    summary = normalize_reports(source, out, settings=load_settings(None))
    assert summary.ok == 2 and summary.failed == 1
    assert np.array_equal([json.loads(x)["id"] for x in out.read_text("utf-8").splitlines()],
                          ["a", "b", "c"])  # fmt: skip

"""The running app through gradio_client and raw HTTP: search, batch, About, safety."""

from __future__ import annotations

import csv
import http.client
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from mammosearch.errors import InputError
from mammosearch.pipeline import sample_reports_dir
from mammosearch.samples.reports import generate_reports
from mammosearch.ui import parse_auth, report_entities
from tests.conftest import PHI_CANARY
from tests.ui.conftest import Served, start

DENSE_REPORT = (
    "Bilateral digital mammography. The breasts are heterogeneously dense, which may obscure "
    "small masses. Right breast: no suspicious mass. Left breast: an oval circumscribed mass in "
    "the upper outer quadrant, 8 mm. No suspicious calcifications. BI-RADS 3: probably benign."
)


def _request(served: Served, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    """A raw request (the path is sent exactly as given, not normalised by a client)."""
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_api_exposes_search_and_normalize_only(client: Any) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == {"/search", "/normalize"}


def test_search_by_image(client: Any, query_image: Path) -> None:
    from mammosearch.ui.client import search_app

    result = search_app(client, images=[query_image], k=6)
    assert len(result["neighbours"]) == 6
    scores = [n["score"] for n in result["neighbours"]]
    assert scores == sorted(scores, reverse=True)
    density = result["density"]
    assert density["method"] in ("vote", "convnext", "probe")
    assert density["label"] in "ABCD"
    bar = result["bar"]
    assert bar["label"] == density["label"]
    assert {c["label"] for c in bar["confidences"]} == {"A", "B", "C", "D"}
    assert len(result["views"]) == 1 and "R CC" in result["views"][0]["caption"]
    assert result["terms"] == [] and result["standardized"] == ""
    # the gallery shows the neighbours' thumbnails, captioned with score and density
    assert len(result["gallery"]) == 6
    first = result["gallery"][0]
    assert Path(first["image"]).is_file()
    assert first["caption"].startswith(
        f"{scores[0]:.2f} · density {result['neighbours'][0]['label']}"
    )
    assert set(result["timings"]) == {"preprocess", "embed", "assess", "search"}
    assert result["embedder"] == "radiomics.v1"


def test_dense_phantom_gets_a_dense_vote(client: Any, query_image: Path) -> None:
    from mammosearch.ui.client import search_app

    result = search_app(client, images=[query_image], k=10)
    labels = [n["label"] for n in result["neighbours"]]
    assert sum(label in ("C", "D") for label in labels) >= 7, labels
    assert result["density"]["label"] in ("C", "D")


def test_search_by_text_highlights_terms(client: Any) -> None:
    from mammosearch.ui.client import search_app

    result = search_app(client, text=DENSE_REPORT, k=5)
    assert result["density"] == {
        "label": "C",
        "probabilities": {"A": 0.0, "B": 0.0, "C": 1.0, "D": 0.0},
        "method": "report",
        "confidence": 1.0,
    }
    assert len(result["neighbours"]) == 5 and result["views"] == []
    marked = {
        t["token"]: t["class_or_confidence"] for t in result["terms"] if t["class_or_confidence"]
    }
    assert any(cls == "density C" and "heterogeneously dense" in tok for tok, cls in marked.items())
    assert any(cls.startswith("BI-RADS 3") for cls in marked.values())
    assert any(cls.startswith("finding: mass") for cls in marked.values())
    assert any(cls.startswith("negated") for cls in marked.values())
    # the highlighted tokens rebuild the text exactly
    assert "".join(t["token"] for t in result["terms"]) == DENSE_REPORT
    assert "heterogeneously dense" in result["standardized"].lower()
    # the neighbours of a dense report are dense exams (the canonical text now also names the
    # negated findings, so the very best need not be of the same letter)
    assert all(n["label"] in ("C", "D") for n in result["neighbours"])


def test_the_query_report_is_shown_scrubbed(client: Any) -> None:
    from mammosearch.ui.client import search_app

    text = f"Patient: {PHI_CANARY}. Referring: Dr. Ana Ruiz. " + DENSE_REPORT
    result = search_app(client, text=text, k=3)
    shown = json.dumps(result, ensure_ascii=False)
    assert "QUIXOTEVANS" not in shown and "CANARY" not in shown and "Ruiz" not in shown
    rebuilt = "".join(t["token"] for t in result["terms"])
    assert rebuilt.startswith("Patient: [NAME] MRN [ID]. Referring: Dr. [NAME]. Bilateral")
    assert result["density"]["method"] == "report" and result["density"]["label"] == "C"


def test_search_by_image_and_text_with_filters(client: Any, query_image: Path) -> None:
    from mammosearch.ui.client import search_app

    result = search_app(
        client, images=[query_image, query_image], text=DENSE_REPORT, k=8,
        laterality="L", view="MLO", label="C",
    )  # fmt: skip
    assert result["density"]["method"] == "report"
    assert len(result["views"]) == 2
    assert result["neighbours"]
    for n in result["neighbours"]:
        assert (n["laterality"], n["view"], n["label"]) == ("L", "MLO", "C")


def test_exclude_patient_leaves_their_images_out(client: Any) -> None:
    from mammosearch.ui.client import search_app

    everyone = search_app(client, text=DENSE_REPORT, k=20)
    patient = everyone["neighbours"][0]["case_id"]  # the demo's case id is its patient id
    without = search_app(client, text=DENSE_REPORT, k=20, exclude_patient=patient)
    assert patient not in {n["case_id"] for n in without["neighbours"]}


def test_one_image_per_case(client: Any, demo_dir: Path) -> None:
    """The views of a case share its report, so a text query ranks them together; one image
    per case then gives k cases, each by its best image. Query views are merged by case: two
    views of one indexed exam each find their own image of it first."""
    from mammosearch.ui.client import search_app

    every = search_app(client, text=DENSE_REPORT, k=20, per_case=False)["neighbours"]
    ids = [n["case_id"] for n in every]
    assert len(set(ids)) < len(ids)  # the demo's cases have several views
    cases = search_app(client, text=DENSE_REPORT, k=5, per_case=True)["neighbours"]
    best: dict[str, dict[str, Any]] = {}
    for n in every:
        best.setdefault(n["case_id"], n)
    top = [(n["case_id"], n["score"]) for n in list(best.values())[:5]]
    assert [(n["case_id"], n["score"]) for n in cases] == top
    views = [demo_dir.parent / "corpus" / "images" / f"SYN-011_R{v}.png" for v in ("CC", "MLO")]
    merged = search_app(client, images=views, k=8, per_case=True)["neighbours"]
    assert len(merged) == 8 and len({n["case_id"] for n in merged}) == 8
    assert merged[0]["case_id"] == "SYN-011"


def test_search_errors_are_clear(client: Any, tmp_path: Path) -> None:
    from gradio_client.exceptions import AppError

    from mammosearch.ui.client import search_app

    with pytest.raises(AppError, match="give an image, a report text, or both"):
        search_app(client, text="   ")
    fake = tmp_path / f"{PHI_CANARY.split()[1]}.png"
    fake.write_bytes(b"this is not an image")
    with pytest.raises(AppError) as caught:
        search_app(client, images=[fake])
    message = str(caught.value)
    assert "E02" in message and PHI_CANARY.split()[1] not in message


def test_batch_normalization(client: Any, tmp_path: Path) -> None:
    from mammosearch.ui.client import normalize_file

    reports = generate_reports(12, seed=7)
    source = tmp_path / "reports.jsonl"
    lines = [json.dumps({"id": f"r{n}", "text": r.text}) for n, r in enumerate(reports)]
    source.write_text("\n".join([*lines, '{"id": "broken", "text": ']) + "\n", encoding="utf-8")
    out = normalize_file(client, source)
    assert "13 reports: 12 normalized, 1 failed" in out["summary"]
    assert out["table"]["headers"][:4] == ["id", "language", "density", "birads"]
    rows = out["table"]["data"]
    assert [r[0] for r in rows] == [f"r{n}" for n in range(12)] + ["line-13"]
    truth = [r.truth["density"] for r in reports]
    assert sum(r[2] == t for r, t in zip(rows, truth, strict=False)) >= 11
    records = [json.loads(line) for line in Path(out["jsonl"]).read_text("utf-8").splitlines()]
    assert len(records) == 13 and records[-1]["error"]
    with Path(out["csv"]).open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["id"] for r in table] == [r[0] for r in rows]


def test_batch_reads_reports_through_the_report_reader(client: Any, tmp_path: Path) -> None:
    """The batch tab decodes like `normalize`: a legacy row anywhere in a table with its
    warning, a UTF-16 table, an image in a .txt refused as one failed record (E023)."""
    from mammosearch.ui.client import normalize_file

    legacy = "Mamas extremadamente densas (ACR d). Nódulo espiculado en la mama derecha. BI-RADS 5."
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"id,text\nr1,ACR A. BI-RADS 1.\n" + f"r2,{legacy}\n".encode("cp1252"))
    wide = tmp_path / "wide.csv"
    wide.write_bytes(f"id,text\nr1,{legacy}\n".encode("utf-16"))
    image = tmp_path / "image.txt"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out = normalize_file(client, mixed)
    assert "2 reports: 2 normalized, 0 failed" in out["summary"]
    records = [json.loads(x) for x in Path(out["jsonl"]).read_text("utf-8").splitlines()]
    guessed = [[w for w in r["warnings"] if w.startswith("W001")] for r in records]
    assert guessed == [[], ["W001: input is not UTF-8; decoded as cp1252 (guessed)"]]
    assert records[1]["density"]["category"] == "D" and records[1]["findings"][0]["type"] == "mass"
    out = normalize_file(client, wide)
    assert out["table"]["data"][0][2:4] == ["D", "5"]
    out = normalize_file(client, image)
    assert "1 reports: 0 normalized, 1 failed" in out["summary"] and "E023" in out["summary"]


def test_batch_refuses_other_file_types(client: Any, tmp_path: Path) -> None:
    from gradio_client.exceptions import AppError

    from mammosearch.ui.client import normalize_file

    bad = tmp_path / "reports.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(AppError, match="Invalid file type"):
        normalize_file(client, bad)


def _upload(served: Served, path: Path) -> str:
    """Upload one file as the page does; its path on the server."""
    boundary = "mammosearchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, data = _request(
        served, "POST", "/gradio_api/upload", body,
        **{"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 200
    return str(json.loads(data)[0])


def _search_uploaded(served: Served, path: str, k: int = 5) -> list[Any]:
    """A raw /search call over an uploaded file; the outputs as the page receives them."""
    file = {"path": path, "meta": {"_type": "gradio.FileData"}}
    payload = {"data": [[file], "", k, 0.5, "any", "any", "any", "", False]}
    status, body = _request(
        served, "POST", "/gradio_api/call/search", json.dumps(payload).encode(),
        **{"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200
    _, stream = _request(served, "GET", f"/gradio_api/call/search/{json.loads(body)['event_id']}")
    assert b"event: complete" in stream, stream[-300:]
    return list(json.loads(stream.decode().split("data:")[-1]))


def test_an_upload_is_prepared_once(served: Served, query_image: Path, tmp_path: Path) -> None:
    """The second search with the same upload (other options) neither reads nor embeds it."""
    copy = tmp_path / "once_RCC.png"
    copy.write_bytes(query_image.read_bytes())
    uploaded = _upload(served, copy)
    first = _search_uploaded(served, uploaded, k=5)[6]
    again = _search_uploaded(served, uploaded, k=7)[6]
    assert first["timings"]["preprocess"] > 0 and first["timings"]["embed"] > 0
    assert again["timings"]["preprocess"] == 0 and again["timings"]["embed"] == 0
    assert len(again["neighbours"]) == 7
    assert [n["row_id"] for n in again["neighbours"][:5]] == [
        n["row_id"] for n in first["neighbours"]
    ]


def test_images_are_served_by_url_without_copies_or_names(
    served: Served, query_image: Path, tmp_path: Path
) -> None:
    """Neighbours are the index's own thumbnails by URL (no copy); the query view is written
    once under an opaque name; no URL carries a case id or the uploaded file's name."""
    from urllib.parse import unquote

    named = tmp_path / "PATIENT_DOE_RCC.png"
    named.write_bytes(query_image.read_bytes())
    outputs = _search_uploaded(served, _upload(served, named), k=6)
    views, gallery, summary = outputs[0], outputs[5], outputs[6]
    thumbs = served.engine.thumbnail_dir.resolve()
    urls = [item["image"]["url"] for item in gallery]
    for url, neighbour in zip(urls, summary["neighbours"], strict=True):
        served_path = Path(unquote(url.split("/gradio_api/file=", 1)[1]))
        assert served_path == thumbs / f"{neighbour['row_id']}.png"
        assert neighbour["case_id"] not in url
    view_url = views[0]["image"]["url"]
    assert "DOE" not in view_url and "PATIENT" not in view_url
    assert re.search(r"/views/[0-9a-f]{24}\.png$", view_url)
    for url in [*urls, view_url]:
        assert url.startswith(served.url.rstrip("/") + "/gradio_api/file=")
        status, data = _request(served, "GET", url.removeprefix(served.url.rstrip("/")))
        assert status == 200 and data.startswith(b"\x89PNG")


def test_the_example_exam_comes_from_the_index(served: Served) -> None:
    exam = served.engine.example_exam()
    assert exam is not None and exam["report_text"]
    by_thumbnail = {
        (served.engine.directory / r.thumbnail).resolve(): r
        for r in served.engine.index.store.all_rows()
    }
    rows = [by_thumbnail[Path(v["thumbnail"]).resolve()] for v in exam["views"]]
    assert len(rows) == 4 and len({r.case_id for r in rows}) == 1  # one whole exam
    assert rows[0].report_text == exam["report_text"]
    assert [(r.laterality, r.view) for r in rows] == [
        (v["laterality"].code, v["view"].value) for v in exam["views"]
    ]
    status, body = _request(served, "GET", "/config")
    config = body.decode()
    for sample in ("sample-01-en-screening.txt", "sample-02-es-diagnostica.txt"):
        first_line = (sample_reports_dir() / sample).read_text("utf-8").splitlines()[0]
        assert json.dumps(first_line, ensure_ascii=False)[1:-1] in config


def test_about_names_what_is_in_use(served: Served) -> None:
    status, body = _request(served, "GET", "/config")
    assert status == 200
    config = body.decode()
    about = served.engine.about()
    assert about["embedder"] == "radiomics.v1" and about["images"] == 96
    for value in ("radiomics.v1", "SYNTHETIC DEMO DATA", about["version"]):
        assert value in config


def test_report_entities_do_not_overlap() -> None:
    from mammosearch.nlp import Normalizer

    report = Normalizer().normalize(DENSE_REPORT).to_dict()
    entities = report_entities(report)
    assert entities and all(
        a["end"] <= b["start"] for a, b in zip(entities, entities[1:], strict=False)
    )
    for entity in entities:
        assert DENSE_REPORT[entity["start"] : entity["end"]].strip()


# ----------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/gradio_api/file=../../../../etc/passwd",
        "/gradio_api/file=..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gradio_api/file=/proc/self/environ",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/gradio_api/file=%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/gradio_api/file=..%5c..%5c..%5cetc%5cpasswd",
    ],
)
def test_path_traversal_is_refused(served: Served, path: str) -> None:
    status, body = _request(served, "GET", path)
    assert status in (403, 404)
    assert b"root:" not in body


def test_only_thumbnails_of_the_index_are_served(served: Served) -> None:
    directory = served.engine.directory.resolve()
    thumbnail = next(served.engine.thumbnail_dir.resolve().glob("*.png"))
    assert _request(served, "GET", f"/gradio_api/file={thumbnail}")[0] == 200
    for name in ("cases.sqlite", "manifest.json"):
        assert _request(served, "GET", f"/gradio_api/file={directory / name}")[0] == 403


@pytest.mark.parametrize(
    "path",
    ["/gradio_api/file=http://127.0.0.1:9/x.png", "/gradio_api/file=https://example.org/x.png",
     "/gradio_api/proxy=http://127.0.0.1:9/x"],
)  # fmt: skip
def test_the_server_fetches_no_url(served: Served, path: str) -> None:
    status, body = _request(served, "GET", path)
    assert status == 403 and b"does not fetch" in body


def _call_search_with_file(served: Served, path: str) -> tuple[int, bytes]:
    """A raw /search call whose file input names ``path`` instead of an upload."""
    file = {"path": path, "meta": {"_type": "gradio.FileData"}}
    payload = {"data": [[file], "", 5, 0.5, "any", "any", "any", "", False]}
    return _request(
        served, "POST", "/gradio_api/call/search", json.dumps(payload).encode(),
        **{"Content-Type": "application/json"},
    )  # fmt: skip


def test_a_file_input_naming_a_url_is_refused(served: Served) -> None:
    status, body = _call_search_with_file(served, "http://127.0.0.1:9/x.png")
    assert status == 403 and b"does not fetch" in body


def test_a_file_outside_the_uploads_is_refused(served: Served) -> None:
    status, body = _call_search_with_file(served, "/etc/passwd")
    assert status == 200
    event = json.loads(body)["event_id"]
    _, stream = _request(served, "GET", f"/gradio_api/call/search/{event}")
    assert b"event: error" in stream and b"root:" not in stream


def test_oversized_upload_is_refused(served: Served) -> None:
    boundary = "mammosearchboundary"
    big = b"\0" * (3 * 1024 * 1024)  # the test server takes 2 MB
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _ = _request(
        served, "POST", "/gradio_api/upload", body,
        **{"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert status == 413


def test_uploads_are_deleted_after_a_while(
    demo_dir: Path, ui_settings: Any, query_image: Path
) -> None:
    import time

    from mammosearch.ui.client import connect, search_app

    server = start(demo_dir, ui_settings, keep_files_s=2)
    try:
        search_app(connect(server.url), images=[query_image], k=3)
        uploads = Path(os.environ["GRADIO_TEMP_DIR"])
        deadline = time.monotonic() + 20
        while list(uploads.rglob(query_image.name)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not list(uploads.rglob(query_image.name))
    finally:
        server.app.close()
        server.engine.close()


def test_login_is_required_when_configured(demo_dir: Path, ui_settings: Any) -> None:
    from gradio_client.exceptions import AuthenticationError

    from mammosearch.ui.client import connect, search_app

    server = start(demo_dir, ui_settings, auth=[("reader", "s3cret-pass")])
    try:
        thumbnail = next(server.engine.thumbnail_dir.resolve().glob("*.png"))
        for method, path in [("GET", "/config"), ("GET", "/gradio_api/info"),
                             ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/call/search"),
                             ("POST", "/gradio_api/queue/join"),
                             ("GET", f"/gradio_api/file={thumbnail}")]:  # fmt: skip
            assert _request(server, method, path)[0] == 401, path
        with pytest.raises(AuthenticationError):
            connect(server.url)
        with pytest.raises(ValueError):
            connect(server.url, auth=("reader", "wrong"))
        logged_in = connect(server.url, auth=("reader", "s3cret-pass"))
        assert search_app(logged_in, text=DENSE_REPORT, k=3)["density"]["label"] == "C"
    finally:
        server.app.close()
        server.engine.close()


def test_one_query_runs_at_a_time_and_the_queue_is_bounded(
    demo_dir: Path, ui_settings: Any, query_image: Path
) -> None:
    from gradio_client import handle_file

    from mammosearch.ui.client import connect

    server = start(demo_dir, ui_settings, max_queue=1)
    try:
        client = connect(server.url)
        jobs = [client.submit([handle_file(str(query_image))], "", 5, 0.5, "any", "any", "any",
                              "", api_name="/search") for _ in range(8)]  # fmt: skip
        answered = refused = 0
        for job in jobs:
            try:
                job.result(timeout=60)
                answered += 1
            except Exception as e:  # noqa: BLE001 - the client's QueueError, or its wrapper
                assert "queue is full" in str(e).lower(), repr(e)
                refused += 1
        assert answered >= 1 and refused >= 1 and answered + refused == 8
    finally:
        server.app.close()
        server.engine.close()


def test_parse_auth(tmp_path: Path) -> None:
    logins = tmp_path / "logins.txt"
    logins.write_text("# readers\nana:pa:ss\n\n bob : pw2\n", encoding="utf-8")
    assert parse_auth(["eve:x"], logins) == [("eve", "x"), ("ana", "pa:ss"), ("bob", " pw2")]
    with pytest.raises(InputError, match="auth file line 2 is not user:password") as caught:
        parse_auth([], _write(tmp_path / "bad.txt", "ok:fine\nsecret-without-colon\n"))
    assert "secret" not in str(caught.value)
    with pytest.raises(InputError, match="--auth #1"):
        parse_auth(["nopassword:"])
    with pytest.raises(InputError, match="cannot be read"):
        parse_auth([], tmp_path / "missing.txt")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path

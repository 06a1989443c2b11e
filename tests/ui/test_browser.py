"""End to end in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

Screenshots are saved under ``$MAMMOSEARCH_TEST_ARTIFACTS`` (default ``test-artifacts/``); the
README's screenshot is ``ui-synthetic-search.png`` from :func:`test_synthetic_demo_search`.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mammosearch.config import Settings
from tests.conftest import REPO, shared_path
from tests.ui.conftest import Served, start
from tests.ui.test_app import DENSE_REPORT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MAMMOSEARCH_TEST_ARTIFACTS", REPO / "test-artifacts"))


# session scope and autouse: checked before the session's servers and indexes are built
@pytest.fixture(scope="session", autouse=True)
def chromium() -> Path:
    """Debian's Chromium; without it the tests skip, or fail under CI (``CI`` set), as the
    PostgreSQL tests do: CI must not pass with the browser tests unrun."""
    if not CHROMIUM.is_file():
        reason = "Debian's chromium is not installed (make test installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def hosts() -> list[str]:
    """Every host the page sent a request to."""
    return []


@pytest.fixture
def page(browser: Any, hosts: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("request", lambda r: hosts.append(re.sub(r"^(\w+://[^/]+).*", r"\1", r.url)))
    yield page
    context.close()


def _open(page: Any, server: Served) -> None:
    from playwright.sync_api import expect

    page.goto(server.url, wait_until="load")  # (a heartbeat stream keeps the network busy)
    expect(page.locator("#search-btn")).to_be_visible()


def _search(page: Any, images: list[Path], text: str = "") -> None:
    """Upload the views, paste the report, search, wait for the neighbours."""
    from playwright.sync_api import expect

    page.locator("#query-images input[type=file]").set_input_files([str(p) for p in images])
    for image in images:
        expect(page.locator("#query-images")).to_contain_text(image.stem)
    if text:
        page.locator("#query-report textarea").fill(text)
    page.locator("#search-btn").click()
    expect(page.locator("#neighbours button.thumbnail-item")).to_have_count(10)


@pytest.fixture(scope="module")
def mias_server(ui_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An index of 60 MIAS images (30 patients), the demo's ``--data`` path; the query is a
    MIAS image from another patient."""
    from mammosearch.pipeline import demo_index

    manifest = shared_path("mini-mias", "manifest.csv")
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    subset = tmp_path_factory.mktemp("mias") / "manifest.csv"
    with subset.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows[:60]:
            writer.writerow({**row, "image": str(manifest.parent / row["image"])})
    query = manifest.parent / rows[150]["image"]
    index = demo_index(ui_settings, data=subset, embedder="radiomics.v1")
    server = start(index, ui_settings)
    yield server, query
    server.app.close()
    server.engine.close()


@pytest.mark.shared_data
def test_mias_image_search_in_the_browser(page: Any, hosts: list[str], mias_server: Any) -> None:
    from playwright.sync_api import expect

    server, query = mias_server
    _open(page, server)
    _search(page, [query])
    # the query as the models see it, and the density bar with the path that decided
    expect(page.locator("#query-views button.thumbnail-item")).to_have_count(1)
    expect(page.locator("#density")).to_contain_text(re.compile(r"\b[FGD]\b"))
    expect(page.locator("#density")).to_contain_text("%")
    expect(page.locator("#density-method")).to_contain_text(
        re.compile("decided by (vote|convnext)")
    )
    captions = page.locator("#neighbours .caption-label").all_inner_texts()
    assert len(captions) == 10 and all(re.match(r"\d\.\d\d · density [FGD]", c) for c in captions)
    # no synthetic-data banner over real images
    expect(page.locator("#synthetic-note")).to_have_count(0)
    # a click on a neighbour shows that case
    page.locator("#neighbours button.thumbnail-item").nth(2).click()
    expect(page.locator("#case-info")).to_contain_text(re.compile(r"density [FGD]"))
    expect(page.locator("#case-image img")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-mias-search.png"), full_page=True)
    assert set(hosts) == {server.url.rstrip("/")}, "the page fetched from another host"


def test_synthetic_demo_search(page: Any, hosts: list[str], served: Served, demo_dir: Path) -> None:
    """Image and report of one exam; the README's screenshot comes from here."""
    from playwright.sync_api import expect

    corpus = demo_dir.parent / "corpus" / "images"
    views = [corpus / f"SYN-011_{side}{view}.png" for side in "RL" for view in ("CC", "MLO")]
    # the exam is in the index: leave its own images out, as a radiologist would
    _open(page, served)
    page.get_by_text("Options").click()
    page.locator("#exclude-patient textarea").fill("SYN-011")
    _search(page, views[:2], DENSE_REPORT)
    expect(page.locator("#synthetic-note")).to_contain_text("SYNTHETIC DEMO DATA")
    expect(page.locator("#density")).to_contain_text("C")
    expect(page.locator("#density-method")).to_contain_text("decided by report")
    expect(page.locator("#report-terms")).to_contain_text("heterogeneously dense")
    expect(page.locator("#standardized textarea")).to_have_value(re.compile("ACR C"))
    captions = page.locator("#neighbours .caption-label").all_inner_texts()
    assert not any("SYN-011" in c for c in captions)
    page.locator("#neighbours button.thumbnail-item").first.click()
    expect(page.locator("#case-info")).to_contain_text("SYN-")
    expect(page.locator("#case-terms")).to_contain_text(re.compile("dense|dens", re.IGNORECASE))
    page.locator("#about").click()
    expect(page.locator("#about")).to_contain_text("radiomics.v1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-synthetic-search.png"), full_page=True)
    assert set(hosts) == {served.url.rstrip("/")}, "the page fetched from another host"


def test_one_image_per_case_in_the_browser(page: Any, served: Served) -> None:
    """A report query ranks the views of an exam together (they share its report); with *One
    image per case* ticked (the page's default), the ten similar cases are ten exams."""
    from playwright.sync_api import expect

    cases: dict[bool, list[str]] = {}
    for per_case in (False, True):  # each on a fresh page: the result shown is this search's
        _open(page, served)
        page.get_by_text("Options").click()
        expect(page.locator("#per-case input[type=checkbox]")).to_be_checked()
        page.locator("#per-case input[type=checkbox]").set_checked(per_case)
        page.locator("#query-report textarea").fill(DENSE_REPORT)
        page.locator("#search-btn").click()
        expect(page.locator("#neighbours button.thumbnail-item")).to_have_count(10)
        page.get_by_text("Result as JSON").click()
        expect(page.locator("#result-json")).to_contain_text("SYN-")
        cases[per_case] = re.findall(r"SYN-\d+", page.locator("#result-json").inner_text())
    assert len(cases[False]) == 10 and len(set(cases[False])) < 10
    assert len(cases[True]) == len(set(cases[True])) == 10


def test_examples_fill_the_form_and_search(page: Any, hosts: list[str], served: Served) -> None:
    """The first screen offers examples; one click fills the form and shows results."""
    from playwright.sync_api import expect

    _open(page, served)
    examples = page.locator("#examples")
    expect(examples).to_contain_text("An exam of this index: 4 views and its report")
    examples.get_by_text("A report in Spanish").click()
    expect(page.locator("#query-report textarea")).to_have_value(re.compile("MAMOGRAFÍA"))
    expect(page.locator("#density-method")).to_contain_text("decided by report")
    expect(page.locator("#density")).to_contain_text("B")
    expect(page.locator("#report-terms")).to_contain_text("densidad fibroglandular")
    expect(page.locator("#neighbours button.thumbnail-item")).to_have_count(10)
    examples.get_by_text("An exam of this index").click()
    # the exam's four views are the index's own thumbnails, shown as they are, by URL
    expect(page.locator("#query-views button.thumbnail-item")).to_have_count(4)
    expect(page.locator("#query-views .caption-label").first).to_contain_text(
        re.compile(r"^[LR] (CC|MLO) · ")
    )
    sources = page.locator("#query-views img").evaluate_all("els => els.map(e => e.src)")
    assert all(re.search(r"/thumbs/\d+\.png$", src) for src in sources), sources
    expect(page.locator("#neighbours button.thumbnail-item")).to_have_count(10)
    _all_shown(page, "#neighbours")
    assert set(hosts) == {served.url.rstrip("/")}, "the page fetched from another host"


def _all_shown(page: Any, selector: str) -> None:
    page.wait_for_function(
        "s => [...document.querySelectorAll(s + ' img')].every("
        "i => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )


def test_thumbnails_need_a_login(browser: Any, demo_dir: Path, ui_settings: Settings) -> None:
    """With logins, the images the page shows by URL are refused to anyone not logged in."""
    from playwright.sync_api import expect

    server = start(demo_dir, ui_settings, auth=[("reader", "s3cret-pass")])
    reader = browser.new_context(viewport={"width": 1400, "height": 1300})
    stranger = browser.new_context()
    try:
        page = reader.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url, wait_until="load")
        page.get_by_label("username").fill("reader")
        page.get_by_label("password").fill("s3cret-pass")
        page.get_by_role("button", name="Login").click()
        page.locator("#examples").get_by_text("An exam of this index").click()
        expect(page.locator("#neighbours button.thumbnail-item")).to_have_count(10)
        _all_shown(page, "#neighbours")
        sources = page.locator("#neighbours img, #query-views img").evaluate_all(
            "els => els.map(e => e.src)"
        )
        assert len(sources) == 14
        for source in sources:
            assert reader.request.get(source).status == 200
            assert stranger.request.get(source).status == 401
    finally:
        stranger.close()
        reader.close()
        server.app.close()
        server.engine.close()


def test_batch_tab_in_the_browser(page: Any, served: Served, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from mammosearch.samples.reports import generate_reports

    source = tmp_path / "reports.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for n, report in enumerate(generate_reports(5, seed=3)):
            writer.writerow([f"b{n}", report.text])
    _open(page, served)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(source))
    expect(page.locator("#batch-file")).to_contain_text("reports")
    page.locator("#batch-btn").click()
    expect(page.locator("#batch-summary")).to_contain_text("5 reports: 5 normalized, 0 failed")
    expect(page.locator("#batch-table")).to_contain_text("b4")
    with page.expect_download() as download:
        page.locator("#batch-csv a").first.click()
    saved = tmp_path / "downloaded.csv"
    shutil.copy(download.value.path(), saved)
    assert saved.read_text(encoding="utf-8").splitlines()[0].startswith("id,language,density")

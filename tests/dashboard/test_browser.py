"""The dashboard in a real browser: Debian's Chromium, headless, driven by playwright (its own node driver;
the browser is /usr/bin/chromium, installed by .ci/run, never `playwright install`).

Opened from file:// and from a local HTTP server: no console error, no failed request, every chart drawn
with data, filters change what is shown and every count on screen stays suppressed. A screenshot is kept
in tests/dashboard/artifacts/ (git-ignored).
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.conftest import PublishedDashboard

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = {
    # chart container -> SVG elements that carry data
    "#incidence-chart": "rect.mark-bar",
    "#spc-chart": "circle.mark",
    "#g-chart": "circle.mark",
    "#funnel-chart": "circle.mark",
    "#bp-curves": "path.line",
    "#shift-chart": "rect[data-value]",
    "#cadss-chart": "path.line",
    "#breach-chart": "rect.mark-bar",
    "#monitoring-chart": "rect.mark-bar",
}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


class BrowserProblems:
    """Console errors, page errors and failed requests of one page."""

    def __init__(self, page) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1300, "height": 1000},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def http_url(dashboard: PublishedDashboard) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(dashboard.folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


def open_page(context, url: str):
    page = context.new_page()
    problems = BrowserProblems(page)
    page.goto(url)
    page.wait_for_selector("#incidence table.data")
    return page, problems


def shown_counts(page) -> list[str]:
    """The text of every count cell on screen."""
    return page.locator("td.count").all_inner_texts()


def assert_counts_suppressed(page) -> None:
    texts = shown_counts(page)
    assert texts, "no count cells on the page"
    small = [t for t in texts if re.fullmatch(r"[0-9,]+", t) and 1 <= int(t.replace(",", "")) <= 10]
    assert not small, f"counts from 1 to 10 on screen: {small[:5]}"
    assert all(t == "<11" or re.fullmatch(r"[0-9,]+", t) for t in texts), sorted(set(texts))[:5]


def test_page_from_file_draws_every_chart_without_errors(browser_context, dashboard: PublishedDashboard):
    page, problems = open_page(browser_context, dashboard.index.as_uri())
    for container, marks in CHARTS.items():
        assert page.locator(f"{container} svg").count() >= 1, f"{container}: no chart"
        assert page.locator(f"{container} {marks}").count() > 0, f"{container}: the chart has no data"
    assert page.locator("#data-quality li").count() >= 3
    assert "off-label" in page.locator("#disclaimers").inner_text()
    assert dashboard.data["meta"]["as_of"] in page.locator("header").inner_text()
    assert_counts_suppressed(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert not problems.problems, problems.problems
    page.close()


def test_filters_change_what_is_shown_and_stay_suppressed(browser_context, dashboard: PublishedDashboard):
    page, problems = open_page(browser_context, dashboard.index.as_uri())
    before = page.locator("#incidence").inner_text()
    exposure_before = page.locator("#incidence-exposure").inner_text()
    clinics = [v for v in dashboard.data["filters"]["clinic_id"] if v != "all"]
    seen = set()
    for clinic in clinics:
        page.select_option("#filter-clinic_id", clinic)
        seen.add(page.locator("#incidence-exposure").inner_text())
        assert_counts_suppressed(page)
        assert page.locator("#funnel-chart circle.mark.selected").count() <= 1
    assert exposure_before not in seen and len(seen) > 1, "the clinic filter did not change the counts"
    page.select_option("#filter-clinic_id", "all")
    assert page.locator("#incidence").inner_text() == before
    for dim in ("protocol", "infusion_bucket", "conmed_stratum"):
        for value in dashboard.data["filters"][dim][1:3]:
            page.select_option(f"#filter-{dim}", value)
            assert_counts_suppressed(page)
        page.select_option(f"#filter-{dim}", "all")
    # One event filter at a time: choosing a seriousness resets the severity, and says so.
    severity = dashboard.data["filters"]["severity"][1]
    seriousness = dashboard.data["filters"]["seriousness"][1]
    page.select_option("#filter-severity", severity)
    assert_counts_suppressed(page)
    page.select_option("#filter-seriousness", seriousness)
    assert page.locator("#filter-severity").input_value() == "all"
    assert "one event filter at a time" in page.locator("#filter-note").inner_text().lower()
    page.select_option("#filter-protocol", dashboard.data["filters"]["protocol"][1])
    page.screenshot(path=str(ARTIFACTS / "dashboard-filtered.png"), full_page=True)
    assert_counts_suppressed(page)
    page.click("#filter-reset")
    assert page.locator("#incidence").inner_text() == before
    assert not problems.problems, problems.problems
    page.close()


def test_csv_download_of_a_view_is_suppressed(browser_context, dashboard: PublishedDashboard):
    page, problems = open_page(browser_context, dashboard.index.as_uri())
    with page.expect_download() as download:
        page.click('button[data-csv="ae_incidence"]')
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert body.startswith("body_system,term,patients_with_event")
    cells = [c for line in body.splitlines()[1:] for c in line.split(",")]
    assert not [c for c in cells if re.fullmatch(r"\d+", c) and 1 <= int(c) <= 10]
    assert not problems.problems, problems.problems
    page.close()


def test_page_over_http_loads_nothing_from_elsewhere(browser_context, http_url: str):
    """Served by a plain HTTP server: the page requests itself and nothing else (no CDN, fonts or icons);
    the CSV links resolve."""
    page = browser_context.new_page()
    problems = BrowserProblems(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(http_url)
    page.wait_for_selector("#incidence table.data")
    page.wait_for_timeout(300)
    assert requests == [http_url], requests
    href = page.locator('#incidence a[href^="csv/"]').get_attribute("href")
    response = page.request.get(http_url.rsplit("/", 1)[0] + "/" + href)
    assert response.status == 200 and response.text().startswith("clinic_id,protocol")
    assert not problems.problems, problems.problems
    page.close()

"""The report in a real headless browser (Debian's chromium driven by Playwright), from file://:
no console errors, charts render, no injected script runs, a filter changes what is shown.

Needs `apt-get install chromium` (the Debian package; `playwright install` downloads a browser
and cannot work offline). Skipped, with the reason, when chromium or playwright is missing.
Set PFDEPLOY_REPORT_SCREENSHOTS=DIR to keep screenshots of the pages."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pfdeploy.report import build_report
from test_report import EVIL_MODEL, make_store

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    for candidate in (os.environ.get("PFDEPLOY_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("chromium not found (install Debian's: apt-get install -y chromium; or set PFDEPLOY_CHROMIUM)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install 'pfdeploy[test]'")
    exe = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-report")
    store, _ = make_store(root / "db" / "results.db", n_runs=5, slow_from=3)
    return build_report(root / "site", store=store).out


class Page:
    """A page with every console message, page error, dialog and network request recorded."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console, self.errors, self.dialogs, self.requests = [], [], [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def problems(self):
        return [t for t in self.console if t[0] in ("error", "warning")] + self.errors + self.dialogs


def _shot(page, name):
    target = os.environ.get("PFDEPLOY_REPORT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)


def test_pages_load_without_errors_and_charts_render(browser, site):
    p = Page(browser)
    for name in ["index.html", "history.html", "runs.html"] + [f"runs/{f.name}" for f in (site / "runs").iterdir()]:
        p.page.goto((site / name).as_uri())
        p.page.wait_for_load_state("load")
    assert p.problems() == []
    assert all(u.startswith("file://") for u in p.requests), [u for u in p.requests if not u.startswith("file://")]

    p.page.goto((site / "index.html").as_uri())
    bars = p.page.locator("svg.bar-chart rect.bar")
    assert bars.count() >= 6
    box = bars.first.bounding_box()
    assert box and box["height"] > 1 and box["width"] > 1  # laid out, not just present in the DOM
    assert p.page.locator("svg.bar-chart g.errbar").count() == bars.count()
    # user strings appear as text, never as elements
    cell = p.page.locator("table.speedup td").filter(has_text=EVIL_MODEL).first
    assert cell.is_visible() and cell.text_content() == EVIL_MODEL
    assert p.page.locator("img").count() == 0
    _shot(p.page, "report-overview.png")
    assert p.problems() == []


def test_history_filter_changes_what_is_shown(browser, site):
    p = Page(browser)
    p.page.goto((site / "history.html").as_uri())
    cases = p.page.locator("section.case")
    total = cases.count()
    assert total > 4
    assert p.page.locator("section.case:visible").count() == total
    assert p.page.locator("svg.history-chart polygon.band, svg.history-chart rect.band").count() >= total
    assert p.page.locator("svg.history-chart path.marker.regression").count() == 2
    assert p.page.locator("#filters").is_visible()

    p.page.select_option("select[data-filter=model]", "resnet50")
    visible = p.page.locator("section.case:visible")
    assert visible.count() == 2
    assert all(m == "resnet50" for m in visible.evaluate_all("els => els.map(e => e.dataset.model)"))
    assert p.page.locator("#filter-count").text_content() == f"2 of {total} cases shown"
    p.page.select_option("select[data-filter=backend]", "openvino")
    assert p.page.locator("section.case:visible").count() == 1
    _shot(p.page, "report-history-filtered.png")

    # the filter state is in the URL: reopening it shows the same selection
    url = p.page.url
    assert "model=resnet50" in url and "backend=openvino" in url
    q = Page(browser)
    q.page.goto(url)
    assert q.page.locator("section.case:visible").count() == 1

    p.page.click("#filters-reset")
    p.page.wait_for_function(f"document.querySelectorAll('section.case:not([hidden])').length === {total}")
    assert p.problems() == [] and q.problems() == []

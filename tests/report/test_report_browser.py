"""The report page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, over a localhost HTTP server.

Skipped when selenium, chromium or chromedriver is missing. Nothing is downloaded: the
driver path is given explicitly, so Selenium Manager never runs.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from sigma_iml.report import build_report

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (Path(CHROMEDRIVER).is_file() and Path(CHROMIUM).is_file()):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def served(benchmark_run):
    """The run folder on an ephemeral localhost port; yields the report's URL."""
    build_report(benchmark_run)
    handler = functools.partial(_QuietHandler, directory=str(benchmark_run))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="sigma-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _card_ids(driver) -> list[str]:
    return [
        card.get_attribute("data-id")
        for card in driver.find_elements(By.CSS_SELECTOR, "#gallery .card")
    ]


def _scores(driver) -> list[float]:
    texts = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "#gallery .card .scores")]
    return [float(t.split("F1 ")[1].split(" ")[0]) for t in texts]


def test_page_renders_sorts_and_pages_in_chromium(served, browser):
    browser.get(served)
    wait = WebDriverWait(browser, 15)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gallery .card")) > 0)

    # the results table rendered, one body row per method
    rows = browser.find_elements(By.CSS_SELECTOR, "#results-table tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td.name").text for r in rows] == [
        "pixdiff-otsu",
        "Fixed 0.3",
    ]

    # dataset Alpha, 6 pairs, sorted by F1 descending by default
    assert len(_card_ids(browser)) == 6
    descending = _scores(browser)
    assert descending == sorted(descending, reverse=True)

    # the images of the first card and the robustness plot really decoded
    def images_loaded(driver):
        return driver.execute_script(
            "var imgs = Array.prototype.slice.call(document.querySelectorAll('#gallery .card:first-child img'));"
            "imgs.push(document.getElementById('robustness-plot'));"
            "return imgs.length > 3 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });"
        )

    wait.until(images_loaded)

    # clicking the sort control reverses the order
    before = _card_ids(browser)
    browser.find_element(By.ID, "sort-direction").click()
    wait.until(lambda d: _card_ids(d) != before)
    ascending = _scores(browser)
    assert ascending == sorted(ascending)
    assert _card_ids(browser)[0] == before[-1] or ascending[0] == ascending[1]

    # a score filter and paging: 2 per page
    browser.execute_script(
        "var s = document.getElementById('page-size'); var o = document.createElement('option');"
        "o.value = '2'; o.text = '2'; s.appendChild(o); s.value = '2';"
        "s.dispatchEvent(new Event('change'));"
    )
    wait.until(lambda d: len(_card_ids(d)) == 2)
    assert "page 1 of 3" in browser.find_element(By.ID, "page-info").text
    browser.find_element(By.ID, "next").click()
    wait.until(lambda d: "page 2 of 3" in d.find_element(By.ID, "page-info").text)

    # the other dataset
    browser.execute_script(
        "var s = document.getElementById('dataset'); s.value = '1'; s.dispatchEvent(new Event('change'));"
    )
    wait.until(lambda d: "3 pairs" in d.find_element(By.ID, "page-info").text)

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []

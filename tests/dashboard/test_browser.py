"""The dashboard as people see it: a real ``alphafactory dashboard`` process (uvicorn)
on the seeded database, every page opened in headless Chromium through Selenium. No
page may log a SEVERE console entry (a script error, a failed load, a refused policy),
every plot must be drawn (its screenshot holds several colours, not a blank box), and
SIGTERM must end the process with code 0."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from app.dashboard.pages import NAV
from app.services import dashboard_url
from tests.browser import (
    chrome,
    distinct_colours,
    needs_selenium,
    open_drawn,
    severe_console_entries,
    wait_for_http,
)
from tests.stack_support import settings_env

pytestmark = [pytest.mark.stack, needs_selenium]
PLOTTED = ("/positions", "/performance", "/walkforward")
MIN_COLOURS = 8  # white, grid, axis text and a colour per trace at the least


@pytest.fixture(scope="module")
def served(dashboard_settings, seeded, tmp_path_factory):
    """The dashboard's URL, its process started as `stack up` starts it."""
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "dashboard"],
            env=settings_env(dashboard_settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = dashboard_url(dashboard_settings)
    try:
        wait_for_http(url + "healthz", alive=lambda: process.poll() is None)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def browser():
    with chrome() as driver:
        yield driver


def test_every_page_loads_without_a_console_error(served, browser, seeded):
    url, _ = served
    severe_console_entries(browser)  # start from an empty console
    paths = [path for path, _ in NAV] + [f"/requests/{seeded.request_id}"]
    for path in paths:
        open_drawn(browser, url + path.lstrip("/"))
        assert len(browser.find_elements("css selector", "nav a")) == len(NAV), path
        assert severe_console_entries(browser) == [], path


def test_every_plot_is_drawn(served, browser):
    url, _ = served
    for path in PLOTTED:
        open_drawn(browser, url + path.lstrip("/"))
        plots = browser.find_elements("css selector", "div.plot")
        assert plots, f"{path}: no plot"
        for plot in plots:
            browser.execute_script("arguments[0].scrollIntoView()", plot)
            colours = distinct_colours(plot.screenshot_as_png)
            assert colours >= MIN_COLOURS, f"{path} #{plot.get_attribute('id')}: {colours}"
        assert severe_console_entries(browser) == [], path

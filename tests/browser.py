"""Open a page in headless Chromium (Debian's package) and read back what it rendered.

``--dump-dom`` prints the DOM once the page's virtual time budget has run out, so a
checker script appended to a copy of the page can write what the browser decoded (each
image's natural size and laid-out width) into attributes that the dump then carries.

:func:`chrome` drives the same Chromium through Debian's ``chromium-driver`` with
Selenium, for pages served by a live process (their scripts run, their console is read
back). Selenium is given both paths, so Selenium Manager never looks for (or downloads)
a browser or a driver; :data:`needs_selenium` skips a test, naming what is missing,
where either package is not installed (scripts/setup.sh installs both)."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
_MISSING = [
    name
    for name, path in (("chromium", CHROMIUM), ("chromium-driver's chromedriver", CHROMEDRIVER))
    if path is None
]
needs_selenium = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"needs {' and '.join(_MISSING)} (Debian packages: scripts/setup.sh installs them)",
)
_CHECKER = """<script>
addEventListener("load", () => {
  for (const image of document.images) {
    const box = image.getBoundingClientRect();
    image.dataset.rendered = [image.complete ? 1 : 0, image.naturalWidth,
                              image.naturalHeight, Math.round(box.width)].join(",");
  }
});
</script>"""


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[int, ...]] = {}

    def handle_starttag(self, tag, attrs) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("id"):
            rendered = values.get("data-rendered") or "0,0,0,0"
            self.found[values["id"]] = tuple(int(v) for v in rendered.split(","))


def rendered_images(page: Path) -> dict[str, tuple[int, int, int, int]]:
    """image id -> (complete, natural width, natural height, laid-out width) as Chromium
    rendered ``page`` (all zeros: the image did not decode)."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed: scripts/setup.sh installs it")
    copy = page.with_name(page.stem + ".browser-check.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _CHECKER + "</body>"))
    try:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={page.parent / '.chromium-profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                copy.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        copy.unlink(missing_ok=True)
        shutil.rmtree(page.parent / ".chromium-profile", ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    parser = _Images()
    parser.feed(result.stdout)
    return parser.found


@contextlib.contextmanager
def chrome(width: int = 1280, height: int = 900) -> Iterator:
    """A headless Chromium driven by Selenium, its console kept (``driver.get_log
    ("browser")``); quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if _MISSING:
        raise RuntimeError(
            f"{' and '.join(_MISSING)} not installed: scripts/setup.sh installs them"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def severe_console_entries(driver) -> list[dict]:
    """The browser console's SEVERE entries since the last call (errors, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def distinct_colours(png: bytes) -> int:
    """How many different colours a screenshot holds (a blank element: one or two)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or ())


def wait_for_http(url: str, *, body: bytes = b"ok", timeout_s: float = 60.0, alive=None) -> None:
    """Return once ``url`` answers ``body``; ``alive()`` False (the server's process
    ended) or ``timeout_s`` passing fail the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise AssertionError(f"the server for {url} exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read() == body:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {body!r} within {timeout_s} s")


def open_drawn(driver, url: str, timeout_s: float = 30.0) -> None:
    """Load ``url`` and wait until its scripts ran: every ``div.plot`` drawn by Plotly."""
    driver.get(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        drawn = driver.execute_script(
            "return document.readyState === 'complete' && [...document.querySelectorAll"
            "('div.plot')].every(p => p.querySelector('svg.main-svg'))"
        )
        if drawn:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url}: not loaded and drawn within {timeout_s} s")

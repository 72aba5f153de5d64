"""Open a page in headless Chromium (Debian's package) and read back what it rendered.

``--dump-dom`` prints the DOM once the page's virtual time budget has run out, so a
checker script appended to a copy of the page can write what the browser decoded (each
image's natural size and laid-out width) into attributes that the dump then carries."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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

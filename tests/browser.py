"""Look at a local HTML page as a person would: headless Chromium, after the page's scripts ran.

pytest-html builds its results table with JavaScript, so the file's text is not what a reader
sees; ``render`` returns the DOM after the scripts ran and a screenshot of the page.
Without Chromium the test is skipped, unless $RUNNER_HEALTH_REQUIRE_BROWSER=1 or $CI is set
(CI installs Debian's ``chromium``): then it fails, so a missing browser is never a quiet pass.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.tools import required

BROWSER = "chromium"
# Root needs --no-sandbox; the rest keeps a test run off the network and out of ~/.config.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = "1280,2000"


@dataclass(frozen=True)
class Rendered:
    dom: str  # the page's DOM after its scripts ran
    screenshot: Path  # PNG, WINDOW wide and tall


def browser() -> str:
    """Chromium's path (see tests/tools.py: skipped or failed without it)."""
    return required(BROWSER, "apt-get install chromium", "RUNNER_HEALTH_REQUIRE_BROWSER")


def render(page: Path, out_dir: Path, *, timeout: float = 60) -> Rendered:
    """``page`` as Chromium shows it; the screenshot and the browser profile go in ``out_dir``."""
    chromium = browser()
    out_dir.mkdir(parents=True, exist_ok=True)
    screenshot = out_dir / f"{page.stem}.png"
    common = [chromium, *FLAGS, f"--user-data-dir={out_dir / 'chromium-profile'}"]
    url = page.resolve().as_uri()
    dom = _run([*common, "--dump-dom", url], timeout)
    _run([*common, f"--screenshot={screenshot}", f"--window-size={WINDOW}", url], timeout)
    assert screenshot.stat().st_size > 0, f"{BROWSER} wrote an empty screenshot of {page}"
    return Rendered(dom, screenshot)


def _run(command: list[str], timeout: float) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout

"""The Chromium that the browser tests and the page benchmark drive, and how the nox sessions find one.

The tests drive the browser at $CHROMIUM, or Debian's. The nox sessions that need a browser run this
file first: it prints the first browser it finds, $CHROMIUM, Debian's /usr/bin/chromium or Playwright's
own (downloaded where the machine can reach Playwright's servers), and the session hands it to the tests
as $CHROMIUM. Where there is none, it exits with one line that says how to get one.

    python tests/chromium.py
"""

import os
import subprocess
import sys
from pathlib import Path

DEBIAN = "/usr/bin/chromium"
CHROMIUM = os.environ.get("CHROMIUM", DEBIAN)
# Headless Chromium as root in a container: no sandbox, no GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
HOW_TO_GET_ONE = (
    f"no Chromium at {DEBIAN} and Playwright's own cannot be downloaded here: "
    "apt-get install chromium (Debian, Ubuntu), or set CHROMIUM to a Chrome or Chromium"
)


def playwright_chromium() -> str | None:
    """Playwright's own Chromium, downloaded now if it is not yet; None where it cannot be downloaded."""
    # Quiet: where the download fails, the one line of HOW_TO_GET_ONE says more than its stack trace.
    download = [sys.executable, "-m", "playwright", "install", "chromium"]
    if subprocess.run(download, capture_output=True).returncode != 0:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        return driver.chromium.executable_path


def find() -> str:
    """The browser for the tests: $CHROMIUM when set, else Debian's, else Playwright's own."""
    if "CHROMIUM" in os.environ:
        if not Path(CHROMIUM).is_file():
            sys.exit(f"CHROMIUM={CHROMIUM} is not a file: point it at a Chrome or Chromium, or unset it")
        return CHROMIUM
    if Path(DEBIAN).is_file():
        return DEBIAN
    return playwright_chromium() or sys.exit(HOW_TO_GET_ONE)


if __name__ == "__main__":
    print(find())

"""Debian's Chromium driven by Playwright, for what only a real browser shows (framing, CSP, a click).

Playwright's own browser download is not used: the tests launch the Chromium that `apt-get install chromium`
puts at /usr/bin/chromium (OUTREACH_TEST_CHROMIUM to point elsewhere). Without it a test skips on a laptop and
fails in CI (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.services import unavailable

CHROMIUM = os.environ.get("OUTREACH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and quiet on a machine without internet: no background requests to Google's hosts.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright `Browser` on Debian's Chromium."""
    if not os.path.exists(CHROMIUM):
        unavailable("Chromium", f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()

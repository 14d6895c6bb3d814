"""Headless Debian Chromium for the browser tests (MCP Apps views, the sign-in page), one way to start it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("DPG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DPG_CHROMEDRIVER", "/usr/bin/chromedriver")


@contextlib.contextmanager
def headless_chromium(*, prefix: str, window: str) -> Iterator[Any]:
    """A Selenium driver on a fresh profile, with the flags this closed network needs; quit and wiped after.

    Skips when Chromium is missing, except under .ci/run (DPG_MCP_REQUIRE_CHROMIUM), which installs it.
    """
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("DPG_MCP_REQUIRE_CHROMIUM"):
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing; .ci/run installs chromium chromium-driver")
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix=prefix)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_script_timeout(30)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)

"""Fixtures for the MCP Apps views: the DPG sandbox and the test host on loopback, and headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from dpg_mcp.sandbox import Sandbox, SandboxConfig, serve_in_thread
from tests.apps.host import host_app, serve_host
from tests.browser import headless_chromium

TOKENS = {
    "admin": "dpg_api_live_sandbox_admin",
    "readonly": "dpg_api_live_sandbox_readonly",
    "asking": "dpg_api_live_sandbox_admin",  # a host that can ask its user (who declines)
}
ROOT = Path(__file__).resolve().parents[2]
# Screenshots land here (CI can keep them as artifacts); DPG_APPS_DOCS=1 also refreshes the README's copies.
SHOTS = Path(os.environ.get("DPG_APPS_SCREENSHOTS", str(ROOT / "build" / "apps-screenshots")))
DOCS_SHOTS = {"grid.png": "apps-grid.png", "sets.png": "apps-sets.png"}


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    # Archives take 4 s while dpg-mcp waits 1 s: build_archive hands back a handle the card must follow.
    sb = Sandbox(SandboxConfig(seed=7, operation_seconds={"archive": 4.0}))
    with serve_in_thread(sb) as url:
        yield url


@pytest.fixture(scope="module")
def host_url(sandbox_url: str) -> Iterator[str]:
    with serve_host(host_app(sandbox_url, TOKENS, wait_budget_s=1.0, asking=frozenset({"asking"}))) as url:
        yield url


@pytest.fixture(scope="module")
def dpg(sandbox_url: str) -> Iterator[httpx2.Client]:
    """DPG itself (the admin token), to compare what the views show with the gallery's own state."""
    headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
    with httpx2.Client(base_url=sandbox_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with headless_chromium(prefix="dpg-apps-chromium-", window="1100,900") as drv:
        yield drv


def screenshot(drv: Any, name: str) -> Path:
    """The whole host page (the view in its iframe, sized by the view's size-changed reports)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    drv.switch_to.default_content()
    # Wait (bounded) until the host applied the view's last size report: no inner scrollbar in the picture.
    frame_fits = (
        "const f = document.getElementById('view'); const d = f.contentDocument;"  # null: sandboxed
        "const last = window.hostLog.sizes[window.hostLog.sizes.length - 1];"
        "return !!last && Math.abs(f.getBoundingClientRect().height - last.height) < 1;"
    )
    for _ in range(50):
        if drv.execute_script(frame_fits):
            break
        time.sleep(0.1)
    drv.execute_script("window.scrollTo(0, 0)")
    # The whole page, not just the viewport: the viewport is made as tall as the page for the picture.
    height = int(
        drv.execute_script("return Math.ceil(document.getElementById('view').getBoundingClientRect().bottom)")
    )
    metrics = {"width": 1100, "height": max(300, min(height, 3000)), "deviceScaleFactor": 1, "mobile": False}
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        time.sleep(0.2)  # one frame to repaint at the new size
        assert drv.get_screenshot_as_file(str(path)), name
    finally:
        drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if os.environ.get("DPG_APPS_DOCS") == "1" and name in DOCS_SHOTS:
        shutil.copyfile(path, ROOT / "docs" / DOCS_SHOTS[name])
    return path

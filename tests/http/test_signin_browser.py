"""The SDK's own OAuth client flow against `dpg-mcp serve --transport http --sandbox`, with the sign-in page
filled in by a real browser (headless Debian Chromium driven by Selenium): registration, authorize, login,
TOTP, consent, code exchange with PKCE, then MCP. Screenshots of the page land in build/signin-screenshots/
(DPG_SIGNIN_DOCS=1 also refreshes docs/signin-*.png, shown in the README)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.types import TextContent

from dpg_mcp.sandbox.auth import PASSWORD, TOTP_SECRET, totp
from tests.browser import headless_chromium

from .conftest import DPG_MCP, Proc, free_port, sets_named, started
from .test_signin import EDITOR, PHOTOGRAPHER, REDIRECT, env

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("DPG_SIGNIN_SCREENSHOTS", str(ROOT / "build" / "signin-screenshots")))
DOCS_SHOTS = {"signin-login.png", "signin-consent.png"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("signin-browser")
    port = free_port()
    args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), "--sandbox"]
    args += ["--ledger", str(tmp / "ledger.sqlite3")]
    with started(args, port, tmp / "signin.log", env=env(tmp)) as proc:
        yield proc


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    with headless_chromium(prefix="dpg-signin-chromium-", window="800,1000") as drv:
        yield drv


def shot(drv: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert drv.get_screenshot_as_file(str(SHOTS / name)), name
    if os.environ.get("DPG_SIGNIN_DOCS") == "1" and name in DOCS_SHOTS:
        shutil.copyfile(SHOTS / name, ROOT / "docs" / name)


def wait_for(drv: Any, css: str, timeout: float = 15.0) -> Any:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = drv.find_elements(By.CSS_SELECTOR, css)
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"{css} did not appear; page: {drv.page_source[:2000]}")


def fill_in(drv: Any, url: str, login: str, tag: str) -> str:
    """What the member does in the browser; returns the URL the page sent the browser back to."""
    drv.get(url)
    wait_for(drv, "#login").send_keys(login)
    drv.find_element("css selector", "#password").send_keys(PASSWORD)
    shot(drv, f"signin-login{tag}.png")
    drv.find_element("css selector", "button[type=submit]").click()
    if login == EDITOR:
        code = wait_for(drv, "#code")
        assert drv.find_element("css selector", "label[for=code]").text  # a label a screen reader reads
        code.send_keys(totp(TOTP_SECRET))
        shot(drv, f"signin-mfa{tag}.png")
        drv.find_element("css selector", "button[type=submit]").click()
    approve = wait_for(drv, "button[value=approve]")
    assert "Browser Test Agent" in drv.page_source and "127.0.0.1:9" in drv.page_source
    shot(drv, f"signin-consent{tag}.png")
    approve.click()
    deadline = time.monotonic() + 15
    while not drv.current_url.startswith(REDIRECT) and time.monotonic() < deadline:
        time.sleep(0.1)
    return str(drv.current_url)


class Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def oauth(server: Proc, drv: Any, login: str, tag: str = "") -> tuple[OAuthClientProvider, Memory]:
    back: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        back["url"] = await anyio.to_thread.run_sync(fill_in, drv, url, login, tag)

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(back["url"]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0])

    storage = Memory()
    metadata = OAuthClientMetadata(
        client_name="Browser Test Agent",
        redirect_uris=[REDIRECT],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(server.mcp, metadata, storage, redirect_handler, callback_handler), storage


async def test_the_sdk_oauth_flow_with_the_page_in_chromium(server: Proc, chrome: Any) -> None:
    auth, storage = oauth(server, chrome, EDITOR)
    async with (
        httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(60.0)) as http,
        Client(streamable_http_client(server.mcp, http_client=http)) as client,
    ):
        tools = {t.name for t in (await client.list_tools()).tools}
        made = await client.call_tool("create_set", {"name": "Made through the browser sign-in"})
    assert {"delete_image", "create_set"} <= tools
    assert not made.is_error, " ".join(c.text for c in made.content if isinstance(c, TextContent))
    assert sets_named(server.url + "/sandbox", "Made through the browser sign-in") == 1
    assert storage.tokens is not None and storage.tokens.access_token.startswith("dpgmcp_at_")
    assert (SHOTS / "signin-login.png").stat().st_size > 1000

    # A second member, no MFA and no delete scope: no delete tool.
    chrome.delete_all_cookies()
    auth2, _ = oauth(server, chrome, PHOTOGRAPHER, "-photographer")
    async with (
        httpx2.AsyncClient(auth=auth2, timeout=httpx2.Timeout(60.0)) as http,
        Client(streamable_http_client(server.mcp, http_client=http)) as client,
    ):
        tools2 = {t.name for t in (await client.list_tools()).tools}
    assert "delete_image" not in tools2 and "search_images" in tools2

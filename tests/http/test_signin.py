"""Team sign-in over the OAuth protocol, against a real `dpg-mcp serve --transport http --sandbox`.

The client side is driven by hand with httpx2 (registration, /authorize, the sign-in page's forms with their
CSRF token and cookie, MFA, consent, the code exchange with PKCE), then MCP with the issued token.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.types import TextContent

from dpg_mcp.sandbox.auth import PASSWORD, TOTP_SECRET, totp

from .conftest import (
    DPG_MCP,
    TOKENS,
    Proc,
    connect,
    free_port,
    sandbox_proc,
    sets_named,
    started,
)

REDIRECT = "http://127.0.0.1:9/callback"
EDITOR, PHOTOGRAPHER = "editor@riverside.test", "photographer@riverside.test"
MANAGER = "manager@riverside.test"  # two accounts, no MFA
# DPG allows 5 sign-in attempts a minute per login: the module's tests spread over the three logins.
SECRET_KEY = "test-signin-key-" + "x" * 32


def env(tmp: Path) -> dict[str, str]:
    return {"DPG_MCP_SECRET_KEY": SECRET_KEY, "DPG_MCP_SIGNIN_DB": str(tmp / "signin.sqlite3")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("signin")
    port = free_port()
    args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), "--sandbox"]
    args += ["--ledger", str(tmp / "ledger.sqlite3"), "-vv"]  # debug logs: the canary scan reads them
    with started(args, port, tmp / "signin.log", env=env(tmp)) as proc:
        yield proc


@dataclass
class Flow:
    """One authorization request in progress, as an OAuth client and the member's browser see it."""

    base: str
    client_id: str
    verifier: str
    state: str
    browser: httpx2.Client
    page: httpx2.Response

    def form(self, **fields: str) -> httpx2.Response:
        """Post the page's form (its hidden request and csrf fields, and `fields`); follow to the next one."""
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', self.page.text))
        resp = self.browser.post(self.base + "/signin", data={**hidden, **fields})
        if resp.status_code == 303 and urlsplit(resp.headers["location"]).path == "/signin":
            resp = self.browser.get(resp.headers["location"])
        self.page = resp
        return resp


def register(base: str, name: str = "Test Agent", redirect: str = REDIRECT) -> str:
    resp = httpx2.post(
        base + "/register",
        json={
            "client_name": name,
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["client_id"])


def start(base: str, client_id: str | None = None, **extra: str) -> Flow:
    client_id = client_id or register(base)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": base + "/mcp",
        **extra,
    }
    browser = httpx2.Client(timeout=15, follow_redirects=False)
    first = browser.get(base + "/authorize", params=params)
    assert first.status_code == 302, first.text
    page = browser.get(first.headers["location"])
    assert page.status_code == 200, page.text
    return Flow(base, client_id, verifier, state, browser, page)


def sign_in(flow: Flow, login: str = EDITOR) -> None:
    flow.form(login=login, password=PASSWORD)
    if login == EDITOR:
        assert "authenticator" in flow.page.text
        flow.form(code=totp(TOTP_SECRET))
    if login == MANAGER:
        assert "Choose the account to work in" in flow.page.text
        flow.form(account=re.findall(r'name="account" value="([^"]+)"', flow.page.text)[0])
    assert "Allow access to your gallery?" in flow.page.text, flow.page.text


def approve(flow: Flow) -> str:
    resp = flow.form(decision="approve")
    assert resp.status_code == 303
    back = urlsplit(resp.headers["location"])
    query = parse_qs(back.query)
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT and query["state"] == [flow.state]
    return query["code"][0]


def exchange(flow: Flow, code: str, verifier: str | None = None) -> httpx2.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": flow.client_id,
        "resource": flow.base + "/mcp",
    }
    if verifier != "":
        data["code_verifier"] = verifier or flow.verifier
    return httpx2.post(flow.base + "/token", data=data, timeout=10)


def signed_in(base: str, login: str = EDITOR) -> tuple[Flow, dict[str, str]]:
    flow = start(base)
    sign_in(flow, login)
    resp = exchange(flow, approve(flow))
    assert resp.status_code == 200, resp.text
    return flow, dict(resp.json())


def _text(result: object) -> str:
    return " ".join(c.text for c in getattr(result, "content", []) if isinstance(c, TextContent))


# ---- the whole flow ----------------------------------------------------------------------------------------


def test_metadata_points_clients_to_this_server(server: Proc) -> None:
    pr = httpx2.get(server.url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert pr["resource"] == server.mcp
    assert [u.rstrip("/") for u in pr["authorization_servers"]] == [server.url]
    asm = httpx2.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert asm["authorization_endpoint"] == server.url + "/authorize"
    assert asm["registration_endpoint"] == server.url + "/register"
    assert asm["code_challenge_methods_supported"] == ["S256"]
    unauth = httpx2.post(server.mcp, json={}, timeout=10)
    assert unauth.status_code == 401 and "resource_metadata=" in unauth.headers["www-authenticate"]


async def test_editor_signs_in_with_mfa_consents_and_writes(server: Proc) -> None:
    flow = start(server.url)
    page = flow.page.text
    assert '<label for="login">' in page and '<label for="password">' in page  # labelled for screen readers
    assert "<script" not in page and "<link" not in page and " src=" not in page  # no external assets
    flow.form(login=EDITOR, password=PASSWORD)
    assert '<label for="code">' in flow.page.text and 'autocomplete="one-time-code"' in flow.page.text
    flow.form(code=totp(TOTP_SECRET))
    consent = flow.page.text
    # Consent names the client (its registered name and where it returns to) and what it may do.
    assert "Test Agent" in consent and "127.0.0.1:9" in consent
    assert "delete images" in consent and "Riverside Sound Festival" in consent
    tokens = exchange(flow, approve(flow)).json()
    assert tokens["token_type"] == "Bearer" and tokens["access_token"] and tokens["refresh_token"]
    assert "api.images.delete" in tokens["scope"].split()

    async with connect(server.mcp, tokens["access_token"], "auto") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"delete_image", "create_set", "search_images"} <= tools
        created = await client.call_tool("create_set", {"name": "Made by a signed-in editor"})
    assert not created.is_error, _text(created)
    assert sets_named(server.url + "/sandbox", "Made by a signed-in editor") == 1


async def test_photographer_without_mfa_sees_no_delete_tool(server: Proc) -> None:
    flow = start(server.url)
    flow.form(login=PHOTOGRAPHER, password=PASSWORD)  # no MFA: straight to consent
    assert "Allow access to your gallery?" in flow.page.text
    assert "delete images" not in flow.page.text
    tokens = exchange(flow, approve(flow)).json()
    async with connect(server.mcp, tokens["access_token"], "legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
    assert "delete_image" not in tools and "search_images" in tools


async def test_service_tokens_keep_working(server: Proc) -> None:
    async with connect(server.mcp, TOKENS["readonly"], "auto") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
    assert "search_images" in tools and "create_set" not in tools


async def test_the_account_step_lists_each_account_and_explains_a_refusal(server: Proc) -> None:
    flow = start(server.url)
    flow.form(login=MANAGER, password=PASSWORD)
    page = flow.page.text
    assert "Choose the account to work in" in page and "<legend>Your DPG accounts</legend>" in page
    accounts = dict(re.findall(r'value="([^"]+)".{0,120}?<label for="acc\d+"[^>]*>([^<]+)</label>', page))
    assert sorted(accounts.values()) == ["Riverside Archive", "Riverside Sound Festival"]
    archive = next(u for u, n in accounts.items() if n == "Riverside Archive")
    refused = flow.form(account=archive).text
    assert "API access is switched off" in refused and "Choose the account to work in" in refused
    festival = next(u for u, n in accounts.items() if n == "Riverside Sound Festival")
    flow.form(account=festival)
    assert "Allow access to your gallery?" in flow.page.text and "Riverside Sound Festival" in flow.page.text
    tokens = exchange(flow, approve(flow)).json()
    async with connect(server.mcp, tokens["access_token"], "auto") as client:
        assert "delete_image" in {t.name for t in (await client.list_tools()).tools}


# ---- what must fail ------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_login_read_the_same(server: Proc) -> None:
    flow = start(server.url)
    wrong = flow.form(login=EDITOR, password="not-it").text
    unknown = flow.form(login="nobody-here@riverside.test", password="not-it").text
    for page in (wrong, unknown):
        assert "That login and password do not match" in page and 'role="alert"' in page
    assert "not-it" not in wrong


def test_wrong_code_is_clear_and_the_right_one_still_works(server: Proc) -> None:
    flow = start(server.url)
    flow.form(login=EDITOR, password=PASSWORD)
    right = totp(TOTP_SECRET)
    bad = flow.form(code="000000" if right != "000000" else "111111").text
    assert "That code is not right" in bad
    flow.form(code=totp(TOTP_SECRET))
    assert "Allow access to your gallery?" in flow.page.text


def test_dpg_rate_limit_says_when_to_try_again(server: Proc) -> None:
    flow = start(server.url)
    for _ in range(5):
        flow.form(login="flood@riverside.test", password="x")
    page = flow.form(login="flood@riverside.test", password="x").text
    assert re.search(r"Try again in \d+ s\.", page), page


def test_denied_consent_returns_access_denied_and_grants_nothing(server: Proc) -> None:
    flow = start(server.url)
    sign_in(flow, MANAGER)
    resp = flow.form(decision="deny")
    query = parse_qs(urlsplit(resp.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [flow.state] and "code" not in query


def test_a_code_works_once(server: Proc) -> None:
    flow = start(server.url)
    sign_in(flow)
    code = approve(flow)
    assert exchange(flow, code).status_code == 200
    replay = exchange(flow, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_pkce_verifier_is_required_and_checked(server: Proc) -> None:
    flow = start(server.url)
    sign_in(flow, MANAGER)
    code = approve(flow)
    missing = exchange(flow, code, verifier="")
    assert missing.status_code == 400
    wrong = exchange(flow, code, verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_an_unregistered_redirect_uri_is_refused_without_redirecting(server: Proc) -> None:
    client_id = register(server.url)
    resp = httpx2.get(
        server.url + "/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "https://evil.example/steal",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
        timeout=10,
    )
    assert resp.status_code == 400 and "location" not in resp.headers


def test_forms_without_the_csrf_token_or_from_another_browser_are_refused(server: Proc) -> None:
    flow = start(server.url)
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', flow.page.text))
    forged = flow.browser.post(
        server.url + "/signin", data={"request": hidden["request"], "login": EDITOR, "password": PASSWORD}
    )
    assert forged.status_code == 403 and "could not be verified" in forged.text
    other_browser = httpx2.post(
        server.url + "/signin", data={**hidden, "login": EDITOR, "password": PASSWORD}
    )
    assert other_browser.status_code == 403
    # Opening the link in another browser does not take over the request either.
    assert httpx2.get(server.url + f"/signin?request={hidden['request']}").status_code == 403


async def test_revocation_ends_the_sign_in(server: Proc) -> None:
    flow, tokens = signed_in(server.url, PHOTOGRAPHER)
    access = tokens["access_token"]
    async with connect(server.mcp, access, "auto") as client:
        assert (await client.list_tools()).tools
    client_id = flow.client_id
    # The SDK's revocation handler wants a client_secret field even from a public client: empty.
    form = {"token": access, "client_id": client_id, "client_secret": ""}
    resp = httpx2.post(server.url + "/revoke", data=form, timeout=10)
    assert resp.status_code == 200
    assert httpx2.post(server.mcp, json={}, headers={"Authorization": f"Bearer {access}"}).status_code == 401
    refreshed = httpx2.post(
        server.url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status_code == 400


async def test_refresh_rotates_and_the_old_refresh_token_is_spent(server: Proc) -> None:
    flow = start(server.url)
    sign_in(flow, PHOTOGRAPHER)
    tokens = exchange(flow, approve(flow)).json()
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": flow.client_id,
    }
    fresh = httpx2.post(server.url + "/token", data=data, timeout=10)
    assert fresh.status_code == 200 and fresh.json()["access_token"] != tokens["access_token"]
    again = httpx2.post(server.url + "/token", data=data, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    async with connect(server.mcp, fresh.json()["access_token"], "auto") as client:
        assert "search_images" in {t.name for t in (await client.list_tools()).tools}


async def test_a_restart_keeps_sign_ins_sealed_at_rest(tmp_path: Path) -> None:
    """dpg-mcp restarts (same store, same key, same public URL) against a DPG that keeps running."""
    with sandbox_proc(tmp_path) as dpg:
        port = free_port()
        args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--api-url", dpg.url, "--ledger", str(tmp_path / "ledger.sqlite3")]
        with started(args, port, tmp_path / "first.log", env=env(tmp_path)) as first:
            _, tokens = signed_in(first.url, PHOTOGRAPHER)
        raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("signin.sqlite3*")))  # noqa: ASYNC240
        for secret in (tokens["access_token"], tokens["refresh_token"], "dpg_refresh_", "dpg_user_"):
            assert secret.encode() not in raw  # hashes and sealed blobs only
        with started(args, port, tmp_path / "second.log", env=env(tmp_path)) as second:
            async with connect(second.mcp, tokens["access_token"], "auto") as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                page = await client.call_tool("search_images", {"limit": 1})
            assert "search_images" in tools and not page.is_error, _text(page)
        # With another key the sealed DPG tokens cannot be opened: that sign-in is over, not misread.
        other = {**env(tmp_path), "DPG_MCP_SECRET_KEY": "another-key-" + "y" * 32}
        with started(args, port, tmp_path / "third.log", env=other) as third:
            resp = httpx2.post(
                third.mcp, json={}, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
            )
            assert resp.status_code == 401


def test_the_log_carries_no_tokens_codes_or_passwords(server: Proc) -> None:
    """The canary scan, run last in this module: every secret the flows above handled has its shape."""
    log = server.log_text()
    for shape in ("dpgmcp_at_", "dpgmcp_rt_", "dpg_refresh_", "dpg_user_", "dpg_mfa_", PASSWORD, "code="):
        assert shape not in log, shape


def test_the_issuer_and_every_link_use_the_public_url(tmp_path: Path) -> None:
    public = "https://mcp.example.test/dpg"  # a proxy serves dpg-mcp under /dpg
    port = free_port()
    args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), "--sandbox"]
    args += ["--public-url", public, "--ledger", str(tmp_path / "ledger.sqlite3")]
    with started(args, port, tmp_path / "public.log", env=env(tmp_path)) as proc:
        meta = httpx2.get(proc.url + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert meta["issuer"].rstrip("/") == public
        assert meta["authorization_endpoint"] == public + "/authorize"
        assert meta["token_endpoint"] == public + "/token"
        params = {
            "response_type": "code",
            "client_id": register(proc.url),
            "redirect_uri": REDIRECT,
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
            "resource": public + "/mcp",
        }
        first = httpx2.get(proc.url + "/authorize", params=params, timeout=10)
        location = first.headers["location"]
        assert first.status_code == 302 and location.startswith(public + "/signin?request=")
        page = httpx2.get(proc.url + "/signin?" + urlsplit(location).query, timeout=10)
        assert f'action="{public}/signin"' in page.text
        cookie = page.headers["set-cookie"]
        assert "Secure" in cookie and "Path=/dpg/signin" in cookie  # https, and the path the browser sees
        # A token for another resource is refused at /authorize (RFC 8707).
        other = httpx2.get(proc.url + "/authorize", params={**params, "resource": proc.url + "/mcp"})
        assert other.status_code == 302 and "error=invalid_target" in other.headers["location"]

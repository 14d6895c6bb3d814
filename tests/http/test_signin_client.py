"""The DPG sign-in client (dpg_mcp.dpg.signin) against the in-process sandbox: each step, errors, 429."""

from __future__ import annotations

import httpx2
import pytest

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.signin import SignInClient
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.sandbox.auth import PASSWORD, TOTP_SECRET, totp

pytestmark = pytest.mark.anyio


def client() -> SignInClient:
    app = Sandbox(SandboxConfig()).app
    return SignInClient("http://sandbox.test", transport=httpx2.ASGITransport(app=app))


async def test_mfa_member_signs_in_and_the_refresh_token_rotates() -> None:
    async with client() as dpg:
        step = await dpg.sign_in("editor@riverside.test", PASSWORD)
        assert step.mfa_required and step.mfa_token and step.refresh_token is None
        done = await dpg.mfa(step.mfa_token, totp(TOTP_SECRET))
        assert done.refresh_token and [a.name for a in done.accounts] == ["Riverside Sound Festival"]
        account = done.accounts[0].uuid or ""
        grant = await dpg.token(done.refresh_token, account)
        assert grant.refresh_token != done.refresh_token and grant.expires_in > 0
        me = await dpg.me(grant.access_token)
        assert me.user is not None and me.user.role == "admin"
        assert "api.images.delete" in me.capabilities
        with pytest.raises(DPGError) as spent:
            await dpg.token(done.refresh_token, account)  # single use
        assert spent.value.status == 401 and done.refresh_token not in str(spent.value)


async def test_wrong_password_and_code_are_401_without_secrets_in_the_text() -> None:
    async with client() as dpg:
        with pytest.raises(DPGError) as bad:
            await dpg.sign_in("editor@riverside.test", "not-the-password")
        assert bad.value.status == 401 and "not-the-password" not in str(bad.value)
        step = await dpg.sign_in("editor@riverside.test", PASSWORD)
        assert step.mfa_token
        with pytest.raises(DPGError) as code:
            await dpg.mfa(step.mfa_token, "000000" if totp(TOTP_SECRET) != "000000" else "111111")
        assert code.value.status == 401 and code.value.field == "code"
        assert step.mfa_token not in str(code.value)


async def test_rate_limit_surfaces_retry_after() -> None:
    async with client() as dpg:
        for _ in range(5):
            with pytest.raises(DPGError):
                await dpg.sign_in("nobody@riverside.test", "x")
        with pytest.raises(DPGError) as limited:
            await dpg.sign_in("nobody@riverside.test", "x")
        assert limited.value.status == 429 and limited.value.retry_after and limited.value.retry_after > 0


async def test_a_member_with_two_accounts_chooses_and_the_archive_has_the_api_off() -> None:
    async with client() as dpg:
        step = await dpg.sign_in("manager@riverside.test", PASSWORD)
        assert not step.mfa_required and step.refresh_token
        names = [a.name for a in step.accounts]
        assert names == ["Riverside Sound Festival", "Riverside Archive"]
        archive = step.accounts[1].uuid or ""
        grant = await dpg.token(step.refresh_token, archive)
        with pytest.raises(DPGError) as off:
            await dpg.me(grant.access_token)
        assert off.value.code == "api_not_enabled"
        main = await dpg.token(grant.refresh_token, step.accounts[0].uuid or "")
        me = await dpg.me(main.access_token)
        assert me.account is not None and me.account.name == "Riverside Sound Festival"


async def test_access_ttl_sets_the_user_token_lifetime() -> None:
    now = [1_000_000.0]
    app = Sandbox(SandboxConfig(access_ttl=5, clock=lambda: now[0])).app
    async with SignInClient("http://sandbox.test", transport=httpx2.ASGITransport(app=app)) as dpg:
        step = await dpg.sign_in("photographer@riverside.test", PASSWORD)
        assert step.refresh_token
        grant = await dpg.token(step.refresh_token, step.accounts[0].uuid or "")
        assert grant.expires_in == 5
        await dpg.me(grant.access_token)
        now[0] += 6
        with pytest.raises(DPGError) as expired:
            await dpg.me(grant.access_token)
        assert expired.value.status == 401

"""Sign-in flow: sign_in → mfa (TOTP) → token; refresh rotation; rate limits."""

from __future__ import annotations

from typing import Any

import httpx2

from dpg_mcp.sandbox import totp

from .conftest import ALL_SCOPES, LOGIN, PASSWORD, TOTP_SECRET, Api, FakeClock, assert_error

DEVICE = {"name": "pytest", "platform": "linux"}


async def sign_in(api: Api, login: str = LOGIN, password: str = PASSWORD) -> httpx2.Response:
    return await api.client(None).post(
        "/v1/auth/sign_in", json={"login": login, "password": password, "device": DEVICE}
    )


async def mfa(api: Api, mfa_token: str, code: str) -> httpx2.Response:
    return await api.client(None).post("/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})


async def token(api: Api, refresh: str, account: str) -> httpx2.Response:
    return await api.client(None).post(
        "/v1/auth/token", json={"refresh_token": refresh, "account_uuid": account}
    )


async def signed_in(api: Api, clock: FakeClock) -> dict[str, Any]:
    r = await sign_in(api)
    assert r.status_code == 200, r.text
    first = r.json()
    r = await mfa(api, first["mfa_token"], totp(TOTP_SECRET, at=clock()))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_sign_in_requires_mfa(api: Api) -> None:
    r = await sign_in(api)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfa_required"] is True
    assert isinstance(body["mfa_token"], str) and body["mfa_token"]
    assert "refresh_token" not in body or body["refresh_token"] is None


async def test_full_flow_and_refresh_rotation(api: Api, clock: FakeClock) -> None:
    body = await signed_in(api, clock)
    assert body["mfa_required"] is False
    refresh1 = body["refresh_token"]
    accounts = body["accounts"]
    assert len(accounts) >= 1
    acct = accounts[0]
    assert set(acct) >= {"uuid", "name", "unique_id"}
    assert acct["name"] == "Riverside Sound Festival" and acct["unique_id"] == "riverside"

    r = await token(api, refresh1, acct["uuid"])
    assert r.status_code == 200, r.text
    t1 = r.json()
    assert t1["token_type"] == "Bearer"
    assert t1["expires_in"] == 900
    assert t1["access_token"] and t1["expires_at"]
    refresh2 = t1["refresh_token"]
    assert refresh2 != refresh1

    me = await api.get("/v1/me", t1["access_token"])
    assert me.status_code == 200, me.text
    mej = me.json()
    assert mej["service_token"] is None
    assert set(mej["user"]) >= {"uuid", "name", "role"}
    assert mej["account"]["uuid"] == acct["uuid"]
    assert mej["capabilities"] and set(mej["capabilities"]) <= set(ALL_SCOPES)
    if mej["user"]["role"] == "admin":
        assert sorted(mej["capabilities"]) == sorted(ALL_SCOPES)

    # the old refresh token died on use
    assert_error(await token(api, refresh1, acct["uuid"]), 401, "unauthorized")
    r = await token(api, refresh2, acct["uuid"])
    assert r.status_code == 200, r.text
    refresh3 = r.json()["refresh_token"]
    assert refresh3 not in (refresh1, refresh2)
    assert_error(await token(api, refresh2, acct["uuid"]), 401, "unauthorized")


async def test_access_token_lives_15_minutes(api: Api, clock: FakeClock) -> None:
    body = await signed_in(api, clock)
    r = await token(api, body["refresh_token"], body["accounts"][0]["uuid"])
    access = r.json()["access_token"]
    clock.advance(899)
    assert (await api.get("/v1/me", access)).status_code == 200
    clock.advance(2)
    assert_error(await api.get("/v1/me", access), 401, "unauthorized")


async def test_bad_credentials_and_codes(api: Api, clock: FakeClock) -> None:
    assert_error(await sign_in(api, password="wrong"), 401, "unauthorized")
    assert_error(await sign_in(api, login="nobody@riverside.test"), 401, "unauthorized")
    r = await sign_in(api)
    mfa_token = r.json()["mfa_token"]
    good = totp(TOTP_SECRET, at=clock())
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    assert_error(await mfa(api, mfa_token, bad), 401, "unauthorized")
    assert_error(await mfa(api, "not-a-token", good), 401, "unauthorized")
    # a malformed body is a validation error naming the field
    r2 = await api.client(None).post("/v1/auth/sign_in", json={"password": PASSWORD, "device": DEVICE})
    assert_error(r2, 400, "validation", "login")
    assert_error(await token(api, "nope", "nope"), 401, "unauthorized")


async def test_totp_window_uses_clock(api: Api, clock: FakeClock) -> None:
    r = await sign_in(api)
    mfa_token = r.json()["mfa_token"]
    stale = totp(TOTP_SECRET, at=clock() - 600)  # ten minutes old: refused
    if stale != totp(TOTP_SECRET, at=clock()):
        assert_error(await mfa(api, mfa_token, stale), 401, "unauthorized")
    r = await mfa(api, mfa_token, totp(TOTP_SECRET, at=clock()))
    assert r.status_code == 200, r.text


async def test_sign_in_rate_limited(api: Api, clock: FakeClock) -> None:
    for _ in range(5):
        assert (await sign_in(api, password="wrong")).status_code == 401
    r = await sign_in(api)  # even the right password: over the limit
    assert_error(r, 429, "rate_limited")
    retry = float(r.headers["Retry-After"])
    assert 0 < retry <= 60
    # another login has its own budget
    assert (await sign_in(api, login="other@riverside.test")).status_code == 401
    clock.advance(retry + 0.5)
    r = await sign_in(api)
    assert r.status_code == 200, r.text


async def test_mfa_rate_limited_per_mfa_token(api: Api, clock: FakeClock) -> None:
    mfa_token = (await sign_in(api)).json()["mfa_token"]
    good = totp(TOTP_SECRET, at=clock())
    bad = f"{(int(good) + 7) % 1_000_000:06d}"
    for _ in range(5):
        assert (await mfa(api, mfa_token, bad)).status_code == 401
    r = await mfa(api, mfa_token, good)
    assert_error(r, 429, "rate_limited")
    assert float(r.headers["Retry-After"]) > 0


async def test_auth_needs_no_idempotency_key(api: Api) -> None:
    r = await sign_in(api)
    assert r.status_code == 200
    assert "Idempotency-Key" not in r.request.headers


async def test_user_without_mfa(api: Api) -> None:
    r = await sign_in(api, login="photographer@riverside.test")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mfa_required"] is False and body["refresh_token"] and body["accounts"]
    r = await token(api, body["refresh_token"], body["accounts"][0]["uuid"])
    access = r.json()["access_token"]
    me = (await api.get("/v1/me", access)).json()
    assert me["user"]["role"] == "user"
    assert sorted(me["capabilities"]) == sorted(s for s in ALL_SCOPES if s != "api.images.delete")
    img = (await api.get("/v1/images", params={"limit": 1})).json()[0]["public_uuid"]
    r = await api.client(access).delete(f"/v1/images/{img}", headers={"Idempotency-Key": "k1"})
    err = assert_error(r, 403, "forbidden")
    assert "api.images.delete" in err["detail"]


async def test_unknown_account_does_not_burn_refresh(api: Api, clock: FakeClock) -> None:
    body = await signed_in(api, clock)
    assert_error(
        await token(api, body["refresh_token"], "00000000-0000-4000-8000-000000000000"), 403, "forbidden"
    )
    r = await token(api, body["refresh_token"], body["accounts"][0]["uuid"])
    assert r.status_code == 200, r.text


async def test_mfa_token_expires(api: Api, clock: FakeClock) -> None:
    mfa_token = (await sign_in(api)).json()["mfa_token"]
    clock.advance(301)
    assert_error(await mfa(api, mfa_token, totp(TOTP_SECRET, at=clock())), 401, "unauthorized")


async def test_identity_survives_refresh(api: Api, clock: FakeClock) -> None:
    """Operations belong to the user, not to one access token: a refreshed token still sees them."""
    body = await signed_in(api, clock)
    acct = body["accounts"][0]["uuid"]
    t1 = (await token(api, body["refresh_token"], acct)).json()
    img = (await api.get("/v1/images", params={"limit": 1})).json()[0]["public_uuid"]
    op = await api.ok_write(
        "PUT", f"/v1/images/{img}/rating", {"rating": 4}, token=t1["access_token"], key="k-user"
    )
    t2 = (await token(api, t1["refresh_token"], acct)).json()
    r = await api.get(f"/v1/operations/{op['uuid']}", t2["access_token"])
    assert r.status_code == 200
    again = await api.write(
        "PUT", f"/v1/images/{img}/rating", {"rating": 4}, token=t2["access_token"], key="k-user"
    )
    assert again.json()["uuid"] == op["uuid"]

"""llms.txt keeps telling the truth: every path, scope, code, header, limit and duration it states is checked
against the live sandbox. Change a number in llms.txt and the matching probe here changes with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dpg_mcp.sandbox import Faults, totp

from .catalog import build_ctx
from .conftest import (
    ADMIN,
    ALL_SCOPES,
    DISABLED,
    LOGIN,
    PASSWORD,
    READONLY,
    TOTP_SECRET,
    UPLOADER,
    Api,
    FakeClock,
    assert_error,
    make_sandbox,
    new_key,
)
from .test_openapi import app_routes, load_spec, norm_path, spec_routes

LLMS = Path(__file__).resolve().parents[2] / "llms.txt"
TEXT = LLMS.read_text()
NOPE = "00000000-0000-4000-8000-000000000000"


def section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", TEXT, re.S | re.M)
    assert m, f"llms.txt lost its '## {title}' section"
    return m.group(1)


def number(pattern: str, where: str = TEXT) -> int:
    m = re.search(pattern, where)
    assert m, f"llms.txt no longer states {pattern!r}"
    return int(m.group(1))


def numbers(pattern: str, where: str = TEXT) -> tuple[int, ...]:
    m = re.search(pattern, where)
    assert m, f"llms.txt no longer states {pattern!r}"
    return tuple(int(g) for g in m.groups())


def words(pattern: str, where: str = TEXT) -> list[str]:
    m = re.search(pattern, where)
    assert m, f"llms.txt no longer states {pattern!r}"
    return re.findall(r"`([^`]+)`", m.group(1)) or m.group(1).split("|")


# --- form ---------------------------------------------------------------------------------------------


def test_llmstxt_form() -> None:
    lines = TEXT.splitlines()
    assert lines[0].startswith("# ") and "DPG" in lines[0]
    assert next(ln for ln in lines[1:] if ln.strip()).startswith("> ")
    h2 = re.findall(r"^## (.+)$", TEXT, re.M)
    assert h2[-1] == "Docs"
    docs = section("Docs")
    links = re.findall(r"^- \[[^\]]+\]\((https?://[^)]+)\)", docs, re.M)
    assert len(links) >= 2
    for want in (
        "Auth and scopes",
        "How writes work",
        "Idempotency",
        "Identifiers",
        "Paging",
        "Errors",
        "Rate limits",
        "Limits",
    ):
        assert want in h2
    assert len(TEXT.encode()) < 9000, "llms.txt must stay a single small fetch (< 9 KB)"


async def test_served_verbatim_and_full(api: Api) -> None:
    r = await api.get("/llms.txt", None)
    assert r.status_code == 200
    assert r.text == TEXT
    assert r.headers["Content-Type"].startswith("text/plain")
    full = await api.get("/llms-full.txt", None)
    assert full.status_code == 200
    assert full.text.startswith(TEXT)
    spec = (await api.get("/openapi.v1.yaml", None)).text
    assert spec in full.text


def test_docs_links_are_served_paths(sb: Any) -> None:
    docs = section("Docs")
    for url in re.findall(r"\((https?://[^)]+)\)", docs):
        path = "/" + url.split("/", 3)[3]
        assert path in {"/openapi.v1.yaml", "/llms-full.txt", "/llms.txt"} or path.startswith("/v1/"), url


# --- paths --------------------------------------------------------------------------------------------

PATH_RE = re.compile(r"`(?:(GET|POST|PUT|PATCH|DELETE) )?(/v1/[^`\s?]*)")


def named_paths() -> list[tuple[str | None, str]]:
    return [(m.group(1), norm_path(m.group(2))) for m in PATH_RE.finditer(TEXT)]


def test_every_path_named_exists(sb: Any) -> None:
    spec = spec_routes(load_spec())
    app = app_routes(list(sb.app.routes))
    named = named_paths()
    assert len(named) >= 30
    for method, path in named:
        if method:
            assert (method, path) in spec, f"llms.txt names {method} {path}, not in openapi.v1.yaml"
            assert (method, path) in app, f"llms.txt names {method} {path}, not served"
        else:
            assert any(p == path for _, p in spec), path
            assert any(p == path for _, p in app), path


def test_every_v1_route_is_mentioned(sb: Any) -> None:
    """The brief covers the whole API: each /v1 route of the app appears in it."""
    named = {(m, p) for m, p in named_paths() if m}
    app = {(m, p) for m, p in app_routes(list(sb.app.routes)) if p.startswith("/v1/")}
    assert sorted(app - named) == []


@pytest.mark.parametrize("path", ["/llms.txt", "/llms-full.txt", "/openapi.v1.yaml"])
async def test_public_paths(api: Api, path: str) -> None:
    assert f"`{path}`" in TEXT
    assert (await api.get(path, None)).status_code == 200


# --- scopes, identities --------------------------------------------------------------------------------


async def test_scopes_named(api: Api) -> None:
    named = set(re.findall(r"`(api\.[a-z.]+)`", TEXT))
    assert named == set(ALL_SCOPES)
    assert number(r"The (\d+) scopes") == len(named)
    me = (await api.get("/v1/me", ADMIN)).json()
    assert set(me["capabilities"]) == named
    shape = re.search(r"`GET /v1/me` → `\{([^}]+)\}`", TEXT)
    assert shape
    assert {s.strip() for s in shape.group(1).split(",")} == set(me)
    assert "`dpg_api_live_…`" in TEXT and ADMIN.startswith("dpg_api_live_")


async def test_missing_scope_detail_names_it(api: Api) -> None:
    assert "`403 forbidden` and `detail` names the scope" in TEXT
    ctx = await build_ctx(api)
    err = assert_error(
        await api.write("PUT", f"/v1/images/{ctx.img}/rating", {"rating": 1}, token=READONLY),
        403,
        "forbidden",
    )
    assert "api.ratings.write" in err["detail"]
    assert "`403 api_not_enabled`" in TEXT
    assert_error(await api.get("/v1/me", DISABLED), 403, "api_not_enabled")


async def test_sign_in_flow_as_stated(api: Api, clock: FakeClock) -> None:
    auth = section("Auth and scopes")
    for key in (
        "mfa_required",
        "mfa_token",
        "refresh_token",
        "accounts",
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
    ):
        assert key in auth
    expires_in = number(r"expires_in: (\d+)", auth)
    minutes = number(r"access token lasts (\d+) minutes", auth)
    assert expires_in == minutes * 60
    digits = number(r"\((\d+)-digit TOTP\)", auth)
    c = api.client(None)
    r = await c.post(
        "/v1/auth/sign_in",
        json={"login": LOGIN, "password": PASSWORD, "device": {"name": "t", "platform": "p"}},
    )
    assert set(r.json()) == {"mfa_required", "mfa_token"}
    code = totp(TOTP_SECRET, at=clock())
    assert len(code) == digits
    r = await c.post("/v1/auth/mfa", json={"mfa_token": r.json()["mfa_token"], "code": code})
    body = r.json()
    assert set(body) == {"mfa_required", "refresh_token", "accounts"}
    r = await c.post(
        "/v1/auth/token",
        json={"refresh_token": body["refresh_token"], "account_uuid": body["accounts"][0]["uuid"]},
    )
    tok = r.json()
    assert set(tok) == {"access_token", "token_type", "expires_in", "expires_at", "refresh_token"}
    assert tok["expires_in"] == expires_in and tok["token_type"] == "Bearer"
    clock.advance(minutes * 60 + 1)
    assert_error(await api.get("/v1/me", tok["access_token"]), 401, "unauthorized")
    assert "an old one gets `401 unauthorized`" in auth
    r = await c.post(
        "/v1/auth/token",
        json={"refresh_token": body["refresh_token"], "account_uuid": body["accounts"][0]["uuid"]},
    )
    assert_error(r, 401, "unauthorized")


# --- writes, operations, idempotency -------------------------------------------------------------------


async def test_writes_as_stated(api: Api, clock: FakeClock) -> None:
    writes = section("How writes work")
    ctx = await build_ctx(api)
    op_fields = re.search(r"Operation: `\{([^}]+)\}`", writes)
    assert op_fields
    r = await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "llms"})
    assert r.status_code == 202 and "`202 Accepted`" in writes
    op = r.json()
    assert set(op) == {s.strip() for s in op_fields.group(1).split(",")}
    assert (
        "`Location: /v1/operations/{uuid}`" in writes
        and r.headers["Location"] == f"/v1/operations/{op['uuid']}"
    )
    assert "`op-…`" in TEXT and op["uuid"].startswith("op-")
    assert op["status"] == "succeeded"
    statuses = re.findall(r"`(pending|running|succeeded|failed)`", writes)
    assert set(statuses) == {"pending", "running", "succeeded", "failed"}
    spec_text = LLMS.parent.joinpath("dpg_mcp/sandbox/openapi.v1.yaml").read_text()
    for s in statuses:
        assert s in spec_text
    # direct answers
    assert numbers(r"`POST /v1/uploads` → `(\d+)` ticket, `POST /v1/downloads` → `(\d+)` link", writes) == (
        (await api.write("POST", "/v1/uploads", {"filename": "a.png"})).status_code,
        (await api.write("POST", "/v1/downloads", {"image_public_uuid": ctx.img})).status_code,
    )
    # ETag / If-None-Match → 304 on a GET and on an operation
    assert "`If-None-Match`" in writes and "`304`" in writes
    for path in ("/v1/me", f"/v1/operations/{op['uuid']}"):
        g = await api.get(path)
        assert (await api.get(path, headers={"If-None-Match": g.headers["ETag"]})).status_code == 304


async def test_batch_as_stated(api: Api) -> None:
    writes = section("How writes work")
    lo, hi = numbers(r"Batch: (\d+)–(\d+) items", section("Limits"))
    ctx = await build_ctx(api)

    def ops(n: int, bad_at: int | None = None) -> dict[str, Any]:
        items = [
            {"method": "PUT", "path": f"/v1/images/{ctx.img}/rating", "body": {"rating": 1}} for _ in range(n)
        ]
        if bad_at is not None:
            items[bad_at]["body"] = {"rating": 9}
        return {"operations": items}

    assert (await api.write("POST", "/v1/operations/batch", ops(hi))).status_code == 202
    assert_error(
        await api.write("POST", "/v1/operations/batch", ops(hi + 1)), 400, "validation", "operations"
    )
    assert_error(
        await api.write("POST", "/v1/operations/batch", ops(lo - 1)), 400, "validation", "operations"
    )
    example = re.search(r"field like `(operations\[(\d+)\]\.body\.rating)`", writes)
    assert example
    digest = api.sb.state_digest()
    r = await api.write("POST", "/v1/operations/batch", ops(5, bad_at=int(example.group(2))))
    assert_error(r, 400, "validation", example.group(1))
    assert api.sb.state_digest() == digest
    op = await api.ok_write("POST", "/v1/operations/batch", ops(2))
    assert op["type"] == "batch" and len(op["result"]["children"]) == 2


async def test_idempotency_as_stated(api: Api, clock: FakeClock) -> None:
    idem = section("Idempotency")
    hours = number(r"remembered per token for (\d+) hours", idem)
    ctx = await build_ctx(api)
    key = new_key()
    path = f"/v1/images/{ctx.img}"
    op = await api.ok_write("PATCH", path, {"title": "one"}, key=key)
    replay = await api.write("PATCH", path, {"title": "one"}, key=key)
    assert replay.json()["uuid"] == op["uuid"]
    assert "`Idempotent-Replayed: true`" in idem and replay.headers["Idempotent-Replayed"] == "true"
    assert "`409 idempotency_key_conflict`" in idem
    assert_error(await api.write("PATCH", path, {"title": "two"}, key=key), 409, "idempotency_key_conflict")
    assert "`400 validation`, field `Idempotency-Key`" in idem
    assert_error(
        await api.write("PATCH", path, {"title": "x"}, key=None), 400, "validation", "Idempotency-Key"
    )
    clock.advance(hours * 3600 - 10)
    assert (await api.write("PATCH", path, {"title": "one"}, key=key)).json()["uuid"] == op["uuid"]
    clock.advance(20)
    assert (await api.write("PATCH", path, {"title": "two"}, key=key)).status_code == 202


# --- paging, identifiers, finding -----------------------------------------------------------------------


async def test_paging_as_stated(api: Api) -> None:
    paging = section("Paging")
    default = number(r"`limit` defaults to (\d+)", paging)
    lo, hi = numbers(r"allowed (\d+)–(\d+)", paging)
    r = await api.get("/v1/images")
    assert len(r.json()) == default
    for h in ("X-Has-More", "X-Next-Offset", "X-Total-Count"):
        assert f"`{h}" in paging and h in r.headers
    assert len((await api.get("/v1/images", params={"limit": hi})).json()) == hi
    assert_error(await api.get("/v1/images", params={"limit": hi + 1}), 400, "validation", "limit")
    assert_error(await api.get("/v1/images", params={"limit": lo - 1}), 400, "validation", "limit")
    assert "`offset` ≥ 0" in paging
    assert_error(await api.get("/v1/images", params={"offset": -1}), 400, "validation", "offset")
    last = await api.get("/v1/images", params={"offset": int(r.headers["X-Total-Count"]) - 1})
    assert last.headers["X-Has-More"] == "false" and "X-Next-Offset" not in last.headers


async def test_filters_named_are_accepted(api: Api) -> None:
    finding = section("Finding images")
    first = finding.split("\n- `GET /v1/facets`")[0]
    names = set(re.findall(r"`([a-z_]+)`", first)) | {
        f"{n}{s}" for n in re.findall(r"`([a-z_]+)_from`/`_to`", first) for s in ("_from", "_to")
    }
    names = {n for n in names if not n.startswith("_")} - {"true", "false"}
    names |= {"bbox"}
    spec_params = {
        p["name"] for p in load_spec()["paths"]["/v1/images"]["get"].get("parameters", []) if "name" in p
    }
    spec_text = LLMS.parent.joinpath("dpg_mcp/sandbox/openapi.v1.yaml").read_text()
    assert len(names) >= 16
    for n in sorted(names):
        assert n in spec_params or f"name: {n}" in spec_text, f"{n} not documented for GET /v1/images"
        # a value of the wrong type is refused naming that parameter (the server knows it)
        if n in {"query", "keyword", "namespace", "exif_property", "exif_value"}:
            assert (await api.get("/v1/images", params={n: "x"})).status_code == 200
        else:
            assert_error(await api.get("/v1/images", params={n: "@@"}), 400, "validation", n)
    facets = (await api.get("/v1/facets")).json()
    shape = re.search(r"answers counts `\{([^}]+)\}`", finding)
    assert shape and {s.strip() for s in shape.group(1).split(",")} == set(facets)


async def test_keyword_identifiers(api: Api) -> None:
    ident = section("Identifiers")
    assert "`axis:value`" in ident and "`{namespace, value}`" in ident
    ctx = await build_ctx(api)
    await api.ok_write("POST", f"/v1/images/{ctx.img}/keywords", {"keywords": ["artist:Marina"]})
    kws = (await api.image(ctx.img))["keywords"]
    assert {"namespace": "artist", "value": "Marina"} in [
        {"namespace": k["namespace"], "value": k["value"]} for k in kws
    ]
    got = await api.all_images(keyword="Marina", namespace="artist")
    assert ctx.img in [i["public_uuid"] for i in got]


# --- errors, rate limits --------------------------------------------------------------------------------


async def test_error_envelope_as_stated(api: Api) -> None:
    errors = section("Errors")
    keys = re.search(r'\{"error": \{([^}]+)\}\}', errors)
    assert keys
    err = assert_error(await api.get("/v1/me", None), 401, "unauthorized")
    assert {k.strip().strip('"') for k in keys.group(1).split(",")} == set(err)
    assert "Unknown body fields and query parameters are refused." in errors
    assert_error(await api.get("/v1/images", params={"sort": "name"}), 400, "validation", "sort")
    ctx = await build_ctx(api)
    r = await api.write("PUT", f"/v1/images/{ctx.img}/rating", {"rating": 1, "stars": 5})
    assert_error(r, 400, "validation", "stars")
    assert "a `400` changed nothing" in errors


async def provoke(code: str, api: Api, clock: FakeClock) -> Any:
    ctx = await build_ctx(api)
    img = f"/v1/images/{ctx.img}"
    c = api.client(None)
    match code:
        case "validation":
            return await api.write("PATCH", img, {"rotation": 1})
        case "unauthorized":
            return await api.get("/v1/me", None)
        case "forbidden":
            return await api.write("PATCH", img, {"title": "x"}, token=READONLY)
        case "api_not_enabled":
            return await api.get("/v1/me", DISABLED)
        case "image_not_found":
            return await api.get(f"/v1/images/{NOPE}")
        case "set_not_found":
            return await api.get(f"/v1/sets/{NOPE}")
        case "operation_not_found":
            return await api.get("/v1/operations/op-" + NOPE)
        case "snapshot_not_found":
            return await api.write("POST", f"/v1/sets/{ctx.set_uuid}/restore", {"snapshot_uuid": NOPE})
        case "not_found":
            return await api.get("/v1/nothing-here")
        case "idempotency_key_conflict":
            await api.write("PATCH", img, {"title": "a"}, key="k-conflict")
            return await api.write("PATCH", img, {"title": "b"}, key="k-conflict")
        case "payload_too_large":
            return await api.write("PATCH", img, {"title": "x", "description": "d" * 2_000_000})
        case "rate_limited":
            for _ in range(10):
                r = await c.post(
                    "/v1/auth/sign_in",
                    json={"login": LOGIN, "password": "no", "device": {"name": "t", "platform": "p"}},
                )
                if r.status_code == 429:
                    return r
            return r
        case "internal":
            sb = make_sandbox(clock, faults=Faults(error_rate=1.0))
            other = Api(sb)
            try:
                return await other.get("/v1/me")
            finally:
                await other.aclose()
        case "ticket_used" | "invalid_signature" | "ticket_expired":
            from .test_files import png_bytes, ticket, upload

            t = await ticket(api, {"filename": "a.png"}, token=UPLOADER)
            if code == "invalid_signature":
                return await upload(api, t, png_bytes(), {**t["fields"], "signature": "00"})
            if code == "ticket_expired":
                clock.advance(3600)
                return await upload(api, t, png_bytes())
            await upload(api, t, png_bytes())
            return await upload(api, t, png_bytes())
    raise AssertionError(f"llms.txt names error code {code!r}; teach provoke() to cause it")


CODES = re.findall(r"`([a-z_]+)` (\d{3})", section("Errors"))


@pytest.mark.parametrize(("code", "status"), CODES, ids=[c for c, _ in CODES])
async def test_every_error_code_as_stated(api: Api, clock: FakeClock, code: str, status: str) -> None:
    r = await provoke(code, api, clock)
    assert_error(r, int(status), code)
    if code == "rate_limited":
        assert float(r.headers["Retry-After"]) > 0


def test_codes_listed() -> None:
    assert len(CODES) >= 13


async def test_rate_limits_as_stated(api: Api, clock: FakeClock) -> None:
    rl = section("Rate limits")
    n = number(r"(\d+) attempts a minute", rl)
    c = api.client(None)
    dev = {"name": "t", "platform": "p"}
    for _ in range(n):
        r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": "no", "device": dev})
        assert r.status_code == 401
    r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": PASSWORD, "device": dev})
    assert_error(r, 429, "rate_limited")
    assert "`Retry-After` in seconds" in rl
    wait = float(r.headers["Retry-After"])
    assert 0 < wait <= 60
    clock.advance(60)
    r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": PASSWORD, "device": dev})
    assert r.status_code == 200
    # per mfa_token
    mt = r.json()["mfa_token"]
    for _ in range(n):
        assert (await c.post("/v1/auth/mfa", json={"mfa_token": mt, "code": "000000"})).status_code in (
            401,
            200,
        )
    r = await c.post("/v1/auth/mfa", json={"mfa_token": mt, "code": totp(TOTP_SECRET, at=clock())})
    assert_error(r, 429, "rate_limited")


# --- limits ---------------------------------------------------------------------------------------------


async def test_text_limits_as_stated(api: Api) -> None:
    lim = section("Limits")
    ctx = await build_ctx(api)
    img = f"/v1/images/{ctx.img}"
    probes = [
        (number(r"title ≤ (\d+) chars", lim), "PATCH", img, lambda s: {"title": s}, "title"),
        (number(r"description ≤ (\d+)", lim), "PATCH", img, lambda s: {"description": s}, "description"),
        (number(r"alt_text ≤ (\d+)", lim), "PUT", f"{img}/alt_text", lambda s: {"alt_text": s}, "alt_text"),
        (
            number(r"keyword ≤ (\d+) chars", lim),
            "POST",
            f"{img}/keywords",
            lambda s: {"keywords": [s]},
            "keywords*",
        ),
        (numbers(r"Set name (\d+)–(\d+) chars", lim)[1], "POST", "/v1/sets", lambda s: {"name": s}, "name"),
    ]
    for n, method, path, body, field in probes:
        assert (await api.write(method, path, body("a" * n))).status_code == 202, (path, n)
        r = await api.write(method, path, body("a" * (n + 1)))
        err = assert_error(r, 400, "validation")
        assert err["field"].startswith(field.rstrip("*")), err
        assert str(n) in err["detail"], err
    assert numbers(r"Set name (\d+)–(\d+) chars", lim)[0] == 1
    assert_error(await api.write("POST", "/v1/sets", {"name": ""}), 400, "validation", "name")


async def test_value_limits_as_stated(api: Api, images: list[dict[str, Any]]) -> None:
    lim = section("Limits")
    ctx = await build_ctx(api)
    img = f"/v1/images/{ctx.img}"
    per_call = number(r"≤ (\d+) keywords per call", lim)
    ok = await api.write("POST", f"{img}/keywords", {"keywords": [f"w{i}" for i in range(per_call)]})
    assert ok.status_code == 202
    r = await api.write("POST", f"{img}/keywords", {"keywords": [f"v{i}" for i in range(per_call + 1)]})
    assert_error(r, 400, "validation", "keywords")
    lo, hi = numbers(r"rating: integer (\d+)–(\d+)", lim)
    for v in (lo, hi):
        assert (await api.write("PUT", f"{img}/rating", {"rating": v})).status_code == 202
    for v in (lo - 1, hi + 1, True, 2.5):
        assert_error(await api.write("PUT", f"{img}/rating", {"rating": v}), 400, "validation", "rating")
    rot = numbers(r"rotation: (\d+), (\d+), (\d+) or (\d+)", lim)
    for v in rot:
        assert (await api.write("PATCH", img, {"rotation": v})).status_code == 202
    assert_error(await api.write("PATCH", img, {"rotation": 45}), 400, "validation", "rotation")
    assert "`hidden`: a real JSON boolean" in lim
    members = ctx.set_members[:1]
    vis = f"/v1/sets/{ctx.set_uuid}/visibility"
    assert (await api.write("PATCH", vis, {"image_public_uuids": members, "hidden": True})).status_code == 202
    for v in ("true", 1):
        r = await api.write("PATCH", vis, {"image_public_uuids": members, "hidden": v})
        assert_error(r, 400, "validation", "hidden")
    colours = re.search(r"colour `([a-z|]+)`", lim)
    types = re.search(r"type `([a-z|]+)`", lim)
    assert colours and types
    for c in colours.group(1).split("|"):
        assert (await api.write("POST", "/v1/sets", {"name": "c", "colour": c})).status_code == 202, c
    for t in types.group(1).split("|"):
        assert (await api.write("POST", "/v1/sets", {"name": "t", "type": t})).status_code == 202, t
    assert_error(
        await api.write("POST", "/v1/sets", {"name": "c", "colour": "pink"}), 400, "validation", "colour"
    )
    assert_error(
        await api.write("POST", "/v1/sets", {"name": "t", "type": "album"}), 400, "validation", "type"
    )
    alo, ahi = numbers(r"Archive: (\d+)–(\d+) images", lim)
    ids = [i["public_uuid"] for i in images]
    arch = "/v1/archives"
    assert_error(
        await api.write("POST", arch, {"image_public_uuids": ids[: alo - 1]}),
        400,
        "validation",
        "image_public_uuids",
    )
    r = await api.write("POST", arch, {"image_public_uuids": (ids * 3)[: ahi + 1]})
    assert_error(r, 400, "validation", "image_public_uuids")
    assert (await api.write("POST", arch, {"image_public_uuids": ids[:alo]})).status_code == 202
    # "Crop: whole pixels inside the original"
    assert_error(
        await api.write(
            "PUT", f"{img}/crop", {"aspect_ratio": "1:1", "x": 0, "y": 0, "width": 1.5, "height": 1}
        ),
        400,
        "validation",
    )
    side = ctx.orig_w + 1
    r = await api.write(
        "PUT", f"{img}/crop", {"aspect_ratio": "1:1", "x": 0, "y": 0, "width": side, "height": side}
    )
    assert_error(r, 400, "validation", "width")
    r = await api.write(
        "PUT", f"{img}/crop", {"aspect_ratio": "3:2", "x": 0, "y": 0, "width": 30, "height": 10}
    )
    assert_error(r, 400, "validation", "height")
    assert (
        await api.write(
            "PUT", f"{img}/crop", {"aspect_ratio": "3:2", "x": 0, "y": 0, "width": 30, "height": 20}
        )
    ).status_code == 202


# --- versions and files -----------------------------------------------------------------------------------


async def test_versions_as_stated(api: Api, images: list[dict[str, Any]]) -> None:
    files = section("Versions, uploads, downloads, archives")
    line = next(ln for ln in files.splitlines() if ln.startswith("- Versions:"))
    names = [n for n in re.findall(r"`([a-z]+)`", line) if n != "url"]
    im = images[0]
    assert names == [v["name"] for v in im["versions"]]
    assert next(v for v in im["versions"] if v["name"] == "original")["url"] is None
    px = number(r"`thumbnail` \(≤ (\d+) px long side", line)
    thumb = next(v for v in im["versions"] if v["name"] == "thumbnail")
    assert max(thumb["width"], thumb["height"]) <= px


async def test_file_lifetimes_as_stated(api: Api, clock: FakeClock, images: list[dict[str, Any]]) -> None:
    from .test_files import png_bytes, ticket, upload

    files = section("Versions, uploads, downloads, archives")
    t_min = number(r"valid (\d+) minutes\. POST multipart", files)
    d_min = number(r"a signed URL valid (\d+) minutes", files)
    a_h = number(r"ZIP `url` \(valid (\d+) hours\)", files)
    t1 = await ticket(api, {"filename": "a.png"})
    t2 = await ticket(api, {"filename": "b.png"})
    assert set(re.search(r"`201` ticket `\{([^}]+)\}`", files).group(1).replace(" ", "").split(",")) == set(
        t1
    )  # type: ignore[union-attr]
    assert t1["expires_at"]
    link = (
        await api.write(
            "POST", "/v1/downloads", {"image_public_uuid": images[0]["public_uuid"]}, token=UPLOADER
        )
    ).json()
    assert set(re.search(r"`200 \{([^}]+)\}`", files).group(1).replace(" ", "").split(",")) == set(link)  # type: ignore[union-attr]
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": [images[0]["public_uuid"]]})
    res = op["result"]
    for k in ("url", "size_bytes", "image_count", "expires_at"):
        assert f"`{k}`" in files and k in res
    clock.advance(t_min * 60 - 5)
    assert (await upload(api, t1, png_bytes())).status_code == 201
    assert_error(await upload(api, t1, png_bytes()), 409, "ticket_used")
    clock.advance(10)
    assert_error(await upload(api, t2, png_bytes()), 403, "ticket_expired")
    start = clock()
    link = (
        await api.write(
            "POST", "/v1/downloads", {"image_public_uuid": images[1]["public_uuid"]}, token=UPLOADER
        )
    ).json()
    clock.now = start + d_min * 60 - 1
    assert (await api.get(link["url"], None)).status_code == 200
    clock.now = start + d_min * 60 + 1
    assert (await api.get(link["url"], None)).status_code == 403
    exp = (
        datetime.fromisoformat(res["expires_at"].replace("Z", "+00:00"))
        if isinstance(res["expires_at"], str)
        else datetime.fromtimestamp(res["expires_at"], UTC)
    )
    made = datetime.fromisoformat(op["created_at"].replace("Z", "+00:00"))
    assert abs((exp - made).total_seconds() - a_h * 3600) <= 2
    listed = (await api.get("/v1/archives", UPLOADER)).json()
    assert res["uuid"] in [a["uuid"] for a in listed] or clock() > exp.timestamp()


def top_level_names(inner: str) -> set[str]:
    """'a, b?, c: [{d, e}]' -> {'a', 'b', 'c'}."""
    names, depth, cur = set(), 0, ""
    for ch in inner + ",":
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            name = cur.split(":")[0].strip().rstrip("?")
            if name and name != "...":
                names.add(name)
            cur = ""
        else:
            cur += ch
    return names


BODY_RE = re.compile(r"`(POST|PUT|PATCH|DELETE) (/v1/[^`\s]+)` `\{([^`]*)\}`")


def test_request_bodies_named_match_the_spec() -> None:
    from .test_contract_schemas import operation, resolve

    found = BODY_RE.findall(TEXT)
    assert len(found) >= 15
    for method, path, inner in found:
        real = path.replace("{id}", NOPE).replace("{public_uuid}", NOPE)
        _tpl, op = operation(method, real)
        schema = resolve(resolve(op["requestBody"])["content"]["application/json"]["schema"])
        props = set(schema.get("properties", {}))
        names = top_level_names(inner)
        assert names <= props, f"llms.txt: {method} {path} body names {names - props}, unknown to the spec"
        for req in schema.get("required", []):
            assert req in names, f"llms.txt: {method} {path} omits required field {req}"

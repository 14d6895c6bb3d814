"""Review probes: the sandbox rule by rule against CONTRACT.md, DECISIONS.md and PLAN.md §1; robustness."""

from __future__ import annotations

import json
import random
from typing import Any

import anyio
import httpx2
import pytest

from dpg_mcp.sandbox import Faults, Sandbox
from dpg_mcp.sandbox.app import describe_routes
from dpg_mcp.sandbox.images_png import render_png

from .conftest import (
    ADMIN,
    BASE,
    DISABLED,
    LOGIN,
    PASSWORD,
    READONLY,
    Api,
    FakeClock,
    assert_error,
    make_sandbox,
    new_key,
)

NOPE = "00000000-0000-4000-8000-000000000000"


# ---- check order: 401 → api_not_enabled → scope → Idempotency-Key → replay/conflict → validation → 404


async def test_check_order_on_a_write(api: Api) -> None:
    path = f"/v1/images/{NOPE}"
    bad = {"rotation": 45}
    assert_error(await api.write("PATCH", path, bad, token=None, key=None), 401, "unauthorized")
    assert_error(
        await api.write("PATCH", path, bad, token="dpg_api_live_nope", key=None), 401, "unauthorized"
    )
    assert_error(await api.write("PATCH", path, bad, token=DISABLED, key=None), 403, "api_not_enabled")
    err = assert_error(await api.write("PATCH", path, bad, token=READONLY, key=None), 403, "forbidden")
    assert "api.images.write" in err["detail"]
    assert_error(await api.write("PATCH", path, bad, key=None), 400, "validation", "Idempotency-Key")
    assert_error(await api.write("PATCH", path, bad), 400, "validation", "rotation")
    assert_error(await api.write("PATCH", path, {"rotation": 90}), 404, "image_not_found")


async def test_replay_and_conflict_come_before_validation(api: Api, images: list[dict[str, Any]]) -> None:
    path = f"/v1/images/{images[0]['public_uuid']}"
    key = new_key()
    first = await api.ok_write("PATCH", path, {"title": "one"}, key=key)
    # the same key with an INVALID body is a different request: 409, not 400
    assert_error(await api.write("PATCH", path, {"rotation": 45}, key=key), 409, "idempotency_key_conflict")
    again = await api.write("PATCH", path, {"title": "one"}, key=key)
    assert again.status_code == 202 and again.json()["uuid"] == first["uuid"]
    assert again.headers["Idempotent-Replayed"] == "true"
    # keys are per token: the same key from another token is its own write
    other = await api.write("PATCH", path, {"title": "two"}, key=key, token="dpg_api_live_sandbox_editor")
    assert other.status_code == 202 and other.json()["uuid"] != first["uuid"]


# ---- envelopes everywhere ----


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status", "code"),
    [
        ("GET", "/v1/nope", None, {}, 404, "not_found"),
        ("GET", "/nope", None, {}, 404, "not_found"),
        ("DELETE", "/v1/me", None, {}, 405, "method_not_allowed"),
        ("HEAD", "/v1/images", None, {}, 405, "method_not_allowed"),
        ("POST", "/v1/sets", b"{nope", {"Content-Type": "application/json"}, 400, "validation"),
        ("POST", "/v1/sets", b"\xff\xfe", {"Content-Type": "application/json"}, 400, "validation"),
        ("POST", "/v1/sets", b"[1]", {"Content-Type": "application/json"}, 400, "validation"),
        ("POST", "/v1/sets", b'{"a":' * 5000, {"Content-Type": "application/json"}, 400, "validation"),
        (
            "POST",
            "/v1/sets",
            b"[" * 100 + b"]" * 100,
            {"Content-Type": "application/json"},
            400,
            "validation",
        ),
        (
            "POST",
            "/v1/sets",
            b"name=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
            "validation",
        ),
        ("POST", "/v1/auth/sign_in", b"{", {"Content-Type": "application/json"}, 400, "validation"),
        (
            "POST",
            "/v1/sets",
            b"x" * 1_000_001,
            {"Content-Type": "application/json"},
            413,
            "payload_too_large",
        ),
    ],
)
async def test_every_error_is_enveloped(
    api: Api, method: str, path: str, content: bytes | None, headers: dict[str, str], status: int, code: str
) -> None:
    before = api.sb.state_digest()
    r = await api.client().request(
        method, path, content=content, headers={**headers, "Idempotency-Key": new_key()}
    )
    if method == "HEAD":
        assert r.status_code == status  # no body on HEAD
    else:
        assert_error(r, status, code)
    assert api.sb.state_digest() == before


# ---- ETag / 304 on every GET ----


async def test_every_get_route_has_an_etag_and_304(api: Api, images: list[dict[str, Any]]) -> None:
    img = images[0]["public_uuid"]
    sets = (await api.get("/v1/sets")).json()
    s = sets[0]["public_uuid"]
    link = (await api.write("POST", "/v1/downloads", {"image_public_uuid": img})).json()["url"]
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": [img]})
    await api.ok_write(
        "PATCH",
        f"/v1/sets/{s}/order",
        {"image_public_uuids": [i["public_uuid"] for i in await api.set_images(s)]},
    )
    fills = {"{public_uuid}": img, "{uuid}": op["uuid"], "{image_uuid}": img, "{version}": "large"}
    seen = 0
    for method, path in describe_routes(api.sb.app):
        if method != "GET":
            continue
        if path.startswith("/v1/sets/{public_uuid}"):
            url = path.replace("{public_uuid}", s)
        elif path == "/downloads/{image_uuid}/{version}":
            url = link
        elif path == "/archives/{archive_uuid}.zip":
            url = op["result"]["url"]
        else:
            url = path
            for k, v in fills.items():
                url = url.replace(k, v)
        r = await api.get(url)
        assert r.status_code == 200, (path, r.text[:200])
        etag = r.headers.get("ETag")
        assert etag, path
        r2 = await api.get(url, headers={"If-None-Match": etag})
        assert r2.status_code == 304 and r2.content == b"", path
        seen += 1
    assert seen >= 20


# ---- paging ----


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1_0"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
    ],
)
async def test_bad_paging_is_refused_by_name(api: Api, params: dict[str, str], field: str) -> None:
    for path in ("/v1/images", "/v1/sets", "/v1/keywords", "/v1/archives"):
        assert_error(await api.get(path, params=params), 400, "validation", field)


async def test_paging_headers_at_the_edges(api: Api) -> None:
    r = await api.get("/v1/images", params={"limit": 200, "offset": 10**12})
    assert r.status_code == 200 and r.json() == [] and r.headers["X-Has-More"] == "false"
    assert "X-Next-Offset" not in r.headers
    r = await api.get("/v1/images", params={"limit": 200})
    assert len(r.json()) == 200 and r.headers["X-Has-More"] == "true" and r.headers["X-Next-Offset"] == "200"
    r = await api.get("/v1/images")
    assert len(r.json()) == 50


# ---- signed links: every query parameter tampered ----


def _tamper(url: str) -> list[str]:
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    out = []
    for name, value in params.items():
        for bad in (
            value[:-1],
            value + "0",
            "",
            "é",
            str(int(value) + 1) if value.isdigit() else value[::-1],
        ):
            q = "&".join(f"{k}={bad if k == name else v}" for k, v in params.items())
            out.append(f"{base}?{q}")
        out.append(base + "?" + "&".join(f"{k}={v}" for k, v in params.items() if k != name))
    return out


async def test_signed_download_and_archive_links_refuse_any_tampering(
    api: Api, clock: FakeClock, images: list[dict[str, Any]]
) -> None:
    img, img2 = images[0]["public_uuid"], images[1]["public_uuid"]
    link = (await api.write("POST", "/v1/downloads", {"image_public_uuid": img})).json()["url"]
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": [img]})
    zurl = op["result"]["url"]
    assert (await api.get(link)).status_code == 200 and (await api.get(zurl)).status_code == 200
    swapped = [link.replace(img, img2), link.replace("/original?", "/large?")]
    for url in [*_tamper(link), *_tamper(zurl), *swapped]:
        r = await api.get(url, token=None)
        assert_error(r, 403, "invalid_signature")
    clock.advance(24 * 3600 + 1)
    assert_error(await api.get(link, token=None), 403, "link_expired")
    assert_error(await api.get(zurl, token=None), 403, "link_expired")


# ---- uploads ----


async def test_upload_ticket_signature_expiry_and_single_use(api: Api, clock: FakeClock) -> None:
    ticket = (await api.write("POST", "/v1/uploads", {"filename": "a.png", "title": "t"})).json()
    png = render_png("review", 16, 16)
    proc = httpx2.AsyncClient(transport=api.sb.transport())

    async def send(fields: dict[str, str], data: bytes = png) -> httpx2.Response:
        return await proc.post(
            ticket["upload_url"], data=fields, files={"file": ("a.png", data, "image/png")}
        )

    f = ticket["fields"]
    for tampered in (
        {**f, "signature": f["signature"][:-1] + ("0" if f["signature"][-1] != "0" else "1")},
        {**f, "signature": "é"},
        {**f, "envelope": f["envelope"][:-4] + "AAAA"},
        {"envelope": f["envelope"]},
    ):
        assert_error(await send(tampered), 403, "invalid_signature")
    assert_error(await send(f, b"not an image"), 400, "validation", "file")
    # a refused file does not burn the ticket; a success does
    ok = await send(f)
    assert ok.status_code == 201, ok.text
    assert_error(await send(f), 409, "ticket_used")
    late = (await api.write("POST", "/v1/uploads", {"filename": "b.png"})).json()
    clock.advance(601)
    r = await proc.post(late["upload_url"], data=late["fields"], files={"file": ("b.png", png, "image/png")})
    assert_error(r, 403, "ticket_expired")
    await proc.aclose()


async def test_one_ticket_makes_one_image_under_concurrency(api: Api) -> None:
    ticket = (await api.write("POST", "/v1/uploads", {"filename": "a.png"})).json()
    png = render_png("review", 16, 16)
    proc = httpx2.AsyncClient(transport=api.sb.transport())
    statuses: list[int] = []

    async def send() -> None:
        r = await proc.post(
            ticket["upload_url"], data=ticket["fields"], files={"file": ("a.png", png, "image/png")}
        )
        statuses.append(r.status_code)

    count = len(api.sb.store.images)
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(send)
    assert sorted(statuses) == [201, 409, 409, 409, 409] and len(api.sb.store.images) == count + 1
    await proc.aclose()


async def test_unicode_file_names_download_without_500(api: Api) -> None:
    ticket = (await api.write("POST", "/v1/uploads", {"filename": 'Bühne "Süd" 😀.png'})).json()
    proc = httpx2.AsyncClient(transport=api.sb.transport())
    up = await proc.post(
        ticket["upload_url"],
        data=ticket["fields"],
        files={"file": ("x.png", render_png("u", 8, 8), "image/png")},
    )
    await proc.aclose()
    new = up.json()["image_public_uuid"]
    link = (await api.write("POST", "/v1/downloads", {"image_public_uuid": new})).json()
    assert link["filename"] == 'Bühne "Süd" 😀.png'
    r = await api.get(link["url"], token=None)
    assert r.status_code == 200
    cd = r.headers["Content-Disposition"]
    assert "filename*=UTF-8''B%C3%BChne%20%22S%C3%BCd%22%20%F0%9F%98%80.png" in cd
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": [new]})
    assert (await api.get(op["result"]["url"], token=None)).status_code == 200


# ---- auth ----


async def test_non_ascii_credentials_are_refused_not_crashed(api: Api) -> None:
    device = {"name": "n", "platform": "p"}
    c = api.client(None)
    r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": "pässwörd", "device": device})
    assert_error(r, 401, "unauthorized")
    r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": PASSWORD, "device": device})
    mfa = r.json()["mfa_token"]
    assert_error(
        await c.post("/v1/auth/mfa", json={"mfa_token": mfa, "code": "١٢٣٤٥٦"}), 400, "validation", "code"
    )
    r = await c.get("/v1/me", headers={"Authorization": b"Bearer \xc3\xa9"})  # type: ignore[dict-item]
    assert_error(r, 401, "unauthorized")


async def test_sign_in_rate_limit_is_per_login_and_lifts_with_time(api: Api, clock: FakeClock) -> None:
    c = api.client(None)
    body = {"login": LOGIN, "password": "wrong", "device": {"name": "n", "platform": "p"}}
    for _ in range(5):
        assert_error(await c.post("/v1/auth/sign_in", json=body), 401, "unauthorized")
    r = await c.post("/v1/auth/sign_in", json=body)
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    other = {**body, "login": "photographer@riverside.test"}
    assert_error(await c.post("/v1/auth/sign_in", json=other), 401, "unauthorized")
    clock.advance(61)
    assert_error(await c.post("/v1/auth/sign_in", json=body), 401, "unauthorized")


async def test_auth_state_stays_bounded_under_junk(api: Api, clock: FakeClock) -> None:
    c = api.client(None)
    auth = api.sb.engine.auth
    for i in range(3000):
        login = f"nobody{i}@x.test"
        await c.post(
            "/v1/auth/sign_in",
            json={"login": login, "password": "x", "device": {"name": "n", "platform": "p"}},
        )
        if i % 500 == 0:
            clock.advance(120)
    assert len(auth.limiter.hits) < 1500  # windows that ended are dropped, not kept forever


# ---- robustness: a seeded junk fuzzer over every route ----


JUNK: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    "x",
    "",
    "é😀",
    "\x00",
    "a" * 300,
    [],
    {},
    [None],
    ["x"] * 3,
]
FIELDS = [
    "title", "rating", "keywords", "keyword", "namespace", "image_public_uuids", "hidden", "activation_time",
    "name", "colour", "type", "operations", "snapshot_uuid", "aspect_ratio", "x", "y", "width", "height",
    "credits", "alt_text", "from", "to", "filename", "version", "set_public_uuids", "parent_public_uuid",
    "rotation", "creation_date", "image_public_uuid", "lead_image_public_uuid", "method", "path", "body",
]  # fmt: skip


async def test_junk_never_gets_a_500(api: Api, images: list[dict[str, Any]]) -> None:
    rng = random.Random(11)
    ids = [i["public_uuid"] for i in images[:3]] + [NOPE, "x", "%2F", "é"]
    routes = describe_routes(api.sb.app)
    for _ in range(600):
        method, path = rng.choice(routes)
        url = path
        while "{" in url:
            start, end = url.index("{"), url.index("}")
            url = url[:start] + rng.choice(ids) + url[end + 1 :]
        body: Any = {rng.choice(FIELDS): rng.choice(JUNK) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.3:
            item = {"method": rng.choice(["PUT", "PATCH", "POST", "DELETE"]), "path": rng.choice(routes)[1]}
            body = {"operations": [{**item, "body": body}] * rng.randint(1, 3)}
        params = {
            rng.choice(["limit", "offset", "query", "bbox", "rating", "expires", "sig"]): rng.choice(
                ["-1", "é", "1,2", ""]
            )
        }
        r = await api.client().request(
            method, url, params=params, content=json.dumps(body).encode(),
            headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"},
        )  # fmt: skip
        assert r.status_code < 500, (method, url, body, r.text[:300])
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"code", "message", "detail", "field", "request_id"}


# ---- faults: deterministic under a seed ----


async def test_fault_decisions_repeat_under_the_same_seed() -> None:
    async def run() -> list[int]:
        sb: Sandbox = make_sandbox(FakeClock(), faults=Faults(seed=3, error_rate=0.3, drop_rate=0.3))
        out = []
        async with httpx2.AsyncClient(transport=sb.transport(), base_url=BASE) as c:
            img = next(iter(sb.store.images))
            for i in range(40):
                try:
                    r = await c.put(
                        f"/v1/images/{img}/rating",
                        json={"rating": i % 6},
                        headers={"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": f"k{i}"},
                    )
                    out.append(r.status_code)
                except httpx2.ReadError:
                    out.append(-1)
        return out

    a, b = await run(), await run()
    assert a == b and {-1, 202, 500} <= set(a)


async def test_a_json_body_with_a_foreign_content_type_is_refused(api: Api) -> None:
    before = api.sb.state_digest()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = await api.client().post(
            "/v1/sets",
            content=b'{"name": "x"}',
            headers={"Content-Type": ctype, "Idempotency-Key": new_key()},
        )
        assert_error(r, 400, "validation", "Content-Type")
    assert api.sb.state_digest() == before
    ok = await api.client().post(
        "/v1/sets",
        content=b'{"name": "x"}',
        headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": new_key()},
    )
    assert ok.status_code == 202


async def test_a_far_future_embargo_is_refused_and_breaks_nothing(
    api: Api, sets: list[dict[str, Any]]
) -> None:
    s = next(x for x in sets if x["image_count"])["public_uuid"]
    img = (await api.set_images(s))[0]["public_uuid"]
    before = api.sb.state_digest()
    for at in ("9999-12-31T23:59:59-05:00", "2201-01-01", "1799-12-31T00:00:00Z"):
        body = {"image_public_uuids": [img], "hidden": True, "activation_time": at}
        assert_error(
            await api.write("PATCH", f"/v1/sets/{s}/visibility", body), 400, "validation", "activation_time"
        )
    assert api.sb.state_digest() == before
    assert (await api.get(f"/v1/sets/{s}/images")).status_code == 200
    assert_error(
        await api.get("/v1/images", params={"created_at_from": "9999-12-31T23:59:59-05:00"}),
        400,
        "validation",
    )


async def test_a_snapshot_of_the_state_before_precedes_every_rearrangement(
    api: Api, sets: list[dict[str, Any]], images: list[dict[str, Any]]
) -> None:
    parent = next(x for x in sets if x["child_count"] >= 2)["public_uuid"]
    kids = [
        k["public_uuid"] for k in (await api.get("/v1/sets", params={"parent_public_uuid": parent})).json()
    ]
    s = next(x for x in sets if x["image_count"] >= 3)["public_uuid"]
    outsider = next(i["public_uuid"] for i in images if s not in i["set_public_uuids"])

    async def snaps(set_id: str) -> list[dict[str, Any]]:
        r = await api.get(f"/v1/sets/{set_id}/snapshots", params={"limit": 200})
        return list(r.json())

    async def members() -> list[str]:
        return [i["public_uuid"] for i in await api.set_images(s)]

    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": list(reversed(await members()))}),
        ("POST", f"/v1/sets/{s}/images", {"image_public_uuids": [outsider]}),
        ("DELETE", f"/v1/sets/{s}/images", {"image_public_uuids": [outsider]}),
        ("PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": (await members())[:1], "hidden": True}),
    ]
    for method, path, body in steps:
        before, count = await members(), len(await snaps(s))
        await api.ok_write(method, path, body)
        after = await snaps(s)
        assert len(after) == count + 1, path
        assert after[0]["image_public_uuids"] == before, path  # newest first, and it is the BEFORE state
    # restore takes one too, then brings the state back
    target = (await snaps(s))[-1]
    count = len(await snaps(s))
    await api.ok_write("POST", f"/v1/sets/{s}/restore", {"snapshot_uuid": target["uuid"]})
    assert len(await snaps(s)) == count + 1 and await members() == target["image_public_uuids"]
    # reordering children snapshots the parent
    count = len(await snaps(parent))
    await api.ok_write(
        "PATCH", "/v1/sets/reorder", {"parent_public_uuid": parent, "set_public_uuids": kids[::-1]}
    )
    latest = (await snaps(parent))[0]
    assert len(await snaps(parent)) == count + 1 and latest["child_set_public_uuids"] == kids


async def test_serve_in_thread_serves_and_stops(clock: FakeClock) -> None:
    from dpg_mcp.sandbox import serve_in_thread

    sb = make_sandbox(clock)
    with serve_in_thread(sb) as base:
        async with httpx2.AsyncClient(base_url=base) as c:
            r = await c.get("/v1/me", headers={"Authorization": f"Bearer {ADMIN}"})
            assert r.status_code == 200 and r.headers["ETag"]
        port = int(base.rsplit(":", 1)[1])
        with pytest.raises(OSError), serve_in_thread(sb, port=port):
            pass  # the port is taken: a clear error, and nothing left running
    with serve_in_thread(sb, port=port) as again:  # stopped cleanly: the port is free again
        assert again == base


async def test_expired_archives_free_their_bytes(
    api: Api, clock: FakeClock, images: list[dict[str, Any]]
) -> None:
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": [images[0]["public_uuid"]]})
    [archive] = api.sb.store.archives.values()
    assert archive.zip_bytes
    digest = api.sb.state_digest()
    clock.advance(24 * 3600 + 1)
    assert_error(await api.get(op["result"]["url"], token=None), 403, "link_expired")
    assert (await api.get("/v1/archives", token="dpg_api_live_sandbox_uploader")).json() == []
    assert archive.zip_bytes == b"" and api.sb.state_digest() == digest

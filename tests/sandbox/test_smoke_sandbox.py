"""SANDBOX's own smoke tests: the hooks and corners the contract tests do not reach."""

from __future__ import annotations

import io
import zipfile

import httpx2

from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig
from dpg_mcp.sandbox.app import describe_routes
from dpg_mcp.sandbox.seed import INJECTION_TITLE

from .conftest import ADMIN, EDITOR, Api, FakeClock, assert_error, make_sandbox


def test_seed_is_deterministic() -> None:
    assert Sandbox(SandboxConfig(seed=7)).state_digest() == Sandbox(SandboxConfig(seed=7)).state_digest()
    assert Sandbox(SandboxConfig(seed=7)).state_digest() != Sandbox(SandboxConfig(seed=8)).state_digest()


def test_routes_are_unique_and_without_head(sb: Sandbox) -> None:
    routes = describe_routes(sb.app)
    assert len(routes) == len(set(routes)) and not any(m == "HEAD" for m, _ in routes)


async def test_injection_text_is_seeded(api: Api) -> None:
    got = await api.all_images(query='"ignore previous instructions"')
    assert [i["title"] for i in got] == [INJECTION_TITLE]


async def test_set_scopes_and_api_switch_live(api: Api) -> None:
    assert (await api.get("/v1/me", EDITOR)).json()["capabilities"][0] == "api.images.read"
    api.sb.set_scopes(EDITOR, ["api.download"])
    assert (await api.get("/v1/me", EDITOR)).json()["capabilities"] == ["api.download"]
    err = assert_error(await api.get("/v1/images", EDITOR), 403, "forbidden")
    assert "api.images.read" in err["detail"]
    api.sb.set_api_enabled(EDITOR, False)
    assert_error(await api.get("/v1/me", EDITOR), 403, "api_not_enabled")
    assert (await api.get("/v1/me", ADMIN)).status_code == 200  # other tokens untouched


async def test_set_faults_live_and_drop_in_process(api: Api) -> None:
    img = (await api.all_images())[0]["public_uuid"]
    api.sb.set_faults(Faults(drop_rate=1.0))
    key = "drop-key"
    try:
        await api.write("PUT", f"/v1/images/{img}/rating", {"rating": 2}, key=key)
        raise AssertionError("expected a dropped response")
    except httpx2.ReadError:
        pass
    api.sb.set_faults(Faults())
    assert (await api.image(img))["rating"] == 2  # committed before the drop
    r = await api.write("PUT", f"/v1/images/{img}/rating", {"rating": 2}, key=key)
    assert r.status_code == 202 and r.headers["Idempotent-Replayed"] == "true"
    assert api.sb.apply_counts() == {f"{api.sb.token_id(ADMIN)}:{key}": 1}


async def test_archive_waits_then_serves_a_zip(clock: FakeClock) -> None:
    sb = make_sandbox(clock, operation_seconds={"archive": 5.0})
    api = Api(sb)
    try:
        imgs = [i["public_uuid"] for i in (await api.all_images())[:3]]
        r = await api.write("POST", "/v1/archives", {"image_public_uuids": imgs, "version": "thumbnail"})
        op = r.json()
        assert r.status_code == 202 and op["status"] == "running" and op["result"] is None
        poll = await api.get(f"/v1/operations/{op['uuid']}")
        assert (
            await api.get(f"/v1/operations/{op['uuid']}", headers={"If-None-Match": poll.headers["ETag"]})
        ).status_code == 304
        assert (await api.get("/v1/archives")).json() == []
        clock.advance(5)
        done = (await api.get(f"/v1/operations/{op['uuid']}")).json()
        assert done["status"] == "succeeded" and done["result"]["image_count"] == 3
        z = await api.get(done["result"]["url"], None)
        names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
        assert len(names) == 3 and all(n.endswith(".jpg") for n in names)
        assert (await api.get("/v1/archives")).json()[0]["uuid"] == done["result"]["uuid"]
        clock.advance(24 * 3600)
        assert_error(await api.get(done["result"]["url"], None), 403, "link_expired")
    finally:
        await api.aclose()


async def test_batch_item_failing_at_apply_time(api: Api) -> None:
    img = (await api.all_images())[0]["public_uuid"]
    ops = [
        {"method": "DELETE", "path": f"/v1/images/{img}", "body": None},
        {"method": "PUT", "path": f"/v1/images/{img}/rating", "body": {"rating": 3}},
    ]
    op = (await api.write("POST", "/v1/operations/batch", {"operations": ops})).json()
    kids = op["result"]["children"]
    assert [k["status"] for k in kids] == ["succeeded", "failed"]
    assert kids[1]["error"]["code"] == "image_not_found"
    assert op["status"] == "failed" and op["result"]["succeeded"] == 1

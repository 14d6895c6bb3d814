"""POST /v1/operations/batch: ≤ 50 items, validated whole, one Operation with a child per item."""

from __future__ import annotations

from typing import Any

from .conftest import EDITOR, Api, assert_error, new_key


def rate(u: str, n: int) -> dict[str, Any]:
    return {"method": "PUT", "path": f"/v1/images/{u}/rating", "body": {"rating": n}}


async def test_batch_applies_every_item(api: Api, images: list[dict[str, Any]]) -> None:
    a, b, c = (i["public_uuid"] for i in images[:3])
    ops = [
        rate(a, 5),
        {"method": "POST", "path": f"/v1/images/{b}/keywords", "body": {"keywords": ["batch-kw"]}},
        {"method": "PATCH", "path": f"/v1/images/{c}", "body": {"title": "batched"}},
    ]
    key = new_key()
    r = await api.write("POST", "/v1/operations/batch", {"operations": ops}, key=key)
    assert r.status_code == 202, r.text
    op = r.json()
    assert op["type"] == "batch" and op["status"] == "succeeded"
    res = op["result"]
    assert res["succeeded"] == 3 and res["failed"] == 0
    kids = res["children"]
    assert [k["type"] for k in kids] == ["rating", "keywords", "update"]
    assert all(k["status"] == "succeeded" and k["uuid"].startswith("op-") for k in kids)
    assert (await api.image(a))["rating"] == 5
    assert "batch-kw" in [k["value"] for k in (await api.image(b))["keywords"]]
    assert (await api.image(c))["title"] == "batched"
    # replay: the same Operation, applied once
    digest = api.sb.state_digest()
    r2 = await api.write("POST", "/v1/operations/batch", {"operations": ops}, key=key)
    assert r2.json()["uuid"] == op["uuid"]
    assert api.sb.state_digest() == digest


async def test_batch_50_ok_51_refused(api: Api, images: list[dict[str, Any]]) -> None:
    ops = [rate(i["public_uuid"], 2) for i in images[:50]]
    op = await api.ok_write("POST", "/v1/operations/batch", {"operations": ops})
    assert op["result"]["succeeded"] == 50
    digest = api.sb.state_digest()
    ops51 = [rate(i["public_uuid"], 1) for i in images[:51]]
    assert_error(
        await api.write("POST", "/v1/operations/batch", {"operations": ops51}),
        400,
        "validation",
        "operations",
    )
    assert api.sb.state_digest() == digest


async def test_one_bad_item_applies_nothing(api: Api, images: list[dict[str, Any]]) -> None:
    ops = [rate(i["public_uuid"], 1) for i in images[:6]]
    ops[3] = rate(images[3]["public_uuid"], 7)
    digest = api.sb.state_digest()
    r = await api.write("POST", "/v1/operations/batch", {"operations": ops})
    err = assert_error(r, 400, "validation", "operations[3].body.rating")
    assert err["detail"]
    assert api.sb.state_digest() == digest
    # a missing image in one item: nothing applied either
    ops[3] = rate("00000000-0000-4000-8000-000000000000", 1)
    r = await api.write("POST", "/v1/operations/batch", {"operations": ops})
    assert r.status_code == 404, r.text
    assert api.sb.state_digest() == digest


async def test_item_scopes_checked_whole(api: Api, images: list[dict[str, Any]]) -> None:
    a, b = images[0]["public_uuid"], images[1]["public_uuid"]
    ops = [rate(a, 1), {"method": "DELETE", "path": f"/v1/images/{b}", "body": None}]
    digest = api.sb.state_digest()
    r = await api.write("POST", "/v1/operations/batch", {"operations": ops}, token=EDITOR)
    err = assert_error(r, 403, "forbidden")
    assert "api.images.delete" in err["detail"]
    assert api.sb.state_digest() == digest


async def test_batch_refusals(api: Api, images: list[dict[str, Any]]) -> None:
    a = images[0]["public_uuid"]
    digest = api.sb.state_digest()
    nested = {"method": "POST", "path": "/v1/operations/batch", "body": {"operations": [rate(a, 1)]}}
    for bad in (
        {"operations": [rate(a, 1), nested]},
        {"operations": [{"method": "GET", "path": f"/v1/images/{a}", "body": None}]},
        {"operations": [{"method": "PUT", "path": "/v1/nowhere", "body": {}}]},
        {"operations": [{"method": "PUT", "path": f"/v1/images/{a}/rating"}]},
        {"operations": [{"method": "POST", "path": "/v1/auth/sign_in", "body": {}}]},
        {"operations": "all"},
        {},
    ):
        r = await api.write("POST", "/v1/operations/batch", bad)
        err = assert_error(r, 400, "validation")
        assert err["field"] and err["field"].startswith("operations"), (bad, err)
    assert api.sb.state_digest() == digest


async def test_children_can_be_polled(api: Api, images: list[dict[str, Any]]) -> None:
    op = await api.ok_write(
        "POST", "/v1/operations/batch", {"operations": [rate(images[0]["public_uuid"], 3)]}
    )
    child = op["result"]["children"][0]
    r = await api.get(f"/v1/operations/{child['uuid']}")
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    r = await api.get(f"/v1/operations/{op['uuid']}")
    assert r.json()["result"]["succeeded"] == 1


async def test_item_failing_at_apply_time(api: Api, images: list[dict[str, Any]]) -> None:
    """Validation sees the store before the batch; an earlier item can still pull the rug from a later one."""
    u = images[0]["public_uuid"]
    ops = [{"method": "DELETE", "path": f"/v1/images/{u}", "body": None}, rate(u, 3)]
    r = await api.write("POST", "/v1/operations/batch", {"operations": ops})
    assert r.status_code == 202, r.text
    op = r.json()
    assert op["status"] == "failed"
    assert op["error"]["code"] == "batch_item_failed"
    kids = op["result"]["children"]
    assert [k["status"] for k in kids] == ["succeeded", "failed"]
    assert kids[1]["error"]["code"] == "image_not_found"
    assert op["result"]["succeeded"] == 1 and op["result"]["failed"] == 1

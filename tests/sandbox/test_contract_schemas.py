"""Every response the sandbox sends matches openapi.v1.yaml, and the spec's request schemas agree with the
server about which bodies are good (an agent framework validating with the spec must not be misled)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import httpx2
import jsonschema
import pytest

from .catalog import BAD_CASES, WRITE_BY_NAME, WRITES, build_ctx, shared_ctx
from .conftest import ADMIN, DISABLED, READONLY, UPLOADER, Api, FakeClock, make_sandbox
from .test_openapi import load_spec

SPEC = load_spec()


@cache
def templates() -> list[tuple[str, re.Pattern[str]]]:
    out = [
        (p, re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$")) for p in SPEC["paths"]
    ]
    return sorted(out, key=lambda t: t[0].count("{"))  # literal segments first


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for tpl, rx in templates():
        if rx.match(path) and method.lower() in SPEC["paths"][tpl]:
            op: dict[str, Any] = SPEC["paths"][tpl][method.lower()]
            return tpl, op
    raise AssertionError(f"{method} {path} is not in openapi.v1.yaml")


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        cur: Any = SPEC
        for p in parts:
            cur = cur[p]
        node = cur
    return node


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]})


def check_response(r: httpx2.Response) -> None:
    path = r.request.url.path
    _tpl, op = operation(r.request.method, path)
    status = str(r.status_code)
    assert status in op["responses"], f"{r.request.method} {path} answered {status}, not documented"
    resp = resolve(op["responses"][status])
    content = resp.get("content") or {}
    if r.status_code == 304 or not r.content:
        return
    if "application/json" in content:
        schema = content["application/json"].get("schema")
        if schema:
            errs = sorted(validator(schema).iter_errors(r.json()), key=str)
            assert not errs, (
                f"{r.request.method} {path} {status}: {errs[0].message} at {list(errs[0].absolute_path)}"
            )
    for name, h in (resp.get("headers") or {}).items():
        h = resolve(h)
        if h.get("required"):
            assert name in r.headers, f"{r.request.method} {path} {status} lacks header {name}"


class CheckedApi(Api):
    """An Api whose every response is checked against the spec."""

    def client(self, token: str | None = ADMIN) -> httpx2.AsyncClient:
        c = super().client(token)
        if not getattr(c, "_checked", False):

            async def hook(r: httpx2.Response) -> None:
                await r.aread()
                if r.request.url.path.startswith(("/v1/", "/processor", "/downloads", "/archives", "/media")):
                    check_response(r)

            c.event_hooks["response"].append(hook)
            c._checked = True  # type: ignore[attr-defined]
        return c


async def test_scenario_matches_spec(clock: FakeClock) -> None:
    """A walk through every endpoint (reads, writes, errors) with each response checked."""
    sb = make_sandbox(clock, operation_seconds={"archive": 1.0})
    api = CheckedApi(sb)
    try:
        ctx = await build_ctx(api)
        for path in [
            "/v1/me",
            "/v1/images",
            "/v1/facets",
            "/v1/keywords",
            "/v1/keywords/namespaces",
            "/v1/metadata_profiles",
            "/v1/sets",
            "/v1/sets/tree",
            f"/v1/images/{ctx.img}",
            f"/v1/images/{ctx.img}/versions",
            f"/v1/sets/{ctx.set_uuid}",
            f"/v1/sets/{ctx.set_uuid}/images",
            f"/v1/sets/{ctx.set_uuid}/snapshots",
            "/v1/archives",
        ]:
            r = await api.get(path)
            assert r.status_code == 200, (path, r.text)
            await api.get(path, headers={"If-None-Match": r.headers["ETag"]})
        await api.get(
            "/v1/images", params={"query": "sunset", "min_rating": 2, "has_geo": "true", "limit": 5}
        )
        await api.get("/v1/sets", params={"parent_public_uuid": ctx.top_sets[0]})
        # errors
        await api.get("/v1/me", None)
        await api.get("/v1/me", DISABLED)
        await api.get("/v1/images", params={"limit": 999})
        await api.get("/v1/images/00000000-0000-4000-8000-000000000000")
        await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "x"}, token=READONLY)
        await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "x"}, key=None)
        # every write, good; with a replay and a conflict
        for case in sorted(WRITES, key=lambda w: w.name == "image_delete"):  # img2 is used by others
            ctx = await build_ctx(api)  # earlier writes changed members, keywords, ...
            key = f"scenario-{case.name}"
            r = await api.write(case.method, case.path(ctx), case.good(ctx), key=key, token=ADMIN)
            assert r.status_code == case.ok_status, (case.name, r.text)
            await api.write(case.method, case.path(ctx), case.good(ctx), key=key)
            for bad, _field in case.bads[:1]:
                await api.write(case.method, case.path(ctx), bad(ctx))
            if r.status_code == 202:
                await api.get(f"/v1/operations/{r.json()['uuid']}")
        await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "a"}, key="scenario-image_update")
        # archive running → succeeded, upload, download, archive ZIP
        r = await api.write("POST", "/v1/archives", {"image_public_uuids": [ctx.img]}, token=UPLOADER)
        op = r.json()
        await api.get(f"/v1/operations/{op['uuid']}", UPLOADER)
        clock.advance(2)
        done = (await api.get(f"/v1/operations/{op['uuid']}", UPLOADER)).json()
        await api.get(done["result"]["url"], None)
        await api.get("/v1/archives", UPLOADER)
        from .test_files import png_bytes, ticket, upload

        t = await ticket(api, {"filename": "s.png", "title": "t"})
        await upload(api, t, png_bytes())
        await upload(api, t, png_bytes())
        await upload(api, t, b"not an image")
        d = (await api.write("POST", "/v1/downloads", {"image_public_uuid": ctx.img}, token=UPLOADER)).json()
        await api.get(d["url"], None)
        await api.get(d["url"] + "0", None)
        # auth
        c = api.client(None)
        await c.post(
            "/v1/auth/sign_in",
            json={"login": "x@y.z", "password": "p", "device": {"name": "n", "platform": "p"}},
        )
    finally:
        await api.aclose()


@pytest.mark.parametrize("name", [w.name for w in WRITES])
async def test_good_bodies_match_request_schema(shared_api: Api, name: str) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    _tpl, op = operation(case.method, case.path(ctx))
    body = case.good(ctx)
    rb = op.get("requestBody")
    if body is None:
        assert not rb or not rb.get("required"), name
        return
    assert rb, f"{name}: no requestBody documented"
    schema = resolve(rb)["content"]["application/json"]["schema"]
    errs = list(validator(schema).iter_errors(body))
    assert not errs, (name, errs[0].message)


# Bad bodies whose fault needs live data (ids, the original's size, the set's members): no schema can see it.
# Date strings: the server parses them (a date or a timestamp); a batch item's body depends on its path.
SEMANTIC = {
    ("crop_set", 2),
    ("crop_set", 3),
    ("crop_set", 4),
    ("set_order", 0),
    ("set_reorder", 0),
    ("image_update", 5),
    ("image_update", 6),
    ("image_update", 7),
    ("set_visibility", 3),
    ("batch", 2),
}


# The bad-input tests still send the live-data cases to the server; only this static check leaves them out.
SCHEMA_CASES = [case for case in BAD_CASES if case not in SEMANTIC]


@pytest.mark.parametrize(("name", "idx"), SCHEMA_CASES, ids=[f"{n}-{i}" for n, i in SCHEMA_CASES])
async def test_bad_bodies_fail_request_schema(shared_api: Api, name: str, idx: int) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    _tpl, op = operation(case.method, case.path(ctx))
    schema = resolve(op["requestBody"])["content"]["application/json"]["schema"]
    body = case.bads[idx][0](ctx)
    assert list(validator(schema).iter_errors(body)), (
        f"{name}-{idx}: the spec accepts a body the server refuses"
    )


def query_params(op: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in (resolve(x) for x in op.get("parameters", [])) if p.get("in") == "query"]


def out_of_range(schema: dict[str, Any]) -> list[str]:
    """Values a query parameter's schema forbids."""
    s = resolve(schema)
    vals: list[str] = []
    types = s.get("type")
    types = types if isinstance(types, list) else [types]
    if "enum" in s:
        vals.append("not-in-enum")
    if "integer" in types:
        vals.append("1.5")
        if "maximum" in s:
            vals.append(str(s["maximum"] + 1))
        if "minimum" in s:
            vals.append(str(s["minimum"] - 1))
    if "boolean" in types:
        vals.append("maybe")
    return vals


GET_QUERY = [
    (p, name, v)
    for p, item in SPEC["paths"].items()
    if "get" in item and p.startswith("/v1/") and "{" not in p
    for q in query_params(item["get"])
    for name in [q["name"]]
    for v in out_of_range(q.get("schema", {}))
]


@pytest.mark.parametrize(("path", "name", "value"), GET_QUERY, ids=[f"{p}?{n}={v}" for p, n, v in GET_QUERY])
async def test_query_values_the_spec_forbids_are_refused(
    shared_api: Api, path: str, name: str, value: str
) -> None:
    r = await shared_api.get(path, params={name: value})
    assert r.status_code == 400, f"{path}?{name}={value} → {r.status_code}: spec forbids it, server accepts"
    assert r.json()["error"]["field"] == name


async def test_unknown_query_parameter_refused(shared_api: Api) -> None:
    for path in ("/v1/images", "/v1/facets", "/v1/keywords", "/v1/sets"):
        r = await shared_api.get(path, params={"bogus": "1"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "bogus", (path, r.text)


def _examples(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any], Any]]:
    """(location, schema, example) for every example the spec gives: schema `examples` and media examples."""
    out: list[tuple[str, dict[str, Any], Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict):
            if "example" in node:
                out.append((where, node["schema"], node["example"]))
            for name, ex in (node.get("examples") or {}).items():
                if isinstance(ex, dict) and "value" in ex:
                    out.append((f"{where}/examples/{name}", node["schema"], ex["value"]))
        if isinstance(node.get("examples"), list) and (
            "type" in node or "$ref" in node or "properties" in node
        ):
            schema = {k: v for k, v in node.items() if k != "examples"}
            out += [(f"{where}/examples[{i}]", schema, ex) for i, ex in enumerate(node["examples"])]
        for k, v in node.items():
            out += _examples(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _examples(v, f"{where}[{i}]")
    return out


def test_spec_examples_match_their_schemas() -> None:
    found = _examples(SPEC)
    assert found, "the spec gives no examples"
    bad = []
    for where, schema, ex in found:
        errs = list(validator(schema).iter_errors(ex))
        if errs:
            bad.append(f"{where}: {errs[0].message}")
    assert not bad, "\n".join(bad[:20])

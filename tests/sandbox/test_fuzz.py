"""A small seeded fuzzer (in place of schemathesis): bodies generated from openapi.v1.yaml's request schemas,
valid and mutated, sent to every write. The sandbox must never answer 5xx, and every answer must be one the
spec documents for that operation, with a body matching its schema (checked by CheckedApi)."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from .catalog import WRITE_BY_NAME, WRITES, Ctx, build_ctx
from .conftest import FakeClock, make_sandbox, new_key
from .test_contract_schemas import CheckedApi, operation, resolve

NOPE = "00000000-0000-4000-8000-000000000000"
# a longer hunt: DPG_FUZZ_N=500 DPG_FUZZ_SEED=2 pytest tests/sandbox/test_fuzz.py
FUZZ_N = int(os.environ.get("DPG_FUZZ_N", "30"))
FUZZ_SEED = os.environ.get("DPG_FUZZ_SEED", "0")


class Gen:
    def __init__(self, rng: random.Random, ctx: Ctx) -> None:
        self.rng = rng
        self.ctx = ctx

    def ids(self, name: str) -> list[str]:
        if "set" in name:
            return [self.ctx.set_uuid, *self.ctx.top_sets[:1], NOPE]
        if "snapshot" in name:
            return [self.ctx.snapshot, NOPE]
        return [self.ctx.img, self.ctx.img2, *self.ctx.set_members[:2], NOPE, "not-a-uuid"]

    def string(self, name: str, s: dict[str, Any]) -> str:
        r = self.rng
        if "uuid" in name:
            return r.choice(self.ids(name))
        if "date" in name or "time" in name:
            return r.choice(
                ["2026-07-03", "2026-12-01T09:00:00Z", "2031-01-01T00:00:00Z", "yesterday", "2026-02-30"]
            )
        if name == "path":
            return r.choice(
                [f"/v1/images/{self.ctx.img}/rating", f"/v1/images/{self.ctx.img}", "/v1/sets", "/nope"]
            )
        if name == "aspect_ratio":
            return r.choice(["1:1", "3:2", "16:9", "wide", "0:0"])
        hi = s.get("maxLength", 40)
        n = r.choice([0, 1, 5, min(hi, 60), hi, hi + 1])
        alphabet = r.choice(["abc ", "é😀", "x", "artist:Marina ", "<script>"])
        return (alphabet * (n // len(alphabet) + 1))[:n]

    def value(self, s: dict[str, Any], name: str = "", depth: int = 0) -> Any:
        r = self.rng
        s = resolve(s)
        if "enum" in s:
            return r.choice(s["enum"])
        t = s.get("type", "object")
        if isinstance(t, list):
            t = r.choice(t)
        if t == "null":
            return None
        if t == "boolean":
            return r.random() < 0.5
        if t == "integer":
            lo, hi = s.get("minimum", -3), s.get("maximum", 10_000)
            return r.choice([lo, hi, (lo + hi) // 2, lo - 1, hi + 1])
        if t == "number":
            return r.uniform(-1, 100)
        if t == "string":
            return self.string(name, s)
        if t == "array":
            lo, hi = s.get("minItems", 0), min(s.get("maxItems", 5), 5)
            return [
                self.value(s.get("items", {}), name, depth + 1) for _ in range(r.randint(lo, max(lo, hi)))
            ]
        props = s.get("properties", {})
        if depth > 2 or not props:
            return {}
        req = set(s.get("required", []))
        return {k: self.value(v, k, depth + 1) for k, v in props.items() if k in req or r.random() < 0.5}

    def mutate(self, body: Any) -> Any:
        r = self.rng
        if not isinstance(body, dict) or not body or r.random() < 0.2:
            return r.choice([[], "text", 5, None, {"unexpected": True}])
        body = dict(body)
        k = r.choice(list(body))
        match r.randrange(4):
            case 0:
                body[k] = r.choice([None, True, 1.5, "s", [], {}, -1, "x" * 6000])
            case 1:
                del body[k]
            case 2:
                body["zzz_extra"] = 1
            case _:
                body[k] = [body[k]] if not isinstance(body[k], list) else body[k] * 300
        return body


@pytest.mark.parametrize("name", [w.name for w in WRITES])
async def test_fuzz_write(clock: FakeClock, name: str) -> None:
    sb = make_sandbox(clock)
    api = CheckedApi(sb)  # every response is checked against the spec by a hook
    try:
        ctx = await build_ctx(api)
        case = WRITE_BY_NAME[name]
        path = case.path(ctx)
        _tpl, op = operation(case.method, path)
        rb = op.get("requestBody")
        schema = resolve(rb)["content"]["application/json"]["schema"] if rb else {"type": "object"}
        gen = Gen(random.Random(f"fuzz:{FUZZ_SEED}:{name}"), ctx)
        statuses: dict[int, int] = {}
        for i in range(FUZZ_N):
            body = gen.value(schema)
            if i % 2:
                body = gen.mutate(body)
            r = await api.write(case.method, path, body, key=new_key())
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (name, body, r.text)
            if r.status_code >= 400:
                assert r.json()["error"]["code"], r.text
        assert any(s >= 400 for s in statuses), statuses  # the mutations were noticed
    finally:
        await api.aclose()


def query_value(rng: random.Random, name: str, s: dict[str, Any], gen: Gen) -> str:
    s = resolve(s)
    t = s.get("type")
    t = t[0] if isinstance(t, list) else t
    if name == "bbox":
        return rng.choice(["-3,51,-2,52", "-180,-90,180,90", "1,2,3", "a,b,c,d", "10,10,0,0"])
    if name.endswith(("_from", "_to")):
        return rng.choice(["2026-07-04", "2026-07-04T12:00:00Z", "2026-13-01", "soon", ""])
    if name == "query":
        return rng.choice(["sunset", '+crowd -night "main stage"', "juni*", "", "*", '"', "-", "+"])
    v = gen.value(s, name)
    return str(v).lower() if isinstance(v, bool) else str(v)


@pytest.mark.parametrize("path", ["/v1/images", "/v1/facets", "/v1/keywords", "/v1/sets", "/v1/archives"])
async def test_fuzz_query(clock: FakeClock, path: str) -> None:
    sb = make_sandbox(clock)
    api = CheckedApi(sb)
    try:
        ctx = await build_ctx(api)
        _tpl, op = operation("GET", path)
        params = [p for p in (resolve(x) for x in op.get("parameters", [])) if p.get("in") == "query"]
        rng = random.Random(f"fuzzq:{FUZZ_SEED}:{path}")
        gen = Gen(rng, ctx)
        for _ in range(FUZZ_N):
            chosen = rng.sample(params, k=rng.randint(0, min(4, len(params))))
            q = {p["name"]: query_value(rng, p["name"], p.get("schema", {}), gen) for p in chosen}
            r = await api.get(path, params=q)
            assert r.status_code in (200, 400, 404), (path, q, r.text)
    finally:
        await api.aclose()

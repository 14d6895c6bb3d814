"""Fault injection: exactly-once under dropped responses, determinism, 5xx, 429 bursts, latency."""

from __future__ import annotations

import time
from typing import Any

import httpx2

from dpg_mcp.sandbox import Faults

from .conftest import ADMIN, Api, FakeClock, assert_error, make_sandbox, new_key


async def test_exactly_once_under_drops(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(drop_rate=0.3, seed=1234))
    api = Api(sb)
    try:
        images = await api.all_images()
        drops = 0
        keys = []
        for i in range(200):
            u = images[i % len(images)]["public_uuid"]
            key = new_key()
            keys.append(key)
            for _attempt in range(40):  # bounded: each retry is the same write, same key
                try:
                    r = await api.write(
                        "POST", f"/v1/images/{u}/keywords", {"keywords": [f"eo:k{i}"]}, key=key
                    )
                except httpx2.ReadError:
                    drops += 1
                    continue
                assert r.status_code == 202, r.text
                break
            else:
                raise AssertionError(f"write {i} never got a response")
        assert drops > 20, drops  # the fault really fired (~30 % of first tries)
        counts = sb.apply_counts()
        tid = sb.token_id(ADMIN)
        assert counts == {f"{tid}:{k}": 1 for k in keys}
        assert sb.applied_total() == 200
        vocab: dict[str, int] = {}
        for off in range(0, 100_000, 200):
            r = await api.get("/v1/keywords", params={"limit": 200, "offset": off})
            vocab |= {k["value"]: k["count"] for k in r.json() if k.get("namespace") == "eo"}
            if r.headers["X-Has-More"] == "false":
                break
        assert vocab == {f"k{i}": 1 for i in range(200)}
    finally:
        await api.aclose()


async def fault_trace(seed: int, clock: FakeClock, **kw: Any) -> list[str]:
    image = next(iter(make_sandbox(clock).store.images))  # same gallery seed: same ids
    sb = make_sandbox(clock, faults=Faults(seed=seed, **kw))
    api = Api(sb)
    out: list[str] = []
    try:
        for i in range(60):
            try:
                if i % 2:
                    r = await api.write("PUT", f"/v1/images/{image}/rating", {"rating": i % 6})
                else:
                    r = await api.get("/v1/me")
                out.append(str(r.status_code))
            except httpx2.ReadError:
                out.append("drop")
    finally:
        await api.aclose()
    return out


async def test_same_seed_same_faults(clock: FakeClock) -> None:
    kw = {"error_rate": 0.2, "drop_rate": 0.3}
    a = await fault_trace(5, clock, **kw)
    b = await fault_trace(5, clock, **kw)
    c = await fault_trace(6, clock, **kw)
    assert a == b
    assert a != c
    assert "500" in a and "drop" in a


async def test_error_rate_500_changes_nothing(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(error_rate=1.0, seed=3))
    api = Api(sb)
    try:
        digest = sb.state_digest()
        r = await api.write("PUT", "/v1/images/whatever/rating", {"rating": 1})
        assert_error(r, 500, "internal")
        r = await api.get("/v1/images")
        assert_error(r, 500, "internal")
        assert sb.state_digest() == digest and sb.applied_total() == 0
        # the guide and the spec are never faulted
        assert (await api.get("/llms.txt", None)).status_code == 200
        assert (await api.get("/openapi.v1.yaml", None)).status_code == 200
    finally:
        await api.aclose()


async def test_error_rate_share(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(error_rate=0.3, seed=9))
    api = Api(sb)
    try:
        codes = [(await api.get("/v1/me")).status_code for _ in range(200)]
        assert set(codes) == {200, 500}
        assert 30 <= codes.count(500) <= 90
    finally:
        await api.aclose()


async def test_429_bursts(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(burst_429_every=5, burst_429_len=2, retry_after=3))
    api = Api(sb)
    try:
        seq = []
        for _ in range(21):
            r = await api.get("/v1/me")
            seq.append(r.status_code)
            if r.status_code == 429:
                assert_error(r, 429, "rate_limited")
                assert r.headers["Retry-After"] == "3"
        assert seq[:7] == [200] * 5 + [429] * 2
        assert seq[7:14] == [200] * 5 + [429] * 2
        # polls of operations are never throttled by the fault
        op_uuid = None
        for _ in range(10):
            r = await api.write("PUT", f"/v1/images/{(await _first_image(api))}/rating", {"rating": 2})
            if r.status_code == 202:
                op_uuid = r.json()["uuid"]
                break
        assert op_uuid
        assert all([(await api.get(f"/v1/operations/{op_uuid}")).status_code == 200 for _ in range(12)])
    finally:
        await api.aclose()


async def _first_image(api: Api) -> str:
    for _ in range(10):
        r = await api.get("/v1/images", params={"limit": 1})
        if r.status_code == 200:
            return str(r.json()[0]["public_uuid"])
    raise AssertionError("no image")


async def test_latency(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(latency={"/v1/images": 0.05}))
    api = Api(sb)
    try:
        t0 = time.perf_counter()
        await api.get("/v1/images", params={"limit": 1})
        slow = time.perf_counter() - t0
        t0 = time.perf_counter()
        await api.get("/v1/me")
        fast = time.perf_counter() - t0
        assert slow >= 0.05
        assert fast < slow
    finally:
        await api.aclose()


async def test_latency_spares_polls_and_docs_unless_named(clock: FakeClock) -> None:
    sb = make_sandbox(clock, faults=Faults(latency={"/": 0.3}))
    api = Api(sb)
    try:
        u = (await api.get("/v1/images", params={"limit": 1})).json()[0]["public_uuid"]
        op = await api.ok_write("PUT", f"/v1/images/{u}/rating", {"rating": 1})
        t0 = time.perf_counter()
        await api.get(f"/v1/operations/{op['uuid']}")
        await api.get("/llms.txt", None)
        assert time.perf_counter() - t0 < 0.3  # neither was slowed
        sb.config.faults = Faults(latency={"/v1/operations": 0.1})
        t0 = time.perf_counter()
        await api.get(f"/v1/operations/{op['uuid']}")
        assert time.perf_counter() - t0 >= 0.1
    finally:
        await api.aclose()

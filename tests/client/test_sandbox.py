"""The client and the write runner against the in-process DPG sandbox (PLAN.md §1 interface)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import DownloadLink, Image, UploadTicket
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import Kind, MemoryLedger
from tests.client.helpers import FakeClock

try:
    from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig
except ImportError:  # the sandbox lands separately; these tests wait for it
    pytest.skip("dpg_mcp.sandbox is not importable yet", allow_module_level=True)

ADMIN = "dpg_api_live_sandbox_admin"
READONLY = "dpg_api_live_sandbox_readonly"
DISABLED = "dpg_api_live_sandbox_disabled"
BASE = "http://dpg.test"
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e9b50000000049454e44ae426082"
)

Factory = Callable[..., Any]


@pytest.fixture
def wall() -> FakeClock:
    # One fake "epoch" clock shared by the sandbox (op durations, expiries) and the runner (budget, polls).
    return FakeClock(now=time.time())


@pytest.fixture
async def make(wall: FakeClock) -> AsyncIterator[Factory]:
    clients: list[DPGClient] = []

    def factory(
        token: str = ADMIN, faults: Any = None, op_seconds: dict[str, float] | None = None, **kw: Any
    ) -> tuple[Any, DPGClient]:
        sb = Sandbox(
            SandboxConfig(seed=7, faults=faults or Faults(), operation_seconds=op_seconds or {}, clock=wall)
        )
        client = DPGClient(BASE, token, transport=sb.transport(), sleep=wall.sleep, **kw)
        clients.append(client)
        return sb, client

    yield factory
    for c in clients:
        await c.aclose()


def runner(client: DPGClient, wall: FakeClock, budget_s: float = 45.0, **kw: Any) -> WriteRunner:
    return WriteRunner(client, MemoryLedger(), budget_s, clock=wall, sleep=wall.sleep, **kw)


async def some_images(client: DPGClient, n: int) -> list[Image]:
    page = await client.list_images(limit=n)
    assert len(page.items) == n
    return page.items


# ---- reads -----------------------------------------------------------------------------------------------


async def test_reads_cover_the_gallery(make: Factory) -> None:
    _, client = make()
    me = await client.me()
    assert me.account is not None and me.account.unique_id == "riverside"
    assert "api.images.read" in me.capabilities

    first = await client.list_images(limit=5)
    assert first.items and first.total is not None
    img = await client.get_image(first.items[0].public_uuid)
    assert img.public_uuid == first.items[0].public_uuid and img.versions
    versions = await client.image_versions(img.public_uuid)
    assert {v.name for v in versions} >= {"original", "thumbnail"}

    kws = await client.keywords(limit=10)
    assert kws.items and all(k.count is not None for k in kws.items)
    assert await client.namespaces()
    facets = await client.facets()
    assert facets.ratings or facets.keywords
    assert isinstance(await client.metadata_profiles(), list)

    tree = await client.set_tree()
    assert tree
    sets = await client.list_sets(limit=50)
    assert sets.items
    one = await client.get_set(sets.items[0].public_uuid)
    assert one.public_uuid == sets.items[0].public_uuid
    members = await client.set_images(one.public_uuid, limit=5)
    assert all(m.hidden is not None for m in members.items)
    assert isinstance(await client.snapshots(one.public_uuid), list)
    assert (await client.archives()).items is not None
    assert "DPG" in (await client.guide()) or len(await client.guide()) > 100


async def test_paging_walks_every_image_once(make: Factory) -> None:
    _, client = make()
    seen: list[str] = []
    offset: int | None = 0
    total = None
    for _ in range(100):
        assert offset is not None
        page = await client.list_images(limit=7, offset=offset)
        total = page.total
        seen += [i.public_uuid for i in page.items]
        if not page.has_more:
            assert page.next_offset is None
            break
        offset = page.next_offset
    assert len(seen) == len(set(seen))
    assert total is None or total == len(seen)


async def test_operation_304_with_etag(make: Factory) -> None:
    _, client = make()
    (img,) = await some_images(client, 1)
    reply = await client.send_write("PUT", f"/v1/images/{img.public_uuid}/rating", {"rating": 3}, "k-304")
    assert reply.operation is not None
    op, etag = await client.get_operation(reply.operation.uuid)
    assert op is not None and etag
    again, etag2 = await client.get_operation(reply.operation.uuid, etag)
    assert again is None and etag2 == etag


# ---- errors ----------------------------------------------------------------------------------------------


async def test_error_envelopes_map_to_dpgerror(make: Factory) -> None:
    _, client = make()
    with pytest.raises(DPGError) as info:
        await client.get_image("00000000-0000-4000-8000-000000000000")
    assert info.value.status == 404 and info.value.code == "image_not_found" and info.value.request_id

    (img,) = await some_images(client, 1)
    with pytest.raises(DPGError) as info:
        await client.send_write("PATCH", f"/v1/images/{img.public_uuid}", {"title": "x" * 300}, "k-long")
    assert info.value.status == 400 and info.value.field == "title" and info.value.detail

    _, ro = make(READONLY)
    with pytest.raises(DPGError) as info:
        await ro.send_write("PUT", f"/v1/images/{img.public_uuid}/rating", {"rating": 1}, "k-ro")
    assert info.value.status == 403 and info.value.code == "forbidden"
    assert "api.ratings.write" in (info.value.detail or "")

    _, off = make(DISABLED)
    with pytest.raises(DPGError) as info:
        await off.me()
    assert info.value.code == "api_not_enabled"

    _, bad = make("dpg_api_live_not_a_real_token")
    with pytest.raises(DPGError) as info:
        await bad.me()
    assert info.value.status == 401 and "dpg_api_live_not_a_real_token" not in str(info.value)


async def test_same_key_other_body_is_a_conflict(make: Factory) -> None:
    _, client = make()
    (img,) = await some_images(client, 1)
    path = f"/v1/images/{img.public_uuid}/rating"
    await client.send_write("PUT", path, {"rating": 2}, "k-conflict")
    with pytest.raises(DPGError) as info:
        await client.send_write("PUT", path, {"rating": 5}, "k-conflict")
    assert info.value.status == 409 and info.value.code == "idempotency_key_conflict"


async def test_reads_survive_429_bursts_and_500s(make: Factory, wall: FakeClock) -> None:
    _, client = make(faults=Faults(seed=3, burst_429_every=3, burst_429_len=2, retry_after=1))
    for _ in range(12):
        await client.list_images(limit=3)
    assert 1.0 in wall.sleeps

    _, client = make(faults=Faults(seed=4, error_rate=0.3), max_attempts=8)
    for _ in range(20):
        await client.me()


# ---- the write runner ------------------------------------------------------------------------------------


async def test_exactly_once_under_dropped_responses(make: Factory, wall: FakeClock) -> None:
    sb, client = make(faults=Faults(seed=11, drop_rate=0.5))
    images = await some_images(client, 30)
    run = runner(client, wall)
    attempts = []
    for n, img in enumerate(images):
        out = await run.run(
            "PUT",
            f"/v1/images/{img.public_uuid}/rating",
            {"rating": n % 6},
            principal="admin",
            fingerprint=f"rate:{img.public_uuid}:{n % 6}",
        )
        assert out.state == "succeeded"
        attempts.append(out.attempts)
        tagged = await run.run(
            "POST",
            f"/v1/images/{img.public_uuid}/keywords",
            {"keywords": [f"batch:{n}"]},
            principal="admin",
            fingerprint=f"tag:{img.public_uuid}",
        )
        assert tagged.state == "succeeded"
        attempts.append(tagged.attempts)
    counts = sb.apply_counts()
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert max(attempts) > 1  # drops really happened and were resent with the same key
    for n, img in enumerate(images):
        again = await client.get_image(img.public_uuid)
        assert again.rating == n % 6 and f"batch:{n}" in [k.full for k in again.keywords]


async def test_ledger_set_value_again_applies_and_add_remove_add_ends_in_the_set(
    make: Factory, wall: FakeClock
) -> None:
    sb, client = make()
    images = await some_images(client, 2)
    target = (await client.list_sets()).items[0].public_uuid
    run = runner(client, wall)
    body = {"image_public_uuids": [i.public_uuid for i in images]}
    path = f"/v1/sets/{target}/images"

    a1 = await run.run("POST", path, body, principal="p", fingerprint="add")
    a2 = await run.run("POST", path, body, principal="p", fingerprint="add")
    # "set to a value": a second identical call after a delivered result is applied again (a fresh key),
    # which changes nothing, and never claims "applied earlier"
    assert (a1.replayed, a2.replayed) == (False, False)
    assert a1.operation is not None and a2.operation is not None
    assert a1.operation.uuid != a2.operation.uuid and len(sb.apply_counts()) == 2

    await run.run("DELETE", path, body, principal="p", fingerprint="remove")
    a3 = await run.run("POST", path, body, principal="p", fingerprint="add")
    assert not a3.replayed and len(sb.apply_counts()) == 4
    members = await client.set_images(target, limit=200)
    assert {i.public_uuid for i in images} <= {m.public_uuid for m in members.items}


async def test_ledger_create_sent_twice_is_created_once_and_says_so(make: Factory, wall: FakeClock) -> None:
    sb, client = make()
    run = runner(client, wall)
    before = len((await client.list_sets(limit=200)).items)
    body = {"name": "Ledger once"}
    c1 = await run.run("POST", "/v1/sets", body, principal="p", fingerprint="mk", kind=Kind.CREATE)
    c2 = await run.run("POST", "/v1/sets", body, principal="p", fingerprint="mk", kind=Kind.CREATE)
    assert (c1.replayed, c2.replayed) == (False, True)  # DPG itself replayed the key, outcome final
    assert c1.operation is not None and c2.operation is not None and c1.operation.uuid == c2.operation.uuid
    assert len((await client.list_sets(limit=200)).items) == before + 1 and len(sb.apply_counts()) == 1


async def test_direct_body_replies(make: Factory, wall: FakeClock) -> None:
    _, client = make()
    (img,) = await some_images(client, 1)
    run = runner(client, wall)
    out = await run.run(
        "POST",
        "/v1/downloads",
        {"image_public_uuid": img.public_uuid, "version": "original"},
        principal="p",
        fingerprint="dl",
    )
    assert out.state == "succeeded" and out.operation is None
    link = DownloadLink.model_validate(out.body)
    data, _ = await client.fetch_bytes(link.url, 5_000_000)
    assert data[:4] == b"\xff\xd8\xff\xe0"

    up = await run.run(
        "POST", "/v1/uploads", {"filename": "dot.png", "title": "Dot"}, principal="p", fingerprint="up"
    )
    assert up.state == "succeeded" and up.operation is None
    ticket = UploadTicket.model_validate(up.body)
    made = await client.upload_file(ticket, "dot.png", PNG_1PX, "image/png")
    new = await client.get_image(made["image_public_uuid"])
    assert new.title == "Dot"


async def test_slow_archive_budget_then_wait(make: Factory, wall: FakeClock) -> None:
    sb, client = make(op_seconds={"archive": 5.0})
    images = await some_images(client, 3)
    run = runner(client, wall, budget_s=2.0)
    seen: list[tuple[float, float | None, str]] = []

    async def progress(p: float, total: float | None, msg: str) -> None:
        seen.append((p, total, msg))

    body = {"image_public_uuids": [i.public_uuid for i in images], "filename": "friday"}
    out = await run.run("POST", "/v1/archives", body, principal="p", fingerprint="zip", progress=progress)
    assert out.state == "running" and out.operation is not None
    assert seen and all(t == 2.0 for _, t, _ in seen) and "running" in seen[-1][2]

    done = await run.wait(out.operation.uuid, budget_s=10.0)
    assert done.state == "succeeded" and done.operation is not None and done.operation.result
    url = done.operation.result.get("url")
    assert isinstance(url, str)
    data, _ = await client.fetch_bytes(url, 50_000_000)
    assert data[:2] == b"PK"
    assert len(sb.apply_counts()) == 1


async def test_token_not_in_logs_under_faults(
    make: Factory, wall: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, client = make(faults=Faults(seed=5, drop_rate=0.5, error_rate=0.2))
    run = runner(client, wall)
    images = await some_images(client, 5)
    for img in images:
        try:
            await run.run(
                "PUT",
                f"/v1/images/{img.public_uuid}/rating",
                {"rating": 1},
                principal="p",
                fingerprint=img.public_uuid,
            )
        except DPGError as err:
            assert ADMIN not in str(err) and ADMIN not in repr(err)
    assert caplog.records
    assert not [r for r in caplog.records if ADMIN in r.getMessage()]
    assert ADMIN not in repr(client) and ADMIN not in repr(run.client)


async def test_concurrent_writes_exactly_once_under_drops_and_500s(make: Factory, wall: FakeClock) -> None:
    sb, client = make(faults=Faults(seed=21, drop_rate=0.5, error_rate=0.2))
    images = await some_images(client, 20)
    # The fake clock sums every task's sleeps, so give time plenty of room; ~60% of attempts fail here,
    # so allow more attempts than the default to make "some write gave up" vanishingly unlikely.
    run = runner(client, wall, budget_s=10_000, max_send_attempts=30)
    outcomes: list[str] = []

    async def rate(img: Image, n: int) -> None:
        path = f"/v1/images/{img.public_uuid}/rating"
        out = await run.run("PUT", path, {"rating": n % 6}, principal="p", fingerprint=path)
        outcomes.append(out.state)

    async with anyio.create_task_group() as tg:
        for n, img in enumerate(images):
            tg.start_soon(rate, img, n)
    assert outcomes == ["succeeded"] * 20
    counts = sb.apply_counts()
    assert len(counts) == 20 and set(counts.values()) == {1}


async def test_batch_operation_through_the_runner(make: Factory, wall: FakeClock) -> None:
    sb, client = make(faults=Faults(seed=2, drop_rate=0.5))
    images = await some_images(client, 3)
    ops = [
        {"method": "PUT", "path": f"/v1/images/{i.public_uuid}/rating", "body": {"rating": 4}} for i in images
    ]
    out = await runner(client, wall).run(
        "POST", "/v1/operations/batch", {"operations": ops}, principal="p", fingerprint="batch:0"
    )
    assert out.state == "succeeded" and out.operation is not None and out.operation.type == "batch"
    result = out.operation.result or {}
    assert result.get("succeeded") == 3 and len(result.get("children", [])) == 3
    assert set(sb.apply_counts().values()) == {1}


async def test_slow_answers_hit_the_per_attempt_timeout(make: Factory) -> None:
    # Real time, kept tiny: the in-process transport has no socket timeouts, fail_after must bound it.
    _, client = make(faults=Faults(latency={"/v1/images": 0.3}), timeout=0.05, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(TransportFailure) as info:
        await client.list_images(limit=1)
    assert "timed out" in str(info.value)
    assert time.monotonic() - started < 0.3
    assert (await client.me()).account is not None  # other paths are not slowed

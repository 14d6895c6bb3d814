"""Hidden marks on search results come from a per-principal cache: right after our own writes, right within
FRESH_S after anyone else's, and a repeat search sends no full set reads (only 304 revalidations, or none)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import MemoryLedger
from dpg_mcp.sandbox import Sandbox
from dpg_mcp.tools import ToolContext
from dpg_mcp.tools.visibility_cache import FRESH_S, VisibilityCache

from .conftest import ADMIN, BASE, call, dump


class Recording(httpx2.AsyncBaseTransport):
    """The sandbox's transport, noting every set read it answers: (path, status)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.startswith("/v1/sets"):
            self.seen.append((request.url.path, resp.status_code))
        return resp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _ctx(sandbox: Sandbox, clock: Clock, principal: str) -> tuple[ToolContext, Recording, DPGClient]:
    rec = Recording(sandbox.transport())
    client = DPGClient(base_url=BASE, token=ADMIN, transport=rec)
    ctx = ToolContext(
        client=client,
        runner=WriteRunner(client, MemoryLedger()),
        principal=principal,
        visibility=VisibilityCache(clock=clock),
    )
    return ctx, rec, client


@pytest.fixture
async def recorded(sandbox: Sandbox, clock: Clock) -> AsyncIterator[tuple[ToolContext, Recording]]:
    ctx, rec, client = await _ctx(sandbox, clock, "test:me")
    async with client:
        yield ctx, rec


def _hidden_photo(sandbox: Sandbox) -> tuple[str, str, str]:
    """(set uuid, a photo hidden there with no release time, a search query that finds it)."""
    for sid, s in sandbox.store.sets.items():
        for uuid, at in s.hidden.items():
            if at is None:
                title = sandbox.store.images[uuid].filename.rsplit(".", 1)[0]
                return sid, uuid, f'"{title}"'
    raise AssertionError("the seeded sandbox hides no photo")


async def _mark(ctx: ToolContext, query: str, uuid: str) -> bool | None:
    r = await call(ctx, "search_images", query=query, limit=20)
    item = next(i for i in dump(r.structured)["images"] if i["uuid"] == uuid)
    hidden: bool | None = item.get("hidden")
    return hidden


async def test_a_repeat_search_sends_no_set_reads_and_later_only_304s(
    sandbox: Sandbox, recorded: tuple[ToolContext, Recording], clock: Clock
) -> None:
    ctx, rec = recorded
    _, uuid, query = _hidden_photo(sandbox)
    assert await _mark(ctx, query, uuid) is True
    first = list(rec.seen)
    assert ("/v1/sets/tree", 200) in first and any(p.endswith("/images") and st == 200 for p, st in first)
    rec.seen.clear()
    assert await _mark(ctx, query, uuid) is True
    assert rec.seen == []  # checked just now: nothing asked
    clock.now += FRESH_S + 0.1
    assert await _mark(ctx, query, uuid) is True
    assert rec.seen and all(st == 304 for _, st in rec.seen)  # revalidated, nothing re-read
    assert sorted(p for p, _ in rec.seen) == sorted(p for p, _ in first)


async def test_marks_follow_our_own_publish_at_once(
    sandbox: Sandbox, recorded: tuple[ToolContext, Recording]
) -> None:
    ctx, rec = recorded
    sid, uuid, query = _hidden_photo(sandbox)
    assert await _mark(ctx, query, uuid) is True
    r = await call(ctx, "publish_set", set_uuid=sid, hidden=False, image_uuids=[uuid])
    assert "error" not in dump(r.structured), r.text
    rec.seen.clear()
    assert await _mark(ctx, query, uuid) is None  # no clock moved: our write alone made it look again
    # The changed set's list is read once (its revalidation answer is the new reading); the rest are 304s.
    assert [st for p, st in rec.seen if p == f"/v1/sets/{sid}/images"] == [200]
    assert all(st == 304 for p, st in rec.seen if p not in (f"/v1/sets/{sid}/images", "/v1/sets/tree"))
    await call(ctx, "publish_set", set_uuid=sid, hidden=True, image_uuids=[uuid])
    assert await _mark(ctx, query, uuid) is True


async def test_another_principals_change_shows_within_the_fresh_window(
    sandbox: Sandbox, recorded: tuple[ToolContext, Recording], clock: Clock
) -> None:
    ctx, _ = recorded
    sid, uuid, query = _hidden_photo(sandbox)
    assert await _mark(ctx, query, uuid) is True
    other, _, other_client = await _ctx(sandbox, clock, "test:other")
    async with other_client:
        await call(other, "publish_set", set_uuid=sid, hidden=False, image_uuids=[uuid])
    assert sandbox.store.sets[sid].hidden.get(uuid, "gone") == "gone"
    assert await _mark(ctx, query, uuid) is True  # the stated bound: up to FRESH_S stale
    clock.now += FRESH_S + 0.1
    assert await _mark(ctx, query, uuid) is None


async def test_only_sets_that_hide_something_are_read(
    sandbox: Sandbox, recorded: tuple[ToolContext, Recording]
) -> None:
    ctx, rec = recorded
    hiding = {sid for sid, s in sandbox.store.sets.items() if s.hidden}
    await call(ctx, "search_images", limit=100)
    read = {p.split("/")[3] for p, _ in rec.seen if p.endswith("/images")}
    assert read and read <= hiding

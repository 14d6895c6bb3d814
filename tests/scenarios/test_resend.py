"""Resends as an agent makes them, over stdio and in-process (issue 6, "Done when": scenario tests).

Each scenario counts effects in the sandbox's store (sets, images, ratings, members), never by key, and reads
what the agent was told.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.ledger import State
from dpg_mcp.ledger.sqlite import SQLiteLedger
from dpg_mcp.sandbox import Sandbox, SandboxConfig, serve_in_thread
from tests.scenarios.conftest import EDITOR, Agent, Clock, Result, World, agent

pytestmark = pytest.mark.slow

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e9b50000000049454e44ae426082"
)
HOW = ("error", "cancel", "other_write", "restart")


def sets_named(world: World, name: str) -> int:
    return sum(1 for s in world.sandbox.store.sets.values() if s.name == name)


def images_named(world: World, filename: str) -> int:
    return sum(1 for im in world.sandbox.store.images.values() if im.filename == filename)


def some_image(world: World, n: int = 0) -> str:
    return sorted(world.sandbox.store.images)[n]


def create_args(name: str) -> tuple[str, dict[str, Any]]:
    return "create_set", {"name": name}


def upload_args(name: str) -> tuple[str, dict[str, Any]]:
    content = base64.b64encode(PNG_1PX).decode()
    return "upload_image", {"content_base64": content, "filename": f"{name}.png", "title": name}


async def first_try(world: World, a: Agent, how: str, tool: str, args: dict[str, Any]) -> Result | None:
    """The first call, ending without a final word in the way `how` says."""
    if how == "cancel":
        # The host gives up while the write has landed but the call has not finished: a create_set whose
        # Operation is still running, an upload reading its new image back.
        if tool == "upload_image":
            world.faults(latency={"/v1/images/": 1.0})
        else:
            world.sandbox.config.operation_seconds["set_create"] = 1.0
        with anyio.move_on_after(0.5):
            await a.call(tool, args)
        await anyio.sleep(0.8)
        world.sandbox.config.operation_seconds.clear()
        world.calm()
        return None
    if tool == "upload_image":
        world.faults(error_rate=1.0, paths=("/processor/",))  # the image processor fails every try
    else:
        world.faults(drop_rate=1.0)  # every write commits, every reply is lost
    r = await a.call(tool, args)
    world.calm()
    return r


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("make", [create_args, upload_args], ids=["create_set", "upload_image"])
async def test_a_create_resent_is_one_object(world: World, mode: str, how: str, make: Any) -> None:
    name = f"resent-{how}"
    tool, args = make(name)
    count = (
        (lambda: sets_named(world, name))
        if tool == "create_set"
        else (lambda: images_named(world, name + ".png"))
    )
    async with agent(world, mode) as a:
        first = await first_try(world, a, how, tool, args)
        if first is not None:
            # the error says what may have happened and exactly what calling again does
            assert first.is_error, first.text
            assert "may or may not have been applied" in first.text and "same idempotency key" in first.text
        if how == "other_write":
            assert not (
                await a.call("rate_images", {"image_uuids": [some_image(world)], "rating": 3})
            ).is_error
        if how == "restart":
            await a.restart()
        again = await a.call(tool, args)
    assert not again.is_error, again.text
    assert count() == 1
    if (tool == "create_set" and how != "error") or (tool == "upload_image" and how == "cancel"):
        # the first call's work landed: the resend names it and says it was created earlier
        assert "earlier" in again.text, again.text


async def test_an_upload_resent_after_its_ticket_expired_is_one_image(world: World, mode: str) -> None:
    tool, args = upload_args("expired-ticket")
    async with agent(world, mode) as a:
        await first_try(world, a, "cancel", tool, args)  # the file went in, its reply never came
        world.clock.offset += 11 * 60  # the ticket (10 minutes) has expired
        again = await a.call(tool, args)
    assert not again.is_error, again.text
    assert images_named(world, "expired-ticket.png") == 1 and "uploaded earlier" in again.text


async def test_rating_4_then_someone_sets_2_then_rating_4_ends_at_4(world: World, mode: str) -> None:
    image = some_image(world, 3)
    args = {"image_uuids": [image], "rating": 4}
    async with agent(world, mode) as a:
        assert not (await a.call("rate_images", args)).is_error
        async with DPGClient(base_url=world.url, token=EDITOR) as other:  # someone else, another token
            await other.send_write("PUT", f"/v1/images/{image}/rating", {"rating": 2}, "someone-else-key")
        assert world.sandbox.store.images[image].rating == 2
        again = await a.call("rate_images", args)
    assert world.sandbox.store.images[image].rating == 4
    assert again.data["message"] == "Rating 4 set on 1 image." and "earlier" not in again.text


async def test_add_with_reply_lost_then_remove_then_add_ends_in_the_set(world: World, mode: str) -> None:
    set_uuid = sorted(world.sandbox.store.sets)[0]
    image = next(
        i for i in sorted(world.sandbox.store.images) if i not in world.sandbox.store.sets[set_uuid].images
    )
    members = {"set_uuid": set_uuid, "image_uuids": [image]}
    async with agent(world, mode) as a:
        world.faults(drop_rate=1.0)
        lost = await a.call("add_to_set", members)
        world.calm()
        assert lost.is_error and "sends it again" in lost.text
        assert not (await a.call("remove_from_set", members)).is_error
        again = await a.call("add_to_set", members)
    assert not again.is_error and image in world.sandbox.store.sets[set_uuid].images


async def test_a_partial_batch_resent_sends_only_what_did_not_succeed(world: World, mode: str) -> None:
    images = sorted(world.sandbox.store.images)[:60]
    args = {"image_uuids": images, "rating": 1}
    batches = lambda: [o for o in world.sandbox.store.operations.values() if o.type == "batch"]  # noqa: E731
    store = world.sandbox.store
    gone = {i: store.images.pop(i) for i in images[50:]}  # DPG does not know the last 10 for a while
    store.changed(gone)
    async with agent(world, mode) as a:
        first = await a.call("rate_images", args)
        assert first.data["state"] == "partial" and "sends only the 10 images" in first.text, first.text
        assert [len(b.children) for b in batches()] == [50]
        store.images.update(gone)  # they are back
        store.changed(gone)
        again = await a.call("rate_images", args)
    assert [len(b.children) for b in batches()] == [50, 10]  # only the 10 not sent went out
    assert again.data["state"] == "succeeded" and again.data["succeeded"] == 60
    assert "50 of them by the earlier call" in again.data["message"]
    assert all(world.sandbox.store.images[i].rating == 1 for i in images)


async def end_archive_with(world: World, status: str) -> None:
    """Play DPG: the running archive Operation ends (or reports) with `status`."""
    for _ in range(100):
        ops = [o for o in world.sandbox.store.operations.values() if o.type == "archive"]
        if ops:
            ops[0].final_status, ops[0].finish_at = status, 0.0
            return
        await anyio.sleep(0.02)
    raise AssertionError("no archive operation started")


@pytest.mark.parametrize(("status", "error"), [("cancelled", True), ("awaiting_review", False)])
async def test_operation_statuses_end_the_wait_or_name_the_handle(
    world: World, mode: str, status: str, error: bool
) -> None:
    world.sandbox.config.operation_seconds["archive"] = 60.0
    out: list[Result] = []
    async with agent(world, mode) as a:

        async def build() -> None:
            out.append(await a.call("build_archive", {"image_uuids": [some_image(world)]}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(build)
            await end_archive_with(world, status)
    (r,) = out
    assert r.is_error is error and status in r.text, r.text
    if not error:  # unknown status: in progress until the budget, then a handle that names it
        assert r.data["state"] == "running" and r.data["operation_id"]


async def test_concurrent_identical_calls_join_one_run(world: World, mode: str) -> None:
    world.faults(latency={"/v1/sets": 0.5})
    results: list[Result] = []
    async with agent(world, mode) as a:

        async def call() -> None:
            results.append(await a.call("create_set", {"name": "together"}))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(call)
    assert sets_named(world, "together") == 1
    assert sorted("identical call" in r.text for r in results) == [False, True, True, True]


async def test_in_flight_in_one_process_is_joined_from_another(world: World, mode: str) -> None:
    world.faults(latency={"/v1/sets": 1.5})
    out: list[Result] = []
    ledger = SQLiteLedger(world.ledger_path)
    try:
        async with agent(world, mode) as first, agent(world, mode) as second:

            async def call(a: Agent) -> None:
                out.append(await a.call("create_set", {"name": "two processes"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, first)
                await _until_held(ledger)
                tg.start_soon(call, second)
    finally:
        await ledger.aclose()
    assert sets_named(world, "two processes") == 1
    assert all(not r.is_error for r in out) and sum("identical call" in r.text for r in out) == 1


async def _until_held(ledger: SQLiteLedger) -> None:
    """Bounded: until the first run holds the action (its entry is in flight in the shared file)."""
    for _ in range(400):
        if await _held(ledger):
            return
        await anyio.sleep(0.05)
    raise AssertionError("the first call never held the action")


async def _held(ledger: SQLiteLedger) -> bool:
    def rows() -> list[str]:
        with ledger._lock:
            return [r[0] for r in ledger._db.execute("SELECT body FROM entries")]

    return any(f'"state":"{State.IN_FLIGHT.value}"' in body for body in await anyio.to_thread.run_sync(rows))


@pytest.mark.parametrize("mode", ["inproc", "stdio"])
async def test_after_the_sandbox_restarts_a_matching_create_is_created_anew(
    tmp_path: Path, mode: str
) -> None:
    path, clock = tmp_path / "ledger.sqlite3", Clock()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    first = Sandbox(SandboxConfig(seed=7, clock=clock))
    with serve_in_thread(first, port=port) as url:
        async with agent(World(first, url, clock, path), mode) as a:
            assert not (await a.call("create_set", {"name": "before the reset"})).is_error
    fresh = Sandbox(SandboxConfig(seed=7, clock=clock))  # same seed, tokens and ids: only instance_id differs
    assert fresh.engine.instance_id != first.engine.instance_id
    with serve_in_thread(fresh, port=port) as url2:
        assert url2 == url
        world = World(fresh, url, clock, path)
        async with agent(world, mode) as a:
            again = await a.call("create_set", {"name": "before the reset"})
    assert not again.is_error and "earlier" not in again.text  # a new gallery: nothing was created earlier
    assert sets_named(world, "before the reset") == 1
    ledger = SQLiteLedger(path)
    try:
        assert await ledger.count() == 2  # one entry per gallery instance
    finally:
        await ledger.aclose()


async def test_an_upload_whose_reply_was_lost_is_found_by_its_transaction_after_the_ticket_expired(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpg_mcp.tools import files

    monkeypatch.setattr(files, "_FILE_ATTEMPTS", 1)  # no resend inside the call: it ends not knowing
    tool, args = upload_args("lost-reply")
    async with agent(world, "inproc") as a:
        world.faults(drop_rate=1.0, paths=("/processor/",))  # the file goes in, the reply is lost
        lost = await a.call(tool, args)
        world.calm()
        assert lost.is_error and "same idempotency key" in lost.text
        world.clock.offset += 11 * 60  # the ticket has expired
        again = await a.call(tool, args)
    assert not again.is_error, again.text
    assert images_named(world, "lost-reply.png") == 1 and "uploaded earlier" in again.text


async def test_a_create_whose_object_is_gone_is_created_anew(world: World) -> None:
    tool, args = upload_args("deleted-meanwhile")
    async with agent(world, "inproc") as a:
        first = await a.call(tool, args)
        gone = first.data["image"]["uuid"]
        assert not (await a.call("delete_image", {"image_uuids": [gone], "confirm": True})).is_error
        made = await a.call("create_set", {"name": "deleted-meanwhile"})
        store = world.sandbox.store  # someone removed the set meanwhile (DPG's API has no set delete)
        del store.sets[made.data["set_uuid"]]
        for siblings in store.children.values():
            if made.data["set_uuid"] in siblings:
                siblings.remove(made.data["set_uuid"])
        store.generation += 1
        again = await a.call(tool, args)
        set_again = await a.call("create_set", {"name": "deleted-meanwhile"})
    assert not again.is_error and "earlier" not in again.text, again.text
    assert again.data["image"]["uuid"] != gone and images_named(world, "deleted-meanwhile.png") == 1
    assert not set_again.is_error and "earlier" not in set_again.text, set_again.text
    assert sets_named(world, "deleted-meanwhile") == 1

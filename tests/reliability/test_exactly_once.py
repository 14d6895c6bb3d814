"""1,000 mixed writes under faults, resent exactly as the error texts advise (issue 6, "Done when").

The sandbox drops 20 % of write replies after committing, fails 10 % of requests with a 5xx and answers 429
bursts, the image processor included. 8 writes run at a time, through the MCP server (in-process) with its
SQLite ledger. A call that reports failure, an unknown outcome or a partial result is resent exactly as its
text says: some right away, some after other writes, some after a server restart (a new server on the same
ledger file). Effects are counted in the store by each action's unique mark, so a duplicate shows up as two
objects or two effects. Printed and asserted: 0 duplicate creations, 0 lost, 0 untruthful results.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from dpg_mcp.config import SANDBOX_API_URL, Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.ledger.sqlite import SQLiteLedger
from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig
from dpg_mcp.server import build_server

pytestmark = pytest.mark.slow

TOKEN = "dpg_api_live_sandbox_admin"
WRITES = 1000
AT_ONCE = 8
RESTARTS = 2  # the server is rebuilt on the same ledger file this many times, between thirds of the run
MAX_RESENDS = 12
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5f6e9b50000000049454e44ae426082"
)
FAULTS = Faults(
    seed=2026, error_rate=0.10, drop_rate=0.20, burst_429_every=150, burst_429_len=3, retry_after=1
)
KINDS = ("caption", "rating", "keywords", "member", "create_set", "batch", "upload", "archive")
CREATES = {"create_set", "upload", "archive"}
# What a text says happened: words that must match the store.
NOTHING_APPLIED = re.compile(r"nothing (new )?was applied(?! twice)|nothing was sent|not applied", re.I)


@dataclass
class Action:
    n: int
    kind: str
    tool: str
    args: dict[str, Any]
    mark: str
    images: list[str]
    calls: int = 0
    outcome: str = "none"  # succeeded | failed (gave up / told not to retry) | none
    untruthful: list[str] = field(default_factory=list)


def make_actions(sb: Sandbox, rng: random.Random) -> list[Action]:
    """Each action has its own images (no two actions touch one image) and its own mark."""
    free = sorted(sb.store.images)
    rng.shuffle(free)
    sets = sorted(sb.store.sets)
    actions: list[Action] = []
    for n in range(WRITES):
        kind = KINDS[n % len(KINDS)]
        mark = f"m{n:04d}x{rng.randrange(10**6):06d}"
        take = 4 if kind == "batch" else 1
        images, free = free[:take], free[take:]
        args: dict[str, Any]
        if kind == "caption":
            tool, args = "caption_image", {"image_uuid": images[0], "title": mark}
        elif kind == "rating":
            tool, args = "rate_images", {"image_uuids": images, "rating": 1 + n % 5}
        elif kind == "keywords":
            tool, args = "tag_images", {"image_uuids": images, "add": [mark]}
        elif kind == "member":
            tool, args = "add_to_set", {"set_uuid": sets[n % len(sets)], "image_uuids": images}
        elif kind == "create_set":
            tool, args, images = "create_set", {"name": mark}, []
        elif kind == "batch":
            tool, args = "tag_images", {"image_uuids": images, "add": [mark]}
        elif kind == "upload":
            content = base64.b64encode(PNG).decode()
            tool, args, images = "upload_image", {"content_base64": content, "filename": f"{mark}.png"}, []
        else:
            tool, args = "build_archive", {"image_uuids": images, "filename": mark}
        actions.append(Action(n, kind, tool, args, mark, images))
    return actions


def effects(sb: Sandbox, a: Action) -> int:
    """How many times the action's effect is in the store (1 = present once, 0 = absent, 2+ = duplicate)."""
    store = sb.store
    if a.kind == "create_set":
        return sum(1 for s in store.sets.values() if s.name == a.mark)
    if a.kind == "upload":
        return sum(1 for im in store.images.values() if im.filename == f"{a.mark}.png")
    if a.kind == "archive":
        return sum(1 for ar in store.archives.values() if ar.filename == f"{a.mark}.zip")
    if a.kind == "caption":
        return int(store.images[a.images[0]].title == a.mark)
    if a.kind == "rating":
        return int(store.images[a.images[0]].rating == a.args["rating"])
    if a.kind in ("keywords", "batch"):
        return int(all(any(v == a.mark for _, v in store.images[i].keywords) for i in a.images))
    members = store.sets[a.args["set_uuid"]].images
    counts = [members.count(i) for i in a.images]
    return max(counts) if all(counts) else 0


@dataclass
class Run:
    sb: Sandbox
    ledger_path: Path
    client: Client | None = None
    restarts: int = 0
    resends: int = 0
    reported_failure: int = 0
    later: list[Action] = field(default_factory=list)  # resends deferred until after other writes
    after_restart: list[Action] = field(default_factory=list)  # resends deferred until after a restart

    async def call(self, a: Action, tool: str | None = None, args: dict[str, Any] | None = None) -> Any:
        assert self.client is not None
        with anyio.fail_after(120):
            return await self.client.call_tool(tool or a.tool, args if args is not None else a.args)


@asynccontextmanager
async def serving(run: Run) -> AsyncIterator[None]:
    """One dpg-mcp server on the shared ledger file (rebuilt on restart; the sandbox stays)."""
    async with DPGClient(base_url=SANDBOX_API_URL, token=TOKEN, transport=run.sb.transport()) as http:
        ledger = SQLiteLedger(run.ledger_path)
        try:
            settings = Settings(token=SecretStr(TOKEN), api_url=SANDBOX_API_URL, wait_budget_s=1.0)
            server = await build_server(http, settings, ledger=ledger)
            server.dpg.runner.backoff_base_s = (
                0.02  # quick retries: the budget, not the backoff, is the limit
            )
            server.dpg.runner.poll_initial_s = 0.005
            async with Client(server) as client:
                run.client = client
                yield
        finally:
            run.client = None
            await ledger.aclose()


async def perform(run: Run, a: Action, rng: random.Random) -> None:
    """Call, then resend exactly as the text advises; some resends are deferred (other writes, a restart)."""
    while a.calls < MAX_RESENDS:
        before = effects(run.sb, a)
        r = await run.call(a)
        a.calls += 1
        text = "\n".join(getattr(c, "text", "") for c in r.content)
        data = r.structured_content if isinstance(r.structured_content, dict) else {}
        state = data.get("state")
        if not r.is_error and state == "running" and data.get("operation_id"):
            state = await finish_handle(run, a, data["operation_id"])
            if state == "succeeded":
                a.outcome = "succeeded"
                return
        elif not r.is_error and state in (None, "succeeded"):  # an upload's result has no state
            a.outcome = "succeeded"
            check_words(run, a, text, before, ok=True)
            return
        else:
            check_words(run, a, text, before, ok=False)
            if r.is_error:
                run.reported_failure += 1
        advice = text.lower()
        if "do not retry" in advice or ("again" not in advice and "check_operation" not in advice):
            a.outcome = "failed"
            return
        wait = re.search(r"wait (\d+(?:\.\d+)?) s", advice)
        if wait:
            await anyio.sleep(float(wait.group(1)))
        run.resends += 1
        # Resend as advised: right away, after other writes, or after the server restarted.
        roll = rng.random()
        if roll < 0.3 and run.restarts < RESTARTS:
            run.after_restart.append(a)
            return
        if roll < 0.6:
            run.later.append(a)
            return
    a.outcome = "failed"


async def finish_handle(run: Run, a: Action, op_id: str) -> str:
    for _ in range(20):  # bounded: each check waits up to the server's budget
        r = await run.call(a, "check_operation", {"operation_id": op_id})
        data = r.structured_content if isinstance(r.structured_content, dict) else {}
        if r.is_error:
            return "failed"
        if data.get("state") != "running":
            return str(data.get("state"))
    return "running"


def check_words(run: Run, a: Action, text: str, before: int, *, ok: bool) -> None:
    """The words must match the store and the ledger's rules."""
    now = effects(run.sb, a)
    if ok and now == 0:
        a.untruthful.append(f"reported done, effect absent: {text[:160]}")
    if "earlier" in text and a.kind not in CREATES and "by the earlier call" not in text:
        a.untruthful.append(f"a set-to-a-value result claims an earlier application: {text[:160]}")
    if "created earlier" in text and a.calls == 1:
        a.untruthful.append(f"'created earlier' on the action's first call: {text[:160]}")
    if not ok and NOTHING_APPLIED.search(text) and now > before and "may or may not" not in text:
        a.untruthful.append(f"said nothing was applied, but it was: {text[:160]}")


async def test_exactly_once_under_faults(tmp_path: Path) -> None:
    rng = random.Random(7)
    sb = Sandbox(SandboxConfig(seed=7, images=1500))
    actions = make_actions(sb, rng)
    sb.set_faults(FAULTS)
    run = Run(sb, tmp_path / "ledger.sqlite3")
    thirds = [actions[i * len(actions) // 3 : (i + 1) * len(actions) // 3] for i in range(3)]
    with anyio.fail_after(600):
        for phase, chunk in enumerate(thirds):
            async with serving(run):
                if phase:  # the resends that waited for this restart go first
                    pending, run.after_restart = run.after_restart, []
                    await run_all(run, pending, rng)
                await run_all(run, chunk, rng)
                while run.later:  # deferred resends, after other writes
                    pending, run.later = run.later, []
                    await run_all(run, pending, rng)
            run.restarts += 1
        async with serving(run):
            while run.after_restart or run.later:
                pending, run.after_restart, run.later = run.after_restart + run.later, [], []
                await run_all(run, pending, rng)
    sb.set_faults(Faults())

    duplicates = [a for a in actions if effects(sb, a) > 1]
    lost = [a for a in actions if a.outcome == "succeeded" and effects(sb, a) == 0]
    untruthful = [a for a in actions if a.untruthful]
    unfinished = [a for a in actions if a.outcome != "succeeded"]
    print(
        f"\nexactly-once: {len(actions)} writes ({AT_ONCE} at a time), {run.reported_failure} calls reported "
        f"failure or an open outcome, {run.resends} resends as advised, {RESTARTS} server restarts, "
        f"{len(sb.apply_counts())} keys applied; duplicates {len(duplicates)}, lost {len(lost)}, "
        f"untruthful {len(untruthful)}, not finished {len(unfinished)}"
    )
    assert run.resends > 20  # the faults really made the agent resend
    assert not duplicates, [(a.kind, a.mark, effects(sb, a)) for a in duplicates[:10]]
    assert not lost, [(a.kind, a.mark) for a in lost[:10]]
    assert not untruthful, [(a.kind, a.untruthful) for a in untruthful[:5]]
    assert len(unfinished) <= len(actions) // 100  # resending as advised finishes (almost) everything


async def run_all(run: Run, actions: list[Action], rng: random.Random) -> None:
    queue = list(actions)
    lock = anyio.Lock()

    async def worker() -> None:
        while True:
            async with lock:
                if not queue:
                    return
                a = queue.pop(0)
            await perform(run, a, rng)

    async with anyio.create_task_group() as tg:
        for _ in range(AT_ONCE):
            tg.start_soon(worker)

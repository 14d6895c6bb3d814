"""A many-part write sends its batches at once and follows their Operations together."""

from __future__ import annotations

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import MemoryLedger
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.tools import ToolContext

from .conftest import ADMIN, BASE, call, dump

BUDGET_S = 2.0


async def test_every_batch_goes_out_before_any_has_ended_and_polls_stay_few() -> None:
    now = [1_800_000_000.0]  # DPG's clock stands still: no Operation ends during the call
    sb = Sandbox(SandboxConfig(images=600, operation_seconds={"rating": 5.0}, clock=lambda: now[0]))
    async with DPGClient(base_url=BASE, token=ADMIN, transport=sb.transport()) as c:
        # Long enough that a loaded machine still sends all ten parts in time (each is in-process); the
        # Operations never end, so the call always spends the whole budget.
        runner = WriteRunner(c, MemoryLedger(), budget_s=BUDGET_S)
        ctx = ToolContext(client=c, runner=runner, principal="p")
        ids = sorted(sb.store.images)[:500]
        seq = sb.request_seq
        r = await call(ctx, "rate_images", image_uuids=ids, rating=3)
        out = dump(r.structured)
        requests = sb.request_seq - seq
    batches = [o for o in sb.store.operations.values() if o.type == "batch"]
    # One after another, the first unfinished batch would have held back the other nine.
    assert len(batches) == 10 and sum(len(b.children) for b in batches) == 500
    assert out["state"] == "running" and "10 of 10 parts are still running" in out["message"]
    # 10 sends, one lead polled at most every 20 ms for the budget, and a last look at each part
    assert requests <= 10 + BUDGET_S / 0.02 + 1 + 10

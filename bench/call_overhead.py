"""What the MCP layer adds to a call, as ratios measured in one run (these machines are noisy).

- read:  median `search_images` through an in-process MCP client, divided by the same search made directly
         with the DPG client (`list_images`).
- write: median `caption_image` through MCP (key, send, poll, one completed result), divided by the raw
         write-and-poll with the DPG client (`send_write` + `get_operation` until terminal).

Both run against the in-process sandbox, so the ratios isolate our overhead from the network.

    python bench/call_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import paired_medians, rig

QUERY = {"query": "sunset", "limit": 20}


async def run(rounds: int) -> None:
    async with rig() as r, Client(r.server) as mcp:
        page = await r.client.list_images(limit=1)
        image = page.items[0].public_uuid

        async def direct_search(_: int) -> object:
            return await r.client.list_images(**QUERY)  # type: ignore[arg-type]

        async def mcp_search(_: int) -> object:
            result = await mcp.call_tool("search_images", QUERY)
            assert not result.is_error, result
            return result

        async def raw_write(i: int) -> object:
            path = f"/v1/images/{image}"
            reply = await r.client.send_write("PATCH", path, {"title": f"raw {i}"}, str(uuid.uuid4()))
            op = reply.operation
            etag = None
            while op is not None and not op.is_terminal:
                fresh, etag = await r.client.get_operation(op.uuid, etag)
                op = fresh or op
            return op

        async def mcp_write(i: int) -> object:
            # A distinct title each round: an identical call would be answered from the write memo.
            result = await mcp.call_tool("caption_image", {"image_uuid": image, "title": f"mcp {i}"})
            assert not result.is_error, result
            return result

        t_direct, t_mcp = await paired_medians(direct_search, mcp_search, rounds=rounds)
        t_raw, t_mcpw = await paired_medians(raw_write, mcp_write, rounds=rounds)

    print(f"rounds per figure: {rounds}, timed in alternation with the baseline (median)")
    for label, base, base_ms, ours, ours_ms in (
        ("search", "direct list_images", t_direct, "search_images via MCP", t_mcp),
        ("write", "raw write + poll", t_raw, "caption_image via MCP", t_mcpw),
    ):
        print(f"{label:<7}{base:>20} {base_ms * 1e3:7.2f} ms | {ours:>22} {ours_ms * 1e3:7.2f} ms", end="")
        print(f" | ratio {ours_ms / base_ms:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="timed calls per figure (default 40)")
    args = parser.parse_args()
    anyio.run(run, max(5, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Context cost of dpg-mcp: the bytes of tools/list (and ~tokens = bytes / 4) for each sandbox token.

The agent pays this on every turn. The admin token's figure must stay under 20 KB (issue "MCP server core").
Each figure is also printed as a ratio: to that budget, and per tool to GitHub's and Sentry's published costs.

    python bench/context_cost.py [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import rig

from dpg_mcp.cli import tools_list_bytes
from dpg_mcp.config import ConfigError

TOKENS = ("admin", "editor", "readonly", "uploader", "disabled")
BUDGET_BYTES = 20 * 1024
# Published tools/list costs of other servers (tokens, tools), for scale.
OTHERS = {"GitHub": (46_000, 66), "Sentry": (14_000, 24)}


@dataclasses.dataclass
class Row:
    token: str
    tools: int = 0
    bytes: int = 0
    error: str | None = None

    @property
    def tokens(self) -> int:
        return self.bytes // 4


async def measure() -> list[Row]:
    rows: list[Row] = []
    for name in TOKENS:
        try:
            async with rig(f"dpg_api_live_sandbox_{name}") as r:
                size, tools = await tools_list_bytes(r.server)
        except ConfigError as exc:
            rows.append(Row(name, error=str(exc)))
            continue
        rows.append(Row(name, tools=len(tools), bytes=size))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    rows = anyio.run(measure)
    if args.json:
        print(json.dumps([{**dataclasses.asdict(r), "tokens": r.tokens} for r in rows], indent=2))
        return 0
    print(f"{'token':<10} {'tools':>5} {'bytes':>7} {'~tokens':>8} {'tok/tool':>8} {'/20 KB':>7}")
    for r in rows:
        if r.error:
            print(f"{r.token:<10} startup refused: {r.error}")
            continue
        per_tool = r.tokens / r.tools if r.tools else 0.0
        share = r.bytes / BUDGET_BYTES
        print(f"{r.token:<10} {r.tools:>5} {r.bytes:>7} {r.tokens:>8} {per_tool:>8.0f} {share:>7.2f}")
    admin = next(r for r in rows if r.token == "admin")
    for other, (tokens, tools) in OTHERS.items():
        total = admin.tokens / tokens
        per_tool = (admin.tokens / admin.tools) / (tokens / tools)
        print(f"admin vs {other}'s server: {total:.2f}x its tokens, {per_tool:.2f}x its tokens per tool")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

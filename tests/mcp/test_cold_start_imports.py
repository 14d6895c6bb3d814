"""Cold start imports only what the mode uses: serving a token loads no sandbox, Pillow, Redis nor hosting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Everything `dpg-mcp` does before its first tools/list with a token: the CLI, the server built against a
# DPG that answers /v1/me and /llms.txt, and tools/list over an in-memory MCP client.
SCRIPT = r"""
import json, sys
import anyio, httpx2
from pydantic import SecretStr
import dpg_mcp.cli
from dpg_mcp.config import Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.server import build_server

ME = {"account": {"uuid": "a", "name": "Acme"}, "capabilities": ["api.images.read", "api.images.write",
      "api.upload", "api.download", "api.sets.write", "api.keywords.write", "api.metadata.write"]}

def handler(request):
    if request.url.path.endswith("/v1/me"):
        return httpx2.Response(200, json=ME)
    if request.url.path.endswith("llms.txt"):
        return httpx2.Response(200, text="# DPG\nA guide.")
    return httpx2.Response(404, json={"error": {"code": "not_found", "message": "no"}})

async def main():
    from mcp import Client
    settings = Settings(token=SecretStr("dpg_api_live_x"), api_url="https://api.test")
    transport = httpx2.MockTransport(handler)
    async with DPGClient("https://api.test", "dpg_api_live_x", transport=transport) as client:
        server = await build_server(client, settings)
        async with Client(server) as mcp:
            assert (await mcp.list_tools()).tools

anyio.run(main)
loaded = [m for m in sys.modules if m.split(".")[0] in ("PIL", "redis")
          or m.startswith(("dpg_mcp.sandbox", "dpg_mcp.hosting"))]
print(json.dumps(sorted(loaded)))
"""


def test_serving_a_token_imports_no_sandbox_pillow_redis_or_hosting() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

#!/usr/bin/env bash
# Drive `dpg-mcp --sandbox` over stdio with the official MCP Inspector CLI (a TypeScript client that negotiates
# the 2025-11-25 handshake era, so it checks what the in-process Python tests, on 2026-07-28, do not).
#
# Installs @modelcontextprotocol/inspector@2.12.0 and node@22 (Inspector v2 wants Node >= 22.19) with npm into a
# cache dir (only the npm registry is needed), then asserts on the JSON it prints.
# Env: DPG_INSPECTOR_CACHE (default .ci/cache/inspector, git-ignored), PYTHON (default .venv/bin/python).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${DPG_INSPECTOR_CACHE:-$REPO/.ci/cache/inspector}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
INSPECTOR_VERSION="2.12.0"

mkdir -p "$CACHE/home"
if [ ! -f "$CACHE/node_modules/@modelcontextprotocol/inspector/package.json" ] || [ ! -x "$CACHE/node_modules/.bin/node" ]; then
  echo "inspector: installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION and node@22 into $CACHE" >&2
  (cd "$CACHE" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error \
         "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" "node@22" >&2)
fi
NODE="$CACHE/node_modules/.bin/node"
LAUNCHER="$CACHE/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
[ -f "$LAUNCHER" ] || { echo "inspector: launcher not found at $LAUNCHER" >&2; exit 1; }

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
inspect() {  # the Inspector keeps a catalog under ~/.mcp-inspector: give it its own HOME
  (cd "$REPO" && HOME="$CACHE/home" timeout 120 "$NODE" "$LAUNCHER" --cli "$PYTHON" -m dpg_mcp.cli --sandbox "$@")
}

inspect --method tools/list >"$OUT/list.json"
inspect --method tools/call --tool-name search_images --tool-arg query=sunset >"$OUT/call.json"
inspect --method resources/read --uri dpg://me >"$OUT/me.json"
inspect --method prompts/list >"$OUT/prompts.json"

"$PYTHON" - "$OUT" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
listing = json.loads((out / "list.json").read_text())
tools = {t["name"]: t for t in listing["tools"]}
for name in ("search_images", "caption_image", "add_to_set", "build_archive", "check_operation", "get_guide"):
    assert name in tools, f"{name} missing from tools/list: {sorted(tools)}"
search = tools["search_images"]
assert search["annotations"]["readOnlyHint"] is True, search["annotations"]
assert search["inputSchema"]["type"] == "object" and "query" in search["inputSchema"]["properties"]
assert "outputSchema" in search
assert tools["delete_image"]["annotations"]["destructiveHint"] is True
size = len(json.dumps(listing, separators=(",", ":")).encode())
assert size <= 20_000, f"tools/list is {size} bytes"

call = json.loads((out / "call.json").read_text())
assert call.get("isError") is False, call
assert isinstance(call.get("structuredContent"), dict), call
assert call["content"][0]["type"] == "text"

me = json.loads((out / "me.json").read_text())
body = json.loads(me["contents"][0]["text"])
assert body["account"]["unique_id"] == "riverside", body

prompts = {p["name"] for p in json.loads((out / "prompts.json").read_text())["prompts"]}
assert {"caption_set", "tidy_keywords", "schedule_release", "best_shots_archive"} <= prompts, prompts

print(f"inspector: OK ({len(tools)} tools, tools/list {size} bytes, search_images answered, dpg://me read)")
PY

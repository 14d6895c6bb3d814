#!/usr/bin/env bash
# The official MCP conformance suite against `dpg-mcp serve --transport http --sandbox`.
#
# Installs @modelcontextprotocol/conformance (it needs Node >= 22: node@22 from npm) into a cache dir, starts
# the server on a free loopback port and, since the harness cannot send a bearer token, a loopback proxy that
# adds one (tests/http/bearer_proxy.py; Host and Origin pass unchanged), then runs every scenario that needs
# no fixture tools. Exit status: non-zero when any check fails.
#
# Left out, and why:
#   tools-call-*, json-schema-2020-12, elicitation-sep1034-defaults, elicitation-sep1330-enums,
#   resources-read-*, resources-templates-read, resources-subscribe/unsubscribe, prompts-get-*,
#   completion-complete, http-custom-header-server-validation, input-required-result-*:
#     call fixture tools, resources or prompts (test_simple_text, test://static-text, test_simple_prompt, an
#     x-mcp-header tool, test_input_required_result_*) that a DPG server does not have.
#   server-stateless: one of its checks calls the fixture tool test_missing_capability (the other checks of
#     the scenario are run and pass; the scenario is left out so the fixture check does not fail CI).
#   logging-set-level, tools-call-with-logging: dpg-mcp declares no logging capability (logging/setLevel is
#     deprecated in 2026-07-28; dpg-mcp logs to stderr, never to the client).
#   server-sse-polling: needs an event store (resumable streams), which dpg-mcp does not configure.
#   tasks-*, sep-2640-*: extensions dpg-mcp does not implement.
# Env: DPG_CONFORMANCE_CACHE (default .ci/cache/conformance), PYTHON (default .venv/bin/python).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${DPG_CONFORMANCE_CACHE:-$REPO/.ci/cache/conformance}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
VERSION="0.2.0-alpha.12"
SCENARIOS=(
  server-initialize server-session-lifecycle ping tools-list resources-list prompts-list
  dns-rebinding-protection server-sse-multiple-streams caching http-header-validation
  sep-2164-resource-not-found
)

mkdir -p "$CACHE"
if [ ! -f "$CACHE/node_modules/@modelcontextprotocol/conformance/package.json" ] \
   || ! grep -q "\"version\": \"$VERSION\"" "$CACHE/node_modules/@modelcontextprotocol/conformance/package.json" \
   || [ ! -x "$CACHE/node_modules/.bin/node" ]; then
  echo "conformance: installing @modelcontextprotocol/conformance@$VERSION and node@22 into $CACHE" >&2
  (cd "$CACHE" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error "@modelcontextprotocol/conformance@$VERSION" "node@22" >&2)
fi
NODE="$CACHE/node_modules/.bin/node"
CONF="$CACHE/node_modules/@modelcontextprotocol/conformance/dist/index.js"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
PROXY_PORT="$(free_port)"
LOGS="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$LOGS"
}
trap cleanup EXIT

"$PYTHON" -m dpg_mcp.cli serve --transport http --sandbox --host 127.0.0.1 --port "$PORT" >"$LOGS/server.log" 2>&1 &
PIDS+=($!)
"$PYTHON" "$REPO/tests/http/bearer_proxy.py" "$PROXY_PORT" "http://127.0.0.1:$PORT" dpg_api_live_sandbox_admin \
  >"$LOGS/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/healthz"; then
    break
  fi
  sleep 0.1
done

failed=0
for scenario in "${SCENARIOS[@]}"; do
  out="$(cd "$CACHE" && timeout 120 "$NODE" "$CONF" server --url "http://localhost:$PROXY_PORT/mcp" --scenario "$scenario" 2>&1)" || true
  summary="$(grep -E '^Passed: ' <<<"$out" | tail -1)"
  echo "conformance $scenario: ${summary:-no summary}"
  if [ -z "$summary" ] || ! grep -qE ', 0 failed' <<<"$summary"; then
    failed=1
    echo "$out" | tail -25 >&2
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "conformance: failures (server log follows)" >&2
  tail -40 "$LOGS/server.log" >&2
  exit 1
fi
echo "conformance: ${#SCENARIOS[@]} scenarios passed"

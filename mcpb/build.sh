#!/usr/bin/env bash
# Build dist/dpg-mcp-<version>.mcpb: a uv bundle (manifest + pyproject + source, no wheels inside), so Claude
# Desktop runs `uv run dpg-mcp --stdio` on macOS, Windows and Linux alike, with the token as a user-configured
# secret. Validated and packed with the official @anthropic-ai/mcpb CLI (installed from npm into a cache dir).
# Env: DPG_MCPB_CACHE (default .ci/cache/mcpb). Output path printed on the last line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DPG_MCPB_CACHE:-$REPO/.ci/cache/mcpb}"
MCPB_VERSION="2.1.2"

mkdir -p "$CACHE"
if [ ! -x "$CACHE/node_modules/.bin/mcpb" ]; then
  echo "mcpb: installing @anthropic-ai/mcpb@$MCPB_VERSION into $CACHE" >&2
  (cd "$CACHE" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error "@anthropic-ai/mcpb@$MCPB_VERSION" >&2)
fi
MCPB="$CACHE/node_modules/.bin/mcpb"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)"
manifest_version="$(sed -n 's/^  "version": "\(.*\)",/\1/p' "$REPO/mcpb/manifest.json" | head -1)"
if [ "$version" != "$manifest_version" ]; then
  echo "mcpb/manifest.json says version $manifest_version, pyproject.toml $version: make them equal" >&2
  exit 1
fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# -L: the package's bundled/ entries are symlinks to the repo's llms.txt and prompts/; the bundle needs files.
cp "$REPO/mcpb/manifest.json" "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/llms.txt" "$STAGE/"
cp -RL "$REPO/dpg_mcp" "$STAGE/dpg_mcp"
cp -R "$REPO/prompts" "$STAGE/prompts"
find "$STAGE" -name '__pycache__' -prune -exec rm -rf {} +
find "$STAGE" -name '*.pyc' -delete

"$MCPB" validate "$STAGE/manifest.json" >&2
mkdir -p "$REPO/dist"
OUT="$REPO/dist/dpg-mcp-$version.mcpb"
rm -f "$OUT"
"$MCPB" pack "$STAGE" "$OUT" >&2
echo "$OUT"

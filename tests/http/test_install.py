"""Ways to install, checked without Docker: the image's command line and health check run as the image would
run them; the Dockerfile lints clean (hadolint); compose.yaml is valid against the Compose schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from .conftest import free_port, sandbox_proc, stop, wait_http

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _final_stage(text: str) -> list[str]:
    """Instructions of the Dockerfile's last stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def _image() -> tuple[dict[str, str], list[str], list[str]]:
    """(ENV, ENTRYPOINT + CMD, HEALTHCHECK command) of the image."""
    env: dict[str, str] = {}
    entry: list[str] = []
    cmd: list[str] = []
    health: list[str] = []
    for line in _final_stage((ROOT / "Dockerfile").read_text()):
        word, _, rest = line.partition(" ")
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
        elif word == "ENTRYPOINT":
            entry = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "HEALTHCHECK":
            health = json.loads(rest[rest.index("CMD ") + 4 :])
    return env, entry + cmd, health


def test_the_image_command_line_serves_http_and_passes_its_health_check(tmp_path: Path) -> None:
    env, command, health = _image()
    assert command[:1] == ["dpg-mcp"] and env["DPG_MCP_PORT"] == "8000" and health
    port = free_port()
    with sandbox_proc(tmp_path) as sandbox:
        # As in the image, but on loopback (tests never bind elsewhere) and a free port, against the sandbox.
        run_env = {**os.environ, **env, "DPG_MCP_HOST": "127.0.0.1", "DPG_MCP_PORT": str(port)}
        run_env |= {"DPG_API_URL": sandbox.url, "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path)}
        with (tmp_path / "image.log").open("wb") as log:
            proc = subprocess.Popen(command, env=run_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            probe = subprocess.run(
                [str(BIN / "python"), *health[1:]], env=run_env, timeout=30, capture_output=True
            )
            assert probe.returncode == 0, probe.stderr
            assert httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["ready"] is True
            unauth = httpx2.post(f"http://127.0.0.1:{port}/mcp", json={}, timeout=5)
            assert unauth.status_code == 401
        finally:
            stop(proc)
        probe = subprocess.run(
            [str(BIN / "python"), *health[1:]], env=run_env, timeout=30, capture_output=True
        )
        assert probe.returncode != 0  # the health check fails once the server is gone


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    done = subprocess.run(
        [_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_yaml_is_valid_against_the_compose_schema() -> None:
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match
    return match.group(1)


def test_server_json_is_valid_against_the_registry_schema_and_current() -> None:
    """server.json for the MCP registry, checked against the official schema it names (as shipped in the
    skillsaw package) and against this checkout: same version, same name as the README's ownership marker."""
    pytest.importorskip("skillsaw")
    from importlib.resources import files

    data = json.loads((ROOT / "server.json").read_text())
    assert data["$schema"].endswith("/2025-12-11/server.schema.json")
    schema = files("skillsaw") / "schemas" / "mcp_registry" / "v2025_12_11" / "server.schema.json"
    done = subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(schema), str(ROOT / "server.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert data["version"] == _version() and {p["version"] for p in data["packages"]} == {_version()}
    assert f"mcp-name: {data['name']}" in (ROOT / "README.md").read_text()
    env = {v["name"] for p in data["packages"] for v in p["environmentVariables"]}
    assert env <= {"DPG_TOKEN", "DPG_API_URL", "DPG_READ_ONLY", "DPG_TOOLSETS", "DPG_WAIT_SECONDS"}


def test_the_mcpb_manifest_matches_this_checkout() -> None:
    """The bundle's manifest (validated and packed by mcpb/build.sh with the official CLI) runs this
    package's console script over stdio, with the token as a secret, on every desktop platform."""
    manifest = json.loads((ROOT / "mcpb" / "manifest.json").read_text())
    assert manifest["version"] == _version()
    config = manifest["server"]["mcp_config"]
    assert manifest["server"]["type"] == "uv" and config["command"] == "uv"
    assert "dpg-mcp" in config["args"] and "--stdio" in config["args"]
    assert config["env"]["DPG_TOKEN"] == "${user_config.dpg_token}"
    assert manifest["user_config"]["dpg_token"]["sensitive"] is True
    assert set(manifest["compatibility"]["platforms"]) == {"darwin", "win32", "linux"}
    assert (ROOT / manifest["server"]["entry_point"]).is_file()

"""Builds the MCP server for one DPG principal (one token): instructions, tools, resources, prompts.

Every tool of the table is registered once; visibility shows each caller only the tools the token's live
capabilities allow (tools/list filtered, tools/call of a hidden tool answered like an unknown tool). When
DPG answers 403 to a call, /v1/me is read again and, if the capabilities moved, the visible set follows and
the host is told (notifications/tools/list_changed on the handshake era, the subscription bus on 2026-07-28).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.caching import CacheHint

from dpg_mcp import __version__
from dpg_mcp.config import ConfigError, Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.models import Me
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.guide import build_instructions, fetch_guide
from dpg_mcp.ledger import Ledger, MemoryLedger
from dpg_mcp.server.apps import AppViews, apps_middleware, build_apps
from dpg_mcp.server.caller import (
    CallerSource,
    DPGState,
    FixedCaller,
    account_of,
    capabilities_of,
    origin_of,
    principal_of,
    read_me,
)
from dpg_mcp.server.calls import tool_for
from dpg_mcp.server.prompts import load_prompts, prompt_guard, register_prompts
from dpg_mcp.server.resources import register_resources
from dpg_mcp.server.uploads import AllowList, fetch_image_url
from dpg_mcp.server.view import ViewOptions, caller_middleware
from dpg_mcp.tools import TOOLS
from dpg_mcp.tools.base import UploadPolicy

SERVER_NAME = "dpg-mcp"


class DPGServer(MCPServer[Any]):
    """An MCPServer that also carries its DPG state (tests and `dpg-mcp check` read it)."""

    dpg: DPGState


async def build_server(
    client: DPGClient,
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    me: Me | None = None,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
) -> DPGServer:
    """Build the server for the token in `settings` (reads /v1/me and the guide through `client`).

    Raises ConfigError with one actionable line when DPG refuses the token or cannot be reached.
    """
    token = settings.secret()
    guide_box: list[tuple[str, str]] = []

    async def load_guide() -> None:
        guide_box.append(await fetch_guide(client))

    # /v1/me and the guide in parallel: one round trip less before the host sees the server.
    refused: ConfigError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(load_guide)
        if me is None:
            try:
                me = await read_me(client, client.base_url)
            except ConfigError as exc:  # raised below, outside the group (which would wrap it)
                refused = exc
                tg.cancel_scope.cancel()
    if refused is not None or me is None:
        raise refused or ConfigError("GET /v1/me gave no answer")
    guide, origin = guide_box[0]
    runner = WriteRunner(
        client, ledger or MemoryLedger(), budget_s=settings.wait_budget_s, origin=origin_of(client, me)
    )
    state = DPGState(
        settings=settings,
        client=client,
        runner=runner,
        principal=principal_of(me, token),
        me=me,
        capabilities=capabilities_of(me),
        guide=guide,
        guide_origin=origin,
        uploads=UploadPolicy(fetch_url=functools.partial(fetch_image_url, allow=AllowList())),
    )
    server = assemble(
        FixedCaller(state), instructions=instructions_for(state), log_level=log_level, apps=settings.apps
    )
    server.dpg = state
    return server


def instructions_for(state: DPGState) -> str:
    """The caller's instructions: its account, its tools, the rules they need, then the guide."""
    name, unique_id, _ = account_of(state.me)
    specs = state.visible_specs()
    text = build_instructions(
        account_name=name,
        account_id=unique_id,
        tool_names=[s.name for s in specs],
        guide=state.guide,
        has_writes=any(not s.read_only for s in specs),
    )
    return state.client.redactor(text)  # DPG's words (account name, guide) leave without the live secrets


def assemble(
    source: CallerSource,
    *,
    instructions: str,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
    hosted: bool = False,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    apps: bool = True,
) -> DPGServer:
    """The MCPServer with every tool, resource and prompt, each answering for the caller `source` resolves.

    hosted: the caller differs per request, so instructions are rebuilt per caller and per-caller lists say
    they are private (2026-07-28 cache scope). apps: serve the MCP Apps views (server/apps) to hosts that
    negotiate them; others see the same lists and results either way.
    """
    prompts = load_prompts()
    options = ViewOptions(
        prompt_needs={p.name: p.tools for p in prompts if p.tools},
        instructions_for=instructions_for if hosted else None,
        private_lists=hosted,
    )
    # Hosted servers never read their own disk for a caller: the argument is refused, so not published.
    hidden = {"upload_image": frozenset({"file_path"})} if hosted else {}
    cache_hints: Mapping[Any, CacheHint] | None = None
    if hosted:
        cache_hints = {m: CacheHint(ttl_ms=0, scope="private") for m in ("tools/list", "prompts/list")}
    middleware = [caller_middleware(source, options), prompt_guard(prompts)]
    if apps:
        middleware.append(apps_middleware(AppViews()))  # inner: runs with the caller current
    server = DPGServer(
        SERVER_NAME,
        title="Digital Photo Gallery",
        version=__version__,
        instructions=instructions,
        website_url="https://www.digitalphotogallery.com",
        tools=[tool_for(source, spec, unpublished=hidden.get(spec.name, frozenset())) for spec in TOOLS],
        log_level=log_level,
        middleware=middleware,
        extensions=[build_apps()] if apps else None,
        token_verifier=token_verifier,
        auth=auth,
        cache_hints=cache_hints,
    )
    register_resources(server)
    register_prompts(server, prompts)
    return server

"""The MCP side of dpg-mcp, split by job.

caller (principal, capabilities, refresh on 403; where a message's caller comes from) · visibility (the one
visible-tools decision and the guard inside every call) · view (the caller middleware) · schemas (how tool
models are published) · confirm (both protocol eras) · calls (one tools/call) · resources · prompts ·
sdk_adapter (the SDK internals we build on) · factory (build_server for one token, assemble for any source).
"""

from dpg_mcp.server.caller import (
    CallerSource,
    DPGState,
    FixedCaller,
    account_of,
    capabilities_of,
    principal_of,
    read_me,
)
from dpg_mcp.server.calls import call_tool
from dpg_mcp.server.factory import SERVER_NAME, DPGServer, assemble, build_server, instructions_for
from dpg_mcp.server.prompts import PromptFile, load_prompt, load_prompts, prompts_dir
from dpg_mcp.server.schemas import annotations_for, clean_schema, input_schema, output_schema
from dpg_mcp.server.visibility import visible_names

__all__ = [
    "SERVER_NAME",
    "CallerSource",
    "DPGServer",
    "DPGState",
    "FixedCaller",
    "PromptFile",
    "account_of",
    "annotations_for",
    "assemble",
    "build_server",
    "call_tool",
    "capabilities_of",
    "clean_schema",
    "input_schema",
    "instructions_for",
    "load_prompt",
    "load_prompts",
    "output_schema",
    "principal_of",
    "prompts_dir",
    "read_me",
    "visible_names",
]

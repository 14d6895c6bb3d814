"""The MCP side of dpg-mcp, split by job.

caller (principal, capabilities, refresh on 403) · visibility (the one visible-tools decision and the guard
inside every call) · schemas (how tool models are published) · confirm (both protocol eras) · calls (one
tools/call) · resources · prompts · sdk_adapter (the SDK internals we build on) · factory (build_server).
"""

from dpg_mcp.server.caller import DPGState, account_of, capabilities_of, principal_of, read_me
from dpg_mcp.server.calls import call_tool
from dpg_mcp.server.factory import SERVER_NAME, DPGServer, build_server
from dpg_mcp.server.prompts import PromptFile, load_prompt, load_prompts, prompts_dir
from dpg_mcp.server.schemas import annotations_for, clean_schema, input_schema, output_schema
from dpg_mcp.server.visibility import visible_names

__all__ = [
    "SERVER_NAME",
    "DPGServer",
    "DPGState",
    "PromptFile",
    "account_of",
    "annotations_for",
    "build_server",
    "call_tool",
    "capabilities_of",
    "clean_schema",
    "input_schema",
    "load_prompt",
    "load_prompts",
    "output_schema",
    "principal_of",
    "prompts_dir",
    "read_me",
    "visible_names",
]

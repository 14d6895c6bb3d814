"""DPG REST API client: transport, models, errors and the write runner. No MCP imports here."""

from dpg_mcp.dpg.client import DEFAULT_BASE_URL, DPGClient, WriteReply
from dpg_mcp.dpg.errors import DPGError, TransportFailure

__all__ = ["DEFAULT_BASE_URL", "DPGClient", "DPGError", "TransportFailure", "WriteReply"]

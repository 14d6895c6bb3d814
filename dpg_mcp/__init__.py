"""dpg-mcp: the MCP server that lets AI agents work a Digital Photo Gallery account."""

__version__ = "0.1.0"

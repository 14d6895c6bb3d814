"""Test package: so tests/mcp does not shadow the `mcp` SDK (rootdir goes on sys.path, not tests/)."""

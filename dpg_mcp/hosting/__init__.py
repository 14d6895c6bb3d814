"""dpg-mcp hosted for a team over streamable HTTP: every request's bearer token is its caller.

options (the flags) · tokens (hashes, never tokens) · me_cache and limits (in memory, or in Redis when
REDIS_URL is set) · clients (one DPG client per token over one shared connection pool) · verifier (bearer →
GET /v1/me, cached) · callers (the per-request CallerSource) · frontdoor (body cap, Host/Origin, logs,
auth refusals, limits) · app (the Starlette app: /mcp, /healthz, /readyz, protected-resource metadata).
"""

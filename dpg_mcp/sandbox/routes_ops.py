"""Operations: poll one (ETag / 304) and the batch endpoint (≤50 writes, validated whole before any runs)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .auth import Principal
from .common import read_endpoint
from .core import Engine, Plan, WriteCtx, WriteRoute
from .http import ApiError, Fields, check_query, json_get, validation
from .store import OperationRec

MAX_BATCH = 50


def routes(eng: Engine) -> list[BaseRoute]:
    async def get_operation(request: Request, p: Principal) -> Response:
        check_query(request, set())
        op = eng.store.operations.get(request.path_params["uuid"])
        if op is None or op.token_id != p.token_id:
            raise ApiError(
                "operation_not_found",
                "No operation has that uuid for this token.",
                detail=f"operation {request.path_params['uuid']} does not exist",
            )
        return json_get(request, eng.operation_json(op, str(request.base_url).rstrip("/")))

    return [Route("/v1/operations/{uuid}", read_endpoint(eng, None, get_operation), methods=["GET"])]


def _items(ctx: WriteCtx) -> list[tuple[WriteRoute, dict[str, str], Any, str]]:
    f = Fields(ctx.body, ctx.prefix, {"operations"})
    ops = f.body.get("operations")
    if not isinstance(ops, list) or not ops:
        raise validation("operations", "operations must be a non-empty array of {method, path, body}")
    if len(ops) > MAX_BATCH:
        raise validation("operations", f"a batch holds at most {MAX_BATCH} operations (got {len(ops)})")
    items = []
    # Pass 1: every item names a batchable write the token may do (scope checked for the whole batch first).
    for i, item in enumerate(ops):
        pre = f"operations[{i}]"
        it = Fields(item, pre + ".", {"method", "path", "body"})
        method = it.string("method", required=True, min_len=1)
        path = it.string("path", required=True, min_len=1)
        method = method.upper()
        if "?" in path:
            raise validation(pre + ".path", "path must not carry a query string")
        if path.rstrip("/") == "/v1/operations/batch":
            raise validation(pre + ".path", "a batch cannot contain another batch")
        found = ctx.eng.match_write(method, path)
        if found is None:
            raise validation(pre + ".path", f"{method} {path} is not a write endpoint of this API")
        route, params = found
        if not route.batchable:
            raise validation(
                pre + ".path", f"{route.method} {route.path} cannot run inside a batch; call it directly"
            )
        if route.scope and route.scope not in ctx.principal.scopes:
            raise ApiError(
                "forbidden",
                "This token may not do that.",
                detail=f"this token lacks the {route.scope} scope",
                field=pre,
            )
        items.append((route, params, item.get("body"), pre + ".body."))
    return items


def _child_ctx(ctx: WriteCtx, params: dict[str, str], body: Any, prefix: str) -> WriteCtx:
    return WriteCtx(ctx.eng, ctx.principal, params, body, prefix, ctx.base, ctx.eng.clock())


def _prepare_item(ctx: WriteCtx, route: WriteRoute, params: dict[str, str], body: Any, prefix: str) -> Plan:
    if body is None and not route.body_optional:
        raise validation(prefix.rstrip("."), "body must be a JSON object")
    return route.prepare(_child_ctx(ctx, params, body, prefix))


def prepare_batch(ctx: WriteCtx) -> Plan:
    items = _items(ctx)
    # Pass 2: validate every body and every referenced id before anything runs.
    for route, params, body, prefix in items:
        _prepare_item(ctx, route, params, body, prefix)
    eng = ctx.eng
    images = list(
        dict.fromkeys(u for r, prm, b, pfx in items for u in _prepare_item(ctx, r, prm, b, pfx).images)
    )

    def apply() -> dict[str, Any]:
        children: list[str] = []
        for route, params, body, prefix in items:
            # Re-checked against the live store: an earlier item may have changed what this one touches.
            try:
                plan = _prepare_item(ctx, route, params, body, prefix)
            except ApiError as e:
                now = eng.clock()
                assert route.op_type is not None
                op = OperationRec(
                    uuid="op-" + eng.store.new_uuid(),
                    type=route.op_type,
                    token_id=ctx.principal.token_id,
                    image_public_uuids=[],
                    set_public_uuid=None,
                    created_at=now,
                    finish_at=now,
                    final_status="failed",
                    error=e.inner(None),
                )
                eng.store.operations[op.uuid] = op
            else:
                op = eng.run_plan(route, plan, ctx.principal.token_id)
            children.append(op.uuid)
        return {"message": f"Ran {len(children)} operations.", "_children": children}

    return Plan(apply, images)


WRITES = [WriteRoute("POST", "/v1/operations/batch", "", "batch", prepare_batch, batchable=False)]

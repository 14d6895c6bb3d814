"""GET /v1/me and the user sign-in flow (no Idempotency-Key on auth endpoints)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .auth import Principal
from .common import read_endpoint
from .core import Engine
from .http import (
    ApiError,
    Fields,
    check_query,
    error_response,
    json_get,
    json_reply,
    parse_json_body,
    read_body,
    validation,
)


async def _body(request: Request) -> Any:
    return parse_json_body(await read_body(request, 64 * 1024), allow_empty=False)


def routes(eng: Engine) -> list[BaseRoute]:
    async def me(request: Request, p: Principal) -> Response:
        check_query(request, set())
        return json_get(request, {**p.me(), "instance_id": eng.instance_id})

    async def sign_in(request: Request) -> Response:
        try:
            f = Fields(await _body(request), "", {"login", "password", "device"})
            login = f.string("login", required=True, min_len=1, max_len=254)
            password = f.string("password", required=True, min_len=1, max_len=1000)
            if "device" not in f.body:
                raise validation("device", "device is required: {name, platform}")
            d = Fields(f.body["device"], "device.", {"name", "platform"})
            d.string("name", required=True, min_len=1, max_len=100)
            d.string("platform", required=True, min_len=1, max_len=50)
            return json_reply(eng.auth.sign_in(login, password), 200)
        except ApiError as e:
            return error_response(request, e)

    async def mfa(request: Request) -> Response:
        try:
            f = Fields(await _body(request), "", {"mfa_token", "code"})
            token = f.string("mfa_token", required=True, min_len=1, max_len=200)
            code = f.string("code", required=True, min_len=1)
            if not re.fullmatch(r"[0-9]{6}", code):  # ASCII digits only ("\d" also matches "١٢٣")
                raise validation(
                    "code", "code must be the 6 digits shown by the authenticator app, as a string"
                )
            return json_reply(eng.auth.mfa(token, code), 200)
        except ApiError as e:
            return error_response(request, e)

    async def token(request: Request) -> Response:
        try:
            f = Fields(await _body(request), "", {"refresh_token", "account_uuid"})
            rt = f.string("refresh_token", required=True, min_len=1, max_len=200)
            acc = f.string("account_uuid", required=True, min_len=1, max_len=100)
            return json_reply(eng.auth.token(rt, acc), 200)
        except ApiError as e:
            return error_response(request, e)

    return [
        Route("/v1/me", read_endpoint(eng, None, me), methods=["GET"]),
        Route("/v1/auth/sign_in", sign_in, methods=["POST"]),
        Route("/v1/auth/mfa", mfa, methods=["POST"]),
        Route("/v1/auth/token", token, methods=["POST"]),
    ]

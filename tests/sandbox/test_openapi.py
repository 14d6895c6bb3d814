"""openapi.v1.yaml: valid OpenAPI 3.1, served as is, and route-for-route equal to the app."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

import dpg_mcp.sandbox
from dpg_mcp.sandbox import Sandbox

from .conftest import Api

SPEC_PATH = Path(dpg_mcp.sandbox.__file__).parent / "openapi.v1.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def load_spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return data


def norm_path(p: str) -> str:
    """/v1/images/{public_uuid:str} and /v1/images/{id} are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", p)


def app_routes(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for r in routes:
        if isinstance(r, Mount):
            out |= app_routes(list(r.routes), prefix + r.path)
        elif isinstance(r, Route):
            for m in r.methods or {"GET"}:
                if m.lower() in METHODS:
                    out.add((m.upper(), norm_path(prefix + r.path)))
    return out


def spec_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), norm_path(p)) for p, item in spec["paths"].items() for m in item if m in METHODS}


def test_spec_is_valid_openapi_31() -> None:
    spec = load_spec()
    assert str(spec["openapi"]).startswith("3.1")
    validate(spec)


def test_every_app_route_is_in_the_spec_and_back(sb: Sandbox) -> None:
    app = app_routes(list(sb.app.routes))
    spec = spec_routes(load_spec())
    assert app, "no routes found on sb.app"
    assert sorted(app - spec) == [], "served but not documented"
    assert sorted(spec - app) == [], "documented but not served"


async def test_spec_served_verbatim(api: Api) -> None:
    r = await api.get("/openapi.v1.yaml", None)
    assert r.status_code == 200
    assert r.text == SPEC_PATH.read_text()
    assert "yaml" in r.headers["Content-Type"]


def test_every_operation_documents_errors_and_security() -> None:
    spec = load_spec()
    for p, item in spec["paths"].items():
        for m, op in item.items():
            if m not in METHODS or not p.startswith("/v1/") or p.startswith("/v1/auth/"):
                continue
            assert op.get("operationId"), (m, p)
            codes = set(map(str, op["responses"]))
            assert "401" in codes and "403" in codes, (m, p, codes)
            if m != "get":
                assert "400" in codes, (m, p)
                params = [x.get("name") or x.get("$ref", "") for x in op.get("parameters", [])]
                params += [x.get("$ref", "") for x in item.get("parameters", [])]
                assert any("Idempotency" in str(x) for x in params), (m, p, params)


@pytest.mark.parametrize(("name", "maximum"), [("limit", 200)])
def test_list_limit_documented(name: str, maximum: int) -> None:
    spec = load_spec()
    text = yaml.safe_dump(spec)
    assert f"maximum: {maximum}" in text
    assert name in text

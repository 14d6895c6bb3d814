"""The token never leaves: a DPG double echoes the bearer token it receives into every text it can (error
envelopes, a failed Operation, batch item failures, check_operation's result, gallery text, a 3xx to another
origin, the guide, the account name), and the canary has nothing of the `dpg_api_…` shape. Not one of its
characters runs may appear in a tool result, a resource, a prompt, the instructions or the logs at DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from dpg_mcp.cli import NOISY_LOGGERS
from dpg_mcp.config import Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.server import DPGServer, build_server

CANARY = "cnry.Q7v-2Zt_x9~Lw4pK8mRfE6sJ0bN3"  # printable ASCII, no DPG shape
API = "https://dpg.double.test"
OTHER = "https://elsewhere.example"
CDN = "https://cdn.double-cdn.example"
IMAGE = "img-0001"
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2d5fa330000000049454e44ae426082"
)


def forms(secret: str) -> list[str]:
    """The canary as a leak may carry it: whole, URL-quoted, and every 16-character run of it."""
    runs = [secret[i : i + 16] for i in range(len(secret) - 15)]
    return [secret, quote(secret, safe=""), quote_plus(secret), *runs]


def leaks(text: str) -> list[str]:
    return [f for f in forms(CANARY) if f in text]


class EchoingDPG:
    """An httpx2 handler playing DPG, writing back whatever bearer token it is sent."""

    def __init__(self) -> None:
        self.seen: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        url = request.url
        origin = f"{url.scheme}://{url.host}"
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        echo = f"token {token} / {quote(token, safe='')} / {token[:20]}"
        path = url.path
        if origin == CDN:
            return httpx2.Response(200, content=PNG_1PX, headers={"content-type": "image/png"})
        if origin != API:
            return httpx2.Response(200, text=f"elsewhere saw: {echo}")
        if path.startswith("/files/"):  # archives and originals served from the API host
            return httpx2.Response(200, content=b"PK\x03\x04zip", headers={"content-type": "application/zip"})
        if path in ("/llms.txt", "/llms-full.txt"):
            # Public: no token is sent for the guide, so it echoes what the other calls sent
            return httpx2.Response(200, text=f"# DPG\nRemember {self.last_token()}.\n")
        if path == "/v1/me":
            return self.json(
                200,
                {
                    "account": {"uuid": "acc-1", "name": f"Acme {token}", "unique_id": "acme"},
                    "service_token": {"uuid": "tok-1", "name": f"svc {token}"},
                    "capabilities": [
                        "api.images.read", "api.images.write", "api.ratings.write", "api.download",
                        "api.sets.write", "api.keywords.write", "api.metadata.write",
                    ],
                },
            )  # fmt: skip
        if path == f"/v1/images/{IMAGE}" and request.method == "GET":
            return self.json(
                200,
                {
                    "public_uuid": IMAGE,
                    "title": f"Title {echo}",
                    "description": f"Caption {echo}",
                    "keywords": [{"namespace": "t", "value": token}],
                    "metadata": {"caption": echo},
                    "versions": [{"name": "thumbnail", "url": f"{CDN}/t.png?sig={token}"}],
                },
            )
        if path == "/v1/images" and request.method == "GET":
            # A redirect to another origin, with the token in the body and the Location
            return httpx2.Response(302, headers={"location": f"{OTHER}/steal?t={token}"}, text=echo)
        if path == "/v1/sets/tree":
            return httpx2.Response(500, text=f"<html><body><h1>Oops</h1><p>{echo}</p></body></html>")
        if path.startswith("/v1/images/") and request.method == "PATCH":
            return self.json(202, {"uuid": "op-caption", "type": "image.update", "status": "running"})
        if path == "/v1/operations/batch":
            return self.json(202, {"uuid": "op-batch", "type": "batch", "status": "running"})
        if path == "/v1/operations/op-caption":
            return self.json(200, {"uuid": "op-caption", "status": "failed", "error": self.error(echo)})
        if path == "/v1/operations/op-batch":
            child = {"uuid": "op-c1", "status": "failed", "error": self.error(echo)}
            return self.json(
                200, {"uuid": "op-batch", "status": "succeeded", "result": {"children": [child, child]}}
            )
        if path == "/v1/operations/op-result":
            return self.json(
                200,
                {
                    "uuid": "op-result",
                    "status": "succeeded",
                    "type": "x",
                    "result": {"note": echo, token: [echo]},
                },
            )
        if path == "/v1/downloads":
            return self.json(200, {"url": f"{CDN}/orig.jpg?sig={token}", "filename": f"f-{token}.jpg"})
        return self.json(404, {"error": self.error(echo) | {"code": "not_found"}})

    def last_token(self) -> str:
        for r in reversed(self.seen):
            if r.headers.get("authorization"):
                return r.headers["authorization"].removeprefix("Bearer ")
        return CANARY  # the guide is read first: echo the secret anyway

    @staticmethod
    def error(echo: str) -> dict[str, Any]:
        return {
            "code": "validation",
            "message": f"Bad input: {echo}",
            "detail": f"we saw {echo}",
            "field": f"body.{echo}",
            "request_id": f"req {echo}",
        }

    @staticmethod
    def json(status: int, body: Any) -> httpx2.Response:
        return httpx2.Response(
            status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )


@pytest.fixture
async def rig() -> AsyncIterator[tuple[DPGServer, EchoingDPG]]:
    dpg = EchoingDPG()
    settings = Settings(token=SecretStr(CANARY), api_url=API, wait_budget_s=3)
    async with DPGClient(API, CANARY, transport=httpx2.MockTransport(dpg)) as client:
        yield await build_server(client, settings), dpg


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_image", {"image_uuid": IMAGE}),  # gallery text + a preview from another origin
    ("get_image", {"image_uuid": "img-missing"}),  # error envelope
    ("search_images", {"query": "x"}),  # a 302 to another origin
    ("browse_sets", {}),  # a 5xx HTML page
    ("caption_image", {"image_uuid": IMAGE, "title": "New"}),  # a failed Operation
    ("rate_images", {"image_uuids": [IMAGE, "img-0002"], "rating": 3}),  # batch item failures
    ("check_operation", {"operation_id": "op-result"}),  # check_operation's result
    ("check_operation", {"operation_id": "op-caption"}),  # check_operation of a failed one
    ("get_download_link", {"image_uuid": IMAGE}),
    ("list_keywords", {}),
]


async def test_the_canary_appears_nowhere(
    rig: tuple[DPGServer, EchoingDPG], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # as -vv: everything of ours at DEBUG, the noisy libraries at WARNING
    for name in NOISY_LOGGERS:
        caplog.set_level(logging.WARNING, logger=name)
    server, dpg = rig
    seen: list[str] = []
    async with Client(server, mode="legacy") as client:
        seen.append(client.instructions or "")
        for name, args in CALLS:
            result = await client.call_tool(name, args)
            seen.append(json.dumps(result.model_dump(mode="json"), ensure_ascii=False))
        for uri in (
            "dpg://guide",
            "dpg://guide/full",
            "dpg://me",
            f"dpg://images/{IMAGE}",
            "dpg://images/nope",
        ):
            try:
                seen.append(json.dumps((await client.read_resource(uri)).model_dump(mode="json")))
            except Exception as exc:  # a resource error's text is checked too
                seen.append(str(exc))
        for prompt in (await client.list_prompts()).prompts:
            args = {a.name: "x" for a in prompt.arguments or []}
            seen.append(json.dumps((await client.get_prompt(prompt.name, args)).model_dump(mode="json")))
    # the double really echoed the secret: the test would see a leak if the server let one through
    assert dpg.seen
    everything = "\n".join(seen)
    assert "[redacted]" in everything
    assert leaks(everything) == [], [
        re.findall(r".{40}" + re.escape(f) + r".{20}", everything)[:2] for f in leaks(everything)
    ]
    assert [r.getMessage() for r in caplog.records if leaks(r.getMessage())] == []


async def test_the_token_goes_only_to_the_dpg_origin(rig: tuple[DPGServer, EchoingDPG]) -> None:
    server, dpg = rig
    async with Client(server, mode="legacy") as client:
        for name, args in CALLS:
            await client.call_tool(name, args)
    elsewhere = [r for r in dpg.seen if f"{r.url.scheme}://{r.url.host}" != API]
    assert any(str(r.url).startswith(CDN) for r in elsewhere)  # the preview was fetched from the CDN
    assert all("authorization" not in r.headers for r in elsewhere), [str(r.url) for r in elsewhere]
    assert not any(str(r.url).startswith(OTHER) for r in dpg.seen)  # the 302 was not followed
    assert all(
        r.headers.get("authorization") == f"Bearer {CANARY}"
        for r in dpg.seen
        if r.url.path.startswith("/v1/")
    )


async def test_download_and_archive_links_are_fetched_without_the_token() -> None:
    dpg = EchoingDPG()
    async with DPGClient(API, CANARY, transport=httpx2.MockTransport(dpg)) as client:
        await client.fetch_bytes(f"{CDN}/orig.jpg?sig=abc", max_bytes=10_000)
        await client.fetch_bytes("/files/archive.zip", max_bytes=10_000)  # a path on the API host itself
    assert [r.headers.get("authorization") for r in dpg.seen] == [None, None]


def test_log_lines_leave_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Defence in depth for lines a library writes (httpx2 at INFO logs whole URLs): the CLI's handlers
    redact every record."""
    from dpg_mcp.dpg.errors import Redactor, redacted_logs

    logger = logging.getLogger("httpx2")
    with caplog.at_level(logging.INFO, logger="httpx2"), redacted_logs(Redactor(CANARY)):
        logger.info("HTTP Request: GET %s", f"{CDN}/t.png?sig={CANARY}")
    assert leaks(caplog.text) == [] and "[redacted]" in caplog.text

"""Uploads when hosted: bytes work; a URL is fetched only from public addresses unless allow-listed; the
server never reads its own disk for a caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp.types import TextContent

from .conftest import TOKENS, Proc, connect, dpg_mcp_http


def _text(result: Any) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1:{port}/one.png", "loopback, private or link-local"),
        ("https://localhost:{port}/one.png", "loopback, private or link-local"),
        ("https://[::1]:{port}/one.png", "loopback, private or link-local"),
        ("https://169.254.169.254/latest/meta-data", "loopback, private or link-local"),
        ("https://10.1.2.3/x.png", "loopback, private or link-local"),
        ("http://127.0.0.1:{port}/one.png", "must use https"),
        ("file:///etc/passwd", "https URL"),
    ],
)
async def test_a_url_to_an_internal_address_is_refused_before_any_connection(
    hosted: Proc, file_server: tuple[str, Any], mode: str, url: str, says: str
) -> None:
    base, handler = file_server
    port = base.rsplit(":", 1)[1]
    before = len(handler.hits)
    async with connect(hosted.mcp, TOKENS["uploader"], mode) as client:
        result = await client.call_tool("upload_image", {"url": url.format(port=port)})
    assert result.is_error and says in _text(result), _text(result)
    assert len(handler.hits) == before  # refused before connecting


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with dpg_mcp_http(
        tmp_path_factory.mktemp("allow"), "--sandbox", "--upload-allow", "127.0.0.1", name="allow"
    ) as proc:
        yield proc


async def test_the_same_url_works_when_its_address_is_allow_listed(
    allowing: Proc, file_server: tuple[str, Any], mode: str
) -> None:
    base, handler = file_server
    async with connect(allowing.mcp, TOKENS["uploader"], mode) as client:
        result = await client.call_tool(
            "upload_image", {"url": f"{base}/one.png", "title": f"fetched by url ({mode})"}
        )
        assert not result.is_error, _text(result)
        new_id = result.structured_content["image"]["uuid"]  # type: ignore[index]
        missing = await client.call_tool("upload_image", {"url": f"{base}/nothing.png"})
    assert "/one.png" in handler.hits
    assert missing.is_error and "HTTP 404" in _text(missing)
    async with connect(allowing.mcp, TOKENS["admin"], mode) as client:
        again = await client.call_tool("get_image", {"image_uuid": new_id})
    assert f"fetched by url ({mode})" in _text(again)
    # No credential ever went to the file server (it logs paths only; the request had no Authorization).


async def test_the_server_never_reads_its_own_files_for_a_caller(hosted: Proc, mode: str) -> None:
    async with connect(hosted.mcp, TOKENS["uploader"], mode) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("upload_image", {"file_path": "/etc/hostname"})
    assert "file_path" not in listed["upload_image"].input_schema["properties"]
    assert {"content_base64", "url"} <= set(listed["upload_image"].input_schema["properties"])
    assert result.is_error and "never reads files on its own machine" in _text(result)

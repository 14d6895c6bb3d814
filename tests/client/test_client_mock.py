"""DPGClient against scripted MockTransports: headers, paging, errors, retries, 304, 429, fetch_bytes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest

from dpg_mcp import __version__
from dpg_mcp.dpg.client import DPGClient, normalize_base_url
from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Image, UploadTicket
from tests.client.helpers import BASE, TOKEN, FakeClock, envelope, jresp, make_client, op


def test_normalize_base_url() -> None:
    assert normalize_base_url("https://api.x.com/v1/") == "https://api.x.com"
    assert normalize_base_url("https://api.x.com") == "https://api.x.com"
    assert normalize_base_url("https://x.com/dpg/v1") == "https://x.com/dpg"
    assert normalize_base_url(None) == "https://api.digitalphotogallery.com"


async def test_auth_and_user_agent_and_paths() -> None:
    client, rec = make_client(lambda r: jresp(200, {"capabilities": ["api.images.read"]}))
    async with client:
        me = await client.me()
    assert me.capabilities == ["api.images.read"]
    req = rec.requests[0]
    assert str(req.url) == f"{BASE}/v1/me"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["user-agent"] == f"dpg-mcp/{__version__}"


async def test_guide_from_host_root_without_auth() -> None:
    client, rec = make_client(lambda r: httpx2.Response(200, text="# DPG\nbrief"))
    async with client:
        assert await client.guide() == "# DPG\nbrief"
        await client.guide(full=True)
    assert rec.paths() == ["/llms.txt", "/llms-full.txt"]
    assert all("authorization" not in r.headers for r in rec.requests)


async def test_ids_are_quoted_as_one_segment() -> None:
    client, rec = make_client(lambda r: jresp(200, {"public_uuid": "x"}))
    async with client:
        await client.get_image("../me?x=1")
    assert rec.requests[0].url.raw_path == b"/v1/images/..%2Fme%3Fx%3D1"


async def test_paging_headers() -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        return jresp(
            200,
            [{"public_uuid": "a"}, {"public_uuid": "b"}],
            {"X-Has-More": "true", "X-Next-Offset": "12", "X-Total-Count": "40"},
        )

    client, rec = make_client(handler)
    async with client:
        page = await client.list_images(limit=2, offset=10, query="sunset", has_geo=True, bbox=[1, 2, 3, 4])
    assert [i.public_uuid for i in page.items] == ["a", "b"]
    assert (page.has_more, page.next_offset, page.total) == (True, 12, 40)
    q = rec.requests[0].url.params
    assert q["limit"] == "2" and q["offset"] == "10" and q["has_geo"] == "true" and q["bbox"] == "1,2,3,4"


async def test_paging_never_guesses_more_from_a_full_page() -> None:
    client, _ = make_client(lambda r: jresp(200, [{"public_uuid": "a"}, {"public_uuid": "b"}]))
    async with client:
        page = await client.list_images(limit=2)
    assert (page.has_more, page.next_offset, page.total) == (False, None, None)


async def test_paging_more_without_offset_continues_after_page() -> None:
    client, _ = make_client(lambda r: jresp(200, [{"public_uuid": "a"}], {"X-Has-More": "true"}))
    async with client:
        page = await client.list_images(limit=1, offset=5)
    assert (page.has_more, page.next_offset) == (True, 6)


async def test_object_wrapped_list() -> None:
    body = {"items": [{"public_uuid": "s1", "name": "Fri"}], "has_more": True, "next_offset": 1, "total": 3}
    client, _ = make_client(lambda r: jresp(200, body))
    async with client:
        page = await client.list_sets()
    assert page.items[0].name == "Fri"
    assert (page.has_more, page.next_offset, page.total) == (True, 1, 3)

    client, _ = make_client(lambda r: jresp(200, {"namespaces": [{"namespace": "artist", "count": 4}]}))
    async with client:
        ns = await client.namespaces()
    assert ns[0].namespace == "artist" and ns[0].count == 4

    # an Image-shaped answer to /versions: the endpoint's own key wins over other lists in the object
    image_like = {"public_uuid": "i", "keywords": [{"value": "k"}], "versions": [{"name": "large"}]}
    client, _ = make_client(lambda r: jresp(200, image_like))
    async with client:
        versions = await client.image_versions("i")
    assert [v.name for v in versions] == ["large"]


async def test_whole_lists_follow_server_paging() -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        off = int(r.url.params.get("offset", "0"))
        more = {"X-Has-More": "true", "X-Next-Offset": str(off + 1)} if off < 2 else {"X-Has-More": "false"}
        return jresp(200, [{"uuid": f"snap{off}"}], more)

    client, rec = make_client(handler)
    async with client:
        snaps = await client.snapshots("set-1")
    assert [s.uuid for s in snaps] == ["snap0", "snap1", "snap2"]
    assert len(rec.requests) == 3


async def test_bad_item_shape_is_a_clear_error() -> None:
    client, _ = make_client(lambda r: jresp(200, [{"title": "no id"}]))
    async with client:
        with pytest.raises(DPGError) as info:
            await client.list_images()
    assert info.value.code == "invalid_response"


async def test_operation_etag_and_304() -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.headers.get("if-none-match") == '"v1"':
            return httpx2.Response(304, headers={"ETag": '"v1"'})
        return jresp(200, op(status="running"), {"ETag": '"v1"'})

    client, rec = make_client(handler)
    async with client:
        first, etag = await client.get_operation("op-1")
        again, etag2 = await client.get_operation("op-1", etag)
    assert first is not None and first.status == "running" and etag == '"v1"'
    assert again is None and etag2 == '"v1"'
    assert rec.requests[1].headers["if-none-match"] == '"v1"'


async def test_429_waits_retry_after_then_succeeds(clock: FakeClock) -> None:
    calls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return jresp(429, envelope("rate_limited"), {"Retry-After": "3"})
        return jresp(200, {"capabilities": []})

    client, _ = make_client(handler, clock)
    async with client:
        await client.me()
    assert clock.sleeps == [3.0, 3.0]


async def test_429_past_cap_is_raised_with_retry_after(clock: FakeClock) -> None:
    client, rec = make_client(
        lambda r: jresp(429, envelope("rate_limited"), {"Retry-After": "120"}), clock, max_retry_after=15
    )
    async with client:
        with pytest.raises(DPGError) as info:
            await client.me()
    assert info.value.status == 429 and info.value.retry_after == 120.0
    assert clock.sleeps == [] and len(rec.requests) == 1


async def test_429_waits_are_bounded(clock: FakeClock) -> None:
    client, rec = make_client(
        lambda r: jresp(429, envelope("rate_limited"), {"Retry-After": "1"}), clock, max_rate_limit_waits=3
    )
    async with client:
        with pytest.raises(DPGError):
            await client.me()
    assert len(rec.requests) == 4 and clock.sleeps == [1.0, 1.0, 1.0]


async def test_reads_retry_5xx_with_capped_backoff(clock: FakeClock) -> None:
    calls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        return jresp(500, envelope("internal")) if calls < 4 else jresp(200, {"public_uuid": "i"})

    client, _ = make_client(handler, clock, max_attempts=4, backoff_base=0.2, backoff_cap=0.5)
    async with client:
        img = await client.get_image("i")
    assert isinstance(img, Image)
    assert len(clock.sleeps) == 3
    assert 0.1 <= clock.sleeps[0] <= 0.2 and all(s <= 0.5 for s in clock.sleeps)


async def test_reads_give_up_after_max_attempts(clock: FakeClock) -> None:
    client, rec = make_client(lambda r: httpx2.Response(503, text="upstream down"), clock, max_attempts=3)
    async with client:
        with pytest.raises(DPGError) as info:
            await client.me()
    assert info.value.status == 503 and "upstream down" in info.value.message
    assert len(rec.requests) == 3


async def test_connection_errors_become_transport_failure(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=r)

    client, rec = make_client(handler, clock, max_attempts=3)
    async with client:
        with pytest.raises(TransportFailure) as info:
            await client.me()
    assert info.value.code == "unreachable" and info.value.status == 0
    assert len(rec.requests) == 3


async def test_4xx_is_not_retried(clock: FakeClock) -> None:
    client, rec = make_client(lambda r: jresp(404, envelope("image_not_found", field="public_uuid")), clock)
    async with client:
        with pytest.raises(DPGError) as info:
            await client.get_image("nope")
    assert info.value.code == "image_not_found" and len(rec.requests) == 1 and clock.sleeps == []


async def test_per_attempt_timeout_retries(clock: FakeClock) -> None:
    calls = 0

    async def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep(5)
        return jresp(200, {"capabilities": []})

    client, _ = make_client(handler, clock, timeout=0.05)
    async with client:
        await client.me()
    assert calls == 2


async def test_send_write_202_operation_and_key() -> None:
    client, rec = make_client(lambda r: jresp(202, op(status="running"), {"Location": "/v1/operations/op-1"}))
    async with client:
        reply = await client.send_write("patch", "/v1/images/i", {"title": "T", "a": 1}, "key-1")
    assert reply.status == 202 and reply.operation is not None and reply.operation.status == "running"
    req = rec.requests[0]
    assert req.method == "PATCH" and req.headers["idempotency-key"] == "key-1"
    assert req.content == b'{"a":1,"title":"T"}'


async def test_send_write_direct_body_and_location_only() -> None:
    client, _ = make_client(lambda r: jresp(201, {"upload_url": "https://p/up", "fields": {}}))
    async with client:
        reply = await client.send_write("POST", "/v1/uploads", {"filename": "a.png"}, "k")
    assert reply.operation is None and reply.body["upload_url"] == "https://p/up"

    client, _ = make_client(lambda r: httpx2.Response(202, headers={"Location": "/v1/operations/op-9"}))
    async with client:
        reply = await client.send_write("DELETE", "/v1/images/i", None, "k")
    assert reply.operation is not None and reply.operation.uuid == "op-9" and not reply.operation.is_terminal


async def test_send_write_errors_are_raised_once() -> None:
    client, rec = make_client(lambda r: jresp(409, envelope("idempotency_key_conflict")))
    async with client:
        with pytest.raises(DPGError) as info:
            await client.send_write("POST", "/v1/sets", {"name": "x"}, "k")
    assert info.value.status == 409 and not info.value.retryable and len(rec.requests) == 1

    client, rec = make_client(lambda r: jresp(500, envelope("internal")))
    async with client:
        with pytest.raises(DPGError) as info:
            await client.send_write("POST", "/v1/sets", {"name": "x"}, "k")
    assert info.value.retryable and len(rec.requests) == 1


async def test_fetch_bytes_caps_and_sends_no_token() -> None:
    png = b"\x89PNG" + b"0" * 1000

    def handler(r: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=png, headers={"content-type": "image/png"})

    client, rec = make_client(handler)
    async with client:
        data, ctype = await client.fetch_bytes("https://cdn.test/m/x.png?sig=abc", 5000)
        assert data == png and ctype == "image/png"
        with pytest.raises(DPGError) as info:
            await client.fetch_bytes("https://cdn.test/m/x.png", 100)
    assert info.value.code == "payload_too_large" and "sig=" not in str(info.value)
    assert all("authorization" not in r.headers for r in rec.requests)


async def test_fetch_bytes_streaming_stops_without_content_length() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 100

    client, _ = make_client(lambda r: httpx2.Response(200, content=chunks()))
    async with client:
        with pytest.raises(DPGError) as info:
            await client.fetch_bytes("https://cdn.test/big", 250)
    assert info.value.status == 413


async def test_upload_file_multipart_no_token() -> None:
    client, rec = make_client(lambda r: jresp(201, {"image_public_uuid": "new", "transaction_uuid": "t"}))
    ticket = UploadTicket(upload_url="https://proc.test/upload", fields={"envelope": "E", "signature": "S"})
    async with client:
        out = await client.upload_file(ticket, "a.png", b"\x89PNGdata", "image/png")
    assert out["image_public_uuid"] == "new"
    req = rec.requests[0]
    assert "authorization" not in req.headers
    assert b'name="envelope"' in req.content and b'name="file"; filename="a.png"' in req.content


async def test_token_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.url.path == "/v1/me":
            return httpx2.Response(401, text=f"token {TOKEN} is unknown")
        raise httpx2.ConnectError(f"cannot connect (auth {r.headers['authorization']})", request=r)

    client, _ = make_client(handler, clock, max_attempts=2)
    assert TOKEN not in repr(client) and TOKEN not in str(vars(client).get("_http"))
    texts: list[str] = [repr(client)]
    async with client:
        for call in (client.me(), client.get_image("x")):
            try:
                await call
            except DPGError as err:
                texts += [str(err), repr(err), str(err.to_dict())]
    texts += [rec.getMessage() for rec in caplog.records]
    assert len(texts) > 4
    assert not [t for t in texts if TOKEN in t]


async def test_client_constructor_matches_plan() -> None:
    c = DPGClient(base_url="https://api.digitalphotogallery.com", token="t", transport=None, timeout=30.0)
    assert c.timeout == 30.0
    await c.aclose()

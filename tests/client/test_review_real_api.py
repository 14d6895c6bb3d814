"""Review probes: the client and runner against answers the REAL DPG API may give (not only the sandbox's).

Each test pins one tolerance or safety rule that a sandbox-only suite would not catch: odd Operation shapes,
Location-only 202s, wrapped lists, foreign error bodies that echo the token, HTTP-date Retry-After, a write
still in progress under the same key, commit-then-reset, concurrent writes, hanging servers and cancellation.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx2
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import DPGError, TransportFailure, parse_retry_after
from dpg_mcp.dpg.models import Image, Operation, UploadTicket
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import Kind, MemoryLedger, State
from dpg_mcp.ledger import ops as ledger_ops
from tests.client.helpers import BASE, TOKEN, FakeClock, Recorder, envelope, jresp, make_client, op

CREATE = Kind.CREATE


def runner_for(handler: Any, clock: FakeClock, budget_s: float = 45.0) -> tuple[WriteRunner, Recorder]:
    client, rec = make_client(handler, clock)
    memo = MemoryLedger()
    return WriteRunner(client, memo, budget_s, clock=clock, sleep=clock.sleep), rec


# ---- Operations -------------------------------------------------------------------------------------------


async def test_202_with_empty_body_and_absolute_location_polls_that_operation(clock: FakeClock) -> None:
    statuses = ["queued", "processing", "Succeeded"]

    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "POST":
            return httpx2.Response(202, headers={"Location": f"{BASE}/v1/operations/op-9?expand=result"})
        return jresp(200, op("op-9", statuses.pop(0)))

    runner, rec = runner_for(handler, clock)
    out = await runner.run("POST", "/v1/archives", {"a": 1}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and out.operation is not None and out.operation.uuid == "op-9"
    # queued/processing counted as running; the id came from the Location path, not its query
    assert rec.paths() == ["/v1/archives"] + ["/v1/operations/op-9"] * 3


async def test_202_with_a_text_body_and_location_is_not_an_error(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "PATCH":
            return httpx2.Response(202, text="Accepted", headers={"Location": "/v1/operations/op-2"})
        return jresp(200, op("op-2"))

    runner, _ = runner_for(handler, clock)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "t"}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and out.operation is not None and out.operation.uuid == "op-2"


async def test_a_failed_operation_with_odd_fields_is_still_failed(clock: FakeClock) -> None:
    # Before: result "boom" (a string) made the Operation unreadable, and the runner reported "succeeded".
    body = {
        "uuid": "op-1",
        "status": "FAILED",
        "type": "update",
        "image_public_uuids": None,
        "result": "boom",
    }
    runner, _ = runner_for(lambda r: jresp(202, body), clock)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "t"}, principal="p", fingerprint="f")
    assert out.state == "failed" and out.operation is not None
    assert out.operation.result == {"message": "boom"} and out.operation.image_public_uuids == []


def test_operation_shapes_the_real_api_may_send() -> None:
    assert Operation.model_validate({"id": "op-3", "status": None}).uuid == "op-3"
    assert not Operation.model_validate({"uuid": "op-3", "status": None}).is_terminal
    assert Operation.model_validate({"uuid": 17, "status": "done"}).uuid == "17"
    assert not Operation.model_validate({"uuid": "o", "status": "done"}).is_terminal  # unknown = running
    o = Operation.model_validate({"uuid": "o", "status": "failed", "error": "quota", "result": [1]})
    assert o.error == {"message": "quota"} and o.result == {"value": [1]}


async def test_operation_wrapped_in_data_on_202_and_on_poll(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "POST":
            return jresp(202, {"data": op("op-4", "pending")})
        return jresp(200, {"data": op("op-4", "succeeded")})

    runner, _ = runner_for(handler, clock)
    out = await runner.run("POST", "/v1/sets", {"name": "n"}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and out.operation is not None and out.operation.uuid == "op-4"


async def test_replayed_only_when_dpg_says_it_replayed(clock: FakeClock) -> None:
    seen: set[str] = set()

    def handler(r: httpx2.Request) -> httpx2.Response:
        key = r.headers["idempotency-key"]
        first = key not in seen
        seen.add(key)
        return jresp(202, op(), {"Idempotent-Replayed": "false" if first else "true"})

    client, rec = make_client(handler, clock)
    ledger = MemoryLedger()
    runner = WriteRunner(client, ledger, clock=clock, sleep=clock.sleep)
    # a first run of a create that ended before its request reached DPG: the entry is `unknown`
    action = runner.action_of("p", "f")
    claim = await ledger_ops.claim(ledger, action, now=time.time(), kind=Kind.CREATE, run="gone")
    await ledger_ops.settle(ledger, action, now=time.time(), run="gone", state=State.UNKNOWN)
    out = await runner.run(
        "POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=Kind.CREATE
    )
    assert rec.requests[0].headers["idempotency-key"] == claim.key  # the key followed the action
    assert not out.replayed  # DPG applied it now, for the first time: do not say "already applied"
    again = await runner.run(
        "POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=Kind.CREATE
    )
    assert again.replayed  # DPG's own marker, on a key whose outcome was final


# ---- lists ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "more", "next_offset", "total"),
    [
        ([{"public_uuid": "a"}], {}, False, None, None),  # no X-Has-More: no guessing
        (
            {"data": [{"public_uuid": "a"}], "meta": {"has_more": True, "next_offset": 7, "total": 9}},
            {},
            True,
            7,
            9,
        ),
        ({"items": [{"public_uuid": "a"}], "pagination": {"has_more": "true"}}, {}, True, 1, None),
        ({"results": [{"public_uuid": "a"}], "has_more": False}, {"X-Has-More": "True"}, True, 1, None),
    ],
)
async def test_list_body_shapes_and_paging(
    body: Any, headers: dict[str, str], more: bool, next_offset: int | None, total: int | None
) -> None:
    client, _ = make_client(lambda r: jresp(200, body, headers))
    async with client:
        page = await client.list_images(limit=1)
    assert [i.public_uuid for i in page.items] == ["a"]
    assert (page.has_more, page.next_offset, page.total) == (more, next_offset, total)


def test_one_odd_item_does_not_sink_the_object() -> None:
    img = Image.model_validate(
        {
            "public_uuid": "a",
            "keywords": ["artist:Marina", None, {"namespace": 3, "value": "x"}, 5],
            "rating": "4",
            "geo": "51.4,-2.5",
            "versions": [{"name": "large", "url": "u", "width": "wide"}, "thumbnail"],
            "credits": None,
        }
    )
    assert [k.full for k in img.keywords] == ["artist:Marina", "x"]
    assert img.rating == 4 and img.geo is None and img.credits == []
    assert img.versions[0].name == "large" and img.versions[0].width is None and len(img.versions) == 1
    with pytest.raises(ValueError):
        Image.model_validate({"title": "no id"})  # the id is still required


def test_upload_ticket_fields_become_text() -> None:
    t = UploadTicket.model_validate(
        {"upload_url": "https://p/u", "fields": {"expires": 1783099999, "strict": True, "x": None}}
    )
    assert t.fields == {"expires": "1783099999", "strict": "true"}


# ---- errors never carry the token -------------------------------------------------------------------------


ECHOES: list[tuple[int, bytes, dict[str, str]]] = [
    (502, f"<html><body><h1>Bad Gateway</h1>Authorization: Bearer {TOKEN}</body></html>".encode(), {}),
    (502, ("x" * 290 + TOKEN).encode(), {}),  # the token straddles the 300-char cut
    (
        400,
        json.dumps(
            {
                "error": {
                    "code": TOKEN,
                    "message": TOKEN,
                    "detail": {"h": TOKEN},
                    "field": TOKEN,
                    "request_id": TOKEN,
                }
            }
        ).encode(),
        {},
    ),
    (401, b"invalid token " + TOKEN.replace("_", "%5F").encode(), {}),
    (403, f'{{"message": "token {TOKEN[:-3]}... refused"}}'.encode(), {}),  # a cut echo of the token
    (500, b"oops", {"X-Request-Id": TOKEN}),
]


@pytest.mark.parametrize(("status", "body", "headers"), ECHOES)
async def test_echoed_token_never_reaches_error_texts_or_logs(
    status: int, body: bytes, headers: dict[str, str], caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.DEBUG)
    client, _ = make_client(lambda r: httpx2.Response(status, content=body, headers=headers), clock)
    runner = WriteRunner(client, MemoryLedger(), 5.0, clock=clock, sleep=clock.sleep)
    errors: list[DPGError] = []
    for call in (client.me, lambda: runner.run("PATCH", "/v1/images/i", {}, principal="p", fingerprint="f")):
        with pytest.raises(DPGError) as info:
            await call()
        errors.append(info.value)
    for err in errors:
        texts = [str(err), repr(err), json.dumps(err.to_dict()), err.message, *map(str, err.args)]
        for text in texts:
            assert TOKEN not in text and TOKEN[:20] not in text and "Bearer dpg" not in text
    assert TOKEN[:20] not in caplog.text
    assert errors[0].status == status


def test_html_error_body_reads_as_text() -> None:
    page = b"<html><head><style>p{}</style><title>502</title></head><body><p>Bad gateway</p></body></html>"
    err = DPGError.from_http(502, page, {})
    assert err.message == "HTTP 502 Bad Gateway: 502 Bad gateway" and err.retryable


# ---- Retry-After ----


def test_retry_after_forms() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (parse_retry_after(soon) or 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after("120") == 120.0 and parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after("nan") is None
    assert parse_retry_after("1e400") == float("inf")


async def test_huge_retry_after_is_raised_at_once_on_reads_and_writes(clock: FakeClock) -> None:
    for value in ("86400", "1e400", format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)):
        client, rec = make_client(
            lambda r, v=value: jresp(429, envelope("rate_limited"), {"Retry-After": v}), clock
        )
        with pytest.raises(DPGError) as info:
            await client.me()
        assert info.value.status == 429 and (info.value.retry_after or 0) > 3600 and len(rec.requests) == 1
        runner = WriteRunner(client, MemoryLedger(), 45.0, clock=clock, sleep=clock.sleep)
        with pytest.raises(DPGError):
            await runner.run("PUT", "/v1/x", {}, principal="p", fingerprint="f")
        assert len(rec.requests) == 2
        assert str(info.value)  # formats even for inf
    assert clock.sleeps == []  # never slept on a wait it cannot honour


# ---- exactly once ------------------------------------------------------------------------------------------


class FakeDPG:
    """A tiny idempotent write server: applies each key once, replays after, 409 on another body."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}
        self.bodies: dict[str, bytes] = {}
        self.reset_after_commit: set[str] = set()  # keys whose FIRST answer is lost after the commit
        self.hold: anyio.Event | None = None  # writes wait for this before answering
        self.in_progress: set[str] = set()
        self.busy_answered = anyio.Event()  # set once a "key in progress" 409 went out

    async def __call__(self, r: httpx2.Request) -> httpx2.Response:
        if r.method == "GET":
            return jresp(200, op(r.url.path.rsplit("/", 1)[-1]))
        key = r.headers["idempotency-key"]
        if key in self.in_progress:
            self.busy_answered.set()
            return jresp(409, envelope("idempotency_key_conflict", "a request with this key is in progress"))
        if key in self.bodies and self.bodies[key] != r.content:
            return jresp(409, envelope("idempotency_key_conflict"))
        first = key not in self.bodies
        marker = {"Idempotent-Replayed": "false" if first else "true"}
        self.bodies[key] = r.content
        if first:
            self.applied[key] = self.applied.get(key, 0) + 1
            if self.hold is not None:
                self.in_progress.add(key)
                try:
                    await self.hold.wait()
                finally:
                    self.in_progress.discard(key)
            if key in self.reset_after_commit:
                raise httpx2.ReadError("connection reset by peer", request=r)
        return jresp(202, op(f"op-{key[:8]}"), marker)


async def test_reset_after_commit_is_applied_once_then_repeat_replays(clock: FakeClock) -> None:
    server = FakeDPG()
    client, rec = make_client(server, clock)
    runner = WriteRunner(client, MemoryLedger(), clock=clock, sleep=clock.sleep)

    async def first_key_resets(r: httpx2.Request) -> httpx2.Response:
        server.reset_after_commit.add(r.headers["idempotency-key"])
        return await server(r)

    rec.handler = first_key_resets
    mk = {"principal": "p", "fingerprint": "create", "kind": Kind.CREATE}
    out = await runner.run("POST", "/v1/sets", {"name": "n"}, **mk)  # type: ignore[arg-type]
    assert out.state == "succeeded" and out.attempts == 2 and list(server.applied.values()) == [1]
    # the retry met DPG's replay of its own first attempt: that is this call's work, not "earlier"
    assert not out.replayed
    rec.handler = server
    again = await runner.run("POST", "/v1/sets", {"name": "n"}, **mk)  # type: ignore[arg-type]
    assert again.replayed and list(server.applied.values()) == [1]


async def test_concurrent_writes_never_share_keys_and_a_duplicate_joins() -> None:
    server = FakeDPG()
    server.hold = anyio.Event()
    client = DPGClient(BASE, TOKEN, transport=httpx2.MockTransport(server))
    runner = WriteRunner(client, MemoryLedger(), budget_s=10, backoff_base_s=0.01, poll_initial_s=0.001)
    results: dict[str, Any] = {}

    async def call(name: str, fp: str, rating: int) -> None:
        results[name] = await runner.run(
            "PUT", f"/v1/images/{fp}/rating", {"rating": rating}, principal="p", fingerprint=fp
        )

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(call, f"w{i}", f"img{i}", i % 6)
        await anyio.wait_all_tasks_blocked()
        # the host gave up on w0 and the agent resends it while it is still in flight, after others started
        tg.start_soon(call, "w0-again", "img0", 0)
        await anyio.wait_all_tasks_blocked()
        server.hold.set()
    assert len(server.applied) == 8 and set(server.applied.values()) == {1}  # 8 writes, 8 keys, once each
    assert not server.busy_answered.is_set()  # the resend sent nothing: it joined the run in flight
    assert results["w0-again"].joined and not results["w0-again"].replayed
    assert results["w0-again"].operation.uuid == results["w0"].operation.uuid
    # the same value again, after the result was delivered: a new key, applied again, not "replayed"
    await runner.run("DELETE", "/v1/images/img1/rating", None, principal="p", fingerprint="clear1")
    again = await runner.run(
        "PUT", "/v1/images/img0/rating", {"rating": 0}, principal="p", fingerprint="img0"
    )
    assert not again.replayed and len(server.applied) == 10
    await client.aclose()


async def test_in_progress_409_on_a_reused_key_never_takes_a_new_key() -> None:
    server = FakeDPG()
    server.hold = anyio.Event()
    client = DPGClient(BASE, TOKEN, transport=httpx2.MockTransport(server))
    runner = WriteRunner(client, MemoryLedger(), budget_s=10, backoff_base_s=0.01, poll_initial_s=0.001)
    mk = {"principal": "p", "fingerprint": "f", "kind": Kind.CREATE}
    with anyio.move_on_after(0.05):  # the host cancels while DPG still works on the create
        await runner.run("POST", "/v1/sets", {"name": "n"}, **mk)  # type: ignore[arg-type]
    server.hold = None
    server.in_progress = set(server.bodies)  # DPG is still working on it (our side hung up, DPG did not)
    outs: list[Any] = []

    async def resend() -> None:
        outs.append(await runner.run("POST", "/v1/sets", {"name": "n"}, **mk))  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        tg.start_soon(resend)  # `unknown` create: the same key, which DPG says is still in progress
        with anyio.fail_after(5):
            await server.busy_answered.wait()
        server.in_progress.clear()  # DPG finishes: the next resend with the same key gets its replay
    assert len(server.applied) == 1 and list(server.applied.values()) == [1]
    assert outs[0].replayed  # DPG replayed the first (cancelled) call's finished work
    await client.aclose()


# ---- time: per-attempt timeouts, budget, cancellation ----


async def test_a_hanging_in_process_server_is_bounded_by_attempt_timeouts_and_the_budget() -> None:
    keys: list[str] = []

    async def hang(r: httpx2.Request) -> httpx2.Response:
        keys.append(r.headers["idempotency-key"])
        await anyio.sleep_forever()
        raise AssertionError

    client = DPGClient(BASE, TOKEN, transport=httpx2.MockTransport(hang), timeout=0.05)
    runner = WriteRunner(client, MemoryLedger(), budget_s=0.3, backoff_base_s=0.01, backoff_cap_s=0.02)
    started = anyio.current_time()
    with pytest.raises(TransportFailure) as info, anyio.fail_after(5):
        await runner.run("PATCH", "/v1/images/i", {"title": "t"}, principal="p", fingerprint="f")
    elapsed = anyio.current_time() - started
    assert elapsed < 0.3 + 1.0 + 0.5  # budget + one minimal last attempt, not "forever"
    assert len(keys) >= 2 and len(set(keys)) == 1 and "at most once" in str(info.value)


@pytest.mark.parametrize(("kind", "applied", "replayed"), [(Kind.SET, 2, False), (Kind.CREATE, 1, True)])
async def test_cancel_mid_write_leaves_the_action_unknown_and_a_resend_follows_its_kind(
    kind: Kind, applied: int, replayed: bool
) -> None:
    server = FakeDPG()
    server.hold = anyio.Event()
    client = DPGClient(BASE, TOKEN, transport=httpx2.MockTransport(server))
    ledger = MemoryLedger()
    runner = WriteRunner(client, ledger, budget_s=10, poll_initial_s=0.001)
    with anyio.move_on_after(0.05):  # the host cancels the tool call while DPG holds the write
        await runner.run("POST", "/v1/sets/s/x", {"i": [1]}, principal="p", fingerprint="w", kind=kind)
    entry = await ledger.get(runner.action_of("p", "w"))
    assert entry is not None and entry.state is State.UNKNOWN and not entry.owner
    assert list(server.applied.values()) == [1]
    server.hold.set()
    server.hold = None
    # "set to a value": a fresh key (applying the same value again is harmless, and DPG reports its state);
    # a create: the same key, so DPG replays the creation instead of making a second one
    again = await runner.run("POST", "/v1/sets/s/x", {"i": [1]}, principal="p", fingerprint="w", kind=kind)
    assert again.replayed is replayed and sum(server.applied.values()) == applied
    await client.aclose()


async def test_check_operation_wait_is_bounded_when_the_first_poll_hangs() -> None:
    async def hang(r: httpx2.Request) -> httpx2.Response:
        await anyio.sleep_forever()
        raise AssertionError

    client = DPGClient(BASE, TOKEN, transport=httpx2.MockTransport(hang), timeout=30)
    runner = WriteRunner(client, MemoryLedger(), budget_s=0.2)
    with anyio.fail_after(3), pytest.raises(TransportFailure):
        await runner.wait("op-1")


async def test_token_with_a_trailing_newline_is_sent_clean() -> None:
    rec = Recorder(lambda r: jresp(200, {"capabilities": []}))
    async with DPGClient(BASE, TOKEN + "\n", transport=httpx2.MockTransport(rec)) as client:
        await client.me()
    assert rec.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_garbled_bodies_and_redirect_loops_become_dpg_errors(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.url.path == "/loop":
            return httpx2.Response(302, headers={"Location": "/loop"})
        bad_gzip = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        if r.method == "PATCH" and len(calls) == 0:
            calls.append(1)
            return httpx2.Response(202, content=b"garbage", headers=bad_gzip)
        if r.method == "PATCH":
            return jresp(202, op())
        return httpx2.Response(200, content=b"garbage", headers=bad_gzip)

    calls: list[int] = []
    client, rec = make_client(handler, clock, max_attempts=2)
    with pytest.raises(TransportFailure):
        await client.me()  # retried, then a clear "unreachable", never a raw httpx2.DecodingError
    with pytest.raises(DPGError) as info:
        await client.fetch_bytes("https://cdn.test/loop", 10)
    assert info.value.code == "invalid_response"
    runner = WriteRunner(client, MemoryLedger(), clock=clock, sleep=clock.sleep)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "t"}, principal="p", fingerprint="f")
    posts = [r for r in rec.requests if r.method == "PATCH"]
    assert out.state == "succeeded" and len(posts) == 2
    assert len({r.headers["idempotency-key"] for r in posts}) == 1


def test_foreign_status_codes_map_to_actionable_codes() -> None:
    assert DPGError.from_http(422, b'{"detail": "bad"}', {}).code == "validation"
    timeout = DPGError.from_http(408, b"", {})
    assert timeout.code == "timeout" and timeout.retryable
    assert not DPGError.from_http(404, b"", {}).retryable

"""The search index answers as a scan of every record would, and stays so through every kind of write."""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from dpg_mcp.sandbox import Sandbox, SandboxConfig, search
from dpg_mcp.sandbox.seed import build_store

from .conftest import Api, FakeClock
from .test_files import png_bytes, ticket, upload

QUERIES: list[dict[str, Any]] = [
    {},
    {"keyword": "sunset"},
    {"keyword": "SUNSET"},
    {"keyword": "artist:Marina Vale"},
    {"keyword": "Marina Vale", "namespace": "artist"},
    {"keyword": ":crowd"},
    {"namespace": "stage"},
    {"namespace": "nope"},
    {"rating": 3},
    {"min_rating": 4},
    {"has_video": "true"},
    {"has_geo": "false"},
    {"query": "marina stage"},
    {"query": "river"},
    {"query": "+river -night"},
    {"query": "-crowd"},
    {"query": "son*"},
    {"query": '"main stage" saturday'},
    {"query": "velvet engine", "min_rating": 2, "has_geo": "true"},
    {"query": "nothingmatchesthis"},
    {"keyword": "night", "exif_property": "make", "exif_value": "Canon"},
    {"creation_date_from": "2026-07-04", "query": "sunset"},
    {"bbox": "-2.59,51.45,-2.585,51.457", "keyword": "crowd"},
]


def scan(sb: Sandbox, params: dict[str, Any]) -> list[str]:
    request = Request({"type": "http", "query_string": urlencode(params).encode(), "headers": []})
    found = search.run(list(sb.store.images.values()), search.parse_filters(request))
    return [im.public_uuid for im in found]


async def served(api: Api, params: dict[str, Any], limit: int = 37) -> tuple[list[str], set[str]]:
    """Every page, walked with an odd limit so pages start mid-score and mid-bucket; and the totals seen."""
    out: list[str] = []
    totals: set[str] = set()
    offset = 0
    for _ in range(400):  # bounded
        r = await api.get("/v1/images", params={**params, "limit": limit, "offset": offset})
        assert r.status_code == 200, r.text
        out += [im["public_uuid"] for im in r.json()]
        totals.add(r.headers["X-Total-Count"])
        if r.headers["X-Has-More"] != "true":
            return out, totals
        offset = int(r.headers["X-Next-Offset"])
    raise AssertionError("paging did not end")


async def assert_agrees(api: Api, sb: Sandbox) -> None:
    for params in QUERIES:
        want = scan(sb, params)
        got, totals = await served(api, params)
        assert got == want, params
        assert totals == {str(len(want))}, params


async def test_index_agrees_with_a_scan(api: Api, sb: Sandbox) -> None:
    assert sum(bool(scan(sb, q)) for q in QUERIES) >= len(QUERIES) - 3  # the queries do find things
    await assert_agrees(api, sb)
    r = await api.get("/v1/images", params={"query": "marina stage", "limit": 5, "offset": 3})
    assert [im["public_uuid"] for im in r.json()] == scan(sb, {"query": "marina stage"})[3:8]


async def test_index_follows_every_kind_of_write(api: Api, sb: Sandbox, clock: FakeClock) -> None:
    await assert_agrees(api, sb)  # builds the index first, so what follows must update it
    rng = random.Random(3)
    ids = sorted(sb.store.images)
    a, b, c, d, e = rng.sample(ids, 5)
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"/v1/images/{a}", {"title": "Sunset over the river stage"}),
        ("POST", f"/v1/images/{b}/keywords", {"keywords": ["sunset", "artist:Marina Vale"]}),
        ("DELETE", f"/v1/images/{c}/keywords", {"keyword": "crowd"}),
        ("PUT", f"/v1/images/{d}/rating", {"rating": 3}),
        ("DELETE", f"/v1/images/{e}", None),
        ("POST", "/v1/keywords/rename", {"from": "sunset", "to": "dusk"}),
    ]
    for method, path, body in writes:
        await api.ok_write(method, path, body)
        await assert_agrees(api, sb)  # after each one: a later write must not hide a missed update
    t = await ticket(api, {"filename": "new.png", "title": "Marina on the river", "keywords": ["crowd"]})
    assert (await upload(api, t, png_bytes())).status_code == 201
    await assert_agrees(api, sb)
    assert scan(sb, {"keyword": "sunset"}) == [] and scan(sb, {"keyword": "dusk"})
    assert e not in scan(sb, {})

    # An upload dated before the newest image cannot take the next slot: the index rebuilds and still agrees.
    clock.now = 1_700_000_000.0
    t = await ticket(api, {"filename": "old.png", "title": "Marina, an old one", "keywords": ["crowd"]})
    assert (await upload(api, t, png_bytes())).status_code == 201
    await assert_agrees(api, sb)


async def test_a_direct_edit_is_seen_once_reported(api: Api, sb: Sandbox) -> None:
    await served(api, {"keyword": "sunset"})
    rec = sb.store.images[sorted(sb.store.images)[0]]
    rec.keywords = [*rec.keywords, (None, "zebra")]
    sb.store.changed([rec.public_uuid])
    assert (await served(api, {"keyword": "zebra"}))[0] == [rec.public_uuid]


def test_a_larger_gallery_is_deterministic_and_the_default_unchanged() -> None:
    assert build_store(7).digest() == build_store(7, 300).digest()
    big = build_store(7, 1000)
    assert len(big.images) == 1000 and big.digest() == build_store(7, 1000).digest()
    assert len(Sandbox(SandboxConfig(images=31)).store.images) == 31


@pytest.mark.parametrize("bad", ["0", "-5", "many", "10000000"])
def test_sandbox_cli_refuses_a_bad_image_count(bad: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--images", bad, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--images" in r.stderr

"""Each tool against the in-process DPG sandbox."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import MemoryLedger
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.sandbox.store import SetRec
from dpg_mcp.tools import ToolContext
from dpg_mcp.tools.errors import NeedsConfirmation, agent_message
from dpg_mcp.tools.render import MAX_RESULT_BYTES
from tests.tools.conftest import ADMIN, BASE, call, confirmer, dump, outside_fences


class Recording(httpx2.AsyncBaseTransport):
    """Passes requests to the sandbox and remembers "METHOD /path" of each."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)


@pytest.fixture
def recording(sandbox: Sandbox) -> Recording:
    return Recording(sandbox.transport())


@pytest.fixture
async def rctx(recording: Recording) -> AsyncIterator[ToolContext]:
    async with DPGClient(base_url=BASE, token=ADMIN, transport=recording) as c:
        yield ToolContext(client=c, runner=WriteRunner(c, MemoryLedger()), principal="test:rec")


async def image_ids(ctx: ToolContext, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        r = await call(ctx, "search_images", limit=min(100, n - len(ids)), offset=len(ids))
        ids += [i.uuid for i in r.structured.images]  # type: ignore[attr-defined]
    return ids


def size(result: object) -> int:
    return len(json.dumps(dump(result.structured)).encode()) + len(result.text.encode())  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- images


async def test_search_images_compact_paged_and_fenced(ctx: ToolContext) -> None:
    r = await call(ctx, "search_images", query="sunset", limit=5, facets=True)
    out = dump(r.structured)
    assert len(out["images"]) == 5 and out["next_offset"] == 5 and out["total"] > 5
    item = out["images"][0]
    assert set(item) <= {"uuid", "title", "filename", "rating", "date", "keywords", "thumbnail_url", "hidden",
        "activation_time"}  # fmt: skip
    assert item["thumbnail_url"].startswith("http://dpg.test/media/")
    assert out["facets"]["keywords"] and set(out["facets"]["ratings"]) <= set("012345")
    assert (
        "<untrusted-gallery-text>" in r.text and item["title"] in r.text.split("<untrusted-gallery-text>")[1]
    )
    assert "more with offset=5" in r.text


async def test_search_images_filters_reach_dpg(ctx: ToolContext) -> None:
    r = await call(ctx, "search_images", min_rating=4, limit=50)
    assert all(i.rating >= 4 for i in r.structured.images)  # type: ignore[attr-defined]
    r = await call(ctx, "search_images", keyword="artist:Amara Obi", limit=50)
    assert r.structured.images  # type: ignore[attr-defined]
    assert all("artist:Amara Obi" in i.keywords for i in r.structured.images)  # type: ignore[attr-defined]


async def test_caption_then_get_image_shows_the_title(ctx: ToolContext) -> None:
    [uuid] = await image_ids(ctx, 1)
    r = await call(ctx, "caption_image", image_uuid=uuid, title="Golden hour", rotation=90)
    assert dump(r.structured) == {
        "state": "succeeded",
        "message": "Title and rotation set on 1 image.",
        "succeeded": 1,
        "failed": 0,
        "failures": [],
    }
    again = await call(ctx, "caption_image", image_uuid=uuid, title="Golden hour", rotation=90)
    # a "set to a value" call sent again is applied again and reports DPG's state; it claims nothing earlier
    assert again.structured.message == "Title and rotation set on 1 image."  # type: ignore[attr-defined]
    got = await call(ctx, "get_image", image_uuid=uuid)
    detail = dump(got.structured)
    assert detail["title"] == "Golden hour" and detail["rotation"] == 90
    assert {v["name"] for v in detail["versions"]} >= {"original", "thumbnail"}
    assert '"title": "Golden hour"' in got.text.split("<untrusted-gallery-text>")[1]
    [(data, mime)] = got.images
    assert mime == "image/jpeg" and data.startswith(b"\xff\xd8\xff") and len(data) <= 60_000


async def test_get_image_without_preview(ctx: ToolContext) -> None:
    [uuid] = await image_ids(ctx, 1)
    r = await call(ctx, "get_image", image_uuid=uuid, preview=False)
    assert r.images == [] and "preview" not in dump(r.structured)


async def test_unknown_image_is_a_dpg_404(ctx: ToolContext) -> None:
    with pytest.raises(DPGError) as info:
        await call(ctx, "get_image", image_uuid="00000000-0000-4000-8000-000000000000")
    assert info.value.status == 404
    assert "Search first (search_images)" in agent_message(info.value)


async def test_delete_image_confirm_flow(sandbox: Sandbox, ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 2)
    before = sandbox.state_digest()
    asked: list[str] = []

    ctx.confirm = confirmer(False, asked)  # the user says no
    r = await call(ctx, "delete_image", image_uuids=ids)
    assert r.structured.state == "cancelled" and "Nothing was done" in r.text  # type: ignore[attr-defined]
    assert sandbox.state_digest() == before
    assert "Delete 2 images" in asked[0] and "cannot be undone" in asked[0]

    ctx.confirm = confirmer(None, asked)  # the host could not ask, and no confirm=true
    with pytest.raises(NeedsConfirmation):
        await call(ctx, "delete_image", image_uuids=ids)
    assert sandbox.state_digest() == before

    ctx.confirm = confirmer(True, asked)
    r = await call(ctx, "delete_image", image_uuids=ids[:1])
    assert r.structured.state == "succeeded" and r.structured.message == "1 image deleted."  # type: ignore[attr-defined]
    with pytest.raises(DPGError):
        await ctx.client.get_image(ids[0])

    ctx.confirm = None  # no elicitation: confirm=true after asking the user in chat
    r = await call(ctx, "delete_image", image_uuids=ids[1:], confirm=True)
    assert r.structured.succeeded == 1  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- metadata


async def test_tag_images_on_120_images_is_three_batches_and_one_result(
    rctx: ToolContext, recording: Recording
) -> None:
    ids = await image_ids(rctx, 120)
    recording.seen.clear()
    r = await call(rctx, "tag_images", image_uuids=ids, add=["client:Acme", "selects"])
    assert recording.seen.count("POST /v1/operations/batch") == 3
    assert dump(r.structured) == {
        "state": "succeeded",
        "message": "2 keywords added to 120 images.",
        "succeeded": 120,
        "failed": 0,
        "failures": [],
    }
    last = await rctx.client.get_image(ids[-1])
    assert {"client:Acme", "selects"} <= {k.full for k in last.keywords}


async def test_batch_error_in_a_later_chunk_is_merged_into_the_result(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 100) + ["00000000-0000-4000-8000-00000000dead"]
    r = await call(ctx, "rate_images", image_uuids=ids, rating=3)
    out = dump(r.structured)
    assert out["state"] == "partial" and out["succeeded"] == 100 and out["failed"] == 1
    assert out["failures"][0]["image_uuid"] == ids[-1]
    assert (await ctx.client.get_image(ids[0])).rating == 3


async def test_an_unknown_id_in_a_batch_fails_alone_and_the_rest_is_applied(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    """DPG refuses a whole batch for one unknown id: that entry is dropped and the others still go."""
    dead = "00000000-0000-4000-8000-00000000dead"
    ids = [dead, *await image_ids(ctx, 3)]
    r = await call(ctx, "rate_images", image_uuids=ids, rating=2)
    out = dump(r.structured)
    assert out["state"] == "partial" and out["succeeded"] == 3 and out["failed"] == 1
    assert [f["image_uuid"] for f in out["failures"]] == [dead]
    assert out["failures"][0]["code"] == "image_not_found"
    assert [(await ctx.client.get_image(i)).rating for i in ids[1:]] == [2, 2, 2]
    assert r.text.startswith("Rating 2 set on 3 images; 1 image failed")
    assert f"- image {dead}: image_not_found\n" in r.text  # no field noise: the line names the image


async def test_many_unknown_ids_in_one_batch_are_named_and_the_rest_reported_not_applied(
    ctx: ToolContext,
) -> None:
    dead = [f"00000000-0000-4000-8000-0000000000{i:02d}" for i in range(12)]
    ids = [*dead, *await image_ids(ctx, 3)]
    out = dump((await call(ctx, "rate_images", image_uuids=ids, rating=4)).structured)
    codes = {f["image_uuid"]: f["code"] for f in out["failures"]}
    assert out["state"] == "failed" and out["succeeded"] == 0 and out["failed"] == 15
    assert [codes[d] for d in dead[:11]] == ["image_not_found"] * 11  # 10 dropped, the 11th named on give-up
    assert {codes[i] for i in ids[11:]} == {"not_applied"}  # the last unknown id and the good ones


async def test_a_refusal_shared_by_every_entry_is_the_calls_error_and_nothing_is_applied(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    ids = await image_ids(ctx, 3)
    before = sandbox.applied_total()
    with pytest.raises(DPGError) as info:
        await call(ctx, "tag_images", image_uuids=ids, add=["bad$ns:x"])
    assert info.value.status == 400 and sandbox.applied_total() == before
    assert ids[0] in agent_message(info.value)  # the batch entry is named by its image, not operations[0]


async def test_a_many_part_write_stops_in_time_and_the_same_call_finishes_it(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    ids = await image_ids(ctx, 120)
    ticks = iter([0.0, 1000.0])
    ctx.clock = lambda: next(ticks)  # the first part takes "1000 s": no second part is started
    r = await call(ctx, "rate_images", image_uuids=ids, rating=1)
    out = dump(r.structured)
    assert out["state"] == "partial" and out["succeeded"] == 50
    assert out["next"] == "call rate_images again with the same arguments"
    assert "70 images not sent yet" in out["message"] and out["message"] in r.text
    assert [(await ctx.client.get_image(i)).rating == 1 for i in (ids[49], ids[50])] == [True, False]
    applied = sandbox.applied_total()
    ctx.clock = lambda: 0.0
    again = dump((await call(ctx, "rate_images", image_uuids=ids, rating=1)).structured)
    assert again["state"] == "succeeded" and again["succeeded"] == 120
    assert sandbox.applied_total() == applied + 2  # parts 1 and 2 only: part 0 was replayed
    assert {(await ctx.client.get_image(i)).rating for i in ids} == {1}


async def test_tag_remove_rate_and_rename(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 3)
    await call(ctx, "tag_images", image_uuids=ids, add=["tmp:one"])
    r = await call(ctx, "rename_keyword", keyword="tmp:one", new_name="tmp:two", image_uuids=ids[:2])
    assert r.structured.state == "succeeded" and "on 2 images" in r.text  # type: ignore[attr-defined]
    kws = {k.full for k in (await ctx.client.get_image(ids[0])).keywords}
    assert "tmp:two" in kws and "tmp:one" not in kws
    r = await call(ctx, "tag_images", image_uuids=ids[2:], remove=["tmp:one"])
    assert r.structured.message == "Keyword removed from 1 image."  # type: ignore[attr-defined]
    assert "tmp:one" not in {k.full for k in (await ctx.client.get_image(ids[2])).keywords}
    r = await call(ctx, "rate_images", image_uuids=ids, rating=5)
    assert r.structured.message == "Rating 5 set on 3 images."  # type: ignore[attr-defined]


async def test_rename_keyword_says_how_many_images_it_changed(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 3)
    await call(ctx, "tag_images", image_uuids=ids, add=["tmp:count"])
    await call(ctx, "tag_images", image_uuids=ids[:1], add=["tmp:kept"])
    r = await call(ctx, "rename_keyword", keyword="tmp:count", new_name="tmp:kept")
    out = dump(r.structured)
    assert out["succeeded"] == 3
    assert out["message"] == "Keyword renamed on 3 images, merged into the existing keyword on 1."
    # A keyword nobody carries is not reported as renamed.
    r = await call(ctx, "rename_keyword", keyword="tmp:nobody", new_name="tmp:else")
    out = dump(r.structured)
    assert out["succeeded"] == 0 and "on 0 images" in out["message"] and "list_keywords" in r.text


async def test_list_keywords_with_namespace_and_prefix(ctx: ToolContext) -> None:
    r = await call(ctx, "list_keywords", limit=5)
    out = dump(r.structured)
    assert len(out["keywords"]) == 5 and out["next_offset"] == 5 and "artist" in out["namespaces"]
    r = await call(ctx, "list_keywords", namespace="artist", prefix="a", limit=100)
    keys = list(dump(r.structured)["keywords"])
    assert keys and all(k.lower().startswith("artist:a") for k in keys)
    # A prefix matches the namespace too: "stage:" lists the stages, "stage:ri" the River Stage.
    stages = list(dump((await call(ctx, "list_keywords", prefix="stage:", limit=100)).structured)["keywords"])
    assert stages and all(k.startswith("stage:") for k in stages) and "stage:Main Stage" in stages
    river = list(
        dump((await call(ctx, "list_keywords", prefix="Stage:ri", limit=100)).structured)["keywords"]
    )
    assert river == ["stage:River Stage"]


async def test_list_keywords_lists_at_most_100_namespaces_and_says_so(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    rec = next(iter(sandbox.store.images.values()))
    rec.keywords += [(f"ns{i:03d}", "v") for i in range(300)]
    r = await call(ctx, "list_keywords", limit=5)
    out = dump(r.structured)
    assert len(out["namespaces"]) == 100 and out["namespaces"]["artist"] == 300  # the most used stay
    assert "(the 100 most used of 304)" in r.text and size(r) <= MAX_RESULT_BYTES


async def test_edit_metadata_shows_in_get_image(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 2)
    r = await call(
        ctx,
        "edit_metadata",
        image_uuids=ids,
        iptc={"creator": "Jane Doe", "copyright_marked": True},
        alt_text="Singer on stage",
        add_credits=["stylist: Jo Park"],
        crop={"aspect_ratio": "3:2", "x": 0, "y": 0, "width": 300, "height": 200},
    )
    assert r.structured.succeeded == 2  # type: ignore[attr-defined]
    d = dump((await call(ctx, "get_image", image_uuid=ids[1], preview=False)).structured)
    assert d["metadata"]["creator"] == "Jane Doe" and d["alt_text"] == "Singer on stage"
    assert "stylist: Jo Park" in d["credits"] and d["crops"][0]["aspect_ratio"] == "3:2"
    # null clears an IPTC field
    await call(ctx, "edit_metadata", image_uuids=ids[1:], iptc={"creator": None})
    d = dump((await call(ctx, "get_image", image_uuid=ids[1], preview=False)).structured)
    assert "creator" not in d["metadata"] and d["metadata"]["copyright_marked"] is True


# ------------------------------------------------------------------------------------------- sets


async def test_browse_sets_tree_and_one_set(ctx: ToolContext) -> None:
    tree = dump((await call(ctx, "browse_sets")).structured)
    assert tree["sets"] and tree["sets"][0]["depth"] == 0
    gallery = next(s for s in tree["sets"] if s.get("images"))
    r = await call(ctx, "browse_sets", set_uuid=gallery["uuid"], limit=5)
    out = dump(r.structured)
    assert out["set"]["uuid"] == gallery["uuid"] and len(out["images"]) == 5
    # the same set found by name (one match opens it), its photos in the same gallery order
    same = await call(ctx, "browse_sets", name=gallery["name"].upper(), limit=5)
    if "The only set whose name matches" in same.text:
        assert [i["uuid"] for i in dump(same.structured)["images"]] == [i["uuid"] for i in out["images"]]
    else:
        assert gallery["uuid"] in {s["uuid"] for s in dump(same.structured)["sets"]}


def _many_sets(sandbox: Sandbox, n: int, parent: str | None) -> None:
    store = sandbox.store
    for i in range(n):
        u = store.new_uuid()
        store.sets[u] = SetRec(
            public_uuid=u, name="N" * 180 + str(i), description="", colour="red", type="gallery",
            parent_public_uuid=parent, created_at=0, updated_at=0,
        )  # fmt: skip
        store.children.setdefault(parent, []).append(u)


async def test_a_big_set_tree_is_paged_under_the_cap(sandbox: Sandbox, ctx: ToolContext) -> None:
    _many_sets(sandbox, 700, None)
    first = await call(ctx, "browse_sets")
    out = dump(first.structured)
    assert size(first) <= MAX_RESULT_BYTES
    assert out["omitted"] > 0 and out["next_offset"] == len(out["sets"]) and out["total"] == 715
    assert f"more with offset={out['next_offset']}" in first.text
    nxt = dump((await call(ctx, "browse_sets", offset=out["next_offset"])).structured)
    assert nxt["sets"][0]["uuid"] not in {s["uuid"] for s in out["sets"]}
    # past the end: nothing, and nothing negative
    end = dump((await call(ctx, "browse_sets", offset=10_000)).structured)
    assert end["sets"] == [] and end["omitted"] == 0 and "next_offset" not in end


async def test_an_opened_set_with_many_children_and_images_stays_under_the_cap(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    ids = await image_ids(ctx, 100)
    await call(ctx, "tag_images", image_uuids=ids, add=[f"long:{i:03d}-" + "x" * 90 for i in range(40)])
    r = await call(ctx, "create_set", name="Big", description="d" * 5000)
    big = dump(r.structured)["set_uuid"]
    await call(ctx, "add_to_set", set_uuid=big, image_uuids=ids)
    _many_sets(sandbox, 150, big)
    opened = await call(ctx, "browse_sets", set_uuid=big, limit=100)
    out = dump(opened.structured)
    assert size(opened) <= MAX_RESULT_BYTES
    assert out["omitted"] > 0 and out["next_offset"] == len(out["images"])
    assert 0 < len(out["sets"]) < 150 and "more exist" in opened.text


async def test_set_lifecycle(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 6)
    r = await call(ctx, "create_set", name="Friday selects", colour="red", type="gallery")
    new = r.structured.set_uuid  # type: ignore[attr-defined]
    assert new and new in r.text
    r = await call(ctx, "add_to_set", set_uuid=new, image_uuids=ids)
    assert r.structured.message.startswith("6 images added to the set. Snapshot before this add_to_set: ")  # type: ignore[attr-defined]
    again = await call(ctx, "add_to_set", set_uuid=new, image_uuids=ids)
    assert again.structured.message == "0 of 6 images added; 6 already there. Nothing needed changing."  # type: ignore[attr-defined]
    await call(ctx, "remove_from_set", set_uuid=new, image_uuids=ids[:1])
    await call(ctx, "arrange_set", set_uuid=new, move_to_front=[ids[5], ids[4]])
    await call(ctx, "publish_set", set_uuid=new, hidden=True, activation_time="2030-01-01T09:00:00Z")
    await call(ctx, "update_set", set_uuid=new, name="Friday picks", colour="green")
    out = dump((await call(ctx, "browse_sets", set_uuid=new)).structured)
    assert out["set"]["name"] == "Friday picks" and out["set"]["colour"] == "green"
    assert [i["uuid"] for i in out["images"]] == [ids[5], ids[4], ids[1], ids[2], ids[3]]
    assert all(i["hidden"] and i["activation_time"].startswith("2030-01-01") for i in out["images"])
    assert out["snapshots"]

    # restore the snapshot taken before the first change of order: asks first
    oldest = out["snapshots"][-1]["uuid"]
    asked: list[str] = []
    ctx.confirm = confirmer(True, asked)
    r = await call(ctx, "restore_set", set_uuid=new, snapshot_uuid=oldest)
    assert r.structured.state == "succeeded" and "Friday picks" in asked[0]  # type: ignore[attr-defined]


async def test_arrange_child_sets(ctx: ToolContext) -> None:
    tree = dump((await call(ctx, "browse_sets")).structured)["sets"]
    parent = next(s for s in tree if (s.get("children") or 0) >= 2)
    kids = [
        s["uuid"] for s in dump((await call(ctx, "browse_sets", set_uuid=parent["uuid"])).structured)["sets"]
    ]
    r = await call(ctx, "arrange_set", set_uuid=parent["uuid"], set_uuids=[kids[-1]])
    assert r.structured.state == "succeeded"  # type: ignore[attr-defined]
    after = dump((await call(ctx, "browse_sets", set_uuid=parent["uuid"])).structured)["sets"]
    assert [s["uuid"] for s in after] == [kids[-1], *kids[:-1]]


# ------------------------------------------------------------------------------------------- files


async def test_build_archive_returns_a_link_to_a_real_zip(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 3)
    r = await call(ctx, "build_archive", image_uuids=ids, filename="friday-selects")
    out = dump(r.structured)
    assert out["state"] == "succeeded" and out["archive"]["image_count"] == 3
    data, _ = await ctx.client.fetch_bytes(out["archive"]["url"], max_bytes=5_000_000)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert len(z.namelist()) == 3
    assert out["archive"]["url"] in r.text and out["archive"]["expires_at"]
    links = dump((await call(ctx, "get_download_link", list_archives=True)).structured)
    assert [a["uuid"] for a in links["archives"]] == [out["archive"]["uuid"]]


async def test_slow_archive_returns_the_handle_and_check_operation_finishes_it() -> None:
    now = [1_800_000_000.0]
    sb = Sandbox(SandboxConfig(operation_seconds={"archive": 60.0}, clock=lambda: now[0]))
    async with DPGClient(base_url=BASE, token=ADMIN, transport=sb.transport()) as c:
        ctx = ToolContext(client=c, runner=WriteRunner(c, MemoryLedger(), budget_s=0.5), principal="p")
        ids = await image_ids(ctx, 2)
        r = await call(ctx, "build_archive", image_uuids=ids)
        out = dump(r.structured)
        assert out["state"] == "running" and out["next"] == "call check_operation with this id"
        assert out["operation_id"].startswith("op-") and out["operation_id"] in r.text
        assert out["message"].startswith("Started, not finished within the wait (ZIP of 2 images)")
        now[0] += 61
        done = await call(ctx, "check_operation", operation_id=out["operation_id"])
        d = dump(done.structured)
        assert d["state"] == "succeeded" and d["type"] == "archive" and d["result"]["url"]
        # the link's expiry reads as a date, not as DPG's epoch seconds
        assert re.search(r"Link \(expires \d{4}-\d\d-\d\dT[\d:]+Z\): http", done.text), done.text


async def test_check_operation_of_a_batch_counts_children(sandbox: Sandbox, ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 60)
    await call(ctx, "rate_images", image_uuids=ids, rating=1)
    ops = [op for op in sandbox.store.operations.values() if op.type == "batch"]
    r = await call(ctx, "check_operation", operation_id=ops[0].uuid)
    out = dump(r.structured)
    assert out["state"] == "succeeded" and out["type"] == "batch" and out["succeeded"] == 50


async def test_a_long_archive_list_stays_under_the_cap(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 100)
    for i, image in enumerate(ids):
        await call(ctx, "build_archive", image_uuids=[image], filename=f"{'F' * 90}-{i}")
    r = await call(ctx, "get_download_link", list_archives=True)
    out = dump(r.structured)
    assert size(r) <= MAX_RESULT_BYTES
    assert 0 < len(out["archives"]) < 100 and "more exist, not listed" in r.text


async def test_get_download_link_for_the_original(ctx: ToolContext) -> None:
    [uuid] = await image_ids(ctx, 1)
    r = await call(ctx, "get_download_link", image_uuid=uuid)
    out = dump(r.structured)
    assert out["access"] == "private" and out["expires_at"] and out["url"] in r.text
    data, _ = await ctx.client.fetch_bytes(out["url"], max_bytes=20_000_000)
    assert data


async def test_upload_from_file_and_from_base64(ctx: ToolContext, tmp_path: Path) -> None:
    [uuid] = await image_ids(ctx, 1)
    thumb = (await ctx.client.get_image(uuid)).version("thumbnail")
    assert thumb and thumb.url
    png, _ = await ctx.client.fetch_bytes(thumb.url, max_bytes=200_000)
    path = tmp_path / "new.png"
    path.write_bytes(png)
    sets = dump((await call(ctx, "browse_sets")).structured)["sets"]
    gallery = next(s["uuid"] for s in sets if s.get("type") == "gallery")

    async def roots() -> list[Path]:
        return [tmp_path]

    ctx.upload_roots = roots
    r = await call(ctx, "upload_image", file_path=str(path), title="Sound check", keywords=["soundcheck"],
                   set_uuid=gallery)  # fmt: skip
    out = dump(r.structured)
    assert out["image"]["title"] == "Sound check" and "soundcheck" in out["image"]["keywords"]
    assert gallery in (await ctx.client.get_image(out["image"]["uuid"])).set_public_uuids
    # same file + same details again: the ledger knows the image it made; nothing is uploaded twice
    again = await call(ctx, "upload_image", file_path=str(path), title="Sound check", keywords=["soundcheck"],
                       set_uuid=gallery)  # fmt: skip
    assert "uploaded earlier" in again.structured.message  # type: ignore[attr-defined]
    assert dump(again.structured)["image"]["uuid"] == out["image"]["uuid"]
    b64 = base64.b64encode(png).decode()
    r = await call(ctx, "upload_image", content_base64=b64, filename="b.png", title="From base64")
    assert dump(r.structured)["image"]["filename"] == "b.png"


# ------------------------------------------------------------------------------------------- account


async def test_get_guide(ctx: ToolContext) -> None:
    r = await call(ctx, "get_guide")
    out = dump(r.structured)
    # The guide comes once (in the text block), not again in the structured content.
    assert out["source"] == "api" and "Idempotency-Key" in r.text and out["chars"] == len(r.text)
    assert "Idempotency-Key" not in json.dumps(out)


async def test_unknown_operation(ctx: ToolContext) -> None:
    with pytest.raises(DPGError) as info:
        await call(ctx, "check_operation", operation_id="op-00000000")
    assert info.value.status == 404


async def test_forbidden_write_names_the_scope(sandbox: Sandbox) -> None:
    async with DPGClient(
        base_url=BASE, token="dpg_api_live_sandbox_readonly", transport=sandbox.transport()
    ) as c:
        ctx = ToolContext(client=c, runner=WriteRunner(c, MemoryLedger()), principal="ro")
        [uuid] = await image_ids(ctx, 1)
        before = sandbox.state_digest()
        with pytest.raises(DPGError) as info:
            await call(ctx, "caption_image", image_uuid=uuid, title="x")
        assert "api.images.write" in agent_message(info.value) and sandbox.state_digest() == before


# ------------------------------------------------------------------------------------------- size cap


async def test_results_stay_under_the_size_cap(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 100)
    long_keywords = [f"long:{i:03d}-" + "x" * 90 for i in range(40)]
    await call(ctx, "tag_images", image_uuids=ids, add=long_keywords)
    r = await call(ctx, "search_images", limit=100)
    out = dump(r.structured)
    assert out["omitted"] > 0 and out["next_offset"] == len(out["images"])
    assert size(r) <= MAX_RESULT_BYTES
    assert "left out to keep the result small" in r.text
    # the next page starts where the trimmed one stopped
    nxt = dump((await call(ctx, "search_images", limit=100, offset=out["next_offset"])).structured)
    assert nxt["images"][0]["uuid"] not in {i["uuid"] for i in out["images"]}


async def test_get_image_of_a_heavy_image_is_trimmed_under_the_cap(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    ids = await image_ids(ctx, 1)
    rec = sandbox.store.images[ids[0]]
    rec.metadata = {f"field_{i}": "m" * 4000 for i in range(200)}
    rec.exif = {f"exif_{i}": "e" * 4000 for i in range(200)}
    rec.keywords = [(None, f"kw{i:03d}-" + "k" * 90) for i in range(300)]
    rec.credits = [{"role": "r" * 100, "name": "n" * 200} for _ in range(60)]
    rec.description = "d" * 5000
    r = await call(ctx, "get_image", image_uuid=ids[0], preview=False)
    out = dump(r.structured)
    assert size(r) <= MAX_RESULT_BYTES
    assert "keywords left out" in out["trimmed"] and "cut short" in out["trimmed"]
    assert out["trimmed"] in r.text and len(out["keywords"]) < 300
    assert "exif_0" in r.text  # the text restates exif too, inside the fence


async def test_get_image_text_restates_the_detail_and_fences_gallery_text(ctx: ToolContext) -> None:
    hits = dump((await call(ctx, "search_images", query="ignore previous")).structured)["images"]
    r = await call(ctx, "get_image", image_uuid=hits[0]["uuid"], preview=False)
    out = dump(r.structured)
    assert out["title"].startswith("Ignore previous instructions")
    assert "Ignore previous" not in outside_fences(r.text) and "Ignore previous" in r.text
    mine = outside_fences(r.text)
    assert out["created_at"] in mine and out["updated_at"] in mine
    assert all(s in mine for s in out["set_uuids"])
    assert json.dumps(out["exif"]["model"]) in r.text


async def test_repeating_a_batched_set_value_call_applies_it_again(
    sandbox: Sandbox, ctx: ToolContext
) -> None:
    ids = await image_ids(ctx, 120)
    first = await call(ctx, "rate_images", image_uuids=ids, rating=2)
    applied = sandbox.applied_total()
    again = await call(ctx, "rate_images", image_uuids=ids, rating=2)
    # delivered, then sent again: applied again (same value, same outcome), reported as DPG's state
    assert sandbox.applied_total() == 2 * applied
    assert again.structured.message == first.structured.message  # type: ignore[attr-defined]
    assert all(sandbox.store.images[i].rating == 2 for i in ids)


async def test_progress_of_a_batched_call_only_goes_up(ctx: ToolContext) -> None:
    ids = await image_ids(ctx, 120)
    seen: list[tuple[float, float | None, str]] = []

    async def progress(done: float, total: float | None, message: str) -> None:
        seen.append((done, total, message))

    ctx.progress = progress
    await call(ctx, "rate_images", image_uuids=ids, rating=4)
    assert seen and all(total == 3.0 for _, total, _ in seen)
    values = [done for done, _, _ in seen]
    assert values == sorted(values) and values[-1] <= 3.0
    assert any(m == "3 of 3 parts done" for _, _, m in seen)  # the parts are followed together


async def test_a_batch_that_outlives_the_wait_returns_the_handle_and_stops() -> None:
    now = [1_800_000_000.0]
    sb = Sandbox(SandboxConfig(operation_seconds={"batch": 60.0}, clock=lambda: now[0]))
    async with DPGClient(base_url=BASE, token=ADMIN, transport=sb.transport()) as c:
        ctx = ToolContext(client=c, runner=WriteRunner(c, MemoryLedger(), budget_s=0.5), principal="p")
        ids = await image_ids(ctx, 120)
        r = await call(ctx, "rate_images", image_uuids=ids, rating=1)
        out = dump(r.structured)
        assert out["state"] == "running" and out["next"] == "call check_operation with this id"
        # every part went out at once and is still running: one handle, and what to do for the others
        assert "3 of 3 parts are still running" in out["message"] and "rate_images again" in out["message"]
        now[0] += 61
        done = dump((await call(ctx, "check_operation", operation_id=out["operation_id"])).structured)
        assert done["state"] == "succeeded" and done["succeeded"] == 50
        # calling again with the same arguments replays chunk 0 and sends the rest
        r = await call(ctx, "rate_images", image_uuids=ids, rating=1)
        assert r.structured.state == "running"  # type: ignore[attr-defined]

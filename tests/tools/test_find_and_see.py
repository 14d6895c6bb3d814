"""Find and order where DPG has no parameter for it; cheap eyes: previews, contact sheets, hidden marks."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from dpg_mcp.sandbox import Sandbox
from dpg_mcp.tools import ToolContext, images

from .conftest import call, dump


def _main_stage(sandbox: Sandbox, day: str = "Friday") -> str:
    store = sandbox.store
    day_set = next(s for s in store.sets.values() if s.name == day and s.parent_public_uuid)
    return next(c for c in store.children[day_set.public_uuid] if store.sets[c].name == "Main Stage")


async def test_get_image_preview_is_a_jpeg_at_the_chosen_size(sandbox: Sandbox, ctx: ToolContext) -> None:
    uuid = sorted(sandbox.store.images)[0]
    for size in (96, 640):
        r = await call(ctx, "get_image", image_uuid=uuid, preview_size=size)
        [(data, mime)] = r.images
        pic = PILImage.open(io.BytesIO(data))
        assert mime == "image/jpeg" and pic.format == "JPEG" and max(pic.size) == size
    assert "JPEG attached" in dump(r.structured)["preview"]


async def test_contact_sheet_is_one_jpeg_grid_of_up_to_24(ctx: ToolContext) -> None:
    r = await call(ctx, "search_images", limit=30, contact_sheet=True)
    [(data, mime)] = r.images
    pic = PILImage.open(io.BytesIO(data))
    assert mime == "image/jpeg" and pic.size == (6 * 168, 4 * 126)  # 24 cells, 6 a row
    assert "Contact sheet attached: 24 photos (the first 24 of the 30 listed)" in r.text
    assert len(data) < 80_000


async def test_best_first_orders_by_rating_and_says_when_it_stopped(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await call(ctx, "search_images", best_first=True, limit=40)
    ratings = [i["rating"] for i in dump(r.structured)["images"]]
    assert ratings == sorted(ratings, reverse=True) and ratings[0] == 5
    assert "Highest rated first" in r.text
    monkeypatch.setattr(images, "MAX_BEST_FIRST_READS", 1)
    short = await call(ctx, "search_images", best_first=True, limit=100)
    assert "Stopped early at rating" in short.text and "narrow the search" in short.text
    assert dump(short.structured)["next_offset"] == 100


async def test_a_sets_photos_by_min_rating_and_a_set_by_name(sandbox: Sandbox, ctx: ToolContext) -> None:
    set_uuid = _main_stage(sandbox)
    r = await call(ctx, "browse_sets", set_uuid=set_uuid, min_rating=4, limit=100)
    got = dump(r.structured)["images"]
    want = [u for u in sandbox.store.sets[set_uuid].images if sandbox.store.images[u].rating >= 4]
    assert [i["uuid"] for i in got] == want and "Rated 4 or more" in r.text
    several = await call(ctx, "browse_sets", name="main stage")
    assert len(dump(several.structured)["sets"]) == 3 and "set" not in dump(several.structured)
    none = await call(ctx, "browse_sets", name="no such set")
    assert "No set name contains that text" in none.text
    one = await call(ctx, "browse_sets", name="press SELECTS")
    assert "The only set whose name matches; opened." in one.text and dump(one.structured)["set"]["name"]


async def test_search_marks_hidden_and_embargoed_photos(sandbox: Sandbox, ctx: ToolContext) -> None:
    rec = sandbox.store.sets[_main_stage(sandbox)]
    hidden = next(u for u, at in rec.hidden.items() if at is None)
    embargoed = next(u for u, at in rec.hidden.items() if at is not None)
    found = {}
    for uuid in (hidden, embargoed):
        title = sandbox.store.images[uuid].filename
        r = await call(ctx, "search_images", query=f'"{title.rsplit(".", 1)[0]}"', limit=5)
        found[uuid] = next(i for i in dump(r.structured)["images"] if i["uuid"] == uuid)
        assert uuid in r.text.split("</untrusted-gallery-text>")[-1]  # named in our own words
    assert found[hidden]["hidden"] is True and "activation_time" not in found[hidden]
    assert found[embargoed]["hidden"] is True and found[embargoed]["activation_time"].startswith("2030-01-01")


async def test_build_archive_takes_the_link_from_the_archive_list_when_the_operation_has_none(
    sandbox: Sandbox, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpg_mcp.tools import files

    real = files.create_one

    async def without_link(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        result, outcome = await real(*args, **kwargs)  # type: ignore[arg-type]
        if outcome.operation is not None:  # DPG's guide: the Operation may carry no link at all
            outcome = outcome.model_copy(
                update={"operation": outcome.operation.model_copy(update={"result": {}})}
            )
        return result, outcome

    monkeypatch.setattr(files, "create_one", without_link)
    rec = sandbox.store.sets[_main_stage(sandbox, "Sunday")]
    hidden = [u for u, at in rec.hidden.items() if at is None]
    anywhere = {u for s in sandbox.store.sets.values() for u in s.hidden}
    public = next(u for u in rec.images if u not in anywhere)
    r = await call(ctx, "build_archive", image_uuids=[*hidden, public], filename="sunday")
    out = dump(r.structured)
    assert out["archive"]["url"] and out["archive"]["image_count"] == 3 and out["archive"]["url"] in r.text
    assert sorted(e.split()[0] for e in out["not_public"]) == sorted(hidden)


async def test_keyword_search_says_when_it_stopped_early(
    sandbox: Sandbox, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpg_mcp.tools import metadata

    rec = next(iter(sandbox.store.images.values()))
    rec.keywords += [("tmp", f"k{i:03d}") for i in range(250)]
    sandbox.store.changed([rec.public_uuid])
    monkeypatch.setattr(metadata, "_MAX_VOCABULARY", 200)
    r = await call(ctx, "list_keywords", prefix="stage:")
    assert r.text.startswith("Only the 200 most used keywords were searched") and "narrow" in r.text
    monkeypatch.setattr(metadata, "_MAX_VOCABULARY", 5_000)
    full = await call(ctx, "list_keywords", prefix="stage:")
    assert not full.text.startswith("Only the")

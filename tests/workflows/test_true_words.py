"""Every write says what changed and what was already so, in the words an agent reads (issue 9's cases)."""

from __future__ import annotations

import re

from dpg_mcp.sandbox import Sandbox

from .conftest import agent_on, structured, text_of


def some_images(sb: Sandbox, n: int) -> list[str]:
    return sorted(sb.store.images)[:n]


async def test_tag_images_says_how_many_already_had_the_keyword(sb: Sandbox) -> None:
    ids = some_images(sb, 4)
    sb.store.images[ids[0]].keywords.append((None, "encore"))
    async with agent_on(sb) as agent:
        out = structured(await agent.call("tag_images", {"image_uuids": ids, "add": ["encore"]}))
    assert out["message"] == "Keyword added to 3 of 4 images; 1 already there."
    assert all((None, "encore") in sb.store.images[u].keywords for u in ids)


async def test_dpg_ignores_case_so_a_case_variant_is_already_there(sb: Sandbox) -> None:
    ids = some_images(sb, 4)
    for u in ids:
        kws = sb.store.images[u].keywords
        if (None, "crowd") not in kws:
            kws.append((None, "crowd"))
    before = sb.store.digest()
    async with agent_on(sb) as agent:
        out = structured(await agent.call("tag_images", {"image_uuids": ids, "add": ["Crowd"]}))
    assert out["message"] == "Keyword added to 0 of 4 images; 4 already there. Nothing needed changing."
    assert "1 keyword added" not in out["message"] and sb.store.digest() == before  # nothing was sent


async def test_removing_a_keyword_that_is_not_there_says_so(sb: Sandbox) -> None:
    [u] = some_images(sb, 1)
    async with agent_on(sb) as agent:
        out = structured(await agent.call("tag_images", {"image_uuids": [u], "remove": ["never-used"]}))
    assert out["message"] == "Keyword removed from 0: not present on the 1 image. Nothing needed changing."


async def test_deleting_a_deleted_image_says_already_deleted(sb: Sandbox) -> None:
    [u] = some_images(sb, 1)
    async with agent_on(sb) as agent:
        first = structured(await agent.call("delete_image", {"image_uuids": [u], "confirm": True}))
        again = await agent.call("delete_image", {"image_uuids": [u], "confirm": True})
    assert first["message"] == "1 image deleted." and u not in sb.store.images
    assert (
        structured(again)["message"]
        == f"Nothing to delete: 1 image already deleted (or never in this gallery): {u}."
    )
    assert "search first" not in text_of(again)


async def test_set_membership_says_what_was_already_so(sb: Sandbox) -> None:
    set_uuid = sorted(sb.store.sets)[0]
    inside = sb.store.sets[set_uuid].images[:1]
    outside = [u for u in sorted(sb.store.images) if u not in sb.store.sets[set_uuid].images][:3]
    async with agent_on(sb) as agent:
        added = structured(
            await agent.call("add_to_set", {"set_uuid": set_uuid, "image_uuids": inside + outside})
        )
        removed = structured(
            await agent.call(
                "remove_from_set",
                {"set_uuid": set_uuid, "image_uuids": ["x" * 8 + u[8:] for u in outside[:1]]},
            )
        )
    assert added["message"].startswith(
        "3 of 4 images added; 1 already there. Snapshot before this add_to_set: "
    )
    assert removed["message"] == "Removed from 0: none of the 1 image is in the set. Nothing needed changing."


async def test_no_result_says_1_images(sb: Sandbox) -> None:
    [u] = some_images(sb, 1)
    async with agent_on(sb) as agent:
        texts = [
            text_of(await agent.call("caption_image", {"photos": [{"image_uuid": u, "title": "One"}]})),
            text_of(await agent.call("rate_images", {"image_uuids": [u], "rating": 3})),
            text_of(await agent.call("tag_images", {"image_uuids": [u], "add": ["solo"]})),
            text_of(await agent.call("search_images", {"limit": 1})),
        ]
    for text in texts:
        assert not re.search(r"\b1 (images|keywords|sets|photos)\b", text), text

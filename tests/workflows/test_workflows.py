"""The four workflows of the prompts, with their call and byte budgets (issue 9's table)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime

from dpg_mcp.sandbox import Sandbox
from dpg_mcp.sandbox.store import SetRec

from .conftest import agent_on, images_of, structured, text_of


def stage_set(sb: Sandbox, day: str, stage: str) -> SetRec:
    store = sb.store
    day_set = next(s for s in store.sets.values() if s.name == day and s.parent_public_uuid)
    return next(store.sets[c] for c in store.children[day_set.public_uuid] if store.sets[c].name == stage)


# ------------------------------------------------------------------------------------------- caption a set


async def test_caption_a_33_photo_set_in_few_calls_and_little_context(sb: Sandbox) -> None:
    target = stage_set(sb, "Friday", "River Stage")
    assert len(target.images) == 33
    async with agent_on(sb) as agent:
        steps = await agent.prompt("caption_set", {"set_uuid": target.public_uuid})
        assert "contact_sheet=true" in steps and "caption_image" in steps
        # 1. the set, 24 photos at a time, each page with its contact sheet
        seen: list[dict[str, object]] = []
        offset: int | None = 0
        while offset is not None:
            page = await agent.call(
                "browse_sets",
                {"set_uuid": target.public_uuid, "limit": 24, "offset": offset, "contact_sheet": True},
            )
            assert len(images_of(page)) == 1 and "Contact sheet attached" in text_of(page)
            out = structured(page)
            seen += out["images"]
            offset = out.get("next_offset")
        assert len(seen) == 33
        # 3-4. every photo its own words, all saved in one call
        photos = [
            {
                "image_uuid": p["uuid"],
                "title": f"River Stage, Friday, frame {n + 1}",
                "description": f"A performer under coloured beams on the River Stage; frame {n + 1}.",
                "alt_text": f"Performer on a lit stage above a dark crowd, frame {n + 1}.",
            }
            for n, p in enumerate(seen)
        ]
        done = structured(await agent.call("caption_image", {"photos": photos}))
        report = agent.report("caption a 33-photo set")
    assert done["state"] == "succeeded" and done["succeeded"] == 33, done
    assert done["message"].startswith("Title, description and alt text set on 33 images")
    for n, p in enumerate(seen):
        im = sb.store.images[str(p["uuid"])]
        assert im.title == f"River Stage, Friday, frame {n + 1}" and im.alt_text.endswith(f"frame {n + 1}.")
    assert len(agent.calls) <= 8, report
    assert agent.bytes <= 150 * 1024, report


# ------------------------------------------------------------------------------------------- tidy keywords


def _norm(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


async def test_tidy_the_planted_keyword_variants(sb: Sandbox) -> None:
    before = {
        v: sum(1 for im in sb.store.images.values() if ("stage", v) in im.keywords)
        for v in ("Main Stage", "main-stage", "Mainstage")
    }
    assert all(before.values())  # the seed planted all three spellings
    async with agent_on(sb) as agent:
        steps = await agent.prompt("tidy_keywords", {"namespace": "stage", "dry_run": "no"})
        assert 'namespace="stage"' in steps and "rename_keyword" in steps
        listed = structured(await agent.call("list_keywords", {"namespace": "stage", "limit": 100}))
        groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for keyword, count in listed["keywords"].items():
            groups[_norm(keyword.split(":", 1)[1])].append((keyword, count))
        merges = []
        for members in groups.values():
            survivor = max(members, key=lambda kc: kc[1])[0]
            merges += [(k, survivor) for k, _ in members if k != survivor]
        assert sorted(merges) == [
            ("stage:Mainstage", "stage:Main Stage"),
            ("stage:main-stage", "stage:Main Stage"),
        ]
        for variant, survivor in merges:
            out = structured(await agent.call("rename_keyword", {"keyword": variant, "new_name": survivor}))
            assert (
                out["state"] == "succeeded"
                and f"on {before[variant.split(':', 1)[1]]} images" in out["message"]
            )
        after = structured(await agent.call("list_keywords", {"namespace": "stage", "limit": 100}))
        report = agent.report("tidy the planted variants")
    assert after["keywords"]["stage:Main Stage"] == sum(before.values())
    assert not {"stage:main-stage", "stage:Mainstage"} & set(after["keywords"])
    assert len(agent.calls) <= 8, report


# ------------------------------------------------------------------------------------------- a release


async def test_schedule_a_release_leaves_photos_hidden_on_purpose(sb: Sandbox) -> None:
    target = stage_set(sb, "Saturday", "Main Stage")
    on_purpose = [u for u, at in target.hidden.items() if at is None]
    embargoed_before = {u: at for u, at in target.hidden.items() if at is not None}
    assert len(on_purpose) == 2 and embargoed_before
    leads = [u for u in target.images if u not in target.hidden][5:7]
    release = "2030-06-01T09:00:00Z"
    async with agent_on(sb) as agent:
        steps = await agent.prompt(
            "schedule_release",
            {"set_uuid": target.public_uuid, "release_at": release, "lead_images": ",".join(leads)},
        )
        assert "no image_uuids" in steps and f"activation_time={release}" in steps
        opened = structured(await agent.call("browse_sets", {"set_uuid": target.public_uuid, "limit": 100}))
        assert {
            i["uuid"] for i in opened["images"] if i.get("hidden") and not i.get("activation_time")
        } == set(on_purpose)
        arranged = structured(
            await agent.call("arrange_set", {"set_uuid": target.public_uuid, "move_to_front": leads})
        )
        assert "Snapshot before this arrange_set: " in arranged["message"]
        published = await agent.call(
            "publish_set", {"set_uuid": target.public_uuid, "hidden": True, "activation_time": release}
        )
        out = structured(published)
        report = agent.report("schedule a release")
    assert out["state"] == "succeeded" and sorted(out["left_hidden"]) == sorted(on_purpose)
    assert set(out["changed"]) == set(target.images) - set(on_purpose)
    assert "Snapshot before this publish_set: " in out["message"] and "Visibility changed" in text_of(
        published
    )
    want = datetime(2030, 6, 1, 9, 0, tzinfo=UTC).timestamp()
    for (
        u
    ) in target.images:  # hidden with no release time: untouched; every other photo goes live at `release`
        assert target.hidden[u] == (None if u in on_purpose else want), u
    assert target.images[:2] == leads
    assert len(agent.calls) <= 6, report


# ------------------------------------------------------------------------------------------- best shots → ZIP


async def test_best_shots_of_a_day_to_a_zip_names_the_hidden_ones(sb: Sandbox) -> None:
    day = "2026-07-05"
    async with agent_on(sb) as agent:
        steps = await agent.prompt("best_shots_archive", {"day": day, "min_rating": "4", "max_images": "24"})
        assert "best_first=true" in steps and f"creation_date_from={day}" in steps
        found = await agent.call(
            "search_images",
            {
                "best_first": True,
                "min_rating": 4,
                "limit": 24,
                "contact_sheet": True,
                "creation_date_from": day,
                "creation_date_to": day,
            },
        )
        images = structured(found)["images"]
        ratings = [i["rating"] for i in images]
        assert ratings == sorted(ratings, reverse=True) and min(ratings) >= 4 and len(images_of(found)) == 1
        marked = {i["uuid"] for i in images if i.get("hidden")}
        assert marked and "Hidden (no release time)" in text_of(found)
        chosen = [i["uuid"] for i in images]
        zipped = await agent.call("build_archive", {"image_uuids": chosen, "filename": f"best-shots-{day}"})
        out = structured(zipped)
        report = agent.report("best shots of a day to a ZIP")
    assert (
        out["state"] == "succeeded" and out["archive"]["url"] and out["archive"]["image_count"] == len(chosen)
    )
    named = {entry.split()[0] for entry in out["not_public"]}
    assert named == marked and "Not public in a set" in text_of(zipped)
    assert len(agent.calls) <= 6, report

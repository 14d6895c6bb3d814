"""Resources (guide, me, image and set templates) and the prompts shipped in prompts/*.md."""

from __future__ import annotations

import json
import re

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent, TextResourceContents

from dpg_mcp.sandbox import Sandbox
from dpg_mcp.server import load_prompts
from dpg_mcp.tools import TOOLS

from .conftest import connect, dpg_server
from .test_calls import image_ids


async def _read(client: object, uri: str) -> str:
    result = await client.read_resource(uri)  # type: ignore[attr-defined]
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


async def test_resources(sb: Sandbox, mode: str) -> None:
    uuid = image_ids(sb, 1)[0]
    set_uuid = sorted(sb.store.sets)[0]
    async with dpg_server(sb, "readonly") as server, connect(server, mode) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        guide = await _read(client, "dpg://guide")
        me = json.loads(await _read(client, "dpg://me"))
        image = json.loads(await _read(client, f"dpg://images/{uuid}"))
        a_set = json.loads(await _read(client, f"dpg://sets/{set_uuid}"))
        full = await _read(client, "dpg://guide/full")
        profiles = json.loads(await _read(client, "dpg://metadata_profiles"))
    assert listed == {"dpg://guide", "dpg://guide/full", "dpg://me", "dpg://metadata_profiles"}
    assert profiles and {"uuid", "name", "fields"} <= set(profiles[0])
    assert templates == {"dpg://images/{public_uuid}", "dpg://sets/{public_uuid}"}
    assert guide == server.dpg.guide and len(full) >= len(guide)
    assert me["account"]["unique_id"] == "riverside" and me["capabilities"] == ["api.images.read"]
    assert "search_images" in me["tools"] and "caption_image" not in me["tools"]
    assert image["public_uuid"] == uuid
    assert a_set["set"]["public_uuid"] == set_uuid and isinstance(a_set["images"], list)


def test_prompt_files_parse() -> None:
    prompts = {p.name: p for p in load_prompts()}
    assert set(prompts) == {"caption_set", "tidy_keywords", "schedule_release", "best_shots_archive"}
    for p in prompts.values():
        assert p.description and "{{" not in p.render({a.name: "X" for a in p.arguments})


async def test_prompts(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        listed = {p.name: p for p in (await client.list_prompts()).prompts}
        caption = await client.get_prompt("caption_set", {"set_uuid": "abc-123"})
        archive = await client.get_prompt("best_shots_archive", {"query": "main stage"})
    assert set(listed) == {"caption_set", "tidy_keywords", "schedule_release", "best_shots_archive"}
    assert [a.name for a in listed["caption_set"].arguments or []] == ["set_uuid", "style", "language"]
    assert (listed["caption_set"].arguments or [])[0].required is True
    text = caption.messages[0].content
    assert isinstance(text, TextContent)
    for tool in ("browse_sets", "contact_sheet=true", "caption_image", "photos=", "abc-123"):
        assert tool in text.text
    body = archive.messages[0].content
    assert isinstance(body, TextContent)
    assert "min_rating=4" in body.text and "build_archive" in body.text and "main stage" in body.text
    assert "best_first=true" in body.text and "creation_date_from" not in body.text  # no day given


@pytest.mark.parametrize("name", ["caption_set", "tidy_keywords", "schedule_release", "best_shots_archive"])
def test_prompts_render_cleanly_with_empty_arguments(name: str) -> None:
    """An argument left empty leaves no dangling words: no `=` without a value, no empty quotes."""
    prompt = {p.name: p for p in load_prompts()}[name]
    text = prompt.render({a.name: "X" if a.required else "" for a in prompt.arguments})
    assert "{{" not in text and '""' not in text and "=," not in text and "=." not in text
    assert not re.search(r"=\s*(\n|$|\))", text), text
    assert prompt.tools and prompt.tools <= {t.name for t in TOOLS}


def test_schedule_release_prompt_keeps_photos_hidden_on_purpose() -> None:
    prompt = {p.name: p for p in load_prompts()}["schedule_release"]
    later = prompt.render({"set_uuid": "s1", "release_at": "2026-12-01T09:00:00Z"})
    assert "activation_time=2026-12-01T09:00:00Z" in later and "no image_uuids" in later
    assert "hidden with no release time stay hidden" in later
    now = prompt.render({"set_uuid": "s1"})
    assert "hidden=false" in now and "activation_time" not in now


async def test_read_only_token_is_offered_no_write_workflow(sb: Sandbox) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, "auto") as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
    assert listed == set()  # every workflow writes something: none is offered to a read-only token
    async with dpg_server(sb, "captioner") as server, connect(server, "auto") as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
    assert listed == {"caption_set", "tidy_keywords"}  # images.write and keywords.write, no sets.write


async def test_resources_have_descriptions(sb: Sandbox) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, "auto") as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
    assert all(r.description for r in resources) and all(t.description for t in templates)


async def test_unknown_image_resource_is_an_actionable_error(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, mode) as client:
        with pytest.raises(MCPError) as info:
            await client.read_resource("dpg://images/00000000-0000-4000-8000-000000000000")
    assert "Not found" in str(info.value) and "search_images" in str(info.value)


def test_prompts_name_real_tools_and_their_real_arguments() -> None:
    """A workflow that names a tool or argument the server does not have sends the agent into errors."""
    tools = {t.name: t for t in TOOLS}
    inputs = {f for t in TOOLS for f in t.input_model.model_fields}
    outputs = {f for t in TOOLS for f in t.output_model.model_fields} | {"hidden", "activation_time"}
    for p in load_prompts():
        own = {a.name for a in p.arguments} | {p.name}
        words = set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", p.body))
        unknown = words - set(tools) - inputs - outputs - own
        assert not unknown, (p.name, unknown)
        for line in p.body.splitlines():
            named = [tools[w] for w in re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", line) if w in tools]
            fields = {f for t in named for f in t.input_model.model_fields}
            for arg in re.findall(r"\b([a-z_]+)=", line):
                assert not named or arg in fields, (p.name, arg, line)


def test_prompts_declare_real_tools_that_their_steps_call() -> None:
    """`tools` in the front matter decides who sees a prompt: each must be a real tool the body calls."""
    names = {t.name for t in TOOLS}
    for p in load_prompts():
        assert p.tools, p.name
        assert p.tools <= names, (p.name, p.tools - names)
        assert all(t in p.body for t in p.tools), p.name


async def test_prompts_follow_the_tools_a_token_sees(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, mode) as client:
        listed = [p.name for p in (await client.list_prompts()).prompts]
        with pytest.raises(MCPError, match="Unknown prompt: caption_set"):
            await client.get_prompt("caption_set", {"set_uuid": "abc"})
    assert listed == []
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        editor = sorted(p.name for p in (await client.list_prompts()).prompts)
    assert "caption_set" in editor

"""Snapshots labelled with the write they preceded: DPG's snapshots carry no label, the ledger keeps ours.

Each rearranging write names the snapshot DPG took before it and records a label for it (per principal);
browse_sets shows the labels of the snapshots it lists, looked up in one go.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from dpg_mcp.config import SANDBOX_API_URL
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.ledger import Ledger
from dpg_mcp.ledger.sqlite import SQLiteLedger
from dpg_mcp.sandbox import Sandbox
from dpg_mcp.server import DPGServer, build_server

from .conftest import TOKENS, connect, dpg_server, settings_for
from .test_calls import ok, text_of

_NAMED = re.compile(r"Snapshot before this (\w+): (\S+) \(restore_set undoes it\)")


def named_snapshot(out: dict[str, Any], tool: str) -> str:
    found = _NAMED.search(out["message"])
    assert found and found.group(1) == tool, out["message"]
    return found.group(2)


def a_set_with_visible_images(sb: Sandbox, n: int = 3) -> tuple[str, list[str]]:
    for s in sorted(sb.store.sets.values(), key=lambda s: s.public_uuid):
        shown = [i for i in s.images if i not in s.hidden]
        if len(shown) >= n:
            return s.public_uuid, shown[:n]
    raise AssertionError("the seed gallery has no set with enough visible images")


@asynccontextmanager
async def server_on(sb: Sandbox, who: str, ledger: Ledger) -> AsyncIterator[DPGServer]:
    token = TOKENS[who]
    async with DPGClient(base_url=SANDBOX_API_URL, token=token, transport=sb.transport()) as client:
        yield await build_server(client, settings_for(token), ledger=ledger)


async def browse(client: Any, set_uuid: str) -> tuple[dict[str, dict[str, Any]], str]:
    result = await client.call_tool("browse_sets", {"set_uuid": set_uuid, "limit": 1})
    return {n["uuid"]: n for n in ok(result)["snapshots"]}, text_of(result)


async def test_browse_sets_labels_each_snapshot_with_the_write_it_preceded(sb: Sandbox, mode: str) -> None:
    set_uuid, images = a_set_with_visible_images(sb)
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        before, _ = await browse(client, set_uuid)
        hidden = ok(
            await client.call_tool(
                "publish_set", {"set_uuid": set_uuid, "hidden": True, "image_uuids": images[:2]}
            )
        )
        arranged = ok(
            await client.call_tool("arrange_set", {"set_uuid": set_uuid, "move_to_front": [images[2]]})
        )
        snaps, text = await browse(client, set_uuid)
    first, second = named_snapshot(hidden, "publish_set"), named_snapshot(arranged, "arrange_set")
    assert first != second and not {first, second} & set(before)
    assert snaps[first]["label"] == "before publish_set: hide 2 images"
    assert snaps[second]["label"] == "before arrange_set: move 1 image to the front"
    assert f"{first} | " in text and text.rstrip().count("| before ") == 2
    listed = [line for line in text.splitlines() if line.startswith("- ") and " | before " in line]
    assert listed[0].startswith(f"- {second} ") and listed[0].endswith(
        "| before arrange_set: move 1 image to the front"
    )
    assert listed[1].startswith(f"- {first} ") and listed[1].endswith("| before publish_set: hide 2 images")
    # Snapshots no write of ours took (the seed's) say nothing extra.
    for uuid in before:
        assert "label" not in snaps[uuid]
        assert not any(line.startswith(f"- {uuid} ") and "before" in line for line in text.splitlines())


async def test_a_label_survives_a_server_rebuild_on_the_same_sqlite_ledger(
    sb: Sandbox, tmp_path: Path
) -> None:
    set_uuid, _ = a_set_with_visible_images(sb)
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(path)
    try:
        async with server_on(sb, "admin", ledger) as server, connect(server, "auto") as client:
            out = ok(
                await client.call_tool(
                    "add_to_set", {"set_uuid": set_uuid, "image_uuids": _others(sb, set_uuid, 2)}
                )
            )
    finally:
        await ledger.aclose()
    snapshot_uuid = named_snapshot(out, "add_to_set")
    again = SQLiteLedger(path)  # a new process on the same file
    try:
        async with server_on(sb, "admin", again) as server, connect(server, "auto") as client:
            snaps, text = await browse(client, set_uuid)
    finally:
        await again.aclose()
    assert snaps[snapshot_uuid]["label"] == "before add_to_set: add 2 images"
    assert "| before add_to_set: add 2 images" in text


async def test_labels_are_per_principal(sb: Sandbox, tmp_path: Path) -> None:
    """Another token on the same ledger sees no label on snapshots it did not cause; its own are labelled."""
    set_uuid, images = a_set_with_visible_images(sb)
    count = len(sb.store.sets[set_uuid].images)
    ledger = SQLiteLedger(tmp_path / "shared.sqlite3")
    try:
        async with server_on(sb, "admin", ledger) as server, connect(server, "auto") as admin:
            out = ok(
                await admin.call_tool(
                    "arrange_set",
                    {
                        "set_uuid": set_uuid,
                        "image_uuids": sb.store.sets[set_uuid].images[::-1],
                    },
                )
            )
        admins = named_snapshot(out, "arrange_set")
        async with server_on(sb, "editor", ledger) as server, connect(server, "auto") as editor:
            seen, text = await browse(editor, set_uuid)
            assert "label" not in seen[admins] and "| before " not in text
            mine = named_snapshot(
                ok(
                    await editor.call_tool(
                        "remove_from_set", {"set_uuid": set_uuid, "image_uuids": images[:1]}
                    )
                ),
                "remove_from_set",
            )
            seen, _ = await browse(editor, set_uuid)
        assert seen[mine]["label"] == "before remove_from_set: remove 1 image" and "label" not in seen[admins]
        async with server_on(sb, "admin", ledger) as server, connect(server, "auto") as admin:
            seen, _ = await browse(admin, set_uuid)
        assert seen[admins]["label"] == f"before arrange_set: order {count} images"
        assert "label" not in seen[mine]
    finally:
        await ledger.aclose()


def _others(sb: Sandbox, set_uuid: str, n: int) -> list[str]:
    """Images of the gallery not in the set."""
    members = set(sb.store.sets[set_uuid].images)
    return [i for i in sorted(sb.store.images) if i not in members][:n]

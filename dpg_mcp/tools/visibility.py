"""Which listed photos are not public: hidden in a set with no release time, or embargoed until one.

DPG keeps visibility per set and shows it only in a set's image list, so a search result learns it by
reading the sets its photos belong to: the tree first (its `hidden_count` says which sets hide anything),
then only those sets' lists. Bounded in reads; a result says when it could not check everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from dpg_mcp.dpg.models import Image, SetNode
from dpg_mcp.tools.base import ToolContext
from dpg_mcp.tools.render import stamp
from dpg_mcp.tools.shapes import ImageItem

MAX_SETS_READ = 10  # sets whose lists are read to mark one page of results
MAX_SET_PAGES = 10  # pages of 200 read per set


def _walk(nodes: Sequence[SetNode]) -> list[SetNode]:
    out: list[SetNode] = []
    for n in nodes:
        out.append(n)
        out += _walk(n.children)
    return out


def _hides_something(node: SetNode) -> bool:
    count = (node.model_extra or {}).get("hidden_count")
    return not isinstance(count, int) or count > 0  # unknown: it may


async def mark_hidden(ctx: ToolContext, images: Sequence[Image], items: Sequence[ImageItem]) -> str:
    """Set `hidden` / `activation_time` on `items`; returns a note when it could not check every set."""
    in_sets = {s for img in images for s in img.set_public_uuids}
    if not in_sets:
        return ""
    nodes = _walk(await ctx.client.set_tree())
    candidates = [n.public_uuid for n in nodes if n.public_uuid in in_sets and _hides_something(n)]
    return await _read_sets(ctx, candidates, items)


async def _read_sets(ctx: ToolContext, set_ids: list[str], items: Sequence[ImageItem]) -> str:
    by_id = {it.uuid: it for it in items}
    note = ""
    if len(set_ids) > MAX_SETS_READ:
        note = f"Visibility checked in {MAX_SETS_READ} of the {len(set_ids)} sets these photos are in."
        set_ids = set_ids[:MAX_SETS_READ]
    for sid in set_ids:
        offset = 0
        for _ in range(MAX_SET_PAGES):
            page = await ctx.client.set_images(sid, limit=200, offset=offset)
            for img in page.items:
                it = by_id.get(img.public_uuid)
                if it is None or not img.hidden:
                    continue
                at = stamp(img.activation_time)
                if not it.hidden or (it.activation_time and not at):
                    it.hidden, it.activation_time = True, at  # hidden with no release outranks an embargo
            if not page.has_more or page.next_offset is None or not page.items:
                break
            offset = page.next_offset
    return note

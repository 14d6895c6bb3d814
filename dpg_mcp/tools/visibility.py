"""Which listed photos are not public: hidden in a set with no release time, or embargoed until one.

DPG keeps visibility per set and shows it only in a set's image list, so a result learns it from the lists
of the sets its photos belong to (read and kept per principal by tools/visibility_cache.py). Bounded in
reads; a result says when it could not check everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from dpg_mcp.dpg.models import Image
from dpg_mcp.tools.base import ToolContext
from dpg_mcp.tools.shapes import ImageItem


async def mark_hidden(ctx: ToolContext, images: Sequence[Image], items: Sequence[ImageItem]) -> str:
    """Set `hidden` / `activation_time` on `items`; returns a note when it could not check every set."""
    in_sets = [s for img in images for s in img.set_public_uuids]
    if not in_sets:
        return ""
    lists, wanted, checked = await ctx.visibility.hidden_in(ctx.client, in_sets)
    by_id = {it.uuid: it for it in items}
    for hidden in lists:
        for uuid, at in hidden.items():
            it = by_id.get(uuid)
            if it is None:
                continue
            if not it.hidden or (it.activation_time and not at):
                it.hidden, it.activation_time = True, at  # hidden with no release outranks an embargo
    if wanted > checked:
        return f"Visibility checked in {checked} of the {wanted} sets these photos are in."
    return ""

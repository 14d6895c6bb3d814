"""Eyes that are cheap: a JPEG preview at a chosen size, and a contact sheet of many photos in one image.

Pillow is imported only when a picture is made, so a server that never shows one never loads it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import anyio

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Image
from dpg_mcp.tools.base import ToolContext
from dpg_mcp.tools.render import plural

FETCH_MAX_BYTES = 2_000_000  # one version fetched to make a preview from
SHEET_MAX = 24  # photos on one contact sheet
SHEET_COLUMNS = 6
SHEET_CELL = (168, 126)  # px of one cell; the photo is fitted inside, its label over the bottom
SHEET_QUALITY = 60
PREVIEW_QUALITY = 70
_FETCHERS = 6  # thumbnails fetched at once for a sheet
# Long side of DPG's public versions, smallest first: a preview starts from the smallest that is big enough.
_VERSION_ORDER = ("thumbnail", "medium", "large")


def short_id(uuid: str) -> str:
    return uuid[:8]


def source_url(img: Image, long_side: int) -> str | None:
    """The smallest public version whose long side covers `long_side` (else the largest there is)."""
    best: str | None = None
    for name in _VERSION_ORDER:
        v = img.version(name)
        if v is None or not v.url:
            continue
        best = v.url
        if max(v.width or 0, v.height or 0) >= long_side:
            return v.url
    return best


def to_jpeg(data: bytes, long_side: int, quality: int = PREVIEW_QUALITY) -> bytes:
    """Any image bytes as a JPEG whose long side is at most `long_side` px."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as src:
        pic = src.convert("RGB")
    pic.thumbnail((long_side, long_side))
    out = io.BytesIO()
    pic.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def compose_sheet(cells: Sequence[tuple[str, bytes | None]], columns: int = SHEET_COLUMNS) -> bytes:
    """One JPEG grid: each cell a photo (or grey when it could not be fetched) labelled "n · short id"."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    cw, ch = SHEET_CELL
    cols = max(1, min(columns, len(cells)))
    rows = max(1, -(-len(cells) // cols))
    sheet = PILImage.new("RGB", (cols * cw, rows * ch), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for i, (label, data) in enumerate(cells):
        x, y = (i % cols) * cw, (i // cols) * ch
        if data is not None:
            try:
                with PILImage.open(io.BytesIO(data)) as src:
                    pic = src.convert("RGB")
                pic.thumbnail((cw - 4, ch - 4))
                sheet.paste(pic, (x + (cw - pic.width) // 2, y + (ch - pic.height) // 2))
            except Exception:  # an undecodable thumbnail leaves its cell grey, never fails the sheet
                data = None
        if data is None:
            draw.rectangle((x + 2, y + 2, x + cw - 3, y + ch - 3), fill=(90, 90, 90))
        text = f"{i + 1} · {label}"
        box = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((x + 2, y + ch - 20, x + 8 + box[2], y + ch - 3), fill=(0, 0, 0))
        draw.text((x + 5, y + ch - 19), text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=SHEET_QUALITY, optimize=True)
    return out.getvalue()


async def fetch_version(ctx: ToolContext, url: str) -> bytes | None:
    try:
        data, mime = await ctx.client.fetch_bytes(url, max_bytes=FETCH_MAX_BYTES)
    except DPGError:
        return None
    return data if mime.startswith("image/") else None


async def contact_sheet(ctx: ToolContext, images: Sequence[Image]) -> tuple[bytes, int]:
    """(JPEG bytes, photos shown) for the first SHEET_MAX images, in order."""
    shown = list(images[:SHEET_MAX])
    thumbs: list[bytes | None] = [None] * len(shown)
    limiter = anyio.Semaphore(_FETCHERS)

    async def one(i: int, img: Image) -> None:
        url = source_url(img, 1)
        if url:
            async with limiter:
                thumbs[i] = await fetch_version(ctx, url)

    async with anyio.create_task_group() as tg:
        for i, img in enumerate(shown):
            tg.start_soon(one, i, img)
    cells = [(short_id(img.public_uuid), thumbs[i]) for i, img in enumerate(shown)]
    return await anyio.to_thread.run_sync(compose_sheet, cells), len(shown)


def sheet_note(shown: int, total_listed: int) -> str:
    more = f" (the first {shown} of the {total_listed} listed)" if total_listed > shown else ""
    return (
        f"Contact sheet attached: {plural(shown, 'photo')}{more}, numbered in list order and labelled with "
        "the first 8 characters of their ids."
    )

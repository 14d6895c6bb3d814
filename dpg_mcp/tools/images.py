"""Images: find, read, caption, delete."""

from __future__ import annotations

import json
from typing import Any, Literal

import anyio
from pydantic import ConfigDict, Field, model_validator

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Facets, Image
from dpg_mcp.tools.base import Args, Out, ToolContext, ToolResult
from dpg_mcp.tools.errors import NeedsConfirmation
from dpg_mcp.tools.inputs import Id, ImageIds50, IsoDate, Limit, Offset
from dpg_mcp.tools.previews import contact_sheet, fetch_version, sheet_note, source_url, to_jpeg
from dpg_mcp.tools.render import (
    LIST_BUDGET,
    cap_items,
    clip,
    fence,
    fit,
    keywords_of,
    one_line,
    paging_line,
    plural,
    size_of,
    stamp,
)
from dpg_mcp.tools.shapes import ImageItem, WriteResult, visibility_lines
from dpg_mcp.tools.visibility import mark_hidden
from dpg_mcp.tools.writes import WriteItem, apply_writes, confirmed, declined, write_text

_DATE_FILTERS = (
    "created_at_from",
    "created_at_to",
    "updated_at_from",
    "updated_at_to",
    "creation_date_from",
    "creation_date_to",
)


def image_line(it: ImageItem) -> str:
    """One line for one image; the caller fences it (titles, filenames and keywords are gallery text)."""
    parts = [it.uuid, one_line(it.title or it.filename) or "(untitled)"]
    if it.rating is not None:
        parts.append(f"rating {it.rating}")
    if it.date:
        parts.append(it.date)
    if it.keywords:
        parts.append(one_line(", ".join(it.keywords[:12])) + (" …" if len(it.keywords) > 12 else ""))
    return "- " + " | ".join(parts)


def image_lines(items: list[ImageItem]) -> str:
    return "\n".join(image_line(it) for it in items)


def image_cost(it: ImageItem) -> int:
    """What one listed image adds to a result: its JSON and its text line."""
    return size_of(it) + len(image_line(it).encode("utf-8"))


# ------------------------------------------------------------------------------------------- search_images


class SearchImagesArgs(Args):
    query: str | None = Field(None, description='Full text: +must -not "exact phrase" prefix*')
    keyword: str | None = Field(None, description='"ns:value" or value')
    namespace: str | None = Field(None, description="e.g. artist")
    rating: int | None = Field(None, ge=0, le=5)
    min_rating: int | None = Field(None, ge=0, le=5)
    exif_property: str | None = Field(None, description="e.g. make, model, lens, iso")
    exif_value: str | None = None
    created_at_from: IsoDate | None = Field(None, description="Uploaded from, ISO 8601")
    created_at_to: IsoDate | None = None
    updated_at_from: IsoDate | None = Field(None, description="Last changed from, ISO 8601")
    updated_at_to: IsoDate | None = None
    creation_date_from: IsoDate | None = Field(None, description="Taken from, ISO 8601")
    creation_date_to: IsoDate | None = None
    has_video: bool | None = None
    has_geo: bool | None = None
    bbox: str | None = Field(None, description="Map area: minLon,minLat,maxLon,maxLat")
    best_first: bool = Field(False, description="Highest rated first")
    facets: bool = Field(False, description="Add counts per keyword, rating, camera, year")
    contact_sheet: bool = False
    limit: Limit = 20
    offset: Offset = 0

    @model_validator(mode="after")
    def _check(self) -> SearchImagesArgs:
        if self.exif_value is not None and not self.exif_property:
            raise ValueError("exif_value needs exif_property")
        if self.bbox is not None:
            _check_bbox(self.bbox)
        if self.best_first and self.rating is not None:
            raise ValueError("best_first orders by rating; with an exact rating there is nothing to order")
        return self

    def filters(self) -> dict[str, Any]:
        return self.model_dump(
            exclude={"best_first", "facets", "contact_sheet", "limit", "offset"},
            exclude_none=True,
        )


def _check_bbox(bbox: str) -> None:
    try:
        lo_lon, lo_lat, hi_lon, hi_lat = (float(p) for p in bbox.split(","))
    except ValueError:
        raise ValueError("bbox must be four numbers: minLon,minLat,maxLon,maxLat") from None
    if not (-180 <= lo_lon <= hi_lon <= 180 and -90 <= lo_lat <= hi_lat <= 90):
        raise ValueError(
            "bbox must be minLon,minLat,maxLon,maxLat with lon in -180..180, lat in -90..90, min <= max"
        )


class FacetCounts(Out):
    keywords: dict[str, int] = Field(default_factory=dict)
    ratings: dict[str, int] = Field(default_factory=dict)
    cameras: dict[str, int] = Field(default_factory=dict)
    years: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, f: Facets, top: int = 30) -> FacetCounts:
        cams: dict[str, int] = {}
        for c in f.cameras[:top]:
            name = " ".join(p for p in (c.make, c.model) if p) or "unknown"
            cams[clip(name, 100) or ""] = c.count or 0
        return cls(
            keywords={clip(k.full, 120) or "": k.count or 0 for k in f.keywords[:top]},
            ratings={str(k): int(v) for k, v in f.ratings.items()},
            cameras=cams,
            years={str(y.year): y.count or 0 for y in f.years[:top] if y.year is not None},
        )


class SearchResult(Out):
    images: list[ImageItem]
    total: int | None = None
    next_offset: int | None = None
    omitted: int = 0
    facets: FacetCounts | None = None


MAX_BEST_FIRST_READS = (
    12  # pages read to order by rating (DPG has no sort; its exact rating filter is walked)
)


class _Walked:
    """A page put together from several DPG pages (best_first), shaped like one."""

    def __init__(self, items: list[Image], total: int | None, next_offset: int | None) -> None:
        self.items, self.total, self.next_offset = items, total, next_offset
        self.has_more = next_offset is not None


async def _best_first(ctx: ToolContext, args: SearchImagesArgs) -> tuple[_Walked, str]:
    """Walk DPG's exact `rating` filter from 5 down to min_rating: the best rated come first."""
    filters = {k: v for k, v in args.filters().items() if k != "min_rating"}
    need = args.offset + args.limit
    got: list[Image] = []
    total: int | None = 0
    reads = 0
    lowest = args.min_rating or 0
    stopped: int | None = None
    for rating in range(5, lowest - 1, -1):
        at = 0
        while len(got) < need:
            if reads >= MAX_BEST_FIRST_READS:
                stopped = rating
                break
            page = await ctx.client.list_images(limit=100, offset=at, rating=rating, **filters)
            reads += 1
            if at == 0:
                total = None if total is None or page.total is None else total + page.total
            got += page.items
            if not page.has_more or page.next_offset is None or not page.items:
                break
            at = page.next_offset
        if stopped is not None or len(got) >= need:
            if stopped is None and rating > lowest:
                total = None  # lower ratings were not counted
            break
    window = got[args.offset : need]
    more = len(got) > need or (stopped is not None) or total is None or (total or 0) > need
    note = "Highest rated first (rating 5 down to " + str(lowest) + ")."
    if stopped is not None:
        note += (
            f" Stopped early at rating {stopped} after {reads} reads: narrow the search "
            "(min_rating, keyword, dates) to see the rest in order."
        )
    return _Walked(window, total, need if more and window else None), note


async def search_images(ctx: ToolContext, args: SearchImagesArgs) -> ToolResult:
    order_note = ""
    page: Any
    if args.best_first:
        page, order_note = await _best_first(ctx, args)
    else:
        page = await ctx.client.list_images(limit=args.limit, offset=args.offset, **args.filters())
    facets = FacetCounts.of(await ctx.client.facets(**args.filters())) if args.facets else None
    room = LIST_BUDGET - (2 * size_of(facets) if facets is not None else 0)  # facets ride in both blocks
    items, omitted = cap_items([ImageItem.of(i) for i in page.items], room, image_cost)
    next_offset = page.next_offset if page.has_more else None
    if omitted:
        next_offset = args.offset + len(items)
    out = SearchResult(
        images=items, total=page.total, next_offset=next_offset, omitted=omitted, facets=facets
    )
    hidden_note = await mark_hidden(ctx, page.items[: len(items)], items) if items else ""
    text = [paging_line(len(items), page.total, next_offset, omitted, "images")]
    if order_note:
        text.append(order_note)
    if items:
        text.append(fence(image_lines(items)))
        text += visibility_lines(items) + ([hidden_note] if hidden_note else [])
    if facets is not None:
        text.append("Facet counts:")
        text.append(fence(json.dumps(facets.model_dump(), ensure_ascii=False)))
    pictures: list[tuple[bytes, str]] = []
    if args.contact_sheet and items:
        sheet, shown = await contact_sheet(ctx, page.items[: len(items)])
        pictures.append((sheet, "image/jpeg"))
        text.append(sheet_note(shown, len(items)))
    return ToolResult(out, "\n".join(text), pictures)


# ------------------------------------------------------------------------------------------- get_image


class GetImageArgs(Args):
    image_uuid: Id
    preview: bool = True
    preview_size: int = Field(320, ge=64, le=1024, description="Its long side, px")


class Version(Out):
    name: str | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = None


class ImageDetail(Out):
    uuid: str
    filename: str | None = None
    title: str | None = None
    description: str | None = None
    alt_text: str | None = None
    creation_date: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    rating: int | None = None
    rotation: int | None = None
    has_video: bool | None = None
    keywords: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    exif: dict[str, Any] = Field(default_factory=dict)
    geo: dict[str, Any] | None = None
    credits: list[str] = Field(default_factory=list)
    crops: list[dict[str, Any]] = Field(default_factory=list)
    set_uuids: list[str] = Field(default_factory=list)
    versions: list[Version] = Field(default_factory=list)
    preview: str | None = None
    trimmed: str | None = None  # what was shortened to keep the result small

    @classmethod
    def of(cls, img: Image) -> ImageDetail:
        """The image at the most detail that fits DETAIL_BUDGET: each level shortens more."""
        detail = cls._at(img, *_LEVELS[0])
        for level in _LEVELS[1:]:
            if size_of(detail) <= DETAIL_BUDGET:
                break
            detail = cls._at(img, *level)
        notes = []
        if len(detail.keywords) < len(img.keywords):
            notes.append(
                f"{len(img.keywords) - len(detail.keywords)} of {len(img.keywords)} keywords left out"
            )
        if len(detail.credits) < len(img.credits):
            notes.append(f"{len(img.credits) - len(detail.credits)} credits left out")
        if detail.metadata != img.metadata or detail.exif != img.exif:
            notes.append("long metadata or exif values cut short")
        if len(detail.versions) < len(img.versions) or len(detail.crops) < len(img.crops):
            notes.append("some versions or crops left out")
        detail.trimmed = "; ".join(notes) or None
        return detail

    @classmethod
    def _at(cls, img: Image, meta: int, exif: int, kws: int, text: int, credits: int) -> ImageDetail:
        return cls(
            uuid=img.public_uuid,
            filename=clip(img.filename, 300),
            title=clip(img.title, min(text, 2000)),
            description=clip(img.description, text),
            alt_text=clip(img.alt_text, min(text, 2000)),
            creation_date=stamp(img.creation_date),
            created_at=stamp(img.created_at),
            updated_at=stamp(img.updated_at),
            rating=img.rating,
            rotation=img.rotation,
            has_video=img.has_video,
            keywords=[clip(k, 120) or "" for k in keywords_of(img)][:kws],
            metadata=fit(img.metadata, meta),
            exif=fit(img.exif, exif),
            geo=img.geo.model_dump(exclude_none=True) if img.geo else None,
            credits=[f"{clip(c.role, 100)}: {clip(c.name, 200)}" for c in img.credits[:credits]],
            crops=[c.model_dump(exclude_none=True) for c in img.crops[:20]],
            set_uuids=img.set_public_uuids[:200],
            versions=[
                Version(name=v.name, width=v.width, height=v.height, url=v.url) for v in img.versions[:20]
            ],
        )


# ~36 KB of structured content, and about as much again in the text block: under MAX_RESULT_BYTES together.
DETAIL_BUDGET = 36_000
# (metadata bytes, exif bytes, keywords, chars of a caption, credits), from the most detailed level down.
_LEVELS = (
    (20_000, 8_000, 300, 6_000, 50),
    (8_000, 3_000, 150, 3_000, 30),
    (3_000, 1_000, 60, 1_500, 15),
    (1_000, 300, 30, 500, 5),
)
_GALLERY_FIELDS = (
    "filename",
    "title",
    "description",
    "alt_text",
    "creation_date",
    "keywords",
    "metadata",
    "exif",
    "credits",
    "crops",
)


def detail_text(d: ImageDetail) -> str:
    sizes = ", ".join(f"{v.name} {v.width}×{v.height}" if v.width else f"{v.name}" for v in d.versions)
    head = (
        f"Image {d.uuid}: rating {d.rating}, rotation {d.rotation}, video {'yes' if d.has_video else 'no'}, "
        f"uploaded {d.created_at}, changed {d.updated_at}"
    )
    if d.geo:
        head += f", geo {d.geo.get('lat')},{d.geo.get('lon')}"
    head += f"; in {plural(len(d.set_uuids), 'set')}"
    head += f" ({', '.join(d.set_uuids)})" if d.set_uuids else ""
    head += f"; versions: {sizes or 'none'}."
    if d.preview:
        head += f" Preview: {d.preview}."
    if d.trimmed:
        head += f" Trimmed to keep the result small: {d.trimmed}."
    body = {k: v for k, v in d.model_dump(include=set(_GALLERY_FIELDS)).items() if v}
    ordered = {k: body[k] for k in _GALLERY_FIELDS if k in body}
    return head + "\n" + fence(json.dumps(ordered, ensure_ascii=False))


async def get_image(ctx: ToolContext, args: GetImageArgs) -> ToolResult:
    img = await ctx.client.get_image(args.image_uuid)
    detail = ImageDetail.of(img)
    images: list[tuple[bytes, str]] = []
    if args.preview:
        url = source_url(img, args.preview_size)
        data = await fetch_version(ctx, url) if url else None
        if url is None:
            detail.preview = "none (no public version)"
        elif data is None:
            detail.preview = "not attached (the version could not be fetched)"
        else:
            try:
                jpeg = await anyio.to_thread.run_sync(to_jpeg, data, args.preview_size)
            except Exception:  # an undecodable version never fails the read
                detail.preview = "not attached (not a readable image)"
            else:
                images.append((jpeg, "image/jpeg"))
                detail.preview = f"JPEG attached ({len(jpeg) // 1024 or 1} KB)"
    return ToolResult(detail, detail_text(detail), images)


# ------------------------------------------------------------------------------------------- caption_image


ALT_TEXT_SCOPE = "api.metadata.write"
MAX_CAPTIONS = 100  # photos per call: up to 200 writes, four batches


class PhotoCaption(Args):
    image_uuid: Id
    title: str | None = Field(None, max_length=191)
    description: str | None = Field(None, max_length=5000)
    alt_text: str | None = Field(None, max_length=1000, description="For screen readers")
    rotation: Literal[0, 90, 180, 270] | None = Field(None, description="Degrees")
    creation_date: IsoDate | None = Field(None, description="When taken, ISO 8601")

    @model_validator(mode="after")
    def _check(self) -> PhotoCaption:
        if not self.changes() and self.alt_text is None:
            raise ValueError("give at least one of title, description, alt_text, rotation, creation_date")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields of the image itself (PATCH); alt text has its own endpoint and scope."""
        return self.model_dump(exclude={"image_uuid", "alt_text"}, exclude_none=True)


def _drop_alt_text(schema: dict[str, Any]) -> None:
    schema.get("properties", {}).pop("alt_text", None)
    tidy = Args.model_config.get("json_schema_extra")
    if callable(tidy):
        tidy(schema)  # type: ignore[call-arg]


# The same photo, for a token without api.metadata.write: no alt_text in its schema, refused if sent.
class PhotoCaptionNoAlt(PhotoCaption):
    model_config = ConfigDict(json_schema_extra=_drop_alt_text)

    @model_validator(mode="after")
    def _no_alt(self) -> PhotoCaptionNoAlt:
        if self.alt_text is not None:
            raise ValueError(
                f"alt_text needs the {ALT_TEXT_SCOPE} scope, which this token lacks; leave it out"
            )
        if not self.changes():
            raise ValueError("give at least one of title, description, rotation, creation_date")
        return self


def _one_photo(data: Any) -> Any:
    """A single photo given flat (image_uuid, title, ...) is read as a list of one."""
    if isinstance(data, dict) and "photos" not in data and "image_uuid" in data:
        return {"photos": [data]}
    return data


class CaptionImageArgs(Args):
    photos: list[PhotoCaption] = Field(min_length=1, max_length=MAX_CAPTIONS)

    _flat = model_validator(mode="before")(_one_photo)

    @model_validator(mode="after")
    def _check(self) -> CaptionImageArgs:
        ids = [p.image_uuid for p in self.photos]
        if len(set(ids)) != len(ids):
            raise ValueError("photos names an image twice; give each image once")
        return self


class CaptionImageArgsNoAlt(CaptionImageArgs):
    photos: list[PhotoCaptionNoAlt] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_CAPTIONS
    )


def caption_args_for(capabilities: frozenset[str]) -> type[CaptionImageArgs]:
    """The alt_text field is offered only to tokens that may write it. Pure."""
    return CaptionImageArgs if ALT_TEXT_SCOPE in capabilities else CaptionImageArgsNoAlt


_CAPTION_FIELDS = ("title", "description", "alt_text", "rotation", "creation_date")


def _caption_summary(photos: list[PhotoCaption]) -> str:
    """ "Title, description and alt text", each field with "(on k)" when not every photo got it."""
    n = len(photos)
    parts = []
    for f in _CAPTION_FIELDS:
        c = sum(1 for p in photos if getattr(p, f) is not None)
        if c:
            parts.append(f.replace("_", " ") + ("" if c == n else f" (on {c})"))
    what = " and ".join(", ".join(parts).rsplit(", ", 1))
    return what[:1].upper() + what[1:]


async def caption_image(ctx: ToolContext, args: CaptionImageArgs) -> ToolResult:
    items: list[WriteItem] = []
    for p in args.photos:
        one = (p.image_uuid,)
        if p.changes():
            items.append(WriteItem("PATCH", f"/v1/images/{p.image_uuid}", p.changes(), one))
        if p.alt_text is not None:
            body = {"alt_text": p.alt_text}
            items.append(WriteItem("PUT", f"/v1/images/{p.image_uuid}/alt_text", body, one))
    what = _caption_summary(args.photos)
    total = len(args.photos)

    def done(n: int) -> str:
        of = "" if n == total else f" of {total}"
        return f"{what} set on {n}{of} {'image' if total == 1 else 'images'}"

    result = await apply_writes(ctx, "caption_image", args, items, done)
    return ToolResult(result, write_text(result))


# ------------------------------------------------------------------------------------------- delete_image


class DeleteImageArgs(Args):
    image_uuids: ImageIds50
    confirm: bool = Field(False, description="true once the user agreed, when the host cannot ask")


async def delete_image(ctx: ToolContext, args: DeleteImageArgs) -> ToolResult:
    ids = args.image_uuids
    # Refuse before any request when nobody can be asked and no confirm=true came.
    if ctx.confirm is None and not args.confirm:
        raise NeedsConfirmation(
            f"deleting {plural(len(ids), 'image')} cannot be undone: check with the user, then call again "
            "with confirm=true"
        )
    # Read each one first: it names them in the question, and an image already gone is said so, not failed.
    names: list[str] = []
    gone: list[str] = []
    for uuid in ids:
        try:
            img = await ctx.client.get_image(uuid)
        except DPGError as err:
            if err.status != 404:
                raise
            gone.append(uuid)
            continue
        if len(names) < 5:
            names.append(f'"{clip(img.title or img.filename or uuid, 60)}"')
    present = [u for u in ids if u not in gone]
    already = (
        f"{plural(len(gone), 'image')} already deleted (or never in this gallery): {', '.join(gone[:10])}"
        if gone
        else ""
    )
    if not present:
        result = WriteResult(state="succeeded", message=f"Nothing to delete: {already}.", succeeded=0)
        return ToolResult(result, result.message)
    more = f" and {len(present) - len(names)} more" if len(present) > len(names) else ""
    question = (
        f"Delete {plural(len(present), 'image')} ({', '.join(names)}{more}) permanently? Their files, "
        "keywords, metadata and set places are lost; this cannot be undone."
    )
    if not await confirmed(ctx, args.confirm, question):
        result = declined()
        return ToolResult(result, result.message)
    items = [WriteItem("DELETE", f"/v1/images/{u}", None, (u,)) for u in present]
    tail = f"; {already}" if already else ""
    result = await apply_writes(
        ctx, "delete_image", args, items, lambda n: f"{plural(n, 'image')} deleted{tail}"
    )
    return ToolResult(result, write_text(result))

"""Keywords, ratings and metadata."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictInt, field_validator, model_validator

from dpg_mcp.dpg.models import KeywordCount
from dpg_mcp.tools.base import Args, Out, ToolContext, ToolResult
from dpg_mcp.tools.inputs import ImageIds500, Keyword, Limit, Offset
from dpg_mcp.tools.render import clip, fence, paging_line, plural
from dpg_mcp.tools.shapes import WriteResult
from dpg_mcp.tools.writes import REPLAYED, WriteItem, apply_writes, write_one, write_text

_MAX_VOCABULARY = 5_000  # keywords scanned when filtering by namespace or prefix
MAX_NAMESPACES = 100  # namespaces listed with every page of keywords

# ------------------------------------------------------------------------------------------- list_keywords


class ListKeywordsArgs(Args):
    namespace: str | None = Field(None, description="Only this namespace, e.g. artist")
    prefix: str | None = Field(None, description='Starting with this, any case: "stage:", "main"')
    limit: Limit = 20
    offset: Offset = 0


class KeywordsResult(Out):
    keywords: dict[str, int] = Field(description="keyword → images using it")
    namespaces: dict[str, int]
    total: int | None = None
    next_offset: int | None = None


async def list_keywords(ctx: ToolContext, args: ListKeywordsArgs) -> ToolResult:
    stopped = ""
    if args.namespace is None and not args.prefix:
        page = await ctx.client.keywords(limit=args.limit, offset=args.offset)
        rows, total = page.items, page.total
        next_offset = page.next_offset if page.has_more else None
    else:
        vocabulary, complete = await _vocabulary(ctx)
        matches = [k for k in vocabulary if _matches(k, args.namespace, args.prefix)]
        if not complete:
            stopped = (
                f"Only the {len(vocabulary)} most used keywords were searched (the vocabulary is larger): "
                "narrow with a longer prefix or a namespace.\n"
            )
        rows, total = matches[args.offset : args.offset + args.limit], len(matches)
        next_offset = args.offset + len(rows) if args.offset + len(rows) < len(matches) else None
    all_namespaces = [n for n in await ctx.client.namespaces() if n.namespace]
    all_namespaces.sort(key=lambda n: -(n.count or 0))
    namespaces = {clip(n.namespace, 100) or "": n.count or 0 for n in all_namespaces[:MAX_NAMESPACES]}
    out = KeywordsResult(
        keywords={clip(k.full, 120) or "": k.count or 0 for k in rows},
        namespaces=namespaces,
        total=total,
        next_offset=next_offset,
    )
    text = (
        paging_line(len(out.keywords), total, next_offset, 0, "keywords")
        + " Keyword: images; then namespaces"
        + (
            f" (the {MAX_NAMESPACES} most used of {len(all_namespaces)}).\n"
            if len(all_namespaces) > MAX_NAMESPACES
            else ".\n"
        )
    )
    text = (
        stopped
        + text
        + fence(json.dumps({"keywords": out.keywords, "namespaces": namespaces}, ensure_ascii=False))
    )
    return ToolResult(out, text)


async def _vocabulary(ctx: ToolContext) -> tuple[list[KeywordCount], bool]:
    """The account's keywords, most used first, bounded: (rows, whether that was all of them)."""
    rows: list[KeywordCount] = []
    offset = 0
    while len(rows) < _MAX_VOCABULARY:
        page = await ctx.client.keywords(limit=200, offset=offset)
        rows += page.items
        if not page.has_more or page.next_offset is None or not page.items:
            return rows, True
        offset = page.next_offset
    return rows, False


def _matches(k: KeywordCount, namespace: str | None, prefix: str | None) -> bool:
    """A prefix matches the value, the namespace, or the whole "ns:value" ("stage:" and "stage:main")."""
    ns = (k.namespace or "").lower()
    if namespace is not None and ns != namespace.lower():
        return False
    if not prefix:
        return True
    p = prefix.lower()
    if k.value.lower().startswith(p):
        return True
    if namespace is not None or not ns:  # with a namespace chosen, the prefix is the value's
        return False
    return f"{ns}:{k.value.lower()}".startswith(p) or ns.startswith(p)


# ------------------------------------------------------------------------------------------- tag_images


class TagImagesArgs(Args):
    image_uuids: ImageIds500
    add: list[Keyword] = Field(
        default_factory=list, max_length=200, description='"ns:value" for a namespaced one'
    )
    remove: list[Keyword] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _check(self) -> TagImagesArgs:
        self.add = list(dict.fromkeys(self.add))
        self.remove = list(dict.fromkeys(self.remove))
        if not self.add and not self.remove:
            raise ValueError("give keywords to add and/or remove")
        both = set(self.add) & set(self.remove)
        if both:
            raise ValueError(f"{len(both)} keyword(s) both added and removed")
        return self


MAX_HOLDERS_SCAN = 5_000  # images read per keyword to learn which of the given ones already carry it
MAX_CHECKED_KEYWORDS = 20  # keywords of one call checked that way


async def keyword_holders(ctx: ToolContext, keyword: str, among: set[str]) -> set[str] | None:
    """Which of `among` carry `keyword` (DPG compares keywords ignoring case); None when too many to read."""
    found: set[str] = set()
    offset = 0
    while offset < MAX_HOLDERS_SCAN:
        page = await ctx.client.list_images(limit=200, offset=offset, keyword=keyword)
        found |= {i.public_uuid for i in page.items} & among
        if not page.has_more or page.next_offset is None or not page.items or found == among:
            return found
        offset = page.next_offset
    return None


def _kw_phrase(keywords: list[str]) -> str:
    return "Keyword" if len(keywords) == 1 else f"{len(keywords)} keywords"


async def tag_images(ctx: ToolContext, args: TagImagesArgs) -> ToolResult:
    ids = list(args.image_uuids)
    among = set(ids)
    # What each image already carries decides what is sent and what the result says (never "added" twice).
    # Bounded: past MAX_CHECKED_KEYWORDS keywords the check is skipped, and the result says it was not made.
    check = len(args.add) + len(args.remove) <= MAX_CHECKED_KEYWORDS
    have_add = {k: await keyword_holders(ctx, k, among) if check else None for k in args.add}
    have_remove = {k: await keyword_holders(ctx, k, among) if check else None for k in args.remove}
    unchecked = any(v is None for v in (*have_add.values(), *have_remove.values()))
    items: list[WriteItem] = []
    gains: set[str] = set()
    losses: set[str] = set()
    for uuid in ids:
        path = f"/v1/images/{uuid}/keywords"
        missing = [k for k in args.add if have_add[k] is None or uuid not in (have_add[k] or ())]
        if missing:
            items.append(WriteItem("POST", path, {"keywords": missing}, (uuid,)))
            gains.add(uuid)
        for k in args.remove:
            if have_remove[k] is None or uuid in (have_remove[k] or ()):
                items.append(WriteItem("DELETE", path, {"keyword": k}, (uuid,)))
                losses.add(uuid)
    n = len(ids)
    parts = []
    if args.add:
        if len(gains) == n:
            parts.append(f"{_kw_phrase(args.add)} added to {plural(n, 'image')}")
        else:
            part = f"{_kw_phrase(args.add)} added to {len(gains)} of {plural(n, 'image')}"
            parts.append(part + f"; {n - len(gains)} already there")
    if args.remove:
        phrase = _kw_phrase(args.remove)
        if not losses:
            parts.append(f"{phrase} removed from 0: not present on the {plural(n, 'image')}")
        elif len(losses) == n:
            parts.append(f"{phrase} removed from {plural(n, 'image')}")
        else:
            part = f"{phrase} removed from {len(losses)} of {plural(n, 'image')}"
            parts.append(part + f"; {n - len(losses)} did not have it")
    summary = "; ".join(p[:1].upper() + p[1:] if i == 0 else p for i, p in enumerate(parts))
    if unchecked:  # the counts above would be guesses: say only what was sent
        summary = f"{_kw_phrase([*args.add, *args.remove])} sent for {plural(n, 'image')} (not checked which "
        summary += "already had them; DPG keeps one of each)"
    if not items:
        result = WriteResult(state="succeeded", message=summary + ". Nothing needed changing.", succeeded=n)
        return ToolResult(result, write_text(result))
    touched = len(gains | losses)

    def done(ok: int) -> str:
        return summary if ok == touched else f"{summary} (sent to {touched}; {ok} went through)"

    sent = [i.as_batch_entry() for i in items]
    fp = {"args": args.model_dump(mode="json", exclude_none=True), "sent": sent}
    result = await apply_writes(ctx, "tag_images", args, items, done, fp_args=fp)
    return ToolResult(result, write_text(result))


# ------------------------------------------------------------------------------------------- rename_keyword


class RenameKeywordArgs(Args):
    keyword: Keyword = Field(description='Current keyword, "ns:value" or value')
    new_name: Keyword = Field(description="An existing keyword merges")
    image_uuids: ImageIds500 | None = Field(None, description="Omit for all images")

    @model_validator(mode="after")
    def _check(self) -> RenameKeywordArgs:
        if self.keyword == self.new_name:
            raise ValueError("new_name is the same as keyword")
        return self


async def rename_keyword(ctx: ToolContext, args: RenameKeywordArgs) -> ToolResult:
    body: dict[str, Any] = {"from": args.keyword, "to": args.new_name}
    if args.image_uuids:
        body["image_public_uuids"] = args.image_uuids
    where = f"on {plural(len(args.image_uuids), 'image')}" if args.image_uuids else "across the account"
    item = WriteItem("POST", "/v1/keywords/rename", body)
    result, outcome = await write_one(
        ctx, "rename_keyword", args, item, lambda _n: f"Keyword renamed {where}"
    )
    if result.state != "succeeded":
        return ToolResult(result, write_text(result))
    op = outcome.operation
    res = op.result if op is not None and isinstance(op.result, dict) else {}
    renamed = res.get("renamed")
    if not isinstance(renamed, int) or isinstance(renamed, bool):
        # Tolerant: the Operation's image list names the images it touched, when DPG gives no count.
        renamed = len(op.image_public_uuids) if op is not None and op.image_public_uuids else None
    if renamed is None:
        result.succeeded = len(args.image_uuids or ())
    else:
        result.succeeded = renamed
        merged = res.get("merged")
        extra = (
            f", merged into the existing keyword on {merged}" if isinstance(merged, int) and merged else ""
        )
        result.message = f"Keyword renamed on {plural(renamed, 'image')}{extra}"
        if renamed == 0:
            result.message += " (no image carried it: check its spelling with list_keywords)"
        if outcome.replayed:
            result.message += f"; {REPLAYED}"
        result.message += "."
    return ToolResult(result, write_text(result))


# ------------------------------------------------------------------------------------------- rate_images


class RateImagesArgs(Args):
    image_uuids: ImageIds500
    rating: StrictInt = Field(ge=0, le=5)


async def rate_images(ctx: ToolContext, args: RateImagesArgs) -> ToolResult:
    items = [
        WriteItem("PUT", f"/v1/images/{u}/rating", {"rating": args.rating}, (u,)) for u in args.image_uuids
    ]
    result = await apply_writes(
        ctx, "rate_images", args, items, lambda n: f"Rating {args.rating} set on {plural(n, 'image')}"
    )
    return ToolResult(result, write_text(result))


# ------------------------------------------------------------------------------------------- edit_metadata


def _ratio(value: str) -> str:
    w, sep, h = value.strip().partition(":")
    if not (sep and w.isdigit() and h.isdigit() and 0 < len(w) <= 4 and 0 < len(h) <= 4):
        raise ValueError('an aspect ratio is "W:H", e.g. "3:2"')
    return f"{w}:{h}"


Ratio = Annotated[str, AfterValidator(_ratio)]


def _credit(value: str) -> str:
    role, sep, name = value.partition(":")
    if not sep or not role.strip() or not name.strip():
        raise ValueError('a credit is "role: name", e.g. "stylist: Jane Doe"')
    if len(role.strip()) > 100 or len(name.strip()) > 200:
        raise ValueError("credit role is at most 100 characters, name at most 200")
    return f"{role.strip()}: {name.strip()}"


Credit = Annotated[str, AfterValidator(_credit)]


PIXELS = 100_000  # no photo is wider or taller


class CropIn(Args):
    aspect_ratio: Ratio = Field(description="e.g. 3:2")
    x: int = Field(ge=0, le=PIXELS)
    y: int = Field(ge=0, le=PIXELS)
    width: int = Field(ge=1, le=PIXELS)
    height: int = Field(ge=1, le=PIXELS)


class EditMetadataArgs(Args):
    image_uuids: ImageIds500
    iptc: dict[str, Any] | None = Field(
        None, max_length=50, description="IPTC fields to set (null clears), e.g. creator, copyright_notice"
    )
    alt_text: str | None = Field(None, max_length=1000)
    add_credits: list[Credit] = Field(
        default_factory=list, max_length=20, description='"role: name", e.g. "stylist: Jo"'
    )
    remove_credits: list[Credit] = Field(default_factory=list, max_length=20)
    crop: CropIn | None = Field(None, description="Pixels of the original")
    clear_crop: Ratio | None = Field(None, description="Aspect ratio whose crop to clear")
    extract_embedded: bool = Field(
        False, description="First copy in the file's embedded caption, keywords, date"
    )

    @field_validator("iptc")
    @classmethod
    def _iptc(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one IPTC field, or leave iptc out")
        for key, v in value.items():
            if not key or len(key) > 100:
                raise ValueError("IPTC field names are 1..100 characters")
            if v is not None and (
                not isinstance(v, str | bool | int | float) or (isinstance(v, str) and len(v) > 5000)
            ):
                raise ValueError(f"IPTC field {key!r}: give a string (≤5000 chars), number, boolean or null")
        return value

    @model_validator(mode="after")
    def _check(self) -> EditMetadataArgs:
        if not self.changes():
            raise ValueError(
                "give at least one of iptc, alt_text, add_credits, remove_credits, crop, clear_crop, "
                "extract_embedded"
            )
        return self

    def changes(self) -> list[str]:
        names = (
            "extract_embedded",
            "iptc",
            "alt_text",
            "add_credits",
            "remove_credits",
            "crop",
            "clear_crop",
        )
        return [n for n in names if getattr(self, n) not in (None, False, [])]


async def edit_metadata(ctx: ToolContext, args: EditMetadataArgs) -> ToolResult:
    items: list[WriteItem] = []
    for u in args.image_uuids:
        base, one = f"/v1/images/{u}", (u,)
        if args.extract_embedded:  # first, so the explicit fields below win
            items.append(WriteItem("POST", f"{base}/extract_metadata", None, one))
        if args.iptc:
            items.append(WriteItem("PUT", f"{base}/metadata", args.iptc, one))
        if args.alt_text is not None:
            items.append(WriteItem("PUT", f"{base}/alt_text", {"alt_text": args.alt_text}, one))
        if args.add_credits:
            items.append(WriteItem("POST", f"{base}/credits", {"credits": _dump(args.add_credits)}, one))
        if args.remove_credits:
            items.append(WriteItem("DELETE", f"{base}/credits", {"credits": _dump(args.remove_credits)}, one))
        if args.crop is not None:
            items.append(WriteItem("PUT", f"{base}/crop", args.crop.model_dump(), one))
        if args.clear_crop:
            items.append(WriteItem("DELETE", f"{base}/crop", {"aspect_ratio": args.clear_crop}, one))
    what = ", ".join(_LABELS[c] for c in args.changes())
    result = await apply_writes(
        ctx, "edit_metadata", args, items, lambda n: f"{what[:1].upper()}{what[1:]} on {plural(n, 'image')}"
    )
    return ToolResult(result, write_text(result))


_LABELS = {
    "extract_embedded": "embedded metadata copied in",
    "iptc": "IPTC fields set",
    "alt_text": "alt text set",
    "add_credits": "credits added",
    "remove_credits": "credits removed",
    "crop": "crop set",
    "clear_crop": "crop cleared",
}


def _dump(credits: list[str]) -> list[dict[str, str]]:
    pairs = (c.split(":", 1) for c in credits)
    return [{"role": role.strip(), "name": name.strip()} for role, name in pairs]

"""Sets: browse, create, edit, membership, order, go-live, snapshots."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field, StrictBool, field_validator, model_validator

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Set, SetImage, SetNode, Snapshot
from dpg_mcp.dpg.operations import WriteOutcome
from dpg_mcp.tools.base import Args, Out, ToolContext, ToolResult
from dpg_mcp.tools.errors import NeedsConfirmation, ToolInputError
from dpg_mcp.tools.images import image_cost, image_lines
from dpg_mcp.tools.inputs import Id, ImageIds500, IsoZoned, Limit, Offset, check_id
from dpg_mcp.tools.previews import contact_sheet, sheet_note
from dpg_mcp.tools.render import (
    LIST_BUDGET,
    cap_items,
    clip,
    clip_value,
    fence,
    one_line,
    paging_line,
    plural,
    size_of,
    stamp,
)
from dpg_mcp.tools.shapes import ImageItem, WriteResult, visibility_lines
from dpg_mcp.tools.writes import WriteItem, apply_writes, confirmed, create_one, declined, write_text

_MAX_SET_IMAGES = 10_000  # read when an order or a visibility change needs the whole set
_MAX_TREE_NODES = 500
CHILDREN_BUDGET = 15_000  # of render.LIST_BUDGET, for an opened set's child sets; its images get the rest

# ------------------------------------------------------------------------------------------- shapes


class SetItem(Out):
    """A set in a list (tree nodes carry `depth`); an opened set adds description, parent, lead image."""

    uuid: str
    name: str | None = None
    type: str | None = None
    colour: str | None = None
    images: int | None = None
    children: int | None = None
    depth: int | None = None
    description: str | None = None
    parent_uuid: str | None = None
    lead_image_uuid: str | None = None
    website: Any = None

    @classmethod
    def of(cls, s: Set, depth: int | None = None) -> SetItem:
        return cls(
            uuid=s.public_uuid,
            name=clip(s.name, 200),
            type=s.type,
            colour=s.colour,
            images=s.image_count,
            children=s.child_count,
            depth=depth,
        )


class SnapshotItem(Out):
    uuid: str
    created_at: str | None = None
    images: int
    hidden: int | None = None  # photos it had hidden, when DPG says
    label: str | None = None  # the action it preceded, from the ledger (our words), for this principal

    @classmethod
    def of(cls, n: Snapshot) -> SnapshotItem:
        kept = (n.model_extra or {}).get("hidden")  # tolerated: the snapshot's visibility, when listed
        hidden = len(kept) if isinstance(kept, list) else None
        return cls(
            uuid=n.uuid, created_at=stamp(n.created_at), images=len(n.image_public_uuids), hidden=hidden
        )

    def line(self) -> str:
        hidden = f", {self.hidden} hidden" if self.hidden is not None else ""
        label = f" | {self.label}" if self.label else ""
        return f"- {self.uuid} | {self.created_at} | {plural(self.images, 'image')}{hidden}{label}"


class BrowseResult(Out):
    sets: list[SetItem] = Field(default_factory=list)
    set: SetItem | None = None
    images: list[ImageItem] = Field(default_factory=list)
    snapshots: list[SnapshotItem] = Field(default_factory=list)
    total: int | None = None
    next_offset: int | None = None
    omitted: int = 0


class BrowseSetsArgs(Args):
    set_uuid: Id | None = Field(None, description="Open this set; omit for the whole tree")
    name: str | None = Field(
        None, min_length=1, max_length=191, description="Find a set by name; one match opens"
    )
    min_rating: int | None = Field(None, ge=0, le=5, description="Opened set: rated at least this")
    contact_sheet: bool = False
    limit: Limit = 20
    offset: Offset = 0

    @model_validator(mode="after")
    def _check(self) -> BrowseSetsArgs:
        if self.set_uuid and self.name:
            raise ValueError("give set_uuid or name, not both")
        return self


def _flatten(nodes: list[SetNode], depth: int = 0) -> list[SetItem]:
    out: list[SetItem] = []
    for n in nodes:
        out.append(SetItem.of(n, depth))
        out += _flatten(n.children, depth + 1)
    return out


def _set_line(s: SetItem) -> str:
    return (
        "  " * (s.depth or 0)
        + f"- {s.uuid} | {one_line(s.name)} | {one_line(s.type) or 'set'} | {plural(s.images or 0, 'image')}"
        + (f", {plural(s.children, 'child set')}" if s.children else "")
    )


def _set_lines(items: list[SetItem]) -> str:
    return "\n".join(_set_line(s) for s in items)


def _set_cost(s: SetItem) -> int:
    return size_of(s) + len(_set_line(s).encode("utf-8"))


async def browse_sets(ctx: ToolContext, args: BrowseSetsArgs) -> ToolResult:
    set_uuid = args.set_uuid
    found = ""
    if set_uuid is None:
        nodes = _flatten(await ctx.client.set_tree())
        if args.name is not None:
            wanted = args.name.casefold()
            nodes = [n for n in nodes if wanted in (n.name or "").casefold()]
            if len(nodes) == 1:
                set_uuid = nodes[0].uuid
                found = "The only set whose name matches; opened.\n"
        if set_uuid is None:
            return _tree_result(nodes, args)
    return await _open_set(ctx, args, set_uuid, found)


def _tree_result(nodes: list[SetItem], args: BrowseSetsArgs) -> ToolResult:
    window = nodes[args.offset : args.offset + _MAX_TREE_NODES]
    kept, omitted = cap_items(window, LIST_BUDGET, _set_cost)
    shown_to = args.offset + len(kept)
    next_offset = shown_to if shown_to < len(nodes) else None
    out = BrowseResult(sets=kept, total=len(nodes), next_offset=next_offset, omitted=omitted)
    what = "sets whose name matches" if args.name is not None else "sets in the tree (depth-first)"
    head = paging_line(len(kept), len(nodes), next_offset, omitted, what)
    if args.name is not None and not nodes:
        head += " No set name contains that text: browse the tree without name."
    return ToolResult(out, head + ("\n" + fence(_set_lines(kept)) if kept else ""))


MAX_RATED_SCAN = 2_000  # a set's photos read to filter by rating on our side (DPG has no such filter there)


async def _rated_page(
    ctx: ToolContext, set_uuid: str, min_rating: int, limit: int, offset: int
) -> tuple[list[SetImage], int | None, str]:
    """The set's photos rated min_rating or more, in gallery order: (page, next_offset, note)."""
    kept: list[SetImage] = []
    at, scanned, more = 0, 0, False
    while scanned < MAX_RATED_SCAN:
        page = await ctx.client.set_images(set_uuid, limit=200, offset=at)
        scanned += len(page.items)
        kept += [i for i in page.items if (i.rating or 0) >= min_rating]
        more = bool(page.has_more and page.next_offset is not None and page.items)
        if not more or len(kept) > offset + limit:
            break
        at = page.next_offset or at + len(page.items)
    window = kept[offset : offset + limit]
    next_offset = offset + len(window) if len(kept) > offset + limit else None
    note = f"Rated {min_rating} or more: {len(kept)} found in the first {plural(scanned, 'photo')} of the set"
    if more and next_offset is None:
        note += f"; stopped reading at {scanned} photos: narrow with search_images instead"
    elif not more:
        note = f"Rated {min_rating} or more: {len(kept)} of the set's {plural(scanned, 'photo')}"
    return window, next_offset, note + "."


async def _open_set(ctx: ToolContext, args: BrowseSetsArgs, set_uuid: str, found: str) -> ToolResult:
    s = await ctx.client.get_set(set_uuid)
    rated_note = ""
    if args.min_rating is not None:
        items, next_from_dpg, rated_note = await _rated_page(
            ctx, set_uuid, args.min_rating, args.limit, args.offset
        )
        total: int | None = None
    else:
        page = await ctx.client.set_images(set_uuid, limit=args.limit, offset=args.offset)
        items, total = list(page.items), page.total
        next_from_dpg = page.next_offset if page.has_more else None
    children = await ctx.client.list_sets(parent_public_uuid=set_uuid, limit=100)
    snaps = await ctx.client.snapshots(set_uuid)
    detail = SetItem.of(s)
    detail.description = clip(s.description, 6000)
    detail.parent_uuid = s.parent_public_uuid
    detail.lead_image_uuid = s.lead_image_public_uuid
    detail.website = clip_value(s.website, 300)
    child_sets, children_left_out = cap_items(
        [SetItem.of(c) for c in children.items], CHILDREN_BUDGET, _set_cost
    )
    room = LIST_BUDGET - CHILDREN_BUDGET - 2 * size_of(detail) - 200 * len(snaps[:30])
    images, omitted = cap_items([_set_image(i) for i in items], room, image_cost)
    next_offset = next_from_dpg
    if omitted:
        next_offset = args.offset + len(images)
    snapshots = [
        SnapshotItem.of(n) for n in sorted(snaps, key=lambda n: str(n.created_at or ""), reverse=True)[:30]
    ]
    if snapshots:  # the action each one preceded, when this principal's write caused it: one lookup
        labels = await ctx.runner.labels(ctx.principal, SNAPSHOT, [n.uuid for n in snapshots])
        for n in snapshots:
            n.label = labels.get(n.uuid)
    out = BrowseResult(
        sets=child_sets,
        set=detail,
        images=images,
        snapshots=snapshots,
        total=total,
        next_offset=next_offset,
        omitted=omitted,
    )
    about = {k: v for k, v in detail.model_dump(include={"name", "description", "website"}).items() if v}
    text = [
        found + f"Set {detail.uuid}: type {detail.type}, colour {detail.colour}, "
        f"parent {detail.parent_uuid or 'none'}, lead image {detail.lead_image_uuid or 'none'}.",
        fence(json.dumps(about, ensure_ascii=False)),
        paging_line(len(images), total, next_offset, omitted, "images in gallery order"),
    ]
    if rated_note:
        text.append(rated_note)
    if images:
        text.append(fence(image_lines(list(images))))
        text += _visibility_note(images)
    if out.sets:
        shown_all = not children.has_more and not children_left_out
        more = "" if shown_all else " (more exist: see them in the tree, browse_sets without set_uuid)"
        text.append(f"{plural(len(out.sets), 'child set')}{more}:")
        text.append(fence(_set_lines(out.sets)))
    if snapshots:
        text.append("Snapshots (newest first; a label names the write it preceded; restore_set takes one):")
        text += [n.line() for n in snapshots]
    pictures: list[tuple[bytes, str]] = []
    if args.contact_sheet and images:
        sheet, shown = await contact_sheet(ctx, items[: len(images)])
        pictures.append((sheet, "image/jpeg"))
        text.append(sheet_note(shown, len(images)))
    return ToolResult(out, "\n".join(text), pictures)


def _set_image(img: SetImage) -> ImageItem:
    item = ImageItem.of(img)
    item.hidden, item.activation_time = img.hidden, stamp(img.activation_time)
    return item


def _visibility_note(images: list[ImageItem]) -> list[str]:
    return visibility_lines(images)


# ------------------------------------------------------------------------------------------- create / update


class SetWriteResult(WriteResult):
    set_uuid: str | None = None


class CreateSetArgs(Args):
    name: str = Field(min_length=1, max_length=191)
    parent_uuid: Id | None = Field(None, description="Parent set; omit for top level")
    colour: str | None = None
    type: str | None = None
    description: str | None = Field(None, max_length=5000)


async def create_set(ctx: ToolContext, args: CreateSetArgs) -> ToolResult:
    body: dict[str, Any] = {"name": args.name}
    extra = {"parent_public_uuid": args.parent_uuid, "colour": args.colour, "type": args.type}
    body |= {k: v for k, v in extra.items() if v is not None}
    if args.description is not None:
        body["description"] = args.description
    item = WriteItem("POST", "/v1/sets", body)

    async def exists(set_uuid: str) -> bool:
        try:
            await ctx.client.get_set(set_uuid)
            return True
        except DPGError as err:
            if err.status == 404:
                return False
            raise

    result, outcome = await create_one(
        ctx, "create_set", args, item, lambda _n: "Set created", made_of=_new_set_id, exists=exists
    )
    new_id = _new_set_id(outcome)
    out = SetWriteResult(**result.model_dump(), set_uuid=new_id)
    text = write_text(out) + (f"\nset_uuid: {out.set_uuid}" if out.set_uuid else "")
    return ToolResult(out, text)


def _new_set_id(outcome: WriteOutcome) -> str | None:
    op = outcome.operation
    res = (op.result if op else None) or {}
    nested = res.get("set") if isinstance(res.get("set"), dict) else {}
    new_id = (op.set_public_uuid if op else None) or res.get("public_uuid") or res.get("set_public_uuid")
    new_id = new_id or (nested or {}).get("public_uuid")
    return str(new_id) if new_id else None


class UpdateSetArgs(Args):
    set_uuid: Id
    name: str | None = Field(None, min_length=1, max_length=191)
    description: str | None = Field(None, max_length=5000)
    colour: str | None = None
    type: str | None = None
    lead_image_uuid: Id | None = None
    parent_uuid: str | None = Field(None, description='Move under this set; "" = top level')

    @field_validator("parent_uuid")
    @classmethod
    def _parent(cls, value: str | None) -> str | None:
        return value if not value else check_id(value)

    @model_validator(mode="after")
    def _check(self) -> UpdateSetArgs:
        if not self.changes():
            raise ValueError(
                "give at least one change: name, description, colour, type, lead_image_uuid, parent_uuid"
            )
        if self.parent_uuid == self.set_uuid:
            raise ValueError("a set cannot be its own parent")
        return self

    def changes(self) -> dict[str, Any]:
        names = {
            "name": "name",
            "description": "description",
            "colour": "colour",
            "type": "type",
            "lead_image_uuid": "lead_image_public_uuid",
            "parent_uuid": "parent_public_uuid",
        }
        out: dict[str, Any] = {}
        for ours, theirs in names.items():
            value = getattr(self, ours)
            if value is not None:
                out[theirs] = value if not (ours == "parent_uuid" and value == "") else None
        return out


async def update_set(ctx: ToolContext, args: UpdateSetArgs) -> ToolResult:
    changes = args.changes()
    what = ", ".join(k.replace("_public_uuid", "").replace("_", " ") for k in changes)
    item = WriteItem("PATCH", f"/v1/sets/{args.set_uuid}", changes)
    result = await apply_writes(ctx, "update_set", args, [item], lambda _n: f"Set updated: {what}")
    return ToolResult(result, write_text(result))


# ------------------------------------------------------------------------------------------- membership


class SetImagesArgs(Args):
    set_uuid: Id
    image_uuids: ImageIds500


async def _membership(ctx: ToolContext, args: SetImagesArgs, adding: bool) -> ToolResult:
    """Only what changes is sent; the result says what was already so (members, or not members)."""
    members = set(await _set_image_ids(ctx, args.set_uuid))
    ids = list(args.image_uuids)
    todo = [i for i in ids if (i not in members) is adding]
    n, k = len(ids), len(todo)
    tool = "add_to_set" if adding else "remove_from_set"
    if adding:
        summary = f"{plural(n, 'image')} added to the set" if k == n else f"{k} of {plural(n, 'image')} added"
        summary += f"; {n - k} already there" if k < n else ""
    elif k == 0:
        summary = f"Removed from 0: none of the {plural(n, 'image')} is in the set"
    else:
        summary = f"{plural(n, 'image')} removed" if k == n else f"{k} of {plural(n, 'image')} removed"
        summary += " from the set (images kept)" + (f"; {n - k} not in the set" if k < n else "")
    if not todo:
        result = WriteResult(state="succeeded", message=summary + ". Nothing needed changing.", succeeded=n)
        return ToolResult(result, write_text(result))
    body = {"image_public_uuids": todo}
    item = WriteItem("POST" if adding else "DELETE", f"/v1/sets/{args.set_uuid}/images", body, tuple(todo))
    fp = {"args": args.model_dump(mode="json", exclude_none=True), "body": body}

    def done(ok: int) -> str:
        return summary if ok == k else f"{summary} ({ok} of the {k} sent went through)"

    result = await apply_writes(ctx, tool, args, [item], done, fp_args=fp)
    what = f"{'add' if adding else 'remove'} {plural(k, 'image')}"
    return await _with_snapshot(ctx, args.set_uuid, tool, result, what)


async def add_to_set(ctx: ToolContext, args: SetImagesArgs) -> ToolResult:
    return await _membership(ctx, args, adding=True)


async def remove_from_set(ctx: ToolContext, args: SetImagesArgs) -> ToolResult:
    return await _membership(ctx, args, adding=False)


SNAPSHOT = "snapshot"  # the kind of object a ledger label is about


async def _with_snapshot(
    ctx: ToolContext, set_uuid: str, tool: str, result: WriteResult, what: str
) -> ToolResult:
    """Name the snapshot DPG took before this rearranging write (its newest), and label it in the ledger
    with the action (`what`: a few words of ours, no value in clear) for browse_sets to show."""
    text = write_text(result)
    if result.state in ("succeeded", "partial"):
        try:
            snaps = await ctx.client.snapshots(set_uuid)
        except DPGError:
            snaps = []
        if snaps:
            newest = max(snaps, key=lambda n: str(n.created_at or ""))
            line = f"Snapshot before this {tool}: {newest.uuid} (restore_set undoes it)."
            await ctx.runner.annotate(ctx.principal, SNAPSHOT, newest.uuid, f"before {tool}: {what}")
            result.message = result.message.removesuffix(".") + ". " + line
            text = write_text(result)
    return ToolResult(result, text)


# ------------------------------------------------------------------------------------------- arrange_set


class ArrangeSetArgs(Args):
    set_uuid: Id | None = Field(None, description="Omit with set_uuids for top-level sets")
    image_uuids: list[Id] | None = Field(
        None, min_length=1, max_length=10_000, description="Full new image order"
    )
    move_to_front: ImageIds500 | None = Field(None, description="Put these first; the rest keep their order")
    set_uuids: ImageIds500 | None = Field(
        None, description="Child sets to put first; the rest keep their order"
    )

    @model_validator(mode="after")
    def _check(self) -> ArrangeSetArgs:
        modes = [m for m in (self.image_uuids, self.move_to_front, self.set_uuids) if m is not None]
        if len(modes) != 1:
            raise ValueError("give exactly one of image_uuids, move_to_front, set_uuids")
        if self.set_uuids is None and not self.set_uuid:
            raise ValueError("set_uuid is needed to order a set's images")
        if self.image_uuids is not None and len(set(self.image_uuids)) != len(self.image_uuids):
            raise ValueError("image_uuids repeats an id")
        return self


async def arrange_set(ctx: ToolContext, args: ArrangeSetArgs) -> ToolResult:
    if args.set_uuids is not None:
        current = [s.public_uuid for s in await _children(ctx, args.set_uuid)]
        order = _front(args.set_uuids, current, "child set")
        body: dict[str, Any] = {"parent_public_uuid": args.set_uuid, "set_public_uuids": order}
        item = WriteItem("PATCH", "/v1/sets/reorder", body)
        where = f"under set {args.set_uuid}" if args.set_uuid else "at the top level"
        done = f"Order of {plural(len(order), 'set')} {where} saved"
        what = f"order {plural(len(order), 'child set')}"
    else:
        assert args.set_uuid is not None  # checked by the model
        if args.move_to_front is not None:
            order = _front(args.move_to_front, await _set_image_ids(ctx, args.set_uuid), "image in this set")
            what = f"move {plural(len(args.move_to_front), 'image')} to the front"
        else:
            order = list(args.image_uuids or [])
            what = f"order {plural(len(order), 'image')}"
        item = WriteItem("PATCH", f"/v1/sets/{args.set_uuid}/order", {"image_public_uuids": order})
        done = f"Order of {plural(len(order), 'image')} in the set saved"
    # The body depends on the set's current order: fingerprint what is sent, not only the arguments.
    fp = {"args": args.model_dump(mode="json", exclude_none=True), "body": item.body}
    result = await apply_writes(ctx, "arrange_set", args, [item], lambda _n: done, fp_args=fp)
    if args.set_uuid is None:  # the top level has no snapshots
        return ToolResult(result, write_text(result))
    return await _with_snapshot(ctx, args.set_uuid, "arrange_set", result, what)


def _front(first: list[str], current: list[str], noun: str) -> list[str]:
    missing = [i for i in first if i not in set(current)]
    if missing:
        raise ToolInputError(f"not a {noun}: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    chosen = set(first)
    return list(first) + [i for i in current if i not in chosen]


async def _set_image_ids(ctx: ToolContext, set_uuid: str) -> list[str]:
    ids: list[str] = []
    offset = 0
    while len(ids) < _MAX_SET_IMAGES:
        page = await ctx.client.set_images(set_uuid, limit=200, offset=offset)
        ids += [i.public_uuid for i in page.items]
        if not page.has_more or page.next_offset is None or not page.items:
            break
        offset = page.next_offset
    return ids


async def _children(ctx: ToolContext, parent: str | None) -> list[Set]:
    out: list[Set] = []
    offset = 0
    while len(out) < _MAX_SET_IMAGES:
        page = await ctx.client.list_sets(parent_public_uuid=parent, limit=200, offset=offset)
        out += page.items
        if not page.has_more or page.next_offset is None or not page.items:
            break
        offset = page.next_offset
    return out


# ------------------------------------------------------------------------------------------- publish_set


class PublishSetArgs(Args):
    set_uuid: Id
    hidden: StrictBool = Field(description="true hides; false shows now and ends any embargo")
    activation_time: IsoZoned | None = Field(
        None, description="With hidden=true: release then, e.g. 2026-12-01T09:00:00Z"
    )
    image_uuids: ImageIds500 | None = Field(None, description="Omit for every image in the set")

    @model_validator(mode="after")
    def _check(self) -> PublishSetArgs:
        if self.activation_time and not self.hidden:
            raise ValueError("activation_time goes with hidden=true (hidden until then)")
        return self


async def _set_visibility(ctx: ToolContext, set_uuid: str) -> dict[str, tuple[bool, str | None]]:
    """image -> (hidden, activation_time) for the set's photos in gallery order (bounded)."""
    out: dict[str, tuple[bool, str | None]] = {}
    offset = 0
    while len(out) < _MAX_SET_IMAGES:
        page = await ctx.client.set_images(set_uuid, limit=200, offset=offset)
        for i in page.items:
            out[i.public_uuid] = (bool(i.hidden), stamp(i.activation_time))
        if not page.has_more or page.next_offset is None or not page.items:
            break
        offset = page.next_offset
    return out


def _same_time(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(
            b.replace("Z", "+00:00")
        )
    except ValueError:
        return a == b


def _ids_line(label: str, ids: list[str]) -> str:
    shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    return f"{label} ({len(ids)}): {shown}."


class PublishResult(WriteResult):
    changed: list[str] = Field(default_factory=list)  # images whose visibility this call changed
    left_hidden: list[str] = Field(default_factory=list)  # hidden with no release time, not touched


async def publish_set(ctx: ToolContext, args: PublishSetArgs) -> ToolResult:
    """Without named photos, photos hidden with no release time are left alone: DPG has no "hidden on
    purpose" flag, so that state is taken to be deliberate. Only photos whose visibility changes are sent."""
    state = await _set_visibility(ctx, args.set_uuid)
    if args.image_uuids:
        missing = [i for i in args.image_uuids if i not in state]
        if missing:
            raise ToolInputError(f"not in set {args.set_uuid}: {', '.join(missing[:5])}")
        chosen, kept_hidden = list(args.image_uuids), []
    else:
        if not state:
            raise ToolInputError(f"set {args.set_uuid} has no images to show or hide")
        kept_hidden = [i for i, (hidden, at) in state.items() if hidden and at is None]
        chosen = [i for i in state if i not in set(kept_hidden)]
    want_at = args.activation_time if args.hidden else None
    change = [
        i
        for i in chosen
        if state[i][0] != args.hidden or (args.hidden and not _same_time(state[i][1], want_at))
    ]
    how = (
        f"hidden until {args.activation_time}"
        if args.activation_time
        else ("hidden" if args.hidden else "visible now")
    )
    lines = []
    if kept_hidden:
        lines.append(
            _ids_line("Left hidden, as they have no release time (name them to change them)", kept_hidden)
        )
    if not change:
        msg = f"Nothing changed: the {plural(len(chosen), 'image')} chosen are already {how}."
        same = PublishResult(state="succeeded", message=msg, succeeded=len(chosen), left_hidden=kept_hidden)
        return ToolResult(same, "\n".join([msg, *lines]))
    body: dict[str, Any] = {"image_public_uuids": change, "hidden": args.hidden}
    if args.activation_time:
        body["activation_time"] = args.activation_time
    item = WriteItem("PATCH", f"/v1/sets/{args.set_uuid}/visibility", body, tuple(change))
    fp = {"args": args.model_dump(mode="json", exclude_none=True), "body": body}
    already = len(chosen) - len(change)
    tail = f"; {already} already so" if already else ""
    result = await apply_writes(
        ctx, "publish_set", args, [item], lambda n: f"{plural(n, 'image')} now {how}{tail}", fp_args=fp
    )
    what = f"{'hide' if args.hidden else 'show'} {plural(len(change), 'image')}"
    what += " until a release time" if args.activation_time else ""
    out = await _with_snapshot(ctx, args.set_uuid, "publish_set", result, what)
    failed = {f.get("image_uuid") for f in result.failures}
    changed = [i for i in change if i not in failed] if result.state != "running" else []
    published = PublishResult(**result.model_dump(), changed=changed, left_hidden=kept_hidden)
    extra = [_ids_line("Visibility changed", changed)] if changed else []
    return ToolResult(published, "\n".join([out.text, *extra, *lines]))


# ------------------------------------------------------------------------------------------- restore_set


class RestoreSetArgs(Args):
    set_uuid: Id
    snapshot_uuid: Id = Field(description="From browse_sets with set_uuid")
    confirm: bool = Field(False, description="true once the user agreed, when the host cannot ask")


async def restore_set(ctx: ToolContext, args: RestoreSetArgs) -> ToolResult:
    if ctx.confirm is None and not args.confirm:
        raise NeedsConfirmation(
            "restoring a snapshot replaces the set's current images and order: check with the user, "
            "then call again with confirm=true"
        )
    s = await ctx.client.get_set(args.set_uuid)
    snap = next((n for n in await ctx.client.snapshots(args.set_uuid) if n.uuid == args.snapshot_uuid), None)
    if snap is None:
        raise ToolInputError(
            f"snapshot {args.snapshot_uuid} is not one of set {args.set_uuid}'s snapshots; list them with "
            "browse_sets set_uuid"
        )
    question = (
        f'Restore set "{clip(s.name or s.public_uuid, 80)}" to its snapshot of {stamp(snap.created_at)} '
        f"({plural(len(snap.image_public_uuids), 'image')})? Its current images, order and visibility are "
        "replaced (DPG keeps a snapshot of them first)."
    )
    if not await confirmed(ctx, args.confirm, question):
        result = declined()
        return ToolResult(result, result.message)
    item = WriteItem("POST", f"/v1/sets/{args.set_uuid}/restore", {"snapshot_uuid": args.snapshot_uuid})
    result = await apply_writes(
        ctx,
        "restore_set",
        args,
        [item],
        lambda _n: f"Set restored to the snapshot of {stamp(snap.created_at)}",
    )
    what = f"restore the snapshot of {stamp(snap.created_at)}"
    return await _with_snapshot(ctx, args.set_uuid, "restore_set", result, what)

"""Sets: list/tree/get/images/snapshots; create, patch, membership, order, reorder, visibility, restore."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .auth import Principal
from .common import dedupe, need_images, need_set, path_field, read_endpoint
from .core import Engine, Plan, WriteCtx, WriteRoute
from .http import (
    MISSING,
    ApiError,
    Fields,
    check_query,
    json_get,
    page_response,
    paging,
    parse_when,
    validation,
)
from .store import SetRec, SnapshotRec, Store, iso
from .views import image_json, is_hidden, set_json, snapshot_json, tree_json

READ = "api.images.read"
WRITE = "api.sets.write"
COLOURS = ["none", "red", "orange", "yellow", "green", "blue", "purple", "grey"]
TYPES = ["gallery", "folder", "event"]
MAX_IMAGES = 500


def routes(eng: Engine) -> list[BaseRoute]:
    store = eng.store

    async def list_sets(request: Request, p: Principal) -> Response:
        check_query(request, {"parent_public_uuid", "limit", "offset"})
        limit, offset = paging(request)
        parent = request.query_params.get("parent_public_uuid") or None
        if parent is not None:
            need_set(eng, parent, "parent_public_uuid")
        ids = store.children.get(parent, [])
        now = eng.clock()
        return page_response(request, ids, limit, offset, lambda sid: set_json(store, store.sets[sid], now))

    async def tree(request: Request, p: Principal) -> Response:
        check_query(request, set())
        return json_get(request, tree_json(store, None, eng.clock()))

    async def get_set(request: Request, p: Principal) -> Response:
        check_query(request, set())
        s = need_set(eng, request.path_params["public_uuid"])
        return json_get(request, set_json(store, s, eng.clock()))

    async def set_images(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset"})
        limit, offset = paging(request)
        s = need_set(eng, request.path_params["public_uuid"])
        base, now = str(request.base_url).rstrip("/"), eng.clock()

        def render(uid: str) -> dict[str, Any]:
            hidden, at = is_hidden(s, uid, now)
            return {
                **image_json(store, store.images[uid], base),
                "hidden": hidden,
                "activation_time": iso(at),
            }

        return page_response(request, s.images, limit, offset, render)

    async def snapshots(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset"})
        limit, offset = paging(request)
        s = need_set(eng, request.path_params["public_uuid"])
        # Newest first; snapshots taken in the same instant: the later one first (dicts keep insertion order).
        mine = [sn for sn in store.snapshots.values() if sn.set_public_uuid == s.public_uuid]
        snaps = sorted(reversed(mine), key=lambda sn: -sn.created_at)
        return page_response(request, snaps, limit, offset, snapshot_json)

    S = "/v1/sets/{public_uuid}"
    return [
        Route("/v1/sets", read_endpoint(eng, READ, list_sets), methods=["GET"]),
        Route("/v1/sets/tree", read_endpoint(eng, READ, tree), methods=["GET"]),
        Route(S, read_endpoint(eng, READ, get_set), methods=["GET"]),
        Route(S + "/images", read_endpoint(eng, READ, set_images), methods=["GET"]),
        Route(S + "/snapshots", read_endpoint(eng, READ, snapshots), methods=["GET"]),
    ]


def take_snapshot(ctx: WriteCtx, s: SetRec, reason: str) -> None:
    store = ctx.eng.store
    sn = SnapshotRec(
        uuid=store.new_uuid(),
        set_public_uuid=s.public_uuid,
        created_at=ctx.eng.clock(),
        reason=reason,
        images=list(s.images),
        hidden=dict(s.hidden),
        child_order=list(store.children.get(s.public_uuid, [])),
    )
    store.snapshots[sn.uuid] = sn


def _palette(f: Fields, name: str, allowed: list[str]) -> Any:
    v = f.string(name, min_len=1)
    if v is not MISSING and v not in allowed:
        raise validation(f.f(name), f"{name} must be one of: {', '.join(allowed)}")
    return v


def _name(f: Fields, required: bool) -> Any:
    v = f.string("name", required=required, min_len=1, max_len=191)
    return v.strip() if isinstance(v, str) else v


def _live(store: Store, s: SetRec) -> None:
    if s.public_uuid not in store.sets:
        raise ApiError(
            "set_not_found", "The set no longer exists.", detail=f"set {s.public_uuid} does not exist"
        )


def prepare_create(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"name", "parent_public_uuid", "colour", "description", "type"})
    name = _name(f, True)
    colour = _palette(f, "colour", COLOURS)
    type_ = _palette(f, "type", TYPES)
    desc = f.string("description", max_len=5000, nullable=True)
    parent = f.string("parent_public_uuid", min_len=1, nullable=True)
    parent = None if parent is MISSING else parent
    store = ctx.eng.store
    if parent is not None:
        need_set(ctx.eng, parent, f.f("parent_public_uuid"))

    def apply() -> dict[str, Any]:
        now = ctx.eng.clock()
        website = store.sets[parent].website if parent and parent in store.sets else None
        s = SetRec(
            public_uuid=store.new_uuid(),
            name=name,
            description=desc if isinstance(desc, str) else "",
            colour=colour if colour is not MISSING else "none",
            type=type_ if type_ is not MISSING else "gallery",
            parent_public_uuid=parent,
            created_at=now,
            updated_at=now,
            website=website,
        )
        store.sets[s.public_uuid] = s
        store.children.setdefault(parent, []).append(s.public_uuid)
        store.children[s.public_uuid] = []
        return {"message": f"Created set '{name}'.", "set_public_uuid": s.public_uuid}

    return Plan(apply, [], None)


def prepare_update(ctx: WriteCtx) -> Plan:
    allowed = {"name", "description", "colour", "type", "lead_image_public_uuid", "parent_public_uuid"}
    f = Fields(ctx.body, ctx.prefix, allowed)
    changes: dict[str, Any] = {}
    for key, val in (
        ("name", _name(f, False)),
        ("colour", _palette(f, "colour", COLOURS)),
        ("type", _palette(f, "type", TYPES)),
        ("description", f.string("description", max_len=5000, nullable=True)),
    ):
        if val is not MISSING:
            changes[key] = val or ""
    lead = f.string("lead_image_public_uuid", min_len=1, nullable=True)
    parent = f.string("parent_public_uuid", min_len=1, nullable=True)
    if not changes and lead is MISSING and parent is MISSING:
        raise validation(ctx.prefix.rstrip(".") or None, f"send at least one of {', '.join(sorted(allowed))}")
    store = ctx.eng.store
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    if isinstance(lead, str):
        need_images(ctx, [lead], f.f("lead_image_public_uuid"))
    if isinstance(parent, str):
        need_set(ctx.eng, parent, f.f("parent_public_uuid"))
        if parent == s.public_uuid or parent in store.descendants(s.public_uuid):
            raise validation(
                f.f("parent_public_uuid"), "a set cannot move under itself or one of its own children"
            )

    def apply() -> dict[str, Any]:
        _live(store, s)
        for k, v in changes.items():
            setattr(s, k, v)
        if lead is not MISSING:
            s.lead_image_public_uuid = lead
        if parent is not MISSING and parent != s.public_uuid and parent != s.parent_public_uuid:
            store.children[s.parent_public_uuid].remove(s.public_uuid)
            store.children.setdefault(parent, []).append(s.public_uuid)
            s.parent_public_uuid = parent
        s.updated_at = ctx.eng.clock()
        changed = (
            sorted(changes)
            + (["lead_image_public_uuid"] if lead is not MISSING else [])
            + (["parent_public_uuid"] if parent is not MISSING else [])
        )
        return {"message": "Set updated.", "changed": changed}

    return Plan(apply, [], s.public_uuid)


def _uuid_list(ctx: WriteCtx, f: Fields, max_items: int = MAX_IMAGES) -> list[str]:
    raw = f.str_list("image_public_uuids", required=True, min_items=1, max_items=max_items)
    return dedupe(raw)


def prepare_add_members(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuids"})
    uuids = _uuid_list(ctx, f)
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    need_images(ctx, uuids, f.f("image_public_uuids"))
    store = ctx.eng.store

    def apply() -> dict[str, Any]:
        _live(store, s)
        need_images(ctx, uuids, f.f("image_public_uuids"))
        take_snapshot(ctx, s, "membership")
        new = [u for u in uuids if u not in s.images]
        s.images.extend(new)
        if s.lead_image_public_uuid is None and s.images:
            s.lead_image_public_uuid = s.images[0]
        s.updated_at = ctx.eng.clock()
        return {
            "message": f"Added {len(new)} image(s) to '{s.name}'.",
            "added": len(new),
            "already_in_set": len(uuids) - len(new),
        }

    return Plan(apply, uuids, s.public_uuid, touched=len(uuids))


def prepare_remove_members(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuids"})
    uuids = _uuid_list(ctx, f)
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    need_images(ctx, uuids, f.f("image_public_uuids"))
    store = ctx.eng.store

    def apply() -> dict[str, Any]:
        _live(store, s)
        take_snapshot(ctx, s, "membership")
        gone = set(uuids) & set(s.images)
        s.images = [u for u in s.images if u not in gone]
        for u in gone:
            s.hidden.pop(u, None)
        if s.lead_image_public_uuid in gone:
            s.lead_image_public_uuid = s.images[0] if s.images else None
        s.updated_at = ctx.eng.clock()
        return {
            "message": f"Removed {len(gone)} image(s) from '{s.name}'.",
            "removed": len(gone),
            "not_in_set": len(uuids) - len(gone),
        }

    return Plan(apply, uuids, s.public_uuid, touched=len(uuids))


def _permutation(field: str, given: list[str], current: list[str], what: str) -> None:
    if len(given) != len(set(given)):
        raise validation(field, f"{field.rsplit('.', 1)[-1]} lists a {what} twice")
    missing = [u for u in current if u not in set(given)]
    extra = [u for u in given if u not in set(current)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} not in it (e.g. {extra[0]})")
        raise validation(field, f"must list every {what} of the set exactly once: {'; '.join(parts)}")


def prepare_order(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuids"})
    raw = f.str_list("image_public_uuids", required=True, min_items=0, max_items=100_000)
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    _permutation(f.f("image_public_uuids"), raw, s.images, "image")
    store = ctx.eng.store

    def apply() -> dict[str, Any]:
        _live(store, s)
        _permutation(f.f("image_public_uuids"), raw, s.images, "image")
        take_snapshot(ctx, s, "order")
        s.images = list(raw)
        s.updated_at = ctx.eng.clock()
        return {"message": f"Ordered {len(raw)} image(s) in '{s.name}'."}

    return Plan(apply, list(raw), s.public_uuid, touched=len(raw))


def prepare_reorder(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"parent_public_uuid", "set_public_uuids"})
    parent = f.string("parent_public_uuid", min_len=1, nullable=True)
    parent = None if parent is MISSING else parent
    raw = f.str_list("set_public_uuids", required=True, min_items=1, max_items=10_000)
    store = ctx.eng.store
    if parent is not None:
        need_set(ctx.eng, parent, f.f("parent_public_uuid"))
    for i, sid in enumerate(raw):
        if sid not in store.sets:
            raise ApiError(
                "set_not_found",
                "No set has that public_uuid.",
                detail=f"set {sid} does not exist",
                field=f.f(f"set_public_uuids[{i}]"),
            )
    _permutation(f.f("set_public_uuids"), raw, store.children.get(parent, []), "child set")

    def apply() -> dict[str, Any]:
        _permutation(f.f("set_public_uuids"), raw, store.children.get(parent, []), "child set")
        if parent is not None:
            take_snapshot(ctx, store.sets[parent], "reorder")
        store.children[parent] = list(raw)
        return {"message": f"Reordered {len(raw)} set(s)."}

    return Plan(apply, [], parent)


def prepare_visibility(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuids", "hidden", "activation_time"})
    uuids = _uuid_list(ctx, f, 10_000)
    hidden = f.boolean("hidden", required=True)
    at_raw = f.string("activation_time", min_len=1, nullable=True)
    at: float | None = None
    if isinstance(at_raw, str):
        if not hidden:
            raise validation(
                f.f("activation_time"), "activation_time only goes with hidden: true (an embargo)"
            )
        at = parse_when(at_raw, f.f("activation_time"))
        if at <= ctx.now:
            raise validation(
                f.f("activation_time"),
                "activation_time must be in the future; send hidden:false to publish now",
            )
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    need_images(ctx, uuids, f.f("image_public_uuids"))
    outside = [u for u in uuids if u not in s.images]
    if outside:
        raise validation(
            f.f("image_public_uuids"), f"{len(outside)} image(s) are not in this set (e.g. {outside[0]})"
        )
    store = ctx.eng.store

    def apply() -> dict[str, Any]:
        _live(store, s)
        take_snapshot(ctx, s, "visibility")
        for u in uuids:
            if u not in s.images:
                continue
            if hidden:
                s.hidden[u] = at
            else:
                s.hidden.pop(u, None)
        s.updated_at = ctx.eng.clock()
        what = "visible now" if not hidden else (f"embargoed until {iso(at)}" if at else "hidden")
        return {"message": f"{len(uuids)} image(s) {what}.", "hidden": hidden, "activation_time": iso(at)}

    return Plan(apply, uuids, s.public_uuid, touched=len(uuids))


def prepare_restore(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"snapshot_uuid"})
    snap_id = f.string("snapshot_uuid", required=True, min_len=1, max_len=100)
    s = need_set(ctx.eng, ctx.params["public_uuid"], path_field(ctx))
    store = ctx.eng.store
    sn = store.snapshots.get(snap_id)
    if sn is None or sn.set_public_uuid != s.public_uuid:
        raise ApiError(
            "snapshot_not_found",
            "This set has no snapshot with that uuid.",
            detail=f"snapshot {snap_id} is not a snapshot of set {s.public_uuid}",
            field=f.f("snapshot_uuid"),
        )

    def apply() -> dict[str, Any]:
        _live(store, s)
        take_snapshot(ctx, s, "restore")
        s.images = [u for u in sn.images if u in store.images]
        s.hidden = {u: at for u, at in sn.hidden.items() if u in s.images}
        kids = store.children.get(s.public_uuid, [])
        restored = [c for c in sn.child_order if c in kids]
        store.children[s.public_uuid] = restored + [c for c in kids if c not in restored]
        if s.lead_image_public_uuid not in s.images:
            s.lead_image_public_uuid = s.images[0] if s.images else None
        s.updated_at = ctx.eng.clock()
        return {
            "message": f"Restored '{s.name}' to the snapshot of {iso(sn.created_at)}.",
            "snapshot_uuid": sn.uuid,
            "image_count": len(s.images),
        }

    return Plan(apply, list(sn.images), s.public_uuid, touched=len(sn.images))


S = "/v1/sets/{public_uuid}"
WRITES = [
    WriteRoute("POST", "/v1/sets", WRITE, "set_create", prepare_create),
    WriteRoute("PATCH", "/v1/sets/reorder", WRITE, "set_reorder", prepare_reorder),
    WriteRoute("PATCH", S, WRITE, "set_update", prepare_update),
    WriteRoute("POST", S + "/images", WRITE, "set_membership", prepare_add_members),
    WriteRoute("DELETE", S + "/images", WRITE, "set_membership", prepare_remove_members),
    WriteRoute("PATCH", S + "/order", WRITE, "set_order", prepare_order),
    WriteRoute("PATCH", S + "/visibility", WRITE, "set_visibility", prepare_visibility),
    WriteRoute("POST", S + "/restore", WRITE, "set_restore", prepare_restore),
]

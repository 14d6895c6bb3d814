"""JSON shapes of the records (Image, Set, Snapshot, Archive, Operation)."""

from __future__ import annotations

from typing import Any

from .images_png import served_size
from .store import ArchiveRec, ImageRec, OperationRec, SetRec, SnapshotRec, Store, iso

VERSION_NAMES = ["original", "large", "medium", "thumbnail"]


def oriented(im: ImageRec) -> tuple[int, int]:
    """Derived versions follow the rotation; the original keeps the camera's dimensions."""
    return (im.height, im.width) if im.rotation in (90, 270) else (im.width, im.height)


def versions(im: ImageRec, base: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "original",
            "width": im.width,
            "height": im.height,
            "url": None,
            "access": "private",
            "content_type": im.upload_mime or "image/jpeg",
        }
    ]
    w, h = oriented(im)
    for name in VERSION_NAMES[1:]:
        sw, sh = served_size(w, h, name)
        out.append(
            {
                "name": name,
                "width": sw,
                "height": sh,
                "url": f"{base}/media/{im.public_uuid}/{name}.jpg",
                "access": "public",
                "content_type": "image/jpeg",
            }
        )
    return out


def image_json(store: Store, im: ImageRec, base: str) -> dict[str, Any]:
    return {
        "public_uuid": im.public_uuid,
        "filename": im.filename,
        "title": im.title,
        "description": im.description,
        "alt_text": im.alt_text,
        "creation_date": im.creation_date,
        "created_at": iso(im.created_at),
        "updated_at": iso(im.updated_at),
        "rating": im.rating,
        "rotation": im.rotation,
        "width": im.width,
        "height": im.height,
        "keywords": [{"namespace": ns, "value": v} for ns, v in im.keywords],
        "metadata": dict(im.metadata),
        "metadata_profile_uuid": im.metadata_profile_uuid,
        "transaction_uuid": im.transaction_uuid,
        "exif": dict(im.exif),
        "geo": dict(im.geo) if im.geo else None,
        "has_video": im.has_video,
        "credits": [dict(c) for c in im.credits],
        "crops": [dict(c) for c in im.crops],
        "set_public_uuids": store.set_ids_of_image(im.public_uuid),
        "versions": versions(im, base),
    }


def is_hidden(s: SetRec, image_uuid: str, now: float) -> tuple[bool, float | None]:
    """Embargoes release lazily: once activation_time has passed the image is visible."""
    if image_uuid not in s.hidden:
        return False, None
    at = s.hidden[image_uuid]
    if at is not None and at <= now:
        return False, None
    return True, at


def set_json(store: Store, s: SetRec, now: float) -> dict[str, Any]:
    hidden = sum(1 for u in s.images if is_hidden(s, u, now)[0])
    return {
        "public_uuid": s.public_uuid,
        "name": s.name,
        "description": s.description,
        "colour": s.colour,
        "type": s.type,
        "parent_public_uuid": s.parent_public_uuid,
        "lead_image_public_uuid": s.lead_image_public_uuid,
        "image_count": len(s.images),
        "hidden_count": hidden,
        "child_count": len(store.children.get(s.public_uuid, [])),
        "website": dict(s.website) if s.website else None,
        "position": store.position(s),
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    }


def tree_json(store: Store, parent: str | None, now: float) -> list[dict[str, Any]]:
    out = []
    for sid in store.children.get(parent, []):
        node = set_json(store, store.sets[sid], now)
        node["children"] = tree_json(store, sid, now)
        out.append(node)
    return out


def snapshot_json(sn: SnapshotRec) -> dict[str, Any]:
    return {
        "uuid": sn.uuid,
        "set_public_uuid": sn.set_public_uuid,
        "created_at": iso(sn.created_at),
        "reason": sn.reason,
        "image_public_uuids": list(sn.images),
        "hidden": [{"image_public_uuid": u, "activation_time": iso(at)} for u, at in sn.hidden.items()],
        "child_set_public_uuids": list(sn.child_order),
    }


def archive_json(a: ArchiveRec, url: str | None) -> dict[str, Any]:
    return {
        "archive_uuid": a.uuid,
        "uuid": a.uuid,
        "filename": a.filename,
        "url": url,
        "size_bytes": a.size_bytes,
        "image_count": len(a.image_uuids),
        "version": a.version,
        "expires_at": int(a.expires_at) if a.expires_at is not None else None,
        "created_at": iso(a.created_at),
        "status": a.status,
    }


def operation_status(store: Store, op: OperationRec, now: float) -> str:
    if op.children:
        if now < op.finish_at or any(
            operation_status(store, store.operations[c], now) == "running" for c in op.children
        ):
            return "running"
    elif now < op.finish_at:
        return "running"
    return op.final_status

"""The sandbox's in-memory gallery: plain records, id generation and a stable digest."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

KeywordT = tuple[str | None, str]  # (namespace, value)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kw_full(kw: KeywordT) -> str:
    return f"{kw[0]}:{kw[1]}" if kw[0] else kw[1]


def kw_key(kw: KeywordT) -> tuple[str, str]:
    """Keywords compare case-insensitively: 'Crowd' and 'crowd' are one keyword."""
    return ((kw[0] or "").lower(), kw[1].lower())


@dataclass
class ImageRec:
    public_uuid: str
    filename: str
    title: str
    description: str
    created_at: float
    updated_at: float
    width: int
    height: int
    creation_date: str | None = None
    alt_text: str = ""
    rating: int = 0
    rotation: int = 0
    keywords: list[KeywordT] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    exif: dict[str, Any] = field(default_factory=dict)
    geo: dict[str, float] | None = None
    has_video: bool = False
    credits: list[dict[str, str]] = field(default_factory=list)
    crops: list[dict[str, Any]] = field(default_factory=list)
    embedded: dict[str, Any] = field(default_factory=dict)  # what extract_metadata copies
    metadata_profile_uuid: str | None = None
    upload: bytes | None = None  # original bytes of an uploaded file
    upload_mime: str | None = None
    transaction_uuid: str | None = None  # the upload transaction that made it (uploaded images only)
    look: str = ""  # near-duplicate shots share a look: their versions show one scene, slightly moved


@dataclass
class SetRec:
    public_uuid: str
    name: str
    description: str
    colour: str
    type: str
    parent_public_uuid: str | None
    created_at: float
    updated_at: float
    lead_image_public_uuid: str | None = None
    website: dict[str, str] | None = None
    images: list[str] = field(default_factory=list)  # gallery order
    hidden: dict[str, float | None] = field(
        default_factory=dict
    )  # image -> activation epoch (None: indefinitely)


@dataclass
class SnapshotRec:
    uuid: str
    set_public_uuid: str
    created_at: float
    reason: str
    images: list[str]
    hidden: dict[str, float | None]
    child_order: list[str]


@dataclass
class ArchiveRec:
    uuid: str
    token_id: str
    filename: str
    version: str
    image_uuids: list[str]
    created_at: float
    operation_uuid: str
    status: str = "building"  # building -> ready | failed
    ready_at: float | None = None
    expires_at: float | None = None
    size_bytes: int = 0
    zip_bytes: bytes = b""  # freed once the archive expires (its link is dead by then)
    zip_sha256: str = ""


@dataclass
class OperationRec:
    uuid: str
    type: str
    token_id: str
    image_public_uuids: list[str]
    set_public_uuid: str | None
    created_at: float
    finish_at: float
    final_status: str = "succeeded"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    children: list[str] = field(default_factory=list)
    archive_uuid: str | None = None


@dataclass
class IdemRecord:
    fingerprint: str
    created_at: float
    status: int
    operation_uuid: str | None
    body: Any
    headers: dict[str, str]


@dataclass
class Store:
    """The gallery. Writes go through the engine, which calls `changed()` after each one: the search index and
    the image-to-sets map are kept current from that. Code that edits records directly (a test) calls
    `changed([uuid, ...])` too."""

    seed: int
    images: dict[str, ImageRec] = field(default_factory=dict)
    sets: dict[str, SetRec] = field(default_factory=dict)
    # Child order of every set level; key None = the top level.
    children: dict[str | None, list[str]] = field(default_factory=dict)
    snapshots: dict[str, SnapshotRec] = field(default_factory=dict)
    archives: dict[str, ArchiveRec] = field(default_factory=dict)
    operations: dict[str, OperationRec] = field(default_factory=dict)
    metadata_profiles: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[tuple[str, str], IdemRecord] = field(default_factory=dict)
    apply_counts: dict[str, int] = field(default_factory=dict)
    used_tickets: set[str] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)
    # Derived data, not part of the gallery: bumped/filled by changed(), read by search and views.
    generation: int = 0
    touched: set[str] = field(default_factory=set)  # images changed since the search index last looked
    search_index: Any = field(default=None, repr=False, compare=False)  # search.Index, built on first use
    _sets_of: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)
    _sets_of_generation: int = -1

    def __post_init__(self) -> None:
        self.rng = random.Random(f"dpg-sandbox-ids:{self.seed}")

    def changed(self, image_uuids: Iterable[str] = ()) -> None:
        """Something was written: these images (maybe none; maybe new or deleted ones) need re-indexing."""
        self.generation += 1
        self.touched.update(image_uuids)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # --- set helpers -------------------------------------------------------------
    def set_ids_of_image(self, image_uuid: str) -> list[str]:
        # One pass over every set per write, not per image shown: a page stays O(limit) in a big gallery.
        if self._sets_of is None or self._sets_of_generation != self.generation:
            sets_of: dict[str, list[str]] = {}
            for s in self.sets_in_tree_order():
                for u in dict.fromkeys(s.images):
                    sets_of.setdefault(u, []).append(s.public_uuid)
            self._sets_of, self._sets_of_generation = sets_of, self.generation
        return list(self._sets_of.get(image_uuid, ()))

    def sets_in_tree_order(self) -> list[SetRec]:
        out: list[SetRec] = []

        def walk(parent: str | None) -> None:
            for sid in self.children.get(parent, []):
                out.append(self.sets[sid])
                walk(sid)

        walk(None)
        return out

    def descendants(self, set_uuid: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.children.get(set_uuid, []))
        while stack:
            sid = stack.pop()
            out.add(sid)
            stack.extend(self.children.get(sid, []))
        return out

    def position(self, s: SetRec) -> int:
        return self.children.get(s.parent_public_uuid, []).index(s.public_uuid)

    # --- digest ------------------------------------------------------------------
    def digest(self) -> str:
        """A stable hash of everything a write could change (not auth/rate-limit bookkeeping)."""

        def image_doc(im: ImageRec) -> dict[str, Any]:
            d = asdict(im)
            d["upload"] = hashlib.sha256(im.upload).hexdigest() if im.upload is not None else None
            return d

        def archive_doc(a: ArchiveRec) -> dict[str, Any]:
            d = asdict(a)
            d["zip_bytes"] = a.zip_sha256  # stays stable when an expired archive's bytes are freed
            return d

        doc = {
            "images": [image_doc(self.images[k]) for k in sorted(self.images)],
            "sets": [asdict(self.sets[k]) for k in sorted(self.sets)],
            "children": {str(k): v for k, v in sorted(self.children.items(), key=lambda kv: str(kv[0]))},
            "snapshots": [asdict(self.snapshots[k]) for k in sorted(self.snapshots)],
            "archives": [archive_doc(self.archives[k]) for k in sorted(self.archives)],
            "operations": [
                [o.uuid, o.type, o.image_public_uuids, o.set_public_uuid] for o in self.operations.values()
            ],
            "used_tickets": sorted(self.used_tickets),
        }
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

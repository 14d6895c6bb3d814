"""Output shapes shared by several tools. Small and flat: every byte of a schema is paid on every turn."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dpg_mcp.dpg.models import Image
from dpg_mcp.tools.base import Out
from dpg_mcp.tools.render import clip, keywords_of, stamp, thumbnail_url

RUNNING_NEXT = "call check_operation with this id"


class ImageItem(Out):
    """One image in a list: what an agent needs to decide; detail stays behind get_image."""

    uuid: str
    title: str | None = None
    filename: str | None = None
    rating: int | None = None
    date: str | None = None
    keywords: list[str] = Field(default_factory=list)
    thumbnail_url: str | None = None
    hidden: bool | None = None  # true: not public (in its set, or in a set it belongs to)
    activation_time: str | None = None  # hidden until then (an embargo); absent: hidden with no release

    @classmethod
    def of(cls, img: Image) -> ImageItem:
        return cls(
            uuid=img.public_uuid,
            title=clip(img.title, 300),
            filename=img.filename,
            rating=img.rating,
            date=stamp(img.creation_date),
            keywords=[clip(k, 120) or "" for k in keywords_of(img)][:60],
            thumbnail_url=thumbnail_url(img),
        )


class Failure(Out):
    image_uuid: str | None = None
    code: str
    detail: str | None = None
    field: str | None = None
    request_id: str | None = None


class WriteResult(Out):
    """A write's outcome. state: succeeded, partial, failed, running (see `next`) or cancelled.

    `failures` holds Failure dumps (plain objects keep every write tool's output schema small).
    `message` says what changed: its words come from the write ledger's state and DPG's answer (see
    tools/writes.py), e.g. "created earlier" only when DPG replayed the same call.
    """

    state: str
    message: str
    succeeded: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = Field(default_factory=list)
    operation_id: str | None = None
    next: str | None = None


def dump_failures(failures: list[Failure]) -> list[dict[str, Any]]:
    return [f.model_dump(exclude_none=True) for f in failures]


def visibility_lines(images: list[ImageItem]) -> list[str]:
    """Our own words on which listed photos are not public: hidden with no release time, or embargoed."""
    hidden = [i.uuid for i in images if i.hidden and not i.activation_time]
    embargoed = [f"{i.uuid} until {i.activation_time}" for i in images if i.hidden and i.activation_time]
    lines = []
    if hidden:
        lines.append(f"Hidden (no release time): {len(hidden)}: {', '.join(hidden)}.")
    if embargoed:
        lines.append(f"Embargoed: {len(embargoed)}: {', '.join(embargoed)}.")
    return lines

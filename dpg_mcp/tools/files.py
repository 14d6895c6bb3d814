"""Files: upload, download links, ZIP archives. Originals and ZIPs are links with an expiry, never base64."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import anyio
from pydantic import Field, ValidationError, model_validator

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Archive, DownloadLink, UploadTicket
from dpg_mcp.dpg.operations import Held, WriteOutcome
from dpg_mcp.ledger import Kind, Mode, State, request_digest
from dpg_mcp.ledger.rules import new_key
from dpg_mcp.tools.base import Args, Out, ToolContext, ToolResult
from dpg_mcp.tools.errors import ToolInputError
from dpg_mcp.tools.inputs import Id, ImageIds500, IsoDate, Keyword
from dpg_mcp.tools.localfiles import image_type, read_image_file
from dpg_mcp.tools.render import LIST_BUDGET, cap_items, clip, fence, one_line, plural, size_of, stamp
from dpg_mcp.tools.shapes import ImageItem, WriteResult
from dpg_mcp.tools.visibility import mark_hidden
from dpg_mcp.tools.writes import (
    JOINED,
    WriteItem,
    create_one,
    fingerprint,
    run_write,
    write_text,
)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
VERSIONS = "original, large, medium or thumbnail"

# ------------------------------------------------------------------------------------------- upload_image


class UploadImageArgs(Args):
    file_path: str | None = Field(None, max_length=4096, description="Local file on the server's machine")
    content_base64: str | None = Field(
        None, max_length=MAX_UPLOAD_BYTES * 4 // 3 + 8, description="Or the file as base64"
    )
    # Self-explaining beside the tool's description ("… or an https URL"): no description, no maxLength
    # published (bytes on every turn); the request body cap bounds it and the fetch refuses anything odd.
    url: str | None = None
    filename: str | None = Field(None, min_length=1, max_length=255, description="Needed with content_base64")
    title: str | None = Field(None, max_length=191)
    description: str | None = Field(None, max_length=5000)
    keywords: list[Keyword] = Field(default_factory=list, max_length=200)
    creation_date: IsoDate | None = Field(None, description="When taken, ISO 8601")
    set_uuid: Id | None = Field(None, description="Also put it in this set")
    read_metadata: bool | None = Field(None, description="Use the file's embedded caption, keywords, date")

    @model_validator(mode="after")
    def _check(self) -> UploadImageArgs:
        given = [self.file_path, self.content_base64, self.url]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of file_path, content_base64 or url")
        if self.content_base64 is not None and not self.filename:
            raise ValueError("filename is needed with content_base64")
        return self


class UploadResult(Out):
    message: str
    image: ImageItem | None = None


def _content_type(data: bytes) -> str:
    mime = image_type(data)
    if mime is None:
        raise ToolInputError("the file is not a PNG, JPEG, GIF or WebP image")
    return mime


HOSTED_NO_FILES = (
    "file_path cannot be used: this dpg-mcp is hosted and never reads files on its own machine. "
    "Send the file as content_base64 (with filename), or as an https url."
)


async def _read_source(ctx: ToolContext, args: UploadImageArgs) -> tuple[str, bytes]:
    """(filename, bytes), checked locally before anything is sent. A file_path is read only on stdio, and
    only under the allowed roots (tools.localfiles); a url only where the server offers a guarded fetch."""
    policy = ctx.uploads
    limit = min(policy.max_bytes, MAX_UPLOAD_BYTES)
    if args.url is not None:
        if policy.fetch_url is None:
            raise ToolInputError("url uploads are not available on this server; send content_base64")
        data, _ = await policy.fetch_url(args.url, limit)
        name = args.filename or PurePosixPath(urlsplit(args.url).path).name or "upload"
        return name, data
    if args.file_path is not None:
        if not policy.local_files:
            raise ToolInputError(HOSTED_NO_FILES)
        roots = await ctx.upload_roots() if ctx.upload_roots is not None else []
        # In a worker thread: reading up to 50 MB must not stall the other calls of this server.
        name, data, _ = await anyio.to_thread.run_sync(read_image_file, args.file_path, roots, limit)
        return args.filename or name, data
    raw = args.content_base64 or ""
    if len(raw) > limit * 4 // 3 + 8:
        raise ToolInputError(f"content_base64 is over the {limit / 2**20:g} MB limit")
    try:
        data = base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ToolInputError("content_base64 is not valid base64") from None
    if not data:
        raise ToolInputError("content_base64 is empty")
    if len(data) > limit:
        raise ToolInputError(f"content_base64 is over the {limit / 2**20:g} MB limit")
    return args.filename or "upload", data


async def upload_image(ctx: ToolContext, args: UploadImageArgs) -> ToolResult:
    filename, data = await _read_source(ctx, args)
    content_type = _content_type(data)
    body: dict[str, Any] = {"filename": filename}
    fields = {
        "title": args.title,
        "description": args.description,
        "creation_date": args.creation_date,
        "set_public_uuid": args.set_uuid,
        "read_metadata": args.read_metadata,
    }
    body |= {k: v for k, v in fields.items() if v is not None}
    if args.keywords:
        body["keywords"] = list(dict.fromkeys(args.keywords))
    # The file's hash stands in for its bytes in the action: same file + same details = same upload.
    fp = fingerprint("upload_image", {**body, "sha256": hashlib.sha256(data).hexdigest()})
    upload = _Upload(ctx, body, filename, data, content_type)

    async def go(held: Held) -> tuple[str, str]:
        if held.joined:
            entry = held.joined_entry
            if entry is not None and entry.made:
                return entry.made, "joined"
            raise DPGError(
                409,
                "upload_in_progress",
                "an identical upload is still running, or ended without a final word",
                detail="call upload_image again with the same arguments in a minute: it finds the image "
                "that upload made, or uploads the file once",
            )
        return await upload.run(held)

    image_id, how = await ctx.runner.within(
        ctx.principal,
        fp,
        go,
        kind=Kind.CREATE,
        tool="upload_image",
        request=request_digest("POST", "/v1/uploads", body),
        usable=lambda e: bool(e.made),
    )
    await _progress(ctx, 2, "reading the new image back")
    item = ImageItem.of(await ctx.client.get_image(image_id))
    said = {
        "now": "Image uploaded",
        "earlier": "Image uploaded earlier by the identical call, and still there; the file was not sent "
        "again (nothing uploaded twice)",
        "joined": f"Image uploaded once, by the identical call that was already running ({JOINED})",
    }[how]
    out = UploadResult(message=f"{said}: {image_id}.", image=item)
    text = (
        out.message
        + "\n"
        + fence(
            f"filename: {one_line(item.filename)}\ntitle: {one_line(item.title)}\n"
            f"keywords: {one_line(', '.join(item.keywords))}"
        )
    )
    return ToolResult(out, text)


# How long before its ticket a transaction's image may carry as created_at (clock skew between hosts).
_TX_SLACK_S = 300.0
_FILE_ATTEMPTS = 5


class _Upload:
    """One upload in the ledger: ticket (POST /v1/uploads under the action's key), then the file, once.

    The ledger records the ticket's transaction_uuid before the file is sent, and the image once known.
    Before a file is sent again, the transaction is looked up: a transaction that already made an image is
    never sent twice, even after its ticket expired.
    """

    def __init__(self, ctx: ToolContext, body: dict[str, Any], name: str, data: bytes, mime: str) -> None:
        self.ctx, self.body, self.name, self.data, self.mime = ctx, body, name, data, mime
        self.asked_at = ctx.runner._wall()  # no image of this upload can be older than this
        self.gone = False  # an image this upload made was looked up and is gone (deleted)

    async def run(self, held: Held) -> tuple[str, str]:
        prev = held.previous
        if held.claim.mode is Mode.REUSE and prev is not None:
            # An earlier run of this upload may have made the image: look before sending anything.
            found, _ = await self._made_by(prev.made, prev.tx, prev.key_at)
            if found:
                await held.settle(State.DONE, made=found)
                return found, "earlier"
        key = held.key
        for _ in range(2):
            ticket, tx = await self._ticket(held, key)
            try:
                image_id = await self._send_file(ticket)
            except DPGError as err:
                if err.code not in ("ticket_used", "ticket_expired"):
                    raise
                # The ticket came back replayed (same key) from a run whose file POST may have landed.
                since = min(prev.key_at, self.asked_at) if prev is not None else self.asked_at
                found, traceable = await self._made_by(None, tx, since)
                if found:
                    await held.settle(State.DONE, made=found)
                    return found, "earlier" if tx == (prev.tx if prev else "") else "now"
                if err.code == "ticket_used" and not (traceable or self.gone):
                    raise DPGError(
                        409,
                        "ticket_used",
                        "the processor says this upload's ticket was already used, and DPG does not say "
                        "which image it made",
                        detail=f"find it with search_images (filename {self.name!r}) before uploading again",
                    ) from err
                # Expired and it made no image, or the image it made is gone: a new ticket under a new key,
                # which the ledger follows from now on.
                key = new_key()
                await held.note(key=key)
                continue
            await held.settle(State.DONE, made=image_id)
            return image_id, "now"
        raise DPGError(502, "ticket_expired", "DPG handed out an expired upload ticket twice")

    async def _ticket(self, held: Held, key: str) -> tuple[UploadTicket, str]:
        ctx = self.ctx
        await _progress(ctx, 0, "asking DPG for an upload ticket")
        start = ctx.runner._clock()
        outcome = await ctx.runner.send(
            "POST",
            "/v1/uploads",
            self.body,
            held,
            start=start,
            deadline=start + ctx.runner.budget_s,
            progress=None,
            key=key,
        )
        try:
            ticket = UploadTicket.model_validate(outcome.body)
        except ValidationError:
            raise DPGError(
                502, "invalid_response", "DPG answered the upload request without a ticket"
            ) from None
        tx = ticket.transaction_uuid or ""
        if tx:
            await held.note(tx=tx)
        return ticket, tx

    async def _send_file(self, ticket: UploadTicket) -> str:
        """POST the file with this ticket; a lost reply is sent again with the SAME ticket (single-use: the
        processor then answers ticket_used, never a second image)."""
        ctx = self.ctx
        await _progress(ctx, 1, f"uploading {len(self.data) // 1024 or 1} KB")
        for attempt in range(1, _FILE_ATTEMPTS + 1):
            try:
                reply = await ctx.client.upload_file(ticket, self.name, self.data, self.mime)
                break
            except DPGError as err:
                if not err.retryable or attempt == _FILE_ATTEMPTS:
                    raise
                await anyio.sleep(min(err.retry_after or 0.2 * attempt, 5.0))
        new_id = str(reply.get("image_public_uuid") or "")
        if not new_id:
            raise DPGError(502, "invalid_response", "the image processor did not return the new image id")
        return new_id

    async def _made_by(self, made: str | None, tx: str | None, since: float) -> tuple[str | None, bool]:
        """The image an earlier run made (the one recorded, or the one its transaction produced), if it
        still exists; and whether DPG shows images' transactions at all (if not, "not found" proves nothing).
        """
        client = self.ctx.client
        if made:
            try:
                await client.get_image(made)
                return made, True
            except DPGError as err:
                if err.status != 404:
                    raise
                self.gone = True
        if not tx:
            return None, bool(made)
        stamp_from = datetime.fromtimestamp(since - _TX_SLACK_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        offset, traceable = 0, bool(made)
        for _ in range(10):  # at most 2,000 recent uploads looked at
            page = await client.list_images(limit=200, offset=offset, created_at_from=stamp_from)
            for img in page.items:
                extra = img.model_extra or {}
                traceable = traceable or "transaction_uuid" in extra
                if extra.get("transaction_uuid") == tx:
                    return img.public_uuid, True
            if not page.has_more or page.next_offset is None:
                break
            offset = page.next_offset
        return None, traceable


async def _progress(ctx: ToolContext, step: int, message: str) -> None:
    if ctx.progress is not None:
        await ctx.progress(float(step), 3.0, message)


# ------------------------------------------------------------------------------------------- download links


class ArchiveItem(Out):
    uuid: str | None = None
    filename: str | None = None
    url: str | None = None
    size_bytes: int | None = None
    image_count: int | None = None
    expires_at: str | None = None

    @classmethod
    def of(cls, a: Archive) -> ArchiveItem:
        return cls(
            uuid=a.archive_uuid or a.uuid,
            filename=clip(a.filename, 200),
            url=a.url,
            size_bytes=a.size_bytes,
            image_count=a.image_count,
            expires_at=stamp(a.expires_at),
        )


class GetDownloadLinkArgs(Args):
    image_uuid: Id | None = None
    version: str = Field("original", description=VERSIONS)
    list_archives: bool = Field(False, description="Also list ready ZIP archives")

    @model_validator(mode="after")
    def _check(self) -> GetDownloadLinkArgs:
        if not self.image_uuid and not self.list_archives:
            raise ValueError("give image_uuid, or list_archives=true")
        return self


class DownloadResult(Out):
    url: str | None = None
    filename: str | None = None
    access: str | None = None
    expires_at: str | None = None
    archives: list[ArchiveItem] = Field(default_factory=list)


async def get_download_link(ctx: ToolContext, args: GetDownloadLinkArgs) -> ToolResult:
    out = DownloadResult()
    text: list[str] = []
    if args.image_uuid:
        body = {"image_public_uuid": args.image_uuid, "version": args.version}
        outcome = await run_write(ctx, "get_download_link", args, "POST", "/v1/downloads", body)
        raw = outcome.body
        if outcome.operation is not None and isinstance(outcome.operation.result, dict):
            raw = outcome.operation.result  # tolerated: a link delivered as an Operation result
        try:
            link = DownloadLink.model_validate(raw)
        except ValidationError:
            raise DPGError(
                502, "invalid_response", "DPG answered the download request without a link"
            ) from None
        out.url, out.filename, out.access, out.expires_at = (
            link.url,
            link.filename,
            link.access,
            stamp(link.expires_at),
        )
        text.append(
            f"Download link ({args.version}, {link.access or 'access unknown'}), expires {out.expires_at}:"
        )
        text.append(link.url)
        if link.filename:
            text.append(fence(f"filename: {one_line(link.filename)}"))
    if args.list_archives:
        page = await ctx.client.archives(limit=100)
        ready = [ArchiveItem.of(a) for a in page.items if (a.status or "ready") == "ready"]
        out.archives, left_out = cap_items(ready, LIST_BUDGET, _archive_cost)
        more = " (more exist, not listed)" if left_out or page.has_more else ""
        text.append(f"{plural(len(out.archives), 'ready archive')}{more}:")
        text += [_archive_line(a) for a in out.archives]
        if out.archives:
            text.append(fence("\n".join(f"{a.uuid}: {one_line(a.filename)}" for a in out.archives)))
    return ToolResult(out, "\n".join(text))


def _archive_line(a: ArchiveItem) -> str:
    count = plural(a.image_count or 0, "image")
    return f"- {a.uuid} | {count} | {a.size_bytes} bytes | expires {a.expires_at} | {a.url}"


def _archive_cost(a: ArchiveItem) -> int:
    return size_of(a) + len(_archive_line(a)) + len(a.filename or "") + 40


# ------------------------------------------------------------------------------------------- build_archive


class BuildArchiveArgs(Args):
    image_uuids: ImageIds500
    filename: str | None = Field(None, min_length=1, max_length=100, description="e.g. friday-selects")
    version: str | None = Field(None, description="large (default), original, medium or thumbnail")


class ArchiveResult(WriteResult):
    archive: ArchiveItem | None = None
    not_public: list[str] = Field(default_factory=list)  # zipped photos hidden or embargoed in a set


async def build_archive(ctx: ToolContext, args: BuildArchiveArgs) -> ToolResult:
    body: dict[str, Any] = {"image_public_uuids": args.image_uuids}
    if args.filename:
        body["filename"] = args.filename
    if args.version:
        body["version"] = args.version
    item = WriteItem("POST", "/v1/archives", body, tuple(args.image_uuids))
    done = f"ZIP of {plural(len(args.image_uuids), 'image')}"

    async def exists(archive_uuid: str) -> bool:
        page = await ctx.client.archives(limit=100)
        return any((a.archive_uuid or a.uuid) == archive_uuid for a in page.items)

    result, outcome = await create_one(
        ctx, "build_archive", args, item, lambda _n: done, made_of=_archive_id, exists=exists
    )
    out = ArchiveResult(**result.model_dump())
    if outcome.state == "running":
        return ToolResult(out, write_text(out))
    out.message = f"{done} ready" + out.message[len(done) :]
    res = outcome.operation.result if outcome.operation else None
    if isinstance(res, dict):
        out.archive = ArchiveItem.of(Archive.model_validate(res.get("archive", res)))
    if out.archive is None or not out.archive.url:
        # DPG's recommended flow: the share link is listed by GET /v1/archives once the build succeeded.
        listed = await _listed_archive(ctx, out.archive.uuid if out.archive else None)
        if listed is not None:
            out.archive = listed
        elif out.archive is None or not out.archive.url:
            out.message += " DPG gave no link yet: get_download_link with list_archives=true lists it."
    out.not_public = await _not_public(ctx, args.image_uuids)
    text = write_text(out)
    if out.archive and out.archive.url:
        a = out.archive
        count = plural(a.image_count or 0, "image")
        text += f"\nLink (expires {a.expires_at}; {a.size_bytes} bytes, {count}): {a.url}"
    if out.not_public:
        text += (
            f"\nNot public in a set ({len(out.not_public)}), zipped all the same: "
            + "; ".join(out.not_public[:30])
            + "."
        )
    return ToolResult(out, text)


async def _listed_archive(ctx: ToolContext, uuid: str | None) -> ArchiveItem | None:
    """The ready archive this build made, from GET /v1/archives: by uuid, else the newest one."""
    page = await ctx.client.archives(limit=100)
    ready = [a for a in page.items if (a.status or "ready") == "ready" and a.url]
    if not ready:
        return None
    if uuid:
        match = next((a for a in ready if uuid in (a.archive_uuid, a.uuid)), None)
        return ArchiveItem.of(match) if match else None
    return ArchiveItem.of(ready[0])  # DPG lists the newest first


async def _not_public(ctx: ToolContext, image_uuids: list[str]) -> list[str]:
    """The zipped photos hidden or embargoed in a set they belong to: "id hidden" / "id embargoed until T"."""
    images = []
    for uuid in image_uuids[:100]:  # bounded: one read per photo
        with contextlib.suppress(DPGError):
            images.append(await ctx.client.get_image(uuid))
    items = [ImageItem.of(i) for i in images]
    await mark_hidden(ctx, images, items)
    return [
        f"{i.uuid} embargoed until {i.activation_time}" if i.activation_time else f"{i.uuid} hidden"
        for i in items
        if i.hidden
    ]


def _archive_id(outcome: WriteOutcome) -> str | None:
    res = outcome.operation.result if outcome.operation else None
    if not isinstance(res, dict):
        return None
    archive = Archive.model_validate(res.get("archive", res))
    return archive.archive_uuid or archive.uuid

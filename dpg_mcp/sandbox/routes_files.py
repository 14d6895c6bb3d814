"""Files: upload tickets + the image processor, signed downloads, ZIP archives, public media."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .auth import Principal
from .common import dedupe, need_image, need_images, need_set, norm_date, parse_keyword, read_endpoint
from .core import Engine, Plan, WriteCtx, WriteRoute, image_bytes
from .http import (
    MISSING,
    ApiError,
    Fields,
    check_query,
    conditional,
    error_response,
    json_reply,
    page_response,
    paging,
    validation,
)
from .images_png import image_info, png_text
from .routes_keywords import add_keywords
from .store import ArchiveRec, ImageRec, iso
from .views import VERSION_NAMES, archive_json

TICKET_TTL = 600
DOWNLOAD_TTL = 900
MAX_UPLOAD = 25 * 1024 * 1024
IMAGE_EXT = {"jpg", "jpeg", "png", "gif", "webp", "heic", "tif", "tiff", "mov", "mp4"}
EXT_OF = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
_FILENAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def routes(eng: Engine) -> list[BaseRoute]:
    store = eng.store

    async def processor(request: Request) -> Response:
        try:
            return await _process_upload(eng, request)
        except ApiError as e:
            return error_response(request, e)

    async def download(request: Request) -> Response:
        try:
            uid, version = request.path_params["image_uuid"], request.path_params["version"]
            exp, sig = request.query_params.get("expires", ""), request.query_params.get("sig", "")
            if not exp.isdigit() or not eng.verify(f"download:{uid}:{version}:{exp}", sig):
                raise ApiError(
                    "invalid_signature",
                    "This download link is not valid.",
                    detail="the URL was changed or is incomplete",
                )
            if int(exp) <= eng.clock():
                raise ApiError(
                    "link_expired",
                    "This download link has expired.",
                    detail="request a new one from POST /v1/downloads",
                )
            im = need_image(eng, uid)
            data, mime = image_bytes(im, version)
            name = _download_name(im, version, mime)
            return conditional(
                request,
                data,
                media_type=mime,
                headers={"Content-Disposition": content_disposition(name), "Cache-Control": "private"},
            )
        except ApiError as e:
            return error_response(request, e)

    async def archive_zip(request: Request) -> Response:
        try:
            aid = request.path_params["archive_uuid"]
            exp, sig = request.query_params.get("expires", ""), request.query_params.get("sig", "")
            if not exp.isdigit() or not eng.verify(f"archive:{aid}:{exp}", sig):
                raise ApiError(
                    "invalid_signature",
                    "This archive link is not valid.",
                    detail="the URL was changed or is incomplete",
                )
            if int(exp) <= eng.clock():
                raise ApiError(
                    "link_expired", "This archive link has expired.", detail="build the archive again"
                )
            a = store.archives.get(aid)
            if a is None or a.status != "ready":
                raise ApiError(
                    "archive_not_found", "No ready archive has that uuid.", detail=f"archive {aid}"
                )
            return conditional(
                request,
                a.zip_bytes,
                media_type="application/zip",
                headers={"Content-Disposition": content_disposition(a.filename)},
            )
        except ApiError as e:
            return error_response(request, e)

    async def media(request: Request) -> Response:
        try:
            uid, name = request.path_params["image_uuid"], request.path_params["version"]
            if name not in VERSION_NAMES[1:]:
                raise ApiError(
                    "not_found",
                    "No such public version.",
                    detail="public versions: large, medium, thumbnail; originals need POST /v1/downloads",
                )
            im = need_image(eng, uid)
            data, mime = image_bytes(im, name)
            return conditional(
                request, data, media_type=mime, headers={"Cache-Control": "public, max-age=3600"}
            )
        except ApiError as e:
            return error_response(request, e)

    async def archives(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset"})
        limit, offset = paging(request)
        now = eng.clock()
        ready = [a for a in store.archives.values() if a.status == "ready" and (a.expires_at or 0) > now]
        ready.sort(key=lambda a: (-(a.ready_at or 0), a.uuid))
        base = str(request.base_url).rstrip("/")
        return page_response(
            request, ready, limit, offset, lambda a: archive_json(a, eng.archive_url(base, a))
        )

    return [
        Route("/v1/archives", read_endpoint(eng, "api.download", archives), methods=["GET"]),
        Route("/processor/upload", processor, methods=["POST"]),
        Route("/downloads/{image_uuid}/{version}", download, methods=["GET"]),
        Route("/archives/{archive_uuid}.zip", archive_zip, methods=["GET"]),
        Route("/media/{image_uuid}/{version}.jpg", media, methods=["GET"]),
    ]


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 name (headers are Latin-1; an uploaded name may not be)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _download_name(im: ImageRec, version: str, mime: str) -> str:
    stem, _, ext = im.filename.rpartition(".")
    stem = stem or im.filename
    real_ext = EXT_OF.get(mime, ext or "bin")
    if version == "original" and im.upload is not None:
        return im.filename
    return f"{stem}.{real_ext}" if version == "original" else f"{stem}-{version}.{real_ext}"


# --- uploads ------------------------------------------------------------------------------


def prepare_upload(ctx: WriteCtx) -> Plan:
    allowed = {
        "filename",
        "title",
        "description",
        "keywords",
        "creation_date",
        "set_public_uuid",
        "read_metadata",
    }
    f = Fields(ctx.body, ctx.prefix, allowed)
    filename = f.string("filename", required=True, min_len=1, max_len=255)
    if (
        not _FILENAME.match(filename)
        or filename.rpartition(".")[2].lower() not in IMAGE_EXT
        or "." not in filename
    ):
        raise validation(
            f.f("filename"),
            f"filename must be a plain file name ending in one of: {', '.join(sorted(IMAGE_EXT))}",
        )
    title = f.string("title", max_len=191, nullable=True)
    desc = f.string("description", max_len=5000, nullable=True)
    kws = f.str_list("keywords", max_items=200, max_len=100)
    keywords = [] if kws is MISSING else [parse_keyword(k, f.f(f"keywords[{i}]")) for i, k in enumerate(kws)]
    cd = f.string("creation_date", nullable=True)
    creation = norm_date(cd, f.f("creation_date")) if isinstance(cd, str) else None
    set_id = f.string("set_public_uuid", min_len=1, nullable=True)
    read_meta = f.boolean("read_metadata")
    if isinstance(set_id, str):
        need_set(ctx.eng, set_id, f.f("set_public_uuid"))
    eng = ctx.eng

    def apply() -> dict[str, Any]:
        tx = eng.store.new_uuid()
        expires = int(eng.clock() + TICKET_TTL)
        env = {
            "transaction_uuid": tx,
            "token_id": ctx.principal.token_id,
            "filename": filename,
            "title": title if isinstance(title, str) else None,
            "description": desc if isinstance(desc, str) else None,
            "keywords": [f"{a}:{b}" if a else b for a, b in keywords],
            "creation_date": creation,
            "set_public_uuid": set_id if isinstance(set_id, str) else None,
            "read_metadata": bool(read_meta) if read_meta is not MISSING else False,
            "expires_at": expires,
        }
        envelope = _b64e(json.dumps(env, sort_keys=True, separators=(",", ":")).encode())
        return {
            "upload_url": f"{ctx.base}/processor/upload",
            "file_field": "file",
            "fields": {"envelope": envelope, "signature": eng.sign(f"upload:{envelope}")},
            "transaction_uuid": tx,
            "expires_at": expires,
        }

    return Plan(apply)


async def _process_upload(eng: Engine, request: Request) -> Response:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD + 100_000:
        raise ApiError("payload_too_large", "The file is too large.", detail=f"at most {MAX_UPLOAD} bytes")
    try:
        form = await request.form(max_files=2, max_fields=10, max_part_size=1024 * 1024)
    except (HTTPException, MultiPartException) as e:
        raise validation(None, f"the form body cannot be read: {getattr(e, 'detail', e)}") from None
    try:
        data, env = await _read_ticketed_file(eng, form)
    finally:
        await form.close()
    if len(data) > MAX_UPLOAD:
        raise ApiError("payload_too_large", "The file is too large.", detail=f"at most {MAX_UPLOAD} bytes")
    if env["transaction_uuid"] in eng.store.used_tickets:
        # Checked again after the awaits above: a concurrent request may have used the ticket meanwhile.
        # From here to `used_tickets.add` nothing awaits, so one ticket makes one image.
        raise ApiError("ticket_used", "This upload ticket was already used.", detail="request a new ticket")
    info = image_info(data)
    if info is None:
        raise validation("file", "the file is not an image the processor can read (PNG, JPEG, GIF or WebP)")
    mime, width, height = info
    now = eng.clock()
    store = eng.store
    embedded: dict[str, Any] = {}
    text = png_text(data)
    if text:
        embedded = {
            "title": text.get("Title"),
            "caption": text.get("Description"),
            "keywords": [k.strip() for k in text.get("Keywords", "").split(",") if k.strip()],
            "date": text.get("Creation Time"),
        }
        embedded = {k: v for k, v in embedded.items() if v}
    im = ImageRec(
        public_uuid=store.new_uuid(),
        filename=env["filename"],
        title=env.get("title") or "",
        description=env.get("description") or "",
        created_at=now,
        updated_at=now,
        width=width or 1,
        height=height or 1,
        creation_date=env.get("creation_date"),
        embedded=embedded,
        upload=data,
        upload_mime=mime,
        transaction_uuid=env["transaction_uuid"],
    )
    add_keywords(im, [parse_keyword(k, "keywords") for k in env.get("keywords", [])])
    if env.get("read_metadata") and embedded:
        im.title = im.title or str(embedded.get("title", ""))[:191]
        im.description = im.description or str(embedded.get("caption", ""))[:5000]
        kws = []
        for k in embedded.get("keywords", []):
            try:
                kws.append(parse_keyword(k, "keywords"))
            except ApiError:
                continue
        add_keywords(im, kws)
        if not im.creation_date and embedded.get("date"):
            with contextlib.suppress(ApiError):
                im.creation_date = norm_date(str(embedded["date"]), "creation_date")
    store.images[im.public_uuid] = im
    set_id = env.get("set_public_uuid")
    if set_id and set_id in store.sets:
        s = store.sets[set_id]
        s.images.append(im.public_uuid)
        s.lead_image_public_uuid = s.lead_image_public_uuid or im.public_uuid
    store.used_tickets.add(env["transaction_uuid"])
    store.changed([im.public_uuid])
    return json_reply({"image_public_uuid": im.public_uuid, "transaction_uuid": env["transaction_uuid"]}, 201)


async def _read_ticketed_file(eng: Engine, form: FormData) -> tuple[bytes, dict[str, Any]]:
    """Check the ticket fields (signature, expiry, single use) and return the file bytes and envelope."""
    for name in form:
        if name not in ("envelope", "signature", "file"):
            raise validation(
                name,
                f"unexpected form part '{name}': titles, keywords etc. go into POST /v1/uploads, "
                "and only the ticket fields plus 'file' are sent here",
            )
    envelope, signature = form.get("envelope"), form.get("signature")
    if not isinstance(envelope, str) or not envelope:
        raise validation("envelope", "the ticket field 'envelope' is missing")
    if not isinstance(signature, str) or not eng.verify(f"upload:{envelope}", signature):
        raise ApiError(
            "invalid_signature",
            "The upload ticket signature does not match.",
            detail="send every field of the ticket unchanged; request a new ticket if in doubt",
        )
    try:
        env = json.loads(_b64d(envelope))
    except (ValueError, binascii.Error):
        raise ApiError(
            "invalid_signature", "The upload ticket is unreadable.", detail="request a new ticket"
        ) from None
    if int(env["expires_at"]) <= eng.clock():
        raise ApiError(
            "ticket_expired",
            "The upload ticket has expired.",
            detail="tickets last 10 minutes: request a new one just before uploading",
        )
    if env["transaction_uuid"] in eng.store.used_tickets:
        raise ApiError(
            "ticket_used",
            "This upload ticket was already used.",
            detail="request a new ticket for each upload",
        )
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise validation("file", "send multipart/form-data with the file in the part named 'file'")
    # A chunked upload has no Content-Length: check the spooled size before reading it into memory.
    if upload.size is not None and upload.size > MAX_UPLOAD:
        raise ApiError("payload_too_large", "The file is too large.", detail=f"at most {MAX_UPLOAD} bytes")
    data = await upload.read()
    return data, env


# --- downloads and archives -------------------------------------------------------------------


def prepare_download(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuid", "version"})
    uid = f.string("image_public_uuid", required=True, min_len=1, max_len=100)
    version = f.string("version", min_len=1)
    version = "original" if version is MISSING else version
    if version not in VERSION_NAMES:
        raise validation(f.f("version"), f"version must be one of: {', '.join(VERSION_NAMES)}")
    im = need_image(ctx, uid, f.f("image_public_uuid"))
    eng = ctx.eng

    def apply() -> dict[str, Any]:
        exp = int(eng.clock() + DOWNLOAD_TTL)
        sig = eng.sign(f"download:{uid}:{version}:{exp}")
        mime = (
            (im.upload_mime or "image/png")
            if version == "original" and im.upload is not None
            else "image/png"
        )
        return {
            "url": f"{ctx.base}/downloads/{uid}/{version}?expires={exp}&sig={sig}",
            "filename": _download_name(im, version, mime),
            "access": "private" if version == "original" else "public",
            "version": version,
            "expires_at": exp,
        }

    return Plan(apply, [uid])


def prepare_archive(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"image_public_uuids", "filename", "version", "version_profile_uuid"})
    uuids = dedupe(f.str_list("image_public_uuids", required=True, min_items=1, max_items=500))
    fname = f.string("filename", min_len=1, max_len=100)
    if isinstance(fname, str) and not re.fullmatch(r"[A-Za-z0-9 _.()-]+", fname):
        raise validation(f.f("filename"), "filename may use letters, digits, spaces and . _ - ( )")
    version = f.string("version", min_len=1)
    version = "large" if version is MISSING else version
    if version not in VERSION_NAMES:
        raise validation(f.f("version"), f"version must be one of: {', '.join(VERSION_NAMES)}")
    vp = f.string("version_profile_uuid", min_len=1, max_len=100, nullable=True)
    if isinstance(vp, str) and not re.fullmatch(r"[0-9a-fA-F-]{32,36}", vp):
        raise validation(f.f("version_profile_uuid"), "version_profile_uuid must be a UUID")
    need_images(ctx, uuids, f.f("image_public_uuids"))
    eng = ctx.eng

    def apply() -> dict[str, Any]:
        now = eng.clock()
        aid = eng.store.new_uuid()
        base_name = fname if isinstance(fname, str) else f"dpg-archive-{(iso(now) or 'export')[:10]}"
        name = base_name if base_name.lower().endswith(".zip") else base_name + ".zip"
        eng.store.archives[aid] = ArchiveRec(
            uuid=aid,
            token_id=ctx.principal.token_id,
            filename=name,
            version=version,
            image_uuids=list(uuids),
            created_at=now,
            operation_uuid="",
        )
        return {"message": f"Archive of {len(uuids)} image(s) is ready.", "_archive_uuid": aid}

    return Plan(apply, list(uuids))


WRITES = [
    WriteRoute("POST", "/v1/uploads", "api.upload", None, prepare_upload, direct_status=201, batchable=False),
    WriteRoute(
        "POST", "/v1/downloads", "api.download", None, prepare_download, direct_status=200, batchable=False
    ),
    WriteRoute("POST", "/v1/archives", "api.download", "archive", prepare_archive),
]

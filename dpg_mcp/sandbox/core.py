"""The engine behind the routes: auth checks, the write pipeline (idempotency, Operations) and signing."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .auth import Auth, Principal
from .config import SandboxConfig
from .http import ApiError, canonical, error_response, json_reply, parse_json_body, read_body, validation
from .images_png import render_photo, served_size
from .seed import build_store
from .store import ArchiveRec, IdemRecord, ImageRec, OperationRec, Store, iso
from .views import archive_json, operation_status, oriented

IDEMPOTENCY_TTL = 24 * 3600
ARCHIVE_TTL = 24 * 3600
MAX_JSON_BODY = 1_000_000
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Plan:
    """A validated write, ready to apply. `apply` mutates the store and returns the Operation result."""

    apply: Callable[[], dict[str, Any]]
    images: list[str] = field(default_factory=list)
    set_uuid: str | None = None
    touched: int = 0  # images moved: a large set move takes longer


@dataclass
class WriteCtx:
    eng: Engine
    principal: Principal
    params: dict[str, str]
    body: Any
    prefix: str  # field prefix for batch items: "operations[3].body."
    base: str
    now: float


@dataclass(frozen=True)
class WriteRoute:
    method: str
    path: str
    scope: str
    op_type: str | None  # None: answers directly (uploads, downloads)
    prepare: Callable[[WriteCtx], Plan]
    body_optional: bool = False
    direct_status: int = 200
    batchable: bool = True

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


def image_bytes(im: ImageRec, version: str) -> tuple[bytes, str]:
    if version == "original" and im.upload is not None:
        return im.upload, im.upload_mime or "application/octet-stream"
    w, h = (im.width, im.height) if version == "original" else oriented(im)
    sw, sh = served_size(w, h, version)
    return render_photo(f"{im.public_uuid}:{im.rotation}", sw, sh, im.look), "image/jpeg"


class Engine:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.store: Store = build_store(config.seed, config.images)
        self.auth = Auth(config.clock, config.access_ttl)
        self.secret = hashlib.sha256(f"dpg-sandbox-secret:{config.seed}".encode()).digest()
        self.write_routes: list[WriteRoute] = []
        self._last_sweep = float("-inf")
        # A fresh id on every start (GET /v1/me `instance_id`): the seed makes every start look the same, and
        # a client's write ledger must never take a reset gallery for the one its entries are about.
        self.instance_id = uuid.uuid4().hex

    # --- signing ------------------------------------------------------------------
    def sign(self, message: str) -> str:
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, sig: str) -> bool:
        # Bytes, not str: compare_digest raises TypeError on non-ASCII text (a tampered sig must be a 403).
        return hmac.compare_digest(self.sign(message).encode(), sig.encode("utf-8", "surrogateescape"))

    def archive_url(self, base: str, a: ArchiveRec) -> str | None:
        if a.status != "ready" or a.expires_at is None:
            return None
        exp = int(a.expires_at)
        return f"{base}/archives/{a.uuid}.zip?expires={exp}&sig={self.sign(f'archive:{a.uuid}:{exp}')}"

    # --- auth ---------------------------------------------------------------------
    def principal(self, request: Request, scope: str | None) -> Principal:
        p = self.auth.principal(request.headers.get("authorization"))
        if not p.enabled:
            raise ApiError(
                "api_not_enabled",
                "API access is switched off for this account.",
                detail="an administrator turns it on under Settings → API → Settings (API Access)",
            )
        if scope and scope not in p.scopes:
            raise ApiError(
                "forbidden", "This token may not do that.", detail=f"this token lacks the {scope} scope"
            )
        return p

    # --- time-driven effects --------------------------------------------------------
    def tick(self) -> None:
        """Finish what the clock says is finished: archives get their ZIP once their Operation is done."""
        now = self.clock()
        for a in self.store.archives.values():
            if a.status == "building":
                op = self.store.operations[a.operation_uuid]
                if op.finish_at <= now:
                    self._build_archive(a, op)
            elif a.zip_bytes and a.expires_at is not None and a.expires_at <= now:
                a.zip_bytes = b""  # nobody can fetch it any more: do not keep megabytes per archive forever

    def _build_archive(self, a: ArchiveRec, op: OperationRec) -> None:
        missing = [u for u in a.image_uuids if u not in self.store.images]
        if missing:
            a.status = "failed"
            op.final_status = "failed"
            op.result = None
            op.error = {
                "code": "image_not_found",
                "message": "Images were deleted while the archive was built.",
                "detail": f"missing: {', '.join(missing[:5])}",
                "field": "image_public_uuids",
                "request_id": None,
            }
            return
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            names: set[str] = set()
            for u in a.image_uuids:
                im = self.store.images[u]
                data, mime = image_bytes(im, a.version)
                stem = im.filename.rsplit(".", 1)[0]
                ext = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}.get(
                    mime, "bin"
                )
                name = f"{stem}.{ext}"
                n = 2
                while name in names:
                    name, n = f"{stem}-{n}.{ext}", n + 1
                names.add(name)
                zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 7, 6, 0, 0, 0)), data)
        a.zip_bytes = buf.getvalue()
        a.zip_sha256 = hashlib.sha256(a.zip_bytes).hexdigest()
        a.size_bytes = len(a.zip_bytes)
        a.status = "ready"
        a.ready_at = op.finish_at
        a.expires_at = op.finish_at + ARCHIVE_TTL

    # --- operations ------------------------------------------------------------------
    def operation_json(self, op: OperationRec, base: str) -> dict[str, Any]:
        now = self.clock()
        status = operation_status(self.store, op, now)
        result: dict[str, Any] | None = None
        if op.children:
            kids = [self.operation_json(self.store.operations[c], base) for c in op.children]
            ok = sum(1 for k in kids if k["status"] == "succeeded")
            bad = sum(1 for k in kids if k["status"] == "failed")
            result = {
                "message": f"{ok} succeeded, {bad} failed, {len(kids) - ok - bad} running.",
                "children": kids,
                "succeeded": ok,
                "failed": bad,
            }
            if status != "running" and bad:
                status = "failed"
        elif status == "succeeded":
            result = dict(op.result or {})
            if op.archive_uuid:
                a = self.store.archives[op.archive_uuid]
                result.update(archive_json(a, self.archive_url(base, a)))
        error = op.error if status == "failed" else None
        if op.children and status == "failed":
            error = {
                "code": "batch_item_failed",
                "message": "Some items of the batch failed.",
                "detail": result["message"] if result else None,
                "field": None,
                "request_id": None,
            }
        done_at = max(op.finish_at, op.created_at)
        return {
            "uuid": op.uuid,
            "status": status,
            "type": op.type,
            "image_public_uuids": list(op.image_public_uuids),
            "set_public_uuid": op.set_public_uuid,
            "result": result,
            "error": error,
            "created_at": iso(op.created_at),
            "updated_at": iso(done_at if status != "running" else op.created_at),
        }

    def duration(self, op_type: str, touched: int) -> float:
        d = float(self.config.operation_seconds.get(op_type, 0.0))
        if op_type.startswith("set_") and touched > self.config.large_move_threshold:
            d = max(d, self.config.large_move_seconds)
        return d

    def run_plan(self, route: WriteRoute, plan: Plan, token_id: str) -> OperationRec:
        """Apply a validated plan and record its Operation (a failure at apply time fails the Operation)."""
        assert route.op_type is not None
        now = self.clock()
        op = OperationRec(
            uuid="op-" + self.store.new_uuid(),
            type=route.op_type,
            token_id=token_id,
            image_public_uuids=list(plan.images),
            set_public_uuid=plan.set_uuid,
            created_at=now,
            finish_at=now + self.duration(route.op_type, plan.touched),
        )
        try:
            result = plan.apply()
        except ApiError as e:
            op.final_status, op.error = "failed", e.inner(None)
        else:
            op.result = {k: v for k, v in result.items() if k not in ("_archive_uuid", "_children")}
            op.archive_uuid = result.get("_archive_uuid")
            op.children = list(result.get("_children", []))
            if op.set_public_uuid is None and result.get("set_public_uuid"):
                op.set_public_uuid = result["set_public_uuid"]
        finally:
            self.store.changed(plan.images)  # even a failed apply may have changed part of its images
        self.store.operations[op.uuid] = op
        if op.archive_uuid:
            self.store.archives[op.archive_uuid].operation_uuid = op.uuid
            if op.finish_at <= now:
                self._build_archive(self.store.archives[op.archive_uuid], op)
        return op

    # --- the write pipeline ------------------------------------------------------------
    def write_endpoint(self, route: WriteRoute) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await self._write(request, route)
            except ApiError as e:
                return error_response(request, e)

        endpoint.__name__ = f"{route.method.lower()}_{route.path}"
        return endpoint

    async def _write(self, request: Request, route: WriteRoute) -> Response:
        self.tick()
        p = self.principal(request, route.scope)
        key = request.headers.get("idempotency-key", "").strip()
        if not key:
            raise validation(
                "Idempotency-Key", "every write needs an Idempotency-Key header (a UUID is a good choice)"
            )
        if len(key) > 255:
            raise validation("Idempotency-Key", "Idempotency-Key must be at most 255 characters")
        raw = await read_body(request, MAX_JSON_BODY)
        # The fingerprint needs the canonical body, but a bad body is refused only after the replay check.
        parsed: Any = None
        bad_body: ApiError | None = None
        try:
            parsed = parse_json_body(raw, allow_empty=True)
            body_fp = canonical(parsed)
        except ApiError as e:
            bad_body, body_fp = e, "raw:" + hashlib.sha256(raw).hexdigest()
        fingerprint = f"{request.method} {request.url.path} {body_fp}"
        base = str(request.base_url).rstrip("/")
        now = self.clock()
        ikey = (p.token_id, key)
        self._sweep_idempotency(now)
        rec = self.store.idempotency.get(ikey)
        if rec is not None and rec.created_at + IDEMPOTENCY_TTL <= now:
            del self.store.idempotency[ikey]
            rec = None
        if rec is not None:
            if rec.fingerprint != fingerprint:
                raise ApiError(
                    "idempotency_key_conflict",
                    "This Idempotency-Key was already used for a different request.",
                    detail="use a new key for a new action; reuse a key only to retry the very same request",
                    field="Idempotency-Key",
                )
            if rec.operation_uuid is not None:
                op = self.store.operations[rec.operation_uuid]
                return json_reply(
                    self.operation_json(op, base), 202, {**rec.headers, "Idempotent-Replayed": "true"}
                )
            return json_reply(rec.body, rec.status, {**rec.headers, "Idempotent-Replayed": "true"})
        if bad_body is not None:
            raise bad_body
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if raw.strip() and ctype and not (ctype == "application/json" or ctype.endswith("+json")):
            # A body sent as a form or as text is not what the client meant: say so instead of guessing.
            raise validation("Content-Type", f"send the body as application/json, not {ctype}")
        if parsed is None and not route.body_optional:
            raise validation(None, "the request body must be a JSON object")
        ctx = WriteCtx(self, p, dict(request.path_params), parsed, "", base, now)
        plan = route.prepare(ctx)
        if route.op_type is None:
            try:
                body = plan.apply()
            finally:
                self.store.changed(plan.images)
            self.store.idempotency[ikey] = IdemRecord(fingerprint, now, route.direct_status, None, body, {})
            self._count(p.token_id, key)
            return json_reply(body, route.direct_status)
        op = self.run_plan(route, plan, p.token_id)
        headers = {"Location": f"/v1/operations/{op.uuid}"}
        self.store.idempotency[ikey] = IdemRecord(fingerprint, now, 202, op.uuid, None, headers)
        self._count(p.token_id, key)
        return json_reply(self.operation_json(op, base), 202, headers)

    def _sweep_idempotency(self, now: float) -> None:
        # Keys older than their 24 h are dead; drop them in one pass every so often (not per request).
        if len(self.store.idempotency) < 10_000 or now - self._last_sweep < 3600:
            return
        self._last_sweep = now
        dead = [k for k, r in self.store.idempotency.items() if r.created_at + IDEMPOTENCY_TTL <= now]
        for k in dead:
            del self.store.idempotency[k]

    def _count(self, token_id: str, key: str) -> None:
        k = f"{token_id}:{key}"
        self.store.apply_counts[k] = self.store.apply_counts.get(k, 0) + 1

    def match_write(self, method: str, path: str) -> tuple[WriteRoute, dict[str, str]] | None:
        for r in self.write_routes:
            if r.method == method:
                m = r.regex.match(path)
                if m:
                    return r, m.groupdict()
        return None

"""Uploads (ticket + processor), signed downloads, ZIP archives."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from PIL import Image as PILImage

from .conftest import JPEG_MAGIC, UPLOADER, Api, FakeClock, assert_error, make_sandbox


def b64d(text: str) -> bytes:
    """The envelope is base64 of JSON (decoded leniently: either alphabet, padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def png_bytes(w: int = 40, h: int = 30) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (200, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


async def ticket(api: Api, body: dict[str, Any], token: str = UPLOADER) -> dict[str, Any]:
    r = await api.write("POST", "/v1/uploads", body, token=token)
    assert r.status_code == 201, r.text
    t: dict[str, Any] = r.json()
    return t


async def upload(
    api: Api, t: dict[str, Any], data: bytes, fields: dict[str, str] | None = None
) -> httpx2.Response:
    files = {t["file_field"]: ("photo.png", data, "image/png")}
    return await api.client(None).post(t["upload_url"], data=fields or t["fields"], files=files)


async def test_upload_flow(api: Api, sets: list[dict[str, Any]]) -> None:
    s = sets[0]["public_uuid"]
    body = {
        "filename": "IMG_1234.png",
        "title": "Sound check",
        "description": "Before doors",
        "keywords": ["soundcheck", "artist:Marina Vale"],
        "creation_date": "2026-07-03",
        "set_public_uuid": s,
        "read_metadata": False,
    }
    t = await ticket(api, body)
    assert set(t) >= {"upload_url", "file_field", "fields", "transaction_uuid", "expires_at"}
    assert t["upload_url"] == "http://dpg.test/processor/upload"
    assert t["file_field"] == "file"
    assert set(t["fields"]) >= {"envelope", "signature"}
    env = json.loads(b64d(t["fields"]["envelope"]))
    assert "Sound check" in json.dumps(env)  # details are baked into the signed envelope
    before = len(await api.all_images())
    r = await upload(api, t, png_bytes())
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["transaction_uuid"] == t["transaction_uuid"]
    im = await api.image(out["image_public_uuid"])
    assert im["title"] == "Sound check" and im["description"] == "Before doors"
    assert im["filename"] == "IMG_1234.png"
    assert {"soundcheck", "artist:Marina Vale"} <= {
        f"{k['namespace']}:{k['value']}" if k.get("namespace") else k["value"] for k in im["keywords"]
    }
    assert s in im["set_public_uuids"]
    assert len(await api.all_images()) == before + 1
    # the new image serves its versions
    thumb = next(v for v in im["versions"] if v["name"] == "thumbnail")
    r = await api.get(thumb["url"], None)
    assert r.status_code == 200 and r.content.startswith(JPEG_MAGIC)
    # the same ticket again: refused
    assert_error(await upload(api, t, png_bytes()), 409, "ticket_used")


async def test_upload_refusals(api: Api, clock: FakeClock) -> None:
    t = await ticket(api, {"filename": "a.png", "title": "Original"})
    digest = api.sb.state_digest()
    # a changed field
    env = json.loads(b64d(t["fields"]["envelope"]))
    env_s = json.dumps(env, sort_keys=True, separators=(",", ":")).replace("Original", "Tampered")
    forged = {**t["fields"], "envelope": base64.b64encode(env_s.encode()).decode()}
    assert_error(await upload(api, t, png_bytes(), forged), 403, "invalid_signature")
    bad_sig = {**t["fields"], "signature": "0" * len(t["fields"]["signature"])}
    assert_error(await upload(api, t, png_bytes(), bad_sig), 403, "invalid_signature")
    # not an image
    assert_error(await upload(api, t, b"%PDF-1.4 definitely not a picture"), 400, "validation", "file")
    # not multipart, or the file in another part, or extra parts (titles go into the ticket)
    assert_error(await api.client(None).post(t["upload_url"], data=t["fields"]), 400, "validation", "file")
    files = {"photo": ("p.png", png_bytes(), "image/png")}
    r = await api.client(None).post(t["upload_url"], data=t["fields"], files=files)
    assert_error(r, 400, "validation", "photo")
    files = {"file": ("p.png", png_bytes(), "image/png")}
    r = await api.client(None).post(t["upload_url"], data={**t["fields"], "title": "sneaky"}, files=files)
    assert_error(r, 400, "validation", "title")
    assert api.sb.state_digest() == digest
    # expired after 10 minutes
    clock.advance(601)
    assert_error(await upload(api, t, png_bytes()), 403, "ticket_expired")
    assert api.sb.state_digest() == digest


async def test_upload_reads_embedded_metadata(api: Api) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", "Embedded title")
    info.add_text("Description", "Embedded caption")
    info.add_text("Keywords", "river, artist:Nova Reyes")
    buf = io.BytesIO()
    PILImage.new("RGB", (20, 20), (9, 9, 9)).save(buf, format="PNG", pnginfo=info)
    data = buf.getvalue()
    t = await ticket(api, {"filename": "e.png", "read_metadata": True})
    im = await api.image((await upload(api, t, data)).json()["image_public_uuid"])
    assert im["title"] == "Embedded title" and im["description"] == "Embedded caption"
    assert {"river", "Nova Reyes"} <= {k["value"] for k in im["keywords"]}
    # without read_metadata the text stays in the file until extract_metadata
    t = await ticket(api, {"filename": "f.png", "read_metadata": False})
    u = (await upload(api, t, data)).json()["image_public_uuid"]
    assert (await api.image(u))["title"] == ""
    await api.ok_write("POST", f"/v1/images/{u}/extract_metadata", {})
    assert (await api.image(u))["title"] == "Embedded title"
    # the original download returns the uploaded bytes
    d = await download(api, {"image_public_uuid": u, "version": "original"})
    assert (await api.get(d["url"], None)).content == data


async def test_upload_accepts_jpeg_gif_webp(api: Api) -> None:
    for fmt in ("JPEG", "GIF", "WEBP"):
        t = await ticket(api, {"filename": f"x.{fmt.lower()}"})
        buf = io.BytesIO()
        PILImage.new("RGB", (16, 16), (1, 2, 3)).save(buf, format=fmt)
        files = {"file": (f"x.{fmt.lower()}", buf.getvalue(), f"image/{fmt.lower()}")}
        r = await api.client(None).post(t["upload_url"], data=t["fields"], files=files)
        assert r.status_code == 201, (fmt, r.text)


async def test_upload_ticket_unknown_set(api: Api) -> None:
    r = await api.write(
        "POST",
        "/v1/uploads",
        {"filename": "a.png", "set_public_uuid": "00000000-0000-4000-8000-000000000000"},
        token=UPLOADER,
    )
    assert_error(r, 404, "set_not_found")


async def download(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.write("POST", "/v1/downloads", body, token=UPLOADER)
    assert r.status_code == 200, r.text
    d: dict[str, Any] = r.json()
    return d


async def test_download_original(api: Api, images: list[dict[str, Any]], clock: FakeClock) -> None:
    im = images[0]
    d = await download(api, {"image_public_uuid": im["public_uuid"], "version": "original"})
    assert set(d) >= {"url", "filename", "access", "expires_at"}
    assert d["access"] == "private"
    assert isinstance(d["expires_at"], int | float) and d["expires_at"] == clock() + 900
    parts = urlsplit(d["url"])
    assert parts.path == f"/downloads/{im['public_uuid']}/original"
    r = await api.get(d["url"], None)
    assert r.status_code == 200
    assert r.content.startswith(JPEG_MAGIC)
    orig = next(v for v in im["versions"] if v["name"] == "original")
    assert PILImage.open(io.BytesIO(r.content)).size[0] > 0
    assert orig["width"] > 0
    # tampered: other version with the same signature, or a changed expiry
    q = parse_qs(parts.query)
    r = await api.get(f"/downloads/{im['public_uuid']}/large?{parts.query}", None)
    assert r.status_code == 403
    forged = urlencode({"expires": int(q["expires"][0]) + 3600, "sig": q["sig"][0]})
    r = await api.get(f"{parts.path}?{forged}", None)
    assert r.status_code == 403
    r = await api.get(parts.path, None)
    assert r.status_code == 403
    # expiry after 15 minutes
    clock.advance(899)
    assert (await api.get(d["url"], None)).status_code == 200
    clock.advance(2)
    assert (await api.get(d["url"], None)).status_code == 403


async def test_download_default_and_versions(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[1]["public_uuid"]
    d = await download(api, {"image_public_uuid": u})
    assert urlsplit(d["url"]).path.split("/")[-1] in {"original", "large", "medium", "thumbnail"}
    for v in ("large", "medium", "thumbnail"):
        d = await download(api, {"image_public_uuid": u, "version": v})
        r = await api.get(d["url"], None)
        assert r.status_code == 200 and r.content.startswith(JPEG_MAGIC)
    r = await api.write(
        "POST", "/v1/downloads", {"image_public_uuid": "00000000-0000-4000-8000-000000000000"}, token=UPLOADER
    )
    assert_error(r, 404, "image_not_found")


async def test_archive_builds_a_zip(clock: FakeClock) -> None:
    sb = make_sandbox(clock, operation_seconds={"archive": 1.0})
    api = Api(sb)
    try:
        imgs = (await api.all_images())[:3]
        ids = [i["public_uuid"] for i in imgs]
        r = await api.write(
            "POST", "/v1/archives", {"image_public_uuids": ids, "filename": "friday-selects"}, token=UPLOADER
        )
        assert r.status_code == 202, r.text
        op = r.json()
        assert op["type"] == "archive" and op["status"] in ("pending", "running")
        assert op["image_public_uuids"] == ids
        lst = await api.get("/v1/archives", UPLOADER)
        assert lst.json() == []  # not ready yet
        clock.advance(1.5)
        r = await api.get(f"/v1/operations/{op['uuid']}", UPLOADER)
        done = r.json()
        assert done["status"] == "succeeded", done
        res = done["result"]
        assert set(res) >= {
            "archive_uuid",
            "uuid",
            "filename",
            "url",
            "size_bytes",
            "image_count",
            "expires_at",
            "status",
        }
        assert res["status"] == "ready" and res["image_count"] == 3
        assert res["filename"].startswith("friday-selects")
        z = await api.get(res["url"], None)
        assert z.status_code == 200
        assert len(z.content) == res["size_bytes"]
        with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
            names = zf.namelist()
            assert len(names) == 3
            for n in names:
                assert zf.read(n).startswith(JPEG_MAGIC)
        listed = (await api.get("/v1/archives", UPLOADER)).json()
        assert [a["uuid"] for a in listed] == [res["uuid"]]
        assert set(listed[0]) >= {
            "uuid",
            "filename",
            "url",
            "size_bytes",
            "image_count",
            "expires_at",
            "status",
        }
        # tampered and expired links refused
        parts = urlsplit(res["url"])
        q = parse_qs(parts.query)
        forged = urlencode({"expires": int(q["expires"][0]) + 10, "sig": q["sig"][0]})
        assert (await api.get(f"{parts.path}?{forged}", None)).status_code == 403
        clock.advance(24 * 3600 + 1)
        assert (await api.get(res["url"], None)).status_code == 403
    finally:
        await api.aclose()


async def test_archive_instant_by_default(api: Api, images: list[dict[str, Any]]) -> None:
    ids = [i["public_uuid"] for i in images[:2]]
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": ids}, token=UPLOADER)
    assert op["result"]["image_count"] == 2
    r = await api.write(
        "POST",
        "/v1/archives",
        {"image_public_uuids": [*ids, "00000000-0000-4000-8000-000000000000"]},
        token=UPLOADER,
    )
    assert_error(r, 404, "image_not_found")


async def test_archive_upper_bound(api: Api, images: list[dict[str, Any]]) -> None:
    ids = [i["public_uuid"] for i in images]
    assert len(ids) >= 300
    r = await api.write("POST", "/v1/archives", {"image_public_uuids": (ids * 2)[:501]}, token=UPLOADER)
    assert_error(r, 400, "validation", "image_public_uuids")


async def test_download_refusal_codes(api: Api, images: list[dict[str, Any]], clock: FakeClock) -> None:
    d = await download(api, {"image_public_uuid": images[0]["public_uuid"], "version": "large"})
    assert_error(await api.get(d["url"].replace("sig=", "sig=0"), None), 403, "invalid_signature")
    clock.advance(901)
    assert_error(await api.get(d["url"], None), 403, "link_expired")

from __future__ import annotations

from dpg_mcp.dpg.models import (
    Archive,
    Facets,
    Image,
    Keyword,
    KeywordCount,
    Me,
    Operation,
    Page,
    SetImage,
    SetNode,
    UploadTicket,
)


def test_image_tolerates_unknown_fields_and_missing_optionals() -> None:
    img = Image.model_validate(
        {
            "public_uuid": "u1",
            "brand_new_field": {"x": 1},
            "keywords": [{"namespace": "artist", "value": "M"}],
        }
    )
    assert img.public_uuid == "u1"
    assert img.title is None and img.rating is None and img.versions == [] and img.metadata == {}
    assert img.model_extra == {"brand_new_field": {"x": 1}}
    assert img.keywords[0].full == "artist:M"


def test_image_null_lists_and_string_keywords() -> None:
    img = Image.model_validate(
        {"public_uuid": "u1", "keywords": ["sunset", "artist:Marina"], "versions": None, "metadata": None}
    )
    assert [k.full for k in img.keywords] == ["sunset", "artist:Marina"]
    assert img.keywords[1].namespace == "artist" and img.keywords[1].value == "Marina"
    assert img.versions == [] and img.metadata == {}


def test_image_version_lookup_and_epoch_or_iso_times() -> None:
    img = Image.model_validate(
        {
            "public_uuid": "u",
            "created_at": 1783099999,
            "creation_date": "2026-07-03",
            "versions": [{"name": "thumbnail", "url": "https://cdn/x.png", "width": 320, "dpi": 72}],
        }
    )
    thumb = img.version("thumbnail")
    assert thumb is not None and thumb.url == "https://cdn/x.png"
    assert img.version("original") is None
    assert img.created_at == 1783099999


def test_keyword_full_without_namespace() -> None:
    assert Keyword(value="sunset").full == "sunset"
    assert KeywordCount.model_validate({"namespace": "day", "value": "fri", "count": 3}).full == "day:fri"


def test_operation_statuses() -> None:
    for status in ("pending", "queued", "running", "processing", "weird"):
        o = Operation.model_validate({"uuid": "op-1", "status": status})
        assert not o.is_terminal and not o.succeeded
    ok = Operation.model_validate({"uuid": "op-1", "status": "succeeded", "result": {"message": "ok"}})
    assert ok.is_terminal and ok.succeeded
    bad = Operation.model_validate({"uuid": "op-1", "status": "failed", "error": {"code": "internal"}})
    assert bad.is_terminal and not bad.succeeded and bad.error == {"code": "internal"}
    bare = Operation.model_validate({"uuid": "op-2"})
    assert bare.status == "running" and bare.image_public_uuids == []


def test_me_service_and_user_tokens() -> None:
    me = Me.model_validate(
        {
            "account": {"uuid": "a", "name": "Riverside", "unique_id": "riverside"},
            "service_token": None,
            "user": {"uuid": "u", "name": "Ed", "role": "admin"},
            "capabilities": ["api.images.read"],
        }
    )
    assert me.user is not None and me.user.role == "admin"
    assert me.service_token is None
    assert Me.model_validate({}).capabilities == []


def test_nested_set_tree_and_set_image() -> None:
    node = SetNode.model_validate(
        {"public_uuid": "s1", "name": "Fri", "children": [{"public_uuid": "s2", "children": []}]}
    )
    assert node.children[0].public_uuid == "s2"
    si = SetImage.model_validate({"public_uuid": "i", "hidden": True, "activation_time": None})
    assert si.hidden is True


def test_other_models_defaults() -> None:
    assert Facets.model_validate({}).ratings == {}
    assert Archive.model_validate({"status": "ready"}).url is None
    t = UploadTicket.model_validate({"upload_url": "https://p/up", "fields": {"a": "b"}})
    assert t.file_field == "file"


def test_page_generic_dump() -> None:
    page = Page[Image](items=[Image(public_uuid="x", title="t")], has_more=True, next_offset=20, total=99)
    dumped = page.model_dump()
    assert dumped["items"][0]["title"] == "t"
    assert dumped["next_offset"] == 20


def test_plain_uuid_accepted_for_public_uuid() -> None:
    assert Image.model_validate({"uuid": "i1"}).public_uuid == "i1"
    assert (
        SetNode.model_validate({"uuid": "s1", "children": [{"uuid": "s2"}]}).children[0].public_uuid == "s2"
    )

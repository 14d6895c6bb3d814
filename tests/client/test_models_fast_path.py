"""The fast validation path gives exactly what the tolerant validators give, and page types are built once."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from dpg_mcp.dpg.models import Facets, Image, Keyword, Operation, Page, SetNode, items_from_json, page_of

GOOD_IMAGE = {
    "public_uuid": "u1",
    "title": "t",
    "keywords": [{"namespace": "artist", "value": "M"}, {"namespace": None, "value": "crowd"}],
    "versions": [{"name": "thumbnail", "url": "https://cdn/x.png", "width": 320, "height": 200}],
    "metadata": {"city": "Riverside"},
    "geo": {"lat": 51.4, "lon": -2.5},
    "brand_new": {"x": 1},
}
CASES: list[tuple[type[BaseModel], Any]] = [
    (Image, GOOD_IMAGE),
    (Image, {**GOOD_IMAGE, "keywords": ["sunset", "artist:Marina"]}),  # strings: a before-validator's job
    (Image, {**GOOD_IMAGE, "versions": None, "metadata": None}),  # nulls for lists
    (Image, {**GOOD_IMAGE, "versions": [{"name": "t", "width": "wide"}, {"name": "m"}]}),  # one odd field
    (Image, {**GOOD_IMAGE, "geo": "51.4,-2.5"}),  # a whole odd field
    (Image, {"uuid": "u2"}),  # alias
    (SetNode, {"uuid": "s1", "children": [{"public_uuid": "s2", "position": "x", "children": []}]}),
    (Operation, {"uuid": "", "id": "op-9", "status": " SUCCEEDED"}),  # before-validators that fix valid data
    (Operation, {"uuid": "op-1", "result": "done"}),
    (Operation, {"uuid": 42, "status": None}),
    (Facets, {"keywords": [{"value": "a", "count": "3"}, {"value": "b", "count": "many"}], "ratings": None}),
    (Keyword, "day:fri"),
]


def tolerant(model: type[BaseModel], data: Any) -> Any:
    return model.__pydantic_validator__.validate_python(data)  # the validator with every tolerance wrapper


@pytest.mark.parametrize(("model", "data"), CASES)
def test_fast_path_equals_the_tolerant_validator(model: type[BaseModel], data: Any) -> None:
    fast = model.model_validate(data)
    slow = tolerant(model, data)
    assert type(fast) is type(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_extra == slow.model_extra and fast.model_fields_set == slow.model_fields_set


def test_a_missing_id_still_fails_on_both_paths() -> None:
    with pytest.raises(ValidationError):
        Image.model_validate({"title": "no id"})
    with pytest.raises(ValidationError):
        tolerant(Image, {"title": "no id"})


def test_page_types_are_built_once_and_items_kept_as_given() -> None:
    items = [Image.model_validate(GOOD_IMAGE)]
    a = page_of(Image, items, has_more=True, next_offset=1, total=2)
    b = page_of(Image, [], total=0)
    assert type(a) is type(b) and issubclass(type(a), Page)
    assert a.items[0] is items[0] and a.has_more and a.next_offset == 1 and a.total == 2
    assert a.model_dump()["items"][0]["title"] == "t"


def test_the_page_type_outlives_its_pages() -> None:
    # pydantic keeps Page[Image] in a weak cache only: rebuilt (~1 ms) whenever the last page is gone.
    ref = weakref.ref(type(page_of(Image, [])))
    gc.collect()
    assert ref() is not None and type(page_of(Image, [])) is ref()


def test_a_list_body_in_one_pass_equals_item_by_item() -> None:
    items = [GOOD_IMAGE, {**GOOD_IMAGE, "public_uuid": "u2", "rating": 3}]
    body = json.dumps(items).encode()
    fast = items_from_json(Image, b"  \n" + body)
    assert fast is not None
    assert [i.model_dump() for i in fast] == [Image.model_validate(x).model_dump() for x in items]
    assert [i.model_extra for i in fast] == [{"brand_new": {"x": 1}}] * 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"images": []}',  # a wrapped list: the tolerant path unwraps it
        json.dumps([GOOD_IMAGE, {**GOOD_IMAGE, "keywords": ["a:b"]}]).encode(),  # one item needs repair
        json.dumps([{"title": "no id"}]).encode(),  # a bad item: the tolerant path reports it
        b"[not json",
    ],
)
def test_a_body_the_fast_path_cannot_take_goes_the_tolerant_way(body: bytes) -> None:
    assert items_from_json(Image, body) is None

"""Tolerant response models for the DPG API.

The real API may add fields or leave out ones the sandbox sends (DECISIONS.md, "Tolerance"), so every model
accepts unknown fields (`extra="allow"`), and every field but an object's own id is optional with a default.
Timestamps stay as given (ISO text or epoch numbers): the client passes them on, never computes with them.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

log = logging.getLogger("dpg_mcp.dpg")

# ISO 8601 text in the sandbox; epoch seconds in the guides' download example. Keep either.
Stamp = str | int | float | None

M = TypeVar("M", bound=BaseModel)

# DECISIONS.md: `succeeded` ends well; these end badly; any other status is still in progress.
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled", "expired", "rejected"})
TERMINAL_STATUSES = frozenset({"succeeded"}) | FAILED_STATUSES


class DPGModel(BaseModel):
    # True on models whose mode="before" validators only repair input the plain schema would refuse.
    _fast_path_skips_before: ClassVar[bool] = False
    # Schemas are built on first use: most of these models are not needed before the first tool call.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

    @model_validator(mode="wrap")
    @classmethod
    def _tolerate(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """An optional field whose value has an unexpected shape falls back to its default.

        The real API may send `null` for a list, a string where the sandbox sends an object, a number
        as text, ...: one odd field must not turn a whole answer (or a committed write) into an error.
        A missing or unusable REQUIRED field (an object's id) still fails.
        """
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            bad: dict[str, set[int] | None] = {}  # field -> bad list items, or None for the whole field
            for e in exc.errors():
                if not e["loc"]:
                    raise
                name, rest = str(e["loc"][0]), e["loc"][1:]
                if rest and isinstance(rest[0], int) and isinstance(data.get(name), list):
                    items = bad.setdefault(name, set())
                    if items is not None:
                        items.add(rest[0])
                else:
                    bad[name] = None
            optional = {name for name, f in cls.model_fields.items() if not f.is_required()}
            if not set(bad) <= optional:
                raise
            log.debug("%s: ignoring unexpected field shape(s): %s", cls.__name__, sorted(bad))
            cleaned: dict[str, Any] = {}
            for k, v in data.items():
                if k not in bad:
                    cleaned[k] = v
                elif (drop := bad[k]) is not None:
                    cleaned[k] = [x for i, x in enumerate(v) if i not in drop]  # keep the good items
            return handler(cleaned)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        # Fast path: the same schema without the Python tolerance wrapper at any level, all in pydantic-core.
        # It either succeeds exactly as the tolerant validator would (the wrapper returns the plain result
        # when nothing fails) or fails, and then the tolerant validator runs as before.
        if not args and not kwargs:
            try:
                result: Self = _strict_validator(cls).validate_python(obj)
                return result
            except ValidationError:
                pass
        return super().model_validate(obj, *args, **kwargs)


@functools.cache
def _strict_validator(cls: type[BaseModel]) -> SchemaValidator:
    return SchemaValidator(_strict_schema(cls))  # each model node carries its own config


def _strict_schema(cls: type[BaseModel]) -> Any:
    if not isinstance(cls.__pydantic_core_schema__, dict):
        cls.model_rebuild()  # built on first use (defer_build)
    return _without_tolerance(cls.__pydantic_core_schema__)


def items_from_json(model: type[M], body: bytes) -> list[M] | None:
    """A list body parsed and validated in one pass by pydantic-core, when it is a bare JSON array whose every
    item passes the fast path; else None, and the caller takes the tolerant path (wrappers, odd items)."""
    if body[:64].lstrip()[:1] != b"[":
        return None
    try:
        items: list[M] = _strict_list_validator(model).validate_json(body)
    except ValueError:  # ValidationError included
        return None
    return items


@functools.cache
def _strict_list_validator(model: type[BaseModel]) -> SchemaValidator:
    item = _strict_schema(model)
    if item.get("type") == "definitions":  # recursive models keep their definitions at the top
        return SchemaValidator(
            core_schema.definitions_schema(core_schema.list_schema(item["schema"]), item["definitions"])
        )
    return SchemaValidator(core_schema.list_schema(item))


def _without_tolerance(node: Any) -> Any:
    """A copy of a core schema with every DPGModel._tolerate wrapper replaced by the schema it wraps.

    A model's "before" hook that only repairs input the plain schema refuses anyway (a bare keyword string, a
    null list, "uuid" for "public_uuid") goes too: such input fails the fast path and takes the tolerant one.
    """
    if isinstance(node, list):
        return [_without_tolerance(x) for x in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("function-wrap", "function-before") and isinstance(node.get("function"), dict):
        fn = node["function"].get("function")
        tolerate = kind == "function-wrap" and getattr(fn, "__func__", None) is _TOLERATE
        owner = getattr(fn, "__self__", None)
        repair = kind == "function-before" and getattr(owner, "_fast_path_skips_before", False) is True
        if tolerate or repair:
            inner = dict(_without_tolerance(node["schema"]))
            if "ref" in node:
                inner["ref"] = node["ref"]  # definition-refs elsewhere point at the wrapper's ref
            return inner
    return {k: _without_tolerance(v) for k, v in node.items()}


_TOLERATE = DPGModel.__dict__["_tolerate"].__func__


class Account(DPGModel):
    uuid: str | None = None
    name: str | None = None
    unique_id: str | None = None


class ServiceToken(DPGModel):
    uuid: str | None = None
    name: str | None = None


class User(DPGModel):
    uuid: str | None = None
    name: str | None = None
    role: str | None = None


class Me(DPGModel):
    account: Account | None = None
    service_token: ServiceToken | None = None
    user: User | None = None
    capabilities: list[str] = Field(default_factory=list)


def _uuid_alias(data: Any) -> Any:
    # Objects named by "public_uuid" in the guides; accept a plain "uuid" if the real API sends that instead.
    if isinstance(data, dict) and "public_uuid" not in data and isinstance(data.get("uuid"), str):
        return {**data, "public_uuid": data["uuid"]}
    return data


def _split_keyword(value: Any) -> Any:
    # A bare "ns:value" string (possible on the real API) becomes {namespace, value}.
    if isinstance(value, str):
        ns, sep, rest = value.partition(":")
        return (
            {"namespace": ns, "value": rest} if sep and ns and rest else {"namespace": None, "value": value}
        )
    return value


class Keyword(DPGModel):
    _fast_path_skips_before: ClassVar[bool] = True  # a string keyword is not a dict: refused, then repaired
    namespace: str | None = None
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _accept_string(cls, data: Any) -> Any:
        return _split_keyword(data)

    @property
    def full(self) -> str:
        """The form used in writes and filters: "ns:value", or "value" without a namespace."""
        return f"{self.namespace}:{self.value}" if self.namespace else self.value


class KeywordCount(Keyword):
    count: int | None = None


class NamespaceCount(DPGModel):
    namespace: str | None = None
    count: int | None = None


class Version(DPGModel):
    name: str | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = None
    access: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None


class Credit(DPGModel):
    role: str | None = None
    name: str | None = None


class Crop(DPGModel):
    aspect_ratio: str | None = None
    x: int | None = None
    y: int | None = None
    width: int | None = None
    height: int | None = None


class Geo(DPGModel):
    lat: float | None = None
    lon: float | None = None


class Image(DPGModel):
    _fast_path_skips_before: ClassVar[bool] = True  # nulls for lists and a missing public_uuid are refused
    public_uuid: str
    filename: str | None = None
    title: str | None = None
    description: str | None = None
    alt_text: str | None = None
    creation_date: Stamp = None
    created_at: Stamp = None
    updated_at: Stamp = None
    rating: int | None = None
    rotation: int | None = None
    keywords: list[Keyword] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    exif: dict[str, Any] = Field(default_factory=dict)
    geo: Geo | None = None
    has_video: bool | None = None
    credits: list[Credit] = Field(default_factory=list)
    crops: list[Crop] = Field(default_factory=list)
    set_public_uuids: list[str] = Field(default_factory=list)
    versions: list[Version] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        # An explicit null for a list/dict field means "none": keep the default instead of failing.
        if isinstance(data, dict):
            listy = ("keywords", "credits", "crops", "set_public_uuids", "versions", "metadata", "exif")
            data = {k: v for k, v in data.items() if not (k in listy and v is None)}
            return _uuid_alias(data)
        return data

    def version(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.name == name), None)


class SetImage(Image):
    """An image as listed inside a set: adds that set's visibility."""

    hidden: bool | None = None
    activation_time: Stamp = None


class Set(DPGModel):
    _fast_path_skips_before: ClassVar[bool] = True  # a missing public_uuid is refused, then aliased

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        return _uuid_alias(data)

    public_uuid: str
    name: str | None = None
    description: str | None = None
    colour: str | None = None
    type: str | None = None
    parent_public_uuid: str | None = None
    lead_image_public_uuid: str | None = None
    image_count: int | None = None
    child_count: int | None = None
    website: Any = None  # shape not given by the guides
    position: int | None = None
    created_at: Stamp = None
    updated_at: Stamp = None


class SetNode(Set):
    children: list[SetNode] = Field(default_factory=list)


class Snapshot(DPGModel):
    uuid: str
    set_public_uuid: str | None = None
    created_at: Stamp = None
    image_public_uuids: list[str] = Field(default_factory=list)


class Archive(DPGModel):
    uuid: str | None = None
    archive_uuid: str | None = None
    filename: str | None = None
    url: str | None = None
    size_bytes: int | None = None
    image_count: int | None = None
    expires_at: Stamp = None
    status: str | None = None


class Operation(DPGModel):
    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        # "id" or "operation_uuid" instead of "uuid" (the guides only show "uuid").
        if isinstance(data, dict) and data.get("uuid") in (None, ""):
            for other in ("operation_uuid", "id"):
                if isinstance(data.get(other), str | int) and data.get(other) != "":
                    return {**data, "uuid": data[other]}
        return data

    uuid: str
    status: str = "running"
    type: str | None = None
    image_public_uuids: list[str] = Field(default_factory=list)
    set_public_uuid: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: Stamp = None
    updated_at: Stamp = None

    @field_validator("uuid", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        # "SUCCEEDED", " succeeded" -> "succeeded"; null -> still running (DECISIONS.md, "Tolerance").
        if value is None:
            return "running"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("result", "error", mode="before")
    @classmethod
    def _as_object(cls, value: Any) -> Any:
        # The guides only show `result: {"message": ...}`; keep other shapes instead of dropping them.
        if value is None or isinstance(value, dict):
            return value
        if isinstance(value, str):
            return {"message": value}
        return {"value": value}

    @property
    def is_terminal(self) -> bool:
        # Any status not listed (pending, queued, running, one never seen) counts as still running.
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class CameraCount(DPGModel):
    make: str | None = None
    model: str | None = None
    count: int | None = None


class YearCount(DPGModel):
    year: int | str | None = None
    count: int | None = None


class Facets(DPGModel):
    keywords: list[KeywordCount] = Field(default_factory=list)
    ratings: dict[str, int] = Field(default_factory=dict)
    cameras: list[CameraCount] = Field(default_factory=list)
    years: list[YearCount] = Field(default_factory=list)


class UploadTicket(DPGModel):
    upload_url: str
    file_field: str = "file"
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        # Form fields go out as text anyway: a numeric or boolean signed field must not break the upload.
        if isinstance(value, dict):
            return {
                str(k): (json.dumps(v) if isinstance(v, bool | dict | list) else str(v))
                for k, v in value.items()
                if v is not None
            }
        return value

    transaction_uuid: str | None = None
    expires_at: Stamp = None


class DownloadLink(DPGModel):
    url: str
    filename: str | None = None
    access: str | None = None
    expires_at: Stamp = None


T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list.

    `has_more` comes only from the server (X-Has-More, or a flag in an object-wrapped body), never from the
    page being full. `next_offset` is X-Next-Offset; only when the server says there is more but gives no
    offset is it `offset + len(items)` (plain offset paging).
    """

    items: list[T] = Field(default_factory=list)
    has_more: bool = False
    next_offset: int | None = None
    total: int | None = None


def page_of(
    model: type[T],
    items: list[T],
    *,
    has_more: bool = False,
    next_offset: int | None = None,
    total: int | None = None,
) -> Page[T]:
    """A page of items that are already validated `model`s: built without validating them a second time."""
    page_type: type[Page[T]] = _page_type(model)
    return page_type.model_construct(items=items, has_more=has_more, next_offset=next_offset, total=total)


@functools.cache
def _page_type(model: type[BaseModel]) -> type[Page[Any]]:
    # pydantic keeps parametrized generics only in a weak cache: without this, Page[Image] is rebuilt
    # (a new class and its schema, ~1 ms) on most calls.
    return Page[model]  # type: ignore[valid-type]

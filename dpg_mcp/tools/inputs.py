"""Input field types shared by the tools: checked fully before any request, so bad input never reaches DPG."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationError

from dpg_mcp.tools.errors import ToolInputError, validation_parts

M = TypeVar("M", bound=BaseModel)

_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def check_id(value: str) -> str:
    # Ids go into URL paths: only plain id characters, so "../" can never reach another endpoint.
    if not _ID.match(value):
        raise ValueError("must be an id from an earlier result (letters, digits, '-' or '_')")
    return value


def _iso(value: str) -> str:
    try:
        if len(value) == 10:
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "must be an ISO 8601 date or date-time, e.g. 2026-07-03 or 2026-07-03T18:30:00Z"
        ) from None
    return value


def _iso_zoned(value: str) -> str:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time with a zone, e.g. 2026-12-01T09:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-12-01T09:00:00Z")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Id = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(check_id)]
IsoDate = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_iso)]
IsoZoned = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_iso_zoned)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Limit = Annotated[int, Field(ge=1, le=100)]
Offset = Annotated[int, Field(ge=0, le=1_000_000)]


ImageIds500 = Annotated[list[Id], Field(min_length=1, max_length=500), AfterValidator(_unique)]
ImageIds50 = Annotated[list[Id], Field(min_length=1, max_length=50), AfterValidator(_unique)]


class ArgumentsRefused(ToolInputError):
    """The arguments broke the tool's published schema; nothing was sent."""


def parse_args(model: type[M], raw: Mapping[str, Any] | None) -> M:
    """The one way tool arguments from a host become a model: strictly, as the published schema says.

    Raises ArgumentsRefused naming each bad argument, the rule it broke and, where the set is closed,
    the values allowed.
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise ArgumentsRefused("the arguments must be a JSON object")
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise ArgumentsRefused(validation_parts(exc, allowed=_published_names(model))) from None


def _published_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]

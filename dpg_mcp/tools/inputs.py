"""Input field types shared by the tools: checked fully before any request, so bad input never reaches DPG."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

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


Id = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(check_id)]
IsoDate = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_iso)]
IsoZoned = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_iso_zoned)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Limit = Annotated[int, Field(ge=1, le=100)]
Offset = Annotated[int, Field(ge=0)]


ImageIds500 = Annotated[list[Id], Field(min_length=1, max_length=500), AfterValidator(_unique)]
ImageIds50 = Annotated[list[Id], Field(min_length=1, max_length=50), AfterValidator(_unique)]

"""Compact list items, the untrusted-text fence, and the result size cap.

Gallery text (titles, captions, keywords, filenames, metadata) is written by people and read from files;
it may say anything, including things that read like instructions. In the text block it only ever appears
inside `fence()`; in structured content it sits in data fields.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from dpg_mcp.dpg.models import Image, Stamp

TAG = "untrusted-gallery-text"
# The fence's name, however written inside the text: any case, any separator (spaces, slashes, dashes,
# underscores) once lookalikes are folded (see _folded). Found there, it is replaced in the original text,
# so no opening or closing tag can be imitated, whatever brackets surround it.
_MARKER = re.compile(r"untrusted[\W_]*gallery[\W_]*text", re.IGNORECASE)
MARKER_STANDIN = "(fence-name)"
# Characters that read as a dash but are not "-" even after NFKC.
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"), "-")
# Line breaks an agent reads as a new line, beyond "\n": they would let a one-line field fake a row.
_BREAKS = re.compile("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f]")

MAX_RESULT_BYTES = 80_000  # ~20k tokens: no result goes over this
ITEMS_BUDGET = 60_000  # bytes of list items in structured content, when the caller gives no cost
LIST_BUDGET = 70_000  # bytes a list may add to a result in structure and text together, with room to spare
MAX_FIELD_CHARS = 2_000  # any one metadata value in a result

M = TypeVar("M", bound=BaseModel)


_NON_ASCII = re.compile("[^\x00-\x7f]")


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if unicodedata.category(ch) == "Cf":  # zero-width spaces and joiners, bidi controls, soft hyphens
        return ""
    return unicodedata.normalize("NFKC", ch).translate(_DASHES)


def _folded(text: str) -> tuple[str, list[int]]:
    """`text` as a reader sees it (NFKC, lookalike dashes as "-", invisible format characters gone), with
    the index in `text` of each folded character, so a match found in the fold can be cut from the original.
    ASCII folds to itself, so only the other characters are looked at one by one.
    """
    out: list[str] = []
    where: list[int] = []
    pos = 0
    for m in _NON_ASCII.finditer(text):
        i = m.start()
        out.append(text[pos:i])
        where.extend(range(pos, i))
        part = _fold_char(text[i])
        out.append(part)
        where.extend([i] * len(part))
        pos = i + 1
    out.append(text[pos:])
    where.extend(range(pos, len(text)))
    return "".join(out), where


def neutralise(text: str) -> str:
    """`text` with every spelling of the fence's name replaced, lookalikes and hidden characters included."""
    if text.isascii():
        return _MARKER.sub(MARKER_STANDIN, text)
    folded, where = _folded(text)
    spans = [(where[m.start()], where[m.end() - 1] + 1) for m in _MARKER.finditer(folded)]
    for start, end in reversed(spans):
        text = text[:start] + MARKER_STANDIN + text[end:]
    return text


def fence(text: str) -> str:
    """Wrap untrusted gallery text so it can never read as the tool's own voice, nor close the fence early."""
    return f"<{TAG}>\n{neutralise(text)}\n</{TAG}>"


def one_line(text: str | None) -> str:
    """A one-line field (title, name, filename, keyword) for a row in a list: a line break inside it is
    shown as "\\n", so it can never start a row of its own; other control characters are dropped."""
    if not text:
        return ""
    return _CONTROL.sub("", _BREAKS.sub(lambda m: "\\n" if m.group(0) == "\n" else " ", text))


def size_of(value: Any) -> int:
    if isinstance(value, BaseModel):
        return len(value.model_dump_json(exclude_none=True).encode("utf-8"))
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def cap_items(
    items: Sequence[M], budget: int = ITEMS_BUDGET, cost: Callable[[M], int] | None = None
) -> tuple[list[M], int]:
    """Keep items in order while they fit in `budget` bytes; (kept, omitted count).

    `cost(item)` is what one item adds to the whole result (its JSON plus its line in the text block);
    by default its JSON alone.
    """
    kept: list[M] = []
    used = 0
    for item in items:
        used += (cost(item) if cost is not None else size_of(item)) + 1
        if used > budget and kept:
            break
        kept.append(item)
    return kept, len(items) - len(kept)


def clip(text: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more chars]"


def clip_value(value: Any, limit: int = MAX_FIELD_CHARS) -> Any:
    """Bound any JSON value from DPG (metadata, exif): long strings cut, long lists and dicts trimmed."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, list):
        return [clip_value(v, limit) for v in value[:50]]
    if isinstance(value, dict):
        return {str(k)[:100]: clip_value(v, limit) for k, v in list(value.items())[:100]}
    return value


def fit(value: Any, budget: int) -> Any:
    """`value` with its strings cut shorter and shorter until its JSON fits in `budget` bytes."""
    for limit in (MAX_FIELD_CHARS, 500, 100, 20):
        out = clip_value(value, limit)
        if size_of(out) <= budget:
            return out
    return clip_value(value, 0) if isinstance(value, dict | list) else None


def stamp(value: Stamp) -> str | None:
    """Epoch seconds become ISO 8601 UTC; text stays as DPG gave it."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def thumbnail_url(image: Image) -> str | None:
    v = image.version("thumbnail")
    return v.url if v is not None else None


def keywords_of(image: Image) -> list[str]:
    return [k.full for k in image.keywords if k.full]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def paging_line(shown: int, total: int | None, next_offset: int | None, omitted: int, noun: str) -> str:
    of = f" of {total}" if total is not None else ""
    if (total if total is not None else shown) == 1:  # "1 image", "1 of 1 image", never "1 images"
        head, sep, rest = noun.partition(" ")
        noun = head.removesuffix("s") + sep + rest
    line = f"{shown}{of} {noun}"
    if omitted:
        line += f"; {omitted} more left out to keep the result small"
    if next_offset is not None:
        line += f"; more with offset={next_offset}"
    return line + "."

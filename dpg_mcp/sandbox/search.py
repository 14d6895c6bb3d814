"""GET /v1/images filters and the full-text query (+required -excluded "phrase" prefix*)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .http import parse_when, q_bool, q_int, validation
from .store import ImageRec, kw_full

FILTERS = {
    "query",
    "keyword",
    "namespace",
    "rating",
    "min_rating",
    "exif_property",
    "exif_value",
    "created_at_from",
    "created_at_to",
    "updated_at_from",
    "updated_at_to",
    "creation_date_from",
    "creation_date_to",
    "has_video",
    "has_geo",
    "bbox",
}
EXIF_PROPERTIES = {"make", "model", "lens", "iso", "focal_length", "aperture", "shutter"}
_WORD = re.compile(r"\w+", re.UNICODE)
_TERM = re.compile(r'([+-]?)"([^"]*)"?|([+-]?)(\S+)')


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class Term:
    mode: str  # "+" required, "-" excluded, "" optional
    kind: str  # "word" | "prefix" | "phrase"
    text: str  # for phrase: space-joined tokens


def parse_query(q: str) -> list[Term]:
    terms: list[Term] = []
    for m in _TERM.finditer(q):
        if m.group(2) is not None:
            mode, raw, phrase = m.group(1), m.group(2), True
        else:
            mode, raw, phrase = m.group(3), m.group(4), False
        prefix = not phrase and raw.endswith("*")
        toks = tokens(raw.rstrip("*") if prefix else raw)
        if not toks:
            continue
        if prefix and len(toks) == 1:
            terms.append(Term(mode, "prefix", toks[0]))
        elif len(toks) == 1 and not phrase:
            terms.append(Term(mode, "word", toks[0]))
        else:
            terms.append(Term(mode, "phrase", " ".join(toks)))
    return terms


def _fields(im: ImageRec) -> list[tuple[int, list[str]]]:
    kw_text = " ".join(f"{kw_full(k)} {k[1]}" for k in im.keywords)
    meta = " ".join(str(v) for v in im.metadata.values())
    return [
        (3, tokens(im.title)),
        (2, tokens(kw_text)),
        (2, tokens(im.filename)),
        (1, tokens(im.description)),
        (1, tokens(im.alt_text)),
        (1, tokens(meta)),
        (1, tokens(im.creation_date or "")),
    ]


def _term_weight(term: Term, fields: list[tuple[int, list[str]]]) -> int:
    best = 0
    for weight, toks in fields:
        if term.kind == "word":
            hit = term.text in toks
        elif term.kind == "prefix":
            hit = any(t.startswith(term.text) for t in toks)
        else:
            hit = f" {term.text} " in f" {' '.join(toks)} "
        if hit:
            best = max(best, weight)
    return best


def score(im: ImageRec, terms: list[Term]) -> int | None:
    """None = no match; else a relevance score."""
    fields = _fields(im)
    total, optional_hit = 0, False
    has_required = any(t.mode == "+" for t in terms)
    has_optional = any(t.mode == "" for t in terms)
    for t in terms:
        w = _term_weight(t, fields)
        if t.mode == "-":
            if w:
                return None
        elif t.mode == "+":
            if not w:
                return None
            total += w
        else:
            optional_hit = optional_hit or bool(w)
            total += w
    if has_optional and not has_required and not optional_hit:
        return None
    return total


@dataclass
class Filters:
    terms: list[Term] | None = None
    keyword: tuple[str | None, str] | None = None
    namespace: str | None = None
    rating: int | None = None
    min_rating: int | None = None
    exif_property: str | None = None
    exif_value: str | None = None
    ranges: dict[str, tuple[float | None, float | None]] | None = None
    has_video: bool | None = None
    has_geo: bool | None = None
    bbox: tuple[float, float, float, float] | None = None


def parse_filters(request: Request) -> Filters:
    qp = request.query_params
    f = Filters()
    if qp.get("query") is not None:
        if len(qp["query"]) > 500:
            raise validation("query", "query must be at most 500 characters")
        f.terms = parse_query(qp["query"])
        if not f.terms and qp["query"].strip():
            raise validation("query", "query has no searchable words")
        f.terms = f.terms or None
    ns = qp.get("namespace")
    if ns is not None:
        if not ns.strip():
            raise validation("namespace", "namespace must not be empty")
        f.namespace = ns.strip().lower()
    kw = qp.get("keyword")
    if kw is not None:
        if not kw.strip():
            raise validation("keyword", "keyword must not be empty")
        if f.namespace is None and ":" in kw:
            a, _, b = kw.partition(":")
            f.keyword = (a.strip().lower(), b.strip())
        else:
            f.keyword = (f.namespace, kw.strip())
    f.rating = q_int(request, "rating", lo=0, hi=5)
    f.min_rating = q_int(request, "min_rating", lo=0, hi=5)
    prop, val = qp.get("exif_property"), qp.get("exif_value")
    # Any property name is accepted (the real API knows more than the sandbox stores); exif_value alone
    # matches any property with that value.
    if prop is not None and not prop.strip():
        raise validation("exif_property", "exif_property must not be empty")
    f.exif_property, f.exif_value = prop, val
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for name in ("created_at", "updated_at", "creation_date"):
        lo_raw, hi_raw = qp.get(f"{name}_from"), qp.get(f"{name}_to")
        lo = parse_when(lo_raw, f"{name}_from") if lo_raw is not None else None
        hi = parse_when(hi_raw, f"{name}_to", end_of_day=True) if hi_raw is not None else None
        if lo is not None and hi is not None and lo > hi:
            raise validation(f"{name}_to", f"{name}_to must not be before {name}_from")
        if lo is not None or hi is not None:
            ranges[name] = (lo, hi)
    f.ranges = ranges
    f.has_video = q_bool(request, "has_video")
    f.has_geo = q_bool(request, "has_geo")
    if qp.get("bbox") is not None:
        parts = qp["bbox"].split(",")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            nums = []
        if len(nums) != 4:
            raise validation("bbox", "bbox must be minLon,minLat,maxLon,maxLat (four numbers)")
        min_lon, min_lat, max_lon, max_lat = nums
        if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
            raise validation(
                "bbox",
                "bbox must be minLon,minLat,maxLon,maxLat with -180..180 and -90..90, minLat <= maxLat",
            )
        f.bbox = (min_lon, min_lat, max_lon, max_lat)
    return f


def _exif_match(v: Any, want: str) -> bool:
    if v is None:
        return False
    s, w = str(v).lower(), want.strip().lower()
    if s == w:
        return True
    try:
        return float(s) == float(w)
    except ValueError:
        return False


def matches(im: ImageRec, f: Filters) -> bool:
    if f.keyword is not None:
        ns, val = f.keyword
        if not any(k[1].lower() == val.lower() and (ns is None or (k[0] or "") == ns) for k in im.keywords):
            return False
    elif f.namespace is not None and not any((k[0] or "") == f.namespace for k in im.keywords):
        return False
    if f.rating is not None and im.rating != f.rating:
        return False
    if f.min_rating is not None and im.rating < f.min_rating:
        return False
    if f.exif_property is not None:
        v = im.exif.get(f.exif_property.strip().lower())
        if f.exif_value is None:
            if v is None:
                return False
        elif not _exif_match(v, f.exif_value):
            return False
    elif f.exif_value is not None and not any(_exif_match(v, f.exif_value) for v in im.exif.values()):
        return False
    for name, (lo, hi) in (f.ranges or {}).items():
        if name == "creation_date":
            if im.creation_date is None:
                return False
            ts = parse_when(im.creation_date, "creation_date")
        else:
            ts = im.created_at if name == "created_at" else im.updated_at
        if (lo is not None and ts < lo) or (hi is not None and ts > hi):
            return False
    if f.has_video is not None and im.has_video != f.has_video:
        return False
    if f.has_geo is not None and (im.geo is not None) != f.has_geo:
        return False
    if f.bbox is not None:
        if im.geo is None:
            return False
        min_lon, min_lat, max_lon, max_lat = f.bbox
        lon, lat = im.geo["lon"], im.geo["lat"]
        lon_ok = min_lon <= lon <= max_lon if min_lon <= max_lon else (lon >= min_lon or lon <= max_lon)
        if not (lon_ok and min_lat <= lat <= max_lat):
            return False
    return True


def run(images: list[ImageRec], f: Filters) -> list[ImageRec]:
    hits = [im for im in images if matches(im, f)]
    if f.terms:
        scored = [(s, im) for im in hits if (s := score(im, f.terms)) is not None]
        scored.sort(key=lambda si: (-si[0], -si[1].created_at, si[1].public_uuid))
        return [im for _, im in scored]
    hits.sort(key=lambda im: (-im.created_at, im.public_uuid))
    return hits


def facets(images: list[ImageRec]) -> dict[str, Any]:
    kw: dict[tuple[str, str], list[Any]] = {}
    ratings = {str(i): 0 for i in range(6)}
    cams: dict[tuple[str, str], int] = {}
    years: dict[int, int] = {}
    for im in images:
        for ns, v in im.keywords:
            key = ((ns or ""), v.lower())
            kw.setdefault(key, [ns, v, 0])[2] += 1
        ratings[str(im.rating)] += 1
        if im.exif.get("make"):
            ck = (str(im.exif.get("make")), str(im.exif.get("model", "")))
            cams[ck] = cams.get(ck, 0) + 1
        if im.creation_date:
            y = int(im.creation_date[:4])
            years[y] = years.get(y, 0) + 1
    return {
        "keywords": [
            {"namespace": ns, "value": v, "count": c}
            for ns, v, c in sorted(kw.values(), key=lambda t: (-t[2], t[0] or "", t[1].lower()))
        ],
        "ratings": ratings,
        "cameras": [
            {"make": m, "model": mo, "count": c}
            for (m, mo), c in sorted(cams.items(), key=lambda t: (-t[1], t[0]))
        ],
        "years": [{"year": y, "count": c} for y, c in sorted(years.items())],
    }

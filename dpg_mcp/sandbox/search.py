"""GET /v1/images filters and the full-text query (+required -excluded "phrase" prefix*)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .http import parse_when, q_bool, q_int, validation
from .store import ImageRec, Store, kw_full

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
    """Every match, best first, by scanning the records: the reference the index is checked against."""
    hits = [im for im in images if matches(im, f)]
    if f.terms:
        scored = [(s, im) for im in hits if (s := score(im, f.terms)) is not None]
        scored.sort(key=lambda si: (-si[0], -si[1].created_at, si[1].public_uuid))
        return [im for _, im in scored]
    hits.sort(key=lambda im: (-im.created_at, im.public_uuid))
    return hits


def page(store: Store, f: Filters, limit: int, offset: int) -> tuple[list[ImageRec], int]:
    """One page of matches in `run`'s order, and the total, from the index: O(limit) records touched."""
    idx = index_of(store)
    buckets = idx.select(f)
    total = sum(b.bit_count() for b in buckets)
    out: list[ImageRec] = []
    for b in buckets:
        n = b.bit_count()
        if offset >= n:
            offset -= n
            continue
        out.extend(idx.records(_top_slots(_drop_top(b, offset), limit - len(out))))
        offset = 0
        if len(out) >= limit:
            break
    return out, total


def find_all(store: Store, f: Filters) -> list[ImageRec]:
    """Every match, in no particular order (facets count them)."""
    idx = index_of(store)
    out: list[ImageRec] = []
    for b in idx.select(f):
        out.extend(idx.records(_top_slots(b, b.bit_count())))
    return out


# --- the index -------------------------------------------------------------------------------------------
#
# Every image has a slot; slot order is result order (newest first, then by uuid), highest slot first, so a
# set of images is one int used as a bitset and a page is its highest `limit` bits. Postings map a keyword,
# namespace, rating or (field weight, word) to the bitset of its images; a query is a few big-int ANDs and
# ORs, whatever the gallery's size. Slots of deleted images stay empty; a new image that sorts first (an
# upload: the newest) takes the next slot, anything else rebuilds the index.


def _top_slots(x: int, k: int) -> list[int]:
    """The `k` highest set bits of `x`, highest first."""
    out: list[int] = []
    if k <= 0 or not x:
        return out
    s = bin(x)
    top = len(s) - 1  # s[i] is bit top - i
    i = s.find("1", 2)
    while i >= 0 and len(out) < k:
        out.append(top - i)
        i = s.find("1", i + 1)
    return out


def _drop_top(x: int, k: int) -> int:
    """`x` without its `k` highest set bits: a binary search on popcounts, no walk over the skipped bits."""
    if k <= 0:
        return x
    lo, hi = 0, x.bit_length()  # smallest p with popcount(x >> p) <= k
    while lo < hi:
        mid = (lo + hi) // 2
        if (x >> mid).bit_count() <= k:
            hi = mid
        else:
            lo = mid + 1
    return x & ((1 << lo) - 1)


def _order_key(im: ImageRec) -> tuple[float, str]:
    return (-im.created_at, im.public_uuid)


Posting = tuple[dict[Any, int], Any]


class Index:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.build()

    def build(self) -> None:
        self.store.touched.clear()
        ordered = sorted(self.store.images.values(), key=_order_key, reverse=True)
        self.recs: list[ImageRec | None] = []
        self.keys: list[tuple[float, str]] = []
        self.slot: dict[str, int] = {}
        self.refs: list[list[Posting]] = []
        self.all = 0
        self.kw: dict[tuple[str, str], int] = {}  # (namespace or "", value lowercased)
        self.kw_any: dict[str, int] = {}  # value lowercased, any namespace
        self.ns: dict[str, int] = {}
        self.rating: dict[int, int] = {}
        self.flags: dict[str, int] = {}  # "video", "geo"
        self.words: list[dict[str, int]] = [{}, {}, {}, {}]  # [field weight][token]
        self._vocab: list[str] | None = None
        for im in ordered:
            self._append(im)

    def _append(self, im: ImageRec) -> None:
        slot = len(self.recs)
        self.recs.append(im)
        self.keys.append(_order_key(im))
        self.refs.append([])
        self.slot[im.public_uuid] = slot
        self._add(slot, im)

    def _add(self, slot: int, im: ImageRec) -> None:
        bit = 1 << slot
        refs: list[Posting] = []

        def post(d: dict[Any, int], key: Any) -> None:
            d[key] = d.get(key, 0) | bit
            refs.append((d, key))

        for ns, v in dict.fromkeys(im.keywords):
            post(self.kw, (ns or "", v.lower()))
            post(self.kw_any, v.lower())
            post(self.ns, ns or "")
        post(self.rating, im.rating)
        if im.has_video:
            post(self.flags, "video")
        if im.geo is not None:
            post(self.flags, "geo")
        for weight, toks in _fields(im):
            for t in set(toks):
                if t not in self.words[weight]:
                    self._vocab = None
                post(self.words[weight], t)
        self.refs[slot] = refs
        self.all |= bit

    def _remove(self, slot: int) -> None:
        mask = ~(1 << slot)
        for d, key in self.refs[slot]:
            if key in d:  # one image may post the same key twice (a word in two fields of a weight)
                rest = d[key] & mask
                if rest:
                    d[key] = rest
                else:
                    del d[key]
                    self._vocab = None
        self.refs[slot] = []
        self.all &= mask

    def sync(self) -> None:
        """Take in what changed since the last query (see Store.changed)."""
        store = self.store
        touched, store.touched = store.touched, set()
        added: list[ImageRec] = []
        for u in touched:
            slot = self.slot.get(u)
            im = store.images.get(u)
            if slot is not None:
                self._remove(slot)
                if im is None:
                    del self.slot[u]
                    self.recs[slot] = None
                    continue
                if _order_key(im) != self.keys[slot]:
                    return self.build()
                self.recs[slot] = im
                self._add(slot, im)
            elif im is not None:
                added.append(im)
        if len(self.slot) + len(added) != len(store.images):  # changed without telling us: start over
            return self.build()
        for im in sorted(added, key=_order_key, reverse=True):
            first = next((k for k in reversed(self.keys) if k is not None), None)
            if first is not None and _order_key(im) >= first:
                return self.build()  # would not sort first: no free slot in the right place
            self._append(im)
        if len(self.recs) > 2 * len(self.slot) + 64:
            self.build()  # mostly empty slots after many deletes

    def records(self, slots: list[int]) -> list[ImageRec]:
        return [r for s in slots if (r := self.recs[s]) is not None]

    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = sorted(set().union(*self.words[1:]))
        return self._vocab

    # --- queries ---------------------------------------------------------------------------------------
    def select(self, f: Filters) -> list[int]:
        """The matches as bitsets, one per score, best score first (a single one without a text query)."""
        mask = self.all
        if f.keyword is not None:
            ns, val = f.keyword
            mask &= self.kw_any.get(val.lower(), 0) if ns is None else self.kw.get((ns, val.lower()), 0)
        elif f.namespace is not None:
            mask &= self.ns.get(f.namespace, 0)
        if f.rating is not None:
            mask &= self.rating.get(f.rating, 0)
        if f.min_rating is not None:
            mask &= _or(b for r, b in self.rating.items() if r >= (f.min_rating or 0))
        for flag, want in (("video", f.has_video), ("geo", f.has_geo)):
            if want is not None:
                bits = self.flags.get(flag, 0)
                mask &= bits if want else ~bits
        if f.exif_property is not None or f.exif_value is not None or f.ranges or f.bbox is not None:
            mask = self._residual(mask, f)
        if not f.terms:
            return [mask] if mask else []
        buckets = {0: mask}
        for term in f.terms:
            exact = self._weights(term, _or(buckets.values()))
            nxt: dict[int, int] = {}
            for total, b in buckets.items():
                for w in (0,) if term.mode == "-" else (1, 2, 3) if term.mode == "+" else (0, 1, 2, 3):
                    hit = b & exact[w]
                    if hit:
                        nxt[total + w] = nxt.get(total + w, 0) | hit
            buckets = nxt
        if any(t.mode == "" for t in f.terms) and not any(t.mode == "+" for t in f.terms):
            buckets.pop(0, None)  # optional words only: at least one must match
        return [buckets[s] for s in sorted(buckets, reverse=True)]

    def _weights(self, term: Term, among: int) -> list[int]:
        """Per weight 0..3: the images whose best field weight for `term` is exactly that."""
        if term.kind == "word":
            per = [0] + [self.words[w].get(term.text, 0) for w in (1, 2, 3)]
        elif term.kind == "prefix":
            vocab = self.vocab()
            start = bisect.bisect_left(vocab, term.text)
            end = bisect.bisect_left(vocab, term.text + "\U0010ffff")
            per = [0] + [_or(self.words[w].get(t, 0) for t in vocab[start:end]) for w in (1, 2, 3)]
        else:
            # Every word of the phrase somewhere, then check the order on those few records.
            cand = among
            for t in term.text.split():
                cand &= _or(self.words[w].get(t, 0) for w in (1, 2, 3))
            per = [0, 0, 0, 0]
            for slot in _top_slots(cand, cand.bit_count()):
                im = self.recs[slot]
                w = _term_weight(term, _fields(im)) if im is not None else 0
                per[w] |= 1 << slot
        w3, w2, w1 = per[3], per[2] & ~per[3], per[1] & ~per[2] & ~per[3]
        return [self.all & ~(w1 | w2 | w3), w1, w2, w3]

    def _residual(self, mask: int, f: Filters) -> int:
        """Filters with no posting (exif, date ranges, bbox): checked on each candidate record."""
        for slot in _top_slots(mask, mask.bit_count()):
            im = self.recs[slot]
            if im is None or not matches(im, f):
                mask &= ~(1 << slot)
        return mask


def _or(bitsets: Iterable[int]) -> int:
    out = 0
    for b in bitsets:
        out |= b
    return out


def index_of(store: Store) -> Index:
    idx = store.search_index
    if not isinstance(idx, Index):
        idx = store.search_index = Index(store)
    else:
        idx.sync()
    return idx


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

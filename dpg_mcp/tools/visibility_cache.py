"""What a principal's sets hide, read from DPG and kept briefly (tools/visibility.py marks results with it).

DPG keeps visibility per set and shows it only in a set's image list: the tree first (its `hidden_count`
says which sets hide anything), then only those sets' lists, concurrently. What was read is kept per
principal (`VisibilityCache`, on the caller's state) so a repeat search does not re-read it:
- for `FRESH_S` after it was last checked it is used as is, unless a write went out through this principal's
  client since (its `changes` counter moved): then it is revalidated at once, so marks are right just after
  our own publish_set, restore_set, add/remove or delete;
- after that it is revalidated with `If-None-Match` (DPG answers an unchanged tree or page with an empty 304).
So a change made elsewhere (another principal, another replica, the web app, an embargo passing) shows within
`FRESH_S` of the next search; every replica revalidates against DPG, none trusts another's copy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import anyio

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.models import SetImage, SetNode
from dpg_mcp.tools.render import stamp

MAX_SETS_READ = 10  # sets whose lists are read to mark one page of results
MAX_SET_PAGES = 10  # pages of 200 read per set
SET_PAGE = 200
FRESH_S = 2.0  # what was checked this recently is used without asking DPG (see the module note)
MAX_CACHED_SETS = 256


def _walk(nodes: Sequence[SetNode]) -> list[SetNode]:
    out: list[SetNode] = []
    for n in nodes:
        out.append(n)
        out += _walk(n.children)
    return out


def _hidden_of(images: Iterable[SetImage]) -> dict[str, str | None]:
    return {i.public_uuid: stamp(i.activation_time) for i in images if i.hidden}


def _hides_something(node: SetNode) -> bool:
    count = (node.model_extra or {}).get("hidden_count")
    return not isinstance(count, int) or count > 0  # unknown: it may


@dataclass
class _Checked:
    """When an entry was last confirmed, and the client's write counter at that moment."""

    at: float = float("-inf")
    changes: int = -1


@dataclass
class _Tree:
    etag: str | None
    hiding: dict[str, bool]  # set uuid -> may hide something
    checked: _Checked = field(default_factory=_Checked)


@dataclass
class _SetList:
    etags: list[str | None]  # one per page read, in order; a None anywhere: re-read whole
    hidden: dict[str, str | None]  # image uuid -> release time (None: hidden with no release)
    checked: _Checked = field(default_factory=_Checked)


class VisibilityCache:
    """One principal's tree and hiding sets' lists, revalidated with conditional GETs (see module note)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tree: _Tree | None = None
        self._sets: OrderedDict[str, _SetList] = OrderedDict()
        self._lock = anyio.Lock()  # concurrent searches wait for one check instead of each making their own

    def _fresh(self, checked: _Checked, client: DPGClient) -> bool:
        return checked.changes == client.changes and self._clock() - checked.at < FRESH_S

    def _stamp(self, client: DPGClient) -> _Checked:
        return _Checked(self._clock(), client.changes)

    async def hidden_in(
        self, client: DPGClient, set_ids: Iterable[str]
    ) -> tuple[list[dict[str, str | None]], int, int]:
        """The hidden maps of the sets among `set_ids` that may hide something (at most MAX_SETS_READ),
        how many such sets there are and how many were checked."""
        wanted_in = list(dict.fromkeys(set_ids))
        async with self._lock:
            async with anyio.create_task_group() as tg:  # the tree and the lists we hold, checked together
                tg.start_soon(self._check_tree, client)
                for sid in wanted_in:
                    entry = self._sets.get(sid)
                    if entry is not None and not self._fresh(entry.checked, client):
                        tg.start_soon(self._check_set, client, sid, entry)
            hiding = self._tree.hiding if self._tree else {}
            wanted = [s for s in wanted_in if hiding.get(s, True)]
            chosen = wanted[:MAX_SETS_READ]
            async with anyio.create_task_group() as tg:
                for sid in chosen:
                    if sid not in self._sets:
                        tg.start_soon(self._read_set, client, sid)
            lists = [self._sets[s] for s in chosen if s in self._sets]
            for sid in chosen:
                if sid in self._sets:
                    self._sets.move_to_end(sid)
            while len(self._sets) > MAX_CACHED_SETS:
                self._sets.popitem(last=False)
            return [e.hidden for e in lists], len(wanted), len(chosen)

    async def _check_tree(self, client: DPGClient) -> None:
        tree = self._tree
        if tree is not None and self._fresh(tree.checked, client):
            return
        checked = self._stamp(client)  # taken before asking: a write landing meanwhile is seen next time
        nodes, etag = await client.set_tree_if_changed(tree.etag if tree else None)
        if nodes is None and tree is not None:
            tree.checked = checked
            return
        hiding = {n.public_uuid: _hides_something(n) for n in _walk(nodes or [])}
        self._tree = _Tree(etag, hiding, checked)

    async def _check_set(self, client: DPGClient, sid: str, entry: _SetList) -> None:
        checked = self._stamp(client)
        if None in entry.etags:
            self._sets.pop(sid, None)  # nothing to revalidate with: read again
            return
        if len(entry.etags) == 1:  # the common case: one page, and a changed one is its own new reading
            got, etag = await client.set_images_if_changed(sid, SET_PAGE, 0, entry.etags[0])
            if got is None:
                entry.checked = checked
            elif got.has_more:
                self._sets.pop(sid, None)  # it grew past a page: read whole below
            else:
                self._sets[sid] = _SetList([etag], _hidden_of(got.items), checked)
            return
        unchanged = [True]

        async def page(i: int, etag: str | None) -> None:
            got, _ = await client.set_images_if_changed(sid, SET_PAGE, i * SET_PAGE, etag)
            if got is not None:
                unchanged[0] = False

        async with anyio.create_task_group() as tg:
            for i, etag in enumerate(entry.etags):
                tg.start_soon(page, i, etag)
        if unchanged[0]:
            entry.checked = checked
        else:
            self._sets.pop(sid, None)  # changed: read whole below

    async def _read_set(self, client: DPGClient, sid: str) -> None:
        checked = self._stamp(client)
        etags: list[str | None] = []
        hidden: dict[str, str | None] = {}
        offset = 0
        for _ in range(MAX_SET_PAGES):
            page, etag = await client.set_images_if_changed(sid, SET_PAGE, offset, None)
            assert page is not None  # no If-None-Match was sent
            etags.append(etag if offset == len(etags) * SET_PAGE else None)
            hidden.update(_hidden_of(page.items))
            if not page.has_more or page.next_offset is None or not page.items:
                break
            offset = page.next_offset
        self._sets[sid] = _SetList(etags, hidden, checked)

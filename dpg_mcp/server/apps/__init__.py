"""MCP Apps views (`io.modelcontextprotocol/ui`): a photo grid, a set tree and an archive card.

The views are plain HTML documents shipped as package data (script and styles inline, no build step); the
tools layer knows nothing of them: each view reads the structured content the tool already returns.

Graceful without Apps: nothing is stamped on a tool statically. The apps middleware adds `_meta.ui` to
tools/list and shows the `ui://` resources only to a client that negotiated the extension, so any other host
sees byte for byte what a `--no-apps` build shows. Per caller, a view's resources/read carries
- its CSP (`_meta.ui.csp.resourceDomains`): exactly the origins of the image URLs DPG returned to this caller
  (never a hard-coded media host);
- the tools this caller may use from the view, so the view offers only those actions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources as pkg_resources
from typing import Any
from urllib.parse import urlsplit

from mcp.server import ServerRequestContext
from mcp.server.apps import Apps, client_supports_apps

from dpg_mcp.server.caller import DPGState, current_caller

VIEW_URIS = {
    "grid": "ui://dpg/grid.html",
    "sets": "ui://dpg/sets.html",
    "archive": "ui://dpg/archive.html",
}
# Which view renders which tool's result.
TOOL_VIEWS = {
    "search_images": VIEW_URIS["grid"],
    "browse_sets": VIEW_URIS["sets"],
    "build_archive": VIEW_URIS["archive"],
}
# The tools a view may call through the host; the view is told which of them this caller has.
VIEW_ACTIONS = frozenset(
    {
        "search_images",
        "browse_sets",
        "get_image",
        "rate_images",
        "add_to_set",
        "remove_from_set",
        "build_archive",
        "check_operation",
        "caption_image",
        "delete_image",
    }
)
_TITLES = {"grid": "Photo grid", "sets": "Set tree", "archive": "Archive"}
_CONFIG_MARK = "<!--DPG_CONFIG-->"
_COMMON_MARK = "<!--DPG_COMMON-->"
_MAX_CALLERS = 10_000  # principals remembered (hosted serves many tokens)
_MAX_ORIGINS = 16  # a caller's media hosts are few; a bound keeps a hostile answer from growing the CSP


def _part(name: str) -> str:
    return (pkg_resources.files(__package__) / name).read_text(encoding="utf-8")


def view_html(name: str) -> str:
    """One self-contained document: the view with the shared script and styles inlined (no build step)."""
    common = f"<style>{_part('common.css')}</style>\n<script>{_part('common.js')}</script>"
    return _part(f"{name}.html").replace(_COMMON_MARK, common, 1)


def build_apps() -> Apps:
    apps = Apps()
    for name, uri in VIEW_URIS.items():
        apps.add_html_resource(
            uri,
            view_html(name),
            name=f"view_{name}",
            title=_TITLES[name],
            prefers_border=False,
        )  # no CSP here: it differs per caller, so resources/read carries it (_fill_view)
    return apps


def origin_of(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _urls(value: Any, depth: int = 0) -> Iterable[str]:
    """Every image URL inside a structured result (thumbnail_url, url fields), bounded in depth."""
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, v in value.items():
            if key in ("thumbnail_url", "url") and isinstance(v, str):
                yield v
            elif isinstance(v, dict | list):
                yield from _urls(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _urls(v, depth + 1)


class AppViews:
    """Per-caller memory of the media origins DPG returned (keyed by principal), and the view config."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def _origins_of(self, state: DPGState) -> set[str]:
        seen = self._seen.get(state.principal)
        if seen is None:
            if len(self._seen) >= _MAX_CALLERS:  # hosted: many tokens; forget the oldest caller first
                self._seen.pop(next(iter(self._seen)))
            seen = self._seen[state.principal] = set()
        return seen

    def note(self, state: DPGState, structured: Any) -> None:
        seen = self._origins_of(state)
        for url in _urls(structured):
            origin = origin_of(url)
            if origin and len(seen) < _MAX_ORIGINS:
                seen.add(origin)

    async def origins(self, state: DPGState) -> list[str]:
        seen = self._origins_of(state)
        if not seen:
            # Nothing shown to this caller yet (a host reads views before the first call): ask DPG for one
            # image and take the origins of the version URLs it returns.
            try:
                page = await state.client.list_images(limit=1, offset=0)
            except Exception:  # no origin learnt: the CSP stays empty, the view shows titles without images
                return []
            for img in page.items:
                for v in img.versions:
                    origin = origin_of(v.url)
                    if origin:
                        seen.add(origin)
        return sorted(seen)

    def config(self, state: DPGState) -> dict[str, Any]:
        return {"tools": sorted(VIEW_ACTIONS & state.visible), "read_only": state.settings.read_only}


def _config_script(config: dict[str, Any]) -> str:
    # JSON in a script element: "<" escaped so no value can close the element.
    data = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script id="dpg-config" type="application/json">{data}</script>'


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def apps_middleware(views: AppViews) -> Any:
    """Runs inside the caller middleware (the caller is current). Only Apps clients see anything of Apps."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        result = await call_next(ctx)
        if result is None:
            return result
        supports = client_supports_apps(ctx)
        state = current_caller()
        if ctx.method == "tools/list" and supports:
            for tool in _get(result, "tools") or []:
                uri = TOOL_VIEWS.get(_get(tool, "name"))
                if uri is None:
                    continue
                if isinstance(tool, dict):
                    meta = tool.setdefault("_meta", {}) or {}
                    meta["ui"] = {"resourceUri": uri}
                    tool["_meta"] = meta
                else:
                    tool.meta = {**(tool.meta or {}), "ui": {"resourceUri": uri}}
        elif ctx.method == "resources/list" and not supports:
            listed = _get(result, "resources")
            if isinstance(listed, list):
                kept = [r for r in listed if not str(_get(r, "uri")).startswith("ui://")]
                if isinstance(result, dict):
                    result["resources"] = kept
                else:
                    result.resources = kept
        elif ctx.method == "resources/read" and state is not None:
            await _fill_view(views, state, result)
        elif ctx.method == "tools/call" and state is not None:
            views.note(state, _get(result, "structuredContent") or _get(result, "structured_content"))
        return result

    return middleware


async def _fill_view(views: AppViews, state: DPGState, result: Any) -> None:
    for content in _get(result, "contents") or []:
        uri = str(_get(content, "uri"))
        if not uri.startswith("ui://dpg/"):
            continue
        text = _get(content, "text")
        if isinstance(text, str):
            text = text.replace(_CONFIG_MARK, _config_script(views.config(state)), 1)
        csp = {"resourceDomains": await views.origins(state)}
        if isinstance(content, dict):
            content["text"] = text
            meta = content.get("_meta") or {}
            meta["ui"] = {**(meta.get("ui") or {}), "csp": csp}
            content["_meta"] = meta
        else:
            content.text = text
            meta = dict(content.meta or {})
            meta["ui"] = {**(meta.get("ui") or {}), "csp": csp}
            content.meta = meta

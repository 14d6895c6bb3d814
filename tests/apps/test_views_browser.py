"""The MCP Apps views in a real browser: headless Chromium, a test host page doing the host side of MCP Apps,
each view in a sandboxed iframe, every tools/call relayed to a real dpg-mcp over the DPG sandbox."""

from __future__ import annotations

import io
import re
import time
import zipfile
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from tests.apps.conftest import screenshot

pytestmark = pytest.mark.slow

LINK = "const a = document.querySelector('.archive-link'); return a && a.href"
PLANTED = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> zebrafinch'


def wait(drv: Any, check: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Polls `check(drv)` until truthy (bounded); returns its value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check(drv)
        except Exception as exc:  # the element may not be there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def open_view(drv: Any, host: str, who: str, tool: str, args: dict[str, Any], theme: str = "light") -> str:
    drv.switch_to.default_content()
    drv.get(host)
    uri = drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "openView(...Array.from(arguments).slice(0, 4)).then(done, (e) => done('ERR ' + e));",
        who,
        tool,
        args,
        theme,
    )
    assert not str(uri).startswith("ERR"), uri
    drv.switch_to.frame("view")
    return str(uri)


def host_log(drv: Any) -> dict[str, Any]:
    drv.switch_to.default_content()
    log: dict[str, Any] = drv.execute_script("return window.hostLog")
    drv.switch_to.frame("view")
    return log


def js(drv: Any, script: str, *args: Any) -> Any:
    return drv.execute_script(script, *args)


def tiles(drv: Any) -> list[dict[str, Any]]:
    return list(
        js(
            drv,
            "return Array.from(document.querySelectorAll('.tile')).map(t => ({uuid: t.dataset.uuid,"
            " title: t.querySelector('.title').textContent, rating: t.querySelector('.stars').dataset.rating,"
            " badges: Array.from(t.querySelectorAll('[data-badge]')).map(b => b.dataset.badge),"
            " loaded: t.querySelector('img').complete && t.querySelector('img').naturalWidth > 0}))",
        )
    )


def all_loaded(drv: Any) -> bool:
    """True once every thumbnail decoded; else raises with the ones still missing (wait() reports it)."""
    shown = tiles(drv)
    missing = [t["uuid"] for t in shown if not t["loaded"]]
    if not shown or missing:
        srcs = js(drv, "return Array.from(document.querySelectorAll('.tile img')).map(i => i.src)")
        raise AssertionError(f"{len(shown)} tiles, not loaded: {missing} ({srcs})")
    return True


def archive_trouble(drv: Any) -> None:
    """While no link shows: what the view says instead (wait() reports the last of it)."""
    said = js(drv, "return document.querySelector('.card, .note') ? document.body.innerText : ''")
    raise AssertionError(f"no archive link yet; the view says: {said!r}")


def dpg_images(dpg: httpx2.Client, path: str = "/v1/images", **params: Any) -> list[dict[str, Any]]:
    r = dpg.get(path, params=params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()
    return data


def actions(drv: Any) -> list[str]:
    script = "return Array.from(document.querySelectorAll('[data-action]')).map(b => b.dataset.action)"
    return list(js(drv, script))


def test_grid_shows_the_right_photos_all_loaded_with_paging_and_preview(
    driver: Any, host_url: str, sandbox_url: str, dpg: httpx2.Client
) -> None:
    uri = open_view(driver, host_url, "admin", "search_images", {"min_rating": 3, "limit": 12})
    assert uri == "ui://dpg/grid.html"
    expected = dpg_images(dpg, min_rating=3, limit=12)
    wait(driver, all_loaded, what="every thumbnail loaded")
    shown = tiles(driver)
    assert [t["uuid"] for t in shown] == [i["public_uuid"] for i in expected]
    assert [t["title"] for t in shown] == [i["title"] or i["filename"] or "(untitled)" for i in expected]
    assert [t["rating"] for t in shown] == [str(i["rating"]) for i in expected]
    log = host_log(driver)
    # The CSP names exactly the media origin of the URLs DPG returned, and the thumbnails loaded under it.
    urls = [urlsplit(v["url"]) for i in expected for v in i["versions"] if v["url"]]
    media = {f"{u.scheme}://{u.netloc}" for u in urls}
    assert log["csp"] == {"resourceDomains": sorted(media)}
    assert log["mimeType"] == "text/html;profile=mcp-app"
    assert log["initialized"] and log["sizes"], "handshake and size reports"
    screenshot(driver, "grid.png")
    driver.switch_to.frame("view")

    # Paging: the next page is the next page of DPG's answer.
    driver.find_element("css selector", "[data-page=next]").click()
    page2 = dpg_images(dpg, min_rating=3, limit=12, offset=12)
    wait(driver, lambda d: [t["uuid"] for t in tiles(d)] == [i["public_uuid"] for i in page2], what="page 2")
    wait(driver, all_loaded, what="page 2 thumbnails")
    calls = host_log(driver)["calls"]
    assert calls[-1] == {"name": "search_images", "arguments": {"min_rating": 3, "limit": 12, "offset": 12}}

    # A click shows a larger preview: the image's large version, loaded.
    driver.find_element("css selector", ".tile img").click()
    large = next(v["url"] for v in page2[0]["versions"] if v["name"] == "large")
    wait(
        driver,
        lambda d: js(
            d,
            "const i = document.querySelector('.preview img'); return i && i.src === arguments[0]"
            " && i.complete && i.naturalWidth > 0",
            large,
        ),
        what="large preview",
    )
    screenshot(driver, "grid-preview.png")


def test_set_tree_counts_photos_and_badges_match_dpg(driver: Any, host_url: str, dpg: httpx2.Client) -> None:
    open_view(driver, host_url, "admin", "browse_sets", {})
    tree = dpg.get("/v1/sets/tree").json()
    flat: list[dict[str, Any]] = []

    def walk(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            flat.append(n)
            walk(n.get("children") or [])

    walk(tree["sets"] if isinstance(tree, dict) else tree)
    count = "return document.querySelectorAll('nav [data-set]').length"
    wait(driver, lambda d: js(d, count) == len(flat), what="tree")
    nodes = js(
        driver,
        "return Array.from(document.querySelectorAll('nav [data-set]')).map(b => ({uuid: b.dataset.set,"
        " name: b.children[1].textContent, count: b.querySelector('.n').dataset.count}))",
    )
    assert [n["uuid"] for n in nodes] == [s["public_uuid"] for s in flat]
    assert [n["name"] for n in nodes] == [s["name"] for s in flat]
    assert [n["count"] for n in nodes] == [str(s["image_count"]) for s in flat]

    # The press selects: 40 photos, the last five not public (two hidden, three embargoed).
    # The view opens the first set by itself; then the user picks the press selects.
    first = "return document.getElementById('title').textContent"
    wait(driver, lambda d: js(d, first) == flat[0]["name"], what="the first set opened")
    press = next(s for s in flat if "press" in (s["name"] or "").lower())
    driver.find_element("css selector", f"nav [data-set='{press['public_uuid']}']").click()
    title = "return document.getElementById('title').textContent"
    wait(driver, lambda d: js(d, title) == press["name"], what="set")
    wait(driver, all_loaded, what="set thumbnails")
    driver.find_element("css selector", "[data-page=next]").click()
    truth = dpg_images(dpg, f"/v1/sets/{press['public_uuid']}/images", limit=20, offset=20)

    def badges_of(i: dict[str, Any]) -> list[str]:
        if not i.get("hidden"):
            return []
        return ["embargoed" if i.get("activation_time") else "hidden"]

    want = [(i["public_uuid"], badges_of(i)) for i in truth]
    wait(driver, lambda d: [(t["uuid"], t["badges"]) for t in tiles(d)] == want, what="page 2 with badges")
    assert [b for _, b in want if b] == [["embargoed"]] * 3 + [["hidden"]] * 2
    wait(driver, all_loaded, what="page 2 thumbnails")
    js(driver, "window.scrollTo(0, 0)")
    time.sleep(0.3)  # the last size report after the images settled
    screenshot(driver, "sets.png")


def test_select_three_build_archive_follows_the_handle_to_a_working_link(
    driver: Any, host_url: str, dpg: httpx2.Client
) -> None:
    open_view(driver, host_url, "admin", "search_images", {"limit": 8})
    wait(driver, all_loaded, what="thumbnails")
    picks = driver.find_elements("css selector", ".tile .pick")[:3]
    for box in picks:
        box.click()
    chosen = [t["uuid"] for t in tiles(driver)[:3]]
    assert js(driver, "return document.querySelector('[data-count]').dataset.count") == "3"
    driver.find_element("css selector", "[data-action=build_archive]").click()
    href = wait(driver, lambda d: js(d, LINK) or archive_trouble(d), 30, what="archive link")
    calls = host_log(driver)["calls"]
    assert {"name": "build_archive", "arguments": {"image_uuids": chosen}} in calls
    # The sandbox took longer than dpg-mcp waits: the card followed the handle through check_operation.
    assert any(c["name"] == "check_operation" for c in calls)
    card = js(driver, "return document.querySelector('.card').textContent")
    assert "3 photos" in card and re.search(r"expires \d{4}-\d\d-\d\d", card), card
    r = httpx2.get(href, timeout=10)
    assert r.status_code == 200 and r.content[:2] == b"PK"
    assert len(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == 3
    screenshot(driver, "archive-from-grid.png")
    driver.switch_to.frame("view")
    driver.find_element("css selector", ".archive-link").click()
    wait(driver, lambda d: host_log(d)["links"] == [href], what="ui/open-link")

    # "Caption these" goes back to the conversation as a message naming the photos.
    driver.find_element("css selector", "[data-action=caption_image]").click()
    messages = wait(driver, lambda d: host_log(d)["messages"], what="ui/message")
    assert messages[0]["role"] == "user"
    assert all(u in messages[0]["content"][0]["text"] for u in chosen)


def test_rate_from_the_grid_changes_dpg(driver: Any, host_url: str, dpg: httpx2.Client) -> None:
    open_view(driver, host_url, "admin", "search_images", {"rating": 2, "limit": 4})
    wait(driver, all_loaded, what="thumbnails")
    target = tiles(driver)[0]["uuid"]
    driver.find_elements("css selector", ".tile .pick")[0].click()
    js(driver, "const s = document.querySelector('select[aria-label=rating]'); s.value = '5';")
    driver.find_element("css selector", "[data-action=rate_images]").click()
    wait(driver, lambda d: dpg.get(f"/v1/images/{target}").json()["rating"] == 5, what="rating in DPG")
    wait(driver, lambda d: tiles(d)[0]["rating"] == "5", what="grid shows the new rating")


def test_destructive_action_goes_through_the_tools_confirmation(
    driver: Any, host_url: str, dpg: httpx2.Client
) -> None:
    open_view(driver, host_url, "admin", "search_images", {"limit": 4, "offset": 40})
    wait(driver, all_loaded, what="thumbnails")
    target = tiles(driver)[0]["uuid"]
    driver.find_elements("css selector", ".tile .pick")[0].click()
    driver.find_element("css selector", "[data-action=delete_image]").click()
    # This host cannot ask the user (no elicitation): the tool refuses without confirm=true, and the view
    # never sends confirm on its own. The photo is still there.
    err = "const n = document.querySelector('.note.err'); return n && n.textContent"
    msg = wait(driver, lambda d: js(d, err), what="the tool's refusal")
    assert "confirm" in msg.lower()
    calls = host_log(driver)["calls"]
    assert calls[-1] == {"name": "delete_image", "arguments": {"image_uuids": [target]}}
    assert dpg.get(f"/v1/images/{target}").status_code == 200


def test_destructive_action_asks_the_user_through_the_host(
    driver: Any, host_url: str, dpg: httpx2.Client
) -> None:
    open_view(driver, host_url, "asking", "search_images", {"limit": 4, "offset": 44})
    wait(driver, all_loaded, what="thumbnails")
    target = tiles(driver)[0]["uuid"]
    driver.find_elements("css selector", ".tile .pick")[0].click()
    driver.find_element("css selector", "[data-action=delete_image]").click()
    said = "const n = document.querySelector('.note'); return n && n.textContent"
    msg = wait(driver, lambda d: "did not confirm" in (js(d, said) or "") and js(d, said), what="the answer")
    assert msg.startswith("Nothing was done")
    asked = httpx2.get(f"{host_url}/asked/asking", timeout=5).json()
    assert len(asked) == 1 and asked[0].startswith("Delete 1 image")
    assert dpg.get(f"/v1/images/{target}").status_code == 200


def test_read_only_token_view_offers_no_write_action(driver: Any, host_url: str) -> None:
    open_view(driver, host_url, "readonly", "search_images", {"limit": 6})
    wait(driver, all_loaded, what="thumbnails")
    assert actions(driver) == []
    assert js(driver, "return document.querySelectorAll('select').length") == 0
    open_view(driver, host_url, "admin", "search_images", {"limit": 6})
    wait(driver, all_loaded, what="thumbnails")
    assert set(actions(driver)) >= {"rate_images", "add_to_set", "build_archive", "caption_image"}


def test_planted_script_in_a_title_stays_text(driver: Any, host_url: str, dpg: httpx2.Client) -> None:
    target = dpg_images(dpg, limit=1, offset=5)[0]["public_uuid"]
    key = {"Idempotency-Key": f"plant-{target}"}
    r = dpg.patch(f"/v1/images/{target}", json={"title": PLANTED}, headers=key)
    assert r.status_code in (200, 202), r.text
    open_view(driver, host_url, "admin", "search_images", {"query": "zebrafinch", "limit": 5})
    wait(driver, lambda d: tiles(d), what="the planted photo")
    shown = tiles(driver)
    assert [t["uuid"] for t in shown] == [target]
    assert shown[0]["title"] == PLANTED
    assert js(driver, "return document.querySelectorAll('.tile .title *').length") == 0
    planted = "return document.querySelectorAll('.grid script, .grid img:not([loading])').length"
    assert js(driver, planted) == 0
    time.sleep(0.3)  # an onerror handler, were it markup, would have run by now
    assert js(driver, "return typeof window.pwned") == "undefined"


def test_follows_the_host_theme_and_reports_its_size(driver: Any, host_url: str) -> None:
    open_view(driver, host_url, "admin", "search_images", {"limit": 6}, theme="dark")
    wait(driver, all_loaded, what="thumbnails")
    assert js(driver, "return document.documentElement.dataset.theme") == "dark"
    dark_bg = js(driver, "return getComputedStyle(document.body).backgroundColor")
    log = host_log(driver)
    driver.switch_to.default_content()
    height = driver.execute_script("return document.getElementById('view').getBoundingClientRect().height")
    assert height == log["sizes"][-1]["height"]
    driver.execute_script("setTheme('light')")
    driver.switch_to.frame("view")
    wait(driver, lambda d: js(d, "return document.documentElement.dataset.theme") == "light", what="light")
    assert js(driver, "return getComputedStyle(document.body).backgroundColor") != dark_bg
    js(driver, "document.documentElement.dataset.theme = 'dark'")
    screenshot(driver, "grid-dark.png")


def test_archive_view_for_a_build_archive_call(driver: Any, host_url: str, dpg: httpx2.Client) -> None:
    uuids = [i["public_uuid"] for i in dpg_images(dpg, limit=2, offset=30)]
    args = {"image_uuids": uuids, "filename": "two-picks"}
    uri = open_view(driver, host_url, "admin", "build_archive", args)
    assert uri == "ui://dpg/archive.html"
    href = wait(driver, lambda d: js(d, LINK), 30, what="archive link")
    assert js(driver, "return document.querySelector('.archive-link').textContent").startswith("two-picks")
    assert httpx2.get(href, timeout=10).content[:2] == b"PK"
    screenshot(driver, "archive.png")

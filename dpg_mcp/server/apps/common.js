"use strict";
// The app side of MCP Apps (JSON-RPC 2.0 over postMessage with the host), and the parts the views share.
// Gallery text is only ever set with textContent: a title may say anything, it never becomes markup.
const DPG = (() => {
  const pending = new Map();
  const handlers = {};
  let nextId = 1;
  const cfgEl = document.getElementById("dpg-config");
  const config = cfgEl ? JSON.parse(cfgEl.textContent) : { tools: [] };
  const post = (msg) => window.parent.postMessage(msg, "*");
  const request = (method, params) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    post({ jsonrpc: "2.0", id, method, params: params || {} });
  });
  const notify = (method, params) => post({ jsonrpc: "2.0", method, params: params || {} });
  window.addEventListener("message", (ev) => {
    if (ev.source !== window.parent) return;
    const m = ev.data;
    if (!m || m.jsonrpc !== "2.0") return;
    if (m.method === undefined) {
      const p = pending.get(m.id);
      if (p) { pending.delete(m.id); m.error ? p.reject(new Error(m.error.message || "host error")) : p.resolve(m.result); }
      return;
    }
    if (m.method === "ui/resource-teardown" || m.method === "ping") { post({ jsonrpc: "2.0", id: m.id, result: {} }); return; }
    const h = handlers[m.method];
    if (h) h(m.params || {});
    else if (m.id !== undefined) post({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "Method not found" } });
  });
  function applyContext(ctx) {
    if (!ctx) return;
    if (ctx.theme === "light" || ctx.theme === "dark") document.documentElement.dataset.theme = ctx.theme;
    const vars = ctx.styles && ctx.styles.variables;
    if (vars) for (const [k, v] of Object.entries(vars)) if (/^--[\w-]+$/.test(k) && typeof v === "string") document.documentElement.style.setProperty(k, v);
  }
  handlers["ui/notifications/host-context-changed"] = applyContext;
  let lastH = 0;
  function reportSize() {
    const h = Math.ceil(document.body.getBoundingClientRect().height) + 2;
    if (h === lastH) return;
    lastH = h;
    notify("ui/notifications/size-changed", { width: Math.ceil(document.documentElement.scrollWidth), height: h });
  }
  async function start(name, on) {
    handlers["ui/notifications/tool-input"] = (p) => on.input && on.input(p.arguments || {});
    handlers["ui/notifications/tool-result"] = (p) => on.result && on.result(p);
    handlers["ui/notifications/tool-cancelled"] = () => on.cancelled && on.cancelled();
    const res = await request("ui/initialize", {
      protocolVersion: "2026-01-26",
      appInfo: { name: "dpg-" + name, version: "1" },
      appCapabilities: { availableDisplayModes: ["inline"] },
    });
    applyContext(res && res.hostContext);
    notify("ui/notifications/initialized");
    new ResizeObserver(reportSize).observe(document.body);
    reportSize();
  }
  const can = (tool) => config.tools.indexOf(tool) >= 0;
  async function call(name, args) {
    const r = await request("tools/call", { name, arguments: args });
    if (!r || r.isError) throw new Error(textOf(r) || name + " failed");
    return r;
  }
  const textOf = (r) => ((r && r.content) || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "cls") e.className = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid) e.append(kid);
    return e;
  }
  function note(box, msg, err) { box.replaceChildren(msg ? el("div", { cls: err ? "note err" : "note", role: "status", text: msg }) : ""); }
  const message = (text) => request("ui/message", { role: "user", content: [{ type: "text", text }] });
  const openLink = (url) => request("ui/open-link", { url });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const stars = (n) => (typeof n === "number" ? "★".repeat(n) + "☆".repeat(Math.max(0, 5 - n)) : "");
  // DPG's raw operation result carries epoch seconds; our own results carry ISO 8601 already.
  const when = (t) => (typeof t === "number" ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC" : String(t));
  function bytes(n) {
    if (typeof n !== "number") return "";
    const u = ["B", "KB", "MB", "GB"]; let i = 0;
    while (n >= 1024 && i < 3) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }

  // ---- archive card: the link, its size and count; a running build is followed through check_operation
  function archiveOf(s) {
    if (!s) return null;
    if (s.archive) return s.archive;
    const r = s.result;
    if (r && typeof r === "object") return r.archive || (r.url ? r : null);
    return null;
  }
  async function archiveCard(box, structured) {
    const card = el("div", { cls: "card", "data-view": "archive" });
    box.replaceChildren(card);
    let s = structured || {};
    let failures = 0;
    for (let i = 0; i < 120 && s.state === "running" && s.operation_id && can("check_operation"); i++) {
      if (!failures) card.replaceChildren(el("div", { cls: "muted", "data-state": "running", text: "Building the archive… (" + (s.message || "running") + ")" }));
      await sleep(Math.min(500 * (i + 1), 3000));
      try { s = (await call("check_operation", { operation_id: s.operation_id })).structuredContent || {}; failures = 0; }
      catch (e) {  // a slow or lost check changes nothing: keep following, give up after three in a row
        card.replaceChildren(el("div", { cls: "note err", text: e.message }));
        if (++failures >= 3) return;
      }
    }
    const a = archiveOf(s);
    if (!a || !a.url) {
      card.replaceChildren(el("div", { cls: "note err", "data-state": s.state || "failed", text: s.message || "No archive link came back." }));
      return;
    }
    const link = el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer", cls: "archive-link", text: a.filename || "archive.zip",
      onclick: (ev) => { ev.preventDefault(); openLink(a.url).catch(() => {}); } });
    card.replaceChildren(
      el("div", { cls: "name", "data-state": "ready" }, link),
      el("div", { cls: "muted", text: [a.image_count != null ? a.image_count + " photos" : "", bytes(a.size_bytes), a.expires_at ? "expires " + when(a.expires_at) : ""].filter(Boolean).join(" · ") }),
    );
  }

  // ---- photo grid: thumbnails, badges, selection, preview, paging, and the actions the caller may take
  function grid(root, opts) {
    const status = el("div");
    const actions = el("div", { cls: "bar" });
    const tiles = el("div", { cls: "grid" });
    const pager = el("div", { cls: "bar" });
    const result = el("div");
    root.replaceChildren(actions, status, tiles, pager, result);
    const selected = new Set();
    let images = [];
    let sets = null;
    const count = el("span", { cls: "muted grow", "data-count": "0" });
    const act = (label, tool, run, extra) => (can(tool) ? el("button", { "data-action": tool, onclick: () => run().catch((e) => note(status, e.message, true)), ...(extra || {}) }, document.createTextNode(label)) : null);
    const ids = () => Array.from(selected);
    const rating = el("select", { "aria-label": "rating" }, ...[5, 4, 3, 2, 1, 0].map((n) => el("option", { value: n, text: n ? stars(n) : "no stars" })));
    const setPick = el("select", { "aria-label": "set" }, el("option", { value: "", text: "set…" }));
    async function loadSets() {
      if (sets || !can("browse_sets")) return;
      sets = (await call("browse_sets", {})).structuredContent.sets || [];
      for (const s of sets) setPick.append(el("option", { value: s.uuid, text: "\u00a0".repeat(2 * (s.depth || 0)) + (s.name || s.uuid) }));
    }
    const buttons = [
      can("rate_images") ? rating : null,
      act("Rate", "rate_images", async () => {
        const r = await call("rate_images", { image_uuids: ids(), rating: Number(rating.value) });
        note(status, textOf(r).split("\n")[0]);
        for (const img of images) if (selected.has(img.uuid)) img.rating = Number(rating.value);
        render();
      }),
      can("add_to_set") ? setPick : null,
      act("Add to set", "add_to_set", async () => {
        if (!setPick.value) { await loadSets(); note(status, "Choose a set first."); return; }
        note(status, textOf(await call("add_to_set", { set_uuid: setPick.value, image_uuids: ids() })).split("\n")[0]);
      }),
      opts.removeFrom && act("Remove from set", "remove_from_set", async () => {
        note(status, textOf(await call("remove_from_set", { set_uuid: opts.removeFrom(), image_uuids: ids() })).split("\n")[0]);
      }),
      act("Build archive", "build_archive", async () => {
        note(status, "Asking DPG for a ZIP of " + selected.size + " photos…");
        const r = await call("build_archive", { image_uuids: ids() });
        note(status, "");
        await archiveCard(result, r.structuredContent);
      }, { cls: "primary" }),
      act("Delete", "delete_image", async () => {
        // Destructive: the tool asks the user through the host (or refuses); the view never sends confirm.
        note(status, textOf(await call("delete_image", { image_uuids: ids() })).split("\n")[0]);
      }),
      act("Caption these", "caption_image", async () => {
        await message("Write a caption (caption_image) for each of these photos: " + ids().join(", "));
        note(status, "Asked the assistant to caption " + selected.size + " photos.");
      }),
    ].filter(Boolean);
    actions.replaceChildren(count, ...buttons);
    setPick.addEventListener("focus", () => loadSets().catch(() => {}));
    function updateBar() {
      count.textContent = selected.size ? selected.size + " selected" : images.length + " photos";
      count.dataset.count = String(selected.size);
      for (const b of buttons) if (b.tagName === "BUTTON") b.disabled = selected.size === 0;
    }
    function preview(img) {
      const pic = el("img", { src: img.thumbnail_url, alt: "" });
      const box = el("div", { cls: "preview", onclick: () => box.remove() }, pic, el("div", { cls: "cap", text: img.title || img.filename || img.uuid }));
      document.body.append(box);
      if (can("get_image")) call("get_image", { image_uuid: img.uuid, preview: false }).then((r) => {
        const v = (r.structuredContent.versions || []).filter((x) => x.url);
        const big = v.find((x) => x.name === "large") || v.find((x) => x.name === "medium");
        if (big) pic.src = big.url;
      }).catch(() => {});
    }
    function tile(img) {
      const pick = el("input", { type: "checkbox", cls: "pick", "aria-label": "select", onchange: () => {
        pick.checked ? selected.add(img.uuid) : selected.delete(img.uuid);
        t.classList.toggle("sel", pick.checked); updateBar();
      } });
      pick.checked = selected.has(img.uuid);
      const badges = el("div", { cls: "badges" });
      if (img.hidden && img.activation_time) badges.append(el("span", { cls: "badge embargoed", "data-badge": "embargoed", title: "hidden until " + img.activation_time, text: "embargoed" }));
      else if (img.hidden) badges.append(el("span", { cls: "badge hidden", "data-badge": "hidden", text: "hidden" }));
      const t = el("div", { cls: selected.has(img.uuid) ? "tile sel" : "tile", "data-uuid": img.uuid },
        img.thumbnail_url ? el("img", { src: img.thumbnail_url, alt: "", loading: "eager", onclick: () => preview(img) }) : el("img", { alt: "" }),
        pick, badges,
        el("div", { cls: "meta" },
          el("div", { cls: "title", text: img.title || img.filename || "(untitled)" }),
          el("div", { cls: "stars", "data-rating": img.rating == null ? "" : img.rating, text: stars(img.rating) })));
      return t;
    }
    function render() { tiles.replaceChildren(...images.map(tile)); updateBar(); }
    function show(s, page) {
      images = (s && s.images) || [];
      selected.clear();
      render();
      const from = (page && page.offset) || 0;
      const more = s && s.next_offset != null;
      pager.replaceChildren(...[
        el("span", { cls: "muted grow", text: images.length ? "Showing " + (from + 1) + "–" + (from + images.length) + (s.total != null ? " of " + s.total : "") : "No photos." }),
        opts.page && from > 0 ? el("button", { "data-page": "prev", onclick: () => opts.page(Math.max(0, from - (page.limit || 20))) }, document.createTextNode("‹ Previous")) : null,
        opts.page && more ? el("button", { "data-page": "next", onclick: () => opts.page(s.next_offset) }, document.createTextNode("Next ›")) : null,
      ].filter(Boolean));
      result.replaceChildren();
    }
    updateBar();
    return { show, status };
  }

  return { start, call, can, el, note, textOf, grid, archiveCard, message, config };
})();

"use strict";
// The control-room wall: the open alarms in the signed-in user's scope, live.
// Plain JavaScript against the public API (/api/v1): sign-in, the alert list, the live
// feed (Server-Sent Events, resumed from the last change after a reconnect), /status for
// staleness. No framework, no build step, nothing from the internet.
(() => {
  const API = "/api/v1";
  const TEXTS = window.QORGAU_TEXTS;
  const STATUS_EVERY_MS = 5000;
  const FEED_GRACE_MS = 3000; // a reconnect shorter than this is not worth a banner
  const PAGE = 500;
  const SEVERITY_RANK = { critical: 0, warning: 1 };
  const $ = (id) => document.getElementById(id);

  const state = {
    access: sessionStorage.getItem("qorgau.access"),
    refresh: sessionStorage.getItem("qorgau.refresh"),
    lang: localStorage.getItem("qorgau.lang"),
    me: null,
    alerts: new Map(), // id -> alert (open and acknowledged only)
    enterprises: new Map(),
    regions: new Map(),
    lastEventId: null,
    feed: null,
    feedSince: null, // when the feed was lost (ms), null while connected
    feedReady: false,
    buffering: null, // feed events arriving while the list is being read
    problems: [],
    armed: false,
    selected: null,
    selectedEnterprise: null,
    renderQueued: false,
    statusTimer: null,
  };
  // For tests and for the curious: what the wall did, without peeking at its pixels.
  window.qorgauWall = { state, soundPlays: 0, renders: 0, lastRenderMs: 0 };

  // --- words -------------------------------------------------------------------------
  function t(key, vars = {}) {
    const table = TEXTS[state.lang] || TEXTS.ru;
    let text = table[key] ?? TEXTS.en[key] ?? key;
    for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v));
    return text;
  }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return t("s", { n: s });
    if (s < 3600) return t("min", { n: Math.floor(s / 60) });
    if (s < 86400) return t("h", { n: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return t("d", { n: Math.floor(s / 86400) });
  }
  // Intl formatters, made once per locale and kept: toLocaleString() makes a new one at
  // every call, which thousands of rows feel. The same output.
  const formats = new Map();
  function formatter(kind, digits) {
    const key = `${locale()}|${kind}|${digits}`;
    let f = formats.get(key);
    if (!f) {
      f = kind === "time"
        ? new Intl.DateTimeFormat(locale(), { hour: "numeric", minute: "numeric", second: "numeric" })
        : new Intl.NumberFormat(locale(), { maximumFractionDigits: digits });
      formats.set(key, f);
    }
    return f;
  }
  function number(v) {
    if (v === null || v === undefined) return "—";
    const a = Math.abs(v);
    return formatter("number", a >= 100 ? 0 : a >= 10 ? 1 : 2).format(v);
  }
  function clock(when) { return formatter("time").format(new Date(when)); } // toLocaleTimeString
  function locale() { return { ru: "ru-RU", kk: "kk-KZ", en: "en-GB" }[state.lang] || "ru-RU"; }
  function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function applyTexts() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const box of document.querySelectorAll(".langs")) {
      box.innerHTML = ["ru", "kk", "en"].map((l) =>
        `<button type="button" data-lang="${l}" aria-pressed="${l === state.lang}">${l.toUpperCase()}</button>`).join("");
    }
    soundButton();
    rowsEpoch += 1;
    scheduleRender();
    renderBanner();
    renderMap();
    if (state.selected) showDetail(state.selected);
  }
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-lang]");
    if (!b) return;
    state.lang = b.dataset.lang;
    localStorage.setItem("qorgau.lang", state.lang);
    applyTexts();
  });

  // --- the API -------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }
  async function refreshTokens() {
    if (!state.refresh) return false;
    const r = await fetch(`${API}/login/refresh`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: state.refresh }),
    });
    if (!r.ok) return false;
    saveTokens(await r.json());
    return true;
  }
  function saveTokens(body) {
    state.access = body.access_token;
    state.refresh = body.refresh_token;
    sessionStorage.setItem("qorgau.access", state.access);
    sessionStorage.setItem("qorgau.refresh", state.refresh);
  }
  async function api(path, options = {}, retried = false) {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.access}` };
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options = { ...options, body: JSON.stringify(options.json) };
    }
    const r = await fetch(API + path, { ...options, headers });
    if (r.status === 401 && !retried && (await refreshTokens())) return api(path, options, true);
    if (r.status === 401) { signOut(); throw new ApiError(401, "signed out"); }
    const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
    if (!r.ok) {
      const d = body?.detail;
      throw new ApiError(r.status, typeof d === "string" ? d : JSON.stringify(d ?? r.statusText));
    }
    return body;
  }

  // --- signing in and out ---------------------------------------------------------------
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    armSound(); // this click is the user's gesture the browser wants before any sound
    const err = $("login-error");
    err.hidden = true;
    const form = new URLSearchParams({ username: $("username").value, password: $("password").value });
    try {
      const r = await fetch(`${API}/login/access-token`, { method: "POST", body: form });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        err.textContent = r.status === 401 ? t("bad_login") : t("login_failed", { why: body.detail || r.status });
        err.hidden = false;
        return;
      }
      saveTokens(await r.json());
      $("password").value = "";
      await openWall();
    } catch (exc) {
      err.textContent = t("login_failed", { why: exc.message });
      err.hidden = false;
    }
  });
  $("arm-button").addEventListener("click", () => { armSound(); openWall(); });
  $("sign-out").addEventListener("click", () => signOut());

  function signOut() {
    sessionStorage.removeItem("qorgau.access");
    sessionStorage.removeItem("qorgau.refresh");
    state.access = state.refresh = null;
    if (state.feed) state.feed.close();
    state.feed = null;
    clearTimeout(state.statusTimer);
    stopSound();
    show("login");
  }
  function show(which) {
    for (const id of ["login", "arm", "wall"]) $(id).hidden = id !== which;
  }

  // --- sound -----------------------------------------------------------------------------
  function armSound() {
    // Called from a click: playing (muted) now unlocks both elements for later.
    for (const id of ["snd-critical", "snd-fire"]) {
      const a = $(id);
      a.muted = true;
      a.play().then(() => { a.pause(); a.currentTime = 0; a.muted = false; }).catch(() => {});
    }
    state.armed = true;
    soundButton();
  }
  function soundButton() {
    const b = $("sound");
    b.textContent = state.armed ? t("sound_on") : t("sound_off");
    b.className = state.armed ? "sound-on" : "sound-off";
  }
  $("sound").addEventListener("click", () => {
    if (state.armed) { state.armed = false; stopSound(); soundButton(); return; }
    armSound();
    setTimeout(updateSound, 50);
  });
  for (const id of ["snd-critical", "snd-fire"]) {
    $(id).addEventListener("playing", () => { if (!$(id).muted) window.qorgauWall.soundPlays += 1; });
  }
  function ringing() {
    // Every critical alarm nobody has acknowledged rings; fire has its own sound.
    let critical = false, fire = false;
    for (const a of state.alerts.values()) {
      if (a.severity === "critical" && a.status === "open") {
        critical = true;
        if (a.kind === "fire") fire = true;
      }
    }
    return fire ? "snd-fire" : critical ? "snd-critical" : null;
  }
  function updateSound() {
    const want = state.armed ? ringing() : null;
    for (const id of ["snd-critical", "snd-fire"]) {
      const a = $(id);
      if (id === want) {
        if (a.paused) a.play().catch(() => { state.armed = false; soundButton(); });
      } else if (!a.paused) { a.pause(); a.currentTime = 0; }
    }
  }
  function stopSound() { for (const id of ["snd-critical", "snd-fire"]) $(id).pause(); }

  // --- opening the wall --------------------------------------------------------------------
  async function openWall() {
    try {
      state.me = await api("/users/me");
    } catch { signOut(); return; }
    if (!state.lang) state.lang = state.me.language || "ru";
    show("wall");
    $("scope").textContent = `${state.me.full_name || state.me.username} · ${state.me.scope}`;
    applyTexts();
    await Promise.all([loadRegions(), loadEnterprises(), loadOutlines()]);
    renderMap();
    startFeed(); // first, so no change falls between the list and the feed
    await loadAlerts();
    checkStatus();
  }

  async function loadRegions() {
    for (const r of await api("/regions")) state.regions.set(r.id, r);
  }
  async function loadEnterprises() {
    for (let offset = 0; ; offset += PAGE) {
      const page = await api(`/enterprises?limit=${PAGE}&offset=${offset}`);
      const items = Array.isArray(page) ? page : page.items;
      for (const e of items) state.enterprises.set(e.id, e);
      if (items.length < PAGE) break;
    }
    rowsEpoch += 1;
  }
  async function loadAlerts() {
    state.buffering = [];
    const fresh = new Map();
    for (let offset = 0; ; offset += PAGE) {
      const page = await api(`/alerts?status=open&status=acknowledged&limit=${PAGE}&offset=${offset}`);
      for (const a of page.items) fresh.set(a.id, a);
      if (page.items.length < PAGE || offset + PAGE >= page.total) break;
    }
    state.alerts = fresh;
    const buffered = state.buffering;
    state.buffering = null;
    for (const change of buffered) apply(change); // in commit order: converges
    scheduleRender();
  }

  // --- the live feed -------------------------------------------------------------------------
  function startFeed() {
    if (state.feed) state.feed.close();
    const after = state.lastEventId !== null ? `&after=${state.lastEventId}` : "";
    const es = new EventSource(`${API}/alerts/feed?access_token=${encodeURIComponent(state.access)}${after}`);
    state.feed = es;
    es.addEventListener("ready", () => {
      state.feedReady = true;
      state.feedSince = null;
      renderBanner();
    });
    es.addEventListener("alert", (e) => {
      state.lastEventId = Number(e.lastEventId);
      const change = JSON.parse(e.data);
      if (state.buffering) state.buffering.push(change); else apply(change);
    });
    es.addEventListener("resync", () => { loadAlerts().catch(() => {}); });
    es.onerror = () => {
      state.feedReady = false;
      if (state.feedSince === null) state.feedSince = Date.now();
      setTimeout(renderBanner, FEED_GRACE_MS + 10);
      if (es.readyState === EventSource.CLOSED && state.feed === es) {
        // Refused (an expired token): a fresh token, then the changes since the last one.
        setTimeout(async () => {
          if (state.feed !== es || !state.access) return;
          await refreshTokens().catch(() => false);
          startFeed();
        }, 2000);
      }
    };
  }
  function apply(change) {
    const a = change.alert;
    if (a.status === "resolved") state.alerts.delete(a.id);
    else state.alerts.set(a.id, a);
    scheduleRender();
    if (state.selected === a.id) showDetail(a.id); // its history has changed too
  }

  // --- staleness ---------------------------------------------------------------------------
  async function checkStatus() {
    clearTimeout(state.statusTimer); // one round at a time, also after signing in again
    try {
      const s = await api("/status");
      state.problems = s.problems;
      state.statusFailed = false;
    } catch (exc) {
      if (exc.status === 401) return;
      state.statusFailed = true;
    }
    renderBanner();
    state.statusTimer = setTimeout(checkStatus, STATUS_EVERY_MS);
  }
  function renderBanner() {
    const lines = [];
    let severe = false;
    if (state.feedSince !== null && Date.now() - state.feedSince >= FEED_GRACE_MS) {
      lines.push(t("problem_feed_lost", { time: clock(state.feedSince) }));
      severe = true;
    }
    if (state.statusFailed) lines.push(t("problem_status_failed"));
    for (const p of state.problems) {
      lines.push(t(`problem_${p.code}`, { subject: p.subject ?? "", ago: p.seconds != null ? duration(p.seconds) : "" }));
      if (p.code !== "worker_not_ready") severe = true;
    }
    const b = $("banner");
    b.hidden = lines.length === 0;
    b.className = severe ? "severe" : "";
    b.innerHTML = lines.map((l) => `<div>⚠ ${esc(l)}</div>`).join("");
    document.title = lines.length ? `⚠ Qorgau` : "Qorgau";
  }

  // --- the queue -----------------------------------------------------------------------------
  function scheduleRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }
  // One <tr> per alarm, kept as long as its alert is the same object: a change from the
  // feed rebuilds its own row and moves no other, so the cost of a change does not grow
  // with the thousands of rows around it. The ages tick in place.
  const rowOf = new Map(); // alert id -> { alert, selected, epoch, tr, age, since, ageText, ageNext }
  let rowsEpoch = 0; // bumped when every row must be made again (language, enterprise names)
  const openedMs = new WeakMap(); // alert -> Date.parse(opened_at), parsed once
  function opened(a) {
    let ms = openedMs.get(a);
    if (ms === undefined) { ms = Date.parse(a.opened_at); openedMs.set(a, ms); }
    return ms;
  }
  function sorted() {
    return [...state.alerts.values()].sort((x, y) =>
      (SEVERITY_RANK[x.severity] ?? 9) - (SEVERITY_RANK[y.severity] ?? 9)
      || opened(x) - opened(y) || x.id - y.id);
  }
  function render() {
    if ($("wall").hidden) return;
    const t0 = performance.now();
    const now = Date.now();
    const rows = sorted();
    const tbody = $("rows");
    // Rows of alarms gone or changed, and the selection's old and new row, go.
    for (const [id, r] of rowOf) {
      if (state.alerts.get(id) !== r.alert || r.selected !== (state.selected === id) || r.epoch !== rowsEpoch) {
        r.tr.remove();
        rowOf.delete(id);
      }
    }
    // Theirs are made again, all in one go.
    const fresh = rows.filter((a) => !rowOf.has(a.id));
    if (fresh.length) {
      const scratch = document.createElement("tbody");
      scratch.innerHTML = fresh.map((a) => rowHtml(a, now)).join("");
      const made = [...scratch.children];
      fresh.forEach((a, i) => {
        const since = opened(a);
        const r = { alert: a, selected: state.selected === a.id, epoch: rowsEpoch, tr: made[i], since };
        r.age = made[i].querySelector("td.age");
        r.ageText = r.age.textContent;
        r.ageNext = since + 1000 * ageChangesAt((now - since) / 1000);
        rowOf.set(a.id, r);
      });
    }
    // The rows kept are in order among themselves: only the new ones are put in place.
    let at = tbody.firstElementChild;
    let crit = 0, warn = 0;
    for (const a of rows) {
      if (a.severity === "critical") crit += 1; else warn += 1;
      const tr = rowOf.get(a.id).tr;
      if (tr === at) at = at.nextElementSibling;
      else tbody.insertBefore(tr, at);
    }
    while (at) { const next = at.nextElementSibling; at.remove(); at = next; }
    $("empty").hidden = rows.length > 0;
    $("counts").innerHTML = `<span class="crit">${esc(t("crit_count", { n: crit }))}</span>`
      + `<span class="warn">${esc(t("warn_count", { n: warn }))}</span>`
      + `<span>${esc(t("total_count", { n: rows.length }))}</span>`;
    updateSound();
    renderMapColours();
    window.qorgauWall.renders += 1;
    window.qorgauWall.lastRenderMs = performance.now() - t0;
  }
  function ageChangesAt(seconds) {
    // The age (seconds since opening) at which duration() next reads differently.
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + 1;
    if (s < 86400) return (Math.floor(s / 60) + 1) * 60;
    return (Math.floor(s / 86400) + 1) * 86400;
  }
  function tickAges(now) {
    for (const r of rowOf.values()) {
      if (now < r.ageNext) continue;
      const seconds = (now - r.since) / 1000;
      const text = duration(seconds);
      if (text !== r.ageText) { r.age.textContent = text; r.ageText = text; }
      r.ageNext = r.since + 1000 * ageChangesAt(seconds);
    }
  }
  function rowHtml(a, now) {
    const ent = state.enterprises.get(a.enterprise_id);
    const sev = a.kind === "fire" ? "fire" : a.severity;
    const unit = a.unit ? ` ${esc(a.unit)}` : "";
    const source = a.source;
    const ack = a.acknowledged_by
      ? `${esc(a.acknowledged_by)}<div class="sub">${esc(clock(a.acknowledged_at))}</div>` : "";
    const button = a.status === "open"
      ? `<button type="button" class="primary" data-ack="${a.id}">${esc(t("acknowledge"))}</button>` : "";
    const classes = [a.severity, a.status, state.selected === a.id ? "selected" : ""].join(" ");
    return `<tr class="${classes}" data-id="${a.id}">`
      + `<td><span class="sev ${sev}">${esc(t(`sev_${a.severity}`))}</span><div class="sub">${esc(t(`kind_${a.kind}`))}</div></td>`
      + `<td>${esc(ent ? ent.name : a.enterprise_id)}<div class="sub">${esc(a.region_id ?? "")}</div></td>`
      + `<td>${esc(a.zone_id ?? "")}<div class="sub">${esc(a.sensor_id ?? "")}</div></td>`
      + `<td>${esc((a.hazard ?? "").toUpperCase())}</td>`
      + `<td class="num">${number(a.value)}${unit}</td>`
      + `<td class="num">${a.limit != null ? number(a.limit) + unit : "—"}<div class="sub">${esc(source ?? "")}</div></td>`
      + `<td class="num age" data-since="${Date.parse(a.opened_at)}">${duration((now - Date.parse(a.opened_at)) / 1000)}</td>`
      + `<td class="num">${a.escalation_level ? "L" + a.escalation_level : "—"}</td>`
      + `<td>${ack}</td><td>${button}</td></tr>`;
  }
  $("rows").addEventListener("click", async (e) => {
    const ackButton = e.target.closest("[data-ack]");
    if (ackButton) {
      e.stopPropagation();
      await act(Number(ackButton.dataset.ack), "acknowledge");
      return;
    }
    const tr = e.target.closest("tr[data-id]");
    if (tr) showDetail(Number(tr.dataset.id));
  });
  setInterval(() => {
    tickAges(Date.now());
    $("clock").textContent = clock(Date.now());
    if (state.feedSince !== null) renderBanner();
  }, 1000);

  // --- acting on an alert ----------------------------------------------------------------------
  async function act(id, what, body) {
    try {
      const path = what === "comment" ? `/alerts/${id}/comments` : `/alerts/${id}/${what}`;
      const alert = await api(path, { method: "POST", json: body ?? {} }); // as it is now
      const draft = $("detail-comment");
      if (draft && what !== "acknowledge") draft.value = ""; // it went with the action
      apply({ alert });
      return true;
    } catch (exc) {
      if (exc.status === 409) { await refreshOne(id); return false; } // someone else was first
      alert(t("action_failed", { why: exc.message }));
      return false;
    }
  }
  async function refreshOne(id) {
    try { const d = await api(`/alerts/${id}`); apply({ alert: d.alert }); } catch { /* gone */ }
  }
  async function showDetail(id) {
    state.selected = id;
    state.selectedEnterprise = null;
    const box = $("detail");
    let d = { alert: state.alerts.get(id), history: [] };
    try { d = await api(`/alerts/${id}`); } catch { /* keep what we have */ }
    const a = d.alert;
    if (!a) { box.hidden = true; return; }
    const ent = state.enterprises.get(a.enterprise_id);
    const unit = a.unit ? ` ${a.unit}` : "";
    const reasons = ["real_incident", "false_alarm", "sensor_fault", "drill", "other"];
    // A comment being typed survives the panel being redrawn by a change from elsewhere.
    const draft = state.selected === id && $("detail-comment") ? $("detail-comment").value : "";
    box.innerHTML = `<h2><span class="sev ${a.severity}">${esc(t(`sev_${a.severity}`))}</span> #${a.id} · ${esc(t(`kind_${a.kind}`))}</h2>`
      + `<dl><dt>${esc(t("col_enterprise"))}</dt><dd>${esc(ent ? ent.name : a.enterprise_id)}</dd>`
      + `<dt>${esc(t("col_zone"))}</dt><dd>${esc(a.zone_id ?? "")} · ${esc(a.sensor_id ?? "")}</dd>`
      + `<dt>${esc(t("col_value"))}</dt><dd>${number(a.value)}${esc(unit)}</dd>`
      + `<dt>${esc(t("col_limit"))}</dt><dd>${a.limit != null ? number(a.limit) + esc(unit) : "—"}</dd>`
      + `<dt>${esc(t("limit_source"))}</dt><dd>${esc(a.source)}</dd>`
      + `<dt>${esc(t("opened"))}</dt><dd>${esc(new Date(a.opened_at).toLocaleString(locale()))}</dd>`
      + `<dt>${esc(t("status"))}</dt><dd id="detail-status">${esc(t(`st_${a.status}`))}${a.acknowledged_by ? " · " + esc(a.acknowledged_by) : ""}</dd>`
      + `<dt>${esc(t("message"))}</dt><dd>${esc(a.message)}</dd></dl>`
      + `<div class="actions">`
      + (a.status === "open" ? `<button type="button" class="primary" id="detail-ack">${esc(t("acknowledge"))}</button>` : "")
      + `</div>`
      + `<textarea id="detail-comment" maxlength="2000" aria-label="${esc(t("comment"))}" placeholder="${esc(t("comment"))}"></textarea>`
      + `<div class="actions"><button type="button" id="detail-add-comment">${esc(t("add_comment"))}</button>`
      + (a.status !== "resolved"
        ? `<label>${esc(t("reason"))} <select id="detail-reason">${reasons.map((r) => `<option value="${r}">${esc(t(`reason_${r}`))}</option>`).join("")}</select></label>`
          + `<button type="button" class="danger" id="detail-resolve">${esc(t("resolve"))}</button>` : "")
      + `<button type="button" id="detail-close">${esc(t("close"))}</button></div>`
      + `<h3>${esc(t("history"))}</h3><ol id="detail-history">${(d.history || []).map((h) =>
        `<li>${esc(clock(h.at))} · ${esc(h.action)} · ${esc(h.actor === "machine" ? t("machine") : h.actor)}`
        + `${h.reason ? " · " + esc(h.reason) : ""}${h.comment ? " — " + esc(h.comment) : ""}</li>`).join("")}</ol>`;
    box.hidden = false;
    $("detail-comment").value = draft;
    $("detail-ack")?.addEventListener("click", () => act(id, "acknowledge"));
    $("detail-add-comment").addEventListener("click", async () => {
      const text = $("detail-comment").value.trim();
      if (text) await act(id, "comment", { text });
    });
    $("detail-resolve")?.addEventListener("click", async () => {
      const reason = $("detail-reason").value;
      const comment = $("detail-comment").value.trim() || null;
      if (reason === "other" && !comment) { alert(t("comment_needed")); return; }
      await act(id, "resolve", { reason, comment });
    });
    $("detail-close").addEventListener("click", () => { state.selected = null; box.hidden = true; scheduleRender(); });
    scheduleRender();
  }

  // --- the map ---------------------------------------------------------------------------------
  // Region outlines ship with Qorgau (public data, see api/static/wall/regions.md); an
  // equirectangular projection scaled by cos(latitude) is plenty for one country.
  let outlines = null;
  async function loadOutlines() {
    try {
      const r = await fetch("/static/wall/kz_regions.geojson");
      outlines = r.ok ? await r.json() : null;
    } catch { outlines = null; }
  }
  function project(lon, lat) { return [(lon - 46) * 0.72, (56 - lat)]; } // cos(44°) ≈ 0.72
  function pathOf(geometry) {
    const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    return polys.map((poly) => poly.map((ring) => "M" + ring.map(([x, y]) => project(x, y).map((v) => v.toFixed(3)).join(",")).join("L") + "Z").join("")).join("");
  }
  function renderMap() {
    const svg = $("map");
    if (!svg || $("wall").hidden) return;
    const inScope = new Set([...state.enterprises.values()].map((e) => e.region_id));
    let html = `<title id="map-title">${esc(t("map"))}</title><g id="regions">`;
    if (outlines) {
      for (const f of outlines.features) {
        const r = state.regions.get(f.properties.id);
        const name = r ? ({ ru: r.name_ru, kk: r.name_kk }[state.lang] || r.name_en) : f.properties.id;
        html += `<path class="region${inScope.has(f.properties.id) ? " in-scope" : ""}" d="${pathOf(f.geometry)}"><title>${esc(name)}</title></path>`;
      }
    }
    html += `</g><g id="ents">`;
    for (const e of state.enterprises.values()) {
      const [x, y] = project(e.lon, e.lat);
      html += `<circle class="ent ok" data-ent="${esc(e.id)}" cx="${x.toFixed(3)}" cy="${y.toFixed(3)}" r="0.35"><title>${esc(e.name)}</title></circle>`;
    }
    svg.innerHTML = html + "</g>";
    fitMap();
    renderMapColours();
    $("legend").innerHTML = ["ok", "warning", "critical"].map((c) =>
      `<span><i class="lg-${c}"></i>${esc(t(`legend_${c}`))}</span>`).join("");
  }
  function fitMap() {
    // The regions of a regional wall (the country for a national one), with a margin.
    const mine = new Set(state.me?.regions || []);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const take = (lon, lat) => {
      const [x, y] = project(lon, lat);
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    };
    for (const f of outlines?.features || []) {
      if (mine.size && !mine.has(f.properties.id)) continue;
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
      for (const poly of polys) for (const [lon, lat] of poly[0]) take(lon, lat);
    }
    for (const e of state.enterprises.values()) take(e.lon, e.lat);
    if (!Number.isFinite(x0)) { x0 = 0; y0 = 0; x1 = 30.2; y1 = 16; } // lon 46..88, lat 40..56
    const pad = 0.04 * Math.max(x1 - x0, y1 - y0, 1);
    const box = [x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad];
    $("map").setAttribute("viewBox", box.map((v) => v.toFixed(3)).join(" "));
    const r = (0.012 * Math.max(box[2], box[3])).toFixed(3);
    for (const c of document.querySelectorAll("#ents circle")) c.setAttribute("r", r);
  }
  function renderMapColours() {
    const worst = new Map();
    for (const a of state.alerts.values()) {
      const rank = a.severity === "critical" ? 2 : 1;
      worst.set(a.enterprise_id, Math.max(worst.get(a.enterprise_id) ?? 0, rank));
    }
    for (const c of document.querySelectorAll("#ents circle")) {
      const w = worst.get(c.dataset.ent) ?? 0;
      c.setAttribute("class", `ent ${["ok", "warning", "critical"][w]}${state.selectedEnterprise === c.dataset.ent ? " selected" : ""}`);
    }
  }
  $("map").addEventListener("click", (e) => {
    const c = e.target.closest("[data-ent]");
    if (c) showEnterprise(c.dataset.ent);
  });
  async function showEnterprise(id) {
    state.selected = null;
    state.selectedEnterprise = id;
    const e = state.enterprises.get(id);
    const box = $("detail");
    let sensors = [];
    try { sensors = await api(`/enterprises/${encodeURIComponent(id)}/sensors`); } catch { /* none */ }
    const items = Array.isArray(sensors) ? sensors : sensors.items || [];
    const zones = new Map();
    for (const s of items) {
      if (!zones.has(s.zone_id)) zones.set(s.zone_id, { name: s.zone_name, sensors: [] });
      zones.get(s.zone_id).sensors.push(s);
    }
    const open = [...state.alerts.values()].filter((a) => a.enterprise_id === id);
    box.innerHTML = `<h2>${esc(e ? e.name : id)}</h2>`
      + `<dl><dt>${esc(t("workers"))}</dt><dd>${e?.workers ?? "—"}</dd>`
      + `<dt>${esc(t("col_severity"))}</dt><dd>${open.length}</dd></dl>`
      + [...zones.entries()].map(([zid, z]) => `<h3>${esc(z.name)} <span class="sub">${esc(zid)}</span></h3><table>`
        + z.sensors.map((s) => {
          const alarm = open.find((a) => a.sensor_id === s.id);
          return `<tr><td>${esc(s.id)}</td><td>${esc(s.hazard.toUpperCase())}</td>`
            + `<td class="num">${number(s.last_value)} ${esc(s.unit ?? "")}</td>`
            + `<td>${alarm ? `<span class="sev ${alarm.severity}">${esc(t(`sev_${alarm.severity}`))}</span>` : ""}</td></tr>`;
        }).join("") + "</table>").join("")
      + `<div class="actions"><button type="button" id="detail-close">${esc(t("close"))}</button></div>`;
    box.hidden = false;
    $("detail-close").addEventListener("click", () => { state.selectedEnterprise = null; box.hidden = true; renderMapColours(); });
    renderMapColours();
  }

  // --- start ------------------------------------------------------------------------------------
  state.lang = state.lang || "ru";
  applyTexts();
  if (state.access) {
    show("arm");
    $("arm-who").textContent = "";
    api("/users/me").then((me) => { $("arm-who").textContent = t("signed_in_as", { name: me.full_name || me.username }); })
      .catch(() => signOut());
  } else {
    show("login");
  }
})();

"use strict";
// Qorgau, the people's app: inspectors, fire inspectors and safety officers on their phones.
// Plain JavaScript against the public API (/api/v1), no framework, no build step, nothing
// from the internet; installable (manifest, service worker: /app/sw.js), push through the
// API's VAPID key. The role decides what it shows; the API's scope decides what it gets.
(() => {
  const API = "/api/v1";
  const TEXTS = window.QORGAU_APP_TEXTS;
  const REFRESH_KEY = "qorgau.app.refresh";
  const REASONS = ["real_incident", "false_alarm", "sensor_fault", "drill", "other"];
  const KINDS = ["threshold", "ceiling", "stel", "twa", "fire", "anomaly", "sos", "sensor_fault", "stale"];
  const $ = (id) => document.getElementById(id);

  const state = {
    access: null,
    refresh: localStorage.getItem(REFRESH_KEY), // a phone stays signed in across restarts
    lang: localStorage.getItem("qorgau.lang"),
    me: null,
    enterprises: new Map(),
    alerts: new Map(), // id -> alert, as the last list or feed change left it
    feed: null,
    lastEventId: null,
    registration: null,
    waiting: null, // a new version's service worker, ready to take over
    updating: false, // the person asked for it: reload when it has taken over
  };
  // For tests and the curious: what the app did, without peeking at its pixels. A test may
  // set `subscribe` to stand in for pushManager.subscribe (no push service is reachable).
  window.qorgauApp = { state, subscribe: null, renders: 0 };

  // --- words ---------------------------------------------------------------------------------
  function t(key, vars = {}) {
    const table = TEXTS[state.lang] || TEXTS.ru;
    let text = table[key] ?? TEXTS.en[key] ?? key;
    for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v));
    return text;
  }
  function locale() { return { ru: "ru-RU", kk: "kk-KZ", en: "en-GB" }[state.lang] || "ru-RU"; }
  function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function number(v) {
    if (v === null || v === undefined) return "—";
    const a = Math.abs(v);
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: a >= 100 ? 0 : a >= 10 ? 1 : 2 }).format(v);
  }
  function when(ts) {
    return ts ? new Date(ts).toLocaleString(locale(), { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }) : "—";
  }
  function withUnit(v, unit) { return v === null || v === undefined ? "—" : `${number(v)}${unit ? " " + unit : ""}`; }
  function applyTexts() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const box of document.querySelectorAll(".langs")) {
      box.innerHTML = ["ru", "kk", "en"].map((l) =>
        `<button type="button" data-lang="${l}" aria-pressed="${l === state.lang}">${l.toUpperCase()}</button>`).join("");
    }
  }
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-lang]");
    if (!b) return;
    state.lang = b.dataset.lang;
    localStorage.setItem("qorgau.lang", state.lang);
    applyTexts();
    if (state.me) { renderNav(); route(); }
  });

  // --- the API -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }
  function saveTokens(body) {
    state.access = body.access_token;
    state.refresh = body.refresh_token;
    localStorage.setItem(REFRESH_KEY, state.refresh);
  }
  function forgetTokens() {
    state.access = state.refresh = null;
    localStorage.removeItem(REFRESH_KEY);
  }
  async function refreshTokens() {
    if (!state.refresh) return false;
    let r;
    try {
      r = await fetch(`${API}/login/refresh`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: state.refresh }),
      });
    } catch { throw new ApiError(0, t("offline")); } // no network: keep the session
    if (!r.ok) { forgetTokens(); return false; }
    saveTokens(await r.json());
    return true;
  }
  async function api(path, options = {}, retried = false) {
    // A JSON body (`json`), or bytes as they are (`body`, of `contentType`: a roster, a photo).
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.access}` };
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    if (options.body !== undefined) headers["Content-Type"] = options.contentType || "application/octet-stream";
    let r;
    try {
      r = await fetch(API + path, {
        method: options.method || "GET", headers,
        body: options.json !== undefined ? JSON.stringify(options.json) : options.body,
      });
    } catch { throw new ApiError(0, t("offline")); }
    if (r.status === 401 && !retried && (await refreshTokens())) return api(path, options, true);
    if (r.status === 401) { showLogin(); throw new ApiError(401, t("session_ended")); }
    if (!r.ok) {
      let detail = r.statusText;
      try {
        const body = await r.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch { /* not JSON */ }
      throw new ApiError(r.status, detail);
    }
    return r.status === 204 ? null : r.json();
  }

  // --- signing in and out ----------------------------------------------------------------------
  function showLogin() {
    if (state.feed) { state.feed.close(); state.feed = null; }
    state.me = null;
    $("main").hidden = true;
    $("login").hidden = false;
    applyTexts();
  }
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    $("login-button").disabled = true;
    try {
      const r = await fetch(`${API}/login/access-token`, {
        method: "POST", body: new URLSearchParams({ username: $("username").value, password: $("password").value }),
      });
      if (!r.ok) {
        error.textContent = r.status === 401 ? t("bad_login") : t("login_failed", { why: r.status === 429 ? t("locked") : r.statusText });
        error.hidden = false;
        return;
      }
      saveTokens(await r.json());
      $("password").value = "";
      await start();
    } catch (exc) {
      error.textContent = exc instanceof ApiError ? exc.message : t("offline");
      error.hidden = false;
      if (!(exc instanceof ApiError)) console.error(exc);
    } finally {
      $("login-button").disabled = false;
    }
  });
  async function signOut() {
    // This phone stops being told, then the session ends on the server too.
    try { await unsubscribePush(); } catch { /* not subscribed, or offline */ }
    try { await api("/login/sign-out", { method: "POST" }); } catch { /* already ended */ }
    forgetTokens();
    state.alerts.clear();
    location.hash = "#/";
    showLogin();
  }

  async function start() {
    state.me = await api("/users/me");
    if (!localStorage.getItem("qorgau.lang")) state.lang = state.me.language === "kk" ? "kk" : "ru";
    const list = await api("/enterprises?limit=500").catch(() => []);
    state.enterprises = new Map((list.items || list).map((e) => [e.id, e]));
    $("login").hidden = true;
    $("main").hidden = false;
    applyTexts();
    renderNav();
    startFeed();
    route();
  }

  // --- navigation ------------------------------------------------------------------------------
  function renderNav() {
    const me = state.me;
    $("who").textContent = `${me.full_name || me.username} · ${t(`role_${me.role}`)}`;
    const links = me.role === "worker"
      ? [["#/", "nav_workplace"], ["#/settings", "nav_settings"]]
      : [["#/alerts", "nav_alerts"], ["#/enterprises", "nav_enterprises"],
        ...(["safety_officer", "admin"].includes(me.role) ? [["#/workers", "nav_workers"]] : []),
        ["#/settings", "nav_settings"]];
    $("nav").innerHTML = links.map(([href, key]) => `<a href="${href}">${esc(t(key))}</a>`).join("");
  }
  function parseHash() {
    const [path, query] = (location.hash.slice(1) || "/").split("?");
    return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
  }
  async function route() {
    if (!state.me) return;
    const { parts, params } = parseHash();
    const view = $("view");
    for (const a of $("nav").querySelectorAll("a")) {
      a.setAttribute("aria-current", location.hash.startsWith(a.getAttribute("href")) && a.getAttribute("href") !== "#/" ? "page" : "false");
    }
    try {
      if (parts[0] === "alerts" && parts[1]) await showAlert(Number(parts[1]));
      else if (parts[0] === "alerts" || (parts.length === 0 && state.me.role !== "worker")) await showAlerts(params);
      else if (parts[0] === "enterprises" && parts[1]) await showEnterprise(parts[1]);
      else if (parts[0] === "enterprises") showEnterprises();
      else if (parts[0] === "sensors" && parts[1]) await showSensor(parts[1], params);
      else if (parts[0] === "settings") await showSettings();
      else if (parts[0] === "workers") await showWorkers(params);
      else if (parts[0] === "evacuate") { showEvacuation(Object.fromEntries(params)); await showWorkplace(); }
      else if (parts[0] === "report") showReportForm();
      else await showWorkplace();
    } catch (exc) {
      if (exc.status !== 401) view.innerHTML = `<p class="error" role="alert">${esc(exc.message)}</p>`;
    }
    window.qorgauApp.renders += 1;
  }
  window.addEventListener("hashchange", route);

  // --- my alerts -------------------------------------------------------------------------------
  function alertLine(a) {
    const ent = state.enterprises.get(a.enterprise_id);
    const sev = a.kind === "fire" ? "fire" : a.severity;
    return `<li class="alert ${esc(sev)} ${esc(a.status)}"><a href="#/alerts/${a.id}">`
      + `<span class="sev">${esc(t(`sev_${a.severity}`))}</span> <b>${esc(t(`kind_${a.kind}`))}</b>`
      + ` · ${esc(a.hazard ? t(`hz_${a.hazard}`) : "")} ${esc(withUnit(a.value, a.unit))}`
      + `<span class="sub">${esc(ent ? ent.name : a.enterprise_id)} · ${esc(a.zone_id ?? "")} · ${esc(a.sensor_id ?? "")}</span>`
      + `<span class="sub">${esc(when(a.opened_at))} · ${esc(t(`st_${a.status}`))}${a.acknowledged_by ? " · " + esc(a.acknowledged_by) : ""}</span>`
      + `</a></li>`;
  }
  async function showAlerts(params) {
    const view = $("view");
    const status = params.get("status") || "unresolved";
    const query = new URLSearchParams({ limit: "200" });
    if (status === "unresolved") { query.append("status", "open"); query.append("status", "acknowledged"); }
    else if (status !== "all") query.append("status", status);
    for (const key of ["enterprise_id", "severity", "kind", "sensor_id"]) {
      if (params.get(key)) query.set(key, params.get(key));
    }
    const page = await api(`/alerts?${query}`);
    for (const a of page.items) state.alerts.set(a.id, a);
    if (params.get("at")) {
      // From a notification: the alarm of this sensor that began at that moment.
      const at = Date.parse(params.get("at"));
      const near = page.items
        .map((a) => [Math.abs(Date.parse(a.opened_at) - at), a])
        .filter(([d]) => d < 10 * 60e3)
        .sort((x, y) => x[0] - y[0])[0];
      if (near) { location.replace(`#/alerts/${near[1].id}`); return; }
    }
    const options = (values, current, label) => values.map(([v, text]) =>
      `<option value="${esc(v)}"${v === current ? " selected" : ""}>${esc(text)}</option>`).join("");
    const ents = [["", t("all_enterprises")], ...[...state.enterprises.values()].map((e) => [e.id, e.name])];
    view.innerHTML = `<h1>${esc(t("nav_alerts"))} <small>(${page.total})</small></h1>`
      + `<form id="filters" class="filters">`
      + `<label>${esc(t("f_status"))}<select name="status">${options([["unresolved", t("f_unresolved")], ["open", t("st_open")], ["acknowledged", t("st_acknowledged")], ["resolved", t("st_resolved")], ["all", t("f_all")]], status)}</select></label>`
      + `<label>${esc(t("f_enterprise"))}<select name="enterprise_id">${options(ents, params.get("enterprise_id") || "")}</select></label>`
      + `<label>${esc(t("f_severity"))}<select name="severity">${options([["", t("f_all")], ["critical", t("sev_critical")], ["warning", t("sev_warning")]], params.get("severity") || "")}</select></label>`
      + `<label>${esc(t("f_kind"))}<select name="kind">${options([["", t("f_all")], ...KINDS.map((k) => [k, t(`kind_${k}`)])], params.get("kind") || "")}</select></label>`
      + `</form>`
      + (page.items.length ? `<ul class="alerts">${page.items.map(alertLine).join("")}</ul>` : `<p class="empty">${esc(t("no_alerts"))}</p>`);
    $("filters").addEventListener("change", (e) => {
      const form = new FormData(e.currentTarget);
      const next = new URLSearchParams();
      for (const [k, v] of form.entries()) if (v && !(k === "status" && v === "unresolved")) next.set(k, v);
      location.hash = `#/alerts${next.toString() ? "?" + next : ""}`;
    });
  }

  function chart(series, limit, mark) {
    // The readings as an SVG line, the limit as a dashed line, the event as a dot.
    const pts = (series?.points || []).filter((p) => p.value !== null);
    if (pts.length === 1) {
      return `<p class="empty">${esc(t("one_reading", { value: withUnit(pts[0].value, series.unit), when: when(pts[0].ts) }))}</p>`;
    }
    if (pts.length < 2) return `<p class="empty">${esc(t("no_readings"))}</p>`;
    const W = 640, H = 200, P = 28;
    const xs = pts.map((p) => Date.parse(p.ts));
    const ys = pts.map((p) => p.value);
    const lo = Math.min(...ys, limit ?? Infinity), hi = Math.max(...ys, limit ?? -Infinity);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const X = (x) => P + ((x - x0) / Math.max(1, x1 - x0)) * (W - 2 * P);
    const Y = (y) => H - P - ((y - lo) / Math.max(1e-9, hi - lo)) * (H - 2 * P);
    const line = pts.map((p, i) => `${i ? "L" : "M"}${X(xs[i]).toFixed(1)},${Y(p.value).toFixed(1)}`).join("");
    const unit = series.unit ? ` ${series.unit}` : "";
    return `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(t("chart_label", { from: when(series.start), to: when(series.end) }))}">`
      + (limit != null ? `<line class="limit" x1="${P}" x2="${W - P}" y1="${Y(limit)}" y2="${Y(limit)}"/><text x="${W - P}" y="${Y(limit) - 4}" text-anchor="end">${esc(t("limit"))} ${esc(number(limit) + unit)}</text>` : "")
      + `<path d="${line}"/>`
      + (mark ? `<circle cx="${X(Date.parse(mark)).toFixed(1)}" cy="${P}" r="4"/>` : "")
      + `<text x="${P}" y="${H - 6}">${esc(when(series.start))}</text><text x="${W - P}" y="${H - 6}" text-anchor="end">${esc(when(series.end))}</text>`
      + `<text x="${P}" y="14">${esc(number(hi) + unit)}</text>`
      + `</svg></figure>`;
  }

  async function showAlert(id) {
    const d = await api(`/alerts/${id}`);
    const a = d.alert;
    state.alerts.set(a.id, a);
    const ent = state.enterprises.get(a.enterprise_id);
    const canAct = state.me.role !== "worker";
    const draft = $("comment") ? $("comment").value : "";
    $("view").innerHTML = `<p><a href="#/alerts">← ${esc(t("nav_alerts"))}</a></p>`
      + `<h1 class="${esc(a.kind === "fire" ? "fire" : a.severity)}"><span class="sev">${esc(t(`sev_${a.severity}`))}</span> ${esc(t(`kind_${a.kind}`))} #${a.id}</h1>`
      + `<dl class="facts">`
      + `<dt>${esc(t("f_enterprise"))}</dt><dd><a href="#/enterprises/${esc(a.enterprise_id)}">${esc(ent ? ent.name : a.enterprise_id)}</a></dd>`
      + `<dt>${esc(t("zone_sensor"))}</dt><dd>${esc(a.zone_id ?? "")} · ${a.sensor_id && !a.sensor_id.startsWith("worker:") ? `<a href="#/sensors/${esc(a.sensor_id)}">${esc(a.sensor_id)}</a>` : esc(a.sensor_id ?? "")}</dd>`
      + `<dt>${esc(t("hazard"))}</dt><dd>${esc(a.hazard ? t(`hz_${a.hazard}`) : "—")}</dd>`
      + `<dt>${esc(t("value"))}</dt><dd>${esc(withUnit(a.value, a.unit))}</dd>`
      + `<dt>${esc(t("limit"))}</dt><dd>${esc(withUnit(a.limit, a.unit))}</dd>`
      + `<dt>${esc(t("source"))}</dt><dd>${esc(a.source)}</dd>`
      + `<dt>${esc(t("opened"))}</dt><dd>${esc(when(a.opened_at))}</dd>`
      + `<dt>${esc(t("status"))}</dt><dd id="alert-status">${esc(t(`st_${a.status}`))}${a.acknowledged_by ? " · " + esc(a.acknowledged_by) : ""}</dd>`
      + `<dt>${esc(t("message"))}</dt><dd>${esc(a.message)}</dd></dl>`
      + chart(d.readings, a.limit, a.opened_at)
      + (canAct ? `<div class="actions">`
        + (a.status === "open" ? `<button type="button" class="primary big" id="ack">${esc(t("acknowledge"))}</button>` : "")
        + `<label class="wide">${esc(t("comment"))}<textarea id="comment" maxlength="2000"></textarea></label>`
        + `<button type="button" id="add-comment">${esc(t("add_comment"))}</button>`
        + (a.status !== "resolved"
          ? `<label>${esc(t("reason"))}<select id="reason">${REASONS.map((r) => `<option value="${r}">${esc(t(`reason_${r}`))}</option>`).join("")}</select></label>`
            + `<button type="button" class="danger" id="resolve">${esc(t("resolve"))}</button>` : "")
        + `<p id="act-error" class="error" role="alert" hidden></p></div>` : "")
      + `<h2>${esc(t("history"))}</h2><ol class="history">${(d.history || []).map((h) =>
        `<li>${esc(when(h.at))} · ${esc(t(`act_${h.action}`))} · ${esc(h.actor === "machine" ? t("machine") : h.actor)}`
        + `${h.reason ? " · " + esc(t(`reason_${h.reason}`)) : ""}${h.comment ? " — " + esc(h.comment) : ""}</li>`).join("")}</ol>`;
    if (!canAct) return;
    $("comment").value = draft;
    const act = async (what, body) => {
      try {
        await api(`/alerts/${id}/${what}`, { method: "POST", json: body ?? {} });
        if ($("comment")) $("comment").value = "";
        await showAlert(id);
      } catch (exc) {
        $("act-error").textContent = exc.message;
        $("act-error").hidden = false;
      }
    };
    $("ack")?.addEventListener("click", () => act("acknowledge"));
    $("add-comment").addEventListener("click", () => {
      const text = $("comment").value.trim();
      if (text) act("comments", { text });
    });
    $("resolve")?.addEventListener("click", () => {
      const reason = $("reason").value;
      const comment = $("comment").value.trim() || null;
      if (reason === "other" && !comment) {
        $("act-error").textContent = t("comment_needed");
        $("act-error").hidden = false;
        return;
      }
      act("resolve", { reason, comment });
    });
  }

  // --- enterprises and sensors -----------------------------------------------------------------
  function showEnterprises() {
    const items = [...state.enterprises.values()];
    $("view").innerHTML = `<h1>${esc(t("nav_enterprises"))}</h1><ul class="plain">`
      + items.map((e) => `<li><a href="#/enterprises/${esc(e.id)}">${esc(e.name)}</a><span class="sub">${esc(e.city)} · ${esc(e.region_id)} · ${esc(t("sensors_n", { n: e.sensor_count }))}</span></li>`).join("")
      + `</ul>`;
  }
  async function showEnterprise(id) {
    const [ent, sensors, open] = await Promise.all([
      api(`/enterprises/${encodeURIComponent(id)}`),
      api(`/enterprises/${encodeURIComponent(id)}/sensors`),
      api(`/alerts?enterprise_id=${encodeURIComponent(id)}&limit=20`),
    ]);
    const list = sensors.items || sensors;
    const zones = new Map();
    for (const s of list) {
      if (!zones.has(s.zone_id)) zones.set(s.zone_id, { name: s.zone_name, sensors: [] });
      zones.get(s.zone_id).sensors.push(s);
    }
    const now = Date.now();
    const sensorLine = (s) => {
      const silent = !s.last_reading_at || now - Date.parse(s.last_reading_at) > Math.max(60, 3 * s.interval_s) * 1000;
      // Exposure so far this shift (TWA) and over the last 15 min (STEL), against the limits.
      const fresh = s.exposure_at && now - Date.parse(s.exposure_at) < 15 * 60e3;
      const part = (key, v, limit) => (v === null || v === undefined ? "" : `<span class="${limit != null && v >= limit ? "warn" : ""}">`
        + `${esc(t(key))} ${esc(withUnit(v, s.unit))}${limit != null ? ` / ${esc(withUnit(limit, s.unit))}` : ""}</span>`);
      const exposure = fresh ? [part("twa", s.twa, s.twa_limit), part("stel", s.stel, s.stel_limit)].filter(Boolean).join(" · ") : "";
      return `<li><a href="#/sensors/${esc(s.id)}">${esc(t(`hz_${s.hazard}`))} · ${esc(s.id)}</a>`
        + ` <b>${esc(withUnit(s.last_value, s.unit))}</b>`
        + `<span class="sub${silent ? " warn" : ""}">${silent ? esc(t("silent_since", { when: when(s.last_reading_at) })) : esc(when(s.last_reading_at))}</span>`
        + (exposure ? `<span class="sub exposure">${exposure}</span>` : "") + `</li>`;
    };
    $("view").innerHTML = `<h1>${esc(ent.name)}</h1><p class="sub">${esc(ent.city)} · ${esc(ent.region_id)} · ${esc(t("workers_n", { n: ent.workers ?? "—" }))}</p>`
      + `<h2>${esc(t("recent_alerts"))}</h2>`
      + (open.items.length ? `<ul class="alerts">${open.items.map(alertLine).join("")}</ul>` : `<p class="empty">${esc(t("no_alerts"))}</p>`)
      + [...zones.entries()].map(([zid, z]) => `<h2>${esc(z.name)} <small>${esc(zid)}</small></h2><ul class="plain">${z.sensors.map(sensorLine).join("")}</ul>`).join("");
  }
  async function showSensor(id, params) {
    const hours = Number(params.get("hours") || 6);
    const end = new Date();
    const start = new Date(end.getTime() - hours * 3600e3);
    const [s, series] = await Promise.all([
      api(`/sensors/${encodeURIComponent(id)}`),
      api(`/sensors/${encodeURIComponent(id)}/readings?start=${encodeURIComponent(start.toISOString())}&end=${encodeURIComponent(end.toISOString())}`),
    ]);
    const ranges = [1, 6, 24, 168].map((h) =>
      `<a href="#/sensors/${esc(id)}?hours=${h}"${h === hours ? ' aria-current="page"' : ""}>${esc(h < 24 ? t("hours_n", { n: h }) : t("days_n", { n: h / 24 }))}</a>`).join(" ");
    $("view").innerHTML = `<p><a href="#/enterprises/${esc(s.enterprise_id)}">← ${esc(state.enterprises.get(s.enterprise_id)?.name ?? s.enterprise_id)}</a></p>`
      + `<h1>${esc(t(`hz_${s.hazard}`))} · ${esc(s.id)}</h1>`
      + `<p class="sub">${esc(s.zone_name)} · ${esc(s.model)} · ${esc(t("every_s", { n: s.interval_s }))}</p>`
      + `<p><b>${esc(withUnit(s.last_value, s.unit))}</b> · ${esc(when(s.last_reading_at))}</p>`
      + `<nav class="ranges" aria-label="${esc(t("range"))}">${ranges}</nav>`
      + chart(series, null, null);
  }

  // --- live changes ----------------------------------------------------------------------------
  function startFeed() {
    if (state.feed) state.feed.close();
    const after = state.lastEventId !== null ? `&after=${state.lastEventId}` : "";
    const es = new EventSource(`${API}/alerts/feed?access_token=${encodeURIComponent(state.access)}${after}`);
    state.feed = es;
    es.addEventListener("alert", (e) => {
      state.lastEventId = Number(e.lastEventId);
      const a = JSON.parse(e.data).alert;
      state.alerts.set(a.id, a);
      const { parts } = parseHash();
      // What is on the screen follows: the list, or this alert.
      if ((parts[0] === "alerts" && Number(parts[1]) === a.id) || parts[0] === "alerts" || parts.length === 0) route();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED && state.feed === es) {
        setTimeout(async () => {
          if (state.feed !== es || !state.refresh) return;
          await refreshTokens().catch(() => false);
          if (state.access) startFeed();
        }, 2000);
      }
    };
  }

  // --- accounts: the officer imports workers, a worker activates ------------------------------
  function downloadCodes(codes) {
    const rows = [["username", "full_name", "personnel_number", "code", "link", "expires_at"],
      ...codes.map((c) => [c.username, c.full_name, c.personnel_number ?? "", c.code, c.link, c.expires_at])];
    const csv = rows.map((r) => r.map((v) => `"${String(v).replaceAll('"', '""')}"`).join(",")).join("\r\n");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(["\ufeff" + csv], { type: "text/csv" }));
    a.download = "activation-codes.csv";
    a.click();
  }
  async function showWorkers(params) {
    const enterprise = state.me.enterprise_id || params.get("enterprise_id") || [...state.enterprises.keys()][0];
    const list = await api(`/enterprises/${encodeURIComponent(enterprise)}/workers?limit=500`);
    const items = list.items || list;
    const view = $("view");
    view.innerHTML = `<h1>${esc(t("nav_workers"))} <small>${esc(state.enterprises.get(enterprise)?.name ?? enterprise)}</small></h1>`
      + `<section class="card"><h2>${esc(t("import_title"))}</h2><p class="sub">${esc(t("import_help"))}</p>`
      + `<label>${esc(t("import_file"))}<input id="roster" type="file" accept=".csv,text/csv"></label>`
      + `<div class="row"><button type="button" id="roster-check">${esc(t("import_check"))}</button>`
      + `<button type="button" class="primary" id="roster-import">${esc(t("import_do"))}</button></div>`
      + `<div id="roster-result" role="status"></div></section>`
      + `<h2>${esc(t("workers_n", { n: items.length }))}</h2><ul class="plain">`
      + items.map((w) => `<li><b>${esc(w.full_name)}</b> · ${esc(w.personnel_number ?? "")}`
        + `<span class="sub">${esc(w.username)} · ${esc(w.zone_id ?? "")} · ${esc(w.activated ? t("activated") : t("not_activated"))}</span>`
        + (w.activated ? "" : `<button type="button" data-new-code="${esc(w.username)}">${esc(t("new_code"))}</button>`)
        + `</li>`).join("") + `</ul>`;
    const send = async (dryRun) => {
      const file = $("roster").files[0];
      const out = $("roster-result");
      if (!file) { out.innerHTML = `<p class="error">${esc(t("import_no_file"))}</p>`; return; }
      let body;
      try {
        body = await api(`/enterprises/${encodeURIComponent(enterprise)}/workers/import?dry_run=${dryRun}`,
          { method: "POST", body: file, contentType: "text/csv" });
      } catch (exc) { out.innerHTML = `<p class="error" role="alert">${esc(exc.message)}</p>`; return; }
      out.innerHTML = `<p>${esc(t("import_summary", { read: body.rows_read, created: body.created, updated: body.updated, unchanged: body.unchanged, refused: body.refused }))}</p>`
        + (body.errors.length ? `<h3>${esc(t("import_errors"))}</h3><table class="errors"><thead><tr><th>${esc(t("line"))}</th><th>${esc(t("column"))}</th><th>${esc(t("problem"))}</th></tr></thead><tbody>`
          + body.errors.map((e) => `<tr><td>${e.line}</td><td>${esc(e.column ?? "")}</td><td>${esc(e.message)}${e.value ? ` <code>${esc(e.value)}</code>` : ""}</td></tr>`).join("") + `</tbody></table>` : "")
        + (body.codes.length ? `<h3>${esc(t("codes_title", { n: body.codes.length }))}</h3><p class="sub">${esc(t("codes_once"))}</p>`
          + `<button type="button" id="codes-download">${esc(t("codes_download"))}</button>`
          + `<table class="codes"><tbody>${body.codes.slice(0, 50).map((c) => `<tr><td>${esc(c.full_name)}</td><td><code>${esc(c.code)}</code></td></tr>`).join("")}</tbody></table>` : "");
      $("codes-download")?.addEventListener("click", () => downloadCodes(body.codes));
      window.qorgauApp.lastImport = body;
    };
    $("roster-check").addEventListener("click", () => send(true));
    $("roster-import").addEventListener("click", () => send(false));
    for (const b of view.querySelectorAll("[data-new-code]")) {
      b.addEventListener("click", async () => {
        const c = await api(`/enterprises/${encodeURIComponent(enterprise)}/workers/${encodeURIComponent(b.dataset.newCode)}/activation`, { method: "POST" });
        b.replaceWith(Object.assign(document.createElement("code"), { textContent: c.code }));
      });
    }
  }
  function showActivation(code) {
    $("main").hidden = true;
    $("login").hidden = true;
    let box = $("activate");
    if (!box) {
      box = document.createElement("section");
      box.id = "activate";
      box.className = "screen";
      document.body.append(box);
    }
    box.hidden = false;
    box.innerHTML = `<form id="activate-form" class="card"><h1>Qorgau</h1><p>${esc(t("activate_help"))}</p>`
      + `<label>${esc(t("activation_code"))}<input id="activate-code" autocomplete="one-time-code" autocapitalize="characters" required value="${esc(code)}"></label>`
      + `<label>${esc(t("new_password"))}<input id="activate-password" type="password" autocomplete="new-password" minlength="10" required></label>`
      + `<label>${esc(t("new_password_again"))}<input id="activate-again" type="password" autocomplete="new-password" minlength="10" required></label>`
      + `<p id="activate-error" class="error" role="alert" hidden></p>`
      + `<button type="submit" class="primary big">${esc(t("activate"))}</button><div class="langs" role="group"></div></form>`;
    applyTexts();
    $("activate-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = $("activate-error");
      const password = $("activate-password").value;
      if (password !== $("activate-again").value) { error.textContent = t("passwords_differ"); error.hidden = false; return; }
      const r = await fetch(`${API}/login/activate`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: $("activate-code").value.trim(), password }),
      }).catch(() => null);
      if (!r || !r.ok) {
        const body = r ? await r.json().catch(() => ({})) : {};
        error.textContent = r ? (typeof body.detail === "string" ? body.detail : t("activate_failed")) : t("offline");
        error.hidden = false;
        return;
      }
      saveTokens(await r.json());
      box.hidden = true;
      history.replaceState(null, "", "/app/#/");
      await start();
    });
  }

  // --- the worker: my workplace, SOS, reports, evacuation ------------------------------------
  // What a worker sends is first written to the outbox (localStorage; a photo to IndexedDB),
  // then sent; it leaves the outbox only when the API said the broker has it. Sent again
  // with the same report_id until then (the server keeps one), on a timer while the app is
  // open and at once when the network comes back: an SOS is never silently lost.
  const OUTBOX_KEY = "qorgau.app.outbox";
  const RETRY_MS = 5000;
  function outbox() {
    try { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); } catch { return []; }
  }
  function saveOutbox(items) { localStorage.setItem(OUTBOX_KEY, JSON.stringify(items)); renderOutbox(); }
  function photoStore(mode) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open("qorgau-app", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("photos");
      open.onerror = () => reject(open.error);
      open.onsuccess = () => resolve(open.result.transaction("photos", mode).objectStore("photos"));
    });
  }
  async function keepPhoto(id, blob) {
    const store = await photoStore("readwrite");
    await new Promise((ok, fail) => { const r = store.put(blob, id); r.onsuccess = ok; r.onerror = () => fail(r.error); });
  }
  async function takePhoto(id) {
    const store = await photoStore("readonly");
    return new Promise((ok) => { const r = store.get(id); r.onsuccess = () => ok(r.result || null); r.onerror = () => ok(null); });
  }
  async function dropPhoto(id) {
    const store = await photoStore("readwrite");
    store.delete(id);
  }
  async function where() {
    // The location if the worker allowed it and it comes quickly; an SOS never waits long for it.
    if (!navigator.geolocation) return {};
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({}), 3000);
      navigator.geolocation.getCurrentPosition(
        (p) => { clearTimeout(timer); resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy }); },
        () => { clearTimeout(timer); resolve({}); },
        { enableHighAccuracy: true, timeout: 3000, maximumAge: 60000 },
      );
    });
  }
  async function queueReport(kind, text = "", photo = null) {
    const report = { report_id: crypto.randomUUID(), kind, ts: new Date().toISOString(), text, ...(await where()) };
    const item = { report, photo: !!photo, sent: false, tries: 0, last_error: null };
    if (photo) await keepPhoto(report.report_id, photo);
    saveOutbox([...outbox(), item]);
    await flushOutbox();
    return report.report_id;
  }
  let flushing = false;
  async function flushOutbox() {
    if (flushing || !state.me) return;
    flushing = true;
    try {
      for (const item of outbox()) {
        try {
          if (!item.sent) {
            await api("/reports", { method: "POST", json: item.report });
            item.sent = true;
          }
          if (item.photo) {
            const blob = await takePhoto(item.report.report_id);
            if (blob) await uploadPhoto(item.report.report_id, blob);
            await dropPhoto(item.report.report_id);
            item.photo = false;
          }
        } catch (exc) {
          item.tries += 1;
          item.last_error = exc.message;
        }
        const rest = outbox().map((x) => (x.report.report_id === item.report.report_id ? item : x));
        saveOutbox(rest.filter((x) => x.sent === false || x.photo));
      }
    } finally {
      flushing = false;
    }
  }
  async function uploadPhoto(id, blob) {
    await api(`/reports/${id}/photo`, { method: "POST", body: blob, contentType: blob.type });
  }
  setInterval(() => { if (outbox().length) flushOutbox(); }, RETRY_MS);
  window.addEventListener("online", () => flushOutbox());
  window.qorgauApp.flushOutbox = flushOutbox;
  function renderOutbox() {
    const box = $("outbox");
    if (!box) return;
    const items = outbox();
    const phone = state.workplace?.enterprise?.emergency_phone;
    box.hidden = items.length === 0;
    box.innerHTML = items.length === 0 ? "" : `<h2>${esc(t("not_sent_yet"))}</h2><ul class="plain">`
      + items.map((x) => `<li>${esc(t(`report_${x.report.kind}`))} · ${esc(when(x.report.ts))}`
        + `<span class="sub">${esc(x.sent ? t("photo_pending") : t("retrying", { n: x.tries }))}</span></li>`).join("")
      + `</ul>` + (phone ? `<a class="call big" href="tel:${esc(phone)}">${esc(t("call_emergency", { phone }))}</a>` : "");
  }
  const STATE_WORD = { green: "ok", amber: "warn", red: "danger", unknown: "unknown" };
  async function showWorkplace() {
    const view = $("view");
    let w = state.workplace;
    try { w = await api("/me/workplace"); state.workplace = w; } catch (exc) { if (!w) throw exc; }
    const say = (m) => (m && (m[state.lang] || m.ru)) || "";
    const phone = w.enterprise.emergency_phone;
    view.innerHTML = `<section class="state ${esc(w.state)}" role="status">`
      + `<p class="big">${esc(t(`state_${w.state}`))}</p><p>${esc(t(`state_${w.state}_more`))}</p>`
      + `<p class="sub">${esc(w.enterprise.name)} · ${esc(t("checked_at", { when: when(w.checked_at) }))}</p></section>`
      + `<button type="button" id="sos" class="sos">${esc(t("sos"))}</button>`
      + `<div class="row"><button type="button" id="man-down" class="danger big">${esc(t("man_down"))}</button>`
      + `<a class="button big" href="#/report">${esc(t("report_hazard"))}</a></div>`
      + `<div id="outbox" class="card warn" role="alert" hidden></div>`
      + (phone ? `<p><a class="call" href="tel:${esc(phone)}">${esc(t("call_emergency", { phone }))}</a></p>` : "")
      + w.zones.map((z) => `<h2><span class="dot ${esc(z.state)}" aria-hidden="true"></span>${esc(z.name)}</h2>`
        + `<p class="sub">${esc(say(z.messages))}</p><ul class="plain sensors">`
        + z.sensors.map((s) => `<li class="${esc(STATE_WORD[s.state])}"><span class="dot ${esc(s.state)}" aria-hidden="true"></span>`
          + `<b>${esc(t(`hz_${s.hazard}`))}</b> ${esc(withUnit(s.value, s.unit))}`
          + `<span class="sub">${esc(t(`state_${s.state}`))} · ${esc(say(s.messages))} · ${esc(when(s.ts))}</span></li>`).join("")
        + `</ul>`).join("");
    renderOutbox();
    $("sos").addEventListener("click", () => confirmSend("sos"));
    $("man-down").addEventListener("click", () => confirmSend("man_down"));
  }
  function confirmSend(kind) {
    const dialog = document.createElement("div");
    dialog.className = "overlay";
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-label", t(`confirm_${kind}`));
    dialog.innerHTML = `<div class="card"><h2>${esc(t(`confirm_${kind}`))}</h2>`
      + `<button type="button" class="sos" id="confirm-send">${esc(t("send_now"))}</button>`
      + `<button type="button" class="big" id="confirm-cancel">${esc(t("cancel"))}</button></div>`;
    document.body.append(dialog);
    $("confirm-send").focus();
    $("confirm-cancel").addEventListener("click", () => dialog.remove());
    $("confirm-send").addEventListener("click", async () => {
      dialog.remove();
      await queueReport(kind);
      const left = outbox().some((x) => !x.sent);
      toast(left ? t("queued", { kind: t(`report_${kind}`) }) : t("sent", { kind: t(`report_${kind}`) }));
    });
  }
  function toast(text) {
    const box = $("notice");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(box.timer);
    box.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }
  function showReportForm() {
    $("view").innerHTML = `<p><a href="#/">← ${esc(t("nav_workplace"))}</a></p><h1>${esc(t("report_hazard"))}</h1>`
      + `<form id="report-form">`
      + `<label>${esc(t("report_kind"))}<select id="report-kind">${["hazard_observation", "near_miss", "incident"].map((k) => `<option value="${k}">${esc(t(`report_${k}`))}</option>`).join("")}</select></label>`
      + `<label>${esc(t("report_text"))}<textarea id="report-text" maxlength="2000" required></textarea></label>`
      + `<label>${esc(t("report_photo"))}<input id="report-photo" type="file" accept="image/jpeg,image/png,image/webp" capture="environment"></label>`
      + `<button type="submit" class="primary big">${esc(t("send_now"))}</button></form>`;
    $("report-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const photo = $("report-photo").files[0] || null;
      await queueReport($("report-kind").value, $("report-text").value.trim(), photo);
      location.hash = "#/";
      const left = outbox().some((x) => !x.sent);
      toast(left ? t("queued", { kind: t("report_hazard") }) : t("sent", { kind: t("report_hazard") }));
    });
  }
  function showEvacuation(data) {
    // Full screen, with sound, until the worker says they are out.
    let box = $("evacuate");
    if (!box) {
      box = document.createElement("div");
      box.id = "evacuate";
      box.className = "overlay evacuate";
      box.setAttribute("role", "alertdialog");
      box.setAttribute("aria-modal", "true");
      document.body.append(box);
    }
    const zone = data.zone_id ? t("evacuate_zone", { zone: data.zone_id }) : t("evacuate_any");
    box.setAttribute("aria-label", t("evacuate"));
    box.innerHTML = `<div><p class="huge">${esc(t("evacuate"))}</p><p class="big">${esc(zone)}</p>`
      + `<p>${esc(data.body || t("evacuate_more"))}</p>`
      + `<button type="button" id="evacuate-ok" class="big">${esc(t("evacuate_done"))}</button></div>`
      + `<audio id="evacuate-sound" src="/static/sounds/critical.wav" loop></audio>`;
    const sound = $("evacuate-sound");
    sound.play().then(() => { window.qorgauApp.evacuationSound = "playing"; }).catch(() => { window.qorgauApp.evacuationSound = "blocked"; });
    if (navigator.vibrate) navigator.vibrate([500, 200, 500, 200, 500]);
    $("evacuate-ok").addEventListener("click", () => { sound.pause(); box.remove(); if (location.hash.startsWith("#/evacuate")) location.hash = "#/"; });
    $("evacuate-ok").focus();
  }
  window.qorgauApp.showEvacuation = showEvacuation;

  // --- push ------------------------------------------------------------------------------------
  function keyBytes(base64url) {
    const raw = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function currentSubscription() {
    if (window.qorgauApp.injected) return window.qorgauApp.injected;
    const reg = state.registration || (await navigator.serviceWorker?.getRegistration("/app/"));
    return reg?.pushManager ? reg.pushManager.getSubscription() : null;
  }
  async function subscribePush() {
    if (Notification.permission !== "granted" && (await Notification.requestPermission()) !== "granted") {
      throw new ApiError(0, t("push_denied"));
    }
    const { public_key: key } = await api("/push/vapid-public-key");
    const reg = state.registration || (await navigator.serviceWorker.ready);
    const options = { userVisibleOnly: true, applicationServerKey: keyBytes(key) };
    const sub = window.qorgauApp.subscribe
      ? await window.qorgauApp.subscribe(options)
      : await reg.pushManager.subscribe(options);
    if (window.qorgauApp.subscribe) window.qorgauApp.injected = sub;
    await api("/push/subscriptions", { method: "POST", json: sub.toJSON() });
    return sub;
  }
  async function unsubscribePush() {
    const sub = await currentSubscription();
    if (!sub) return;
    const endpoint = sub.endpoint;
    await sub.unsubscribe?.();
    window.qorgauApp.injected = null;
    if (state.access || state.refresh) {
      await api(`/push/subscriptions?endpoint=${encodeURIComponent(endpoint)}`, { method: "DELETE" }).catch(() => null);
    }
  }
  async function showSettings() {
    const sub = await currentSubscription().catch(() => null);
    const supported = "serviceWorker" in navigator && "PushManager" in window;
    $("view").innerHTML = `<h1>${esc(t("nav_settings"))}</h1>`
      + `<section class="card"><h2>${esc(t("push_title"))}</h2>`
      + `<p id="push-state" role="status">${esc(!supported ? t("push_unsupported") : sub ? t("push_on") : t("push_off"))}</p>`
      + (supported ? (sub
        ? `<button type="button" id="push-test">${esc(t("push_test"))}</button> <button type="button" id="push-off">${esc(t("push_disable"))}</button>`
        : `<button type="button" class="primary big" id="push-on">${esc(t("push_enable"))}</button>`) : "")
      + `<p id="push-error" class="error" role="alert" hidden></p></section>`
      + `<section class="card"><h2>${esc(t("language"))}</h2><div class="langs" role="group"></div></section>`
      + `<section class="card"><button type="button" id="sign-out" class="danger big">${esc(t("sign_out"))}</button></section>`;
    applyTexts();
    const fail = (exc) => { $("push-error").textContent = exc.message; $("push-error").hidden = false; };
    $("push-on")?.addEventListener("click", async () => {
      try { await subscribePush(); await showSettings(); } catch (exc) { fail(exc); }
    });
    $("push-off")?.addEventListener("click", async () => {
      try { await unsubscribePush(); await showSettings(); } catch (exc) { fail(exc); }
    });
    $("push-test")?.addEventListener("click", async () => {
      // Through the push service, as an alarm would come: proof that this phone is told.
      try {
        const r = await api("/push/test", { method: "POST" });
        $("push-state").textContent = r.sent > 0 ? t("push_test_sent") : t("push_test_failed", { why: r.results.map((x) => x.detail || x.status).join("; ") });
      } catch (exc) { fail(exc); }
    });
    $("sign-out").addEventListener("click", signOut);
  }

  // --- the service worker: offline shell, updates, push clicks ----------------------------------
  async function registerWorker() {
    if (!("serviceWorker" in navigator)) return;
    try {
      const reg = await navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" });
      state.registration = reg;
      const offer = (worker) => {
        if (!worker || !navigator.serviceWorker.controller) return; // the first install: nothing to replace
        state.waiting = worker;
        $("update").hidden = false;
      };
      offer(reg.waiting);
      reg.addEventListener("updatefound", () => {
        const worker = reg.installing;
        worker?.addEventListener("statechange", () => { if (worker.state === "installed") offer(worker); });
      });
      // The first install takes control quietly (clients.claim); only a new version the
      // person chose to take reloads the page, once.
      navigator.serviceWorker.addEventListener("controllerchange", () => {
        if (!state.updating) return;
        state.updating = false;
        location.reload();
      });
      navigator.serviceWorker.addEventListener("message", (e) => {
        if (e.data?.type === "open" && typeof e.data.hash === "string") location.hash = e.data.hash;
        if (e.data?.type === "push" && e.data.data?.purpose === "evacuate") showEvacuation(e.data.data);
      });
      navigator.serviceWorker.startMessages();
    } catch { /* no service worker (e.g. plain http on another host): the app still works online */ }
  }
  $("update-button").addEventListener("click", () => {
    if (!state.waiting) return;
    state.updating = true;
    state.waiting.postMessage({ type: "skip-waiting" });
  });
  function onlineState() { $("offline").hidden = navigator.onLine; }
  window.addEventListener("online", onlineState);
  window.addEventListener("offline", onlineState);

  // --- start -----------------------------------------------------------------------------------
  (async () => {
    state.lang = state.lang || "ru";
    onlineState();
    registerWorker();
    if (location.hash.startsWith("#activate=")) {
      showActivation(decodeURIComponent(location.hash.slice("#activate=".length)));
      return;
    }
    if (state.refresh && (await refreshTokens().catch(() => false))) {
      try { await start(); return; } catch { /* fall through to the sign-in */ }
    }
    showLogin();
  })();
})();

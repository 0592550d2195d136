/* Puhui 浦汇 — the operators' console at "/".
 *
 * Board: open alerts (firing, acknowledged) and latched ones (resolved on their own before anyone
 * acknowledged them: they stay until a person does) from GET /api/alerts, kept current by the
 * server-sent events of /api/alerts/stream (read with fetch, so that the token travels in the
 * Authorization header, never in a URL: EventSource cannot set headers), with a periodic full
 * refresh as a fallback
 * ("?poll=SECONDS", default 20; "?poll=0" turns the fallback off, so only the stream updates
 * the board). Zones: GET /api/zones every 10 s. Detail: GET /api/alerts/{id}; actions POST
 * /api/alerts/{id}/ack|assign|resolve; the panel follows the alert live (the newest revision the
 * stream announced wins over an older database read). Shift log: GET /api/shift-log. All user
 * text goes in as text (see common.js).
 */
"use strict";

(() => {
  const { h, fill, $, client, levelRank, RISKS, ALERT_STATUSES, CHANGES, CATEGORIES, GRIDS,
    STATUSES, label, timeEl, num, levelBadge, bi } = Puhui;

  const TOKEN_KEY = "puhui.console.token";
  const params = new URLSearchParams(location.search);
  const pollParam = params.get("poll");
  const POLL_SECONDS = pollParam === null || pollParam === "" ? 20 : Math.max(0, Number(pollParam) || 0);
  const ZONES_SECONDS = 10;
  const FEED_SECONDS = 2;
  const OPEN = ["firing", "acknowledged"];

  const api = client(TOKEN_KEY, { onUnauthorized: () => signOut("令牌无效或已吊销 / The token is invalid or revoked") });

  const state = {
    alerts: new Map(), // alert_id -> alert (list shape)
    zones: new Map(), // zone_id -> zone
    selected: null, // alert_id shown in the detail panel
    latest: new Map(), // alert_id -> newest record the stream announced (also for resolved ones)
    fresh: new Set(), // alert ids that just arrived live (highlighted briefly)
    source: null, // the live stream's AbortController
    timers: [],
    me: null,
    live: "off", // the stream's state
    feed: null, // GET /api/feed, with the local time it was read (fetchedAt)
  };

  // ------------------------------------------------------------------ sign-in -----------------

  function showLogin(message) {
    $("#app").hidden = true;
    $("#logout").hidden = true;
    $("#whoami").hidden = true;
    $("#login").hidden = false;
    const err = $("#login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("#token").focus();
  }

  function signOut(message) {
    api.clearToken();
    stopLive();
    state.alerts.clear();
    state.selected = null;
    renderBoard();
    const panel = $("#detail");
    delete panel.dataset.revision;
    fill(panel, h("p", { class: "empty" }, "选择一条告警查看详情 ", h("span", { class: "en" }, "Select an alert to see its details")));
    showLogin(message);
  }

  async function start() {
    const invite = Puhui.takeInvite();
    if (invite !== null) {
      // Opened by a one-time sign-in link (`puhui token invite --role operator`).
      try {
        api.setToken((await Puhui.exchangeInvite(invite)).token);
      } catch (err) {
        const why = Puhui.INVITE_REFUSED[err.reason];
        return showLogin(why ? `${why.zh} / ${why.en}` : `无法登录 / Cannot sign in: ${err.message}`);
      }
    }
    if (!api.token()) return showLogin();
    let me;
    try {
      me = await api.get("/api/me");
    } catch (err) {
      if (err.status === 401) return; // signOut already ran
      return showLogin(`无法验证令牌 / Cannot check the token: ${err.message}`);
    }
    if (me.role !== "operator" && me.role !== "admin") {
      api.clearToken();
      return showLogin("此令牌没有控制台权限（需要值班员或管理员）/ This token has no console access (operator or admin needed)");
    }
    state.me = me;
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    const who = $("#whoami");
    fill(who, me.name, " · ", me.role === "admin" ? bi({ zh: "管理员", en: "admin" }) : bi({ zh: "值班员", en: "operator" }));
    who.hidden = false;
    await Promise.all([loadZones(), loadAlerts(), loadShiftLog()]);
    startLive();
  }

  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("#token").value.trim();
    if (!value) return;
    api.setToken(value);
    $("#token").value = "";
    start();
  });
  $("#logout").addEventListener("click", () => signOut());

  // ------------------------------------------------------------------ data --------------------

  async function loadAlerts() {
    try {
      // The default board: firing, acknowledged and latched (resolved, unacknowledged).
      const page = await api.get("/api/alerts?limit=200");
      const next = new Map();
      for (const a of page.items || []) next.set(a.alert_id, a);
      // A record that arrived live while the request was in flight may be newer: keep it.
      for (const [id, a] of state.alerts) {
        const n = next.get(id);
        if (n && (a.revision || 0) > (n.revision || 0)) next.set(id, a);
      }
      state.alerts = next;
      $("#board-error").hidden = true;
      renderBoard();
    } catch (err) {
      if (err.status === 401) return;
      showError("#board-error", `告警读取失败 / Cannot load alerts: ${err.message}`);
    }
  }

  async function loadZones() {
    try {
      const zones = await api.get("/api/zones");
      state.zones = new Map((Array.isArray(zones) ? zones : zones.items || []).map((z) => [z.id, z]));
      $("#zones-error").hidden = true;
      renderZones();
      renderBoard(); // zone names on cards that came from the stream
    } catch (err) {
      if (err.status === 401) return;
      showError("#zones-error", `区域读取失败 / Cannot load zones: ${err.message}`);
    }
  }

  let shiftSeq = 0;
  async function loadShiftLog() {
    const seq = ++shiftSeq;
    const hours = Number($("#shiftlog-hours").value) || 12;
    try {
      const page = await api.get(`/api/shift-log?hours=${hours}&limit=200`);
      if (seq !== shiftSeq) return;
      renderShiftLog(page);
      $("#shiftlog-error").hidden = true;
    } catch (err) {
      if (err.status === 401) return;
      showError("#shiftlog-error", `交班日志读取失败 / Cannot load the shift log: ${err.message}`);
    }
  }
  $("#shiftlog-hours").addEventListener("change", () => loadShiftLog());

  function renderShiftLog(page) {
    // The stream can be ahead of the database: an acknowledgement it announced shows at once,
    // and the log is read again shortly.
    let behind = false;
    const items = (page.items || []).map((e) => {
      const newer = state.latest.get(e.alert_id);
      if (!newer || (newer.revision || 0) <= (e.revision || 0)) return e;
      behind = true;
      return { ...e, acknowledged_by: newer.acknowledged_by, acknowledged_at: newer.acknowledged_at, latched: newer.latched };
    });
    if (behind) state.timers.push(setTimeout(loadShiftLog, 1500));
    fill($("#shiftlog-count"), page.total ? String(page.total) : "");
    $("#shiftlog-empty").hidden = items.length > 0;
    fill($("#shiftlog tbody"), items.map((e) => {
      const zone = zoneNames(e.zone_id, e.zone_name);
      const how = e.closed_how === "operator"
        ? [bi({ zh: "值班员解除", en: "Resolved by" }), " ", h("strong", { class: "resolved-by" }, e.resolved_by || "—")]
        : bi({ zh: "条件消失，自动解除", en: "Cleared on its own" });
      const ack = e.acknowledged_by
        ? [h("strong", { class: "acknowledged-by" }, e.acknowledged_by), " ", timeEl(e.acknowledged_at)]
        : e.latched
          ? h("span", { class: "tag latched" }, bi({ zh: "待确认", en: "Unacknowledged" }))
          : "—";
      return h("tr", { dataset: { alertId: e.alert_id, how: e.closed_how } },
        h("td", {}, timeEl(e.resolved_at)),
        h("td", {}, levelBadge(e.level)),
        h("td", {}, h("span", { class: "zh" }, zone.zh), " · ", bi(label(RISKS, e.risk))),
        h("td", { class: "how" }, how),
        h("td", { class: "ack" }, ack),
        h("td", { class: "note" }, e.note || ""),
      );
    }));
  }

  function showError(sel, text) {
    const el = $(sel);
    el.textContent = text;
    el.hidden = false;
  }

  /** Merge one alert record from the stream into the board. */
  function applyRecord(rec) {
    if (!rec || !rec.alert_id) return;
    const old = state.alerts.get(rec.alert_id);
    if (old && (old.revision || 0) > (rec.revision || 0)) return; // stale
    const known = state.latest.get(rec.alert_id);
    if (!known || (known.revision || 0) < (rec.revision || 0)) state.latest.set(rec.alert_id, rec);
    if (!onBoard(rec)) {
      state.alerts.delete(rec.alert_id);
    } else {
      const forecast = rec.evidence && rec.evidence.forecast;
      const merged = {
        ...(old || {}), ...rec, updated_at: rec.at || rec.updated_at,
        expected_at: rec.predicted && forecast ? forecast.expected_at : null,
      };
      if (!old) {
        state.fresh.add(rec.alert_id);
        setTimeout(() => {
          state.fresh.delete(rec.alert_id);
          const card = document.querySelector(`.alert-card[data-alert-id="${CSS.escape(rec.alert_id)}"]`);
          if (card) card.classList.remove("fresh");
        }, 6000);
      }
      state.alerts.set(rec.alert_id, merged);
    }
    renderBoard();
    if (state.selected === rec.alert_id) loadDetail(rec.alert_id, { keepForm: true });
    if (rec.status === "resolved") {
      loadShiftLog();
      state.timers.push(setTimeout(loadShiftLog, 2000)); // the database may be a moment behind
    }
  }

  /** Whether an alert belongs on the board: open, or latched (resolved, not yet acknowledged). */
  function onBoard(a) {
    return OPEN.includes(a.status) || (a.status === "resolved" && a.latched === true);
  }

  // ------------------------------------------------------------------ live --------------------

  function setLive(kind) {
    state.live = kind;
    renderHeader();
  }

  /** Seconds since the newest reading came in, as of now (the API's age plus local time since). */
  function feedAge() {
    const f = state.feed;
    if (!f || f.age_seconds === null || f.age_seconds === undefined) return null;
    return f.age_seconds + (Date.now() - f.fetchedAt) / 1000;
  }

  async function loadFeed() {
    try {
      const f = await api.get("/api/feed");
      state.feed = { ...f, fetchedAt: Date.now() };
    } catch (err) {
      if (err.status === 401) return;
    }
    renderHeader();
  }

  function ageText(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return `${s} 秒前 / ${s} s ago`;
    const m = Math.round(s / 60);
    return `${m} 分钟前 / ${m} min ago`;
  }

  /** The header says 实时 only while the stream is up and readings keep coming. */
  function renderHeader() {
    const el = $("#live");
    const age = feedAge();
    const silent = state.feed && age !== null && age > state.feed.silent_after_seconds;
    const kind = state.live === "live" && silent ? "silent" : state.live;
    el.dataset.state = kind;
    const banner = $("#feed-alert");
    if (silent) {
      const s = Math.round(age);
      fill($("#live-text"), bi({ zh: `数据中断 ${s} 秒`, en: `Feed silent ${s} s` }));
      fill(banner, `数据中断：已 ${s} 秒没有收到任何传感器读数（阈值 ${state.feed.silent_after_seconds} 秒）。看板上的状态可能已过时，请检查数据接入。`,
        h("span", { class: "en" }, ` No sensor reading for ${s} s (limit ${state.feed.silent_after_seconds} s): the board may be out of date; check the feed.`));
      banner.hidden = false;
      return;
    }
    banner.hidden = true;
    const text = {
      live: { zh: "实时", en: "Live" },
      connecting: { zh: "连接中", en: "Connecting" },
      retry: { zh: "重连中", en: "Reconnecting" },
      off: { zh: "未连接", en: "Offline" },
    }[kind];
    fill($("#live-text"), bi(text));
  }
  setInterval(() => { if (state.feed) renderHeader(); }, 1000);

  /**
   * Read a text/event-stream response body, calling onEvent(type, data) for each event and
   * onRetry(ms) for a "retry:" field. Comments (": keep-alive") are ignored.
   */
  async function readEvents(body, onEvent, onRetry) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let type = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length) onEvent(type, data.join("\n"));
          type = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
        else if (field === "retry" && /^\d+$/.test(val)) onRetry(Number(val));
      }
    }
  }

  function startLive() {
    stopLive();
    setLive("connecting");
    const controller = new AbortController();
    state.source = controller;
    let opened = false;
    let retryMs = 3000;

    const again = (ms) => {
      if (controller.signal.aborted) return;
      setLive("retry");
      state.timers.push(setTimeout(connect, ms));
    };

    async function connect() {
      if (controller.signal.aborted) return;
      const token = api.token();
      if (!token) return;
      let res;
      try {
        res = await fetch("/api/alerts/stream", {
          headers: { Accept: "text/event-stream", Authorization: `Bearer ${token}` },
          cache: "no-store",
          signal: controller.signal,
        });
      } catch (_) {
        return again(retryMs);
      }
      if (res.status === 401) return signOut("令牌无效、已过期或已吊销 / The token is invalid, expired or revoked");
      if (!res.ok || !res.body) {
        // 429 (too many failures from here) says when to try again; anything else: later.
        const wait = Number(res.headers.get("Retry-After")) || 0;
        return again(Math.max(retryMs, wait * 1000, 5000));
      }
      setLive("live");
      // After a reconnect, events may have been missed: read the board again.
      if (opened) loadAlerts();
      opened = true;
      let revoked = false;
      try {
        await readEvents(res.body, (type, data) => {
          if (type === "revoked") {
            revoked = true;
          } else if (type === "alert") {
            try {
              applyRecord(JSON.parse(data));
            } catch (err) {
              console.error("bad alert event", err);
            }
          }
        }, (ms) => { retryMs = ms; });
      } catch (_) {
        // aborted (signed out) or the connection broke: reconnect below unless aborted
      }
      if (controller.signal.aborted) return;
      if (revoked) {
        // The server ended the stream because the token stopped being valid: /api/me says
        // 401 and signs out (the API client's onUnauthorized).
        setLive("off");
        api.get("/api/me").then(() => again(retryMs), () => {});
        return;
      }
      again(retryMs);
    }

    connect();
    if (POLL_SECONDS > 0) state.timers.push(setInterval(loadAlerts, POLL_SECONDS * 1000));
    state.timers.push(setInterval(loadZones, ZONES_SECONDS * 1000));
    state.timers.push(setInterval(loadShiftLog, 30 * 1000));
    loadFeed();
    state.timers.push(setInterval(loadFeed, FEED_SECONDS * 1000));
  }

  function stopLive() {
    if (state.source) state.source.abort();
    state.source = null;
    for (const t of state.timers) { clearInterval(t); clearTimeout(t); }
    state.timers = [];
    setLive("off");
  }

  // ------------------------------------------------------------------ rendering ---------------

  function zoneNames(zoneId, fallback) {
    const z = state.zones.get(zoneId);
    if (z && z.name) return { zh: z.name.zh || zoneId, en: z.name.en || "" };
    if (fallback && typeof fallback === "object") return { zh: fallback.zh || zoneId, en: fallback.en || "" };
    return { zh: fallback || zoneId || "—", en: "" };
  }

  const newest = (a) => Date.parse(a.opened_at || a.updated_at || a.at || 0) || 0;

  function sortedAlerts() {
    return [...state.alerts.values()].sort(
      (a, b) => levelRank(b.level) - levelRank(a.level) || newest(b) - newest(a)
        || String(a.alert_id).localeCompare(String(b.alert_id)),
    );
  }

  function renderBoard() {
    const list = $("#alerts");
    const alerts = sortedAlerts();
    // Redrawing replaces the cards: keep the keyboard focus on the same alert.
    const active = document.activeElement;
    const focused = active && list.contains(active) ? active.dataset.alertId : null;
    fill(list, alerts.map(alertCard));
    if (focused) {
      const card = list.querySelector(`[data-alert-id="${CSS.escape(focused)}"]`);
      if (card) card.focus();
    }
    $("#no-alerts").hidden = alerts.length > 0;
    const firing = alerts.filter((a) => a.status === "firing").length;
    const latched = alerts.filter((a) => a.latched).length;
    fill($("#alert-count"), alerts.length
      ? `${alerts.length}（${firing} 告警中 / firing${latched ? `，${latched} 已解除待确认 / cleared, unacknowledged` : ""}）`
      : "");
  }

  function alertCard(a) {
    const risk = label(RISKS, a.risk);
    const status = label(ALERT_STATUSES, a.status);
    const zone = zoneNames(a.zone_id, a.zone_name);
    const summary = a.summary || {};
    const classes = ["alert-card", `level-${a.level}`, `status-${a.status}`];
    if (a.latched) classes.push("latched");
    if (a.predicted) classes.push("forecast");
    if (state.fresh.has(a.alert_id)) classes.push("fresh");
    if (state.selected === a.alert_id) classes.push("selected");
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: classes.join(" "),
          dataset: { alertId: a.alert_id, level: a.level, status: a.status, risk: a.risk, zone: a.zone_id, latched: a.latched ? "true" : "false" },
          "aria-pressed": state.selected === a.alert_id ? "true" : "false",
          onclick: () => select(a.alert_id),
        },
        h("span", { class: "card-head" },
          levelBadge(a.level),
          h("span", { class: "risk" }, bi(risk)),
          h("span", { class: `status-tag status-${a.status}`, dataset: { status: a.status } }, bi(status)),
          a.latched ? h("span", { class: "tag latched" }, bi({ zh: "待确认", en: "Unacknowledged" })) : null,
          a.predicted ? h("span", { class: "tag predicted" }, bi({ zh: "预判", en: "Forecast" })) : null,
        ),
        a.predicted && a.expected_at
          ? h("span", { class: "forecast-line" },
            "预计 ", h("strong", { class: "expected-clock" }, clock(a.expected_at)), " 达到橙色 · ",
            h("span", { class: "en" }, `orange expected at ${clock(a.expected_at)} · `),
            h("span", { class: "countdown", dataset: { expectedAt: a.expected_at } }, countdownText(a.expected_at)))
          : null,
        h("span", { class: "zone" }, h("span", { class: "zh" }, zone.zh), zone.en ? h("span", { class: "en" }, ` ${zone.en}`) : null),
        summary.zh ? h("span", { class: "summary" }, summary.zh) : null,
        summary.en ? h("span", { class: "summary en" }, summary.en) : null,
        h("span", { class: "meta" },
          "开始 ", h("span", { class: "en" }, "Opened "), timeEl(a.opened_at),
          " · 更新 ", h("span", { class: "en" }, "Updated "), timeEl(a.updated_at || a.at),
          a.assignee ? [" · 指派 ", h("span", { class: "en" }, "Assignee "), h("strong", { class: "assignee" }, a.assignee)] : null,
        ),
      ),
    );
  }

  function renderZones() {
    const body = $("#zones tbody");
    const zones = [...state.zones.values()];
    fill(body, zones.map((z) => {
      const peaks = z.peaks || {};
      const occ = z.occupancy === null || z.occupancy === undefined ? "—" : `${num(z.occupancy * 100, 0)}%`;
      return h("tr", { dataset: { zone: z.id, level: z.level || "none" } },
        h("th", { scope: "row" },
          h("span", { class: "zh" }, (z.name && z.name.zh) || z.id),
          z.estimated ? h("span", { class: "est", title: "面积或容量为估算 Estimated area or capacity" }, "估") : null,
          h("br"), h("span", { class: "en" }, (z.name && z.name.en) || "")),
        h("td", {}, z.grid ? bi(label(GRIDS, z.grid)) : "—"),
        h("td", { class: "n" }, num(z.people)),
        h("td", { class: "n" }, z.density === null || z.density === undefined ? "—" : Number(z.density).toFixed(2)),
        h("td", { class: "n" }, occ),
        h("td", { class: "n peaks" }, `${num(peaks["5m"])} / ${num(peaks["1h"])} / ${num(peaks.day)}`),
        h("td", { class: "n" }, `${num(z.inflow_per_min, 1)} / ${num(z.outflow_per_min, 1)}`),
        h("td", { class: "level" }, z.level ? levelBadge(z.level) : h("span", { class: "muted" }, "正常 ", h("span", { class: "en" }, "Normal"))),
        h("td", {}, timeEl(z.updated_at)),
        h("td", { class: "n age" }, z.reading_age_seconds === null || z.reading_age_seconds === undefined ? "—" : ageText(z.reading_age_seconds)),
      );
    }));
  }

  // ------------------------------------------------------------------ detail ------------------

  function select(alertId) {
    state.selected = alertId;
    renderBoard();
    loadDetail(alertId);
  }

  let detailSeq = 0;
  async function loadDetail(alertId, { keepForm = false, attempt = 0 } = {}) {
    const seq = ++detailSeq;
    const panel = $("#detail");
    if (!keepForm && attempt === 0) fill(panel, h("p", { class: "empty" }, "加载中… ", h("span", { class: "en" }, "Loading…")));
    let a;
    try {
      a = await api.get(`/api/alerts/${encodeURIComponent(alertId)}`);
    } catch (err) {
      if (seq !== detailSeq || err.status === 401 || state.selected !== alertId) return;
      // The stream can be ahead of the database by a moment (a 404 for a brand-new alert):
      // try again a few times before giving up.
      if (attempt < 10 && (err.status === 404 || !err.status || err.status >= 500)) {
        setTimeout(() => {
          if (seq === detailSeq && state.selected === alertId) loadDetail(alertId, { keepForm, attempt: attempt + 1 });
        }, 500 + 250 * attempt);
        return;
      }
      if (keepForm) return; // keep what is shown; the next event or refresh tries again
      fill(panel, h("p", { class: "error", role: "alert" }, `无法读取告警 / Cannot load the alert: ${err.message}`));
      return;
    }
    if (seq !== detailSeq || state.selected !== alertId) return;
    // The stream can be ahead of the database: show the newest revision it announced at once,
    // and read again until the database has caught up (history, reports).
    const newer = state.latest.get(alertId);
    if (newer && (newer.revision || 0) > (a.revision || 0)) {
      a = { ...a, ...newer, updated_at: newer.at || a.updated_at, acknowledged: !!newer.acknowledged_by };
      if (attempt < 20) {
        setTimeout(() => {
          if (seq === detailSeq && state.selected === alertId) loadDetail(alertId, { keepForm: true, attempt: attempt + 1 });
        }, 300 + 100 * attempt);
      }
    }
    // Keep what the operator is typing when the panel is redrawn for a live update.
    const saved = keepForm ? {
      note: ($("#action-note") || {}).value || "",
      notePublic: !!($("#action-note-public") || {}).checked,
      assignee: ($("#action-assignee") || {}).value || "",
      // "Sent, waiting…" stays until the alert changes (a new revision means it was applied).
      message: $("#action-message") && panel.dataset.revision === String(a.revision)
        ? [...$("#action-message").childNodes] : null,
    } : null;
    renderDetail(a, saved);
  }

  function section(titleZh, titleEn, ...content) {
    return h("section", { class: "detail-section" }, h("h3", {}, titleZh, " ", h("span", { class: "en" }, titleEn)), content);
  }

  const clockFormat = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false });
  /** HH:MM in Beijing time. */
  function clock(iso) {
    const t = Date.parse(iso);
    return Number.isFinite(t) ? clockFormat.format(new Date(t)) : "";
  }

  /** "还有 8 分 12 秒 / in 8 min 12 s", or "已过 … / … ago" once the time has passed. */
  function countdownText(iso) {
    const ms = Date.parse(iso) - Date.now();
    if (!Number.isFinite(ms)) return "";
    const total = Math.round(Math.abs(ms) / 1000);
    const m = Math.floor(total / 60);
    const sec = total % 60;
    return ms >= 0 ? `还有 ${m} 分 ${sec} 秒 / in ${m} min ${sec} s` : `已过 ${m} 分 ${sec} 秒 / ${m} min ${sec} s ago`;
  }
  setInterval(() => {
    for (const el of document.querySelectorAll(".countdown[data-expected-at]")) el.textContent = countdownText(el.dataset.expectedAt);
  }, 1000);

  function evidenceValue(v) {
    if (v === null || v === undefined) return "—";
    if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) return v.join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  function renderDetail(a, saved) {
    const panel = $("#detail");
    panel.dataset.revision = String(a.revision);
    const risk = label(RISKS, a.risk);
    const status = label(ALERT_STATUSES, a.status);
    const zone = zoneNames(a.zone_id, a.zone_name);
    const summary = a.summary || {};
    const open = OPEN.includes(a.status);
    const latched = a.status === "resolved" && a.latched === true;
    panel.dataset.status = a.status;
    panel.dataset.level = a.level;
    panel.dataset.latched = latched ? "true" : "false";
    const evidence = a.evidence && typeof a.evidence === "object" ? Object.entries(a.evidence) : [];
    const explanation = a.explanation && typeof a.explanation === "object" ? a.explanation : null;
    const history = Array.isArray(a.history) ? [...a.history].sort((x, y) => (y.revision || 0) - (x.revision || 0)) : [];
    const reports = Array.isArray(a.reports) ? a.reports : [];

    const note = h("textarea", { id: "action-note", rows: "2", maxlength: "2000", placeholder: "可选 / optional" });
    note.value = saved ? saved.note : "";
    const notePublic = h("input", { id: "action-note-public", type: "checkbox" });
    notePublic.checked = saved ? saved.notePublic : false;
    const assignee = h("input", { id: "action-assignee", type: "text", maxlength: "128", autocomplete: "off", placeholder: "姓名 / name" });
    assignee.value = saved ? saved.assignee : "";
    const message = h("p", { id: "action-message", class: "action-message", role: "status", "aria-live": "polite" });
    if (saved && saved.message) message.replaceChildren(...saved.message);

    const act = (action) => async () => {
      const body = {};
      if (note.value.trim()) {
        body.note = note.value.trim();
        if (notePublic.checked) body.public = true;
      }
      if (action === "assign") {
        const name = assignee.value.trim();
        if (!name) {
          fill(message, h("span", { class: "error" }, "请输入指派对象的姓名 / Enter the name to assign to"));
          assignee.focus();
          return;
        }
        body.assignee = name;
      }
      for (const b of panel.querySelectorAll(".actions button")) b.disabled = true;
      fill(message, "提交中… ", h("span", { class: "en" }, "Sending…"));
      try {
        await api.post(`/api/alerts/${encodeURIComponent(a.alert_id)}/${action}`, body);
        note.value = "";
        notePublic.checked = false;
        if (action === "assign") assignee.value = "";
        fill(message, "已提交，等待处理 ", h("span", { class: "en" }, "Sent; waiting for the pipeline to apply it"));
        // The change arrives on the stream; read the detail again in case the stream is down.
        setTimeout(() => { if (state.selected === a.alert_id) loadDetail(a.alert_id, { keepForm: true }); }, 1500);
      } catch (err) {
        if (err.status === 401) return;
        fill(message, h("span", { class: "error" }, `操作失败 / Failed (${err.status || "network"}): ${err.message}`));
      } finally {
        for (const b of panel.querySelectorAll(".actions button")) b.disabled = false;
        updateButtons();
      }
    };

    const ackBtn = h("button", { type: "button", class: "primary", id: "btn-ack", onclick: act("ack") }, "确认 ", h("span", { class: "en" }, "Acknowledge"));
    const assignBtn = h("button", { type: "button", id: "btn-assign", onclick: act("assign") }, "指派 ", h("span", { class: "en" }, "Assign"));
    const resolveBtn = h("button", { type: "button", class: "danger", id: "btn-resolve", onclick: act("resolve") }, "解除 ", h("span", { class: "en" }, "Resolve"));
    function updateButtons() {
      // Actions follow the status: a latched alert can only be acknowledged; a resolved one
      // (acknowledged or closed) takes no action at all.
      ackBtn.disabled = !(a.status === "firing" || latched);
      assignBtn.disabled = !open;
      resolveBtn.disabled = !open;
    }
    updateButtons();

    fill(
      panel,
      h("div", { class: "detail-head" },
        h("h2", { id: "detail-title" }, levelBadge(a.level), " ", bi(risk)),
        h("button", { type: "button", class: "quiet close", "aria-label": "关闭 Close", onclick: () => { state.selected = null; delete panel.dataset.revision; renderBoard(); fill(panel, h("p", { class: "empty" }, "选择一条告警查看详情 ", h("span", { class: "en" }, "Select an alert to see its details"))); } }, "×"),
      ),
      h("p", { class: "detail-status" },
        h("span", { class: `status-tag status-${a.status}`, id: "detail-status", dataset: { status: a.status } }, bi(status)),
        latched ? h("span", { class: "tag latched" }, bi({ zh: "已自行解除，待确认", en: "Cleared on its own, unacknowledged" })) : null,
        a.acknowledged_by ? [" · 确认 ", h("span", { class: "en" }, "Acknowledged by "), h("strong", { class: "acknowledged-by" }, a.acknowledged_by), " ", timeEl(a.acknowledged_at)] : null,
        a.predicted ? h("span", { class: "tag predicted" }, bi({ zh: "预测", en: "Predicted" })) : null,
        " ", h("span", { class: "muted" }, `#${a.revision ?? "?"}`),
        a.assignee ? [" · 指派 ", h("span", { class: "en" }, "Assignee "), h("strong", { class: "assignee" }, a.assignee)] : null,
      ),
      h("p", { class: "zone" }, h("span", { class: "zh" }, zone.zh), zone.en ? h("span", { class: "en" }, ` ${zone.en}`) : null,
        a.grid ? h("span", { class: "muted" }, " · ", bi(label(GRIDS, a.grid)), " 网格 ", h("span", { class: "en" }, "grid")) : null),
      summary.zh ? h("p", { class: "summary" }, summary.zh) : null,
      summary.en ? h("p", { class: "summary en" }, summary.en) : null,
      h("p", { class: "meta" }, "开始 ", h("span", { class: "en" }, "Opened "), timeEl(a.opened_at), " · 更新 ", h("span", { class: "en" }, "Updated "), timeEl(a.updated_at)),

      h("div", { class: "actions" },
        open || latched ? [
          h("div", { class: "field" }, h("label", { for: "action-note" }, "备注 ", h("span", { class: "en" }, "Note")), note,
            h("label", { class: "check", for: "action-note-public" }, notePublic,
              " 对报告的志愿者公开（默认仅内部可见）",
              h("span", { class: "en" }, " Show to the reporting volunteers (internal by default)"))),
          h("div", { class: "field" }, h("label", { for: "action-assignee" }, "指派给 ", h("span", { class: "en" }, "Assign to")), assignee),
        ] : null,
        h("div", { class: "buttons" }, ackBtn, assignBtn, resolveBtn),
        latched
          ? h("p", { class: "muted resolved-note" }, "此告警已自行解除，请确认后移出看板 ", h("span", { class: "en" }, "Cleared on its own: acknowledge it to take it off the board"))
          : open ? null : h("p", { class: "muted resolved-note" }, "此告警已解除 ", h("span", { class: "en" }, "This alert is resolved")),
        message),

      section("为何告警", "Why",
        explanation
          ? [
            h("p", { class: "rule", id: "detail-rule", lang: "zh-CN" }, explanation.zh),
            h("p", { class: "rule en", id: "detail-rule-en", lang: "en" }, explanation.en),
            explanation.expected_at
              ? h("p", { class: "forecast-time" }, "预计 ", h("span", { class: "en" }, "Expected "),
                h("strong", { class: "expected-clock" }, explanation.expected_clock || ""), " · ",
                h("span", { class: "countdown", dataset: { expectedAt: explanation.expected_at } }, countdownText(explanation.expected_at)))
              : null,
            (explanation.figures || []).length
              ? h("dl", { class: "figures" }, explanation.figures.map((f) => [
                h("dt", {}, f.zh, " ", h("span", { class: "en" }, f.en)), h("dd", {}, f.value)]))
              : null,
          ]
          : h("p", { class: "muted" }, "—"),
        h("details", { class: "raw" },
          h("summary", {}, "原始数据与编号 ", h("span", { class: "en" }, "Raw evidence and ids")),
          h("p", { class: "meta" }, h("code", { class: "id" }, a.alert_id)),
          evidence.length
            ? h("dl", { class: "evidence" }, evidence.map(([k, v]) => [h("dt", {}, k), h("dd", {}, evidenceValue(v))]))
            : h("p", { class: "muted" }, "—"))),

      section("关联报告", "Linked reports",
        reports.length
          ? h("ul", { class: "reports" }, reports.map((r) => h("li", { class: "report", dataset: { reportId: r.report_id } },
            h("p", { class: "report-head" },
              h("strong", {}, bi(label(CATEGORIES, r.category))),
              " · ", timeEl(r.submitted_at),
              r.status ? [" · ", bi(label(STATUSES, r.status))] : null),
            h("p", { class: "description" }, r.description ?? ""),
            r.photo_url ? h("p", { class: "photo" }, "照片 ", h("span", { class: "en" }, "Photo "),
              h("a", { href: /^https?:\/\//i.test(r.photo_url) ? r.photo_url : null, rel: "noopener noreferrer", target: "_blank" }, r.photo_url)) : null,
            Array.isArray(r.photos) && r.photos.length && window.PuhuiPhotos
              ? h("p", { class: "photos report-photos" }, r.photos.map((p) => {
                // fetched with the operator's token (each read recorded), shown from memory
                const img = PuhuiPhotos.image(p.thumbnail_url, { token: api.token, alt: "照片 Photo" });
                img.dataset.photoId = p.photo_id;
                return img;
              })) : null,
            (r.lat !== null && r.lat !== undefined) ? h("p", { class: "muted" }, `${r.lat}, ${r.lon}`) : null,
            h("p", { class: "muted" }, h("code", {}, r.report_id)))))
          : h("p", { class: "muted" }, "无 ", h("span", { class: "en" }, "None"))),

      section("历史", "History",
        h("div", { class: "table-wrap" },
          h("table", { class: "history" },
            h("thead", {}, h("tr", {},
              [["#", ""], ["时间", "Time"], ["变化", "Change"], ["操作人", "Actor"], ["备注", "Note"]].map(([zh, en]) =>
                h("th", { scope: "col" }, zh, en ? [" ", h("span", { class: "en" }, en)] : null)))),
            h("tbody", {}, history.map((e) => h("tr", { dataset: { change: e.change } },
              h("td", { class: "n" }, e.revision ?? ""),
              h("td", {}, timeEl(e.at)),
              h("td", {},
                h("strong", {}, bi(label(CHANGES, e.change))), h("br"),
                levelBadge(e.level), " ", h("span", { class: "muted" }, bi(label(ALERT_STATUSES, e.status)))),
              h("td", {}, e.actor || "—",
                e.assignee ? [h("br"), "→ ", h("span", { class: "assignee" }, e.assignee)] : null),
              h("td", { class: "note" }, e.note || ""),
            )))))),
    );
  }

  start();
})();

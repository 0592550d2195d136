/* Puhui 浦汇 — the volunteers' page at "/report".
 *
 * Chinese by default, English on request (remembered in localStorage). Views, by location.hash:
 * "#new" the report form, "#r/<id>" a report's status (GET /api/reports/{id} every few seconds,
 * "?poll=SECONDS", default 3, until it is resolved), "#mine" the volunteer's own reports.
 * All user text goes in as text (see common.js).
 */
"use strict";

(() => {
  const { h, fill, $, client, CATEGORIES, STATUSES, CHANGES, label, timeEl } = Puhui;

  const TOKEN_KEY = "puhui.report.token";
  const LANG_KEY = "puhui.lang";
  const params = new URLSearchParams(location.search);
  const POLL_SECONDS = Math.max(1, Number(params.get("poll")) || 3);

  const TEXT = {
    zh: {
      page_title: "浦汇 · 志愿者报告",
      title: "浦汇 · 志愿者报告",
      subtitle: "打浦桥街道",
      signin_title: "志愿者登录",
      token_label: "访问令牌",
      token_hint: "令牌由街道工作人员发放，只保存在本标签页。",
      signin: "登录",
      signout: "退出",
      bad_token: "令牌无效或已吊销，请重新输入。",
      check_failed: "无法验证令牌：",
      tab_new: "新报告",
      tab_mine: "我的报告",
      zone: "地点（区域）",
      zone_choose: "请选择区域",
      category: "类别",
      category_choose: "请选择类别",
      description: "情况描述",
      description_hint: "写清楚具体位置、看到了什么、大约多少人。",
      photo: "照片链接（可选）",
      location: "位置（可选）",
      add_location: "附上我的位置",
      remove_location: "移除",
      locating: "定位中…",
      location_failed: "无法获取位置",
      submit: "提交报告",
      submitting: "提交中…",
      required: "请填写此项",
      bad_url: "请输入以 http:// 或 https:// 开头的链接",
      fix_fields: "请检查标出的内容。",
      too_many: (s) => `提交过于频繁，请 ${s} 秒后再试。`,
      failed: "提交失败：",
      zones_failed: "无法读取区域列表：",
      status_title: "报告状态",
      explain: {
        submitted: "报告已收到，正在转交值班员。",
        linked: "报告已并入一条告警，已显示在值班员的看板上，尚待值班员查看。",
        acknowledged: "值班员已查看并采取行动。",
        resolved: "事件已解除。谢谢您的报告！",
      },
      zone_label: "地点",
      category_label: "类别",
      submitted_at: "提交时间",
      report_id: "报告编号",
      photo_label: "照片",
      description_label: "描述",
      updates: "处理记录",
      no_updates: "暂无处理记录",
      last_checked: "上次刷新",
      new_report: "再报一条",
      my_reports: "查看我的报告",
      no_reports: "还没有报告。",
      loading: "加载中…",
      not_found: "找不到这条报告。",
      load_failed: "读取失败：",
      grids: { zhongtai: "中泰", zhongshun: "中顺", zhonghai: "中海", zhonghui: "中汇" },
    },
    en: {
      page_title: "Puhui · Volunteer reports",
      title: "Puhui · Volunteer reports",
      subtitle: "Dapuqiao Subdistrict",
      signin_title: "Volunteer sign-in",
      token_label: "Access token",
      token_hint: "Your token comes from the subdistrict office; it is kept in this tab only.",
      signin: "Sign in",
      signout: "Sign out",
      bad_token: "The token is invalid or revoked; please enter it again.",
      check_failed: "Cannot check the token: ",
      tab_new: "New report",
      tab_mine: "My reports",
      zone: "Place (zone)",
      zone_choose: "Choose a zone",
      category: "Category",
      category_choose: "Choose a category",
      description: "What is happening",
      description_hint: "Say exactly where, what you see, and about how many people.",
      photo: "Photo link (optional)",
      location: "Location (optional)",
      add_location: "Add my location",
      remove_location: "Remove",
      locating: "Locating…",
      location_failed: "Could not get your location",
      submit: "Submit report",
      submitting: "Submitting…",
      required: "Please fill this in",
      bad_url: "Enter a link starting with http:// or https://",
      fix_fields: "Please check the marked fields.",
      too_many: (s) => `Too many reports; please try again in ${s} s.`,
      failed: "Could not submit: ",
      zones_failed: "Cannot load the zones: ",
      status_title: "Report status",
      explain: {
        submitted: "Received; it is being passed to the control room.",
        linked: "Your report joined an alert on the control room's board; no operator has looked at it yet.",
        acknowledged: "An operator has looked at it and acted.",
        resolved: "Resolved. Thank you for reporting!",
      },
      zone_label: "Place",
      category_label: "Category",
      submitted_at: "Submitted",
      report_id: "Report number",
      photo_label: "Photo",
      description_label: "Description",
      updates: "Updates",
      no_updates: "No updates yet",
      last_checked: "Last checked",
      new_report: "Report something else",
      my_reports: "See my reports",
      no_reports: "No reports yet.",
      loading: "Loading…",
      not_found: "Report not found.",
      load_failed: "Could not load: ",
      grids: { zhongtai: "Zhongtai", zhongshun: "Zhongshun", zhonghai: "Zhonghai", zhonghui: "Zhonghui" },
    },
  };

  const STEPS = ["submitted", "linked", "acknowledged", "resolved"];
  // What happened to a report, in a volunteer's words (the console's terms are for operators).
  const UPDATES = {
    ...CHANGES,
    raised: { zh: "已通知值班员", en: "Control room alerted" },
    escalated: { zh: "已升级", en: "Escalated" },
    deescalated: { zh: "已降级", en: "Downgraded" },
    assigned: { zh: "已指派处置人员", en: "Assigned to a responder" },
  };
  const stored = localStorage.getItem(LANG_KEY);
  let lang = stored === "en" ? "en" : "zh";
  const t = (key) => TEXT[lang][key];
  const pick = (pair) => pair[lang] || pair.zh;

  const api = client(TOKEN_KEY, { onUnauthorized: () => signOut(t("bad_token")) });
  const state = { me: null, zones: [], location: null, pollTimer: null, retryTimer: null, current: null };

  // ------------------------------------------------------------------ language ----------------

  function applyLanguage() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.title = t("page_title");
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
    for (const b of document.querySelectorAll(".lang button")) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    }
    renderZoneOptions();
    renderCategoryOptions();
    updateCount();
    if (state.location) showLocation();
    route(); // redraw the dynamic view in the new language
  }

  for (const b of document.querySelectorAll(".lang button")) {
    b.addEventListener("click", () => {
      lang = b.dataset.lang === "en" ? "en" : "zh";
      localStorage.setItem(LANG_KEY, lang);
      applyLanguage();
    });
  }

  // ------------------------------------------------------------------ sign-in -----------------

  function show(viewId) {
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== viewId;
    for (const a of document.querySelectorAll(".tabs a")) {
      const on = `view-${a.dataset.tab}` === viewId;
      if (on) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function showLogin(message) {
    stopPolling();
    $("#tabs").hidden = true;
    show("login");
    const err = $("#login-error");
    err.textContent = message || "";
    err.hidden = !message;
  }

  function signOut(message) {
    api.clearToken();
    state.me = null;
    showLogin(message);
  }

  async function start() {
    if (!api.token()) return showLogin();
    try {
      state.me = await api.get("/api/me");
    } catch (err) {
      if (err.status !== 401) showLogin(t("check_failed") + err.message);
      return;
    }
    $("#tabs").hidden = false;
    await loadZones();
    route();
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

  // ------------------------------------------------------------------ routing -----------------

  function route() {
    if (!state.me) return;
    stopPolling();
    const hash = location.hash.replace(/^#\/?/, "");
    if (hash.startsWith("r/")) {
      let id = hash.slice(2);
      try { id = decodeURIComponent(id); } catch (_) { /* keep it as typed */ }
      show("view-status");
      loadStatus(id, { first: state.current !== id });
    } else if (hash === "mine") {
      show("view-mine");
      loadMine();
    } else {
      show("view-new");
    }
  }
  window.addEventListener("hashchange", route);

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  // ------------------------------------------------------------------ the form ----------------

  async function loadZones() {
    try {
      const zones = await api.get("/api/zones");
      state.zones = Array.isArray(zones) ? zones : zones.items || [];
      renderZoneOptions();
      $("#form-error").hidden = true;
    } catch (err) {
      if (err.status === 401) return;
      const e = $("#form-error");
      e.textContent = t("zones_failed") + err.message;
      e.hidden = false;
      // Try again shortly: the form is useless without zones.
      clearTimeout(state.retryTimer);
      state.retryTimer = setTimeout(loadZones, 5000);
    }
  }

  function renderZoneOptions() {
    const select = $("#zone");
    const chosen = select.value;
    const groups = new Map();
    for (const z of state.zones) {
      const key = z.grid || "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(z);
    }
    const option = (z) => h("option", { value: z.id }, (z.name && pick(z.name)) || z.id);
    fill(
      select,
      h("option", { value: "" }, t("zone_choose")),
      [...groups.entries()].map(([grid, zones]) => grid
        ? h("optgroup", { label: (t("grids")[grid] || grid) }, zones.map(option))
        : zones.map(option)),
    );
    select.value = chosen;
  }

  function renderCategoryOptions() {
    const select = $("#category");
    const chosen = select.value;
    fill(
      select,
      h("option", { value: "" }, t("category_choose")),
      Object.entries(CATEGORIES).map(([code, names]) => h("option", { value: code }, pick(names))),
    );
    select.value = chosen;
  }

  function updateCount() {
    $("#description-count").textContent = `${$("#description").value.length}/2000`;
  }
  $("#description").addEventListener("input", updateCount);

  function showLocation() {
    const loc = state.location;
    $("#location-text").textContent = loc ? `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}` : "";
    $("#unlocate").hidden = !loc;
  }
  $("#locate").addEventListener("click", () => {
    if (!navigator.geolocation) {
      $("#location-text").textContent = t("location_failed");
      return;
    }
    $("#location-text").textContent = t("locating");
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        state.location = { lat: pos.coords.latitude, lon: pos.coords.longitude };
        showLocation();
      },
      () => { $("#location-text").textContent = t("location_failed"); },
      { timeout: 10000, maximumAge: 60000 },
    );
  });
  $("#unlocate").addEventListener("click", () => { state.location = null; showLocation(); });

  function clearErrors() {
    for (const el of document.querySelectorAll("[data-error-for]")) { el.hidden = true; el.textContent = ""; }
    for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    $("#form-error").hidden = true;
  }

  function fieldError(field, message) {
    const el = document.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (!el) return false;
    el.textContent = message;
    el.hidden = false;
    const input = document.querySelector(`[name="${CSS.escape(field)}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  function formError(text) {
    const e = $("#form-error");
    e.textContent = text;
    e.hidden = false;
  }

  $("#report-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const body = {
      zone_id: $("#zone").value,
      category: $("#category").value,
      description: $("#description").value.trim(),
    };
    const photo = $("#photo").value.trim();
    if (photo) body.photo_url = photo;
    if (state.location) { body.lat = state.location.lat; body.lon = state.location.lon; }

    const missing = ["zone_id", "category", "description"].filter((f) => !body[f]);
    for (const f of missing) fieldError(f, t("required"));
    const badUrl = photo && !/^https?:\/\/\S+$/i.test(photo);
    if (badUrl) fieldError("photo_url", t("bad_url"));
    if (missing.length || badUrl) {
      formError(t("fix_fields"));
      const first = document.querySelector("[aria-invalid]");
      if (first) first.focus();
      return;
    }

    const button = $("#submit");
    button.disabled = true;
    button.textContent = t("submitting");
    let retryAfter = 0;
    try {
      const res = await api.post("/api/reports", body);
      $("#report-form").reset();
      state.location = null;
      showLocation();
      updateCount();
      location.hash = `#r/${encodeURIComponent(res.report_id)}`;
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 429) {
        retryAfter = err.retryAfter || 30;
        formError(t("too_many")(retryAfter));
      } else if (err.status === 422 && err.details.length) {
        let placed = false;
        for (const d of err.details) {
          const field = d.field || (Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : null);
          if (field && fieldError(String(field), d.message || d.msg || t("fix_fields"))) placed = true;
        }
        formError(placed ? t("fix_fields") : t("failed") + err.message);
      } else {
        formError(t("failed") + err.message);
      }
    } finally {
      button.textContent = t("submit");
      if (retryAfter) setTimeout(() => { button.disabled = false; }, retryAfter * 1000);
      else button.disabled = false;
    }
  });

  // ------------------------------------------------------------------ status ------------------

  function zoneName(report) {
    const z = state.zones.find((x) => x.id === report.zone_id);
    if (z && z.name) return pick(z.name);
    const n = report.zone_name;
    if (n && typeof n === "object") return pick(n);
    return n || report.zone_id || "—";
  }

  async function loadStatus(id, { first = false } = {}) {
    const view = $("#view-status");
    state.current = id;
    if (first) fill(view, h("p", { class: "empty" }, t("loading")));
    let report;
    try {
      report = await api.get(`/api/reports/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err.status === 401 || state.current !== id || view.hidden) return;
      if (err.status === 404) {
        fill(view, h("p", { class: "error", role: "alert" }, t("not_found")), actionsRow());
        return;
      }
      // A passing network problem: keep what is shown and try again.
      if (first) fill(view, h("p", { class: "error", role: "alert" }, t("load_failed") + err.message), actionsRow());
      schedule(id);
      return;
    }
    if (state.current !== id || view.hidden) return;
    renderStatus(report);
    if (report.status !== "resolved") schedule(id);
  }

  function schedule(id) {
    stopPolling();
    state.pollTimer = setTimeout(() => {
      if (state.current === id && !$("#view-status").hidden) loadStatus(id);
    }, POLL_SECONDS * 1000);
  }

  function actionsRow() {
    return [
      h("button", { type: "button", class: "primary wide", onclick: () => { location.hash = "#new"; } }, t("new_report")),
      h("button", { type: "button", class: "secondary", onclick: () => { location.hash = "#mine"; } }, t("my_reports")),
    ];
  }

  function renderStatus(r) {
    const status = STATUSES[r.status] ? r.status : "submitted";
    const reached = STEPS.indexOf(status);
    const updates = Array.isArray(r.updates) ? [...r.updates].reverse() : [];
    const icons = { submitted: "✉", linked: "⏳", acknowledged: "✔", resolved: "✔" };
    fill(
      $("#view-status"),
      h("h2", {}, t("status_title")),
      h("p", { id: "report-status", class: "status-big", dataset: { status }, role: "status" },
        h("span", { class: "icon", "aria-hidden": "true" }, icons[status]),
        h("span", {}, pick(label(STATUSES, status)))),
      h("p", { class: "explain" }, t("explain")[status]),
      h("ol", { class: "steps", "aria-label": t("status_title") }, STEPS.map((s, i) => h(
        "li",
        { class: i <= reached ? "done" : null, "aria-current": s === status ? "step" : null, dataset: { step: s } },
        pick(label(STATUSES, s)),
      ))),
      h("dl", { class: "facts" },
        h("dt", {}, t("zone_label")), h("dd", {}, zoneName(r)),
        h("dt", {}, t("category_label")), h("dd", {}, pick(label(CATEGORIES, r.category))),
        h("dt", {}, t("submitted_at")), h("dd", {}, timeEl(r.submitted_at, lang)),
        h("dt", {}, t("description_label")), h("dd", { class: "description", id: "report-description" }, r.description ?? ""),
        r.photo_url ? [h("dt", {}, t("photo_label")), h("dd", {}, r.photo_url)] : null,
        h("dt", {}, t("report_id")), h("dd", {}, h("code", {}, r.report_id)),
      ),
      h("h3", {}, t("updates")),
      updates.length
        ? h("ul", { class: "updates", id: "report-updates" }, updates.map((u) => h("li", { dataset: { change: u.change || "", status: u.status || "" } },
          h("strong", {}, pick(label(UPDATES, u.change))),
          " · ", timeEl(u.at, lang),
          u.note ? h("p", { class: "note" }, u.note) : null)))
        : h("p", { class: "muted" }, t("no_updates")),
      h("p", { class: "checked" }, `${t("last_checked")} `, timeEl(new Date().toISOString(), lang)),
      actionsRow(),
    );
  }

  // ------------------------------------------------------------------ my reports --------------

  async function loadMine() {
    let data;
    try {
      data = await api.get("/api/reports");
    } catch (err) {
      if (err.status === 401) return;
      const e = $("#mine-error");
      e.textContent = t("load_failed") + err.message;
      e.hidden = false;
      return;
    }
    $("#mine-error").hidden = true;
    const reports = (Array.isArray(data) ? data : data.items || []).slice()
      .sort((a, b) => (Date.parse(b.submitted_at) || 0) - (Date.parse(a.submitted_at) || 0));
    $("#mine-empty").hidden = reports.length > 0;
    fill($("#mine"), reports.map((r) => {
      const status = STATUSES[r.status] ? r.status : "submitted";
      return h("li", { dataset: { reportId: r.report_id } },
        h("a", { href: `#r/${encodeURIComponent(r.report_id)}` },
          h("span", { class: "row" },
            h("strong", {}, pick(label(CATEGORIES, r.category))),
            h("span", { class: `status-tag status-${status}`, dataset: { status } }, pick(label(STATUSES, status)))),
          h("span", {}, zoneName(r), " · ", timeEl(r.submitted_at, lang)),
          h("span", { class: "description" }, r.description ?? "")));
    }));
  }

  // ------------------------------------------------------------------ go ----------------------

  applyLanguage();
  start();
})();

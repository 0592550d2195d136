/* Puhui 浦汇 — the volunteers' page at "/report".
 *
 * Chinese by default, English on request (remembered in localStorage). Views, by location.hash:
 * "#new" the report form, "#r/<id>" a report's status (GET /api/reports/{id} every few seconds,
 * "?poll=SECONDS", default 3, until it is resolved), "#mine" the volunteer's own reports.
 * All user text goes in as text (see common.js).
 *
 * Sign-in: a one-time link ("#invite=<secret>", from `puhui token invite`) is exchanged for a
 * token, kept in localStorage until "sign out" (or a typed token). Zone: "add my location" (the
 * volunteer's consent; nothing is located before) proposes the nearest zone that has a point in
 * the registry. Outbox: every report gets its id (a UUID) and its time on the phone and is kept
 * in localStorage until the API has taken it; without a connection it waits and is resent when
 * the connection returns (the API treats a resend of the same id as the same report).
 */
"use strict";

(() => {
  const { h, fill, $, client, CATEGORIES, STATUSES, CHANGES, label, timeEl, INVITE_REFUSED } = Puhui;

  const TOKEN_KEY = "puhui.report.token";
  const OUTBOX_KEY = "puhui.report.outbox";
  // Last known answers, so the page works when it opens without a connection.
  const ME_KEY = "puhui.report.me";
  const ZONES_KEY = "puhui.report.zones";
  const RETRY_SECONDS = 10;
  const NEAR_METRES = 1500; // farther than this, no zone is proposed
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
      token_hint: "通常您会收到一个登录链接或二维码，打开即可登录。也可以在这里输入街道工作人员发放的令牌。登录状态保存在本机，直到您点“退出”。",
      signing_in: "正在通过邀请链接登录…",
      invite_failed: "无法通过链接登录：",
      signout_queued: (n) => `还有 ${n} 条报告等待发送，退出后会从本机删除。确定退出吗？`,
      zone_hint: "不知道区域名称？点下面的“附上我的位置”，页面会推荐离您最近的区域；也可以按网格和地名在列表中选择。",
      nearest: (name, m) => `离您最近的区域：${name}（约 ${m} 米），已为您选中。不对的话请在上面改选。`,
      nearest_ties: (names) => `同一位置附近还有：${names}。请确认是哪一个。`,
      nearest_none: "附近没有登记了位置的区域，请在上面的列表中选择。",
      location_denied: "没有获得位置权限。请在上面的列表中按网格和地名选择区域。位置能帮页面推荐离您最近的区域，也能让值班员更快找到现场；只有您点了“附上我的位置”才会使用，并且只随这条报告发送。如需开启，请在浏览器的网站设置中允许“位置”。",
      location_unavailable: "暂时无法获取位置（信号弱或在室内），请在上面的列表中选择区域。",
      location_consent: "只有点这个按钮才会获取位置，位置只随这条报告发送。",
      privacy_notice: "隐私说明：你的报告（描述、位置、照片）只给街道值班员处理事件用，每次查看都有记录；对外的预警信息只含类别和人数，不含你的身份和原话。这些个人信息保存期满（默认 180 天）后自动删除，你也可以要求导出或删除。",
      outbox_title: "待发送的报告",
      queued: "网络不通：报告已保存在手机上，联网后会自动发送（保留填写时的时间）。",
      waiting: "等待发送",
      sending: "发送中…",
      sent: "已发送",
      send_failed: "发送失败：",
      view_status: "查看状态",
      discard: "删除",
      made_at: "填写于",
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
      photo: "照片（可选）",
      take_photo: "📷 拍照",
      photo_hint: "点上面的按钮用手机相机拍照（最多 4 张）。照片上传时会去掉拍摄位置、手机型号等隐藏信息。",
      photos_waiting: (n) => `${n} 张照片等待上传`,
      photos_dropped: (n) => `${n} 张照片未被接受，报告已不带这些照片发送`,
      photo_not_kept: "照片无法保存在手机上，报告将不带照片发送。",
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
        in_case: "已立案并派遣处置单位，正在处置。",
        case_closed: "案件已处置完毕并经核查结案。谢谢您的报告！",
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
      token_hint: "You will usually get a sign-in link or QR code: open it to sign in. You can also enter a token from the subdistrict office here. You stay signed in on this phone until you tap \"Sign out\".",
      signing_in: "Signing in with the invitation link…",
      invite_failed: "Cannot sign in with the link: ",
      signout_queued: (n) => `${n} report(s) are still waiting to be sent; signing out deletes them from this phone. Sign out?`,
      zone_hint: "Not sure of the zone's name? Tap \"Add my location\" below and the page proposes the nearest zone; or choose one from the list, grouped by grid.",
      nearest: (name, m) => `Nearest zone: ${name} (about ${m} m), selected for you. If it is wrong, choose another above.`,
      nearest_ties: (names) => `Also at the same spot: ${names}. Please check which one it is.`,
      nearest_none: "No zone with a known location is near you; please choose one from the list above.",
      location_denied: "Location permission was not given. Please choose the zone from the list above, by grid and place name. Your location lets the page propose the nearest zone and helps the control room find the spot; it is used only when you tap \"Add my location\" and is sent only with this report. To allow it, enable \"Location\" in the browser's site settings.",
      location_unavailable: "Your location is not available right now (weak signal or indoors); please choose the zone from the list above.",
      location_consent: "Your location is read only when you tap this button and is sent only with this report.",
      privacy_notice: "Privacy: your report (description, location, photos) is used only by the 街道's duty operators to handle the incident, and each time one reads it is recorded; public warnings carry categories and counts, never who you are or your words. This personal data is erased when its retention ends (180 days by default); you may ask for a copy or for erasure.",
      outbox_title: "Reports waiting to be sent",
      queued: "No connection: the report is kept on this phone and will be sent when the connection returns (with the time you made it).",
      waiting: "Waiting to send",
      sending: "Sending…",
      sent: "Sent",
      send_failed: "Could not send: ",
      view_status: "See status",
      discard: "Delete",
      made_at: "Made",
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
      photo: "Photos (optional)",
      take_photo: "📷 Take a photo",
      photo_hint: "Tap the button above to take a photo with the phone's camera (up to 4). Hidden data such as where it was taken and the phone's model is removed when it is uploaded.",
      photos_waiting: (n) => `${n} photo(s) waiting to upload`,
      photos_dropped: (n) => `${n} photo(s) were not accepted; the report was sent without them`,
      photo_not_kept: "The photo could not be kept on this phone; the report goes without it.",
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
        in_case: "A case was opened and a unit dispatched; it is being handled.",
        case_closed: "The case was handled, checked and closed. Thank you for reporting!",
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
  const CASE_STEPS = ["submitted", "linked", "in_case", "case_closed"];
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

  const api = client(TOKEN_KEY, { persist: true, onUnauthorized: () => endSession(t("bad_token")) });
  const state = {
    me: null, zones: [], location: null, pollTimer: null, retryTimer: null, current: null,
    suggestion: null, // what the location said about the zone (re-rendered on a language change)
    sent: [], // reports the outbox delivered in this visit: {id, body}
    flushTimer: null, flushing: false,
  };

  // Photos: taken with the phone's camera, uploaded at once (api/static/photo-upload.js).
  const photos = PuhuiPhotos.attach($("#photo"), null, {
    token: api.token,
    lang: () => lang,
    preview: $("#photo-previews"),
    onError: (err) => { if (!err.status) return; fieldError("photo_ids", err.message); },
  });

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
    renderSuggestion();
    renderOutbox();
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

  // The token is refused (revoked): back to sign-in; reports waiting to be sent stay, to be sent
  // once the volunteer signs in again.
  function endSession(message) {
    api.clearToken();
    localStorage.removeItem(ME_KEY);
    state.me = null;
    clearTimeout(state.flushTimer);
    showLogin(message);
  }

  // "Sign out": forget the token and, once confirmed, the reports still waiting on this phone.
  function signOut() {
    const waiting = outbox().length;
    if (waiting && !window.confirm(t("signout_queued")(waiting))) return;
    localStorage.removeItem(OUTBOX_KEY);
    PuhuiPhotos.forgetAll().catch(() => {});
    photos.clear();
    state.sent = [];
    renderOutbox();
    endSession();
  }

  async function start() {
    const invite = Puhui.takeInvite();
    if (invite !== null) {
      stopPolling();
      $("#tabs").hidden = true;
      show("login");
      const err = $("#login-error");
      err.textContent = t("signing_in");
      err.hidden = false;
      try {
        api.setToken((await Puhui.exchangeInvite(invite)).token);
      } catch (e) {
        const why = INVITE_REFUSED[e.reason];
        return showLogin(why ? `${why.zh}\n${why.en}` : t("invite_failed") + e.message);
      }
    }
    if (!api.token()) return showLogin();
    try {
      state.me = await api.get("/api/me");
      localStorage.setItem(ME_KEY, JSON.stringify(state.me));
    } catch (err) {
      const known = !err.status && readJson(ME_KEY);
      if (known) {
        state.me = known; // no connection: carry on with who we were; the outbox will wait
      } else {
        if (err.status !== 401) showLogin(t("check_failed") + err.message);
        return;
      }
    }
    $("#tabs").hidden = false;
    await loadZones();
    route();
    renderOutbox();
    flushOutbox();
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

  function readJson(key) {
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch (_) {
      return null;
    }
  }

  async function loadZones() {
    try {
      const zones = await api.get("/api/zones");
      state.zones = Array.isArray(zones) ? zones : zones.items || [];
      // What a volunteer needs to choose offline: ids, names, grids, points (no live figures).
      localStorage.setItem(ZONES_KEY, JSON.stringify(state.zones.map(
        (z) => ({ id: z.id, name: z.name, grid: z.grid, location: z.location || null }))));
      renderZoneOptions();
      $("#form-error").hidden = true;
    } catch (err) {
      if (err.status === 401) return;
      const kept = !err.status && !state.zones.length && readJson(ZONES_KEY);
      if (Array.isArray(kept) && kept.length) {
        state.zones = kept; // no connection: the list from last time will do
        renderZoneOptions();
      } else if (!state.zones.length) {
        const e = $("#form-error");
        e.textContent = t("zones_failed") + err.message;
        e.hidden = false;
      }
      // Try again shortly: the form is useless without zones, and live ones are better.
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
  // Only this click reads the location (the volunteer's consent); it goes to the API only inside
  // the report, and the nearest zone is worked out here on the phone.
  $("#locate").addEventListener("click", () => {
    if (!navigator.geolocation) {
      $("#location-text").textContent = t("location_failed");
      state.suggestion = { kind: "unavailable" };
      renderSuggestion();
      return;
    }
    $("#location-text").textContent = t("locating");
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        state.location = { lat: pos.coords.latitude, lon: pos.coords.longitude };
        showLocation();
        proposeZone(state.location);
      },
      (err) => {
        $("#location-text").textContent = t("location_failed");
        state.suggestion = { kind: err && err.code === 1 ? "denied" : "unavailable" };
        renderSuggestion();
      },
      { timeout: 10000, maximumAge: 60000 },
    );
  });
  $("#unlocate").addEventListener("click", () => {
    state.location = null;
    state.suggestion = null;
    showLocation();
    renderSuggestion();
  });

  /** Great-circle distance in metres. */
  function metres(a, b) {
    const rad = Math.PI / 180;
    const dLat = (b.lat - a.lat) * rad;
    const dLon = (b.lon - a.lon) * rad;
    const x = Math.sin(dLat / 2) ** 2
      + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(x)));
  }

  /** Select the zone whose point is nearest (zones without a location are not candidates);
   * zones at the same point are named so the volunteer can tell which one it is. */
  function proposeZone(here) {
    const ranked = state.zones
      .filter((z) => z.location && Number.isFinite(z.location.lat) && Number.isFinite(z.location.lon))
      .map((z) => ({ zone: z, d: metres(here, z.location) }))
      .sort((a, b) => a.d - b.d); // stable: registry order among equals
    if (!ranked.length || ranked[0].d > NEAR_METRES) {
      state.suggestion = { kind: "none" };
    } else {
      const best = ranked[0];
      $("#zone").value = best.zone.id;
      state.suggestion = {
        kind: "nearest",
        zone: best.zone,
        metres: Math.round(best.d),
        ties: ranked.slice(1).filter((r) => r.d - best.d < 1).map((r) => r.zone),
      };
    }
    renderSuggestion();
  }

  function renderSuggestion() {
    const el = $("#zone-suggestion");
    const s = state.suggestion;
    el.hidden = !s;
    if (!s) { el.textContent = ""; delete el.dataset.zone; delete el.dataset.kind; return; }
    el.dataset.kind = s.kind;
    if (s.kind === "nearest") {
      el.dataset.zone = s.zone.id;
      const name = (z) => (z.name && pick(z.name)) || z.id;
      el.textContent = t("nearest")(name(s.zone), s.metres)
        + (s.ties.length ? ` ${t("nearest_ties")(s.ties.map(name).join(lang === "en" ? ", " : "、"))}` : "");
    } else {
      delete el.dataset.zone;
      el.textContent = t({ none: "nearest_none", denied: "location_denied", unavailable: "location_unavailable" }[s.kind]);
    }
  }

  function clearErrors() {
    for (const el of document.querySelectorAll("[data-error-for]")) { el.hidden = true; el.textContent = ""; }
    for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    $("#form-error").hidden = true;
    $("#form-notice").hidden = true;
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
    if (state.location) { body.lat = state.location.lat; body.lon = state.location.lon; }

    const missing = ["zone_id", "category", "description"].filter((f) => !body[f]);
    for (const f of missing) fieldError(f, t("required"));
    if (missing.length) {
      formError(t("fix_fields"));
      const first = document.querySelector("[aria-invalid]");
      if (first) first.focus();
      return;
    }

    // The report's identity and time are fixed here, on the phone: a resend is the same report.
    body.report_id = newId();
    body.made_at = new Date().toISOString();

    const button = $("#submit");
    button.disabled = true;
    button.textContent = t("submitting");
    let retryAfter = 0;
    const done = () => {
      $("#report-form").reset();
      photos.clear();
      state.location = null;
      state.suggestion = null;
      showLocation();
      renderSuggestion();
      updateCount();
    };

    // Photos still uploading are waited for; those that could not be uploaded (no connection)
    // are kept on the phone (IndexedDB) with the report, which waits in the outbox until they
    // are uploaded and then goes with their ids.
    await photos.settled();
    const ids = photos.photoIds();
    if (ids.length) body.photo_ids = ids;
    const waiting = photos.waitingFiles();
    if (waiting.length) {
      const kept = [];
      let lost = 0;
      for (const file of waiting) {
        try { kept.push(await PuhuiPhotos.keep(file)); } catch (_) { lost += 1; }
      }
      outboxPut({ id: body.report_id, body, state: "waiting", photos: kept });
      done();
      const notice = $("#form-notice");
      notice.textContent = t("queued") + (lost ? ` ${t("photo_not_kept")}` : "");
      notice.hidden = false;
      button.textContent = t("submit");
      button.disabled = false;
      renderOutbox();
      flushOutbox();
      return;
    }
    outboxPut({ id: body.report_id, body, state: "sending" });
    try {
      const res = await api.post("/api/reports", body);
      outboxDrop(body.report_id);
      done();
      location.hash = `#r/${encodeURIComponent(res.report_id)}`;
    } catch (err) {
      if (!err.status || err.status >= 500 || err.status === 401) {
        // No connection (or the API cannot take it now): it waits on the phone.
        outboxPut({ id: body.report_id, body, state: "waiting" });
        done();
        if (err.status !== 401) {
          const notice = $("#form-notice");
          notice.textContent = t("queued");
          notice.hidden = false;
          scheduleFlush();
        }
        renderOutbox();
        return;
      }
      outboxDrop(body.report_id); // refused as it is: the form still holds it, to correct
      if (err.status === 429) {
        retryAfter = err.retryAfter || 30;
        formError(t("too_many")(retryAfter));
      } else if (err.status === 422 && err.details.length) {
        let placed = false;
        for (const d of err.details) {
          const field = d.field || (Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : null);
          const text = d.message || d.msg || t("fix_fields");
          // "photo_ids.0" is shown at the photos
          if (field && (fieldError(String(field), text) || fieldError(String(field).split(".")[0], text))) placed = true;
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

  // ------------------------------------------------------------------ outbox ------------------

  /** A random (version 4) UUID, also where crypto.randomUUID is missing (plain http). */
  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  /** Reports kept on the phone until the API takes them: [{id, body, state, error?}]. */
  function outbox() {
    try {
      const items = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
      return Array.isArray(items) ? items.filter((i) => i && i.id && i.body) : [];
    } catch (_) {
      return [];
    }
  }

  function outboxSave(items) {
    if (items.length) localStorage.setItem(OUTBOX_KEY, JSON.stringify(items));
    else localStorage.removeItem(OUTBOX_KEY);
  }

  function outboxPut(item) {
    const items = outbox();
    const at = items.findIndex((i) => i.id === item.id);
    if (at >= 0) items[at] = item;
    else items.push(item);
    outboxSave(items);
  }

  function outboxDrop(id) {
    outboxSave(outbox().filter((i) => i.id !== id));
  }

  function scheduleFlush() {
    clearTimeout(state.flushTimer);
    state.flushTimer = setTimeout(flushOutbox, RETRY_SECONDS * 1000);
  }

  /** Send what waits, oldest first; stop at the first sign of no connection and try later. */
  async function flushOutbox() {
    if (state.flushing || !state.me) return;
    state.flushing = true;
    let again = false;
    try {
      for (const kept of outbox()) {
        if (kept.state === "failed") continue;
        let item = { ...kept, state: "sending" };
        outboxPut(item);
        renderOutbox();
        // Its photos first: the report goes once each is uploaded (or refused for good).
        item = await uploadKeptPhotos(item);
        if (item.state === "waiting") {
          again = true;
          break;
        }
        try {
          const res = await api.post("/api/reports", item.body);
          outboxDrop(item.id);
          state.sent = [{ id: res.report_id, body: item.body, dropped: item.dropped || 0 }, ...state.sent.filter((s) => s.id !== res.report_id)];
        } catch (err) {
          if (!err.status || err.status >= 500 || err.status === 401 || err.status === 429) {
            outboxPut({ ...item, state: "waiting" });
            again = err.status !== 401;
            break;
          }
          // Refused as it is (an id reused, a zone that no longer exists): kept, to be deleted.
          outboxPut({ ...item, state: "failed", error: err.message });
        }
      }
    } finally {
      state.flushing = false;
      renderOutbox();
      if (again) scheduleFlush();
    }
  }

  /** Upload the photos an outbox item keeps on the phone; their ids join the report. A photo
   * refused as it is (too large, not an image) is dropped and counted, and the report goes
   * without it; no connection leaves the item waiting. */
  async function uploadKeptPhotos(item) {
    const keys = Array.isArray(item.photos) ? item.photos.slice() : [];
    while (keys.length) {
      const key = keys[0];
      let file = null;
      try { file = await PuhuiPhotos.take(key); } catch (_) { file = null; }
      if (file) {
        try {
          const photo = await PuhuiPhotos.upload(file, { token: api.token });
          item.body = { ...item.body, photo_ids: [...(item.body.photo_ids || []), photo.photo_id] };
        } catch (err) {
          if (err.transient) {
            item = { ...item, state: "waiting", photos: keys };
            outboxPut(item);
            return item;
          }
          item.dropped = (item.dropped || 0) + 1;
        }
      } else {
        item.dropped = (item.dropped || 0) + 1; // the phone lost it
      }
      keys.shift();
      item = { ...item, photos: keys.slice() };
      outboxPut(item);
      PuhuiPhotos.forget(key).catch(() => {});
    }
    return item;
  }

  window.addEventListener("online", () => { clearTimeout(state.flushTimer); flushOutbox(); });

  function zoneLabel(id) {
    const z = state.zones.find((x) => x.id === id);
    return (z && z.name && pick(z.name)) || id;
  }

  function renderOutbox() {
    const box = $("#outbox");
    const waiting = outbox();
    box.hidden = !state.me || (!waiting.length && !state.sent.length);
    if (!waiting.length) $("#form-notice").hidden = true;
    const row = (id, body, st, extra, item) => h("li", { dataset: { reportId: id, state: st } },
      h("span", { class: "row" },
        h("strong", {}, pick(label(CATEGORIES, body.category))),
        h("span", { class: `status-tag outbox-${st}` }, t(st === "failed" ? "send_failed" : st))),
      h("span", {}, zoneLabel(body.zone_id), " · ", t("made_at"), " ", timeEl(body.made_at, lang)),
      h("span", { class: "description" }, body.description ?? ""),
      item && item.photos && item.photos.length
        ? h("span", { class: "muted photos-waiting" }, t("photos_waiting")(item.photos.length)) : null,
      item && item.dropped ? h("span", { class: "error" }, t("photos_dropped")(item.dropped)) : null,
      extra);
    fill($("#outbox-list"),
      waiting.map((i) => row(i.id, i.body, i.state === "failed" ? "failed" : i.state === "sending" ? "sending" : "waiting",
        i.state === "failed" ? [
          h("span", { class: "error" }, i.error || ""),
          h("button", { type: "button", class: "quiet", onclick: () => {
            for (const key of i.photos || []) PuhuiPhotos.forget(key).catch(() => {});
            outboxDrop(i.id);
            renderOutbox();
          } }, t("discard")),
        ] : null, i)),
      state.sent.map((s) => row(s.id, s.body, "sent",
        h("a", { href: `#r/${encodeURIComponent(s.id)}` }, t("view_status")), s)));
  }

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
    if (report.status !== "resolved" && report.status !== "case_closed") schedule(id);
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
    const steps = status === "in_case" || status === "case_closed" ? CASE_STEPS : STEPS;
    const reached = steps.indexOf(status);
    const updates = Array.isArray(r.updates) ? [...r.updates].reverse() : [];
    const icons = { submitted: "✉", linked: "⏳", acknowledged: "✔", resolved: "✔", in_case: "🛠", case_closed: "✔" };
    fill(
      $("#view-status"),
      h("h2", {}, t("status_title")),
      h("p", { id: "report-status", class: "status-big", dataset: { status }, role: "status" },
        h("span", { class: "icon", "aria-hidden": "true" }, icons[status]),
        h("span", {}, pick(label(STATUSES, status)))),
      h("p", { class: "explain" }, t("explain")[status]),
      h("ol", { class: "steps", "aria-label": t("status_title") }, steps.map((s, i) => h(
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
        Array.isArray(r.photos) && r.photos.length ? [
          h("dt", {}, t("photo_label")),
          h("dd", { class: "photos", id: "report-photos" }, r.photos.map((p) => {
            const img = PuhuiPhotos.image(p.thumbnail_url, { token: api.token, alt: t("photo_label") });
            img.dataset.photoId = p.photo_id;
            return img;
          })),
        ] : null,
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

  // Let the page open without a connection next time (not on plain http from another host,
  // where browsers have no service workers).
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/report-sw.js", { scope: "/report" }).catch(() => {});
  }

  applyLanguage();
  start();
})();

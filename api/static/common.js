/* Puhui 浦汇 — helpers shared by the console and the volunteer page.
 *
 * Rule of the house: text that came from a user or from the API is only ever put into the page
 * as text (textContent / createTextNode, through h() below); innerHTML is never given data.
 */
"use strict";

const Puhui = (() => {
  /** Build an element: h("div", {class: "x", dataset: {id: 1}, onclick: f}, "text", child, ...).
   * Strings and numbers become text nodes; null/undefined/false children are skipped. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "text") el.textContent = String(value);
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Replace an element's children. */
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  const $ = (sel, root) => (root || document).querySelector(sel);

  /** An API error with the server's {error: {code, message, details}} body. */
  class ApiError extends Error {
    constructor(status, body, headers) {
      const err = (body && body.error) || {};
      super(err.message || `HTTP ${status}`);
      this.status = status;
      this.code = err.code || null;
      this.details = Array.isArray(err.details) ? err.details : [];
      this.retryAfter = Number(headers && headers.get("Retry-After")) || null;
    }
  }

  /** A small client for the JSON API with a bearer token from sessionStorage[key] (or, with
   * {persist: true}, localStorage[key]: the session outlives the tab until "sign out"). */
  function client(storageKey, { onUnauthorized, persist = false } = {}) {
    const store = persist ? localStorage : sessionStorage;
    const token = () => store.getItem(storageKey);
    async function request(method, path, body) {
      const headers = { Accept: "application/json" };
      const t = token();
      if (t) headers.Authorization = `Bearer ${t}`;
      const init = { method, headers, cache: "no-store" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const res = await fetch(path, init);
      let data = null;
      const type = res.headers.get("Content-Type") || "";
      if (type.includes("json")) {
        try {
          data = await res.json();
        } catch (_) {
          data = null;
        }
      }
      if (!res.ok) {
        const err = new ApiError(res.status, data, res.headers);
        if (res.status === 401 && onUnauthorized) onUnauthorized(err);
        throw err;
      }
      return data;
    }
    return {
      token,
      setToken: (t) => store.setItem(storageKey, t),
      clearToken: () => store.removeItem(storageKey),
      get: (path) => request("GET", path),
      post: (path, body) => request("POST", path, body === undefined ? {} : body),
    };
  }

  /** The secret of a sign-in link ("#invite=..."), taken out of the address bar at once (so it
   * stays out of the history and of bookmarks); null when the page was not opened by one. The
   * fragment never reaches a server: the secret travels only in exchangeInvite's POST body. */
  function takeInvite() {
    const match = /^#invite=([A-Za-z0-9_-]{1,128})$/.exec(location.hash);
    if (!/^#invite=/.test(location.hash)) return null;
    history.replaceState(null, "", location.pathname + location.search);
    return match ? match[1] : "";
  }

  /** Exchange an invitation secret for a token: {token, name, role}, or an ApiError whose
   * `reason` is used / expired / revoked / unknown (or null for other failures). */
  async function exchangeInvite(secret) {
    const res = await fetch("/api/invitations/exchange", {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ invite: secret }),
      cache: "no-store",
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const err = new ApiError(res.status, data, res.headers);
      const reason = err.details[0] && err.details[0].type;
      err.reason = INVITE_REFUSED[reason] ? reason : res.status === 422 ? "unknown" : null;
      throw err;
    }
    return data;
  }

  /** Why an invitation link was refused, in both languages. */
  const INVITE_REFUSED = {
    used: {
      zh: "此邀请链接已使用过，不能再次使用。请向街道工作人员索取新的链接。",
      en: "This invitation link has been used already. Ask the subdistrict office for a new one.",
    },
    expired: {
      zh: "此邀请链接已过期。请向街道工作人员索取新的链接。",
      en: "This invitation link has expired. Ask the subdistrict office for a new one.",
    },
    revoked: {
      zh: "此邀请链接已被撤销。请向街道工作人员索取新的链接。",
      en: "This invitation link has been withdrawn. Ask the subdistrict office for a new one.",
    },
    unknown: {
      zh: "此邀请链接无效，请检查是否打开了完整的链接。",
      en: "This invitation link is not valid. Check that the whole link was opened.",
    },
  };

  const LEVELS = {
    blue: { rank: 1, zh: "蓝", en: "Blue", grade: "Ⅳ" },
    yellow: { rank: 2, zh: "黄", en: "Yellow", grade: "Ⅲ" },
    orange: { rank: 3, zh: "橙", en: "Orange", grade: "Ⅱ" },
    red: { rank: 4, zh: "红", en: "Red", grade: "Ⅰ" },
  };
  const levelRank = (level) => (LEVELS[level] ? LEVELS[level].rank : 0);

  const RISKS = {
    crowding: { zh: "人群拥挤", en: "Crowding" },
    fire: { zh: "火情", en: "Fire" },
    gas: { zh: "燃气", en: "Gas" },
    electrical: { zh: "电气", en: "Electrical" },
    flooding: { zh: "积水", en: "Flooding" },
    manhole: { zh: "井盖", en: "Manhole" },
    fire_lane: { zh: "消防通道", en: "Fire lane" },
    ebike: { zh: "电动车", en: "E-bike" },
    sensor_offline: { zh: "设备离线", en: "Sensor offline" },
    report: { zh: "群众报告", en: "Volunteer report" },
  };

  const CATEGORIES = {
    injury: { zh: "有人受伤", en: "Injury" },
    fire: { zh: "起火", en: "Fire" },
    smoke: { zh: "冒烟", en: "Smoke" },
    crowding: { zh: "人群拥挤", en: "Crowding" },
    gas: { zh: "燃气泄漏", en: "Gas leak" },
    electrical: { zh: "电气隐患", en: "Electrical hazard" },
    flooding: { zh: "积水", en: "Flooding" },
    manhole: { zh: "井盖缺失或破损", en: "Manhole cover" },
    fire_lane: { zh: "消防通道堵塞", en: "Blocked fire lane" },
    ebike: { zh: "电动车进楼或违规充电", en: "E-bike indoors / charging" },
    littering: { zh: "乱扔垃圾", en: "Littering" },
    other: { zh: "其他", en: "Other" },
  };

  const GRIDS = {
    zhongtai: { zh: "中泰", en: "Zhongtai" },
    zhongshun: { zh: "中顺", en: "Zhongshun" },
    zhonghai: { zh: "中海", en: "Zhonghai" },
    zhonghui: { zh: "中汇", en: "Zhonghui" },
  };

  const STATUSES = {
    submitted: { zh: "已提交", en: "Submitted" },
    linked: { zh: "已关联告警", en: "Linked to an alert" },
    acknowledged: { zh: "值班员已处理", en: "An operator is on it" },
    resolved: { zh: "已解除", en: "Resolved" },
    in_case: { zh: "已立案，处置中", en: "A case is being handled" },
    case_closed: { zh: "已结案", en: "Case closed" },
  };
  // On the console an alert that is firing has not been handled yet.
  const ALERT_STATUSES = {
    firing: { zh: "告警中", en: "Firing" },
    acknowledged: { zh: "已确认", en: "Acknowledged" },
    resolved: { zh: "已解除", en: "Resolved" },
  };

  const CHANGES = {
    submitted: { zh: "已提交", en: "Submitted" },
    raised: { zh: "触发", en: "Raised" },
    escalated: { zh: "升级", en: "Escalated" },
    deescalated: { zh: "降级", en: "De-escalated" },
    acknowledged: { zh: "已确认", en: "Acknowledged" },
    assigned: { zh: "已指派", en: "Assigned" },
    resolved: { zh: "已解除", en: "Resolved" },
    reopened: { zh: "重新触发", en: "Reopened" },
    confirmed: { zh: "预判成真", en: "Forecast confirmed" },
    corroborated: { zh: "志愿者印证", en: "Corroborated by a volunteer" },
    linked: { zh: "已关联告警", en: "Linked to an alert" },
  };

  /** {zh, en} for a code in one of the tables above; unknown codes show as themselves. */
  const label = (table, code) => table[code] || { zh: String(code ?? "—"), en: String(code ?? "—") };

  const TZ = "Asia/Shanghai";
  const timeFormats = {
    zh: new Intl.DateTimeFormat("zh-CN", {
      timeZone: TZ, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    }),
    en: new Intl.DateTimeFormat("en-GB", {
      timeZone: TZ, day: "2-digit", month: "short",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    }),
  };
  /** A timestamp in Shanghai time ("—" when missing or unreadable). */
  function formatTime(iso, lang) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return timeFormats[lang === "en" ? "en" : "zh"].format(d);
  }

  /** A <time> element with the instant in its datetime attribute. */
  function timeEl(iso, lang) {
    return h("time", { datetime: iso || null, title: iso || null }, formatTime(iso, lang));
  }

  /** A number with at most `digits` decimals, or "—" when null. */
  function num(value, digits = 0) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return Number(value).toLocaleString("zh-CN", { maximumFractionDigits: digits });
  }

  /** The level badge: colour AND text (蓝 Blue …), never colour alone. */
  function levelBadge(level, { en = true } = {}) {
    const l = LEVELS[level];
    if (!l) return h("span", { class: "badge level-none" }, "—");
    return h(
      "span",
      { class: `badge level-${level}`, dataset: { level }, title: `${l.zh}色预警 ${l.en} warning` },
      `${l.zh}`,
      en ? h("span", { class: "en" }, ` ${l.en}`) : null,
    );
  }

  /** Both languages side by side: <span>中文</span> <span class="en">English</span>. */
  function bi(pair) {
    return [h("span", { class: "zh" }, pair.zh), " ", h("span", { class: "en" }, pair.en)];
  }

  return {
    h, append, fill, $, ApiError, client, LEVELS, levelRank, RISKS, CATEGORIES, GRIDS, STATUSES,
    takeInvite, exchangeInvite, INVITE_REFUSED, ALERT_STATUSES, CHANGES, label, formatTime, timeEl, num, levelBadge, bi,
  };
})();

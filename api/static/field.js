/* Puhui 浦汇 — the responders' field page at "/field" (phone first, Chinese first).
 *
 * Signs in with a responder token (kept in localStorage until "sign out"); lists the unit's open
 * cases from GET /api/cases (most urgent first: red, overdue, then newest), every 5 s; and offers
 * the next step of each: 接单 accept, 到场 arrived, 处置完成 handled (what was done + photos taken
 * with the phone's camera: <input capture>, uploaded to POST /api/photos). All user text goes in
 * as text (common.js).
 */
"use strict";

(() => {
  const { h, fill, $, client, timeEl, levelBadge } = Puhui;
  const TOKEN_KEY = "puhui.field.token";
  const REFRESH_MS = 5000;
  const api = client(TOKEN_KEY, { persist: true, onUnauthorized: () => signOut("令牌无效或已吊销 / The token is invalid or revoked") });
  const photos = new Map(); // case id -> [{photo_id, thumbnail_url}]
  const notes = new Map(); // case id -> typed note (kept across refreshes)
  let busy = false;
  let timer = null;

  const STATUS = {
    dispatched: "待接单", accepted: "已接单，前往现场", on_site: "已到场，处置中", handled: "已处置，待核查",
  };
  const NEXT = {
    dispatched: { path: "accept", zh: "接单", en: "Accept", id: "accept" },
    accepted: { path: "arrive", zh: "已到场", en: "Arrived", id: "arrive" },
    on_site: { path: "handle", zh: "处置完成", en: "Handled", id: "handle" },
  };

  function show(view) {
    $("#login").hidden = view !== "login";
    $("#view-cases").hidden = view !== "cases";
    $("#logout").hidden = view === "login";
  }

  function signOut(reason) {
    api.clearToken();
    if (timer) clearInterval(timer);
    show("login");
    const err = $("#login-error");
    err.textContent = reason || "";
    err.hidden = !reason;
  }

  async function start() {
    const invite = Puhui.takeInvite();
    if (invite !== null) {
      try {
        api.setToken((await Puhui.exchangeInvite(invite)).token);
      } catch (e) {
        const why = Puhui.INVITE_REFUSED[e.reason];
        signOut(why ? `${why.zh}\n${why.en}` : `无法通过邀请链接登录 / Cannot sign in with the link: ${e.message}`);
        return;
      }
    }
    if (!api.token()) { show("login"); return; }
    let me;
    try {
      me = await api.get("/api/me");
    } catch (err) {
      if (err.status !== 401) signOut(`无法连接 / Cannot connect: ${err.message}`);
      return;
    }
    let unit = me.unit_id || "";
    try {
      const units = await api.get("/api/units");
      const mine = units.items.find((u) => u.unit_id === me.unit_id);
      if (mine) unit = `${mine.name.zh} (${mine.kind_zh})`;
    } catch (_) { /* the id will do */ }
    fill($("#who"), me.name || "", unit ? ` · ` : "", h("span", { id: "who-unit" }, unit));
    show("cases");
    await load();
    timer = setInterval(load, REFRESH_MS);
  }

  async function upload(caseId, file, list) {
    const form = new FormData();
    form.append("file", file);
    const res = await fetch("/api/photos", { method: "POST", body: form, headers: { Authorization: `Bearer ${api.token()}` } });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${res.status}`);
    const mine = photos.get(caseId) || [];
    mine.push(data);
    photos.set(caseId, mine);
    renderPhotos(caseId, list);
  }

  function renderPhotos(caseId, list) {
    fill(list, (photos.get(caseId) || []).map((p) => h("span", { class: "photo", dataset: { photoId: p.photo_id } }, "📷 ", p.photo_id.slice(0, 9))));
  }

  function caseItem(c) {
    const next = NEXT[c.status];
    const item = h("li", { class: `field-case${c.overdue ? " overdue" : ""}`, dataset: { caseId: c.case_id, status: c.status, overdue: String(c.overdue) } });
    const msg = h("p", { class: "case-message", role: "status" });
    const act = async (body) => {
      busy = true;
      for (const b of item.querySelectorAll("button")) b.disabled = true;
      fill(msg, "提交中… ", h("span", { class: "en" }, "Sending…"));
      try {
        await api.post(`/api/cases/${encodeURIComponent(c.case_id)}/${next.path}`, body);
        fill(msg, "已提交 ", h("span", { class: "en" }, "Sent"));
        if (next.path === "handle") { photos.delete(c.case_id); notes.delete(c.case_id); }
      } catch (err) {
        fill(msg, h("span", { class: "error" }, `失败 / Failed: ${err.message}`));
        for (const b of item.querySelectorAll("button")) b.disabled = false;
        busy = false;
        return;
      }
      busy = false;
      setTimeout(load, 800);
    };
    let form = null;
    if (next && next.path === "handle") {
      const note = h("textarea", { class: "handle-note", maxlength: "2000", placeholder: "处置情况（必填） / What was done (required)" });
      note.value = notes.get(c.case_id) || "";
      note.addEventListener("input", () => notes.set(c.case_id, note.value));
      const list = h("div", { class: "photo-list" });
      renderPhotos(c.case_id, list);
      const input = h("input", { type: "file", accept: "image/*", capture: "environment", class: "photo-input" });
      input.addEventListener("change", async () => {
        for (const file of input.files || []) {
          fill(msg, "上传照片… ", h("span", { class: "en" }, "Uploading photo…"));
          try { await upload(c.case_id, file, list); fill(msg, "照片已上传 ", h("span", { class: "en" }, "Photo uploaded")); } catch (err) {
            fill(msg, h("span", { class: "error" }, `照片上传失败 / Photo upload failed: ${err.message}`));
          }
        }
        input.value = "";
      });
      form = h("div", { class: "handle-form" },
        note,
        h("label", { class: "photo-label" }, "拍照 ", h("span", { class: "en" }, "Take a photo "), input),
        list);
      form.submitHandle = () => {
        if (!note.value.trim()) { fill(msg, h("span", { class: "error" }, "请填写处置情况 / Say what was done")); note.focus(); return; }
        act({ note: note.value.trim(), photo_ids: (photos.get(c.case_id) || []).map((p) => p.photo_id) });
      };
    }
    fill(item,
      h("h3", {}, levelBadge(c.level, { en: false }), " ", h("span", { class: "title" }, c.title)),
      h("p", {}, h("strong", { class: "status" }, STATUS[c.status] || c.status),
        c.overdue ? [" · ", h("span", { class: "overdue-tag" }, "已超期 Overdue")] : null),
      h("p", { class: "muted" }, c.zone_name ? c.zone_name.zh : (c.zone_id || ""), " · 时限 ", c.due_at ? timeEl(c.due_at) : "—"),
      h("div", { class: "instructions" }),
      form,
      next ? h("div", { class: "buttons" }, h("button", {
        type: "button", class: "primary", id: `btn-${next.id}-${c.case_id}`, dataset: { action: next.id },
        onclick: () => (form ? form.submitHandle() : act({})),
      }, next.zh, " ", h("span", { class: "en" }, next.en))) : null,
      msg,
    );
    loadInstructions(c.case_id, item);
    return item;
  }

  /** The operators' words to the unit: the dispatch note and, for a case sent back after 核查,
   * why (from the case's timeline). */
  async function loadInstructions(caseId, item) {
    let detail;
    try {
      detail = await api.get(`/api/cases/${encodeURIComponent(caseId)}`);
    } catch (_) { return; }
    const notes = (detail.timeline || []).filter((e) => e.note && (e.action === "dispatch" || (e.action === "verify" && e.result === "returned")));
    const box = item.querySelector(".instructions");
    if (!box) return;
    fill(box, notes.slice(-2).map((e) => h("p", { class: `instruction ${e.action}`, dataset: { action: e.action } },
      h("strong", {}, e.action === "dispatch" ? "派遣说明 " : "核查退回 "),
      h("span", { class: "en" }, e.action === "dispatch" ? "Dispatch note: " : "Returned: "),
      h("span", { class: "note" }, e.note))));
  }

  async function load() {
    if (busy) return;
    let page;
    try {
      page = await api.get("/api/cases?status=dispatched,accepted,on_site,handled&limit=100");
    } catch (err) {
      if (err.status === 401) return;
      fill($("#field-message"), h("span", { class: "error" }, `无法读取案件 / Cannot load cases: ${err.message}`));
      return;
    }
    if (busy) return;
    fill($("#field-message"));
    // Keep a photo input or note being worked on: only redraw cases whose status changed.
    const list = $("#cases");
    const shown = new Map([...list.children].map((li) => [li.dataset.caseId, li]));
    const items = page.items.map((c) => {
      const old = shown.get(c.case_id);
      if (old && old.dataset.status === c.status && old.dataset.overdue === String(c.overdue)) return old;
      return caseItem(c);
    });
    fill(list, items);
    fill($("#case-total"), `(${page.total})`);
    $("#case-total").dataset.value = String(page.total);
    $("#no-cases").hidden = page.items.length > 0;
  }

  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    api.setToken($("#token").value.trim());
    $("#token").value = "";
    start();
  });
  $("#logout").addEventListener("click", () => signOut());
  start();
})();

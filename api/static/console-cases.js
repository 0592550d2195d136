/* Puhui 浦汇 — the console's case desk (立案 → 派遣 → 核查 → 结案).
 *
 * Opens a case for the alert selected on the board (POST /api/cases with the alert and its linked
 * reports), lists the cases (GET /api/cases: open first, red first, overdue first), shows one
 * case's timeline (GET /api/cases/{id}), dispatches it to a unit (GET /api/units, POST
 * .../dispatch), verifies a handled case (closed / returned) and cancels. Beside verify it says
 * whether the sensor that raised the alert has been back to normal for its hold time (the API's
 * alerts[].back_to_normal). Reads again every 2 s (the worker applies commands moments later).
 * All user text goes in as text (common.js).
 */
"use strict";

(() => {
  const { h, fill, $, client, timeEl, levelBadge, bi } = Puhui;
  const api = client("puhui.console.token");
  const REFRESH_MS = 2000;
  const desk = { alertId: null, caseId: null, units: [], busy: false };

  const STATUS = {
    registered: { zh: "已立案", en: "Registered" },
    dispatched: { zh: "已派遣", en: "Dispatched" },
    accepted: { zh: "已接单", en: "Accepted" },
    on_site: { zh: "已到场", en: "On site" },
    handled: { zh: "已处置，待核查", en: "Handled, to verify" },
    closed: { zh: "已结案", en: "Closed" },
    cancelled: { zh: "已撤销", en: "Cancelled" },
  };
  const ACTION = {
    open: { zh: "立案", en: "Opened" },
    dispatch: { zh: "派遣", en: "Dispatched" },
    accept: { zh: "接单", en: "Accepted" },
    arrive: { zh: "到场", en: "Arrived" },
    handle: { zh: "处置完成", en: "Handled" },
    verify: { zh: "核查", en: "Verified" },
    cancel: { zh: "撤销", en: "Cancelled" },
    escalate: { zh: "超期上报", en: "Overdue, escalated" },
  };

  function message(...parts) { fill($("#case-message"), ...parts); }
  function failed(err) {
    if (err.status === 401) return;
    message(h("span", { class: "error" }, `操作失败 / Failed (${err.status || "network"}): ${err.message}`));
  }

  function unitName(u) { return u ? `${u.zh}` : "—"; }

  function dueCell(c) {
    if (!c.open) return h("td", { class: "muted" }, "—");
    return h("td", { class: c.overdue ? "overdue" : "", dataset: { overdue: String(c.overdue) } },
      c.overdue ? [h("strong", { class: "overdue-tag" }, "超期 "), h("span", { class: "en" }, "Overdue ")] : null,
      c.due_at ? timeEl(c.due_at) : "—");
  }

  async function loadList() {
    let page;
    try {
      page = await api.get("/api/cases?status=all&limit=50");
    } catch (err) { return; }
    const counts = page.counts || {};
    fill($("#case-counts"),
      h("span", { id: "case-count-open", dataset: { value: String(counts.open ?? 0) } }, `办理中 ${counts.open ?? 0}`), " ",
      h("span", { class: "en" }, "open"), " · ",
      h("span", { id: "case-count-overdue", dataset: { value: String(counts.overdue ?? 0) } }, `超期 ${counts.overdue ?? 0}`), " ",
      h("span", { class: "en" }, "overdue"));
    fill($("#case-list"), page.items.map((c) => h("tr", {
      class: `case-row${c.case_id === desk.caseId ? " selected" : ""}`,
      dataset: { caseId: c.case_id, status: c.status, overdue: String(c.overdue) },
      onclick: () => { desk.caseId = c.case_id; loadList(); loadCase(); },
    },
      h("td", {}, levelBadge(c.level, { en: false }), " ", h("span", { class: "case-status" }, STATUS[c.status].zh)),
      h("td", { class: "case-title" }, c.title),
      h("td", {}, unitName(c.unit_name)),
      dueCell(c),
    )));
  }

  async function loadCase() {
    const panel = $("#case-detail");
    if (!desk.caseId) { fill(panel); return; }
    let c;
    try {
      c = await api.get(`/api/cases/${encodeURIComponent(desk.caseId)}`);
    } catch (err) { return; }
    if (c.case_id !== desk.caseId || desk.busy) return;
    const saved = { unit: ($("#case-unit") || {}).value, note: ($("#case-note") || {}).value || "" };
    // The units serving the case's zone first (its site's own, its grid team, …), then the rest.
    const suggested = c.suggested_unit_ids || [];
    const ordered = [
      ...suggested.map((id) => desk.units.find((u) => u.unit_id === id)).filter(Boolean),
      ...desk.units.filter((u) => !suggested.includes(u.unit_id)),
    ];
    const unitSelect = h("select", { id: "case-unit" },
      ordered.map((u) => h("option", { value: u.unit_id, dataset: { suggested: String(suggested.includes(u.unit_id)) } },
        `${suggested.includes(u.unit_id) ? "★ " : ""}${u.name.zh} (${u.kind_zh})`)));
    if (saved.unit) unitSelect.value = saved.unit;
    else if (c.unit_id) unitSelect.value = c.unit_id;
    else if (suggested.length) unitSelect.value = suggested[0];
    const note = h("textarea", { id: "case-note", rows: "2", maxlength: "2000", placeholder: "备注 / note (optional)" });
    note.value = saved.note;
    const act = (path, body) => async () => {
      desk.busy = true;
      message("提交中… ", h("span", { class: "en" }, "Sending…"));
      try {
        const extra = note.value.trim() ? { note: note.value.trim() } : {};
        await api.post(`/api/cases/${encodeURIComponent(c.case_id)}/${path}`, { ...body, ...extra });
        note.value = "";
        message("已提交，等待处理 ", h("span", { class: "en" }, "Sent; waiting for the case worker"));
      } catch (err) { failed(err); } finally { desk.busy = false; }
      loadCase(); loadList();
    };
    const canDispatch = ["registered", "dispatched", "accepted", "on_site"].includes(c.status);
    const normal = (c.alerts || []).filter((a) => a.back_to_normal);
    panel.dataset.status = c.status;
    fill(panel,
      h("h3", {}, levelBadge(c.level), " ", h("span", { id: "case-detail-title" }, c.title)),
      h("p", {},
        h("span", { id: "case-status", class: `status-tag case-${c.status}`, dataset: { status: c.status } }, bi(STATUS[c.status])),
        c.overdue ? h("strong", { id: "case-overdue", class: "overdue-tag" }, " 超期 Overdue") : null,
        c.escalated ? h("span", { class: "tag" }, " 已上报 escalated") : null,
        " · ", unitName(c.unit_name),
        c.returns ? h("span", { class: "muted" }, ` · 退回 ${c.returns} 次 returned`) : null),
      h("p", { class: "meta" }, "时限 ", h("span", { class: "en" }, "Due "), c.due_at ? timeEl(c.due_at) : "—",
        " · 接单用时 ", h("span", { class: "en" }, "to accept "), h("span", { id: "case-min-accept" }, c.minutes_to_accept ?? "—"), " 分钟 min",
        " · 到场用时 ", h("span", { class: "en" }, "to arrive "), h("span", { id: "case-min-arrive" }, c.minutes_to_arrive ?? "—"), " 分钟 min"),
      c.handle_note ? h("p", { class: "handle-note" }, "处置情况 ", h("span", { class: "en" }, "Done: "), h("span", { id: "case-handle-note" }, c.handle_note)) : null,
      (c.photo_urls || []).length ? h("p", { class: "photos" }, c.photo_urls.map((u, i) => h("a", { href: u, class: "case-photo", target: "_blank", rel: "noopener" }, `照片 ${i + 1} photo`))) : null,
      h("div", { class: "actions" },
        note,
        h("p", {}, unitSelect, " ",
          h("button", { type: "button", id: "btn-dispatch", disabled: !canDispatch, onclick: () => act("dispatch", { unit_id: unitSelect.value })() },
            c.unit_id ? "改派 " : "派遣 ", h("span", { class: "en" }, c.unit_id ? "Re-dispatch" : "Dispatch"))),
        h("p", {},
          h("button", { type: "button", class: "primary", id: "btn-verify-close", disabled: c.status !== "handled", onclick: act("verify", { result: "closed" }) }, "核查通过，结案 ", h("span", { class: "en" }, "Verify: close")), " ",
          h("button", { type: "button", id: "btn-verify-return", disabled: c.status !== "handled", onclick: act("verify", { result: "returned" }) }, "退回 ", h("span", { class: "en" }, "Return")), " ",
          h("button", { type: "button", class: "danger", id: "btn-cancel-case", disabled: !c.open, onclick: act("cancel", {}) }, "撤销 ", h("span", { class: "en" }, "Cancel"))),
        h("p", { id: "case-sensor", dataset: { normal: normal.length ? "true" : "false" } },
          (c.alerts || []).length === 0 ? "无关联传感器告警 No sensor alert"
            : normal.length
              ? ["传感器已恢复正常并保持观察期 ", h("span", { class: "en" }, "The sensor has been back to normal for its hold time"), " (", timeEl(normal[0].normal_since), ")"]
              : ["传感器尚未恢复正常 ", h("span", { class: "en" }, "The sensor is not back to normal yet")]),
      ),
      h("ol", { class: "timeline", id: "case-timeline" }, (c.timeline || []).map((e) => h("li", { dataset: { action: e.action } },
        timeEl(e.at), " ", h("strong", {}, (ACTION[e.action] || { zh: e.action }).zh), " ", h("span", { class: "actor" }, e.actor),
        e.unit_name && e.action === "dispatch" ? [" → ", e.unit_name.zh] : null,
        e.result ? ` (${e.result === "closed" ? "通过 closed" : "退回 returned"})` : null,
        e.note ? [" · ", h("span", { class: "note" }, e.note)] : null))),
    );
  }

  async function openCase() {
    if (!desk.alertId) return;
    let alert;
    try {
      alert = await api.get(`/api/alerts/${encodeURIComponent(desk.alertId)}`);
    } catch (err) { failed(err); return; }
    const title = $("#case-title").value.trim() || (alert.summary && alert.summary.zh) || "案件";
    const reportIds = (alert.reports || []).map((r) => r.report_id);
    try {
      const made = await api.post("/api/cases", { alert_ids: [desk.alertId], report_ids: reportIds, title });
      desk.caseId = made.case_id;
      $("#case-title").value = "";
      message("已立案 ", h("span", { class: "en" }, "Case opened: "), h("code", { id: "case-opened-id" }, made.case_id));
    } catch (err) { failed(err); }
    loadList(); loadCase();
  }

  function init() {
    if (!$("#case-desk")) return;
    document.addEventListener("click", (ev) => {
      const card = ev.target.closest && ev.target.closest(".alert-card");
      if (card && card.dataset.alertId) {
        desk.alertId = card.dataset.alertId;
        $("#btn-open-case").disabled = false;
      }
    });
    $("#btn-open-case").addEventListener("click", openCase);
    const tick = async () => {
      if (!api.token() || $("#app").hidden) return;
      if (!desk.units.length) {
        try { desk.units = (await api.get("/api/units")).items; } catch (err) { return; }
      }
      loadList();
      loadCase();
    };
    setInterval(tick, REFRESH_MS);
    tick();
  }
  document.addEventListener("DOMContentLoaded", init);
})();

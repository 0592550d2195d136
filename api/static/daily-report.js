/* Puhui 浦汇 — the printable daily report at "/daily-report" (?date=YYYY-MM-DD, default today in
 * Shanghai): GET /api/daily-report, drawn as tables and SVG bar charts. The token is the
 * console's (this tab's sessionStorage), or typed here. All text goes in as text. */
"use strict";

(() => {
  const { h, fill, $, client, num, bi, label, RISKS, LEVELS } = Puhui;
  const svg = PuhuiMap.svg;
  const api = client("puhui.console.token", { onUnauthorized: () => showLogin("令牌无效或已吊销 / The token is invalid or revoked") });
  const LEVEL_ORDER = ["red", "orange", "yellow", "blue"];
  const when = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false });
  const clockOf = (iso) => (iso ? when.format(new Date(Date.parse(iso))) : "—");
  const today = () => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(new Date());

  function showLogin(message) {
    $("#report").hidden = true;
    $("#login").hidden = false;
    const err = $("#login-error");
    err.hidden = !message;
    err.textContent = message || "";
  }

  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("#token").value.trim();
    if (!value) return;
    api.setToken(value);
    $("#token").value = "";
    load();
  });
  $("#controls").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const params = new URLSearchParams(location.search);
    params.set("date", $("#date").value);
    history.replaceState(null, "", `?${params}`);
    load();
  });
  $("#print").addEventListener("click", () => window.print());

  /** Site label: the Chinese name its zones share before the first space (田子坊 …), else the
   * first zone's. */
  function siteName(site, zones) {
    const first = zones.find((z) => z.site === site.site);
    if (!first) return { zh: site.site, en: site.site };
    return { zh: first.name.zh.split(" ")[0], en: first.name.en.split(",")[0].split(" (")[0] };
  }

  function barChart(el, rows, { unit = "", classOf = () => "" } = {}) {
    const width = 720, rowH = 24, left = 190, right = 70;
    const height = Math.max(rowH, rows.length * rowH) + 8;
    const top = Math.max(1, ...rows.map((r) => r.value || 0));
    el.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const bars = rows.map((r, i) => {
      const w = ((r.value || 0) / top) * (width - left - right);
      const y = 4 + i * rowH;
      return svg("g", { class: "row", dataset: { key: r.key, value: String(r.value ?? "") } },
        svg("text", { x: left - 8, y: y + 16, "text-anchor": "end" }, r.label),
        svg("rect", { class: `bar ${classOf(r)}`, x: left, y: y + 3, width: Math.max(0, w).toFixed(1), height: rowH - 8 }),
        svg("text", { x: left + w + 6, y: y + 16 }, r.value === null || r.value === undefined ? "—" : `${num(r.value)}${unit}`));
    });
    el.replaceChildren(svg("title", {}, el.getAttribute("aria-label") || ""), ...bars);
  }

  /** One line per site over the day's 24 hours (hours without data break the line), each
   * labelled with the site's name at its highest hour: no colour needed to tell them apart. */
  function hourlyChart(el, sites) {
    const width = 720, height = 240, left = 48, right = 16, top = 16, bottom = 28;
    const drawn = sites.filter((s) => s.hourly.some((v) => v !== null));
    const peak = Math.max(10, ...drawn.flatMap((s) => s.hourly.filter((v) => v !== null)));
    const x = (hour) => left + (hour / 23) * (width - left - right);
    const y = (v) => height - bottom - (v / (peak * 1.1)) * (height - top - bottom);
    el.setAttribute("viewBox", `0 0 ${width} ${height}`);
    el.setAttribute("aria-label", `各场所每小时最高人数 Each site's largest total per hour: ${drawn.map((s) => `${s.label.zh} ${num(s.peak_people)}`).join("，")}`);
    const axes = svg("g", { class: "axes" },
      svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, stroke: "#8a96a3" }),
      [0, 6, 12, 18, 23].map((hr) => svg("text", { x: x(hr), y: height - 8, "text-anchor": "middle" }, `${hr}:00`)),
      svg("text", { x: left - 6, y: y(peak) + 4, "text-anchor": "end" }, num(peak)),
      svg("text", { x: left - 6, y: y(0), "text-anchor": "end" }, "0"));
    const lines = drawn.map((s) => {
      const runs = [];
      let run = [];
      s.hourly.forEach((v, hr) => {
        if (v === null) { if (run.length) runs.push(run); run = []; } else run.push([x(hr), y(v)]);
      });
      if (run.length) runs.push(run);
      const best = s.hourly.indexOf(Math.max(...s.hourly.filter((v) => v !== null)));
      return svg("g", { class: "site-line", dataset: { site: s.site } },
        runs.map((r) => svg("polyline", { points: r.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "), fill: "none", stroke: "#0b5cad", "stroke-width": 2 })),
        s.hourly.map((v, hr) => (v === null ? null : svg("circle", { cx: x(hr).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: "#0b5cad", dataset: { hour: String(hr), value: String(v) } }))),
        svg("text", { x: x(best), y: y(s.hourly[best]) - 6, "text-anchor": "middle" }, s.label.zh));
    });
    el.replaceChildren(svg("title", {}, el.getAttribute("aria-label")), axes, ...lines);
  }

  function render(report) {
    fill($("#report-date"), `${report.date}（北京时间 00:00–24:00）`, h("span", { class: "en" }, ` ${report.date}, Beijing time`));
    const sites = report.sites.map((s) => ({ ...s, label: siteName(s, report.zones) }));
    $("#sites-chart").setAttribute("aria-label", "各场所峰值人数 Peak people per site");
    barChart($("#sites-chart"), sites.map((s) => ({ key: s.site, label: s.label.zh, value: s.peak_people })));
    hourlyChart($("#hourly-chart"), sites);
    fill($("#sites tbody"), sites.map((s) => h("tr", { dataset: { site: s.site } },
      h("th", { scope: "row" }, bi(s.label)),
      h("td", { class: "n peak" }, num(s.peak_people)),
      h("td", { class: "at" }, clockOf(s.peak_at)))));
    fill($("#zones tbody"), report.zones.map((z) => h("tr", { dataset: { zone: z.zone_id } },
      h("th", { scope: "row" }, h("span", { class: "zh" }, z.name.zh), " ", h("span", { class: "en" }, z.name.en)),
      h("td", { class: "n peak" }, num(z.peak_people)),
      h("td", { class: "at" }, clockOf(z.peak_at)),
      h("td", { class: "n density" }, z.peak_density === null ? "—" : Number(z.peak_density).toFixed(2)),
      h("td", { class: "n occupancy" }, z.peak_occupancy === null ? "—" : `${num(z.peak_occupancy * 100, 0)}%`),
      h("td", { class: "n minutes" }, String(z.minutes)))));

    const alerts = report.alerts;
    fill($("#alerts-total"), `${alerts.total}${alerts.predicted ? `（其中预判 ${alerts.predicted} / ${alerts.predicted} forecasts）` : ""}`);
    $("#levels-chart").setAttribute("aria-label", "按等级的告警数 Alerts by level");
    barChart($("#levels-chart"), LEVEL_ORDER.map((l) => ({ key: l, label: `${LEVELS[l].zh} ${LEVELS[l].en}`, value: alerts.by_level[l] || 0, level: l })), { classOf: (r) => `level-${r.level}` });
    fill($("#alerts tbody"), alerts.by_risk.length
      ? alerts.by_risk.map((r) => h("tr", { dataset: { risk: r.risk } },
        h("th", { scope: "row" }, bi(label(RISKS, r.risk))),
        LEVEL_ORDER.map((l) => h("td", { class: `n level-${l}` }, String(r.by_level[l] || 0))),
        h("td", { class: "n total" }, String(r.total))))
      : h("tr", {}, h("td", { colspan: "6", class: "muted" }, "当日没有新开告警 ", h("span", { class: "en" }, "No alert opened that day"))));

    const c = report.cases;
    const minutes = (sec) => (sec === null || sec === undefined ? "—" : `${num(sec / 60, 1)} 分钟 / min`);
    const rows = [
      ["opened", "立案", "Opened", String(c.opened)],
      ["closed", "结案", "Closed", String(c.closed)],
      ["closed_on_time", "按期结案", "Closed on time", String(c.closed_on_time)],
      ["on_time_rate", "按期处置率", "On-time rate", c.on_time_rate === null ? "—" : `${num(c.on_time_rate * 100, 1)}%`],
      ["cancelled", "撤销", "Cancelled", String(c.cancelled)],
      ["open_at_end", "日终未结", "Open at the end of the day", String(c.open_at_end)],
      ["mean_seconds_to_accept", "平均接单用时", "Mean time to accept", minutes(c.mean_seconds_to_accept)],
      ["mean_seconds_to_arrive", "平均到场用时", "Mean time to arrive", minutes(c.mean_seconds_to_arrive)],
      ["mean_seconds_to_close", "平均结案用时", "Mean time to close", minutes(c.mean_seconds_to_close)],
    ];
    fill($("#cases"), rows.map(([key, zh, en, value]) => [
      h("dt", {}, zh, " ", h("span", { class: "en" }, en)), h("dd", { dataset: { key } }, value)]));
    $("#report").dataset.date = report.date;
  }

  async function load() {
    if (!api.token()) return showLogin();
    const params = new URLSearchParams(location.search);
    const date = params.get("date") || today();
    $("#date").value = date;
    $("#login").hidden = true;
    try {
      const report = await api.get(`/api/daily-report?date=${encodeURIComponent(date)}`);
      $("#report-error").hidden = true;
      $("#report").hidden = false;
      render(report);
    } catch (err) {
      if (err.status === 401) return;
      $("#report").hidden = false;
      const box = $("#report-error");
      box.textContent = `日报读取失败 / Cannot load the report: ${err.message}`;
      box.hidden = false;
    }
  }

  load();
})();

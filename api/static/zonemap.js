/* Puhui 浦汇 — the district map and the per-minute chart, drawn as inline SVG (no tile server,
 * nothing loaded from elsewhere: works offline).
 *
 * PuhuiMap.drawMap(svg, zones, bounds, { selected, levelOf, onSelect }): each zone's outline
 * (GET /api/zones `outline`, [lon, lat] rings) filled by its level (蓝黄橙红, or none), with a
 * <title>, an aria-label and a text mark of the level (never colour alone); click or Enter/Space
 * selects the zone.
 * PuhuiMap.drawSeries(svg, points, { hours, until, label }): people per minute as a line, with a
 * <circle> per point (data-at, data-people) and the axes' extremes in text.
 */
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";
  const { LEVELS } = Puhui;

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** The box around every outline (padded), else the registry's bounds. */
  function extent(zones, bounds) {
    let west = Infinity, east = -Infinity, south = Infinity, north = -Infinity;
    for (const z of zones) {
      for (const [lon, lat] of (z.outline && z.outline.points) || []) {
        west = Math.min(west, lon); east = Math.max(east, lon);
        south = Math.min(south, lat); north = Math.max(north, lat);
      }
    }
    if (!Number.isFinite(west)) {
      if (!bounds) return null;
      return { ...bounds };
    }
    const padLon = (east - west) * 0.06, padLat = (north - south) * 0.06;
    return { west: west - padLon, east: east + padLon, south: south - padLat, north: north + padLat };
  }

  function ringArea(points) {
    let a = 0;
    for (let i = 1; i < points.length; i++) a += points[i - 1][0] * points[i][1] - points[i][0] * points[i - 1][1];
    return Math.abs(a / 2);
  }

  function mean(points) {
    const ring = points.slice(0, -1);
    return [ring.reduce((t, p) => t + p[0], 0) / ring.length, ring.reduce((t, p) => t + p[1], 0) / ring.length];
  }

  const WIDTH = 1000;

  function drawMap(svg, zones, bounds, { selected = null, levelOf = (z) => z.alert_level, onSelect = () => {}, describe = () => "" } = {}) {
    const box = extent(zones, bounds);
    svg.replaceChildren();
    if (!box) return;
    // Equirectangular, x scaled by cos(latitude): right at district scale.
    const k = Math.cos(((box.north + box.south) / 2) * Math.PI / 180);
    const height = Math.round(WIDTH * (box.north - box.south) / ((box.east - box.west) * k));
    const x = (lon) => ((lon - box.west) / (box.east - box.west)) * WIDTH;
    const y = (lat) => ((box.north - lat) / (box.north - box.south)) * height;
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
    svg.append(s("rect", { class: "map-ground", x: 0, y: 0, width: WIDTH, height }));
    // Larger outlines first, so that a zone inside another stays on top and clickable.
    const drawn = zones.filter((z) => z.outline && z.outline.points && z.outline.points.length >= 4)
      .sort((a, b) => ringArea(b.outline.points) - ringArea(a.outline.points));
    for (const z of drawn) {
      const level = levelOf(z) || null;
      const info = LEVELS[level];
      const name = (z.name && z.name.zh) || z.id;
      const en = (z.name && z.name.en) || "";
      const levelText = info ? `${info.zh}色预警 ${info.en}` : "无告警 No open alert";
      const extra = describe(z);
      const label = `${name} ${en}：${levelText}${extra ? `；${extra}` : ""}${z.outline.estimated ? "（轮廓为估算 outline estimated）" : ""}`;
      const pts = z.outline.points.map(([lon, lat]) => `${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join(" ");
      const [cx, cy] = mean(z.outline.points);
      const choose = () => onSelect(z.id);
      const shape = s("g", {
        class: `zone-shape level-${level || "none"}${selected === z.id ? " selected" : ""}`,
        role: "button",
        tabindex: "0",
        "aria-label": label,
        "aria-pressed": selected === z.id ? "true" : "false",
        dataset: { zone: z.id, level: level || "none" },
        onclick: choose,
        onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); choose(); } },
      },
      s("title", {}, label),
      s("polygon", { points: pts, "vector-effect": "non-scaling-stroke" }),
      info ? s("text", { class: "zone-mark", x: x(cx).toFixed(1), y: y(cy).toFixed(1), "aria-hidden": "true" }, info.zh) : null);
      svg.append(shape);
    }
    // Scale bar: 200 m.
    const metres = 200;
    const barLon = metres / (111320 * k);
    const barW = (barLon / (box.east - box.west)) * WIDTH;
    svg.append(s("g", { class: "map-scale", "aria-hidden": "true" },
      s("line", { x1: 20, y1: height - 20, x2: 20 + barW, y2: height - 20 }),
      s("text", { x: 20, y: height - 28 }, `${metres} m`)));
  }

  const CHART_W = 640, CHART_H = 220, PAD_L = 52, PAD_R = 12, PAD_T = 14, PAD_B = 28;
  const hm = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false });

  function drawSeries(svg, points, { since, until, label = "" } = {}) {
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
    const t0 = Date.parse(since), t1 = Date.parse(until);
    const values = points.map((p) => Number(p.people));
    const top = Math.max(10, ...values) * 1.1;
    const x = (t) => PAD_L + ((t - t0) / Math.max(1, t1 - t0)) * (CHART_W - PAD_L - PAD_R);
    const y = (v) => CHART_H - PAD_B - (v / top) * (CHART_H - PAD_T - PAD_B);
    const peak = values.length ? Math.max(...values) : null;
    svg.setAttribute("aria-label", `${label}：${points.length} 个分钟点${peak === null ? "" : `，最高 ${Math.round(peak)} 人`} / ${points.length} minutes${peak === null ? "" : `, highest ${Math.round(peak)} people`}`);
    svg.append(s("title", {}, svg.getAttribute("aria-label")));
    svg.append(s("g", { class: "axes", "aria-hidden": "true" },
      s("line", { x1: PAD_L, y1: CHART_H - PAD_B, x2: CHART_W - PAD_R, y2: CHART_H - PAD_B }),
      s("line", { x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: CHART_H - PAD_B }),
      s("text", { x: PAD_L - 6, y: y(0), "text-anchor": "end", class: "tick" }, "0"),
      s("text", { x: PAD_L - 6, y: y(top / 1.1) + 4, "text-anchor": "end", class: "tick" }, String(Math.round(top / 1.1))),
      s("line", { class: "grid", x1: PAD_L, y1: y(top / 1.1), x2: CHART_W - PAD_R, y2: y(top / 1.1) }),
      s("text", { x: PAD_L, y: CHART_H - 8, class: "tick" }, hm.format(new Date(t0))),
      s("text", { x: CHART_W - PAD_R, y: CHART_H - 8, "text-anchor": "end", class: "tick" }, hm.format(new Date(t1)))));
    if (!points.length) return;
    const coords = points.map((p) => [x(Date.parse(p.at)), y(Number(p.people))]);
    svg.append(s("polyline", { class: "series-line", points: coords.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ") }));
    svg.append(s("g", { class: "series-points" }, points.map((p, i) => s("circle", {
      class: "pt", cx: coords[i][0].toFixed(1), cy: coords[i][1].toFixed(1), r: 1.6,
      dataset: { at: p.at, people: String(p.people), density: String(p.density) },
    }, s("title", {}, `${hm.format(new Date(Date.parse(p.at)))} · ${Math.round(p.people)} 人 people`)))));
  }

  window.PuhuiMap = { drawMap, drawSeries, svg: s };
})();

// The KPI board: reads /api/v1/kpis and /api/v1/alerts every few seconds and draws, per KPI, the
// open window (partial, with how far it has elapsed and how far it is known complete), the last
// final window with its change against the one before, the trend of final windows and the open
// window's segments. Times are UTC: windows are aligned to UTC (weeks start on Monday).
"use strict";

const REFRESH_MS = 5000;
const TREND_POINTS = 48;
const selected = {}; // KPI name → chosen window label (kept across refreshes)
let lastGood = null;

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};

const pad = (n) => String(n).padStart(2, "0");
function utc(ms, withDate = true) {
  const d = new Date(ms);
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (!withDate) return time;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${time}`;
}
function utcSeconds(ms) {
  const d = new Date(ms);
  return `${utc(ms)}:${pad(d.getUTCSeconds())} UTC`;
}

/// A window's span in words: "2026-12-01 11:00–12:00 UTC", "week of 2026-11-30".
function span(startMs, lengthMs) {
  if (lengthMs >= 7 * 86400000) return `week of ${utc(startMs).slice(0, 10)}`;
  if (lengthMs >= 86400000) return `${utc(startMs).slice(0, 10)}`;
  return `${utc(startMs)}–${utc(startMs + lengthMs, false)} UTC`;
}

function duration(seconds) {
  const s = Math.round(Math.abs(seconds));
  const parts = [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]];
  const out = [];
  let rest = s;
  for (const [n, u] of parts) {
    if (rest >= n && out.length < 2) { out.push(`${Math.floor(rest / n)}${u}`); rest %= n; }
  }
  return (seconds < 0 ? "-" : "") + (out.join(" ") || "0s");
}

/// A value as the KPI's format says; "—" for none (a ratio with no denominator).
function formatValue(kpi, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  switch (kpi.format) {
    case "percent":
      return `${(v * 100).toLocaleString("en", { maximumFractionDigits: 1 })} %`;
    case "currency":
      try {
        return v.toLocaleString("en", { style: "currency", currency: kpi.unit || "USD" });
      } catch (_) {
        return `${v.toLocaleString("en", { maximumFractionDigits: 2 })} ${kpi.unit || ""}`.trim();
      }
    case "duration": {
      const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[kpi.unit || "s"] || 1;
      return duration(v * scale);
    }
    default: {
      const digits = Number.isInteger(v) ? 0 : 2;
      const n = v.toLocaleString("en", { maximumFractionDigits: digits });
      return kpi.unit ? `${n} ${kpi.unit}` : n;
    }
  }
}

/// The window a card shows first: the longest one up to a day (an executive's "today"), else
/// the shortest.
function defaultWindow(kpi) {
  const upToDay = kpi.windows.filter((w) => w.length_ms <= 86400000);
  if (upToDay.length) return upToDay.reduce((a, b) => (b.length_ms > a.length_ms ? b : a)).window;
  return kpi.windows.reduce((a, b) => (b.length_ms < a.length_ms ? b : a)).window;
}

function change(now, before) {
  if (now === null || before === null || now === undefined || before === undefined) return null;
  if (before === 0) return null;
  return ((now - before) / Math.abs(before)) * 100;
}

function sparkline(trend) {
  const points = trend.filter(([, v]) => v !== null).slice(-TREND_POINTS);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "trend");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  if (points.length < 2) {
    svg.setAttribute("aria-label", "not enough final windows for a trend yet");
    return svg;
  }
  const values = points.map(([, v]) => v);
  const lo = Math.min(...values), hi = Math.max(...values);
  const y = (v) => (hi === lo ? 20 : 36 - ((v - lo) / (hi - lo)) * 32);
  const x = (i) => (i / (points.length - 1)) * 100;
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", points.map(([, v], i) => `${x(i)},${y(v)}`).join(" "));
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  svg.setAttribute("aria-label", `trend of the last ${points.length} final windows`);
  return svg;
}

function bar(label, ratio, cls, title) {
  const pct = Math.round(Math.max(0, Math.min(1, ratio)) * 100);
  const fill = el("span", { class: cls, style: `width:${pct}%` });
  return el("div", { class: "bar-row", title },
    el("span", { text: label }), el("div", { class: "bar" }, fill), el("span", { class: "num", text: `${pct} %` }));
}

function segmentTable(kpi, w) {
  const rows = (w.open ? w.open.segments : [])
    .filter((s) => s.value !== null)
    .sort((a, b) => b.value - a.value);
  if (!kpi.dimensions.length) return null;
  const details = el("details", {}, el("summary", { text: `By ${kpi.dimensions.join(" × ")} (${rows.length} segments, this window)` }));
  if (!rows.length) {
    details.append(el("p", { class: "empty", text: "no segment has events in the open window yet" }));
    return details;
  }
  const head = el("tr", {}, ...kpi.dimensions.map((d) => el("th", { text: d })), el("th", { class: "num", text: "value" }));
  const body = rows.slice(0, 20).map((s) =>
    el("tr", {}, ...kpi.dimensions.map((d) => el("td", { text: s.segment[d] })), el("td", { class: "num", text: formatValue(kpi, s.value) })));
  details.append(el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
  if (rows.length > 20) details.append(el("p", { class: "empty", text: `and ${rows.length - 20} more` }));
  return details;
}

// A window that began before its KPI was added or changed in the catalog: say so next to the
// value, which lacks the events before the edit.
function missingInput(slice) {
  if (!slice.missing_input) return null;
  return el("p", {
    class: "missing-input", "data-missing-input": "true",
    text: "incomplete: the KPI was added or changed in the catalog after this window began; events before the edit are not counted",
  });
}

function card(kpi, alerts, data) {
  const label = selected[kpi.name] && kpi.windows.some((w) => w.window === selected[kpi.name])
    ? selected[kpi.name] : defaultWindow(kpi);
  const w = kpi.windows.find((x) => x.window === label);
  const firing = alerts.filter((a) => a.kpi === kpi.name);
  const title = el("h2", {}, kpi.title,
    kpi.north_star ? el("span", { class: "badge star", text: "North Star" }) : null,
    ...firing.map((a) => el("span", { class: `badge ${a.severity}`, title: a.summary, text: a.severity || "alert" })));
  const tabs = el("div", { class: "tabs", role: "group", "aria-label": "window" },
    ...kpi.windows.map((x) => el("button", {
      "aria-pressed": String(x.window === label), text: x.window,
      onclick: () => { selected[kpi.name] = x.window; render(data); },
    })));
  const section = el("section", {
    class: `card${kpi.north_star ? " north-star" : ""}`, "data-kpi": kpi.name, "data-window": label,
  }, title, el("p", { class: "desc", text: kpi.description }), tabs);
  if (!data.caught_up || !w.open) {
    section.append(el("p", { class: "empty", text: "no values yet" }));
    return section;
  }
  const open = w.open;
  section.append(
    el("div", { class: "open", "data-start": open.start_ms },
      el("div", { class: "label", text: `${span(open.start_ms, w.length_ms)} · so far (partial)` }),
      el("div", { class: "value", "data-value": open.total ?? "", text: formatValue(kpi, open.total) }),
      missingInput(open)),
    el("div", { class: "bars" },
      bar("elapsed", open.progress, "", "how far event time has gone through the window"),
      bar("known complete", open.completeness, "complete",
        "how much of the window no late event can change any more (watermark minus the allowed lateness)")));
  const finals = w.trend;
  const last = w.last_final;
  if (last) {
    const before = finals.length >= 2 ? finals[finals.length - 2][1] : null;
    const pct = change(last.total, before);
    const ch = pct === null ? null : el("span", {
      class: `change ${pct >= 0 ? "up" : "down"}`,
      text: `${pct >= 0 ? "▲" : "▼"} ${Math.abs(pct).toLocaleString("en", { maximumFractionDigits: 1 })} % vs the ${w.window} before`,
    });
    section.append(el("div", { class: "final", "data-start": last.start_ms },
      el("div", { class: "label", text: `last final: ${span(last.start_ms, w.length_ms)}` }),
      el("div", { class: "row" },
        el("span", { class: "value", "data-value": last.total ?? "", text: formatValue(kpi, last.total) }), ch),
      missingInput(last)));
  } else {
    section.append(el("p", { class: "empty", text: "no final window yet" }));
  }
  section.append(sparkline(finals));
  const seg = segmentTable(kpi, w);
  if (seg) section.append(seg);
  const meta = [];
  if (kpi.owner) meta.push(`owner: ${kpi.owner}`);
  meta.push(`${kpi.aggregate}`);
  const metaLine = el("p", { class: "meta", text: meta.join(" · ") });
  if (kpi.runbook && /^https?:\/\//.test(kpi.runbook)) {
    metaLine.append(" · ", el("a", { href: kpi.runbook, text: "runbook" }));
  }
  section.append(metaLine);
  if (kpi.runbook && !/^https?:\/\//.test(kpi.runbook)) {
    section.append(el("details", {}, el("summary", { text: "Runbook" }), el("p", { class: "desc", text: kpi.runbook })));
  }
  return section;
}

function renderAlerts(view) {
  const list = document.getElementById("alert-list");
  list.replaceChildren();
  if (!view.available) {
    list.append(el("li", { class: "empty", text: "no Alertmanager configured or reachable (alertmanager_url)" }));
    return;
  }
  if (!view.alerts.length) {
    list.append(el("li", { class: "empty", text: "none firing" }));
    return;
  }
  for (const a of view.alerts) {
    list.append(el("li", { "data-alert": a.name },
      el("span", { class: `badge ${a.severity}`, text: a.severity || "alert" }),
      el("span", { text: a.summary || a.name }),
      el("span", { class: "since", text: a.starts_at ? `since ${utc(Date.parse(a.starts_at))} UTC` : "" })));
  }
}

function render(data) {
  const alerts = data.alerts.available ? data.alerts.alerts : [];
  const star = data.kpis.kpis.filter((k) => k.north_star);
  const rest = data.kpis.kpis.filter((k) => !k.north_star);
  const d = data.kpis;
  const top = document.getElementById("top");
  top.querySelectorAll(".north-star").forEach((c) => c.remove());
  top.prepend(...star.map((k) => card(k, alerts, d)));
  document.getElementById("kpis").replaceChildren(...rest.map((k) => card(k, alerts, d)));
  renderAlerts(data.alerts);
  const status = document.getElementById("status");
  // Before every partition has seen an event, the combined watermark is still at the epoch.
  const complete = d.complete_until_ms > 0
    ? utcSeconds(d.complete_until_ms)
    : "not yet known (a partition has no event time yet)";
  status.textContent = d.caught_up && d.event_time_ms !== null
    ? `event time ${utcSeconds(d.event_time_ms)} (${duration(Math.max(0, d.generated_at_ms - d.event_time_ms) / 1000)} behind the wall clock) · complete until ${complete} · updated ${utcSeconds(d.generated_at_ms)}`
    : `catching up · updated ${utcSeconds(d.generated_at_ms)}`;
}

function banner(text, cls) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.className = `banner ${cls || ""}`;
  b.textContent = text || "";
}

async function refresh() {
  try {
    const [kpis, alerts] = await Promise.all([
      fetch("/api/v1/kpis").then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.json(); }),
      fetch("/api/v1/alerts").then((r) => (r.ok ? r.json() : { available: false, alerts: [] })),
    ]);
    lastGood = { kpis, alerts };
    banner(kpis.caught_up ? "" : "The metrics sink is catching up with kpi.aggregates: values appear once it has read all of it (no partial sums are shown).");
    render(lastGood);
  } catch (e) {
    const when = lastGood ? `; showing the values of ${utcSeconds(lastGood.kpis.generated_at_ms)}` : "";
    banner(`Cannot reach the metrics sink (${e.message})${when}.`, "error");
  }
}

refresh();
setInterval(refresh, REFRESH_MS);

// Overview: integrity, the last day's activity (charts), open alerts, retention. Refreshes by
// itself every 15 s (and when the tab comes back into view).
import { api, el, clear, showError, currentLog, formatTime } from "./api.js";

const REFRESH_MS = 15000;
const SEVERITIES = ["critical", "high", "medium", "low"];

function fact(dl, term, value, cls) {
  dl.append(el("dt", {}, term), el("dd", cls ? { class: cls } : {}, value));
}

function barChart(node, buckets, label) {
  clear(node);
  const width = 720, height = 180, pad = 28;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const step = (width - pad) / buckets.length;
  const total = buckets.reduce((sum, b) => sum + b.count, 0);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${label}: ${total} events, at most ${max} in one hour` });
  svg.append(el("title", {}, label));
  svg.append(el("line", { class: "axis", x1: pad, y1: height - 20, x2: width, y2: height - 20 }));
  buckets.forEach((b, i) => {
    const h = Math.round((b.count / max) * (height - 40));
    const bar = el("rect", { class: "bar", x: pad + i * step + 1, y: height - 20 - h,
      width: Math.max(1, step - 2), height: h });
    bar.append(el("title", {}, `${formatTime(b.start)}: ${b.count}`));
    svg.append(bar);
    if (i % 6 === 0 && i < buckets.length - 1) {  // the last label would be cut off
      svg.append(el("text", { x: pad + i * step, y: height - 5 }, b.start.slice(11, 16)));
    }
  });
  svg.append(el("text", { x: 0, y: 14 }, String(max)));
  node.append(svg, el("figcaption", {}, `${total} events in the last 24 hours (UTC hours)`));
}

function hbars(node, counts, label) {
  clear(node);
  const entries = Object.entries(counts);
  if (!entries.length) {
    node.append(el("p", { class: "muted" }, "No events in the last 24 hours."));
    return;
  }
  const max = Math.max(...entries.map(([, n]) => n));
  const table = el("table", {}, el("caption", { class: "muted small" }, label),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Value"),
      el("th", { scope: "col" }, "Share"), el("th", { scope: "col" }, "Events"))));
  const body = el("tbody");
  for (const [name, n] of entries) {
    const pct = Math.max(0, Math.min(100, Math.round((n / max) * 20) * 5));
    body.append(el("tr", {}, el("td", {}, name),
      el("td", {}, el("span", { class: "track hbar-track", "aria-hidden": "true" },
        el("span", { class: `fill ${name} w${pct}` }))),
      el("td", {}, String(n))));
  }
  table.append(body);
  node.append(el("div", { class: "table-wrap" }, table));
}

async function refresh() {
  const log = currentLog();
  const errorBox = document.getElementById("overview-error");
  if (!log) {
    showError(errorBox, new Error("No log is open to you."));
    return;
  }
  let doc;
  try {
    doc = await api(`/v1/logs/${encodeURIComponent(log)}/overview`, { background: true });
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  clear(errorBox);
  const integrity = clear(document.getElementById("integrity"));
  fact(integrity, "Entries", String(doc.checkpoint.size));
  fact(integrity, "Root", el("code", {}, doc.checkpoint.root));
  fact(integrity, "Origin", doc.checkpoint.origin);
  const v = doc.verification;
  if (v) {
    fact(integrity, "Last verification",
      el("span", {}, el("span", { class: `badge ${v.ok ? "ok" : "bad"}` }, v.ok ? "intact" : "FAILED"),
        ` at ${formatTime(v.at)}, size ${v.size}`));
    if (!v.ok) fact(integrity, "Problem", v.problem, "error");
  } else {
    fact(integrity, "Last verification", "not run yet by this service");
  }
  const alerts = clear(document.getElementById("alert-counts"));
  const list = el("ul", { class: "legend" });
  let open = 0;
  for (const sev of SEVERITIES) {
    const n = doc.alerts.open[sev] || 0;
    open += n;
    list.append(el("li", {}, el("span", { class: `badge ${n ? sev : ""}` }, `${sev}: ${n}`)));
  }
  alerts.append(el("p", {}, el("a", { href: `/ui/logs/${encodeURIComponent(log)}/alerts` },
    `${open} open`), `, ${doc.alerts.acknowledged} acknowledged`), list);
  const retention = clear(document.getElementById("retention"));
  const policy = doc.retention.policy;
  fact(retention, "Policy", policy ? JSON.stringify(policy) : "none (everything is kept)");
  fact(retention, "Open legal holds", doc.retention.holds === null
    ? `unknown: ${doc.retention.holds_note}` : String(doc.retention.holds));
  const a = doc.activity;
  barChart(document.getElementById("rate-chart"), a.buckets, "Events per hour");
  hbars(document.getElementById("category-chart"), a.by_category, "Events by category, last 24 h");
  hbars(document.getElementById("outcome-chart"), a.by_outcome, "Events by outcome, last 24 h");
  const note = a.complete ? "" : ` (the newest ${a.scanned} entries were counted)`;
  document.getElementById("refreshed").textContent =
    `Updated ${formatTime(doc.now)}; refreshes every 15 s${note}.`;
}

refresh();
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

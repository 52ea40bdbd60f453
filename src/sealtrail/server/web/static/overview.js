// Overview: integrity, the last day's activity (charts), open alerts, retention, witnesses.
// Refreshes by itself every 15 s (and when the tab comes back into view).
//
// The Witnesses card shows the service's own account (GET /v1/logs/{log}/witnessing): who the
// log submits its checkpoints to, how each answered, how far the quorum has cosigned. It is
// the server's word, shown as such; an event's page checks cosignatures in the browser
// against a policy the user pinned.
import { api, el, clear, showError, currentLog, formatTime } from "./api.js";

const REFRESH_MS = 15000;
const SEVERITIES = ["critical", "high", "medium", "low"];

function fact(dl, term, value, cls) {
  dl.append(el("dt", {}, term), el("dd", cls ? { class: cls } : {}, value));
}

function witnessesCard(node, doc) {
  clear(node);
  const list = Array.isArray(doc.witnesses) ? doc.witnesses : [];
  node.dataset.witnesses = String(list.length);
  if (!list.length) {
    node.append(el("p", { class: "muted", id: "no-witnesses" }, "No witnesses configured: " +
      "checkpoints are signed by the log's key only (see docs/witnessing.md)."));
    return;
  }
  const dl = el("dl", { class: "facts" });
  fact(dl, "Quorum", `${doc.quorum} of ${list.length}`);
  fact(dl, "Latest witnessed", doc.witnessed_size === null || doc.witnessed_size === undefined
    ? "none yet" : el("span", { id: "witnessed-size" }, `size ${doc.witnessed_size} of ` +
      `${doc.size}, at ${formatTime(doc.witnessed_at)}`));
  if (doc.pending_since) {
    fact(dl, "Pending since", el("span", {},
      el("span", { class: "badge warn" }, "quorum not met"), ` ${formatTime(doc.pending_since)}`));
  }
  node.append(dl);
  const body = el("tbody");
  for (const w of list) {
    const state = w.checked_at === null || w.checked_at === undefined ? ["", "not asked yet"]
      : w.ok ? ["ok", "ok"] : ["bad", "failing"];
    body.append(el("tr", { dataset: { witness: w.name, ok: String(Boolean(w.ok)) } },
      el("td", {}, el("span", { class: "wrap" }, w.name),
        w.cosigned_latest ? el("span", { class: "small muted" }, " (cosigned the latest)") : null),
      el("td", {}, el("span", { class: `badge ${state[0]}`.trim() }, state[1]),
        w.problem ? el("span", { class: "small" }, ` ${w.problem}`) : null),
      el("td", {}, String(w.size)),
      el("td", {}, w.checked_at ? formatTime(w.checked_at) : "never")));
  }
  const table = el("table", { id: "witness-table" },
    el("caption", { class: "muted small" }, "Each witness's last answer"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Witness"),
      el("th", { scope: "col" }, "Status"), el("th", { scope: "col" }, "Size"),
      el("th", { scope: "col" }, "Last checked"))), body);
  // Focusable: a narrow card scrolls the table sideways, and the keyboard must reach it.
  node.append(el("div", { class: "table-wrap", tabindex: "0", role: "region",
    "aria-labelledby": "witnesses-title" }, table));
}

async function refreshWitnesses(log) {
  const node = document.getElementById("witnesses");
  let doc;
  try {
    doc = await api(`/v1/logs/${encodeURIComponent(log)}/witnessing`, { background: true });
  } catch (err) {
    showError(node, err);
    return;
  }
  witnessesCard(node, doc);
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
  refreshWitnesses(log); // (on its own: its errors go to its card, the overview's here)
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

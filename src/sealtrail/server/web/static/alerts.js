// Alerts: the log's alerts filtered by status, severity and rule; one alert's details with
// the events that raised it (links to their event pages); acknowledge or resolve it with a
// required reason, which the API records in the log. After a change the list and the
// details are read back from the API. The filters and the open alert live in the URL.
// Everything shown is built with el(): nothing from the server is parsed as HTML.
import { api, el, clear, showError, qs, currentLog, logPath, formatTime, role } from "./api.js";

const MAX_REASON = 4096;
const PAGE = 100;
const form = qs("#alert-filters");
const tbody = qs("#alerts tbody");
const more = qs("#alerts-more");
let nextBefore = null;
let current = null; // the alert whose details are shown
let shownStatus = null; // its status as last read
let generation = 0;

const canChange = () => role() === "auditor" || role() === "admin";

function badge(value) {
  return el("span", { class: `badge ${value}`, dataset: { value } }, value);
}

function filters() {
  const out = {};
  for (const name of ["status", "severity", "rule"]) {
    const value = form.elements[name].value.trim();
    if (value) out[name] = value;
  }
  return out;
}

function remember() {
  const params = new URLSearchParams(filters());
  if (current) params.set("alert", current);
  const text = params.toString();
  history.replaceState(null, "", text ? `?${text}` : location.pathname);
}

function say(text) {
  qs("#alerts-status").textContent = text;
}

// -- the list ---------------------------------------------------------------------------------

function rowOf(alert) {
  const open = el("button", { type: "button", class: "link", "aria-controls": "alert-detail",
    dataset: { alert: alert.id }, onclick: () => showAlert(alert.id, { focus: true }) },
  alert.title || alert.rule);
  return el("tr", { dataset: { alert: alert.id, status: alert.status },
    class: alert.id === current ? "selected" : null },
  el("td", {}, badge(alert.severity)),
  el("td", {}, open, el("br"), el("span", { class: "muted small" }, alert.rule)),
  el("td", {}, badge(alert.status)),
  el("td", {}, String(alert.count)),
  el("td", {}, formatTime(alert.last_seen)));
}

async function loadAlerts({ append = false } = {}) {
  const mine = ++generation;
  clear(qs("#alerts-error"));
  say(append ? "Loading more alerts…" : "Loading alerts…");
  try {
    const doc = await api(logPath("/alerts"), {
      query: { ...filters(), limit: PAGE, before: append ? nextBefore : undefined } });
    if (mine !== generation) return;
    if (!append) clear(tbody);
    for (const alert of doc.alerts) tbody.append(rowOf(alert));
    nextBefore = doc.next_before;
    more.classList.toggle("hidden", !nextBefore);
    say(tbody.rows.length ? `${tbody.rows.length} alert(s).` : "No alerts match.");
  } catch (err) {
    if (mine !== generation) return;
    say("");
    showError(qs("#alerts-error"), err);
  }
}

// -- one alert --------------------------------------------------------------------------------

function fact(dl, term, ...value) {
  dl.append(el("dt", {}, term), el("dd", {}, ...value));
}

function eventLink(index, ev) {
  const href = `/ui/logs/${encodeURIComponent(currentLog())}/events/${index}`;
  const what = ev ? [ev.time ? formatTime(ev.time) : "", ev.action || "",
    ev.actor && ev.actor.id ? `by ${ev.actor.id}` : "", ev.outcome || ""]
    .filter(Boolean).join(" · ") : "(retired by retention)";
  return el("li", { dataset: { index: String(index) } },
    el("a", { href }, `Event ${index}`), what ? el("span", { class: "muted" }, ` ${what}`) : null);
}

async function showAlert(id, { focus = false } = {}) {
  if (id !== current) qs("#alert-change-status").textContent = "";
  current = id;
  remember();
  for (const tr of tbody.rows) tr.classList.toggle("selected", tr.dataset.alert === id);
  const body = qs("#alert-detail-body");
  try {
    const alert = await api(logPath(`/alerts/${encodeURIComponent(id)}`));
    if (current !== id) return;
    qs("#alert-detail-empty").classList.add("hidden");
    body.classList.remove("hidden");
    qs("#alert-detail-title").textContent = alert.title || alert.rule;
    const dl = clear(qs("#alert-facts"));
    fact(dl, "Status", badge(alert.status));
    fact(dl, "Severity", badge(alert.severity));
    fact(dl, "Rule", el("code", {}, alert.rule));
    if (alert.key) fact(dl, "Grouped by", alert.key);
    fact(dl, "Count", String(alert.count));
    fact(dl, "First seen", formatTime(alert.first_seen));
    fact(dl, "Last seen", formatTime(alert.last_seen));
    if (alert.message) fact(dl, "Message", alert.message);
    if (alert.clauses && alert.clauses.length) fact(dl, "Requirements", alert.clauses.join(", "));
    if (alert.updated_by) {
      fact(dl, "Last change", `${alert.status} by ${alert.updated_by}`
        + (alert.updated_at ? ` at ${formatTime(alert.updated_at)}` : ""));
    }
    if (alert.note) fact(dl, "Reason given", alert.note);
    if (alert.opened_index !== null && alert.opened_index !== undefined) {
      const record = alert.events === null || alert.events === undefined
        ? `Event ${alert.opened_index}`
        : el("a", { href: `/ui/logs/${encodeURIComponent(currentLog())}/events/${alert.opened_index}` },
          `Event ${alert.opened_index}`);
      fact(dl, "Opened by", record, " (the alert's own record in the log)");
    }
    const list = clear(qs("#alert-events"));
    const note = qs("#alert-events-note");
    if (alert.events === null || alert.events === undefined) {
      note.textContent = "Your role reads no event content: the events are listed by number.";
      for (const index of alert.entries || []) {
        list.append(el("li", { dataset: { index: String(index) } }, `Event ${index}`));
      }
    } else {
      note.textContent = alert.events.length
        ? "Reading these is recorded in the log. Open one to see all its fields and its proof."
        : "No events are kept for this alert.";
      for (const item of alert.events) list.append(eventLink(item.index, item.event));
    }
    const changeForm = qs("#alert-change");
    changeForm.classList.toggle("hidden", !canChange() || alert.status === "resolved");
    qs("#alert-readonly").classList.toggle("hidden", canChange());
    shownStatus = alert.status;
    qs("#alert-ack").disabled = alert.status !== "open";
    qs("#alert-resolve").disabled = false;
    if (focus) qs("#alert-detail").focus();
    clear(qs("#alert-detail-error"));
  } catch (err) {
    showError(qs("#alert-detail-error"), err);
  }
}

async function change(action) {
  const reasonBox = qs("#alert-reason");
  const reason = reasonBox.value.trim();
  const status = qs("#alert-change-status");
  const errors = qs("#alert-change-error");
  clear(errors);
  if (!reason) {
    reasonBox.setAttribute("aria-invalid", "true");
    showError(errors, new Error("A reason is required: say what was checked and what was done."));
    reasonBox.focus();
    return;
  }
  if (reason.length > MAX_REASON) {
    showError(errors, new Error(`The reason is at most ${MAX_REASON} characters.`));
    return;
  }
  reasonBox.removeAttribute("aria-invalid");
  const id = current;
  const buttons = [qs("#alert-ack"), qs("#alert-resolve")];
  for (const b of buttons) b.disabled = true;
  status.textContent = action === "ack" ? "Acknowledging…" : "Resolving…";
  try {
    const alert = await api(logPath(`/alerts/${encodeURIComponent(id)}/${action}`),
      { method: "POST", body: { reason } });
    reasonBox.value = "";
    status.textContent = `Alert ${alert.status}; the change and its reason are recorded in the log.`;
    await loadAlerts();
    await showAlert(id);
  } catch (err) {
    status.textContent = "";
    showError(errors, err);
    qs("#alert-ack").disabled = shownStatus !== "open";
    qs("#alert-resolve").disabled = false;
  }
}

// -- wiring -----------------------------------------------------------------------------------

form.addEventListener("submit", (e) => {
  e.preventDefault();
  remember();
  loadAlerts();
});
more.addEventListener("click", () => loadAlerts({ append: true }));
qs("#alert-change").addEventListener("submit", (e) => {
  e.preventDefault();
  const which = e.submitter && e.submitter.value === "ack" ? "ack" : "resolve";
  change(which);
});

const params = new URLSearchParams(location.search);
for (const name of ["status", "severity", "rule"]) form.elements[name].value = params.get(name) || "";
loadAlerts().then(() => {
  const id = params.get("alert");
  if (id) showAlert(id);
});

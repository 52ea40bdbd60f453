// Explorer: the search API with every filter, newest first, paged by cursor; a live tail
// (Server-Sent Events from /events/stream) that adds new matching events at the top; a
// choice of columns kept in this browser; exports of the current result. The query lives in
// the URL (replaceState on each submitted search), so a search can be shared: opening such
// a URL runs it with the URL's exact values (the form shows them, times converted to local
// time for display only; the URL is rewritten only when the user submits the form).
// Everything shown is built with el(): nothing from the server is parsed as HTML.
import { api, ApiError, el, clear, showError, qs, currentLog, logPath } from "./api.js";

const FILTERS = ["actor", "action", "category", "outcome", "target", "source", "subject",
  "ip", "request_id", "trace_id", "since", "until", "text"];
const TIMES = new Set(["since", "until"]);
const PAGE = 50;
const COLUMNS_KEY = "sealtrail.explorer.columns";

// Column id -> [heading, how to read it from an event].
const COLUMNS = {
  time: ["Time", (ev) => ev.time],
  actor: ["Actor", (ev) => ev.actor && ev.actor.id],
  action: ["Action", (ev) => ev.action],
  outcome: ["Outcome", (ev) => ev.outcome],
  category: ["Category", (ev) => ev.category],
  target: ["Target", (ev) => ev.target && (ev.target.id || ev.target.name)],
  source: ["Source", (ev) => ev.source && ev.source.service],
  ip: ["IP address", (ev) => ev.actor && ev.actor.ip],
  subjects: ["Subjects", (ev) => (Array.isArray(ev.subjects) ? ev.subjects.join(", ") : "")],
  reason: ["Reason", (ev) => ev.reason],
  request_id: ["Request id", (ev) => ev.request_id],
  id: ["Event id", (ev) => ev.id],
};
const DEFAULT_COLUMNS = ["time", "actor", "action", "outcome", "category", "target"];

const form = qs("#search-form");
const tbody = qs("#results tbody");
const older = qs("#older");
const live = qs("#live");
let query = {}; // the filters of the search shown (API names, RFC 3339 times)
let nextCursor = null;
let shown = new Set(); // indexes in the table
const events = new Map(); // index -> event, to redraw rows when the columns change
let source = null; // the live tail's EventSource
let newCount = 0;
let generation = 0; // a newer search makes the answers of older ones stale

// -- the query: form <-> API parameters <-> URL ---------------------------------------------

function pad(n) {
  return String(n).padStart(2, "0");
}

// A datetime-local value (the user's local time) as RFC 3339 UTC; "" when empty.
function toRfc3339(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? local : date.toISOString().replace(".000Z", "Z");
}

// An RFC 3339 time as a datetime-local value in the user's local time.
function toLocal(text) {
  const date = new Date(text);
  if (!text || Number.isNaN(date.getTime())) return "";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T`
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// A time from a shared URL, and what its field shows for it: while the field still shows
// that, a search uses the URL's exact text. A local datetime-local value cannot hold every
// instant (in the repeated hour of a DST change two instants show the same; fractions of a
// second are cut; an unparseable text shows as empty), so it is never converted back.
const exactTimes = new Map(); // name -> { shown, exact }

function formQuery() {
  const out = {};
  for (const name of FILTERS) {
    const raw = form.elements[name].value;
    const kept = TIMES.has(name) ? exactTimes.get(name) : undefined;
    if (kept && raw === kept.shown) {
      out[name] = kept.exact;
      continue;
    }
    const value = raw.trim();
    if (value) out[name] = TIMES.has(name) ? toRfc3339(value) : value;
  }
  return out;
}

// The search a URL names, exactly as written there (the API judges each value).
function urlQuery(params) {
  const out = {};
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value !== null && value !== "") out[name] = value;
  }
  return out;
}

function showExact(name, exact) {
  const hint = qs(`#exact-${name}`);
  if (!hint) return;
  hint.textContent = exact ? `Searching with the link's exact time: ${exact}` : "";
  hint.classList.toggle("hidden", !exact);
}

// Fill the form from a query, for display: times in the user's local time.
function fillForm(q) {
  exactTimes.clear();
  for (const name of FILTERS) {
    const value = q[name] ?? "";
    if (TIMES.has(name)) {
      form.elements[name].value = toLocal(value);
      // Read back: the browser normalizes what it shows (02:30:00 reads as 02:30).
      const shown = form.elements[name].value;
      if (value) exactTimes.set(name, { shown, exact: value });
      showExact(name, value);
    } else {
      form.elements[name].value = value;
    }
  }
}

// Once the user edits a time, the field's own value is the search's.
function forgetExact(name) {
  exactTimes.delete(name);
  showExact(name, "");
}

function searchParams(q, extra = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...q, ...extra })) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  return params;
}

function eventPage(index) {
  return `/ui/logs/${encodeURIComponent(currentLog())}/events/${index}`;
}

// -- errors next to the field the API names -------------------------------------------------

function clearErrors() {
  for (const node of form.querySelectorAll(".field-error")) {
    node.textContent = "";
    node.classList.add("hidden");
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  clear(qs("#search-error"));
}

function showFieldError(err) {
  const name = err instanceof ApiError && err.field ? err.field.split(".").pop() : null;
  const slot = name && FILTERS.includes(name) ? qs(`#err-${name}`) : null;
  if (!slot) {
    showError(qs("#search-error"), err);
    return;
  }
  slot.textContent = err.message;
  slot.classList.remove("hidden");
  const input = form.elements[name];
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

// -- columns ----------------------------------------------------------------------------------

function chosenColumns() {
  try {
    const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "null");
    if (Array.isArray(saved)) {
      const known = saved.filter((c) => Object.hasOwn(COLUMNS, c));
      if (known.length) return known;
    }
  } catch (_) { /* a damaged value: the defaults */ }
  return DEFAULT_COLUMNS;
}

function buildColumnChoices() {
  const box = qs("#column-choices");
  const chosen = new Set(chosenColumns());
  for (const [id, [heading]] of Object.entries(COLUMNS)) {
    const input = el("input", { type: "checkbox", id: `col-${id}`, name: "column", value: id,
      checked: chosen.has(id) });
    input.addEventListener("change", () => {
      const picked = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      localStorage.setItem(COLUMNS_KEY, JSON.stringify(picked));
      redrawColumns();
    });
    box.append(el("span", { class: "column-choice" }, input,
      el("label", { for: `col-${id}`, class: "inline" }, heading)));
  }
}

function header() {
  const row = qs("#results thead tr");
  clear(row);
  row.append(el("th", { scope: "col" }, "#"));
  for (const id of chosenColumns()) row.append(el("th", { scope: "col", dataset: { col: id } }, COLUMNS[id][0]));
}

function rowOf(item, isNew) {
  const ev = item.event || {};
  events.set(item.index, ev);
  const link = el("a", { href: eventPage(item.index),
    "aria-label": `Event ${item.index}: ${ev.action || ""}` }, String(item.index));
  const cells = [el("td", {}, link, isNew ? el("span", { class: "badge new-mark" }, "new") : null)];
  for (const id of chosenColumns()) {
    const value = COLUMNS[id][1](ev);
    cells.push(el("td", { dataset: { col: id } },
      value === undefined || value === null ? "" : String(value)));
  }
  return el("tr", { dataset: { index: String(item.index) }, class: isNew ? "new" : null }, ...cells);
}

function redrawColumns() {
  header();
  for (const tr of [...tbody.rows]) {
    const index = Number(tr.dataset.index);
    tr.replaceWith(rowOf({ index, event: events.get(index) }, tr.classList.contains("new")));
  }
}

// -- search and paging ------------------------------------------------------------------------

// The export links carry the filters of the search shown; while a search is refused they
// are withdrawn (a download of the refusal would be a file holding an error).
function updateExports(usable) {
  for (const fmt of ["csv", "jsonl"]) {
    const link = qs(`#export-${fmt}`);
    if (usable) {
      link.href = `${logPath("/export")}?${searchParams(query, { format: fmt })}`;
      link.setAttribute("download", `${currentLog()}-events.${fmt}`);
      link.removeAttribute("aria-disabled");
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
    }
  }
}

function say(text) {
  qs("#results-status").textContent = text;
}

// `initial`: the query of the URL the page was opened with, searched as it is (the URL is
// left alone); otherwise the form's query, which then becomes the URL.
async function runSearch({ more = false, initial = null } = {}) {
  const mine = ++generation;
  if (!more) {
    clearErrors();
    if (initial) {
      query = initial;
    } else {
      query = formQuery();
      const params = searchParams(query);
      history.replaceState(null, "", params.toString() ? `?${params}` : location.pathname);
    }
    updateExports(false);
  }
  say(more ? "Loading older events…" : "Searching…");
  older.disabled = true;
  try {
    const doc = await api(logPath("/events"), {
      query: { ...query, limit: PAGE, cursor: more ? nextCursor : undefined } });
    if (mine !== generation) return;
    if (!more) {
      clear(tbody);
      shown = new Set();
      events.clear();
      newCount = 0;
    }
    for (const item of doc.events) {
      if (shown.has(item.index)) continue;
      shown.add(item.index);
      tbody.append(rowOf(item, false));
    }
    if (!more) updateExports(true);
    nextCursor = doc.next_cursor;
    older.classList.toggle("hidden", nextCursor === null || nextCursor === undefined);
    older.disabled = false;
    say(`${tbody.rows.length} event(s) shown${nextCursor !== null && nextCursor !== undefined
      ? "; older ones follow" : ""}.`);
    if (live.checked) startTail();
  } catch (err) {
    if (mine !== generation) return;
    say("");
    older.disabled = false;
    showFieldError(err);
  }
}

// -- live tail --------------------------------------------------------------------------------

function stopTail() {
  if (source) {
    source.close();
    source = null;
  }
}

function startTail() {
  stopTail();
  const newest = tbody.rows.length ? Math.max(...[...tbody.rows].map((r) => Number(r.dataset.index))) : null;
  // background=1: the service does not count the stream as the user's activity, so an open
  // live tail does not keep an idle session alive.
  const params = searchParams(query, { ...(newest !== null ? { after: newest } : {}),
    background: "1" });
  const status = qs("#live-status");
  const stream = new EventSource(`${logPath("/events/stream")}?${params}`);
  source = stream;
  stream.addEventListener("open", () => {
    status.textContent = "Live: new matching events appear at the top.";
  });
  stream.addEventListener("entry", (message) => {
    let item;
    try {
      item = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (shown.has(item.index)) return;
    shown.add(item.index);
    tbody.prepend(rowOf(item, true));
    newCount += 1;
    status.textContent = `Live: ${newCount} new event(s) added at the top (highlighted).`;
  });
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED && source === stream) {
      source = null;
      live.checked = false;
      status.textContent = "The live tail stopped (the service refused or ended it). Turn it on to try again.";
    } else if (source === stream) {
      status.textContent = "Live tail: reconnecting…";
    }
  });
}

// -- wiring -----------------------------------------------------------------------------------

form.addEventListener("submit", (e) => {
  e.preventDefault();
  runSearch();
});
qs("#search-clear").addEventListener("click", () => {
  form.reset();
  for (const name of TIMES) forgetExact(name);
  runSearch();
});
for (const name of TIMES) {
  for (const type of ["input", "change"]) {
    form.elements[name].addEventListener(type, () => forgetExact(name));
  }
}
older.addEventListener("click", () => runSearch({ more: true }));
live.addEventListener("change", () => {
  if (live.checked) startTail();
  else {
    stopTail();
    qs("#live-status").textContent = "Live tail off.";
  }
});
window.addEventListener("pagehide", stopTail);

buildColumnChoices();
header();
const opened = urlQuery(new URLSearchParams(location.search));
fillForm(opened);
runSearch({ initial: opened });

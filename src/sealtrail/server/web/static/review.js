// Review: the daily log review. Lists the periods with their status, opens one (summary,
// alerts, exceptions, assignments, sign-off) and lets an auditor work through it: each
// exception benign or assigned (a note is required), assignments closed with a resolution,
// the period signed off. Every step is a POST to the /v1 review API, which records it in the
// log; the page then shows the state the API read back from the log.
// A period signed off and then given a new exception (late events, a later alert) is
// "reopened" until each new exception has a disposition. An admin gets counts only (no event
// text): the fields the API leaves out are simply not shown.
// Everything shown is built with el(): nothing from the server is parsed as HTML.
import { api, ApiError, el, clear, showError, qs, logPath, formatTime, role } from "./api.js";

const STATUS_TEXT = { pending: "Pending", overdue: "Overdue", signed_off: "Signed off",
  reopened: "Reopened" };
// Badge colours for statuses console.css has no class of its own for.
const BADGE_CLASS = { reopened: "bad" };
const MISSING = "missing from the alert store";
const MAX_NOTE = 4096;

function say(text) {
  qs("#review-status").textContent = text;
}

function badge(status) {
  return el("span", { class: `badge ${BADGE_CLASS[status] || status}`, "data-status": status },
    STATUS_TEXT[status] || status);
}

// " — ann via console, 2 Dec 10:00": who took a step, how it came in, when.
function byline(step) {
  const via = step.via ? ` via ${step.via}${step.os_user ? ` (OS user ${step.os_user})` : ""}` : "";
  return el("span", { class: "muted small" }, ` — ${step.by}${via}, ${formatTime(step.at)}`);
}

function alertStatus(status) {
  return status === MISSING
    ? el("span", { class: "badge bad", "data-status": "missing" }, "Missing from the alert store")
    : el("span", { class: `badge ${status}` }, status);
}

function fact(dl, term, ...value) {
  dl.append(el("dt", {}, term), el("dd", {}, ...value));
}

function counts(obj) {
  const parts = Object.entries(obj || {}).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(", ") : "none";
}

const canReview = () => role() === "auditor";

// -- the list of periods ----------------------------------------------------------------------

async function loadPeriods() {
  const form = qs("#range-form");
  const query = { since: form.since.value, until: form.until.value };
  const body = qs("#periods tbody");
  say("Loading periods…");
  try {
    const doc = await api(logPath("/reviews"), { query });
    clear(body);
    for (const p of doc.periods) {
      const open = el("button", { type: "button", class: "link", "data-period": p.period,
        onclick: () => openPeriod(p.period) }, p.period);
      body.append(el("tr", { dataset: { period: p.period } },
        el("td", {}, open), el("td", {}, badge(p.status)), el("td", {}, String(p.events)),
        el("td", {}, String(p.alerts)),
        el("td", {}, `${p.exceptions.open} of ${p.exceptions.total}`),
        el("td", {}, String(p.assignments_open)),
        el("td", {}, p.signed_off ? p.signed_off.by : "—")));
    }
    say(`${doc.periods.length} period(s); a period is overdue ${doc.grace_hours} h after it ends.`);
    clear(qs("#review-error"));
  } catch (err) {
    say("");
    showError(qs("#review-error"), err);
  }
}

// -- one period -------------------------------------------------------------------------------

function noteField(id, label) {
  return [el("label", { for: id }, label),
    el("textarea", { id, name: "note", required: true, maxlength: String(MAX_NOTE), rows: "2" })];
}

// A form whose submit runs `action(form)`; errors go in the form's own alert box, and the
// field the service named is marked and focused.
function stepForm(cls, children, label, action) {
  const errors = el("div", { class: "form-error" });
  const form = el("form", { class: `stack ${cls}`, novalidate: true },
    ...children, el("div", { class: "actions" }, el("button", { type: "submit" }, label)), errors);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(errors);
    for (const n of form.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
    const note = form.note ? form.note.value.trim() : "";
    if (form.note && !note) {
      form.note.setAttribute("aria-invalid", "true");
      form.note.focus();
      showError(errors, new Error("A note is required: say what was checked and why."));
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await action(form, note);
    } catch (err) {
      showError(errors, err);
      if (err instanceof ApiError && err.field) {
        const input = form.querySelector(`[name="${CSS.escape(err.field)}"]`);
        if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      }
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function exceptionRow(period, exc) {
  const d = exc.detail;
  let detail;
  if (exc.kind === "alert") {
    detail = [d.rule || "rule not readable",
      d.count !== undefined ? `${d.count} detection(s)` : null,
      d.in_store === false ? MISSING : `alert ${d.status}`].filter(Boolean).join(" · ");
  } else {
    detail = `${d.actor !== undefined ? `actor ${d.actor} · ` : ""}${d.count} failed or denied ` +
      `(threshold ${d.threshold})`;
  }
  let state;
  if (exc.disposition === "benign") {
    state = [el("span", { class: "badge ok" }, "Benign"), " ", exc.decided.note,
      byline(exc.decided)];
  } else if (exc.disposition === "assigned") {
    state = [el("span", { class: `badge ${exc.addressed ? "ok" : "warn"}` },
      exc.addressed ? "Assigned, closed" : "Assigned"), " ", exc.decided.note,
    byline(exc.decided)];
  } else if (canReview()) {
    const id = `x-${exc.id}`;
    const assignee = el("div", { class: "field hidden" },
      el("label", { for: `${id}-to` }, "Assign to"),
      el("input", { id: `${id}-to`, name: "assignee", type: "text", maxlength: "256" }));
    const choice = el("select", { id: `${id}-d`, name: "disposition" },
      el("option", { value: "benign" }, "Benign"), el("option", { value: "assigned" }, "Assign"));
    choice.addEventListener("change", () => {
      assignee.classList.toggle("hidden", choice.value !== "assigned");
    });
    state = [stepForm("exception-form", [
      el("div", { class: "field" }, el("label", { for: `${id}-d` }, "Disposition"), choice),
      assignee, ...noteField(`${id}-n`, "Note")], "Record", async (form, note) => {
      const body = { disposition: form.disposition.value, note };
      if (body.disposition === "assigned") body.assignee = form.assignee.value.trim();
      await api(logPath(`/reviews/${period}/exceptions/${encodeURIComponent(exc.id)}`),
        { method: "POST", body });
      await refresh(period);
      say(`Exception recorded as ${body.disposition}.`);
    })];
  } else {
    state = [el("span", { class: "badge warn" }, "No disposition")];
  }
  return el("tr", { dataset: { exception: exc.id, disposition: exc.disposition || "" } },
    el("td", {}, el("span", { class: `badge ${exc.severity}` }, exc.severity)),
    el("td", {}, exc.title, el("br"), el("span", { class: "muted small" }, detail)),
    el("td", {}, ...state));
}

function assignmentRow(period, asg) {
  let state;
  if (asg.closed) {
    state = [el("span", { class: "badge ok" }, "Closed"), " ", asg.closed.note,
      byline(asg.closed)];
  } else if (canReview()) {
    state = [stepForm("close-form", noteField(`c-${asg.id}`, "Resolution"), "Close",
      async (_form, note) => {
        await api(logPath(`/reviews/${period}/assignments/${encodeURIComponent(asg.id)}/close`),
          { method: "POST", body: { note } });
        await refresh(period);
        say("Assignment closed.");
      })];
  } else {
    state = [el("span", { class: "badge warn" }, "Open")];
  }
  return el("tr", { dataset: { assignment: asg.id, status: asg.status } },
    el("td", {}, el("code", {}, asg.id)), el("td", {}, asg.assignee),
    el("td", {}, asg.assigned.note), el("td", {}, ...state));
}

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows)));
}

function renderPeriod(item) {
  const section = qs("#period");
  const body = clear(qs("#period-body"));
  section.classList.remove("hidden");
  section.dataset.period = item.period;
  const title = clear(qs("#period-title"));
  title.append(`Period ${item.period} `, badge(item.status));

  const s = item.summary;
  const dl = el("dl", { class: "facts" });
  fact(dl, "Events", String(s.events));
  fact(dl, "By category", counts(s.by_category));
  fact(dl, "By outcome", counts(s.by_outcome));
  fact(dl, "Failures and denials", String(s.failures));
  fact(dl, "Failed or denied access", String(s.access_failures));
  fact(dl, "Admin and configuration changes", s.change_actions
    ? `${s.changes} (${counts(s.change_actions)})` : String(s.changes));
  fact(dl, "Reads of the trail", String(s.trail_reads));
  body.append(el("h3", {}, "Summary"), dl);
  if (item.counts_only) {
    body.append(el("p", { class: "muted", id: "counts-only" },
      "Counts only: your role does not read event content (actions, actors, alert messages)."));
  }

  body.append(el("h3", {}, `Alerts (${item.alerts.length})`), table(
    ["Severity", "Alert", "Opened", "Status"],
    item.alerts.map((a) => el("tr", { dataset: { alert: a.id, inStore: String(a.in_store) } },
      el("td", {}, el("span", { class: `badge ${a.severity}` }, a.severity)),
      el("td", {}, a.title, el("br"), el("span", { class: "muted small" }, a.rule)),
      el("td", {}, formatTime(a.first_seen || a.opened)), el("td", {}, alertStatus(a.status)))),
    "No alert in this period."));

  const ex = item.exceptions;
  body.append(el("h3", {}, `Exceptions (${ex.open} open of ${ex.total})`), table(
    ["Severity", "Exception", "Disposition"],
    item.exception_list.map((e) => exceptionRow(item.period, e)), "No exception in this period."));

  body.append(el("h3", {}, "Assignments"), table(
    ["Id", "Assignee", "What to do", "Status"],
    item.assignments.map((a) => assignmentRow(item.period, a)), "No assignment."));

  body.append(el("h3", {}, "Sign-off"));
  if (item.signed_off) {
    const so = item.signed_off;
    const via = so.via ? ` via ${so.via}${so.os_user ? ` (OS user ${so.os_user})` : ""}` : "";
    body.append(el("p", { id: "signed-off" }, el("span", { class: "badge signed_off" }, "Signed off"),
      ` by ${so.by}${via}, ${formatTime(so.at)} (entry ${so.index}): `, so.note));
    if (item.late_exceptions && item.late_exceptions.length) {
      body.append(el("p", { id: "reopened", role: "note" }, badge("reopened"),
        ` ${item.late_exceptions.length} exception(s) appeared after the sign-off: ` +
        "each needs a disposition before the period counts as reviewed again."));
    }
  } else if (canReview()) {
    if (ex.undecided) {
      body.append(el("p", { class: "muted" },
        `${ex.undecided} exception(s) still need a disposition before the period can be signed off.`));
    }
    body.append(stepForm("signoff-form", noteField("signoff-note", "Sign-off note"), "Sign off",
      async (_form, note) => {
        await api(logPath(`/reviews/${item.period}/sign-off`), { method: "POST", body: { note } });
        await refresh(item.period);
        say(`Period ${item.period} signed off.`);
      }));
  } else {
    body.append(el("p", { class: "muted" }, "Not signed off."));
  }
}

async function openPeriod(period) {
  say(`Loading ${period}…`);
  try {
    const item = await api(logPath(`/reviews/${period}`));
    renderPeriod(item);
    if (location.hash !== `#${period}`) history.replaceState(null, "", `#${period}`);
    say(`Period ${period}: ${STATUS_TEXT[item.status] || item.status}.`);
    clear(qs("#review-error"));
    qs("#period-title").focus();
  } catch (err) {
    say("");
    showError(qs("#review-error"), err);
  }
}

async function refresh(period) {
  const item = await api(logPath(`/reviews/${period}`));
  renderPeriod(item);
  await loadPeriods();
}

qs("#range-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadPeriods();
});

loadPeriods().then(() => {
  const wanted = location.hash.slice(1);
  if (/^\d{4}-\d{2}-\d{2}$/.test(wanted)) openPeriod(wanted);
});

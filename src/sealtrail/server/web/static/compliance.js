// Compliance: run a report for a standard and period and show its checks, download it (HTML,
// PDF, JSON, Markdown: links to the API route, which the session cookie authorises), export an
// evidence bundle, and see the retention policy and legal holds (an admin sets the policy and
// places and releases holds, each with a reason: recorded in the log by the API).
// Everything shown is built with el(): nothing from the server is parsed as HTML.
import { api, ApiError, el, clear, showError, qs, logPath, currentLog, formatTime }
  from "./api.js";

const STATUS_BADGE = { pass: "ok", fail: "bad", warn: "warn", "not-applicable": "" };
const STATUS_TEXT = { pass: "Pass", fail: "Fail", warn: "Warning", "not-applicable": "N/A" };
const DOWNLOADS = [["html", "HTML"], ["pdf", "PDF"], ["json", "JSON"], ["md", "Markdown"]];

function say(text) {
  const node = qs("#compliance-status");
  if (node) node.textContent = text;
}

function fact(dl, term, ...value) {
  dl.append(el("dt", {}, term), el("dd", {}, ...value));
}

// Mark the input the service named as wrong (aria-invalid) and move the focus to it.
function markField(form, err) {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  if (!(err instanceof ApiError) || !err.field) return;
  const name = err.field.split(".")[0];
  const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function clearMarks(form) {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// The period of a form: dates as the API takes them (a date means 00:00 UTC), checked here
// too so an obvious slip is named before anything runs.
function period(form, prefix) {
  const since = qs(`#${prefix}-since`, form).value;
  const until = qs(`#${prefix}-until`, form).value;
  if (since && until && since >= until) {
    throw new ApiError(422, "since: the start must be before the end", "since");
  }
  return { since, until };
}

function query(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) {
      out.set(key, String(value));
    }
  }
  return out.toString();
}

// -- the report ------------------------------------------------------------------------------

function renderReport(report, params) {
  const result = qs("#report-result");
  const summary = clear(qs("#report-summary"));
  const c = report.summary;
  fact(summary, "Standard", report.standard_name);
  fact(summary, "Period", `${report.period.from ? formatTime(report.period.from)
    : "beginning of the log"} to ${formatTime(report.period.to)}`);
  fact(summary, "Generated at", formatTime(report.generated_at));
  fact(summary, "Events scanned", String(report.events_scanned));
  fact(summary, "Result", `pass ${c.pass}, fail ${c.fail}, warning ${c.warn}, `
    + `not applicable ${c["not-applicable"]}`);
  fact(summary, "Report hash", el("code", {}, report.receipt ? report.receipt.report_hash : ""));
  if (report.receipt) {
    const index = report.receipt.index;
    fact(summary, "Recorded as", el("a", {
      href: `/ui/logs/${encodeURIComponent(currentLog())}/events/${index}` }, `entry ${index}`));
  }
  const downloads = clear(qs("#report-downloads"));
  for (const [format, label] of DOWNLOADS) {
    const href = `${logPath("/reports")}?${query({ ...params, format, download: 1 })}`;
    downloads.append(el("a", { class: "button", href, download: "" }, `Download ${label}`));
  }
  const body = clear(qs("#report-checks tbody"));
  const evidence = clear(qs("#report-evidence"));
  for (const check of report.checks) {
    body.append(el("tr", { dataset: { check: check.id, status: check.status } },
      el("td", {}, el("strong", {}, check.id), `: ${check.title}`),
      el("td", {}, el("span", { class: `badge ${STATUS_BADGE[check.status] || ""}` },
        STATUS_TEXT[check.status] || check.status)),
      el("td", {}, (check.clauses || []).join(", ")),
      el("td", {}, check.summary),
      el("td", {}, check.fix || "")));
    if (check.evidence && Object.keys(check.evidence).length) {
      evidence.append(el("details", {},
        el("summary", {}, `Evidence: ${check.id} (${STATUS_TEXT[check.status] || check.status})`),
        el("pre", {}, JSON.stringify(check.evidence, null, 2))));
    }
  }
  result.classList.remove("hidden");
}

function setupReport() {
  const form = qs("#report-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = qs("#report-run");
    const errors = clear(qs("#report-error"));
    clearMarks(form);
    let params;
    try {
      params = { standard: qs("#report-standard").value, ...period(form, "report"),
        verify: qs("#report-verify").checked ? "true" : "" };
    } catch (err) {
      showError(errors, err);
      markField(form, err);
      return;
    }
    button.disabled = true;
    say("Running the report…");
    try {
      const report = await api(logPath("/reports"), { query: { ...params, format: "json" } });
      renderReport(report, params);
      say(`Report done: pass ${report.summary.pass}, fail ${report.summary.fail}; recorded `
        + `at entry ${report.receipt ? report.receipt.index : "-"}.`);
      qs("#report-result-title").focus({ preventScroll: false });
    } catch (err) {
      showError(errors, err);
      markField(form, err);
      say("The report did not run.");
    } finally {
      button.disabled = false;
    }
  });
}

// -- the evidence bundle ----------------------------------------------------------------------

function fileName(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : fallback;
}

function setupEvidence() {
  const form = qs("#evidence-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = qs("#evidence-export");
    const errors = clear(qs("#evidence-error"));
    clearMarks(form);
    let url;
    try {
      const params = { ...period(form, "evidence") };
      for (const name of ["category", "outcome", "actor", "action", "target", "source",
        "format"]) {
        params[name] = form.elements[name].value.trim();
      }
      params.open_sealed = qs("#evidence-open").checked ? "true" : "";
      url = `${logPath("/evidence")}?${query(params)}`;
    } catch (err) {
      showError(errors, err);
      markField(form, err);
      return;
    }
    button.disabled = true;
    say("Building the evidence bundle…");
    try {
      // Fetched (not a plain link) so a refusal is shown here, naming the field.
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) {
        let message = `${response.status} ${response.statusText}`;
        let field = null;
        try {
          const doc = await response.json();
          message = doc.error || message;
          field = doc.field || null;
        } catch (_) { /* not JSON */ }
        throw new ApiError(response.status, message, field);
      }
      const blob = await response.blob();
      const name = fileName(response, "sealtrail-evidence.zip");
      const link = el("a", { href: URL.createObjectURL(blob), download: name, class: "hidden" },
        name);
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 60000);
      say(`Evidence bundle ${name}: ${response.headers.get("X-Sealtrail-Events") || "?"} `
        + `events; the export is recorded at entry `
        + `${response.headers.get("X-Sealtrail-Export-Event") || "?"}.`);
    } catch (err) {
      showError(errors, err);
      markField(form, err);
      say("The evidence bundle was not exported.");
    } finally {
      button.disabled = false;
    }
  });
}

// -- retention and legal holds ----------------------------------------------------------------

const isAdmin = () => Boolean(qs("#policy-form"));

function renderRetention(doc) {
  const facts = clear(qs("#retention-facts"));
  fact(facts, "Policy", doc.policy ? doc.policy.name
    : "None: every entry is kept forever");
  const run = doc.last_run;
  fact(facts, "Last scheduled run", run
    ? `${formatTime(run.at)}: ${run.ok ? `purged ${run.purged}, archived ${run.archived}`
      : `did not run (${run.problem || "error"})`}`
    : "None on this node yet");
  fact(facts, "Schedule", doc.schedule_seconds > 0
    ? `every ${Math.round(doc.schedule_seconds / 3600)} hour(s)` : "off");
  const rules = clear(qs("#retention-rules tbody"));
  const policy = doc.policy || {};
  const cats = (doc.categories || []).filter((c) => policy[c]);
  if (!cats.length) {
    rules.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No rules.")));
  }
  for (const cat of cats) {
    const rule = policy[cat];
    rules.append(el("tr", {}, el("td", {}, cat), el("td", {}, rule.min || "—"),
      el("td", {}, rule.max || "forever"), el("td", {}, rule.online || "always")));
  }
  const preset = qs("#policy-preset");
  if (preset && !preset.options.length) {
    for (const [name, value] of Object.entries(doc.presets || {})) {
      const d = value.default || {};
      const text = [d.min && `min ${d.min}`, d.max && `max ${d.max}`,
        d.online && `online ${d.online}`].filter(Boolean).join(", ");
      preset.append(el("option", { value: name }, `${name} (${text})`));
    }
    if (doc.policy && doc.presets && doc.presets[doc.policy.name]) preset.value = doc.policy.name;
  }
  renderHolds(doc.holds || []);
}

function renderHolds(holds) {
  const body = clear(qs("#holds-table tbody"));
  const admin = isAdmin();
  if (!holds.length) {
    body.append(el("tr", {}, el("td", { colspan: admin ? 6 : 5, class: "muted" },
      "No legal holds.")));
    return;
  }
  for (const hold of holds) {
    const row = el("tr", { dataset: { hold: hold.hold } },
      el("td", {}, `#${hold.hold}`),
      el("td", {}, el("code", {}, hold.subject_ref)),
      el("td", {}, hold.reason || ""),
      el("td", {}, formatTime(hold.since)),
      el("td", {}, hold.released ? formatTime(hold.released) : "open"));
    if (admin) {
      row.append(el("td", {}, hold.released ? "" : el("button", {
        type: "button", "aria-label": `Release hold #${hold.hold}`,
        onclick: () => openRelease(hold.hold) }, "Release…")));
    }
    body.append(row);
  }
}

async function loadRetention() {
  const errors = clear(qs("#retention-error"));
  try {
    const released = qs("#holds-released").checked;
    renderRetention(await api(logPath("/retention"), { query: { released: released || "" } }));
  } catch (err) {
    showError(errors, err);
  }
}

function openRelease(number) {
  const form = qs("#release-form");
  qs("#release-hold").value = String(number);
  qs("#release-title").textContent = `Release hold #${number}`;
  clear(qs("#release-error"));
  form.classList.remove("hidden");
  qs("#release-subject").focus();
}

function required(form, names) {
  for (const name of names) {
    if (!form.elements[name].value.trim()) {
      throw new ApiError(422, `${name}: required`, name);
    }
  }
}

function setupPolicy() {
  const form = qs("#policy-form");
  if (!form) return;
  const toggle = () => {
    const fromPreset = qs("#policy-from-preset").checked;
    qs("#policy-preset-field").classList.toggle("hidden", !fromPreset);
    qs("#policy-document-field").classList.toggle("hidden", fromPreset);
  };
  for (const radio of form.querySelectorAll('input[name="policy-source"]')) {
    radio.addEventListener("change", toggle);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = clear(qs("#policy-error"));
    clearMarks(form);
    const button = qs("#policy-save");
    button.disabled = true;
    try {
      let body;
      if (qs("#policy-from-preset").checked) {
        body = { preset: qs("#policy-preset").value };
      } else {
        try {
          body = { policy: JSON.parse(qs("#policy-document").value) };
        } catch (err) {
          throw new ApiError(422, `policy: not JSON (${err.message})`, "policy");
        }
      }
      const done = await api(logPath("/retention"), { method: "PUT", body });
      say(`Retention policy ${done.policy.name} set; recorded at entry ${done.index}.`);
      await loadRetention();
    } catch (err) {
      showError(errors, err);
      markField(form, err);
    } finally {
      button.disabled = false;
    }
  });
}

function setupHolds() {
  qs("#holds-released").addEventListener("change", loadRetention);
  const form = qs("#hold-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = clear(qs("#hold-error"));
    clearMarks(form);
    const button = qs("#hold-place");
    button.disabled = true;
    try {
      required(form, ["subject", "reason"]);
      const done = await api(logPath("/holds"), { method: "POST", body: {
        subject: form.elements.subject.value.trim(), reason: form.elements.reason.value } });
      form.reset();
      say(`Legal hold #${done.hold} placed on ${done.subject_ref}; recorded at entry `
        + `${done.event_index}.`);
      await loadRetention();
    } catch (err) {
      showError(errors, err);
      markField(form, err);
    } finally {
      button.disabled = false;
    }
  });
  const release = qs("#release-form");
  qs("#release-cancel").addEventListener("click", () => {
    release.reset();
    release.classList.add("hidden");
    qs("#holds-title").focus();
  });
  release.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = clear(qs("#release-error"));
    clearMarks(release);
    const button = qs("#release-confirm");
    button.disabled = true;
    const number = qs("#release-hold").value;
    try {
      required(release, ["subject", "reason"]);
      const done = await api(logPath(`/holds/${encodeURIComponent(number)}`), {
        method: "DELETE", body: { subject: release.elements.subject.value.trim(),
          reason: release.elements.reason.value } });
      release.reset();
      release.classList.add("hidden");
      say(`Released hold(s) ${done.released.map((n) => `#${n}`).join(", ")}; recorded at `
        + `entry ${done.event_index}.`);
      await loadRetention();
    } catch (err) {
      showError(errors, err);
      markField(release, err);
    } finally {
      button.disabled = false;
    }
  });
}

qs("#holds-title").setAttribute("tabindex", "-1");
qs("#report-result-title")?.setAttribute("tabindex", "-1");
setupReport();
setupEvidence();
setupPolicy();
setupHolds();
loadRetention();

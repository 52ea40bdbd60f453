// Administration: API keys and console users, over /v1/keys and /v1/users (admin only).
// A new key's token is shown once, in its own box, and removed from the page when the admin
// says it is stored. Revoking a key and disabling a user ask for a confirmation in place.
import { api, el, clear, showError, qs, formatTime } from "./api.js";

const status = qs("#admin-status");
const pageError = qs("#admin-error");

function say(text) {
  status.textContent = text;
}

// A confirmation in the row itself: the action's button becomes "Confirm" and "Cancel".
function confirmInPlace(cell, question, label, action) {
  const original = Array.from(cell.childNodes);
  const cancel = el("button", { type: "button" }, "Cancel");
  const go = el("button", { type: "button", class: "danger" }, label);
  const restore = () => { clear(cell); cell.append(...original); original[0]?.focus?.(); };
  cancel.addEventListener("click", restore);
  go.addEventListener("click", async () => {
    go.disabled = true;
    cancel.disabled = true;
    try {
      await action();
    } catch (err) {
      restore();
      showError(pageError, err);
    }
  });
  clear(cell);
  cell.append(el("span", { class: "small" }, question, " "), go, " ", cancel);
  go.focus();
}

// -- API keys --------------------------------------------------------------------------------

async function loadKeys() {
  const body = qs("#keys tbody");
  const doc = await api("/v1/keys");
  clear(body);
  if (!doc.keys.length) {
    body.append(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No API keys yet.")));
  }
  for (const key of doc.keys) {
    const action = el("td", {});
    let state = "active";
    let badge = "ok";
    if (key.revoked) {
      state = `revoked ${formatTime(key.revoked)}`;
      badge = "bad";
    } else if (key.expires && new Date(key.expires) <= new Date()) {
      state = "expired";
      badge = "warn";
    }
    if (!key.revoked) {
      const revoke = el("button", { type: "button", class: "danger",
        "aria-label": `Revoke key ${key.id} (${key.name})` }, "Revoke");
      revoke.addEventListener("click", () => confirmInPlace(action,
        `Revoke ${key.id}? Its token stops working at once.`, "Confirm revoke", async () => {
          await api(`/v1/keys/${encodeURIComponent(key.id)}/revoke`, { method: "POST" });
          say(`Key ${key.id} (${key.name}) revoked.`);
          await loadKeys();
        }));
      action.append(revoke);
    }
    body.append(el("tr", { dataset: { key: key.id } },
      el("td", { class: "mono" }, key.id),
      el("td", {}, key.name),
      el("td", {}, key.role),
      el("td", {}, key.log || "every log"),
      el("td", {}, formatTime(key.created)),
      el("td", {}, key.expires ? formatTime(key.expires) : "never"),
      el("td", {}, el("span", { class: `badge ${badge}` }, state)),
      action));
  }
}

function showToken(token, key) {
  const box = qs("#token-box");
  const input = qs("#token-value");
  input.value = token;
  box.classList.remove("hidden");
  qs("#token-title").textContent = `Token of the new ${key.role} key "${key.name}": store it now`;
  input.focus();
  input.select();
}

function forgetToken() {
  qs("#token-value").value = "";
  qs("#token-box").classList.add("hidden");
}

qs("#token-copy").addEventListener("click", async () => {
  const input = qs("#token-value");
  try {
    await navigator.clipboard.writeText(input.value);
    say("Token copied to the clipboard.");
  } catch (_) {
    input.focus();
    input.select();
    say("Copying is not allowed here: the token is selected, copy it with the keyboard.");
  }
});

qs("#token-done").addEventListener("click", () => {
  forgetToken();
  say("The token was removed from the page.");
  qs("#key-name").focus();
});

qs("#key-role").addEventListener("change", () => {
  // Auditor and admin keys act on every log.
  const wide = ["auditor", "admin"].includes(qs("#key-role").value);
  const log = qs("#key-log");
  if (wide) log.value = "";
  log.disabled = wide;
});

qs("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = qs("#key-form-error");
  clear(errorBox);
  const form = event.currentTarget;
  const body = { role: qs("#key-role").value, name: qs("#key-name").value.trim() };
  const log = qs("#key-log").value;
  if (log && !qs("#key-log").disabled) body.log = log;
  const expires = qs("#key-expires").value;
  if (expires) body.expires = `${expires}T00:00:00Z`;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const made = await api("/v1/keys", { method: "POST", body });
    form.reset();
    qs("#key-log").disabled = false;
    showToken(made.token, made.key);
    say(`Key ${made.key.id} created.`);
    await loadKeys();
  } catch (err) {
    showError(errorBox, err);
    const bad = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (bad) bad.focus();
  } finally {
    button.disabled = false;
  }
});

// -- console users ---------------------------------------------------------------------------

async function loadUsers() {
  const body = qs("#users tbody");
  const doc = await api("/v1/users");
  clear(body);
  if (!doc.users.length) {
    body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No console users yet.")));
  }
  const me = document.body.dataset.user || "";
  for (const user of doc.users) {
    const action = el("td", {});
    if (!user.disabled) {
      const disable = el("button", { type: "button", class: "danger",
        "aria-label": `Disable user ${user.name}` }, "Disable");
      const warning = user.name === me ? " You will be signed out." : "";
      disable.addEventListener("click", () => confirmInPlace(action,
        `Disable ${user.name}? Their sessions end at once.${warning}`, "Confirm disable",
        async () => {
          await api(`/v1/users/${encodeURIComponent(user.name)}/disable`, { method: "POST" });
          say(`User ${user.name} disabled.`);
          await loadUsers();
        }));
      action.append(disable);
    }
    body.append(el("tr", { dataset: { user: user.name } },
      el("td", {}, user.name),
      el("td", {}, user.role),
      el("td", {}, user.source === "oidc" ? "single sign-on" : "password"),
      el("td", {}, user.mfa ? "TOTP" : "none"),
      el("td", {}, formatTime(user.created)),
      el("td", {}, user.disabled
        ? el("span", { class: "badge bad" }, `disabled ${formatTime(user.disabled)}`)
        : el("span", { class: "badge ok" }, "active")),
      action));
  }
}

qs("#user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = qs("#user-form-error");
  clear(errorBox);
  const form = event.currentTarget;
  const body = { name: qs("#user-name").value.trim(), role: qs("#user-role").value,
    password: qs("#user-password").value };
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const made = await api("/v1/users", { method: "POST", body });
    form.reset();
    say(`User ${made.user.name} (${made.user.role}) created.`);
    await loadUsers();
  } catch (err) {
    qs("#user-password").value = "";
    showError(errorBox, err);
    const bad = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (bad) bad.focus();
  } finally {
    button.disabled = false;
  }
});

async function start() {
  say("Loading…");
  try {
    await Promise.all([loadKeys(), loadUsers()]);
    say("");
  } catch (err) {
    say("");
    showError(pageError, err);
  }
}

start();

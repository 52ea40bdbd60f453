// The console's one way to call the service: the same /v1 API every client uses, with the
// session cookie and (for a change) the session's CSRF token, and errors as ApiError.
// DOM helpers that never parse data as HTML (no innerHTML with anything from the server).

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

async function call(path, { method = "GET", body, query, accept, background = false } = {}) {
  const headers = { Accept: accept || "application/json" };
  // A request no person asked for (a periodic refresh): the session's idle timer ignores it.
  if (background) headers["X-Sealtrail-Background"] = "1";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(withQuery(path, query), {
      method, headers, body: payload, credentials: "same-origin", cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `The service did not answer (${err.message}).`);
  }
  if (response.status === 401) {
    // The session ended (idle or absolute timeout, sign-out elsewhere): back to sign-in.
    throw new ApiError(401, "Your session has ended: sign in again.");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let field = null;
    try {
      const doc = await response.json();
      if (doc && typeof doc.error === "string") message = doc.error;
      if (doc && typeof doc.field === "string") field = doc.field;
      if (doc && Array.isArray(doc.errors) && doc.errors.length) {
        message = doc.errors.map((e) => `${e.field || ""}: ${e.message || ""}`).join("; ");
        field = doc.errors[0].field || field;
      }
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message, field);
  }
  return response;
}

export async function api(path, options = {}) {
  const response = await call(path, options);
  if (response.status === 204) return null;
  return response.json();
}

export async function apiText(path, options = {}) {
  const response = await call(path, { ...options, accept: "text/plain, application/x-ndjson, */*" });
  return response.text();
}

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "rect", "line", "text", "g", "title", "polyline", "path"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function qs(selector, root = document) {
  return root.querySelector(selector);
}

export function showError(node, err) {
  clear(node);
  const text = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  node.append(el("p", { class: "error", role: "alert" }, text));
  if (err instanceof ApiError && err.status === 401) {
    node.append(el("p", {}, el("a", { href: `/ui/?next=${encodeURIComponent(location.pathname)}` }, "Sign in again")));
  }
}

export function currentLog() {
  return document.body.dataset.log || "";
}

export function role() {
  return document.body.dataset.role || "";
}

export function logPath(rest = "") {
  return `/v1/logs/${encodeURIComponent(currentLog())}${rest}`;
}

export function formatTime(text) {
  if (!text) return "";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toISOString().replace(".000Z", "Z");
}

// The server's JSON API: every call carries the session token from the page URL; every {"error"} answer
// is shown in #message (and, for a layer error, next to that layer by whoever handles `onLayerError`).

export const token = new URLSearchParams(location.search).get("token") || "";

const hooks = { onLayerError: null };
export function setLayerErrorHook(fn) { hooks.onLayerError = fn; }

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `request failed with status ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function withToken(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export function showMessage(text, kind = "error") {
  const el = document.getElementById("message");
  if (!el) return;
  el.textContent = text || "";
  el.className = text ? kind : "";
}

export function clearMessage() { showMessage(""); }

// After a request that worked: an error left from an earlier one no longer applies.
export function clearError() {
  const el = document.getElementById("message");
  if (el && el.className === "error") clearMessage();
}

// fetch with the token; JSON in and out. `quiet` skips showing the error (the caller shows it).
export async function api(method, path, body, { quiet = false, form = null } = {}) {
  const init = { method, headers: { "X-Ganforge-Token": token } };
  if (form) {
    init.body = form;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(withToken(path), init);
  } catch (e) {
    const err = new ApiError(0, { error: `the playground server does not answer (${e.message}): is it still running?` });
    if (!quiet) report(err);
    throw err;
  }
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await res.json().catch(() => null) : null;
  if (!res.ok) {
    const err = new ApiError(res.status, data || { error: `${method} ${path} failed with status ${res.status}` });
    if (!quiet) report(err);
    throw err;
  }
  return data;
}

export function report(err) {
  const body = err.body || {};
  showMessage(err.message);
  if (body.net && body.index !== undefined && hooks.onLayerError) hooks.onLayerError(body.net, body.index, body.error);
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);

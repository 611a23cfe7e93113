/* The one way page code talks to /api: JSON in and out, the CSRF token on every write, and the
 * API's one error shape ({"error": {"code", "message", "field"}}) turned into an ApiError. */

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const watchers = new Set();
let active = 0;

/** An answer other than 2xx: the server's message, the field it names, the HTTP status. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, field = null, details = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.details = details;
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : null;
}

function busy(step) {
  active = Math.max(0, active + step);
  for (const watch of watchers) { watch(active); }
}

async function readBody(response) {
  if (response.status === 204) { return null; }
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch (error) {
      if (isAbort(error)) { throw error; }   // replaced by a newer request while the body arrived
      return null;                           // a body that is not JSON after all
    }
  }
  return null;
}

/** Call the API: request(url, {method, json, body, signal, headers}) → the decoded JSON answer. */
export async function request(url, { method = "GET", json, body, signal, headers = {}, keepalive } = {}) {
  const init = { method, credentials: "same-origin", signal, keepalive,
                 headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;   // FormData: the browser sets the multipart boundary itself
  }
  if (!SAFE_METHODS.has(method.toUpperCase())) {
    const token = csrfToken();
    if (token) { init.headers["X-CSRFToken"] = token; }
  }
  busy(+1);
  try {
    const response = await fetch(url, init);
    const data = await readBody(response);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(error.message || `${response.status} ${response.statusText}`.trim(),
                         { status: response.status, code: error.code, field: error.field,
                           details: error.details });
    }
    return data;
  } finally {
    busy(-1);
  }
}

/** GET url → JSON. */
export function get(url, options) {
  return request(url, options);
}

/** POST json to url → JSON. */
export function post(url, json, options) {
  return request(url, { ...options, method: "POST", json });
}

/** DELETE url → JSON (or null). */
export function remove(url, options) {
  return request(url, { ...options, method: "DELETE" });
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") { search.set(key, String(value)); }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A requester for one view whose controls can change while it loads: each call aborts the call
 * before it, so only the newest answer ever arrives (older ones reject with an AbortError). */
export function newest() {
  let controller = null;
  return function latest(url, options = {}) {
    if (controller) { controller.abort(); }
    const mine = new AbortController();
    controller = mine;
    return request(url, { ...options, signal: mine.signal }).finally(() => {
      if (controller === mine) { controller = null; }
    });
  };
}

/** Whether an error only says that a newer request replaced this one. */
export function isAbort(error) {
  return Boolean(error) && error.name === "AbortError";
}

/** Call watch(n) whenever the number of requests in flight changes (for a loading indicator). */
export function watchActivity(watch) {
  watchers.add(watch);
  watch(active);
  return () => watchers.delete(watch);
}

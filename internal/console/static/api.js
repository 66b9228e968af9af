// The console's only way to the server: the public /v1 API, with the token
// in the Authorization header. The token lives in this tab's
// sessionStorage: never in a URL, a cookie or a log.

const KEY = 'jetinfer.token';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

// ApiError is an error answer of the API ({"error":{code,message,...}}).
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.body = body;
    this.retryAfter = e.retry_after_s || 0;
  }
}

// call makes one API request and returns the raw Response, throwing
// ApiError for an error status. opts: json (a value to send as JSON), body
// and type (a raw body and its Content-Type), signal, tok (a token to use
// instead of the stored one).
export async function call(method, path, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.tok ?? token.get()) };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] = 'application/json';
  } else if (opts.type) {
    headers['Content-Type'] = opts.type;
  }
  const resp = await fetch(path, { method, headers, body, signal: opts.signal, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  if (!resp.ok && !opts.raw) {
    let data = null;
    try { data = await resp.json(); } catch { /* not JSON */ }
    throw new ApiError(resp.status, data);
  }
  return resp;
}

// api is call for JSON answers.
export async function api(method, path, opts = {}) {
  const resp = await call(method, path, opts);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

// me is the signed-in identity (GET /v1/me), cached for the tab.
let meCache = null;
export async function me(refresh = false) {
  if (!token.get()) return null;
  if (!meCache || refresh) meCache = await api('GET', '/v1/me');
  return meCache;
}
export function forget() { meCache = null; }
export function hasScope(m, s) { return !!m && m.scopes.includes(s); }

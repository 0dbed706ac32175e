/* API access: every path is written out in full, as a string literal starting with /api/v1/, and resolved
 * against the page, so the dashboard also works behind a reverse proxy that serves the API under a
 * prefix. tests/api/test_dashboard.py parses these literals (and the object literal of query keys that
 * follows one) and checks each against the app's OpenAPI schema: keep calls in that form.
 */

export const TOKEN_KEY = "scaleout.api.token";
export const MAX_LIMIT = 10000; // the API's largest page

export class AuthRequired extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function apiUrl(path, query) {
  // "../api/v1/..." from /dashboard/: the API next to the page, whatever prefix a proxy adds.
  const url = new URL(".." + path, document.baseURI);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url;
}

export function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    // FastAPI's 422: a list of {loc, msg}; name each field and what is wrong with it
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    return JSON.stringify(body.detail);
  } catch (_) {
    return response.statusText; // not JSON
  }
}

async function call(url, init) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: { Accept: "application/json", ...authHeaders(), ...(init.headers || {}) } });
  } catch (error) {
    throw new ApiError(0, `the API did not answer (${error.message})`);
  }
  if (response.status === 401) throw new AuthRequired();
  if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
  return response.json();
}

export function api(path, query) {
  return call(apiUrl(path, query), { method: "GET" });
}

export function apiPost(path, body) {
  const init = { method: "POST" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  return call(apiUrl(path), init);
}

export async function orNull(promise, status = 404) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ApiError && error.status === status) return null;
    throw error;
  }
}

export async function fetchAll(path, query) {
  // Validations of a long session can pass one page: read pages until the count is reached.
  const first = await api(path, { ...query, limit: MAX_LIMIT, skip: 0 });
  const items = first.result;
  while (items.length < first.count) {
    const page = await api(path, { ...query, limit: MAX_LIMIT, skip: items.length });
    if (!page.result.length) break;
    items.push(...page.result);
  }
  return items;
}

export async function clientNames(ids) {
  // client id -> name, for plots, validations and events: people gave names, ids are 32 hex digits.
  // Given ids (one page of events), only those clients are read, never a federation's thousands.
  if (ids) {
    const unique = [...new Set(ids.filter(Boolean))];
    const clients = await Promise.all(unique.map((id) => orNull(api(`/api/v1/clients/${encodeURIComponent(id)}`))));
    return new Map(clients.filter(Boolean).map((c) => [c.id, c.name || c.id]));
  }
  const clients = await fetchAll("/api/v1/clients/", { sort_key: "name" });
  return new Map(clients.map((c) => [c.id, c.name || c.id]));
}

// The HTTP API (docs/api.md): JSON GETs with the API's one error shape turned into ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.reason || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http';
    this.field = e.field || '';
    this.reason = e.reason || '';
  }

  get notFound() {
    return this.status === 404;
  }
}

/** The path segment for an id (lot ids contain ":"; all ids are encoded). */
export const seg = (id) => encodeURIComponent(String(id));

/** Builds "path?k=v&…" leaving out empty values. */
export function withQuery(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export async function get(path, { signal } = {}) {
  const res = await fetch(path, { signal, headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    if (res.ok) throw new ApiError(res.status, { error: { code: 'malformed', reason: 'the answer is not JSON' } });
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

/**
 * Every item of a paginated list (pages of 500), up to `max` items; returns {items, total}.
 * Lists are newest first, so a cut keeps the newest.
 */
export async function getAll(path, { signal, max = 5000, query = {} } = {}) {
  const items = [];
  let total = 0;
  for (let offset = 0; offset < max; offset += 500) {
    const page = await get(withQuery(path, { ...query, offset, limit: Math.min(500, max - offset) }), { signal });
    items.push(...page.items);
    total = page.total;
    if (items.length >= total || page.items.length === 0) break;
  }
  return { items, total };
}

export const isAbort = (e) => e && (e.name === 'AbortError');

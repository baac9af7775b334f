// The page's only way to the server: the public API under /v1 on the same
// origin, with the user's key from sessionStorage. Every call is recorded
// (method, path, status, duration, request and response bodies) and
// announced to listeners, which is what the logs pane shows. Errors become
// ApiError with OpenAI's message, so panes can print something readable.
const KEY_SLOT = 'assistd.playground.key';
// The page lives at ROOT/playground/, the API at ROOT/v1 (ROOT is "" unless a
// proxy mounts assistd below a prefix).
const BASE = new URL('../v1', window.location.href).pathname;

// include[] values for run steps: OpenAI's file_search result content, and
// assistd's own file_search queries (the queries each call searched).
export const INCLUDE_CONTENT = 'step_details.tool_calls[*].file_search.results[*].content';
export const INCLUDE_QUERIES = 'step_details.tool_calls[*].file_search.queries';
export const STEP_INCLUDE = [INCLUDE_CONTENT, INCLUDE_QUERIES];

export function apiBase() {
  return BASE;
}

export function getKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

export function setKey(k) {
  if (k === null) sessionStorage.removeItem(KEY_SLOT);
  else sessionStorage.setItem(KEY_SLOT, k);
}

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = body && typeof body === 'object' ? body.error : null;
    const msg = (e && (e.message || e.code)) || fallback || `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.type = e?.type ?? null;
    this.code = e?.code ?? null;
    this.param = e?.param ?? null;
  }
}

// "401 invalid_api_key: Incorrect API key provided." and the like.
export function errorText(err) {
  if (err instanceof ApiError) {
    const tag = [err.status || null, err.code || err.type || null].filter(Boolean).join(' ');
    const param = err.param ? ` (parameter: ${err.param})` : '';
    return `${tag ? `${tag}: ` : ''}${err.message}${param}`;
  }
  if (err && err.name === 'TypeError') return `Network error: ${err.message}. Is assistd running?`;
  return err?.message || String(err);
}

const listeners = new Set();
export function onLog(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
let logSeq = 0;
function emit(entry) {
  for (const fn of listeners) fn(entry);
}

function headers(extra = {}) {
  const h = { 'OpenAI-Beta': 'assistants=v2', ...extra };
  const k = getKey();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

function qs(query) {
  if (!query) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.append(k, v);
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

function describeForm(form) {
  const out = {};
  for (const [k, v] of form.entries()) out[k] = typeof v === 'string' ? v : `(file ${v.name}, ${v.size} bytes)`;
  return out;
}

// request('GET', '/assistants', { query, json, form, raw })
//   json: a body sent as JSON; form: a FormData; raw: return the Response
//   (for streams and file bytes) instead of parsed JSON.
export async function request(method, path, { query, json, form, raw = false, signal } = {}) {
  const url = BASE + path + qs(query);
  const entry = {
    id: ++logSeq, method, path: path + qs(query), status: null, ms: null,
    request: json ?? (form ? describeForm(form) : undefined), response: undefined, pending: true,
  };
  emit(entry);
  const t0 = performance.now();
  const init = { method, headers: headers(json !== undefined ? { 'Content-Type': 'application/json' } : {}), signal };
  if (json !== undefined) init.body = JSON.stringify(json);
  if (form) init.body = form;
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    Object.assign(entry, { status: 0, ms: performance.now() - t0, response: { error: String(e) }, pending: false });
    emit(entry);
    throw e;
  }
  entry.status = res.status;
  if (raw && res.ok) {
    entry.ms = performance.now() - t0;
    entry.pending = false;
    entry.response = { note: `${res.headers.get('content-type') || 'body'} (not shown)` };
    entry.res = res;
    emit(entry);
    return { res, entry, done: (resp) => { entry.ms = performance.now() - t0; if (resp !== undefined) entry.response = resp; emit(entry); } };
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  Object.assign(entry, { ms: performance.now() - t0, response: body, pending: false });
  emit(entry);
  if (!res.ok) throw new ApiError(res.status, body, typeof body === 'string' && body ? body.slice(0, 300) : `HTTP ${res.status} ${res.statusText}`);
  return body;
}

// File bytes as a blob: URL (the content route needs the key, so an <img
// src> cannot point at it directly). Cached per file id.
const blobs = new Map();
export function fileBlobUrl(fileId) {
  if (!blobs.has(fileId)) {
    blobs.set(fileId, (async () => {
      const { res } = await request('GET', `/files/${encodeURIComponent(fileId)}/content`, { raw: true });
      return URL.createObjectURL(await res.blob());
    })().catch((e) => { blobs.delete(fileId); throw e; }));
  }
  return blobs.get(fileId);
}

const fileMeta = new Map();
export function fileInfo(fileId) {
  if (!fileMeta.has(fileId)) {
    fileMeta.set(fileId, request('GET', `/files/${encodeURIComponent(fileId)}`).catch((e) => {
      fileMeta.delete(fileId);
      throw e;
    }));
  }
  return fileMeta.get(fileId);
}

export async function uploadFile(file, purpose = 'assistants') {
  const form = new FormData();
  form.append('purpose', purpose);
  form.append('file', file, file.name);
  const f = await request('POST', '/files', { form });
  fileMeta.set(f.id, Promise.resolve(f));
  return f;
}

// Test fixture (not a product feature): a scripted upstream model speaking
// the OpenAI chat-completions protocol, for assistd runs to call.
//
//   const up = await startUpstream({ dialect: 'openai', apiKey: 'up-key' });
//   up.script({ text: 'Hello' }, { tool_calls: [{ name: 'f', arguments: '{}' }] });
//   ... assistd POSTs up.url + '/chat/completions' ...
//   up.requests[0].body.messages; await up.close();
//
// POST .../embeddings answers deterministic vectors (embedText below: a
// hashed bag of words, so texts sharing words are close); those requests go
// to up.embeddingRequests, not up.requests. up.failEmbeddings(n) makes the
// next n embedding requests answer 500. up.holdEmbeddings(promise) makes
// embedding requests wait for it before answering (null: no more waiting).
//
// Each POST .../chat/completions consumes the next scripted step; with none
// left it answers 500. Every request received (also the refused ones) is
// logged in up.requests -- except GET .../models, logged in up.modelRequests -- as { method, path, query, headers, body, aborted }
// (+ deployment for azure). aborted becomes true when the client hung up
// before the response was complete.
//
// Steps (a bare string is short for { text }):
//   { text, chunks?, usage?, finish_reason? }
//   { tool_calls: [{ id?, name, arguments, chunks? }], text? }
//   { error: { status, message, type?, code?, param? }, headers? }
//   { streamError: { message, type?, code? }, text? }   200, then an error event
//   { raw: async (req, res, entry) => {} }
// Modifiers on any step: wait (promise to await before answering), delayMs
// (pause before each SSE event after the first), stallAfter: N / dropAfter: N
// (after N content or tool-argument pieces, go silent with the connection
// open / destroy the socket; the role and prompt-filter preamble is always
// sent, the finish chunk never).
//
// Dialects (what differs on the wire):
//   openai  /v1, Bearer auth, tool-call arguments streamed in pieces (parallel
//           calls interleaved by index), usage:null on every chunk when
//           include_usage, service_tier, system_fingerprint, obfuscation.
//   azure   /openai/deployments/{dep}/chat/completions?api-version=..., api-key
//           header, a first chunk with choices:[] and prompt_filter_results,
//           content_filter_results on every choice, model = the deployment's
//           model (opts.deployments {dep: model}; unknown dep -> 404 when given).
//   vllm    /v1, each tool call arrives whole in one delta, no fingerprint.
//   ollama  /v1, tool calls whole, finish_reason 'stop' even for tool calls,
//           role in every delta, no logprobs, no system_fingerprint,
//           ids like chatcmpl-123.
import http from 'node:http';

const DIALECTS = ['openai', 'azure', 'vllm', 'ollama'];
const FINGERPRINT = 'fp_upstream01';
const AZURE_DEFAULT_MODEL = 'gpt-4o-2024-08-06';
const SAFE = { filtered: false, severity: 'safe' };
const CONTENT_FILTER = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const PROMPT_FILTER = { ...CONTENT_FILTER, jailbreak: { filtered: false, detected: false } };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const EMBED_DIMS = 64;
// The fixture's embedding of a text: each lower-cased word (letters and
// digits) adds 1 to the dimension its FNV-1a hash selects.
export function embedText(text, dims = EMBED_DIMS) {
  const v = new Array(dims).fill(0);
  for (const w of String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    let h = 2166136261;
    for (const ch of w) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    v[h % dims] += 1;
  }
  return v;
}

// Splits on code points, never inside a surrogate pair.
export function splitTokens(s, size = 4) {
  const cps = Array.from(s);
  const out = [];
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
  return out;
}

function oaiError(message, type = 'invalid_request_error', param = null, code = null) {
  return { error: { message, type, param, code } };
}

function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export async function startUpstream({ dialect = 'openai', apiKey, deployments } = {}) {
  if (!DIALECTS.includes(dialect)) throw new Error(`unknown dialect ${dialect}`);
  const steps = [];
  const requests = [];
  const modelRequests = [];
  const embeddingRequests = [];
  let embedFailures = 0;
  let embedHold = null;
  const waiters = new Set();
  let modelList = [];
  let seq = 0;
  let closing = false;

  const notify = () => {
    for (const w of waiters) if (w.test()) { waiters.delete(w); w.resolve(w.value()); }
  };
  const until = (test, value) => (test() ? Promise.resolve(value())
    : new Promise((resolve) => waiters.add({ test, value, resolve })));

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, oaiError(`upstream fixture: ${e.message}`, 'server_error'));
      else res.destroy();
    });
  });

  async function handle(req, res) {
    const u = new URL(req.url, 'http://x');
    const parts = [];
    for await (const c of req) parts.push(c);
    const text = Buffer.concat(parts).toString('utf8');
    let body;
    let badJson = false;
    if (text) { try { body = JSON.parse(text); } catch { body = text; badJson = true; } }
    const entry = {
      method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams),
      headers: req.headers, body, aborted: false,
    };
    requests.push(entry);
    let selfClosed = false;
    res.on('close', () => {
      if (!res.writableFinished && !selfClosed && !closing) { entry.aborted = true; notify(); }
    });
    notify();

    // Routing.
    let route;
    let model;
    if (dialect === 'azure') {
      const m = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(u.pathname);
      if (m && req.method === 'POST') {
        route = 'chat';
        entry.deployment = decodeURIComponent(m[1]);
      } else if (u.pathname === '/openai/models' && req.method === 'GET') route = 'models';
      else if (/^\/openai\/deployments\/[^/]+\/embeddings$/.test(u.pathname) && req.method === 'POST') route = 'embeddings';
    } else if (u.pathname === '/v1/chat/completions' && req.method === 'POST') route = 'chat';
    else if (u.pathname === '/v1/models' && req.method === 'GET') route = 'models';
    else if (u.pathname === '/v1/embeddings' && req.method === 'POST') route = 'embeddings';
    if (!route) return sendJson(res, 404, oaiError(`Invalid URL (${req.method} ${u.pathname})`));

    // Dialect-level checks, before any step is consumed.
    if (dialect === 'azure') {
      if (!u.searchParams.get('api-version')) {
        return sendJson(res, 400, { error: { code: 'MissingApiVersionParameter', message: 'The api-version query parameter (?api-version=) is required for all requests.' } });
      }
      if (apiKey !== undefined && req.headers['api-key'] !== apiKey) {
        return sendJson(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
      }
      if (route === 'chat') {
        if (deployments && !(entry.deployment in deployments)) {
          return sendJson(res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } });
        }
        model = deployments?.[entry.deployment] ?? AZURE_DEFAULT_MODEL;
      }
    } else if (apiKey !== undefined) {
      const auth = req.headers.authorization;
      if (!auth) return sendJson(res, 401, oaiError("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 'invalid_request_error', null, null));
      if (auth !== `Bearer ${apiKey}`) return sendJson(res, 401, oaiError('Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key'));
    }

    if (route === 'embeddings') {
      requests.splice(requests.indexOf(entry), 1);
      embeddingRequests.push(entry);
      notify();
      if (embedHold) await embedHold;
      if (embedFailures > 0) {
        embedFailures--;
        return sendJson(res, 500, oaiError('upstream fixture: scripted embeddings failure', 'server_error'));
      }
      const input = body?.input;
      const texts = typeof input === 'string' ? [input] : input;
      if (!Array.isArray(texts) || !texts.length || texts.some((t) => typeof t !== 'string')) {
        return sendJson(res, 400, oaiError("Invalid 'input': expected a string or an array of strings.", 'invalid_request_error', 'input'));
      }
      const dims = body.dimensions ?? EMBED_DIMS;
      return sendJson(res, 200, {
        object: 'list',
        data: texts.map((t, index) => ({ object: 'embedding', index, embedding: embedText(t, dims) })),
        model: body.model ?? 'fixture-embedding',
        usage: { prompt_tokens: texts.length, total_tokens: texts.length },
      });
    }

    if (route === 'models') {
      // Model-list fetches (assistd refreshes them in the background) are
      // kept apart, so that up.requests holds exactly the model calls.
      requests.splice(requests.indexOf(entry), 1);
      modelRequests.push(entry);
      return sendJson(res, 200, { object: 'list', data: modelList });
    }

    // Request validation, as the real servers do it.
    if (badJson || !body || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, oaiError('We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.'));
    }
    if (dialect !== 'azure') {
      if (typeof body.model !== 'string' || !body.model) return sendJson(res, 400, oaiError('you must provide a model parameter'));
      model = body.model;
    }
    if (!Array.isArray(body.messages)) {
      return sendJson(res, 400, oaiError("Missing required parameter: 'messages'.", 'invalid_request_error', 'messages', 'missing_required_parameter'));
    }
    if (dialect !== 'ollama' && body.stream_options != null && !body.stream) {
      return sendJson(res, 400, oaiError("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'invalid_request_error', 'stream_options'));
    }

    const step = steps.shift();
    if (!step) {
      return sendJson(res, 500, oaiError(`upstream fixture: no scripted step for request #${requests.length - 1}`, 'server_error'));
    }
    if (step.wait) await step.wait;
    if (res.destroyed) return;
    if (step.raw) return step.raw(req, res, entry);
    if (step.error) {
      const { status = 500, message = 'error', type = 'server_error', param = null, code = null, ...extra } = step.error;
      return sendJson(res, status, { error: { message, type, param, code, ...extra } }, step.headers);
    }

    const n = ++seq;
    const ctx = {
      id: dialect === 'ollama' ? `chatcmpl-${100 + (n % 900)}` : `chatcmpl-up${String(n).padStart(6, '0')}`,
      created: Math.floor(Date.now() / 1000),
      model,
      callId: (i) => `call_up${n}_${i}`,
    };
    const resp = build(step, ctx);

    let flushed = Promise.resolve();
    const drop = async () => { selfClosed = true; await flushed; res.destroy(); };
    if (!body.stream) {
      if (step.stallAfter !== undefined) return;  // never answer
      if (step.dropAfter !== undefined) return drop();
      if (step.streamError) return sendJson(res, 500, oaiError(step.streamError.message, step.streamError.type ?? 'server_error', null, step.streamError.code ?? null));
      return sendJson(res, 200, completion(resp, ctx));
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const events = chunks(resp, ctx, {
      includeUsage, obfuscation: body.stream_options?.include_obfuscation !== false,
    });
    if (step.streamError) {
      const { message = 'error', type = 'server_error', param = null, code = null } = step.streamError;
      const finish = events.findIndex((e) => e.finish);
      events.splice(finish, events.length - finish, { data: { error: { message, type, param, code } }, end: true });
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    const limit = step.stallAfter ?? step.dropAfter;
    let pieces = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (i > 0 && step.delayMs) await sleep(step.delayMs);
      if (res.destroyed) return;
      if (!e.pre && limit !== undefined && pieces >= limit) {
        if (step.dropAfter !== undefined) await drop();
        return;  // stall: keep the connection open, send nothing more
      }
      // The callback fires once the bytes reach the socket: a drop waits for it.
      flushed = new Promise((r) => res.write(`data: ${JSON.stringify(e.data)}\n\n`, r));
      if (e.piece) pieces++;
      if (e.end) return void res.end();
    }
    res.end('data: [DONE]\n\n');
  }

  // Normalises a step into { text, pieces, calls, finish, usage }.
  function build(step, ctx) {
    const s = typeof step === 'string' ? { text: step } : step;
    const text = s.text ?? null;
    const pieces = text === null ? [] : (s.chunks ?? splitTokens(text));
    const calls = (s.tool_calls ?? []).map((c, i) => ({
      id: c.id ?? ctx.callId(i), name: c.name, arguments: c.arguments ?? '',
      pieces: c.chunks ?? splitTokens(c.arguments ?? ''),
    }));
    const finish = s.finish_reason ?? (calls.length && dialect !== 'ollama' ? 'tool_calls' : 'stop');
    const completionTokens = s.usage?.completion_tokens
      ?? pieces.length + calls.reduce((a, c) => a + c.pieces.length, 0);
    const promptTokens = s.usage?.prompt_tokens ?? 10;
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    if (dialect === 'openai' || dialect === 'azure') {
      usage.prompt_tokens_details = { cached_tokens: 0, audio_tokens: 0 };
      usage.completion_tokens_details = { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 };
    }
    Object.assign(usage, s.usage);
    return { text, pieces, calls, finish, usage };
  }

  function head(ctx) {
    const h = { id: ctx.id, object: 'chat.completion.chunk', created: ctx.created, model: ctx.model };
    if (dialect === 'openai') h.service_tier = 'default';
    if (dialect === 'openai' || dialect === 'azure') h.system_fingerprint = FINGERPRINT;
    return h;
  }

  function choice(delta, finishReason = null) {
    if (dialect === 'ollama') return { index: 0, delta: { role: 'assistant', content: '', ...delta }, finish_reason: finishReason };
    const c = { index: 0, delta, logprobs: null, finish_reason: finishReason };
    if (dialect === 'azure') c.content_filter_results = CONTENT_FILTER;
    return c;
  }

  // The SSE events of one streamed response: [{ data, pre?, piece?, finish? }].
  function chunks(r, ctx, { includeUsage, obfuscation }) {
    const events = [];
    const push = (choices, flags = {}, extra = {}) => {
      const data = { ...head(ctx), choices, ...extra };
      if (dialect === 'openai' && includeUsage && !('usage' in data)) data.usage = null;
      if (dialect === 'openai' && obfuscation) data.obfuscation = 'x'.repeat(1 + (events.length % 7));
      events.push({ data, ...flags });
    };
    let headersSent = 0;  // tool-call headers already in the role chunk
    const tool = (c, i, fn) => ({ index: i, id: c.id, type: 'function', function: fn });
    if (dialect === 'azure') {
      events.push({ pre: true, data: { choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: PROMPT_FILTER }] } });
    }
    // Role chunk (not for ollama, where every delta carries the role).
    if (dialect !== 'ollama') {
      const delta = { role: 'assistant', content: r.text === null && r.calls.length ? null : '' };
      if (dialect !== 'vllm') delta.refusal = null;
      if (dialect !== 'vllm' && r.text === null && r.calls.length) {
        delta.tool_calls = [tool(r.calls[0], 0, { name: r.calls[0].name, arguments: '' })];
        headersSent = 1;
      }
      push([choice(delta)], { pre: true });
    }
    for (const p of r.pieces) push([choice({ content: p })], { piece: true });
    if (dialect === 'openai' || dialect === 'azure') {
      // Headers first (id, type, name, arguments ""), then argument pieces
      // round-robin across calls.
      r.calls.forEach((c, i) => {
        if (i >= headersSent) push([choice({ tool_calls: [tool(c, i, { name: c.name, arguments: '' })] })]);
      });
      const max = Math.max(0, ...r.calls.map((c) => c.pieces.length));
      for (let k = 0; k < max; k++) {
        r.calls.forEach((c, i) => {
          if (k < c.pieces.length) push([choice({ tool_calls: [{ index: i, function: { arguments: c.pieces[k] } }] })], { piece: true });
        });
      }
    } else {
      r.calls.forEach((c, i) => {
        push([choice({ tool_calls: [tool(c, i, { name: c.name, arguments: c.arguments })] })], { piece: true });
      });
    }
    push([choice({}, r.finish)], { finish: true });
    if (includeUsage) push([], {}, { usage: r.usage });
    return events;
  }

  function completion(r, ctx) {
    const message = { role: 'assistant', content: r.text ?? (dialect === 'ollama' ? '' : null) };
    if (dialect === 'openai' || dialect === 'azure') { message.refusal = null; message.annotations = []; }
    if (r.calls.length) {
      message.tool_calls = r.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
    }
    const c = { index: 0, message, finish_reason: r.finish };
    if (dialect !== 'ollama') c.logprobs = null;
    if (dialect === 'azure') c.content_filter_results = CONTENT_FILTER;
    const out = { id: ctx.id, object: 'chat.completion', created: ctx.created, model: ctx.model, choices: [c], usage: r.usage };
    if (dialect === 'openai') out.service_tier = 'default';
    if (dialect === 'openai' || dialect === 'azure') out.system_fingerprint = FINGERPRINT;
    if (dialect === 'azure') out.prompt_filter_results = [{ prompt_index: 0, content_filter_results: PROMPT_FILTER }];
    return out;
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const base = `http://127.0.0.1:${port}`;

  return {
    dialect, port,
    url: dialect === 'azure' ? base : `${base}/v1`,
    requests,
    modelRequests,
    embeddingRequests,
    failEmbeddings(n = 1) { embedFailures = n; return this; },
    holdEmbeddings(promise) { embedHold = promise; return this; },
    waitForEmbedding: (i) => until(() => embeddingRequests.length > i, () => embeddingRequests[i]),
    script(...more) { steps.push(...more.map((s) => (typeof s === 'string' ? { text: s } : s))); return this; },
    get pending() { return steps.length; },
    models(list) {
      modelList = list.map((m) => (typeof m === 'string'
        ? { id: m, object: 'model', created: 1700000000, owned_by: 'system' } : m));
      return this;
    },
    waitForRequest: (i) => until(() => requests.length > i, () => requests[i]),
    waitForAbort: (i) => until(() => requests[i]?.aborted === true, () => requests[i]),
    async close() {
      closing = true;
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

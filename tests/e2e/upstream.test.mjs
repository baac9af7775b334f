// The scripted upstream model (lib/upstream.mjs) checked against the
// official openai SDK: if the SDK can consume it, so must assistd.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { AzureOpenAI } from 'openai';
import { startUpstream } from './lib/upstream.mjs';

const KEY = 'up-key';
const API_VERSION = '2024-10-21';
const MSGS = [{ role: 'user', content: 'hi' }];
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const TWO_CALLS = [
  { id: 'call_a', name: 'get_weather', arguments: '{"city":"Paris"}' },
  { id: 'call_b', name: 'get_weather', arguments: '{"city":"Tokyo"}' },
];

function client(up, extra = {}) {
  if (up.dialect === 'azure') {
    return new AzureOpenAI({ apiKey: KEY, endpoint: up.url, apiVersion: API_VERSION, deployment: 'my-dep', maxRetries: 0, ...extra });
  }
  return new OpenAI({ apiKey: KEY, baseURL: up.url, maxRetries: 0, ...extra });
}

async function withUpstream(opts, fn) {
  const up = await startUpstream({ apiKey: KEY, ...opts });
  try { await fn(up, client(up)); } finally { await up.close(); }
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

const text = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
const choiceChunks = (chunks) => chunks.filter((c) => c.choices.length);

// Raw POST for what the SDK hides (exact bytes, headers).
async function post(up, body, path = '/chat/completions', headers = { Authorization: `Bearer ${KEY}` }) {
  const res = await fetch(up.url + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

test('openai: streamed text, chunk fields, usage chunk and wire format', () => withUpstream({}, async (up, c) => {
  up.script({ text: 'Hello world', chunks: ['Hel', 'lo wor', 'ld'] });
  const chunks = await collect(await c.chat.completions.create({
    model: 'gpt-4o-mini', messages: MSGS, stream: true, stream_options: { include_usage: true },
  }));
  assert.equal(text(chunks), 'Hello world');
  assert.equal(new Set(chunks.map((x) => x.id)).size, 1);
  for (const x of chunks) {
    assert.equal(x.object, 'chat.completion.chunk');
    assert.equal(x.model, 'gpt-4o-mini');
    assert.equal(typeof x.created, 'number');
    assert.match(x.system_fingerprint, /^fp_/);
  }
  const cc = choiceChunks(chunks);
  assert.deepEqual(cc[0].choices[0], { index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null });
  assert.deepEqual(cc.map((x) => x.choices[0].finish_reason), [null, null, null, null, 'stop']);
  assert.ok(cc.every((x) => x.usage === null), 'usage: null on every choice chunk with include_usage');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.prompt_tokens, 10);
  assert.equal(last.usage.completion_tokens, 3);
  assert.equal(last.usage.total_tokens, 13);

  // Default split ~4 chars; no usage chunk without include_usage; exact SSE framing.
  up.script({ text: 'abcdefghij' });
  const r = await post(up, { model: 'm', messages: MSGS, stream: true });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  assert.ok(r.text.endsWith('data: [DONE]\n\n'));
  const events = r.text.split('\n\n').filter(Boolean);
  assert.ok(events.every((e) => e.startsWith('data: ') && !e.includes('\n')));
  const datas = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.equal(events[0], `data: ${JSON.stringify(datas[0])}`, 'compact JSON');
  assert.deepEqual(datas.map((d) => d.choices[0].delta.content), ['', 'abcd', 'efgh', 'ij', undefined]);
  assert.ok(datas.every((d) => !('usage' in d)));
}));

test('openai: non-streaming completion, and the requests log', () => withUpstream({}, async (up, c) => {
  up.script({ text: 'Hi there', usage: { prompt_tokens: 7, completion_tokens: 2 } });
  const r = await c.chat.completions.create({
    model: 'gpt-4o', messages: MSGS, tools: TOOLS, tool_choice: 'auto', temperature: 0.2, max_tokens: 50,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'gpt-4o');
  assert.deepEqual(r.choices[0].message, { role: 'assistant', content: 'Hi there', refusal: null, annotations: [] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.total_tokens, 9);

  assert.equal(up.requests.length, 1);
  const q = up.requests[0];
  assert.equal(q.method, 'POST');
  assert.equal(q.path, '/v1/chat/completions');
  assert.deepEqual(q.query, {});
  assert.equal(q.headers.authorization, `Bearer ${KEY}`);
  assert.deepEqual(q.body, { model: 'gpt-4o', messages: MSGS, tools: TOOLS, tool_choice: 'auto', temperature: 0.2, max_tokens: 50 });
  assert.equal(q.aborted, false);
  assert.equal(up.pending, 0);
}));

test('openai: parallel tool calls stream interleaved by index and reassemble', () => withUpstream({}, async (up, c) => {
  up.script({ tool_calls: TWO_CALLS });
  const stream = c.chat.completions.stream({ model: 'gpt-4o', messages: MSGS, tools: TOOLS, stream_options: { include_usage: true } });
  const chunks = [];
  stream.on('chunk', (x) => chunks.push(x));
  const final = await stream.finalChatCompletion();
  const m = final.choices[0].message;
  assert.equal(m.content, null);
  assert.deepEqual(m.tool_calls.map(({ id, type, function: f }) => ({ id, type, name: f.name, arguments: f.arguments })), [
    { id: 'call_a', type: 'function', name: 'get_weather', arguments: '{"city":"Paris"}' },
    { id: 'call_b', type: 'function', name: 'get_weather', arguments: '{"city":"Tokyo"}' },
  ]);
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.usage.completion_tokens, 8);  // 4 argument pieces per call

  // Wire order: first delta per index has id/type/name and arguments "", then pieces.
  const tc = chunks.flatMap((x) => x.choices[0]?.delta?.tool_calls ?? []);
  assert.deepEqual(tc[0], { index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } });
  assert.deepEqual(tc[1], { index: 1, id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '' } });
  assert.deepEqual(tc.slice(2, 6).map((t) => [t.index, t.function.arguments, 'id' in t]),
    [[0, '{"ci', false], [1, '{"ci', false], [0, 'ty":', false], [1, 'ty":', false]]);
  assert.equal(choiceChunks(chunks)[0].choices[0].delta.role, 'assistant');

  // Text then a call, non-streaming.
  up.script({ text: 'Let me check.', tool_calls: [{ name: 'get_weather', arguments: '{}' }] });
  const r = await c.chat.completions.create({ model: 'gpt-4o', messages: MSGS, tools: TOOLS });
  assert.equal(r.choices[0].message.content, 'Let me check.');
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.match(r.choices[0].message.tool_calls[0].id, /^call_/);
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
}));

test('openai: HTTP errors, auth, validation and unscripted requests', () => withUpstream({}, async (up, c) => {
  up.script({ error: { status: 429, message: 'Rate limit', type: 'rate_limit_error', code: 'rate_limit_exceeded' }, headers: { 'retry-after': '1' } });
  await assert.rejects(c.chat.completions.create({ model: 'm', messages: MSGS }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.equal(e.type, 'rate_limit_error');
    assert.equal(e.error.message, 'Rate limit');
    assert.equal(e.headers.get('retry-after'), '1');
    return true;
  });

  await assert.rejects(client(up, { apiKey: 'wrong' }).chat.completions.create({ model: 'm', messages: MSGS }),
    (e) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
  const noKey = await post(up, { model: 'm', messages: MSGS }, '/chat/completions', {});
  assert.equal(noKey.status, 401);

  await assert.rejects(c.chat.completions.create({ model: 'm', messages: MSGS, stream_options: { include_usage: true } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'stream_options');
  await assert.rejects(c.chat.completions.create({ model: 'm' }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'missing_required_parameter');

  await assert.rejects(c.chat.completions.create({ model: 'm', messages: MSGS }), (e) => {
    assert.ok(e instanceof OpenAI.InternalServerError);
    assert.equal(e.status, 500);
    assert.match(e.message, /no scripted step/);
    return true;
  });
  assert.equal(up.requests.length, 6, 'refused requests are logged too');
}));

test('openai: error event mid-stream and a dropped stream', () => withUpstream({}, async (up, c) => {
  up.script({ text: 'partial', streamError: { message: 'boom' } });
  const got = [];
  await assert.rejects(async () => {
    for await (const x of await c.chat.completions.create({ model: 'm', messages: MSGS, stream: true })) got.push(x);
  }, (e) => e instanceof OpenAI.APIError && /boom/.test(e.message));
  assert.equal(text(got), 'partial');

  up.script({ text: 'one two three', chunks: ['one', ' two', ' three'], dropAfter: 2 });
  const got2 = [];
  await assert.rejects(async () => {
    for await (const x of await c.chat.completions.create({ model: 'm', messages: MSGS, stream: true })) got2.push(x);
  });
  assert.equal(text(got2), 'one two');
  assert.equal(up.requests[1].aborted, false, 'a drop by the fixture is not a client abort');
}));

test('abort: in-flight (wait) and stalled requests are seen as aborted', () => withUpstream({}, async (up, c) => {
  let release;
  up.script({ text: 'late', wait: new Promise((r) => { release = r; }) });
  const ac = new AbortController();
  const p = c.chat.completions.create({ model: 'm', messages: MSGS, stream: true }, { signal: ac.signal });
  await up.waitForRequest(0);
  assert.equal(up.requests[0].aborted, false);
  ac.abort();
  await assert.rejects(p, (e) => e instanceof OpenAI.APIUserAbortError);
  const entry = await up.waitForAbort(0);
  assert.equal(entry.aborted, true);
  release();

  up.script({ text: 'abcdefgh', stallAfter: 1 });
  const ac2 = new AbortController();
  const stream = await c.chat.completions.create({ model: 'm', messages: MSGS, stream: true }, { signal: ac2.signal });
  const got = [];
  // The SDK ends the iteration quietly when its own signal aborts it.
  for await (const x of stream) {
    got.push(x);
    if (text(got) === 'abcd') setImmediate(() => ac2.abort());
  }
  assert.equal(text(got), 'abcd');
  assert.equal((await up.waitForAbort(1)).aborted, true);

  // A completed stream is not aborted.
  up.script({ text: 'ok', delayMs: 5 });
  await collect(await c.chat.completions.create({ model: 'm', messages: MSGS, stream: true }));
  assert.equal(up.requests[2].aborted, false);
}));

test('raw escape hatch, string steps and /models', () => withUpstream({}, async (up, c) => {
  up.script({ raw: (req, res) => { res.writeHead(503, { 'Content-Type': 'application/json' }); res.end('{"error":{"message":"down","type":"server_error","param":null,"code":null}}'); } }, 'short');
  await assert.rejects(c.chat.completions.create({ model: 'm', messages: MSGS }), (e) => e.status === 503);
  const r = await c.chat.completions.create({ model: 'm', messages: MSGS });
  assert.equal(r.choices[0].message.content, 'short');

  up.models(['gpt-4o', { id: 'custom', object: 'model', created: 1, owned_by: 'me' }]);
  const list = [];
  for await (const m of c.models.list()) list.push(m);
  assert.deepEqual(list.map((m) => [m.id, m.object]), [['gpt-4o', 'model'], ['custom', 'model']]);
  assert.equal(up.modelRequests.at(-1).path, '/v1/models');
}));

test('azure: deployment route, api-key, prompt and content filter results', () => withUpstream({ dialect: 'azure', deployments: { 'my-dep': 'gpt-4o-2024-11-20' } }, async (up, c) => {
  assert.equal(up.url, `http://127.0.0.1:${up.port}`);
  up.script({ text: 'Hello from Azure' });
  const chunks = await collect(await c.chat.completions.create({
    model: 'ignored', messages: MSGS, stream: true, stream_options: { include_usage: true },
  }));
  assert.deepEqual(chunks[0].choices, []);
  assert.equal(chunks[0].prompt_filter_results[0].content_filter_results.hate.filtered, false);
  assert.equal(text(chunks), 'Hello from Azure');
  const cc = choiceChunks(chunks);
  for (const x of cc) {
    assert.equal(x.model, 'gpt-4o-2024-11-20');
    for (const cat of ['hate', 'self_harm', 'sexual', 'violence']) {
      assert.deepEqual(x.choices[0].content_filter_results[cat], { filtered: false, severity: 'safe' });
    }
  }
  assert.equal(cc.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1).usage.completion_tokens, 4);
  const q = up.requests[0];
  assert.equal(q.path, '/openai/deployments/my-dep/chat/completions');
  assert.equal(q.deployment, 'my-dep');
  assert.deepEqual(q.query, { 'api-version': API_VERSION });
  assert.equal(q.headers['api-key'], KEY);
  assert.equal(q.headers.authorization, undefined);

  // Tool calls through the stream helper; non-streaming body.
  up.script({ tool_calls: TWO_CALLS }, { text: 'plain' });
  const final = await c.chat.completions.stream({ model: 'x', messages: MSGS, tools: TOOLS }).finalChatCompletion();
  assert.deepEqual(final.choices[0].message.tool_calls.map((t) => t.function.arguments), ['{"city":"Paris"}', '{"city":"Tokyo"}']);
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  const r = await c.chat.completions.create({ model: 'x', messages: MSGS });
  assert.equal(r.choices[0].message.content, 'plain');
  assert.equal(r.model, 'gpt-4o-2024-11-20');
  assert.ok(r.prompt_filter_results && r.choices[0].content_filter_results);

  // Refusals: no api-version, wrong key, unknown deployment.
  const noVer = await post(up, { messages: MSGS }, '/openai/deployments/my-dep/chat/completions', { 'api-key': KEY });
  assert.equal(noVer.status, 400);
  await assert.rejects(client(up, { apiKey: 'wrong' }).chat.completions.create({ model: 'x', messages: MSGS }),
    (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(client(up, { deployment: 'nope' }).chat.completions.create({ model: 'x', messages: MSGS }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'DeploymentNotFound');
  assert.equal(up.pending, 0);
}));

test('vllm: tool calls arrive whole, usage only with include_usage', () => withUpstream({ dialect: 'vllm' }, async (up, c) => {
  up.script({ text: 'Sure.', tool_calls: TWO_CALLS });
  const stream = c.chat.completions.stream({ model: 'Qwen/Qwen2.5-7B', messages: MSGS, tools: TOOLS });
  const chunks = [];
  stream.on('chunk', (x) => chunks.push(x));
  const final = await stream.finalChatCompletion();
  const tc = chunks.flatMap((x) => x.choices[0]?.delta?.tool_calls ?? []);
  assert.deepEqual(tc, [
    { index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    { index: 1, id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Tokyo"}' } },
  ]);
  assert.equal(final.choices[0].message.content, 'Sure.');
  assert.equal(final.choices[0].message.tool_calls.length, 2);
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.model, 'Qwen/Qwen2.5-7B');
  assert.ok(chunks.every((x) => !('usage' in x) && !('system_fingerprint' in x)));

  up.script({ text: 'abc' });
  const withUsage = await collect(await c.chat.completions.create({ model: 'q', messages: MSGS, stream: true, stream_options: { include_usage: true } }));
  assert.deepEqual(withUsage.at(-1).usage, { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 });
  assert.ok(choiceChunks(withUsage).every((x) => !('usage' in x)));
}));

test('ollama: whole tool calls with finish_reason stop, no fingerprint', () => withUpstream({ dialect: 'ollama' }, async (up, c) => {
  up.script({ tool_calls: [TWO_CALLS[0]] }, { text: 'Bonjour' });
  const stream = c.chat.completions.stream({ model: 'llama3.1', messages: MSGS, tools: TOOLS });
  const chunks = [];
  stream.on('chunk', (x) => chunks.push(x));
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'stop');
  assert.deepEqual(final.choices[0].message.tool_calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
  for (const x of chunks) {
    assert.match(x.id, /^chatcmpl-\d+$/);
    assert.ok(!('system_fingerprint' in x));
    assert.equal(x.choices[0].delta.role, 'assistant');
    assert.ok(!('logprobs' in x.choices[0]));
  }
  const r = await c.chat.completions.create({ model: 'llama3.1', messages: MSGS });
  assert.equal(r.choices[0].message.content, 'Bonjour');
  assert.ok(!('system_fingerprint' in r));
}));

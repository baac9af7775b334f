// Threads: create (empty, with metadata/tool_resources, with initial
// messages), retrieve, modify, delete, through the OpenAI and Azure clients,
// with raw checks of exact JSON and OpenAI's error bodies.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openai, azure, raw, errorOf } from './lib/server.mjs';

let s;
before(async () => { s = await startServer(); });
after(async () => { await s.stop(); });

const now = () => Math.floor(Date.now() / 1000);

test('empty thread: exact JSON, retrieve returns the same object (OpenAI and Azure)', async () => {
  const r = await raw(s, 'POST', '/v1/threads', { body: '' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(Object.keys(r.json), ['id', 'object', 'created_at', 'metadata', 'tool_resources']);
  assert.match(r.json.id, /^thread_[A-Za-z0-9]{24}$/);
  assert.equal(r.json.object, 'thread');
  assert.ok(Math.abs(r.json.created_at - now()) <= 5);
  assert.deepEqual(r.json.metadata, {});
  assert.deepEqual(r.json.tool_resources, {});

  const viaSdk = await openai(s).beta.threads.retrieve(r.json.id);
  assert.deepEqual(viaSdk, r.json);
  const viaAzure = await azure(s).beta.threads.retrieve(r.json.id);
  assert.deepEqual(viaAzure, r.json);

  const t2 = await azure(s).beta.threads.create();
  assert.match(t2.id, /^thread_/);
  assert.notEqual(t2.id, r.json.id);
  assert.deepEqual(await openai(s).beta.threads.retrieve(t2.id), t2);
});

test('create with metadata and tool_resources', async () => {
  const t = await openai(s).beta.threads.create({
    metadata: { user: 'abc123', modified: 'false' },
    tool_resources: { code_interpreter: { file_ids: [] } },
  });
  assert.deepEqual(t.metadata, { user: 'abc123', modified: 'false' });
  assert.deepEqual(t.tool_resources, { code_interpreter: { file_ids: [] } });
  const r = await raw(s, 'GET', `/v1/threads/${t.id}`);
  assert.deepEqual(r.json, t);

  const n = await raw(s, 'POST', '/v1/threads', { body: { metadata: null, tool_resources: null } });
  assert.equal(n.status, 200);
  assert.deepEqual(n.json.metadata, {});
  assert.deepEqual(n.json.tool_resources, {});
});

test('tool_resources referencing unknown files or vector stores is rejected', async () => {
  const r = await raw(s, 'POST', '/v1/threads', {
    body: { tool_resources: { code_interpreter: { file_ids: ['file-nope'] } } },
  });
  assert.equal(r.status, 400);
  const e = errorOf(r);
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(e.param, 'tool_resources.code_interpreter.file_ids[0]');
  assert.match(e.message, /file-nope/);

  const v = await raw(s, 'POST', '/v1/threads', {
    body: { tool_resources: { file_search: { vector_store_ids: ['vs_nope'] } } },
  });
  assert.equal(v.status, 400);
  assert.equal(errorOf(v).param, 'tool_resources.file_search.vector_store_ids[0]');
});

test('create with messages returns the thread; messages keep order and the thread time', async () => {
  const client = openai(s);
  const t = await client.beta.threads.create({
    messages: [
      { role: 'user', content: 'Hello, what is AI?' },
      { role: 'assistant', content: [{ type: 'text', text: 'A field of study.' }], metadata: { k: 'v' } },
      { role: 'user', content: 'How does AI work? Explain it in simple terms.' },
    ],
  });
  assert.deepEqual(Object.keys(t), ['id', 'object', 'created_at', 'metadata', 'tool_resources']);

  const asc = await client.beta.threads.messages.list(t.id, { order: 'asc' });
  assert.equal(asc.data.length, 3);
  assert.deepEqual(asc.data.map((m) => m.content[0].text.value),
    ['Hello, what is AI?', 'A field of study.', 'How does AI work? Explain it in simple terms.']);
  assert.deepEqual(asc.data.map((m) => m.role), ['user', 'assistant', 'user']);
  for (const m of asc.data) {
    assert.equal(m.thread_id, t.id);
    assert.equal(m.created_at, t.created_at);
    assert.equal(m.run_id, null);
    assert.equal(m.assistant_id, null);
  }
  assert.deepEqual(asc.data[1].metadata, { k: 'v' });
  assert.deepEqual(asc.data[0].metadata, {});

  const desc = await azure(s).beta.threads.messages.list(t.id);
  assert.deepEqual(desc.data.map((m) => m.id), asc.data.map((m) => m.id).reverse());
});

test('create with an invalid message is rejected as a whole', async () => {
  const bad = await raw(s, 'POST', '/v1/threads', {
    body: { messages: [{ role: 'user', content: 'ok' }, { role: 'system', content: 'no' }] },
  });
  assert.equal(bad.status, 400);
  const e = errorOf(bad);
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(e.param, 'messages[1].role');

  const file = await raw(s, 'POST', '/v1/threads', {
    body: {
      messages: [
        { role: 'user', content: 'ok' },
        { role: 'user', content: 'see file', attachments: [{ file_id: 'file-missing', tools: [{ type: 'file_search' }] }] },
      ],
    },
  });
  assert.equal(file.status, 400);
  assert.deepEqual(errorOf(file), {
    message: "Invalid 'messages[1].attachments[0].file_id': no file found with id 'file-missing'.",
    type: 'invalid_request_error',
    param: 'messages[1].attachments[0].file_id',
    code: 'invalid_value',
  });

  const img = await raw(s, 'POST', '/v1/threads', {
    body: { messages: [{ role: 'user', content: [{ type: 'image_file', image_file: { file_id: 'file-x' } }] }] },
  });
  assert.equal(img.status, 400);
  assert.equal(errorOf(img).param, 'messages[0].content[0].image_file.file_id');

  const unknown = await raw(s, 'POST', '/v1/threads', { body: { nope: 1 } });
  assert.equal(unknown.status, 400);
  assert.equal(errorOf(unknown).param, 'nope');
});

test('modify: metadata and tool_resources replace, absent fields are kept', async () => {
  const client = openai(s);
  const t = await client.beta.threads.create({
    metadata: { a: '1', b: '2' },
    tool_resources: { code_interpreter: { file_ids: [] } },
  });
  const u1 = await client.beta.threads.update(t.id, { metadata: { modified: 'true', user: 'abc123' } });
  assert.deepEqual(u1, { ...t, metadata: { modified: 'true', user: 'abc123' } });

  const u2 = await azure(s).beta.threads.update(t.id, { tool_resources: { file_search: { vector_store_ids: [] } } });
  assert.deepEqual(u2.tool_resources, { file_search: { vector_store_ids: [] } });
  assert.deepEqual(u2.metadata, { modified: 'true', user: 'abc123' });

  const u3 = await raw(s, 'POST', `/v1/threads/${t.id}`, { body: {} });
  assert.equal(u3.status, 200);
  assert.deepEqual(u3.json, u2);

  const u4 = await raw(s, 'POST', `/v1/threads/${t.id}`, { body: { metadata: null } });
  assert.deepEqual(u4.json.metadata, {});
  assert.deepEqual(await client.beta.threads.retrieve(t.id), u4.json);
  assert.equal(u4.json.created_at, t.created_at);

  // The modify schema has no vector_stores helper.
  const h = await raw(s, 'POST', `/v1/threads/${t.id}`, {
    body: { tool_resources: { file_search: { vector_stores: [{ file_ids: [] }] } } },
  });
  assert.equal(h.status, 400);
  assert.equal(errorOf(h).type, 'invalid_request_error');

  const missing = await raw(s, 'POST', '/v1/threads/thread_doesnotexist', { body: { metadata: {} } });
  assert.equal(missing.status, 404);
  assert.deepEqual(errorOf(missing), {
    message: "No thread found with id 'thread_doesnotexist'.",
    type: 'invalid_request_error', param: null, code: null,
  });
});

test('metadata limits on create and modify', async () => {
  const t = await openai(s).beta.threads.create();
  const seventeen = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'v']));
  const cases = [
    seventeen,
    { ['k'.repeat(65)]: 'v' },
    { k: 'v'.repeat(513) },
    { k: 1 },
  ];
  for (const metadata of cases) {
    for (const [method, p] of [['POST', '/v1/threads'], ['POST', `/v1/threads/${t.id}`]]) {
      const r = await raw(s, method, p, { body: { metadata } });
      assert.equal(r.status, 400, JSON.stringify(metadata).slice(0, 80));
      const e = errorOf(r);
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.param, /^metadata/);
    }
  }
  const ok = await openai(s).beta.threads.update(t.id, { metadata: { ...sixteen, k0: 'v'.repeat(512) } });
  assert.equal(Object.keys(ok.metadata).length, 16);
  const edge = await openai(s).beta.threads.create({ metadata: { ['k'.repeat(64)]: 'é'.repeat(512) } });
  assert.equal(edge.metadata['k'.repeat(64)], 'é'.repeat(512));
});

test('delete removes the thread and its messages', async () => {
  const client = openai(s);
  const t = await client.beta.threads.create({ messages: [{ role: 'user', content: 'first' }] });
  const m = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'second' });
  const [first] = (await client.beta.threads.messages.list(t.id, { order: 'asc' })).data;

  const d = await raw(s, 'DELETE', `/v1/threads/${t.id}`);
  assert.equal(d.status, 200);
  assert.deepEqual(d.json, { id: t.id, object: 'thread.deleted', deleted: true });

  const notFound = {
    message: `No thread found with id '${t.id}'.`, type: 'invalid_request_error', param: null, code: null,
  };
  for (const [method, p] of [
    ['GET', `/v1/threads/${t.id}`],
    ['DELETE', `/v1/threads/${t.id}`],
    ['GET', `/v1/threads/${t.id}/messages`],
    ['GET', `/v1/threads/${t.id}/messages/${m.id}`],
    ['GET', `/v1/threads/${t.id}/messages/${first.id}`],
  ]) {
    const r = await raw(s, method, p);
    assert.equal(r.status, 404, `${method} ${p}`);
    assert.deepEqual(errorOf(r), notFound);
  }
  await assert.rejects(client.beta.threads.messages.retrieve(m.id, { thread_id: t.id }),
    (err) => err.status === 404);

  const t2 = await azure(s).beta.threads.create();
  const d2 = await azure(s).beta.threads.delete(t2.id);
  assert.deepEqual(d2, { id: t2.id, object: 'thread.deleted', deleted: true });
});

test('malformed thread ids are rejected with 400', async () => {
  for (const [method, body] of [['GET'], ['POST', {}], ['DELETE']]) {
    const r = await raw(s, method, '/v1/threads/undefined', { body });
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), {
      message: "Invalid 'thread_id': 'undefined'. Expected an ID that begins with 'thread'.",
      type: 'invalid_request_error', param: 'thread_id', code: 'invalid_value',
    });
  }
  const nf = await raw(s, 'GET', '/v1/threads/thread_abc123');
  assert.equal(nf.status, 404);
  assert.equal(errorOf(nf).message, "No thread found with id 'thread_abc123'.");
});

test('threads need the OpenAI-Beta header', async () => {
  const r = await raw(s, 'POST', '/v1/threads', { body: {}, beta: false });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r).code, 'invalid_beta');
});

test('projects are isolated', async () => {
  const p = await startServer({ keysFile: 'key-a projA\nkey-b projB\n', keys: null });
  try {
    const a = openai(p, 'key-a');
    const b = openai(p, 'key-b');
    const t = await a.beta.threads.create({ messages: [{ role: 'user', content: 'secret' }] });
    for (const [method, path, body] of [
      ['GET', `/v1/threads/${t.id}`],
      ['POST', `/v1/threads/${t.id}`, { metadata: { x: 'y' } }],
      ['DELETE', `/v1/threads/${t.id}`],
    ]) {
      const r = await raw(p, method, path, { key: 'key-b', body });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(errorOf(r).message, `No thread found with id '${t.id}'.`);
    }
    await assert.rejects(b.beta.threads.retrieve(t.id), (e) => e.status === 404);
    // key-a still sees it, unmodified.
    assert.deepEqual(await a.beta.threads.retrieve(t.id), t);
    assert.equal((await a.beta.threads.messages.list(t.id)).data.length, 1);
  } finally {
    await p.stop();
  }
});

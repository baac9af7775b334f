// Messages: create (string and parts content, attachments, file checks),
// list (order, limit, cursors, run_id filter, SDK auto-pagination, cursors
// that survive deletes), retrieve, modify, delete, through the OpenAI and
// Azure clients, with raw checks of exact JSON and OpenAI's error bodies.
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { startServer, openai, azure, raw, errorOf } from './lib/server.mjs';

let s;
before(async () => { s = await startServer(); });
after(async () => { await s.stop(); });

const now = () => Math.floor(Date.now() / 1000);
const MESSAGE_KEYS = [
  'id', 'object', 'created_at', 'assistant_id', 'thread_id', 'run_id', 'status', 'incomplete_details',
  'incomplete_at', 'completed_at', 'role', 'content', 'attachments', 'metadata',
].sort();
const text = (value) => ({ type: 'text', text: { value, annotations: [] } });

async function thread(client = openai(s)) {
  return client.beta.threads.create();
}

// Creates n messages "m0".."m{n-1}" in order; returns their ids.
async function fill(client, threadId, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    ids.push((await client.beta.threads.messages.create(threadId, { role: 'user', content: `m${i}` })).id);
  }
  return ids;
}

// Uploads a small file; null when POST /files is not implemented yet.
async function upload(client, name = 'pixel.png', purpose = 'vision') {
  const probe = await raw(s, 'POST', '/v1/files', { body: new FormData(), beta: false });
  if (probe.status === 501) return null;
  const f = await client.files.create({ file: await toFile(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), name), purpose });
  return f.id;
}

test('string content: exact JSON with every required key, nulls included', async () => {
  const t = await thread();
  const r = await raw(s, 'POST', `/v1/threads/${t.id}/messages`, {
    body: { role: 'user', content: 'How does AI work? Explain it in simple terms.' },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  const m = r.json;
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS);
  assert.match(m.id, /^msg_[A-Za-z0-9]{24}$/);
  assert.ok(Math.abs(m.created_at - now()) <= 5);
  assert.deepEqual(m, {
    id: m.id,
    object: 'thread.message',
    created_at: m.created_at,
    assistant_id: null,
    thread_id: t.id,
    run_id: null,
    status: 'completed',
    incomplete_details: null,
    incomplete_at: null,
    completed_at: m.created_at,
    role: 'user',
    content: [text('How does AI work? Explain it in simple terms.')],
    attachments: [],
    metadata: {},
  });
  // Retrieve hands back the same bytes.
  const g = await raw(s, 'GET', `/v1/threads/${t.id}/messages/${m.id}`);
  assert.equal(g.text, r.text);
  // Through both SDK clients.
  assert.deepEqual(await openai(s).beta.threads.messages.retrieve(m.id, { thread_id: t.id }), m);
  assert.deepEqual(await azure(s).beta.threads.messages.retrieve(m.id, { thread_id: t.id }), m);
});

test('parts content: text parts are wrapped, image parts get detail', async () => {
  const client = azure(s);
  const t = await thread(client);
  const m = await client.beta.threads.messages.create(t.id, {
    role: 'assistant',
    content: [
      { type: 'text', text: 'Look:' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
      { type: 'image_url', image_url: { url: 'https://example.com/dog.webp', detail: 'high' } },
      { type: 'text', text: '' },
    ],
    attachments: null,
    metadata: { source: 'test' },
  });
  assert.equal(m.role, 'assistant');
  assert.equal(m.assistant_id, null);
  assert.deepEqual(m.content, [
    text('Look:'),
    { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'auto' } },
    { type: 'image_url', image_url: { url: 'https://example.com/dog.webp', detail: 'high' } },
    text(''),
  ]);
  assert.deepEqual(m.attachments, []);
  assert.deepEqual(m.metadata, { source: 'test' });
  assert.deepEqual(await openai(s).beta.threads.messages.retrieve(m.id, { thread_id: t.id }), m);
});

test('request validation uses OpenAI wording', async () => {
  const t = await thread();
  const p = `/v1/threads/${t.id}/messages`;
  const cases = [
    [{ content: 'x' }, "Missing required parameter: 'role'.", 'role'],
    [{ role: 'system', content: 'x' }, "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.", 'role'],
    [{ role: 'user' }, "Missing required parameter: 'content'.", 'content'],
    [{ role: 'user', content: [{ type: 'refusal', refusal: 'no' }] },
      "Invalid value: 'refusal'. Supported values are: 'image_file', 'image_url', and 'text'.", 'content[0].type'],
    [{ role: 'user', content: 'x', bogus: true }, null, 'bogus'],
  ];
  for (const [body, message, param] of cases) {
    const r = await raw(s, 'POST', p, { body });
    assert.equal(r.status, 400, JSON.stringify(body));
    const e = errorOf(r);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, param);
    if (message) assert.equal(e.message, message);
  }
  // Nothing was stored.
  assert.deepEqual((await raw(s, 'GET', p)).json.data, []);
});

test('referenced files must exist: image_file and attachments', async () => {
  const t = await thread();
  const p = `/v1/threads/${t.id}/messages`;
  const img = await raw(s, 'POST', p, {
    body: { role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_file', image_file: { file_id: 'file-missing' } }] },
  });
  assert.equal(img.status, 400);
  assert.deepEqual(errorOf(img), {
    message: "Invalid 'content[1].image_file.file_id': no file found with id 'file-missing'.",
    type: 'invalid_request_error', param: 'content[1].image_file.file_id', code: 'invalid_value',
  });
  const att = await raw(s, 'POST', p, {
    body: { role: 'user', content: 'x', attachments: [{ file_id: 'file-gone', tools: [{ type: 'code_interpreter' }] }] },
  });
  assert.equal(att.status, 400);
  assert.deepEqual(errorOf(att), {
    message: "Invalid 'attachments[0].file_id': no file found with id 'file-gone'.",
    type: 'invalid_request_error', param: 'attachments[0].file_id', code: 'invalid_value',
  });
  const malformed = await raw(s, 'POST', p, {
    body: { role: 'user', content: 'x', attachments: [{ file_id: 'undefined', tools: [] }] },
  });
  assert.equal(malformed.status, 400);
  assert.equal(errorOf(malformed).message,
    "Invalid 'attachments[0].file_id': 'undefined'. Expected an ID that begins with 'file'.");
  await assert.rejects(
    openai(s).beta.threads.messages.create(t.id, {
      role: 'user', content: [{ type: 'image_file', image_file: { file_id: 'file-nope' } }],
    }),
    (e) => e.status === 400 && e.param === 'content[0].image_file.file_id');
  assert.deepEqual((await raw(s, 'GET', p)).json.data, []);
});

test('image_file and attachments with uploaded files', async (t) => {
  const client = openai(s);
  const fileId = await upload(client);
  if (!fileId) { t.skip('POST /files is not implemented yet (501)'); return; }
  const docId = await upload(client, 'notes.txt', 'assistants');
  const th = await thread();
  const m = await client.beta.threads.messages.create(th.id, {
    role: 'user',
    content: [
      { type: 'image_file', image_file: { file_id: fileId } },
      { type: 'image_file', image_file: { file_id: fileId, detail: 'low' } },
      { type: 'text', text: 'What is in the image and the notes?' },
    ],
    attachments: [
      { file_id: docId, tools: [{ type: 'file_search' }, { type: 'code_interpreter' }] },
      { file_id: fileId, tools: [] },
    ],
  });
  assert.deepEqual(m.content, [
    { type: 'image_file', image_file: { file_id: fileId, detail: 'auto' } },
    { type: 'image_file', image_file: { file_id: fileId, detail: 'low' } },
    text('What is in the image and the notes?'),
  ]);
  assert.deepEqual(m.attachments, [
    { file_id: docId, tools: [{ type: 'file_search' }, { type: 'code_interpreter' }] },
    { file_id: fileId, tools: [] },
  ]);
  const t2 = await azure(s).beta.threads.create({
    messages: [{ role: 'user', content: 'see file', attachments: [{ file_id: docId, tools: [{ type: 'file_search' }] }] }],
    tool_resources: { code_interpreter: { file_ids: [docId, fileId] } },
  });
  // The file_search attachment gave the thread a vector store (issue #4).
  assert.deepEqual(t2.tool_resources.code_interpreter, { file_ids: [docId, fileId] });
  assert.match(t2.tool_resources.file_search.vector_store_ids[0], /^vs_/);
  assert.equal(t2.tool_resources.file_search.vector_store_ids.length, 1);
  const [first] = (await azure(s).beta.threads.messages.list(t2.id)).data;
  assert.deepEqual(first.attachments, [{ file_id: docId, tools: [{ type: 'file_search' }] }]);
  // Another project cannot reference these files.
  const p = await startServer({ keysFile: 'key-a projA\nkey-b projB\n', keys: null });
  try {
    const a = openai(p, 'key-a');
    const fa = await a.files.create({ file: await toFile(Buffer.from('x'), 'a.txt'), purpose: 'assistants' });
    const tb = await openai(p, 'key-b').beta.threads.create();
    const r = await raw(p, 'POST', `/v1/threads/${tb.id}/messages`, {
      key: 'key-b', body: { role: 'user', content: 'x', attachments: [{ file_id: fa.id, tools: [] }] },
    });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, `Invalid 'attachments[0].file_id': no file found with id '${fa.id}'.`);
  } finally {
    await p.stop();
  }
});

test('modify replaces metadata only; delete answers thread.message.deleted', async () => {
  const client = openai(s);
  const t = await thread();
  const m = await client.beta.threads.messages.create(t.id, { role: 'user', content: 'hi', metadata: { a: '1', b: '2' } });
  const u = await client.beta.threads.messages.update(m.id, { thread_id: t.id, metadata: { modified: 'true', user: 'abc123' } });
  assert.deepEqual(u, { ...m, metadata: { modified: 'true', user: 'abc123' } });
  const u2 = await raw(s, 'POST', `/v1/threads/${t.id}/messages/${m.id}`, { body: {} });
  assert.equal(u2.status, 200);
  assert.deepEqual(u2.json, u);
  const u3 = await azure(s).beta.threads.messages.update(m.id, { thread_id: t.id, metadata: null });
  assert.deepEqual(u3.metadata, {});
  const notModifiable = await raw(s, 'POST', `/v1/threads/${t.id}/messages/${m.id}`, { body: { content: 'x' } });
  assert.equal(notModifiable.status, 400);
  assert.equal(errorOf(notModifiable).param, 'content');
  for (const metadata of [{ k: 'v'.repeat(513) }, { k: true }, { ['k'.repeat(65)]: 'v' },
    Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))]) {
    for (const [path, body] of [[`/v1/threads/${t.id}/messages/${m.id}`, { metadata }],
      [`/v1/threads/${t.id}/messages`, { role: 'user', content: 'x', metadata }]]) {
      const r = await raw(s, 'POST', path, { body });
      assert.equal(r.status, 400);
      assert.equal(errorOf(r).type, 'invalid_request_error');
      assert.match(errorOf(r).param, /^metadata/);
    }
  }
  const big = await raw(s, 'POST', `/v1/threads/${t.id}/messages/${m.id}`, {
    body: { metadata: { ['k'.repeat(64)]: 'v'.repeat(512) } },
  });
  assert.equal(big.status, 200);

  const d = await client.beta.threads.messages.delete(m.id, { thread_id: t.id });
  assert.deepEqual(d, { id: m.id, object: 'thread.message.deleted', deleted: true });
  const gone = { message: `No message found with id '${m.id}'.`, type: 'invalid_request_error', param: null, code: null };
  for (const [method, body] of [['GET'], ['POST', { metadata: {} }], ['DELETE']]) {
    const r = await raw(s, method, `/v1/threads/${t.id}/messages/${m.id}`, { body });
    assert.equal(r.status, 404);
    assert.deepEqual(errorOf(r), gone);
  }
  assert.deepEqual((await client.beta.threads.messages.list(t.id)).data, []);
  // The thread itself is untouched.
  assert.deepEqual(await client.beta.threads.retrieve(t.id), t);
});

test('ids: malformed, unknown thread, message of another thread', async () => {
  const client = openai(s);
  const t1 = await thread();
  const t2 = await thread();
  const m = await client.beta.threads.messages.create(t1.id, { role: 'user', content: 'mine' });
  for (const [method, body] of [['GET'], ['POST', { metadata: {} }], ['DELETE']]) {
    const other = await raw(s, method, `/v1/threads/${t2.id}/messages/${m.id}`, { body });
    assert.equal(other.status, 404);
    assert.deepEqual(errorOf(other), {
      message: `No message found with id '${m.id}'.`, type: 'invalid_request_error', param: null, code: null,
    });
    const noThread = await raw(s, method, `/v1/threads/thread_nope/messages/${m.id}`, { body });
    assert.equal(noThread.status, 404);
    assert.equal(errorOf(noThread).message, "No thread found with id 'thread_nope'.");
    const badMsg = await raw(s, method, `/v1/threads/${t1.id}/messages/${t1.id}`, { body });
    assert.equal(badMsg.status, 400);
    assert.deepEqual(errorOf(badMsg), {
      message: `Invalid 'message_id': '${t1.id}'. Expected an ID that begins with 'msg'.`,
      type: 'invalid_request_error', param: 'message_id', code: 'invalid_value',
    });
    const badThread = await raw(s, method, `/v1/threads/undefined/messages/${m.id}`, { body });
    assert.equal(badThread.status, 400);
    assert.equal(errorOf(badThread).param, 'thread_id');
  }
  for (const [method, body] of [['GET'], ['POST', { role: 'user', content: 'x' }]]) {
    const r = await raw(s, method, '/v1/threads/thread_nope/messages', { body });
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, "No thread found with id 'thread_nope'.");
  }
  // Still there, in its own thread.
  assert.equal((await client.beta.threads.messages.retrieve(m.id, { thread_id: t1.id })).id, m.id);
});

test('list: default desc, asc, limit, has_more, first/last ids, after/before', async () => {
  const client = openai(s);
  const t = await thread();
  const empty = await raw(s, 'GET', `/v1/threads/${t.id}/messages`);
  assert.deepEqual(empty.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });

  const ids = await fill(client, t.id, 5);
  const all = await raw(s, 'GET', `/v1/threads/${t.id}/messages`);
  assert.deepEqual(all.json.data.map((m) => m.id), [...ids].reverse());
  assert.equal(all.json.first_id, ids[4]);
  assert.equal(all.json.last_id, ids[0]);
  assert.equal(all.json.has_more, false);

  const page = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&limit=2`);
  assert.deepEqual(page.json.data.map((m) => m.id), ids.slice(0, 2));
  assert.deepEqual([page.json.first_id, page.json.last_id, page.json.has_more], [ids[0], ids[1], true]);

  const next = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&limit=2&after=${ids[1]}`);
  assert.deepEqual(next.json.data.map((m) => m.id), ids.slice(2, 4));
  assert.equal(next.json.has_more, true);
  const last = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&limit=2&after=${ids[3]}`);
  assert.deepEqual(last.json.data.map((m) => m.id), [ids[4]]);
  assert.equal(last.json.has_more, false);

  const descAfter = await client.beta.threads.messages.list(t.id, { after: ids[3], limit: 10 });
  assert.deepEqual(descAfter.data.map((m) => m.id), [ids[2], ids[1], ids[0]]);
  const ascBefore = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&before=${ids[2]}`);
  assert.deepEqual(ascBefore.json.data.map((m) => m.id), [ids[0], ids[1]]);
  const descBefore = await azure(s).beta.threads.messages.list(t.id, { before: ids[2] });
  assert.deepEqual(descBefore.data.map((m) => m.id), [ids[4], ids[3]]);
  const between = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&after=${ids[0]}&before=${ids[4]}`);
  assert.deepEqual(between.json.data.map((m) => m.id), ids.slice(1, 4));

  for (const [q, param] of [['limit=0', 'limit'], ['limit=101', 'limit'], ['limit=x', 'limit'], ['order=up', 'order'],
    ['after=msg_unknown', 'after'], ['before=msg_unknown', 'before']]) {
    const r = await raw(s, 'GET', `/v1/threads/${t.id}/messages?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(errorOf(r).param, param);
  }
  // A cursor from another thread is not a position in this list.
  const t2 = await thread();
  const r = await raw(s, 'GET', `/v1/threads/${t2.id}/messages?after=${ids[0]}`);
  assert.equal(r.status, 400);
  assert.equal(errorOf(r).message, `Invalid 'after': no object with id '${ids[0]}' in this list.`);
  const big = await raw(s, 'GET', `/v1/threads/${t.id}/messages?limit=100`);
  assert.equal(big.json.data.length, 5);
});

test('run_id filter: messages created through the API have no run', async () => {
  const client = openai(s);
  const t = await thread();
  await fill(client, t.id, 2);
  const r = await raw(s, 'GET', `/v1/threads/${t.id}/messages?run_id=run_abc123`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  const viaSdk = await azure(s).beta.threads.messages.list(t.id, { run_id: 'run_abc123' });
  assert.deepEqual(viaSdk.data, []);
  const unfiltered = await raw(s, 'GET', `/v1/threads/${t.id}/messages?run_id=`);
  assert.equal(unfiltered.json.data.length, 2);
  assert.ok(unfiltered.json.data.every((m) => m.run_id === null));
});

test('SDK auto-pagination visits every message exactly once, both orders', async () => {
  for (const client of [openai(s), azure(s)]) {
    const t = await thread(client);
    const ids = await fill(client, t.id, 10);
    for (const order of ['asc', 'desc']) {
      const seen = [];
      for await (const m of client.beta.threads.messages.list(t.id, { limit: 3, order })) seen.push(m.id);
      assert.deepEqual(seen, order === 'asc' ? ids : [...ids].reverse(), order);
    }
    const seen = [];
    for await (const m of client.beta.threads.messages.list(t.id, { limit: 3 })) seen.push(m.id);
    assert.deepEqual(seen, [...ids].reverse());
  }
});

test('deleting messages while paginating keeps the cursor valid', async () => {
  const client = openai(s);
  const t = await thread();
  const ids = await fill(client, t.id, 7);
  const p1 = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&limit=3`);
  assert.deepEqual(p1.json.data.map((m) => m.id), ids.slice(0, 3));
  // Delete the cursor itself and the next message.
  await client.beta.threads.messages.delete(ids[2], { thread_id: t.id });
  await client.beta.threads.messages.delete(ids[3], { thread_id: t.id });
  const p2 = await raw(s, 'GET', `/v1/threads/${t.id}/messages?order=asc&limit=3&after=${p1.json.last_id}`);
  assert.equal(p2.status, 200);
  assert.deepEqual(p2.json.data.map((m) => m.id), ids.slice(4, 7));
  assert.equal(p2.json.has_more, false);
  const back = await raw(s, 'GET', `/v1/threads/${t.id}/messages?before=${ids[2]}`);
  assert.deepEqual(back.json.data.map((m) => m.id), ids.slice(4).reverse());

  // SDK loop that deletes each message as it goes still sees every message once.
  const seen = [];
  for await (const m of client.beta.threads.messages.list(t.id, { limit: 2, order: 'asc' })) {
    seen.push(m.id);
    await client.beta.threads.messages.delete(m.id, { thread_id: t.id });
  }
  assert.deepEqual(seen, [ids[0], ids[1], ids[4], ids[5], ids[6]]);
  assert.deepEqual((await client.beta.threads.messages.list(t.id)).data, []);
});

test('projects are isolated', async () => {
  const p = await startServer({ keysFile: 'key-a projA\nkey-b projB\n', keys: null });
  try {
    const a = openai(p, 'key-a');
    const b = azure(p, 'key-b');
    const ta = await a.beta.threads.create();
    const ma = await a.beta.threads.messages.create(ta.id, { role: 'user', content: 'secret' });
    const tb = await b.beta.threads.create();
    const nf = { message: `No thread found with id '${ta.id}'.`, type: 'invalid_request_error', param: null, code: null };
    for (const [method, path, body] of [
      ['GET', `/v1/threads/${ta.id}/messages`],
      ['POST', `/v1/threads/${ta.id}/messages`, { role: 'user', content: 'intruder' }],
      ['GET', `/v1/threads/${ta.id}/messages/${ma.id}`],
      ['POST', `/v1/threads/${ta.id}/messages/${ma.id}`, { metadata: { x: 'y' } }],
      ['DELETE', `/v1/threads/${ta.id}/messages/${ma.id}`],
    ]) {
      const r = await raw(p, method, path, { key: 'key-b', body });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.deepEqual(errorOf(r), nf);
    }
    // key-b's own thread is empty, and key-a's message is no cursor for it.
    const list = await raw(p, 'GET', `/v1/threads/${tb.id}/messages`, { key: 'key-b' });
    assert.deepEqual(list.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    assert.deepEqual((await b.beta.threads.messages.list(tb.id)).data, []);
    const wrong = await raw(p, 'GET', `/v1/threads/${tb.id}/messages/${ma.id}`, { key: 'key-b' });
    assert.equal(wrong.status, 404);
    assert.equal(errorOf(wrong).message, `No message found with id '${ma.id}'.`);
    // key-a's data is intact.
    const mine = await a.beta.threads.messages.list(ta.id);
    assert.deepEqual(mine.data, [ma]);
  } finally {
    await p.stop();
  }
});

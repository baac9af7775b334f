// Streamed run creation and the engine's write path (issue #3 performance
// work): createRun with stream: true is stored by the engine's writer
// (grouped with other writes) and announced once committed; the first
// text delta travels with the commit of its message; objects the writer
// read back from its cache never hide a change a handler made meanwhile.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { raw, httpRequest, KEY } from './lib/server.mjs';
import { setupRuns as setup, parseSSE, withRestarts } from './lib/runs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const names = (ev) => ev.map((e) => e.event);

test('concurrent streamed creations on one thread: exactly one run, the others refused with 400', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    for (let i = 0; i < 8; i++) up.script({ text: 'Answer', chunks: ['Ans', 'wer'], wait: sleep(300) });
    const rs = await Promise.all(Array.from({ length: 8 }, () =>
      raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } })));
    // A creation answered but not yet stored reserves its thread: every
    // other streamed creation is refused before its stream begins.
    const started = rs.filter((r) => r.status === 200);
    assert.equal(started.length, 1, 'exactly one of the concurrent creations runs');
    for (const r of rs.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, new RegExp(`^Thread ${thread.id} already has an active run run_\\w+\\.$`));
    }
    const ev = parseSSE(started[0].text);
    assert.equal(ev.at(-2).event, 'thread.run.completed');
    const runs = await client.beta.threads.runs.list(thread.id);
    assert.deepEqual(runs.data.map((r) => r.id), [ev[0].data.id], 'no refused run was stored');
  } finally {
    await t.close();
  }
});

test('streamed and plain creations racing on one thread: one run; the others refused with a JSON 400', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    for (let i = 0; i < 8; i++) up.script({ text: 'Answer', chunks: ['Ans', 'wer'], wait: sleep(300) });
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: i % 2 === 0 } })));
    const active = new RegExp(`^Thread ${thread.id} already has an active run run_\\w+\\.$`);
    const won = [];
    for (const r of rs) {
      if (r.status === 400) {
        assert.match(r.json.error.message, active);
        continue;
      }
      assert.equal(r.status, 200);
      if (!r.headers.get('content-type')?.startsWith('text/event-stream')) {
        won.push(r.json.id);
        continue;
      }
      const ev = parseSSE(r.text);
      assert.equal(ev[0].event, 'thread.run.created', 'a stream answered 200 is one that won');
      assert.equal(ev.at(-2).event, 'thread.run.completed');
      won.push(ev[0].data.id);
    }
    assert.equal(won.length, 1, 'exactly one creation won');
    const run = await client.beta.threads.runs.poll(won[0], { thread_id: thread.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    const runs = await client.beta.threads.runs.list(thread.id);
    assert.deepEqual(runs.data.map((r) => r.id), won, 'no refused run was stored');
  } finally {
    await t.close();
  }
});

test('streamed creation: events in order, each after the commit of what it announces', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', metadata: { x: '1' } });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'One two', chunks: ['One', ' two'] });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.equal(r.status, 200);
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [
      'thread.run.created', 'thread.run.queued', 'thread.run.in_progress',
      'thread.run.step.created', 'thread.run.step.in_progress',
      'thread.message.created', 'thread.message.in_progress',
      'thread.message.delta', 'thread.message.delta',
      'thread.message.completed', 'thread.run.step.completed', 'thread.run.completed', 'done',
    ]);
    const run = ev[0].data;
    assert.equal(run.status, 'queued');
    assert.deepEqual(ev[1].data, run, 'queued shows the run as created');
    // What was announced is what is stored.
    const stored = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.deepEqual(stored, ev.at(-2).data);
    const msg = await client.beta.threads.messages.retrieve(ev[5].data.id, { thread_id: thread.id });
    assert.deepEqual(msg, ev[9].data);
    // The first delta carries the empty annotations list, the next does not.
    assert.deepEqual(ev[7].data.delta.content, [{ index: 0, type: 'text', text: { value: 'One', annotations: [] } }]);
    assert.deepEqual(ev[8].data.delta.content, [{ index: 0, type: 'text', text: { value: ' two' } }]);
    assert.equal(ev[7].data.id, msg.id);
    assert.equal(ev[7].data.object, 'thread.message.delta');
  } finally {
    await t.close();
  }
});

test('text deltas escape quotes, backslashes, control characters; UTF-8 passes through', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const chunks = ['say "hi"', ' back\\slash', '\nnew\tline\r', '\u0001\u001f\b\f', ' é 😀 ✓', '</script>/', '\u2028\u2029\u007f', '\u0000 nul'];
    up.script({ text: chunks.join(''), chunks });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    const deltas = ev.filter((e) => e.event === 'thread.message.delta').map((e) => e.data.delta.content[0].text.value);
    assert.deepEqual(deltas, chunks);
    // Every data line is one line of JSON (no raw control character in it).
    for (const line of r.text.split('\n').filter((l) => l.startsWith('data: {'))) JSON.parse(line.slice(6));
    const msgs = await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 });
    assert.equal(msgs.data[0].content[0].text.value, chunks.join(''));
  } finally {
    await t.close();
  }
});

test('a handler\'s change to a run while it streams survives the engine\'s later writes', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    let release;
    const gate = new Promise((r) => { release = r; });
    up.script({ text: 'Late answer', chunks: ['Late', ' answer'], wait: gate });
    const pending = raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    // The run is in progress (the writer has read, changed and kept it).
    let run;
    for (let i = 0; i < 250; i++) {
      [run] = (await client.beta.threads.runs.list(thread.id)).data;
      if (run?.status === 'in_progress') break;
      await sleep(20);
    }
    assert.equal(run.status, 'in_progress');
    await client.beta.threads.runs.update(run.id, { thread_id: thread.id, metadata: { edited: 'yes' } });
    release();
    const ev = parseSSE((await pending).text);
    const end = ev.find((e) => e.event === 'thread.run.completed').data;
    assert.deepEqual(end.metadata, { edited: 'yes' }, 'the completed event carries the edit');
    const stored = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(stored.status, 'completed');
    assert.deepEqual(stored.metadata, { edited: 'yes' });
  } finally {
    await t.close();
  }
});

test('streamed creation on a deleted or unknown thread, and non-stream creation, answer as before', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const r404 = await raw(s, 'POST', '/v1/threads/thread_doesnotexist/runs', { body: { assistant_id: a.id, stream: true } });
    assert.equal(r404.status, 404);
    assert.equal(r404.json.error.message, "No thread found with id 'thread_doesnotexist'.");
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script('Plain');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    // additional_messages with stream: stored in the handler's transaction.
    up.script('Second');
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, {
      body: { assistant_id: a.id, stream: true, additional_messages: [{ role: 'user', content: 'more' }] },
    });
    const ev = parseSSE(r.text);
    assert.equal(ev.at(-2).event, 'thread.run.completed');
    const sent = up.requests.at(-1).body.messages.map((m) => m.content);
    assert.deepEqual(sent.slice(-2), ['Plain', 'more']);
  } finally {
    await t.close();
  }
});

test('a create right after a streamed create has answered gets OpenAI\'s 400, as does a message', async () => {
  // The SDK's create(stream: true) resolves once the response headers are
  // in, before any event: the run may still be in the writer's queue. A
  // client that goes on at once must still be refused as by OpenAI.
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    for (let i = 0; i < 20; i++) {
      const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
      let release;
      up.script({ text: 'Answer', chunks: ['Ans', 'wer'], wait: new Promise((r) => { release = r; }) });
      const first = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id, stream: true });
      const again = [
        client.beta.threads.runs.create(thread.id, { assistant_id: a.id, stream: i % 2 === 0 }),
        client.beta.threads.messages.create(thread.id, { role: 'user', content: 'more' }),
      ];
      const [run2, msg2] = await Promise.allSettled(again);
      assert.equal(run2.status, 'rejected', `iteration ${i}: second run refused`);
      assert.equal(run2.reason.status, 400);
      assert.match(run2.reason.error.message, new RegExp(`^Thread ${thread.id} already has an active run run_`));
      assert.equal(msg2.status, 'rejected', `iteration ${i}: message refused`);
      assert.equal(msg2.reason.status, 400);
      assert.match(msg2.reason.error.message, new RegExp(`^Can't add messages to ${thread.id} while a run run_\\w+ is active\\.$`));
      release();
      const ev = [];
      for await (const e of first) ev.push(e.event);
      assert.equal(ev[0], 'thread.run.created');
      assert.equal(ev.at(-1), 'thread.run.completed');
      const runs = await client.beta.threads.runs.list(thread.id);
      assert.equal(runs.data.length, 1, 'only the first run was stored');
      const msgs = await client.beta.threads.messages.list(thread.id);
      assert.equal(msgs.data.length, 2, 'the refused message was not stored');
    }
  } finally {
    await t.close();
  }
});

// A plain createRun that has made its checks inside its transaction but not
// committed yet when a streamed createRun on the same thread arrives: the
// plain one holds the thread's reservation until its transaction ends, so
// the streamed one is refused with OpenAI's 400 as JSON -- not a 200 stream
// that holds only an error event, which the SDKs cannot read as a 400 -- and
// no second run is stored. To hold the plain transaction open between its
// check and its commit, an SQL trigger (as runs-durability injects
// failures) makes the insert of a run whose instructions say SLOWDOWN take
// about a second.
test('a streamed creation racing a plain one committing meanwhile: 400 as JSON, no second run', async () => {
  const t = await setup();
  const db = path.join(t.s.dataDir, 'assistd.db');
  const sql = (q) => execFileSync('sqlite3', ['-cmd', '.timeout 5000', db, q]);
  try {
    const { client, up, s } = t;
    sql(`CREATE TABLE slow(x);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400) INSERT INTO slow SELECT x FROM c;
         CREATE TRIGGER slow_run BEFORE INSERT ON objects WHEN NEW.kind = 'run' AND instr(NEW.body, 'SLOWDOWN') > 0
         BEGIN SELECT count(*) FROM slow a, slow b, slow c; END;`);
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'race' }] });
    up.script({ text: 'Ok', chunks: ['Ok'] });
    const t0 = Date.now();
    const plain = raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, instructions: 'SLOWDOWN' } });
    await sleep(150); // the plain creation is inside its slow insert, checks made
    // On a new connection: an idle kept-alive one may belong to the HTTP
    // thread the plain creation holds.
    const rq = await httpRequest(s, {
      method: 'POST', path: `/v1/threads/${thread.id}/runs`, agent: false,
      headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2', 'Content-Type': 'application/json' },
      chunks: [JSON.stringify({ assistant_id: a.id, stream: true })],
    });
    const rp = await plain;
    assert.ok(Date.now() - t0 >= 500, 'the trigger held the plain creation');
    assert.equal(rp.status, 200, `plain: ${JSON.stringify(rp.json)}`);
    assert.equal(rq.status, 400, `streamed: ${rq.text}`);
    assert.match(rq.headers['content-type'], /^application\/json/);
    assert.deepEqual(JSON.parse(rq.text), { error: { code: null, message: `Thread ${thread.id} already has an active run ${rp.json.id}.`, param: null, type: 'invalid_request_error' } });
    const runs = await client.beta.threads.runs.list(thread.id);
    assert.deepEqual(runs.data.map((r) => r.id), [rp.json.id], 'the refused run was not stored');
    const done = await client.beta.threads.runs.poll(rp.json.id, { thread_id: thread.id }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'completed');
    // The reservation was released: the thread takes a new run.
    up.script({ text: 'Again', chunks: ['Again'] });
    const again = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(again.status, 'completed');
  } finally {
    await t.close();
  }
});

// Starts queue on the engine's loop and are taken a slice at a time, so that
// a burst of creations cannot hold the streams already flowing (engine.c,
// "starts"). Functionally: every run of a burst starts, once, and its stream
// is the whole sequence.
const RUN_OPEN = ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress'];
const MSG_OPEN = ['thread.run.step.created', 'thread.run.step.in_progress', 'thread.message.created', 'thread.message.in_progress'];

test('a burst of 48 streamed runs on 48 threads: each starts once and streams the whole sequence', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const threads = await Promise.all(Array.from({ length: 48 }, (_, i) =>
      client.beta.threads.create({ messages: [{ role: 'user', content: `question ${i}` }] })));
    for (let i = 0; i < 48; i++) up.script({ text: 'Two parts', chunks: ['Two', ' parts'] });
    const rs = await Promise.all(threads.map((th) =>
      raw(s, 'POST', `/v1/threads/${th.id}/runs`, { body: { assistant_id: a.id, stream: true } })));
    const seen = new Set();
    for (const [i, r] of rs.entries()) {
      assert.equal(r.status, 200);
      const ev = parseSSE(r.text);
      assert.deepEqual(names(ev), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.message.delta',
        'thread.message.completed', 'thread.run.step.completed', 'thread.run.completed', 'done']);
      assert.equal(ev[0].data.thread_id, threads[i].id);
      assert.equal(ev.at(-4).data.content[0].text.value, 'Two parts');
      seen.add(ev[0].data.id);
    }
    assert.equal(seen.size, 48);
    assert.equal(up.requests.length, 48, 'one model call per run');
    // Each call carried its own thread's question.
    const asked = up.requests.map((q) => q.body.messages.at(-1).content).sort();
    assert.deepEqual(asked, threads.map((_, i) => `question ${i}`).sort());
  } finally {
    await t.close();
  }
});

// A clean stop ends every run in flight failed ("The server is shutting
// down."), committed, so the next start has nothing left to repair.
test('SIGTERM right after a burst of 40 creations (starts queued or calls in flight): a clean exit, no run left queued or in_progress', async () => {
  await withRestarts(async (t) => {
    const client = t.client();
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const threads = await Promise.all(Array.from({ length: 40 }, () =>
      client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] })));
    for (let i = 0; i < 40; i++) t.up.script({ text: 'Slow', chunks: ['Slow'], wait: sleep(2000) });
    const runs = await Promise.all(threads.map((th) => client.beta.threads.runs.create(th.id, { assistant_id: a.id })));
    await t.restart({ clean: true }); // the sanitizer check: no task or stream left behind
    const c2 = t.client();
    for (const [i, run] of runs.entries()) {
      const r = await c2.beta.threads.runs.poll(run.id, { thread_id: threads[i].id }, { pollIntervalMs: 20 });
      assert.ok(['completed', 'failed'].includes(r.status), `run ${i} ended ${r.status}`);
      if (r.status === 'failed')
        assert.deepEqual(r.last_error, { code: 'server_error', message: 'The server is shutting down.' });
    }
  });
});

// The race without a trigger, many times: a streamed and a plain createRun
// sent together on a fresh thread. Whatever the interleaving, a creation
// that loses is refused as JSON 400 with OpenAI's message; a stream, once
// answered 200, always starts with thread.run.created.
test('streamed and plain createRun racing on one thread, 120 rounds: the loser always gets a JSON 400', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    for (let i = 0; i < 240; i++) up.script({ text: 'Ok', chunks: ['Ok'] });
    let refusals = 0;
    for (let round = 0; round < 120; round++) {
      const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: `race ${round}` }] });
      const url = `/v1/threads/${thread.id}/runs`;
      const [st, pl] = await Promise.all([
        raw(s, 'POST', url, { body: { assistant_id: a.id, stream: true } }),
        raw(s, 'POST', url, { body: { assistant_id: a.id } }),
      ]);
      for (const r of [st, pl]) {
        if (r.status === 400) {
          refusals++;
          assert.match(r.headers.get('content-type'), /^application\/json/);
          assert.match(r.json.error.message, new RegExp(`^Thread ${thread.id} already has an active run run_\\w+\\.$`));
        } else {
          assert.equal(r.status, 200, r.text);
        }
      }
      if (st.status === 200) {
        const ev = parseSSE(st.text);
        assert.equal(ev[0].event, 'thread.run.created', `round ${round}: ${st.text.slice(0, 300)}`);
        assert.equal(ev.at(-1).event, 'done');
      }
      // Let the winner finish before the next round's thread.
      const runs = await client.beta.threads.runs.list(thread.id);
      for (const r of runs.data) await client.beta.threads.runs.poll(r.id, { thread_id: thread.id }, { pollIntervalMs: 10 });
      assert.ok(runs.data.length === 1 || runs.data.length === 2);
      assert.equal(runs.data.length, 2 - [st, pl].filter((r) => r.status === 400).length);
    }
    console.log(`racing creations: ${refusals} of 120 rounds had a loser`);
  } finally {
    await t.close();
  }
});

// SIGTERM in the middle of a burst of streamed creations: whatever stage
// each one reached -- answered and running, its start queued, its creation
// still with the writer, or arriving after the shutdown began -- no run is
// left queued or in_progress in the store for the next start, and every
// stream that was answered 200 ends with a terminal event (or the error
// event of a creation refused), then done.
test('SIGTERM during a burst of 200 streamed creations: no run left active in the store; every stream ends', async () => {
  await withRestarts(async (t) => {
    const client = t.client();
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const threads = [];
    for (let i = 0; i < 200; i++) threads.push((await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] })).id);
    for (let i = 0; i < 200; i++) t.up.script({ text: 'one two', chunks: ['one ', 'two'], stallAfter: 1 });
    const http = await import('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 400 });
    const post = (th) => new Promise((resolve) => {
      const r = http.request({ host: '127.0.0.1', port: t.s.port, method: 'POST', path: `/v1/threads/${th}/runs`, agent,
        headers: { authorization: `Bearer ${KEY}`, 'openai-beta': 'assistants=v2', 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
        res.on('error', () => resolve({ status: res.statusCode, text, cut: true }));
      });
      r.on('error', () => resolve({ status: 0 }));
      r.end(JSON.stringify({ assistant_id: a.id, stream: true }));
    });
    const pending = threads.map(post);
    await sleep(Number(process.env.BURST_DELAY_MS || 40));
    t.s.proc.kill('SIGTERM');
    const res = await Promise.all(pending);
    agent.destroy();
    await t.stop(); // exit 0, no sanitizer report
    const seen = {};
    for (const r of res) {
      let kind = `status ${r.status}`;
      if (r.status === 200) {
        const ev = parseSSE(r.text).map((e) => e.event);
        assert.equal(ev.at(-1), 'done', r.text.slice(-300));
        kind = ev.at(-2);
        assert.ok(['thread.run.failed', 'thread.run.completed', 'error'].includes(kind), kind);
      } else if (r.status !== 0) {
        assert.equal(r.status, 503, r.text);
        assert.equal(JSON.parse(r.text).error.message, 'The server is shutting down.');
      }
      seen[kind] = (seen[kind] || 0) + 1;
    }
    const db = path.join(t.dataDir, 'assistd.db');
    const active = execFileSync('sqlite3', [db, "SELECT count(*) FROM objects WHERE kind='run' AND json_extract(body,'$.status') NOT IN ('failed','completed')"]).toString().trim();
    assert.equal(active, '0', JSON.stringify(seen));
    console.log(`burst at SIGTERM: ${JSON.stringify(seen)}`);
    await t.start();
  });
});

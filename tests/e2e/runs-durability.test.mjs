// Runs across kill -9 and across time. A run in flight when the process dies
// is failed at the next start (server_error, "interrupted by a restart"), its
// partial message is closed as incomplete and never duplicated, and the
// thread takes a new run; a run waiting for tool outputs stays answerable; a
// finished run and everything it produced survive byte for byte. Expiry
// (--run-ttl / ASSISTD_RUN_TTL): a run still active at expires_at expires,
// with its open step and message.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { openai, raw, errorOf, runAssistd, KEY } from './lib/server.mjs';
import { setupRuns, withRestarts, parseSSE } from './lib/runs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Retrieves the run until its status is `status` (or time runs out).
async function waitStatus(s, threadId, runId, status, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await raw(s, 'GET', `/v1/threads/${threadId}/runs/${runId}`);
    if (r.json.status === status || Date.now() > end) return r.json;
    await sleep(50);
  }
}

const tool = {
  type: 'function',
  function: { name: 'getVulnerabilityCount', parameters: { type: 'object', properties: { systemName: { type: 'string' } } } },
};

// Opens a streaming POST and resolves once `until(text so far)` holds; the
// body keeps flowing into the returned object until the server goes away.
async function openStream(s, urlPath, body, until) {
  const res = await fetch(s.url + urlPath, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2', 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  const st = { text: '' };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    st.text += dec.decode(value, { stream: true });
    if (until(st.text)) break;
  }
  st.rest = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        st.text += dec.decode(value, { stream: true });
      }
    } catch { /* the server was killed */ }
  })();
  return st;
}

// All pages of a list, ascending.
async function listAll(s, urlPath) {
  const out = [];
  let cursor = '';
  for (;;) {
    const r = await raw(s, 'GET', `${urlPath}?limit=100&order=asc${cursor ? `&after=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.data);
    if (!r.json.has_more) return out;
    cursor = r.json.last_id;
  }
}

test('kill -9 during a streaming run: failed at restart, partial message closed once, thread usable', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'tell me a long story' }] });
    // One piece reaches the client, then the model goes silent.
    up.script({ text: 'Once upon a time', chunks: ['Once ', 'upon a time'], stallAfter: 1 });
    const st = await openStream(s, `/v1/threads/${thread.id}/runs`, { assistant_id: a.id, stream: true },
      (t) => t.includes('event: thread.message.delta'));
    const runId = /"id":"(run_[^"]+)"/.exec(st.text)[1];
    const msgId = /event: thread.message.created\ndata: \{"id":"(msg_[^"]+)"/.exec(st.text)[1];
    await t.kill9();
    await st.rest;
    assert.ok(!st.text.includes('event: done'), 'the stream was cut by the kill, not ended');
    await up.waitForAbort(0);

    s = await t.start();
    const c2 = openai(s);
    const run = await c2.beta.threads.runs.retrieve(runId, { thread_id: thread.id });
    assert.equal(run.status, 'failed');
    assert.deepEqual(run.last_error, { code: 'server_error', message: 'The run was interrupted by a restart of the server.' });
    assert.equal(typeof run.failed_at, 'number');
    assert.equal(run.expires_at, null);
    assert.equal(run.required_action, null);
    assert.equal(run.completed_at, null);
    assert.equal(typeof run.started_at, 'number');

    // The partial message exists once, closed as incomplete (its text was
    // only in memory), and its step failed.
    const msgs = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
    assert.equal(new Set(msgs.map((m) => m.id)).size, msgs.length);
    const partial = msgs[1];
    assert.equal(partial.id, msgId);
    assert.equal(partial.run_id, runId);
    assert.equal(partial.status, 'incomplete');
    assert.deepEqual(partial.incomplete_details, { reason: 'run_failed' });
    assert.equal(typeof partial.incomplete_at, 'number');
    assert.equal(partial.completed_at, null);
    const steps = await listAll(s, `/v1/threads/${thread.id}/runs/${runId}/steps`);
    assert.deepEqual(steps.map((x) => [x.type, x.status]), [['message_creation', 'failed']]);
    assert.equal(typeof steps[0].failed_at, 'number');
    assert.deepEqual(steps[0].last_error, { code: 'server_error', message: 'The run was interrupted by a restart of the server.' });

    // The thread is free: a new run completes, and the failed run's partial
    // message is part of the history it sends.
    up.script({ text: 'The end.' });
    const again = await c2.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(again.status, 'completed');
    const after2 = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(after2.map((m) => m.content.map((c) => c.text.value)), [['tell me a long story'], [], ['The end.']]);
    assert.equal(after2[2].run_id, again.id);
    assert.equal(up.requests.length, 2);
    // A restarted process fails the run once: another restart changes nothing.
    const before = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${runId}`);
    s = await t.restart({ clean: true });
    const later = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${runId}`);
    assert.equal(later.text, before.text);
  });
});

test('kill -9 before the model answered at all: the run fails, no message appears', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'never', wait: new Promise(() => {}) });
    const st = await openStream(s, `/v1/threads/${thread.id}/runs`, { assistant_id: a.id, stream: true },
      (t) => t.includes('event: thread.run.in_progress'));
    const runId = /"id":"(run_[^"]+)"/.exec(st.text)[1];
    await up.waitForRequest(0);
    await t.kill9();
    await st.rest;

    s = await t.start();
    const run = await openai(s).beta.threads.runs.retrieve(runId, { thread_id: thread.id });
    assert.equal(run.status, 'failed');
    assert.equal(run.last_error.code, 'server_error');
    assert.match(run.last_error.message, /interrupted by a restart/);
    const msgs = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(msgs.map((m) => m.role), ['user']);
    const steps = await listAll(s, `/v1/threads/${thread.id}/runs/${runId}/steps`);
    assert.deepEqual(steps, []);
    // Messages can be added again (no active run).
    const m = await openai(s).beta.threads.messages.create(thread.id, { role: 'user', content: 'still there?' });
    assert.equal(m.role, 'user');
  });
});

test('kill -9 while a run waits for tool outputs: after restart the outputs are accepted and the run completes', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'legacy?' }] });
    up.script(
      { tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"legacy"}' }] },
      { text: 'Legacy has 104.' },
    );
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    const waiting = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${run.id}`);
    s = await t.restart();
    const c2 = openai(s);
    // Unchanged by the restart.
    const again = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${run.id}`);
    assert.equal(again.text, waiting.text);
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    const done = await c2.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: call.id, output: '{"count":104}' }],
    }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'completed');
    assert.equal(done.last_error, null);
    const msgs = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(msgs.map((m) => [m.role, m.content[0].text.value]), [['user', 'legacy?'], ['assistant', 'Legacy has 104.']]);
    const steps = await listAll(s, `/v1/threads/${thread.id}/runs/${run.id}/steps`);
    assert.deepEqual(steps.map((x) => [x.type, x.status]), [['tool_calls', 'completed'], ['message_creation', 'completed']]);
    assert.equal(steps[0].step_details.tool_calls[0].function.output, '{"count":104}');
    // The second call carried the exchange made before the restart.
    assert.equal(up.requests.length, 2);
    assert.deepEqual(up.requests[1].body.messages.slice(-2), [
      { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '{"systemName":"legacy"}' } }] },
      { role: 'tool', tool_call_id: call.id, content: '{"count":104}' },
    ]);
  });
});

test('kill -9 after a run completed: run, steps and messages are intact byte for byte', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'prod?' }] });
    up.script(
      { tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}' }], usage: { prompt_tokens: 7, completion_tokens: 2 } },
      { text: 'Production has 5.', usage: { prompt_tokens: 9, completion_tokens: 4 } },
    );
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, metadata: { k: 'v' } }, { pollIntervalMs: 20 });
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: '5' }],
    }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.usage, { prompt_tokens: 16, completion_tokens: 6, total_tokens: 22 });
    const paths = [
      `/v1/threads/${thread.id}`,
      `/v1/threads/${thread.id}/runs/${run.id}`,
      `/v1/threads/${thread.id}/runs?order=asc`,
      `/v1/threads/${thread.id}/runs/${run.id}/steps?order=asc`,
      `/v1/threads/${thread.id}/messages?order=asc`,
    ];
    const before = [];
    for (const p of paths) before.push((await raw(s, 'GET', p)).text);
    s = await t.restart();
    for (let i = 0; i < paths.length; i++) {
      const r = await raw(s, 'GET', paths[i]);
      assert.equal(r.status, 200);
      assert.equal(r.text, before[i], paths[i]);
    }
    // And the thread takes the next run.
    up.script({ text: 'ok' });
    const next = await openai(s).beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(next.status, 'completed');
  });
});

test('--run-ttl: a run left waiting for tool outputs expires with its step; late outputs are refused', async () => {
  const { up, s, client, close } = await setupRuns({ args: ['--run-ttl', '1'] });
  try {
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'staging?' }] });
    up.script({ tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}' }], usage: { prompt_tokens: 13, completion_tokens: 7 } });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    assert.equal(run.expires_at, run.created_at + 1);
    assert.equal(run.usage, null, 'not final yet');
    const t0 = Date.now();
    const exp = await waitStatus(s, thread.id, run.id, 'expired');
    assert.equal(exp.status, 'expired');
    assert.ok(Date.now() - t0 < 3000, 'expired within about a second of expires_at');
    assert.equal(exp.expires_at, null);
    assert.equal(exp.required_action, null);
    assert.equal(exp.last_error, null);
    assert.equal(exp.completed_at, null);
    assert.equal(exp.failed_at, null);
    assert.equal(exp.cancelled_at, null);
    assert.deepEqual(exp.usage, { prompt_tokens: 13, completion_tokens: 7, total_tokens: 20 }, 'the call, once the run ended');
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data.length, 1);
    assert.equal(steps.data[0].type, 'tool_calls');
    assert.equal(steps.data[0].status, 'expired');
    assert.equal(typeof steps.data[0].expired_at, 'number');
    assert.equal(steps.data[0].completed_at, null);
    assert.equal(steps.data[0].step_details.tool_calls[0].function.output, null);
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      body: { tool_outputs: [{ tool_call_id: call.id, output: '0' }] },
    });
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: 'Runs in status "expired" do not accept tool outputs.', type: 'invalid_request_error', param: null, code: null });
    // Cancelling an expired run is refused too, and the thread is free.
    await assert.rejects(client.beta.threads.runs.cancel(run.id, { thread_id: thread.id }), (e) => e.status === 400);
    const m = await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'next' });
    assert.equal(m.role, 'user');
    assert.equal(up.requests.length, 1);
  } finally {
    await close();
  }
});

test('ASSISTD_RUN_TTL: createAndPoll returns a run that expired while the model was still working', async () => {
  const { up, s, client, close } = await setupRuns({ env: { ASSISTD_RUN_TTL: '1' } });
  try {
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'slow' }] });
    // One piece, then silence: the message is open when the run expires.
    up.script({ text: 'Thinking about it', chunks: ['Thinking ', 'about it'], stallAfter: 1 });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 50 });
    assert.equal(run.status, 'expired');
    assert.equal(run.expires_at, null);
    assert.equal(run.last_error, null);
    assert.equal(typeof run.started_at, 'number');
    await up.waitForAbort(0); // the model call was stopped
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.equal(msgs.data.length, 1);
    assert.equal(msgs.data[0].status, 'incomplete');
    assert.deepEqual(msgs.data[0].incomplete_details, { reason: 'run_expired' });
    assert.deepEqual(msgs.data[0].content, [{ type: 'text', text: { value: 'Thinking ', annotations: [] } }]);
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.deepEqual(steps.data.map((x) => [x.type, x.status, typeof x.expired_at]), [['message_creation', 'expired', 'number']]);
    // A streaming run expires the same way: thread.run.expired, then done.
    up.script({ text: 'never', wait: new Promise(() => {}) });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const names = [...r.text.matchAll(/^event: (.+)$/gm)].map((x) => x[1]);
    assert.deepEqual(names, ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress', 'thread.run.expired', 'done']);
  } finally {
    await close();
  }
});

test('a run waiting for tool outputs whose expires_at passed while the server was down expires at restart', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'prod?' }] });
    up.script({ tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}' }] });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    await t.kill9();
    // expires_at is created_at (whole seconds) + 3: at most 3 s after the run began.
    await sleep(3100);
    s = await t.start();
    // Outputs sent at once are refused whether the restart's expiry or the
    // handler gets there first.
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      body: { tool_outputs: [{ tool_call_id: call.id, output: '5' }] },
    });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, 'Runs in status "expired" do not accept tool outputs.');
    const exp = await waitStatus(s, thread.id, run.id, 'expired', 1000);
    assert.equal(exp.status, 'expired');
    const steps = await openai(s).beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.deepEqual(steps.data.map((x) => x.status), ['expired']);
  }, { args: ['--run-ttl', '3'] });
});

test('--run-ttl and --sse-heartbeat take whole seconds from 1', async () => {
  for (const [args, re] of [
    [['--run-ttl', '0'], /invalid value for --run-ttl/],
    [['--run-ttl', 'soon'], /invalid value for --run-ttl/],
    [['--sse-heartbeat', '0'], /invalid value for --sse-heartbeat/],
    [['--sse-heartbeat', '-1'], /invalid value for --sse-heartbeat/],
  ]) {
    const r = await runAssistd(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
  const r = await runAssistd(['--help']);
  assert.match(r.stdout, /^ {2}--run-ttl +ASSISTD_RUN_TTL +.*\(default: 600\)$/m);
  assert.match(r.stdout, /^ {2}--sse-heartbeat +ASSISTD_SSE_HEARTBEAT +.*\(default: 15\)$/m);
  const e = await runAssistd([], { env: { ASSISTD_RUN_TTL: '0' } });
  assert.equal(e.code, 2);
  assert.match(e.stderr, /invalid value for ASSISTD_RUN_TTL/);
});

// The thread's sandbox directories (DATA/sandbox/s-*) holding `name`.
function sandboxFiles(dataDir, name) {
  const root = path.join(dataDir, 'sandbox');
  if (!existsSync(root)) return [];
  return readdirSync(root).map((d) => path.join(root, d, name)).filter((f) => existsSync(f));
}

// Processes whose command line binds a session directory of dataDir.
function sandboxProcesses(dataDir) {
  const needle = path.join(dataDir, 'sandbox') + '/';
  const out = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(pid);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

test('kill -9 while code_interpreter executes: failed at restart with last_error, step failed, the thread runs code again', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let s = t.s;
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'take your time' }] });
    const src = 'open("/mnt/data/started", "w").write("1")\nimport time\ntime.sleep(30)';
    up.script({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    // The cell is running inside the sandbox (it wrote its marker).
    const end = Date.now() + 30000;
    while (!sandboxFiles(t.dataDir, 'started').length) {
      assert.ok(Date.now() < end, 'the code never started');
      await sleep(50);
    }
    const busy = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(busy.status, 'in_progress');
    assert.ok(sandboxProcesses(t.dataDir).length > 0, 'the interpreter is found by its session directory');
    await t.kill9();
    // The interpreter (bwrap --die-with-parent) does not outlive the server.
    const gone = Date.now() + 5000;
    while (sandboxProcesses(t.dataDir).length) {
      assert.ok(Date.now() < gone, `sandbox processes survived kill -9: ${sandboxProcesses(t.dataDir)}`);
      await sleep(50);
    }

    s = await t.start();
    const c2 = openai(s);
    const failed = await c2.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(failed.status, 'failed');
    assert.deepEqual(failed.last_error, { code: 'server_error', message: 'The run was interrupted by a restart of the server.' });
    assert.equal(typeof failed.failed_at, 'number');
    assert.equal(failed.required_action, null);
    const steps = await listAll(s, `/v1/threads/${thread.id}/runs/${run.id}/steps`);
    assert.deepEqual(steps.map((x) => [x.type, x.status]), [['tool_calls', 'failed']]);
    assert.deepEqual(steps[0].last_error, { code: 'server_error', message: 'The run was interrupted by a restart of the server.' });
    const call = steps[0].step_details.tool_calls[0];
    assert.equal(call.type, 'code_interpreter');
    assert.equal(call.code_interpreter.input, src);
    // No reply was written and the model was called once.
    const msgs = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(msgs.map((m) => m.role), ['user']);
    assert.equal(up.requests.length, 1);

    // The thread is free and its code runs again in a new interpreter.
    up.script({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: 'print(6 * 7)' }) }] }, { text: '42' });
    const again = await c2.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(again.status, 'completed', JSON.stringify(again.last_error));
    const st = (await listAll(s, `/v1/threads/${thread.id}/runs/${again.id}/steps`)).find((x) => x.type === 'tool_calls');
    assert.deepEqual(st.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
  });
});

// A store write that fails: the database refuses (a trigger added from
// outside, as a full disk would) to store any run as completed. The run's
// end cannot be committed, so the stream says so with an `error` event
// (spec ErrorEvent, flat) and ends; the run does not stay in_progress with
// nobody working on it: it is failed (server_error) a second later, its
// message closed incomplete and its step failed, and the thread is free.
test('a run whose end cannot be committed: error event on the stream, run failed soon after, thread usable', async () => {
  const t = await setupRuns();
  const db = path.join(t.s.dataDir, 'assistd.db');
  const sql = (q) => execFileSync('sqlite3', ['-cmd', '.timeout 5000', db, q]);
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    sql(`CREATE TRIGGER refuse_completed BEFORE UPDATE ON objects
         WHEN NEW.kind = 'run' AND json_extract(NEW.body, '$.status') = 'completed'
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;`);
    up.script({ text: 'Hello there', chunks: ['Hello ', 'there'] });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.equal(r.status, 200);
    const ev = parseSSE(r.text);
    assert.deepEqual(ev.map((e) => e.event), ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress',
      'thread.run.step.created', 'thread.run.step.in_progress', 'thread.message.created', 'thread.message.in_progress',
      'thread.message.delta', 'thread.message.delta', 'error', 'done']);
    assert.deepEqual(ev.at(-2).data, { code: 'server_error', message: 'The run could not be saved.', param: null, type: 'server_error' });
    const runId = ev[0].data.id;
    const failed = await waitStatus(s, thread.id, runId, 'failed');
    assert.equal(failed.status, 'failed');
    assert.deepEqual(failed.last_error, { code: 'server_error', message: 'The run could not be saved.' });
    assert.equal(typeof failed.failed_at, 'number');
    assert.equal(failed.expires_at, null);
    const steps = await listAll(s, `/v1/threads/${thread.id}/runs/${runId}/steps`);
    assert.deepEqual(steps.map((x) => [x.type, x.status]), [['message_creation', 'failed']]);
    const msgs = await listAll(s, `/v1/threads/${thread.id}/messages`);
    assert.deepEqual(msgs.map((m) => [m.role, m.status]), [['user', 'completed'], ['assistant', 'incomplete']]);
    assert.deepEqual(msgs[1].incomplete_details, { reason: 'run_failed' });

    // Through the SDK: the stream helper rejects on the error event (openai
    // 6.x hands the flat ErrorEvent to AssistantStream, which throws).
    up.script({ text: 'Again' });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    await assert.rejects(stream.finalRun(), /error event/);
    const list = await client.beta.threads.runs.list(thread.id);
    const second = await waitStatus(s, thread.id, list.data[0].id, 'failed');
    assert.equal(second.status, 'failed');

    // Once the store takes writes again, the thread runs as before.
    sql('DROP TRIGGER refuse_completed;');
    up.script({ text: 'Fine now' });
    const ok = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(ok.status, 'completed');
  } finally {
    await t.close();
  }
});

// A tool_calls step that ends other than completed -- the run cancelled
// while it waited for outputs -- shows its call's usage too (usage is null
// only while a step is in progress), and the run the same, once ended.
test('cancel while waiting for tool outputs: the cancelled step and the run show the call\'s usage', async () => {
  const { up, s, client, close } = await setupRuns();
  try {
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'staging?' }] });
    up.script({ tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}' }], usage: { prompt_tokens: 11, completion_tokens: 7 } });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    const done = await waitStatus(s, thread.id, run.id, 'cancelled');
    const want = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };
    assert.deepEqual(done.usage, want);
    const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data;
    assert.deepEqual(steps.map((s) => [s.type, s.status, s.usage]), [['tool_calls', 'cancelled', want]]);
  } finally {
    await close();
  }
});

// Run streams in detail: heartbeats (--sse-heartbeat) as SSE comments the
// SDK ignores, a client that goes away mid-stream, the exact event sequence
// and delta shapes of a function call and of submit_tool_outputs with
// stream, text followed by a tool call in one answer, how failed,
// cancelled, dropped, stalled and unreachable model calls end a stream, and
// back-pressure from a client that stops reading.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startServer, openai, raw, KEY } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { setupRuns as setup, parseSSE, waitStatus, withRestarts } from './lib/runs.mjs';

const tmp = mkdtempSync(path.join(tmpdir(), 'assistd-runs-stream-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A backends file for the scripted upstream, with per-backend options.
function backendsFile(up, backend = {}) {
  const f = path.join(tmp, `backends-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify({
    backends: [{ name: 'up', kind: 'openai', base_url: up.url, api_key_env: 'UP_KEY', ...backend }],
    models: [{ id: 'gpt-4o', backend: 'up' }],
  }));
  return f;
}

const tool = {
  type: 'function',
  function: { name: 'getVulnerabilityCount', parameters: { type: 'object', properties: { systemName: { type: 'string' } } } },
};

// A raw SSE body as [{event, data}] (comments dropped, data parsed).
const names = (ev) => ev.map((e) => e.event);

const RUN_OPEN = ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress'];
const MSG_OPEN = ['thread.run.step.created', 'thread.run.step.in_progress', 'thread.message.created', 'thread.message.in_progress'];
const TOOL_OPEN = ['thread.run.step.created', 'thread.run.step.in_progress'];

test('heartbeats: ": keep-alive" comments while the model is silent; the SDK ignores them', async () => {
  const t = await setup({ args: ['--sse-heartbeat', '1'] });
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'Slow answer', chunks: ['Slow ', 'answer'], wait: sleep(2500) });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.equal(r.status, 200);
    // Comment frames only, never inside an event, between in_progress and
    // the first step.
    const frames = r.text.split('\n\n').filter(Boolean);
    const beats = frames.filter((f) => f.startsWith(':'));
    assert.ok(beats.length >= 1, 'at least one heartbeat in 2.5 s of silence');
    assert.ok(beats.every((f) => f === ': keep-alive'));
    const inProgress = frames.findIndex((f) => f.startsWith('event: thread.run.in_progress\n'));
    const firstStep = frames.findIndex((f) => f.startsWith('event: thread.run.step.created\n'));
    const beatAt = frames.indexOf(': keep-alive');
    assert.ok(inProgress < beatAt && beatAt < firstStep);
    assert.deepEqual(names(parseSSE(r.text)), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.message.delta',
      'thread.message.completed', 'thread.run.step.completed', 'thread.run.completed', 'done']);

    // Through the SDK: the same silence, no spurious events, the run completes.
    up.script({ text: 'Later', chunks: ['Later'], wait: sleep(2500) });
    const seen = [];
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id }).on('event', (e) => seen.push(e.event));
    const final = await stream.finalRun();
    assert.equal(final.status, 'completed');
    assert.deepEqual(seen, [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.message.completed',
      'thread.run.step.completed', 'thread.run.completed']);
  } finally {
    await t.close();
  }
});

test('heartbeats: none at the default 15 s in a 2 s silence', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'ok', wait: sleep(2000) });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.ok(!r.text.includes(': keep-alive'));
    assert.equal(parseSSE(r.text).at(-2).event, 'thread.run.completed');
  } finally {
    await t.close();
  }
});

test('a client that disconnects mid-stream does not stop the run; the message is stored complete', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'count' }] });
    const pieces = ['one ', 'two ', 'three ', 'four ', 'five'];
    up.script({ text: pieces.join(''), chunks: pieces, delayMs: 100 });
    const ac = new AbortController();
    const res = await fetch(`${s.url}/v1/threads/${thread.id}/runs`, {
      method: 'POST', signal: ac.signal,
      headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2', 'Content-Type': 'application/json' },
      body: JSON.stringify({ assistant_id: a.id, stream: true }),
    });
    const reader = res.body.getReader();
    let text = '';
    const dec = new TextDecoder();
    while (!text.includes('event: thread.message.delta')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    ac.abort();
    await reader.read().catch(() => {});
    const runId = /"id":"(run_[^"]+)"/.exec(text)[1];
    const run = await waitStatus(client, thread.id, runId, 'completed');
    assert.equal(run.status, 'completed');
    assert.equal(up.requests[0].aborted, false, 'the model call ran to its end');
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: runId });
    assert.equal(msgs.data.length, 1);
    assert.equal(msgs.data[0].status, 'completed');
    assert.deepEqual(msgs.data[0].content, [{ type: 'text', text: { value: 'one two three four five', annotations: [] } }]);
    // The server still streams to the next client.
    up.script({ text: 'again' });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.equal(parseSSE(r.text).at(-2).event, 'thread.run.completed');
  } finally {
    await t.close();
  }
});

// An HTTP/1.0 client (nginx's default towards a backend) cannot take chunked
// encoding: its stream must be the bare events, ended by closing the
// connection -- no chunk sizes in the body, once the stream goes past its
// first events and on to the slower deltas.
test('an HTTP/1.0 client gets the bare event stream (no chunk framing), ended by closing', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'count' }] });
    const pieces = ['one ', 'two ', 'three'];
    up.script({ text: pieces.join(''), chunks: pieces, delayMs: 50 });
    const body = JSON.stringify({ assistant_id: a.id, stream: true });
    const resp = await new Promise((resolve, reject) => {
      const sock = net.connect(s.port, '127.0.0.1');
      const got = [];
      sock.on('data', (d) => got.push(d));
      sock.on('end', () => resolve(Buffer.concat(got).toString('utf8')));
      sock.on('error', reject);
      sock.write(`POST /v1/threads/${thread.id}/runs HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
        `OpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    const split = resp.indexOf('\r\n\r\n');
    const head = resp.slice(0, split);
    const events = resp.slice(split + 4);
    assert.match(head, /^HTTP\/1\.[01] 200/);
    assert.match(head, /content-type: text\/event-stream/i);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.doesNotMatch(events, /\r\n/, 'no chunk framing in the body');
    const ev = parseSSE(events);
    assert.deepEqual(ev.filter((e) => e.event === 'thread.message.delta').map((e) => e.data.delta.content[0].text.value), pieces);
    assert.equal(ev[0].event, 'thread.run.created');
    assert.deepEqual(ev.slice(-2).map((e) => e.event), ['thread.run.completed', 'done']);
    assert.ok(events.endsWith('event: done\ndata: [DONE]\n\n'));
    const done = await client.beta.threads.runs.retrieve(ev[0].data.id, { thread_id: thread.id });
    assert.equal(done.status, 'completed');
  } finally {
    await t.close();
  }
});

// SIGTERM while a run streams its answer: the run ends failed on the way
// out, committed, and the stream says so -- the open message incomplete,
// the step failed, thread.run.failed with a clear last_error, then done --
// so the SDK's finalRun() has a run to give, and nothing is left for the
// next start to repair.
test('SIGTERM mid-answer: the stream ends with the run failed ("The server is shutting down."), then done', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    const client = t.client();
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'count' }] });
    up.script({ text: 'one two', chunks: ['one ', 'two'], stallAfter: 1 });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const seen = [];
    let first;
    const gotDelta = new Promise((r) => { first = r; });
    stream.on('event', (e) => { seen.push(e.event); if (e.event === 'thread.message.delta') first(); });
    await gotDelta;
    t.s.proc.kill('SIGTERM');
    const run = await stream.finalRun();
    assert.equal(run.status, 'failed');
    assert.deepEqual(run.last_error, { code: 'server_error', message: 'The server is shutting down.' });
    assert.deepEqual(seen.slice(seen.indexOf('thread.message.delta')), [
      'thread.message.delta', 'thread.message.incomplete', 'thread.run.step.failed', 'thread.run.failed']);
    await t.stop(); // exited 0, no sanitizer report
    await t.start();
    const c2 = t.client();
    assert.deepEqual(await c2.beta.threads.runs.retrieve(run.id, { thread_id: thread.id }), run, 'stored as announced');
    const msgs = (await c2.beta.threads.messages.list(thread.id, { run_id: run.id })).data;
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0].status, 'incomplete');
    assert.deepEqual(msgs[0].incomplete_details, { reason: 'run_failed' });
    assert.equal(msgs[0].content[0].text.value, 'one ');
  });
});

// Parallel calls whose argument pieces the upstream interleaves (0, 1, 0,
// 1, ...): the stream relays them one call after the other, so the SDK's
// AssistantStream sees each call created once, its deltas, and done with
// its whole arguments -- interleaved deltas made it fire toolCallDone with
// partial arguments, several times per call.
test('parallel calls interleaved upstream: the SDK helper sees each call once, done with its whole arguments', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Paris and Tokyo?' }] });
    up.script({ tool_calls: [
      { name: 'get_weather', arguments: '{"city":"Paris"}', chunks: ['{"ci', 'ty":"Pa', 'ris"}'] },
      { name: 'get_weather', arguments: '{"city":"Tokyo"}', chunks: ['{"ci', 'ty":"To', 'kyo"}'] },
    ] });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const log = [];
    stream.on('toolCallCreated', (c) => log.push(['created', c.id]));
    stream.on('toolCallDelta', (d, snap) => log.push(['delta', snap.id]));
    stream.on('toolCallDone', (c) => log.push(['done', c.id, c.function.arguments]));
    const run = await stream.finalRun();
    assert.equal(run.status, 'requires_action');
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    assert.deepEqual(calls.map((c) => c.function.arguments), ['{"city":"Paris"}', '{"city":"Tokyo"}']);
    // The upstream did interleave (the fixture's openai dialect does).
    const created = log.filter((e) => e[0] === 'created');
    const done = log.filter((e) => e[0] === 'done');
    assert.deepEqual(created.map((e) => e[1]), calls.map((c) => c.id));
    assert.deepEqual(done.map((e) => [e[1], e[2]]), calls.map((c) => [c.id, c.function.arguments]));
    // Every event of a call comes before the next call's.
    const order = log.map((e) => e[1]);
    assert.deepEqual(order, [...order].sort((x, y) => calls.findIndex((c) => c.id === x) - calls.findIndex((c) => c.id === y)));
    assert.ok(log.some((e) => e[0] === 'delta' && e[1] === calls[0].id), 'the first call streams its pieces');
  } finally {
    await t.close();
  }
});

// A model that refuses (chat-completions delta.refusal, as under a
// json_schema response_format) gives a message whose content is a refusal
// part (MessageContentRefusalObject), announced as a refusal delta.
test('a refusal from the model becomes a refusal content part (delta and stored message)', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Help me with something bad.' }] });
    const refusal = "I'm sorry, I can't help with that.";
    up.script({
      raw: async (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta, fr = null) => `data: ${JSON.stringify({ id: 'chatcmpl-rf', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: fr }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: null, refusal: '' }));
        res.write(chunk({ refusal: "I'm sorry, " }));
        res.write(chunk({ refusal: "I can't help with that." }));
        res.write(chunk({}, 'stop'));
        res.end('data: [DONE]\n\n');
      },
    });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const events = [];
    stream.on('event', (e) => events.push(e));
    const run = await stream.finalRun();
    assert.equal(run.status, 'completed');
    const names = events.map((e) => e.event);
    assert.deepEqual(names.slice(names.indexOf('thread.message.created')), ['thread.message.created', 'thread.message.in_progress',
      'thread.message.delta', 'thread.message.completed', 'thread.run.step.completed', 'thread.run.completed']);
    const delta = events.find((e) => e.event === 'thread.message.delta').data;
    assert.deepEqual(delta.delta, { content: [{ index: 0, type: 'refusal', refusal }] });
    const done = events.find((e) => e.event === 'thread.message.completed').data;
    assert.deepEqual(done.content, [{ type: 'refusal', refusal }]);
    const stored = await client.beta.threads.messages.retrieve(done.id, { thread_id: thread.id });
    assert.deepEqual(stored, done);
    // The next run's prompt carries the refusal as the assistant's words.
    up.script('Fine.');
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Then something else.' });
    const next = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(next.status, 'completed');
    assert.deepEqual(up.requests[1].body.messages.slice(-2), [
      { role: 'assistant', content: refusal }, { role: 'user', content: 'Then something else.' }]);
  } finally {
    await t.close();
  }
});

test('function call stream: exact events and step deltas; submit_tool_outputs stream starts with step.completed', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'staging?' }] });
    up.script(
      { tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}', chunks: ['{"system', 'Name":"sta', 'ging"}'] }], usage: { prompt_tokens: 11, completion_tokens: 5 } },
      { text: 'Staging is clean.', chunks: ['Staging ', 'is clean.'], usage: { prompt_tokens: 30, completion_tokens: 4 } },
    );
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    let ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, ...TOOL_OPEN,
      'thread.run.step.delta', 'thread.run.step.delta', 'thread.run.step.delta', 'thread.run.step.delta',
      'thread.run.requires_action', 'done']);
    assert.match(r.text, /\n\nevent: thread\.run\.requires_action\ndata: \{[^\n]*\}\n\nevent: done\ndata: \[DONE\]\n\n$/);
    const step = ev[3].data;
    assert.equal(step.type, 'tool_calls');
    assert.equal(step.status, 'in_progress');
    assert.deepEqual(step.step_details, { type: 'tool_calls', tool_calls: [] });
    assert.equal(step.usage, null);
    assert.deepEqual(ev[4].data, step);
    const deltas = ev.filter((e) => e.event === 'thread.run.step.delta').map((e) => e.data);
    const run = ev.at(-2).data;
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    assert.match(call.id, /^call_/);
    for (const d of deltas) {
      assert.equal(d.id, step.id);
      assert.equal(d.object, 'thread.run.step.delta');
    }
    assert.deepEqual(deltas[0].delta, { step_details: { type: 'tool_calls', tool_calls: [
      { index: 0, id: call.id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '', output: null } }] } });
    assert.deepEqual(deltas.slice(1).map((d) => d.delta), ['{"system', 'Name":"sta', 'ging"}'].map((p) => (
      { step_details: { type: 'tool_calls', tool_calls: [{ index: 0, type: 'function', function: { arguments: p } }] } })));
    assert.equal(run.status, 'requires_action');
    assert.deepEqual(run.required_action, { type: 'submit_tool_outputs', submit_tool_outputs: { tool_calls: [
      { id: call.id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}' } }] } });
    // The tool step is still in progress after the stream ended. Neither it
    // nor the run shows usage yet: RunStepCompletionUsage and
    // RunCompletionUsage are null until the step completes / the run ends.
    const waiting = await client.beta.threads.runs.steps.retrieve(step.id, { thread_id: thread.id, run_id: run.id });
    assert.equal(waiting.status, 'in_progress');
    assert.equal(waiting.completed_at, null);
    assert.equal(waiting.usage, null);
    assert.equal(run.usage, null);
    assert.equal((await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id })).usage, null);

    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      body: { tool_outputs: [{ tool_call_id: call.id, output: '{"count":0}' }], stream: true },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    ev = parseSSE(r.text);
    assert.deepEqual(names(ev), ['thread.run.step.completed', 'thread.run.queued', 'thread.run.in_progress', ...MSG_OPEN,
      'thread.message.delta', 'thread.message.delta', 'thread.message.completed', 'thread.run.step.completed',
      'thread.run.completed', 'done']);
    const done = ev[0].data;
    assert.equal(done.id, step.id);
    assert.equal(done.status, 'completed');
    assert.equal(typeof done.completed_at, 'number');
    assert.deepEqual(done.step_details.tool_calls, [{ id: call.id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}', output: '{"count":0}' } }]);
    assert.deepEqual(done.usage, { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 });
    const queued = ev[1].data;
    assert.equal(queued.id, run.id);
    assert.equal(queued.status, 'queued');
    assert.equal(queued.usage, null);
    assert.equal(ev[2].data.usage, null); // in_progress
    assert.equal(queued.started_at, run.started_at);
    assert.equal(queued.required_action, null);
    const final = ev.at(-2).data;
    assert.equal(final.status, 'completed');
    assert.deepEqual(final.usage, { prompt_tokens: 41, completion_tokens: 9, total_tokens: 50 });
    const mdeltas = ev.filter((e) => e.event === 'thread.message.delta').map((e) => e.data.delta);
    assert.deepEqual(mdeltas, [
      { content: [{ index: 0, type: 'text', text: { value: 'Staging ', annotations: [] } }] },
      { content: [{ index: 0, type: 'text', text: { value: 'is clean.' } }] },
    ]);
  } finally {
    await t.close();
  }
});

test('text then a tool call in one answer: the message completes before the tool step is created', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'prod?' }] });
    up.script(
      { text: 'Let me check.', chunks: ['Let me ', 'check.'], tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}', chunks: ['{"systemName":"production"}'] }] },
      { text: 'Five.' },
    );
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.message.delta',
      'thread.message.completed', 'thread.run.step.completed', ...TOOL_OPEN, 'thread.run.step.delta', 'thread.run.step.delta',
      'thread.run.requires_action', 'done']);
    const msg = ev.find((e) => e.event === 'thread.message.completed').data;
    assert.deepEqual(msg.content, [{ type: 'text', text: { value: 'Let me check.', annotations: [] } }]);
    assert.equal(msg.status, 'completed');
    const steps = ev.filter((e) => e.event === 'thread.run.step.created').map((e) => e.data.type);
    assert.deepEqual(steps, ['message_creation', 'tool_calls']);
    const run = ev.at(-2).data;
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    const final = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: call.id, output: '5' }],
    }, { pollIntervalMs: 20 });
    assert.equal(final.status, 'completed');
    const list = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    assert.deepEqual(list.data.map((x) => [x.type, x.status]), [['message_creation', 'completed'], ['tool_calls', 'completed'], ['message_creation', 'completed']]);
    const msgs = await client.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.deepEqual(msgs.data.map((m) => m.content[0].text.value), ['prod?', 'Let me check.', 'Five.']);
    // The second call replays the text and the call as the one assistant
    // turn the model produced.
    assert.deepEqual(up.requests[1].body.messages, [
      { role: 'user', content: 'prod?' },
      { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: call.id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}' } }] },
      { role: 'tool', tool_call_id: call.id, content: '5' },
    ]);
  } finally {
    await t.close();
  }
});

test('a failing model (5xx after retries) ends the stream with thread.run.failed, then done', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script(...Array.from({ length: 4 }, () => ({ error: { status: 500, message: 'The server had an error', type: 'server_error' }, headers: { 'retry-after': '0' } })));
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, 'thread.run.failed', 'done']);
    const run = ev.at(-2).data;
    assert.equal(run.status, 'failed');
    assert.equal(run.last_error.code, 'server_error');
    assert.equal(typeof run.last_error.message, 'string');
    assert.equal(typeof run.failed_at, 'number');
    assert.equal(run.expires_at, null);
    assert.equal(up.requests.length, 4);
    // The SDK sees the failed run as the final run.
    up.script(...Array.from({ length: 4 }, () => ({ error: { status: 503, message: 'busy', type: 'server_error' }, headers: { 'retry-after': '0' } })));
    const final = await client.beta.threads.runs.stream(thread.id, { assistant_id: a.id }).finalRun();
    assert.equal(final.status, 'failed');
    assert.equal(final.last_error.code, 'server_error');
  } finally {
    await t.close();
  }
});

test('cancelling a streaming run: cancelling, the open message and step closed, cancelled, done', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'go on' }] });
    up.script({ text: 'Partial and more', chunks: ['Partial', ' and more'], stallAfter: 1 });
    const pending = raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    await up.waitForRequest(0);
    let run;
    for (let i = 0; i < 100 && !run; i++) {
      const l = await client.beta.threads.runs.list(thread.id);
      if (l.data[0]?.status === 'in_progress') run = l.data[0];
      else await sleep(20);
    }
    // Wait for the first piece to be stored as an open message.
    for (let i = 0; i < 100; i++) {
      const m = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
      if (m.data.length) break;
      await sleep(20);
    }
    const c = await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.equal(c.status, 'cancelling');
    const r = await pending;
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.run.cancelling',
      'thread.message.incomplete', 'thread.run.step.cancelled', 'thread.run.cancelled', 'done']);
    assert.equal(ev.find((e) => e.event === 'thread.run.cancelling').data.status, 'cancelling');
    const msg = ev.find((e) => e.event === 'thread.message.incomplete').data;
    assert.deepEqual(msg.incomplete_details, { reason: 'run_cancelled' });
    assert.deepEqual(msg.content, [{ type: 'text', text: { value: 'Partial', annotations: [] } }]);
    const step = ev.find((e) => e.event === 'thread.run.step.cancelled').data;
    assert.equal(typeof step.cancelled_at, 'number');
    const final = ev.at(-2).data;
    assert.equal(final.status, 'cancelled');
    assert.equal(typeof final.cancelled_at, 'number');
    assert.equal(final.expires_at, null);
    await up.waitForAbort(0);
  } finally {
    await t.close();
  }
});

// Cancelled while the model is still writing a function call: the step
// ends cancelled keeping the call as far as it came -- the id, name and
// arguments its deltas had announced -- not an empty list.
test('cancelling while a call is being written: the cancelled step keeps the announced call', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 'get_weather' } }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Weather?' }] });
    up.script({ tool_calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}', chunks: ['{"ci', 'ty":"Paris"}'] }], stallAfter: 1 });
    const pending = raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    await up.waitForRequest(0);
    let step;
    for (let i = 0; i < 200 && !step; i++) {
      const runs = await client.beta.threads.runs.list(thread.id);
      if (runs.data[0]) {
        const st = await client.beta.threads.runs.steps.list(runs.data[0].id, { thread_id: thread.id });
        step = st.data.find((x) => x.type === 'tool_calls');
      }
      if (!step) await sleep(20);
    }
    await sleep(100); // the first argument piece is relayed
    await client.beta.threads.runs.cancel(step.run_id, { thread_id: thread.id });
    const ev = parseSSE((await pending).text);
    const deltas = ev.filter((e) => e.event === 'thread.run.step.delta').map((e) => e.data.delta.step_details.tool_calls[0]);
    assert.equal(deltas[0].function.name, 'get_weather');
    assert.deepEqual(deltas.map((d) => d.function.arguments), ['', '{"ci']);
    const cancelled = ev.find((e) => e.event === 'thread.run.step.cancelled').data;
    assert.deepEqual(cancelled.step_details.tool_calls, [
      { id: deltas[0].id, type: 'function', function: { name: 'get_weather', arguments: '{"ci', output: null } }]);
    const stored = await client.beta.threads.runs.steps.retrieve(cancelled.id, { thread_id: thread.id, run_id: step.run_id });
    assert.deepEqual(stored, cancelled);
    assert.equal(ev.at(-2).event, 'thread.run.cancelled');
  } finally {
    await t.close();
  }
});

test('a model connection dropped mid-answer fails the run; the message is incomplete (run_failed)', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'Hello and goodbye', chunks: ['Hello', ' and', ' goodbye'], dropAfter: 2 });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta', 'thread.message.delta',
      'thread.message.incomplete', 'thread.run.step.failed', 'thread.run.failed', 'done']);
    const run = ev.at(-2).data;
    assert.equal(run.last_error.code, 'server_error');
    const step = ev.find((e) => e.event === 'thread.run.step.failed').data;
    assert.equal(step.last_error.code, 'server_error');
    assert.equal(typeof step.failed_at, 'number');
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.equal(msgs.data[0].status, 'incomplete');
    assert.deepEqual(msgs.data[0].incomplete_details, { reason: 'run_failed' });
    assert.deepEqual(msgs.data[0].content, [{ type: 'text', text: { value: 'Hello and', annotations: [] } }]);
    assert.equal(up.requests.length, 1, 'no retry once text was relayed');
  } finally {
    await t.close();
  }
});

test('timeout_idle_ms: a model that goes silent fails the run with server_error within about a second', async () => {
  const up = await startUpstream({ apiKey: 'up-key' });
  const s = await startServer({ args: ['--config', backendsFile(up, { timeout_idle_ms: 500 })], env: { UP_KEY: 'up-key' } });
  try {
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'Hello there', chunks: ['Hello', ' there'], stallAfter: 1 });
    const t0 = Date.now();
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const elapsed = Date.now() - t0;
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, ...MSG_OPEN, 'thread.message.delta',
      'thread.message.incomplete', 'thread.run.step.failed', 'thread.run.failed', 'done']);
    assert.equal(ev.at(-2).data.last_error.code, 'server_error');
    assert.ok(elapsed >= 450 && elapsed < 1500, `failed after ${elapsed} ms`);
    await up.waitForAbort(0);
  } finally {
    await s.stop();
    await up.close();
  }
});

// A model server that never completes a TCP handshake: a listener whose
// accept queue (backlog 0) is already full, so the kernel drops further
// SYNs and connect() hangs. Python (Debian's, a dependency of the sandbox)
// holds it, since Node accepts every connection by itself.
async function blackhole() {
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', `
import socket, sys
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    held.append(c)
print(port, flush=True)
sys.stdin.read()
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    py.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    py.once('exit', (code) => reject(new Error(`python3 exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/v1`, close: () => { py.stdin.end(); py.kill(); } };
}

test('timeout_connect_ms: a model server that never accepts fails the run with server_error after the retries', async () => {
  const hole = await blackhole();
  const s = await startServer({ args: ['--config', backendsFile(hole, { timeout_connect_ms: 400, max_retries: 1 })], env: { UP_KEY: 'up-key' } });
  try {
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const t0 = Date.now();
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const elapsed = Date.now() - t0;
    const ev = parseSSE(r.text);
    assert.deepEqual(names(ev), [...RUN_OPEN, 'thread.run.failed', 'done']);
    const err = ev.at(-2).data.last_error;
    assert.equal(err.code, 'server_error');
    assert.equal(err.message, 'The model provider did not respond in time.');
    // Two attempts of 400 ms each and a back-off of about 500 ms between.
    assert.match(s.logs(), /upstream POST [^ ]+: status 0, retry 1 in \d+ ms/);
    assert.doesNotMatch(s.logs(), /retry 2/);
    assert.ok(elapsed >= 1100 && elapsed < 5000, `failed after ${elapsed} ms`);
  } finally {
    await s.stop();
    hole.close();
  }
});

// Back-pressure (issue #3: "a slow SSE client never makes memory grow
// without bound"). The client reads the response head and then nothing; the
// model streams one-character pieces as fast as assistd takes them. Once the
// bytes waiting for the client pass the high-water mark, assistd stops
// reading the model call (/metrics shows it paused), so the model's writes
// back up and stop: assistd holds only what it had read. When the client
// reads again the call resumes, and the answer arrives whole and in order.
const metric = async (s, name) => {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec((await raw(s, 'GET', '/metrics', { key: null, beta: false })).text);
  return m ? Number(m[1]) : NaN;
};

test('back-pressure: a client that stops reading pauses the model call; nothing is lost when it reads again', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'talk' }] });
    // At most a million pieces (1 MB of text, about 130 MB of model stream):
    // far more than every socket buffer between the model and the client.
    const MAX = 1_000_000;
    const piece = (i) => String.fromCharCode(97 + (i % 26));
    let sent = 0;
    let finish = false;
    up.script({
      raw: async (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta, fr = null) => `data: ${JSON.stringify({ id: 'chatcmpl-bp', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: fr }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: '' }));
        while (sent < MAX && !finish && !res.destroyed) {
          if (!res.write(chunk({ content: piece(sent++) }))) {
            await new Promise((r) => {
              const go = () => { res.off('drain', go); res.off('close', go); r(); };
              res.on('drain', go);
              res.on('close', go);
            });
          }
        }
        res.write(chunk({}, 'stop'));
        res.end('data: [DONE]\n\n');
      },
    });
    assert.equal(await metric(s, 'assistd_model_calls_paused'), 0);
    const http = await import('node:http');
    let body = '';
    let response; // the paused response, resumed below
    const ended = new Promise((resolve, reject) => {
      const payload = JSON.stringify({ assistant_id: a.id, stream: true });
      const req = http.request(`${s.url}/v1/threads/${thread.id}/runs`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      }, (res) => {
        assert.equal(res.statusCode, 200);
        res.setEncoding('utf8');
        res.pause(); // reads nothing more until resumed below
        res.on('data', (d) => { body += d; });
        res.on('end', resolve);
        res.on('error', reject);
        response = res;
      });
      req.on('error', reject);
      req.end(payload);
    });
    // The call pauses...
    const end = Date.now() + 30000;
    while ((await metric(s, 'assistd_model_calls_paused')) !== 1) {
      assert.ok(Date.now() < end, `never paused; the model sent ${sent} pieces`);
      await sleep(50);
    }
    // ... and the model's stream backs up and stops: assistd reads no more.
    let before = sent;
    for (let i = 0; i < 50; i++) { // until a second passes with no piece sent
      await sleep(1000);
      if (sent === before) break;
      before = sent;
    }
    assert.equal(sent, before, 'the model stream never stopped');
    assert.ok(sent < MAX / 2, `the model sent ${sent} of ${MAX} pieces while the client read nothing`);
    assert.equal(await metric(s, 'assistd_model_calls_paused'), 1);
    assert.equal(await metric(s, 'assistd_runs_active'), 1);
    assert.ok((await metric(s, 'assistd_model_call_pauses_total')) >= 1);
    const stalledAt = sent;
    console.log(`back-pressure: the model stream stopped after ${sent} pieces`);
    // The client reads again; the model is told to finish.
    finish = true;
    response.resume();
    await ended;
    const ev = parseSSE(body);
    assert.deepEqual(names(ev).slice(0, 7), [...RUN_OPEN, ...MSG_OPEN]);
    assert.deepEqual(names(ev).slice(-4), ['thread.message.completed', 'thread.run.step.completed', 'thread.run.completed', 'done']);
    const deltas = ev.filter((e) => e.event === 'thread.message.delta');
    const streamed = deltas.map((e) => e.data.delta.content[0].text.value).join('');
    let want = '';
    for (let i = 0; i < sent; i++) want += piece(i);
    assert.ok(sent >= stalledAt);
    assert.equal(streamed.length, want.length);
    assert.ok(streamed === want, 'the deltas are every piece, in order');
    const msgs = await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 });
    assert.ok(msgs.data[0].content[0].text.value === want, 'the stored message is the whole answer');
    assert.equal(await metric(s, 'assistd_model_calls_paused'), 0);
    const idle = Date.now() + 5000;
    while ((await metric(s, 'assistd_runs_active')) !== 0) {
      assert.ok(Date.now() < idle, 'the run never left the engine');
      await sleep(20);
    }
  } finally {
    await t.close();
  }
});

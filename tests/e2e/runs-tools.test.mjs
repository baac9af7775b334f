// The edges of the built-in tools inside runs: a run cancelled, expired or
// interrupted by a restart while its code executes; a tool_calls step with
// both a built-in call and a function call; file_search called with broken
// arguments; code_interpreter on a server whose sandbox did not start.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupRuns, withRestarts } from './lib/runs.mjs';

const poll = { pollIntervalMs: 25 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const code = (src) => ({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });

// Polls until the run's code_interpreter step exists and has been handed to
// the sandbox (the step is stored before the pool runs it), then a little
// longer so that the cell is running.
async function waitCodeStep(client, threadId, runId) {
  for (let i = 0; i < 400; i++) {
    const steps = await client.beta.threads.runs.steps.list(runId, { thread_id: threadId });
    const st = steps.data.find((s) => s.type === 'tool_calls');
    if (st) {
      await sleep(700);
      return st;
    }
    await sleep(25);
  }
  const r = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
  throw new Error(`no tool_calls step; run ${r.status} ${JSON.stringify(r.last_error)}`);
}

async function waitTerminal(client, threadId, runId, ms) {
  const t0 = Date.now();
  for (;;) {
    const r = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (!['queued', 'in_progress', 'cancelling'].includes(r.status)) return r;
    if (Date.now() - t0 > ms) throw new Error(`still ${r.status} after ${ms} ms`);
    await sleep(50);
  }
}

test('cancel while the code runs: the run ends cancelled at once, the code is interrupted, the session keeps its state', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Wait a minute.' }] });
    // A warm session first, so that the sleeping cell starts at once.
    up.script(code('kept = 41'), { text: 'Set.' });
    const run0 = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run0.status, 'completed', JSON.stringify(run0.last_error));
    up.script(code('import time\ntime.sleep(60)'));
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    await waitCodeStep(client, thread.id, run.id);
    const t0 = Date.now();
    const c = await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.ok(['cancelling', 'cancelled'].includes(c.status), c.status);
    const done = await waitTerminal(client, thread.id, run.id, 5000);
    assert.equal(done.status, 'cancelled');
    assert.ok(done.cancelled_at);
    const st = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.status, 'cancelled');
    assert.equal(up.requests.length, 3, 'the model is not called after the cancel');

    // The next run's code runs at once (not after the 60 s sleep), in the
    // same session: what the cancelled cell set before sleeping is there.
    up.script(code('print(kept + 1)'), { text: '42' });
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'And now?' });
    const run2 = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run2.status, 'completed', JSON.stringify(run2.last_error));
    assert.ok(Date.now() - t0 < 15000, `took ${Date.now() - t0} ms`);
    const st2 = (await client.beta.threads.runs.steps.list(run2.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.deepEqual(st2.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
  } finally {
    await t.close();
  }
});

test('expiry while the code runs: the run ends expired at its expires_at, not when the code ends', async () => {
  const t = await setupRuns({ args: ['--run-ttl', '2'] });
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Wait a minute.' }] });
    up.script(code('import time\ntime.sleep(60)'));
    const t0 = Date.now();
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    const done = await waitTerminal(client, thread.id, run.id, 10000);
    assert.equal(done.status, 'expired');
    assert.ok(Date.now() - t0 < 10000);
    const st = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.status, 'expired');
    // The server stops promptly too: no cell is left running (stop() below
    // would otherwise wait for the sandbox timeout).
  } finally {
    await t.close();
  }
});

test('restart while the code runs: the run ends failed with a clear last_error, not stuck in_progress', async () => {
  await withRestarts(async (t) => {
    const client = t.client();
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Wait a minute.' }] });
    t.up.script(code('import time\ntime.sleep(60)'));
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    await waitCodeStep(client, thread.id, run.id);
    // A clean stop interrupts the cell (it would otherwise wait for it)
    // and ends the run failed before the server exits.
    const t0 = Date.now();
    await t.restart({ clean: true });
    assert.ok(Date.now() - t0 < 15000, `stop took ${Date.now() - t0} ms`);
    const c2 = t.client();
    const r = await c2.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.last_error, { code: 'server_error', message: 'The server is shutting down.' });
    const st = (await c2.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.status, 'failed');
    // And after a kill -9 in the middle of a cell, the same.
    t.up.script(code('import time\ntime.sleep(60)'));
    const run2 = await c2.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    await waitCodeStep(c2, thread.id, run2.id);
    await t.restart();
    const r2 = await t.client().beta.threads.runs.retrieve(run2.id, { thread_id: thread.id });
    assert.equal(r2.status, 'failed');
    assert.match(r2.last_error.message, /restart/);
  });
});

test('one step with a code_interpreter call and a function call: the code runs, only the function waits for the client', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const fn = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }, fn] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: '6*7 and the weather in Paris?' }] });
    up.script({
      tool_calls: [
        { name: 'code_interpreter', arguments: JSON.stringify({ code: 'print(6*7)' }) },
        { name: 'get_weather', arguments: '{"city":"Paris"}' },
      ],
    }, { text: '42, and it is sunny.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, 'get_weather');
    let st = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.status, 'in_progress');
    assert.deepEqual(st.step_details.tool_calls.map((c) => c.type), ['code_interpreter', 'function']);
    assert.deepEqual(st.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
    assert.equal(st.step_details.tool_calls[1].function.output, null);

    const done = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id,
      { thread_id: thread.id, tool_outputs: [{ tool_call_id: calls[0].id, output: 'sunny' }] }, poll);
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
    st = (await client.beta.threads.runs.steps.retrieve(st.id, { thread_id: thread.id, run_id: run.id }));
    assert.equal(st.status, 'completed');
    assert.equal(st.step_details.tool_calls[1].function.output, 'sunny');
    // The model read both results, each under its own call id, in order.
    const msgs = up.requests[1].body.messages;
    const asst = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.deepEqual(asst.tool_calls.map((c) => c.function.name), ['code_interpreter', 'get_weather']);
    const tools = msgs.filter((m) => m.role === 'tool');
    assert.deepEqual(tools.map((m) => m.tool_call_id), asst.tool_calls.map((c) => c.id));
    assert.equal(tools[0].content.trim(), '42');
    assert.equal(tools[1].content, 'sunny');
  } finally {
    await t.close();
  }
});

test('file_search called with arguments that are not JSON: the model is told to give queries, the run goes on', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const vs = await client.vectorStores.create({ name: 'empty' });
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }],
      tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Search.' }] });
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries": ["unterminated' }] }, { text: 'Sorry.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const tool = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.match(tool.content, /no query/);
    const st = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.status, 'completed');
    assert.deepEqual(st.step_details.tool_calls[0].file_search.results, []);
  } finally {
    await t.close();
  }
});

test('code_interpreter on a server whose sandbox did not start: the model is told, the run completes', async () => {
  // A share directory with the tokenizer but no sandbox driver.
  const share = mkdtempSync(path.join(tmpdir(), 'assistd-share-'));
  const real = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../share');
  symlinkSync(path.join(real, 'tokenizer'), path.join(share, 'tokenizer'));
  const t = await setupRuns({ args: ['--share-dir', share] });
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: '2+2?' }] });
    up.script(code('2+2'), { text: 'It is 4.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const tool = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.equal(tool.content, 'code_interpreter is not available on this server.');
    const st = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data.find((s) => s.type === 'tool_calls');
    assert.equal(st.step_details.tool_calls[0].code_interpreter.input, '2+2');
    assert.deepEqual(st.step_details.tool_calls[0].code_interpreter.outputs, []);
  } finally {
    await t.close();
    rmSync(share, { recursive: true, force: true });
  }
});

// Runs through the official SDK against the scripted upstream model: text
// answers, the seed's function-calling loop, streaming event sequences,
// cancel, upstream failures, the one-active-run rule and bad input. Every
// test also checks what assistd sent upstream.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openai, azure, raw, errorOf } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { setupRuns as setup, parseSSE } from './lib/runs.mjs';

// The seed's tools and local handlers (000_…txt, "Function Calling").
const vulnerabilityTool = {
  type: 'function',
  function: {
    name: 'getVulnerabilityCount',
    description: 'Returns the number of vulnerabilities found in a specific environment.',
    parameters: {
      type: 'object',
      properties: { systemName: { type: 'string', enum: ['production', 'staging', 'legacy'] } },
      required: ['systemName'],
    },
  },
};
const blockTool = {
  type: 'function',
  function: {
    name: 'blockIPAddress',
    description: 'Blocks traffic from an IP address at the firewall.',
    parameters: { type: 'object', properties: { ipAddress: { type: 'string' } }, required: ['ipAddress'] },
  },
};
const mockFunctions = {
  getVulnerabilityCount: (args) => {
    const data = { production: 5, staging: 0, legacy: 104 };
    return JSON.stringify({ count: data[args.systemName.toLowerCase()] || 'unknown' });
  },
  blockIPAddress: (args) => JSON.stringify({ status: 'success', blocked_ip: args.ipAddress }),
};

test('createAndPoll: a text answer completes the run, with message, step and usage', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const asst = await client.beta.assistants.create({ model: 'gpt-4o', instructions: 'You are a personal math tutor.' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Solve 3x + 11 = 14' }] });
    up.script({ text: 'x = 1', usage: { prompt_tokens: 20, completion_tokens: 3 } });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: asst.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.usage, { prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 });
    assert.equal(typeof run.started_at, 'number');
    assert.equal(typeof run.completed_at, 'number');
    assert.equal(run.expires_at, null);
    assert.equal(run.last_error, null);
    assert.equal(run.required_action, null);

    const msgs = await client.beta.threads.messages.list(thread.id);
    assert.equal(msgs.data.length, 2);
    const reply = msgs.data[0];
    assert.equal(reply.role, 'assistant');
    assert.equal(reply.status, 'completed');
    assert.equal(reply.run_id, run.id);
    assert.equal(reply.assistant_id, asst.id);
    assert.deepEqual(reply.content, [{ type: 'text', text: { value: 'x = 1', annotations: [] } }]);
    const byRun = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.deepEqual(byRun.data.map((m) => m.id), [reply.id]);

    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data.length, 1);
    assert.equal(steps.data[0].type, 'message_creation');
    assert.equal(steps.data[0].status, 'completed');
    assert.equal(steps.data[0].step_details.message_creation.message_id, reply.id);
    assert.deepEqual(steps.data[0].usage, { prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 });
    const step = await client.beta.threads.runs.steps.retrieve(steps.data[0].id, { thread_id: thread.id, run_id: run.id });
    assert.deepEqual(step, steps.data[0]);

    // What assistd sent upstream.
    assert.equal(up.requests.length, 1);
    const r = up.requests[0];
    assert.equal(r.headers.authorization, 'Bearer up-key');
    assert.equal(r.body.model, 'gpt-4o');
    assert.equal(r.body.stream, true);
    assert.deepEqual(r.body.stream_options, { include_usage: true });
    assert.deepEqual(r.body.messages, [
      { role: 'system', content: 'You are a personal math tutor.' },
      { role: 'user', content: 'Solve 3x + 11 = 14' },
    ]);
    assert.equal(r.body.tools, undefined);
  } finally {
    await t.close();
  }
});

test("the seed's function-calling loop: requires_action, submitToolOutputsAndPoll, answer", async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const assistant = await client.beta.assistants.create({
      model: 'gpt-4o', name: 'SecOps', instructions: 'You are a security operations assistant.',
      tools: [vulnerabilityTool, blockTool],
    });
    const thread = await client.beta.threads.create();
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'How many vulnerabilities does the legacy system have?' });
    up.script(
      { tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"legacy"}' }] },
      { text: 'The legacy system currently has 104 known vulnerabilities.' },
    );
    // The seed's code, unchanged.
    let run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    while (run.status === 'queued' || run.status === 'in_progress') {
      await new Promise((resolve) => setTimeout(resolve, 20));
      run = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    }
    assert.equal(run.status, 'requires_action');
    const toolCalls = run.required_action.submit_tool_outputs.tool_calls;
    assert.equal(toolCalls.length, 1);
    assert.match(toolCalls[0].id, /^call_/);
    assert.deepEqual(toolCalls[0].function, { name: 'getVulnerabilityCount', arguments: '{"systemName":"legacy"}' });
    // Adding a message while the run waits is refused.
    await assert.rejects(
      client.beta.threads.messages.create(thread.id, { role: 'user', content: 'hurry' }),
      (e) => e.status === 400 && e.message.includes(`Can't add messages to ${thread.id} while a run ${run.id} is active.`),
    );
    const toolOutputs = toolCalls.map((tc) => {
      const args = JSON.parse(tc.function.arguments);
      const result = mockFunctions[tc.function.name](args);
      return { tool_call_id: tc.id, output: result };
    });
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: toolOutputs }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    const messages = await client.beta.threads.messages.list(thread.id);
    assert.equal(messages.data[0].content[0].text.value, 'The legacy system currently has 104 known vulnerabilities.');

    // The second upstream call carries the tool exchange.
    assert.equal(up.requests.length, 2);
    const first = up.requests[0].body;
    assert.deepEqual(first.tools.map((x) => x.function.name), ['getVulnerabilityCount', 'blockIPAddress']);
    assert.equal(first.tool_choice, 'auto');
    assert.equal(first.parallel_tool_calls, true);
    const second = up.requests[1].body.messages;
    assert.deepEqual(second.slice(-2), [
      { role: 'assistant', content: null, tool_calls: [{ id: toolCalls[0].id, type: 'function', function: { name: 'getVulnerabilityCount', arguments: '{"systemName":"legacy"}' } }] },
      { role: 'tool', tool_call_id: toolCalls[0].id, content: '{"count":104}' },
    ]);
    // Steps: tool_calls (completed, with output) then message_creation.
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    assert.deepEqual(steps.data.map((s) => [s.type, s.status]), [['tool_calls', 'completed'], ['message_creation', 'completed']]);
    assert.equal(steps.data[0].step_details.tool_calls[0].function.output, '{"count":104}');
  } finally {
    await t.close();
  }
});

test('parallel tool calls get their own ids; outputs are checked', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [vulnerabilityTool, blockTool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Check prod and block 10.0.0.1' }] });
    up.script({ tool_calls: [
      { name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}' },
      { name: 'blockIPAddress', arguments: '{"ipAddress":"10.0.0.1"}' },
    ] }, { text: 'Done.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    assert.equal(calls.length, 2);
    assert.notEqual(calls[0].id, calls[1].id);
    const path = `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`;
    // Missing one output.
    let r = await raw(s, 'POST', path, { body: { tool_outputs: [{ tool_call_id: calls[0].id, output: 'x' }] } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, `Expected tool outputs for call_ids ['${calls[0].id}', '${calls[1].id}'], got ['${calls[0].id}']`);
    // Unknown id.
    r = await raw(s, 'POST', path, { body: { tool_outputs: [{ tool_call_id: calls[0].id, output: 'x' }, { tool_call_id: 'call_nope', output: 'y' }] } });
    assert.equal(r.status, 400);
    // Duplicate id.
    r = await raw(s, 'POST', path, { body: { tool_outputs: [{ tool_call_id: calls[0].id, output: 'x' }, { tool_call_id: calls[0].id, output: 'y' }] } });
    assert.equal(r.status, 400);
    // The run still waits, and the right answer is accepted.
    const still = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(still.status, 'requires_action');
    const done = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: mockFunctions[c.function.name](JSON.parse(c.function.arguments)) })),
    }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'completed');
    // A completed run takes no outputs.
    r = await raw(s, 'POST', path, { body: { tool_outputs: [] } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, 'Runs in status "completed" do not accept tool outputs.');
  } finally {
    await t.close();
  }
});

test('streaming a text answer: exact event sequence, deltas with index, done', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'Hello there', chunks: ['Hel', 'lo', ' there'] });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const ev = parseSSE(r.text);
    assert.deepEqual(ev.map((e) => e.event), [
      'thread.run.created', 'thread.run.queued', 'thread.run.in_progress',
      'thread.run.step.created', 'thread.run.step.in_progress',
      'thread.message.created', 'thread.message.in_progress',
      'thread.message.delta', 'thread.message.delta', 'thread.message.delta',
      'thread.message.completed', 'thread.run.step.completed', 'thread.run.completed', 'done',
    ]);
    assert.equal(ev.at(-1).data, '[DONE]');
    const d = ev.filter((e) => e.event === 'thread.message.delta').map((e) => e.data);
    assert.deepEqual(d[0].delta, { content: [{ index: 0, type: 'text', text: { value: 'Hel', annotations: [] } }] });
    assert.deepEqual(d[1].delta, { content: [{ index: 0, type: 'text', text: { value: 'lo' } }] });
    assert.equal(d[0].object, 'thread.message.delta');
    const created = ev[0].data;
    assert.equal(created.status, 'queued');
    assert.equal(created.expires_at, created.created_at + 600);
    const completed = ev.at(-2).data;
    assert.equal(completed.status, 'completed');
    assert.equal(completed.expires_at, null);
  } finally {
    await t.close();
  }
});

test('SDK stream helpers: textDelta, finalRun, finalMessages; tool calls stream and resume', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [vulnerabilityTool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'staging?' }] });
    up.script(
      { tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"staging"}' }] },
      { text: 'Staging has 0 vulnerabilities.', chunks: ['Staging has ', '0 vulnerabilities.'] },
    );
    const argPieces = [];
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id })
      .on('toolCallDelta', (delta) => { if (delta.function?.arguments) argPieces.push(delta.function.arguments); });
    const run = await stream.finalRun();
    assert.equal(run.status, 'requires_action');
    assert.equal(argPieces.join(''), '{"systemName":"staging"}');
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    const text = [];
    const s2 = client.beta.threads.runs.submitToolOutputsStream(run.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: call.id, output: '{"count":0}' }],
    }).on('textDelta', (d) => text.push(d.value));
    const final = await s2.finalRun();
    assert.equal(final.status, 'completed');
    assert.equal(text.join(''), 'Staging has 0 vulnerabilities.');
    const msgs = await s2.finalMessages();
    assert.equal(msgs[0].content[0].text.value, 'Staging has 0 vulnerabilities.');
  } finally {
    await t.close();
  }
});

test('createThreadAndRun streams thread.created first; createAndRunPoll works on Azure', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    up.script({ text: 'one' }, { text: 'two' });
    const r = await raw(s, 'POST', '/v1/threads/runs', { body: { assistant_id: a.id, stream: true, thread: { messages: [{ role: 'user', content: 'go' }] } } });
    const ev = parseSSE(r.text);
    assert.equal(ev[0].event, 'thread.created');
    assert.equal(ev[1].event, 'thread.run.created');
    assert.equal(ev[1].data.thread_id, ev[0].data.id);
    assert.equal(ev.at(-2).event, 'thread.run.completed');
    const run = await azure(s).beta.threads.createAndRunPoll({ assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'again' }] } }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    const msgs = await azure(s).beta.threads.messages.list(run.thread_id);
    assert.equal(msgs.data[0].content[0].text.value, 'two');
  } finally {
    await t.close();
  }
});

test('one active run per thread; cancel stops the upstream call', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'long story' }] });
    let release;
    up.script({ text: 'never sent', wait: new Promise((r) => { release = r; }) });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    await up.waitForRequest(0);
    await assert.rejects(
      client.beta.threads.runs.create(thread.id, { assistant_id: a.id }),
      (e) => e.status === 400 && e.error.message === `Thread ${thread.id} already has an active run ${run.id}.`,
    );
    const c = await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.equal(c.status, 'cancelling');
    await up.waitForAbort(0);
    let r;
    for (let i = 0; i < 100; i++) {
      r = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
      if (r.status === 'cancelled') break;
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(r.status, 'cancelled');
    assert.equal(typeof r.cancelled_at, 'number');
    release();
    // The thread is free again.
    up.script({ text: 'ok' });
    const again = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(again.status, 'completed');
    // Cancelling a finished run is refused.
    await assert.rejects(client.beta.threads.runs.cancel(again.id, { thread_id: thread.id }), (e) => e.status === 400);
  } finally {
    await t.close();
  }
});

test('cancel a run waiting for tool outputs', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [vulnerabilityTool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'prod?' }] });
    up.script({ tool_calls: [{ name: 'getVulnerabilityCount', arguments: '{"systemName":"production"}' }] });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    await client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    const done = await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'cancelled');
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data[0].status, 'cancelled');
  } finally {
    await t.close();
  }
});

test('upstream failures: 429 and 5xx are retried, then the run fails with last_error', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ error: { status: 429, message: 'Rate limit', type: 'rate_limit_error', code: 'rate_limit_exceeded' }, headers: { 'retry-after': '0' } }, { text: 'after retry' });
    const ok = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(ok.status, 'completed');
    assert.equal(up.requests.length, 2);
    const fails = Array.from({ length: 4 }, () => ({ error: { status: 429, message: 'Rate limit', type: 'rate_limit_error', code: 'rate_limit_exceeded' }, headers: { 'retry-after': '0' } }));
    up.script(...fails);
    const bad = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(bad.status, 'failed');
    assert.equal(bad.last_error.code, 'rate_limit_exceeded');
    assert.equal(typeof bad.failed_at, 'number');
  } finally {
    await t.close();
  }
});

test('bad input: unknown assistant, bad ids, invalid tool_choice, deleted assistant', async () => {
  const t = await setup();
  try {
    const { client, s } = t;
    const thread = await client.beta.threads.create();
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: 'asst_missing' } });
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, "No assistant found with id 'asst_missing'.");
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: 'undefined' } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, "Invalid 'assistant_id': 'undefined'. Expected an ID that begins with 'asst'.");
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, tool_choice: 'sometimes' } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'tool_choice');
    r = await raw(s, 'POST', '/v1/threads/thread_nope/runs', { body: { assistant_id: a.id } });
    assert.equal(r.status, 404);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/run_nope`);
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, "No run found with id 'run_nope'.");
    await client.beta.assistants.delete(a.id);
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id } });
    assert.equal(r.status, 404);
    const list = await client.beta.threads.runs.list(thread.id);
    assert.equal(list.data.length, 0);
  } finally {
    await t.close();
  }
});

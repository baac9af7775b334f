// Token budgets of runs: truncation_strategy auto within the model's context
// window, max_prompt_tokens and max_completion_tokens over a whole run (every
// model call of it), counted with the model's tokenizer.
//
// Counts used below (o200k_base, checked against tiktoken by the tokenizer's
// unit test): "hello" and " hello" are one token each, so words(n) is n
// tokens; a chat message costs 3 tokens of framing plus its role ("user",
// "system": one token) plus its content, and the reply is primed with 3.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, openai } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { setupRuns } from './lib/runs.mjs';

const poll = { pollIntervalMs: 20 };
const words = (n) => Array(n).fill('hello').join(' ');
const tool = { type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } };

const tmp = mkdtempSync(path.join(tmpdir(), 'assistd-runs-tokens-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// An assistd whose model "small" has the given context window.
async function withWindow(contextWindow, fn) {
  const up = await startUpstream({ apiKey: 'k' });
  const cfg = path.join(tmp, `backends-${contextWindow}.json`);
  writeFileSync(cfg, JSON.stringify({
    backends: [{ name: 'up', kind: 'openai', base_url: up.url, api_key_env: 'UP_KEY', max_retries: 0 }],
    models: [{ id: 'small', backend: 'up', upstream_model: 'small-1', context_window: contextWindow, tokenizer: 'o200k_base' }],
  }));
  const s = await startServer({ args: ['--config', cfg], env: { UP_KEY: 'k' } });
  try {
    await fn({ up, s, client: openai(s) });
  } finally {
    await s.stop();
    await up.close();
  }
}

test('truncation auto: the oldest messages go until the prompt fits the context window; instructions stay', async () => {
  // Window 1000, a sixteenth (62) kept for the answer: 938 for the prompt.
  // Fixed: priming 3 + system (3 + 1 + 1) = 8; each message 3 + 1 + 200 = 204.
  // 8 + 4 * 204 = 824 fits, 8 + 5 * 204 = 1028 does not: the newest 4 go.
  await withWindow(1000, async ({ up, client }) => {
    const a = await client.beta.assistants.create({ model: 'small', instructions: 'sys' });
    const contents = Array.from({ length: 10 }, (_, i) => `m${i}` + ' hello'.repeat(199));
    // "m0" .. "m9" are one token each: every message is 200 tokens.
    const thread = await client.beta.threads.create({ messages: contents.map((c) => ({ role: 'user', content: c })) });
    up.script('ok');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed');
    const sent = up.requests[0].body.messages;
    assert.deepEqual(sent[0], { role: 'system', content: 'sys' });
    assert.deepEqual(sent.slice(1).map((m) => m.content), contents.slice(6));
    // last_messages first, then the window: last_messages 2 sends exactly 2.
    up.script('ok');
    await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, truncation_strategy: { type: 'last_messages', last_messages: 2 } }, poll);
    assert.deepEqual(up.requests[1].body.messages.slice(1).map((m) => m.content), [contents[9], 'ok']);
  });
});

test('a prompt that cannot fit the context window even truncated fails the run with invalid_prompt, without a model call', async () => {
  await withWindow(300, async ({ up, client }) => {
    const a = await client.beta.assistants.create({ model: 'small' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: words(400) }] });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'failed');
    assert.equal(run.last_error.code, 'invalid_prompt');
    assert.match(run.last_error.message, /context|tokens/);
    assert.equal(up.requests.length, 0);
  });
});

test('max_prompt_tokens: the prompt is truncated to fit it; when even the newest message does not fit, the run ends incomplete', async () => {
  const t = await setupRuns();
  try {
    const { up, client } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    // Three 204-token messages; 300 prompt tokens: priming 3 + one message.
    const thread = await client.beta.threads.create({ messages: ['a', 'b', 'c'].map((x) => ({ role: 'user', content: x + ' hello'.repeat(199) })) });
    up.script('ok');
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_prompt_tokens: 300 }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(up.requests[0].body.messages.map((m) => m.content[0]), ['c']);

    // A single 400-token question and a budget of 256: nothing is sent.
    const t2 = await client.beta.threads.create({ messages: [{ role: 'user', content: words(400) }] });
    run = await client.beta.threads.runs.createAndPoll(t2.id, { assistant_id: a.id, max_prompt_tokens: 256 }, poll);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_prompt_tokens' });
    assert.equal(run.last_error, null);
    assert.equal(run.completed_at, null);
    assert.equal(run.expires_at, null);
    assert.deepEqual(run.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    assert.equal(up.requests.length, 1);
  } finally {
    await t.close();
  }
});

test('max_prompt_tokens counts over the whole run: a later call gets what earlier calls left', async () => {
  const t = await setupRuns();
  try {
    const { up, client } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: words(20) }] });
    // The first call reports 250 prompt tokens; 300 - 250 = 50 cannot hold
    // the second call's prompt (the question, the call and its output).
    up.script({ tool_calls: [{ name: 'lookup', arguments: '{}' }], usage: { prompt_tokens: 250, completion_tokens: 5 } });
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_prompt_tokens: 300 }, poll);
    assert.equal(run.status, 'requires_action');
    const call = run.required_action.submit_tool_outputs.tool_calls[0];
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: call.id, output: words(30) }] }, poll);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_prompt_tokens' });
    assert.deepEqual(run.usage, { prompt_tokens: 250, completion_tokens: 5, total_tokens: 255 });
    assert.equal(up.requests.length, 1);
    // The tool step keeps its output and is completed.
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    const st = steps.data.find((x) => x.type === 'tool_calls');
    assert.equal(st.status, 'completed');
    assert.equal(st.step_details.tool_calls[0].function.output, words(30));

    // With room left, the second call is made.
    up.script({ tool_calls: [{ name: 'lookup', arguments: '{}' }], usage: { prompt_tokens: 40, completion_tokens: 5 } }, { text: 'done', usage: { prompt_tokens: 90, completion_tokens: 1 } });
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_prompt_tokens: 300 }, poll);
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: 'x' }] }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.usage, { prompt_tokens: 130, completion_tokens: 6, total_tokens: 136 });
  } finally {
    await t.close();
  }
});

test('max_completion_tokens counts over the whole run: each call may use what earlier calls left', async () => {
  const t = await setupRuns();
  try {
    const { up, client } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'go' }] });
    up.script({ tool_calls: [{ name: 'lookup', arguments: '{}' }], usage: { prompt_tokens: 10, completion_tokens: 180 } }, { text: 'fine', usage: { prompt_tokens: 20, completion_tokens: 2 } });
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_completion_tokens: 300 }, poll);
    assert.equal(up.requests[0].body.max_completion_tokens, 300);
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: '1' }] }, poll);
    assert.equal(run.status, 'completed');
    assert.equal(up.requests[1].body.max_completion_tokens, 120);

    // A first call that used the whole budget: the run ends incomplete
    // after the outputs arrive, without another call.
    up.script({ tool_calls: [{ name: 'lookup', arguments: '{}' }], usage: { prompt_tokens: 10, completion_tokens: 300 } });
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_completion_tokens: 300 }, poll);
    assert.equal(run.status, 'requires_action');
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: '1' }] }, poll);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(up.requests.length, 3);
  } finally {
    await t.close();
  }
});

// An earlier run that called a function and then answered: its call turn and
// the output follow the question and precede the answer.
async function callThenAnswer(up, client, a, thread, output) {
  up.script({ tool_calls: [{ name: 'lookup', arguments: '{}' }] }, { text: 'ok' });
  let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
  assert.equal(run.status, 'requires_action');
  const id = run.required_action.submit_tool_outputs.tool_calls[0].id;
  run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: id, output }] }, poll);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  return id;
}
const shape = (msgs) => msgs.map((m) => m.role + (m.tool_calls ? '+calls' : ''));

test('later runs see an earlier run\'s function calls with their outputs, before the answer they led to', async () => {
  const t = await setupRuns();
  try {
    const { up, client } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'q1' }] });
    const id = await callThenAnswer(up, client, a, thread, 'result');
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'next' });
    up.script('fine');
    await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    const sent = up.requests[2].body.messages;
    assert.deepEqual(shape(sent), ['user', 'assistant+calls', 'tool', 'assistant', 'user']);
    assert.deepEqual(sent[1].tool_calls, [{ id, type: 'function', function: { name: 'lookup', arguments: '{}' } }]);
    assert.deepEqual(sent[2], { role: 'tool', tool_call_id: id, content: 'result' });
    assert.deepEqual([sent[0].content, sent[3].content, sent[4].content], ['q1', 'ok', 'next']);

    // last_messages counts messages; the calls go with the answer they led to.
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'again' });
    up.script('fine');
    await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, truncation_strategy: { type: 'last_messages', last_messages: 4 } }, poll);
    assert.deepEqual(shape(up.requests[3].body.messages), ['assistant+calls', 'tool', 'assistant', 'user', 'assistant', 'user']);
    up.script('fine');
    await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, truncation_strategy: { type: 'last_messages', last_messages: 3 } }, poll);
    // The newest 3 messages: the second 'fine', 'again' and the third 'fine'.
    assert.deepEqual(shape(up.requests[4].body.messages), ['assistant', 'user', 'assistant']);
    assert.deepEqual(up.requests[4].body.messages.map((m) => m.content), ['fine', 'again', 'fine']);
  } finally {
    await t.close();
  }
});

test('an earlier run\'s function call and its output are truncated together', async () => {
  // Window 1000: 938 for the prompt. Fixed: priming 3 + system 5 = 8, plus
  // the tool definition's JSON. History units: "q1" (5); the earlier run's
  // call turn (3 + 1, plus 3 + the call id -- 29 random characters -- +
  // "lookup" + "{}": ~20-30) with its output (3 + 1 + 800 + the id); the
  // answer "ok" (5); the new question (3 + 1 + 60). Measured: the tools, the
  // call turn and the id in the output come to ~75, so the run that got the
  // output needed ~892 and the next one ~961 with q1: q1 goes, and it is
  // still ~956 > 938: the call and its output must go, together. Dropping the
  // call turn alone would fit (~926-936) but leave an output no call asked
  // for, which chat-completions APIs refuse.
  await withWindow(1000, async ({ up, client }) => {
    const a = await client.beta.assistants.create({ model: 'small', instructions: 'sys', tools: [tool] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'q1' }] });
    await callThenAnswer(up, client, a, thread, words(800));
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: words(60) });
    up.script('fine');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const sent = up.requests[2].body.messages;
    assert.deepEqual(shape(sent), ['system', 'assistant', 'user']);
    assert.deepEqual(sent.map((m) => m.content), ['sys', 'ok', words(60)]);
  });
});

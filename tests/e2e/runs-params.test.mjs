// Run parameters, checked where they land: in the stored run and in the
// chat-completions request assistd sends upstream. Instructions and
// additional_instructions, additional_messages, tools, tool_choice (a named
// tool must be one of the run's), parallel_tool_calls, reasoning_effort,
// response_format, sampling, max_completion_tokens (and the incomplete run
// it can cause), truncation_strategy, image parts, metadata; runs and steps
// lists, include[], poll headers, the exact key sets of run and step
// objects, and the run fields only Azure's paths accept.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { startServer, openai, azure, raw, errorOf, AZURE_API_VERSION } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { setupRuns as setup, parseSSE, waitStatus } from './lib/runs.mjs';

const poll = { pollIntervalMs: 20 };
const fn = (name) => ({ type: 'function', function: { name, description: `${name} tool`, parameters: { type: 'object', properties: {} } } });

// RunObject: the 25 required keys, plus temperature and top_p (optional in
// the schema, always present on OpenAI's objects) and tool_resources.
const RUN_KEYS = ['id', 'object', 'created_at', 'thread_id', 'assistant_id', 'status', 'required_action', 'last_error',
  'expires_at', 'started_at', 'cancelled_at', 'failed_at', 'completed_at', 'incomplete_details', 'model', 'instructions',
  'tools', 'metadata', 'usage', 'max_prompt_tokens', 'max_completion_tokens', 'truncation_strategy', 'tool_choice',
  'parallel_tool_calls', 'response_format', 'temperature', 'top_p', 'tool_resources'].sort();
const STEP_KEYS = ['id', 'object', 'created_at', 'assistant_id', 'thread_id', 'run_id', 'type', 'status', 'step_details',
  'last_error', 'expired_at', 'cancelled_at', 'failed_at', 'completed_at', 'metadata', 'usage'].sort();

function checkRun(run, what) {
  assert.deepEqual(Object.keys(run).sort(), RUN_KEYS, what);
  assert.equal(run.object, 'thread.run');
}
function checkStep(step, what) {
  assert.deepEqual(Object.keys(step).sort(), STEP_KEYS, what);
  assert.equal(step.object, 'thread.run.step');
}

test('instructions override and additional_instructions reach the system message', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', instructions: 'You are a tutor.' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script('a', 'b', 'c', 'd');
    const cases = [
      [{}, 'You are a tutor.'],
      [{ instructions: 'You are a pirate.' }, 'You are a pirate.'],
      [{ additional_instructions: 'Answer in French.' }, 'You are a tutor.\n\nAnswer in French.'],
      [{ instructions: 'Be terse.', additional_instructions: 'Use lists.' }, 'Be terse.\n\nUse lists.'],
    ];
    for (const [i, [params, system]] of cases.entries()) {
      const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, ...params }, poll);
      assert.equal(run.status, 'completed');
      assert.equal(run.instructions, system);
      assert.deepEqual(up.requests[i].body.messages[0], { role: 'system', content: system }, JSON.stringify(params));
    }
    // No instructions anywhere: no system message.
    const bare = await client.beta.assistants.create({ model: 'gpt-4o' });
    up.script('e');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: bare.id }, poll);
    assert.equal(run.instructions, '');
    assert.equal(up.requests[4].body.messages[0].role, 'user');
  } finally {
    await t.close();
  }
});

test('additional_messages are stored in the thread before the run and sent', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'first' }] });
    up.script('answer');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, {
      assistant_id: a.id,
      additional_messages: [
        { role: 'assistant', content: 'noted' },
        { role: 'user', content: [{ type: 'text', text: 'second' }], metadata: { via: 'run' } },
      ],
    }, poll);
    assert.equal(run.status, 'completed');
    const msgs = await client.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.deepEqual(msgs.data.map((m) => [m.role, m.content[0].text.value]), [['user', 'first'], ['assistant', 'noted'], ['user', 'second'], ['assistant', 'answer']]);
    assert.deepEqual(msgs.data[2].metadata, { via: 'run' });
    assert.ok(msgs.data[1].created_at <= run.created_at);
    assert.deepEqual(up.requests[0].body.messages, [
      { role: 'user', content: 'first' }, { role: 'assistant', content: 'noted' }, { role: 'user', content: 'second' }]);
    // A bad additional message refuses the whole run: nothing is stored.
    const r = await raw(t.s, 'POST', `/v1/threads/${thread.id}/runs`, {
      body: { assistant_id: a.id, additional_messages: [{ role: 'user', content: 'ok' }, { role: 'system', content: 'no' }] },
    });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'additional_messages[1].role');
    assert.equal((await client.beta.threads.messages.list(thread.id)).data.length, 4);
    assert.equal((await client.beta.threads.runs.list(thread.id)).data.length, 1);
  } finally {
    await t.close();
  }
});

test('tools override, tool_choice, parallel_tool_calls reach the upstream body', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha'), fn('beta')] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'go' }] });
    const cases = [
      [{}, { tools: ['alpha', 'beta'], tool_choice: 'auto', parallel_tool_calls: true }],
      [{ tools: [fn('gamma')] }, { tools: ['gamma'], tool_choice: 'auto', parallel_tool_calls: true }],
      [{ tool_choice: 'none' }, { tools: ['alpha', 'beta'], tool_choice: 'none', parallel_tool_calls: true }],
      [{ tool_choice: 'required', parallel_tool_calls: false }, { tools: ['alpha', 'beta'], tool_choice: 'required', parallel_tool_calls: false }],
      [{ tool_choice: { type: 'function', function: { name: 'beta' } } }, { tools: ['alpha', 'beta'], tool_choice: { type: 'function', function: { name: 'beta' } }, parallel_tool_calls: true }],
    ];
    for (const [i, [params, want]] of cases.entries()) {
      up.script('ok');
      const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, ...params }, poll);
      assert.equal(run.status, 'completed');
      const body = up.requests[i].body;
      assert.deepEqual(body.tools.map((x) => x.function.name), want.tools, JSON.stringify(params));
      assert.deepEqual(body.tool_choice, want.tool_choice);
      assert.equal(body.parallel_tool_calls, want.parallel_tool_calls);
      assert.deepEqual(run.tool_choice, want.tool_choice);
      assert.equal(run.parallel_tool_calls, want.parallel_tool_calls);
      assert.deepEqual(run.tools.map((x) => x.function.name), want.tools);
    }
    assert.deepEqual(up.requests[1].body.tools, [{ type: 'function', function: fn('gamma').function }]);
    // An empty tools override sends no tools (and so no tool_choice).
    up.script('plain');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, tools: [] }, poll);
    assert.deepEqual(run.tools, []);
    const body = up.requests.at(-1).body;
    assert.equal(body.tools, undefined);
    assert.equal(body.tool_choice, undefined);
    assert.equal(body.parallel_tool_calls, undefined);
  } finally {
    await t.close();
  }
});

// The 400 for a named tool_choice the run has no tool for.
async function refusedChoice(promise, name) {
  const err = await promise.then(() => null, (e) => e);
  assert.ok(err instanceof OpenAI.BadRequestError, `refused (${name}): ${err}`);
  assert.equal(err.status, 400);
  assert.equal(err.type, 'invalid_request_error');
  assert.equal(err.param, 'tool_choice');
  assert.equal(err.code, 'invalid_value');
  assert.equal(err.error.message, `Invalid 'tool_choice': no tool named '${name}' is available to this run.`);
}

test('createRun tool_choice: a named tool must be among the run\'s tools (override, else the assistant\'s); valid ones reach the upstream as before', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha')] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'go' }] });
    const create = (params) => client.beta.threads.runs.create(thread.id, { assistant_id: a.id, ...params });
    const named = (name) => ({ type: 'function', function: { name } });
    await refusedChoice(create({ tool_choice: named('nope') }), 'nope');
    await refusedChoice(create({ tool_choice: named('alpha'), tools: [fn('beta')] }), 'alpha');
    await refusedChoice(create({ tool_choice: named('alpha'), tools: [] }), 'alpha');
    await refusedChoice(create({ tool_choice: named('file_search'), tools: [{ type: 'file_search' }] }), 'file_search');
    await refusedChoice(create({ tool_choice: { type: 'file_search' } }), 'file_search');
    await refusedChoice(create({ tool_choice: { type: 'code_interpreter' } }), 'code_interpreter');
    await refusedChoice(create({ tool_choice: { type: 'code_interpreter' }, tools: [{ type: 'file_search' }] }), 'code_interpreter');
    // Streamed: the same JSON 400, before any stream.
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true, tool_choice: { type: 'file_search' } } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'tool_choice');
    assert.equal(up.requests.length, 0);
    assert.equal((await client.beta.threads.runs.list(thread.id)).data.length, 0);

    // Choices the run has: accepted, sent as before (built-in tools as the
    // function assistd offers for them).
    const b = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha'), { type: 'file_search' }, { type: 'code_interpreter' }] });
    const cases = [
      [{ tool_choice: named('alpha') }, named('alpha')],
      [{ tool_choice: { type: 'file_search' } }, named('file_search')],
      [{ tool_choice: { type: 'code_interpreter' } }, named('code_interpreter')],
      // The schema allows a function object on any type; only the type counts.
      [{ tool_choice: { type: 'code_interpreter', function: { name: 'x' } } }, named('code_interpreter')],
      [{ tool_choice: named('beta'), tools: [fn('beta')] }, named('beta')],
      [{ tool_choice: 'required', tools: [fn('beta')] }, 'required'],
    ];
    for (const [i, [params, want]] of cases.entries()) {
      up.script('ok');
      const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: b.id, ...params }, poll);
      assert.equal(run.status, 'completed', JSON.stringify(params));
      assert.deepEqual(run.tool_choice, params.tool_choice);
      assert.deepEqual(up.requests[i].body.tool_choice, want, JSON.stringify(params));
    }
  } finally {
    await t.close();
  }
});

test('createThreadAndRun tool_choice: a named tool must be among the run\'s tools; valid ones reach the upstream', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha'), { type: 'file_search' }] });
    const thread = { messages: [{ role: 'user', content: 'go' }] };
    const create = (params) => client.beta.threads.createAndRun({ assistant_id: a.id, thread, ...params });
    await refusedChoice(create({ tool_choice: { type: 'function', function: { name: 'gamma' } } }), 'gamma');
    await refusedChoice(create({ tool_choice: { type: 'function', function: { name: 'alpha' } }, tools: [fn('beta')] }), 'alpha');
    await refusedChoice(create({ tool_choice: { type: 'code_interpreter' } }), 'code_interpreter');
    await refusedChoice(create({ tool_choice: { type: 'file_search' }, tools: [fn('alpha')] }), 'file_search');
    await refusedChoice(create({ tool_choice: { type: 'code_interpreter' }, stream: true }), 'code_interpreter');
    assert.equal(up.requests.length, 0);
    up.script('one', 'two');
    let run = await client.beta.threads.createAndRunPoll({ assistant_id: a.id, thread, tool_choice: { type: 'function', function: { name: 'alpha' } } }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(up.requests[0].body.tool_choice, { type: 'function', function: { name: 'alpha' } });
    run = await client.beta.threads.createAndRunPoll({ assistant_id: a.id, thread, tool_choice: { type: 'file_search' } }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(up.requests[1].body.tool_choice, { type: 'function', function: { name: 'file_search' } });
  } finally {
    await t.close();
  }
});

test('reasoning_effort: the run\'s, else the assistant\'s, reaches the upstream body; none when neither has one; objects do not show it', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const plain = await client.beta.assistants.create({ model: 'gpt-4o' });
    const low = await client.beta.assistants.create({ model: 'gpt-4o', reasoning_effort: 'low' });
    const b0 = await client.beta.assistants.create({ model: 'gpt-4o', reasoning_effort: null });
    // Neither AssistantObject nor RunObject has the field.
    assert.equal('reasoning_effort' in low, false);
    assert.equal('reasoning_effort' in (await client.beta.assistants.retrieve(low.id)), false);
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'think' }] });
    const sent = [];
    const go = async (assistant, params = {}) => {
      up.script('ok');
      const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, ...params }, poll);
      assert.equal(run.status, 'completed');
      checkRun(run, 'run');
      sent.push(up.requests.at(-1).body.reasoning_effort);
    };
    await go(plain);
    await go(plain, { reasoning_effort: 'high' });
    await go(low);
    await go(low, { reasoning_effort: 'minimal' });
    await go(low, { reasoning_effort: null });
    assert.deepEqual(sent, [undefined, 'high', 'low', 'minimal', 'low']);
    assert.equal('reasoning_effort' in up.requests[0].body, false);

    // Modify: a new value replaces it, null removes it.
    await client.beta.assistants.update(plain.id, { reasoning_effort: 'medium' });
    await client.beta.assistants.update(low.id, { reasoning_effort: null });
    await client.beta.assistants.update(plain.id, { name: 'kept' });
    sent.length = 0;
    await go(plain);
    await go(low);
    assert.deepEqual(sent, ['medium', undefined]);

    // Streamed createRun with its own, and createThreadAndRun (the
    // assistant's: its schema has no reasoning_effort).
    up.script('streamed');
    const run = await client.beta.threads.runs.stream(thread.id, { assistant_id: low.id, reasoning_effort: 'xhigh' }).finalRun();
    assert.equal(run.status, 'completed');
    checkRun(run, 'streamed');
    assert.equal(up.requests.at(-1).body.reasoning_effort, 'xhigh');
    up.script('fresh');
    const tr = await client.beta.threads.createAndRunPoll({ assistant_id: plain.id, thread: { messages: [{ role: 'user', content: 'x' }] } }, poll);
    assert.equal(tr.status, 'completed');
    assert.equal(up.requests.at(-1).body.reasoning_effort, 'medium');

    // Every model call of a run sends it (here after a function call).
    const f = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha')], reasoning_effort: 'low' });
    up.script({ tool_calls: [{ name: 'alpha', arguments: '{}' }] }, 'done');
    let r = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: f.id, reasoning_effort: 'high' }, poll);
    assert.equal(r.status, 'requires_action');
    r = await client.beta.threads.runs.submitToolOutputsAndPoll(r.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: r.required_action.submit_tool_outputs.tool_calls[0].id, output: 'x' }],
    }, poll);
    assert.equal(r.status, 'completed');
    assert.deepEqual(up.requests.slice(-2).map((x) => x.body.reasoning_effort), ['high', 'high']);

    // Assistants with and without the setting delete as before.
    for (const x of [f, low, b0]) {
      assert.equal((await client.beta.assistants.delete(x.id)).deleted, true);
      await assert.rejects(client.beta.assistants.retrieve(x.id), (e) => e.status === 404);
    }
  } finally {
    await t.close();
  }
});

test('response_format, temperature and top_p: assistant defaults and run overrides reach the upstream body', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const schema = { type: 'json_schema', json_schema: { name: 'answer', strict: true, schema: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'], additionalProperties: false } } };
    const a = await client.beta.assistants.create({ model: 'gpt-4o', temperature: 0.5, top_p: 0.9, response_format: { type: 'json_object' } });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'json please' }] });
    up.script('{"x":1}', '{"x":2}', 'plain');
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.deepEqual(run.response_format, { type: 'json_object' });
    assert.equal(run.temperature, 0.5);
    assert.equal(run.top_p, 0.9);
    let body = up.requests[0].body;
    assert.deepEqual(body.response_format, { type: 'json_object' });
    assert.equal(body.temperature, 0.5);
    assert.equal(body.top_p, 0.9);
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, response_format: schema, temperature: 0.1, top_p: 0.2 }, poll);
    assert.deepEqual(run.response_format, schema);
    assert.equal(run.temperature, 0.1);
    assert.equal(run.top_p, 0.2);
    body = up.requests[1].body;
    assert.deepEqual(body.response_format, schema);
    assert.equal(body.temperature, 0.1);
    assert.equal(body.top_p, 0.2);
    // "auto" and text send nothing special.
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, response_format: 'auto' }, poll);
    assert.equal(run.response_format, 'auto');
    assert.equal(up.requests[2].body.response_format, undefined);
  } finally {
    await t.close();
  }
});

test('max_completion_tokens reaches the model; a length cut ends the run incomplete, the message incomplete', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'write an essay' }] });
    up.script({ text: 'Once upon', chunks: ['Once ', 'upon'], finish_reason: 'length', usage: { prompt_tokens: 10, completion_tokens: 256 } });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, max_completion_tokens: 256, max_prompt_tokens: 1000 }, poll);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(run.max_completion_tokens, 256);
    assert.equal(run.max_prompt_tokens, 1000);
    assert.equal(run.completed_at, null);
    assert.equal(run.expires_at, null);
    assert.deepEqual(run.usage, { prompt_tokens: 10, completion_tokens: 256, total_tokens: 266 });
    assert.equal(up.requests[0].body.max_completion_tokens, 256);
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    const m = msgs.data[0];
    assert.equal(m.status, 'incomplete');
    assert.deepEqual(m.incomplete_details, { reason: 'max_tokens' });
    assert.equal(typeof m.incomplete_at, 'number');
    assert.equal(m.completed_at, null);
    assert.deepEqual(m.content, [{ type: 'text', text: { value: 'Once upon', annotations: [] } }]);
    // Streamed: message.incomplete, step.completed, run.incomplete, done.
    up.script({ text: 'Cut', chunks: ['Cut'], finish_reason: 'length' });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true, max_completion_tokens: 300 } });
    const ev = parseSSE(r.text);
    assert.deepEqual(ev.slice(-5).map((e) => e.event), ['thread.message.delta', 'thread.message.incomplete', 'thread.run.step.completed', 'thread.run.incomplete', 'done']);
    assert.deepEqual(ev.at(-2).data.incomplete_details, { reason: 'max_completion_tokens' });
    // The SDK sees it as the final run.
    up.script({ text: 'Cut', finish_reason: 'length' });
    const final = await client.beta.threads.runs.stream(thread.id, { assistant_id: a.id, max_completion_tokens: 300 }).finalRun();
    assert.equal(final.status, 'incomplete');
  } finally {
    await t.close();
  }
});

test('truncation_strategy last_messages sends only the newest thread messages', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', instructions: 'sys' });
    const thread = await client.beta.threads.create({ messages: ['m1', 'm2', 'm3', 'm4'].map((c) => ({ role: 'user', content: c })) });
    up.script('x', 'y');
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, truncation_strategy: { type: 'last_messages', last_messages: 2 } }, poll);
    assert.deepEqual(run.truncation_strategy, { type: 'last_messages', last_messages: 2 });
    assert.deepEqual(up.requests[0].body.messages, [{ role: 'system', content: 'sys' }, { role: 'user', content: 'm3' }, { role: 'user', content: 'm4' }]);
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.deepEqual(run.truncation_strategy, { type: 'auto', last_messages: null });
    assert.deepEqual(up.requests[1].body.messages.map((m) => m.content), ['sys', 'm1', 'm2', 'm3', 'm4', 'x']);
    const r = await raw(t.s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, truncation_strategy: { type: 'last_messages', last_messages: 0 } } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'truncation_strategy.last_messages');
  } finally {
    await t.close();
  }
});

test('image_url and image_file parts reach the model as image_url parts (image_file inlined as a data: URL)', async () => {
  const t = await setup();
  try {
    const { client, up } = t;
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
    const file = await client.files.create({ file: await toFile(png, 'dot.png'), purpose: 'vision' });
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({
      messages: [{
        role: 'user',
        content: [
          { type: 'text', text: 'What are these?' },
          { type: 'image_file', image_file: { file_id: file.id, detail: 'low' } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'high' } },
        ],
      }],
    });
    up.script('A dot and a cat.');
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(up.requests[0].body.messages, [{
      role: 'user',
      content: [
        { type: 'text', text: 'What are these?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}`, detail: 'low' } },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'high' } },
      ],
    }]);
  } finally {
    await t.close();
  }
});

test('metadata on create and modify; modify takes only metadata', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script('ok');
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, metadata: { user: 'u1', n: '1' } }, poll);
    assert.deepEqual(run.metadata, { user: 'u1', n: '1' });
    run = await client.beta.threads.runs.update(run.id, { thread_id: thread.id, metadata: { user: 'u2' } });
    assert.deepEqual(run.metadata, { user: 'u2' });
    assert.equal(run.status, 'completed');
    const got = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.deepEqual(got, run);
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}`, { body: { status: 'failed' } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, "Unknown parameter: 'status'.");
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}`, { body: { metadata: { k: 1 } } });
    assert.equal(r.status, 400);
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}`, { body: { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) } });
    assert.equal(r.status, 400);
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/run_nope`, { body: { metadata: {} } });
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, "No run found with id 'run_nope'.");
    // Modifying while the run is active keeps the engine's progress.
    let release;
    up.script({ text: 'later', wait: new Promise((res) => { release = res; }) });
    const live = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    await up.waitForRequest(1);
    // The in_progress write is committed alongside the model call, not
    // before it: wait until it is.
    await waitStatus(client, thread.id, live.id, 'in_progress');
    const mod = await client.beta.threads.runs.update(live.id, { thread_id: thread.id, metadata: { during: 'yes' } });
    assert.equal(mod.status, 'in_progress');
    release();
    const fin = await client.beta.threads.runs.poll(live.id, { thread_id: thread.id }, poll);
    assert.equal(fin.status, 'completed');
    assert.deepEqual(fin.metadata, { during: 'yes' });
  } finally {
    await t.close();
  }
});

test('runs list: newest first by default, order, limit, after/before cursors, auto-pagination', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const ids = [];
    for (let i = 0; i < 5; i++) {
      up.script(`r${i}`);
      ids.push((await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll)).id);
    }
    let r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?limit=2`);
    assert.deepEqual(r.json.data.map((x) => x.id), [ids[4], ids[3]]);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.first_id, ids[4]);
    assert.equal(r.json.last_id, ids[3]);
    assert.equal(r.json.has_more, true);
    for (const run of r.json.data) checkRun(run, 'listed run');
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?limit=2&after=${ids[3]}`);
    assert.deepEqual(r.json.data.map((x) => x.id), [ids[2], ids[1]]);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?order=asc&after=${ids[2]}`);
    assert.deepEqual(r.json.data.map((x) => x.id), [ids[3], ids[4]]);
    assert.equal(r.json.has_more, false);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?order=asc&limit=2&before=${ids[4]}`);
    assert.deepEqual(r.json.data.map((x) => x.id), [ids[2], ids[3]]);
    const all = [];
    for await (const run of client.beta.threads.runs.list(thread.id, { limit: 2, order: 'asc' })) all.push(run.id);
    assert.deepEqual(all, ids);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?limit=101`);
    assert.equal(r.status, 400);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs?order=sideways`);
    assert.equal(r.status, 400);
    r = await raw(s, 'GET', '/v1/threads/thread_nope/runs');
    assert.equal(r.status, 404);
    const other = await client.beta.threads.create();
    r = await raw(s, 'GET', `/v1/threads/${other.id}/runs`);
    assert.deepEqual(r.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  } finally {
    await t.close();
  }
});

test('steps list and retrieve: include[] accepted (also percent-encoded), invalid values refused', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha')] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ tool_calls: [{ name: 'alpha', arguments: '{}' }] }, 'done');
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id, tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: 'x' }],
    }, poll);
    const INC = 'step_details.tool_calls[*].file_search.results[*].content';
    const base = `/v1/threads/${thread.id}/runs/${run.id}/steps`;
    const plain = await raw(s, 'GET', base);
    assert.equal(plain.status, 200);
    assert.equal(plain.json.data.length, 2);
    for (const q of [`include[]=${INC}`, `include%5B%5D=${encodeURIComponent(INC)}`, `include%5B%5D=${INC}&limit=20`]) {
      const r = await raw(s, 'GET', `${base}?${q}`);
      assert.equal(r.status, 200, q);
      assert.equal(r.text, plain.text, q);
      const one = await raw(s, 'GET', `${base}/${plain.json.data[0].id}?${q}`);
      assert.equal(one.status, 200, q);
      assert.deepEqual(one.json, plain.json.data[0]);
    }
    // Through the SDK (brackets format).
    const viaSdk = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include: [INC] });
    assert.equal(viaSdk.data.length, 2);
    const step = await client.beta.threads.runs.steps.retrieve(plain.json.data[1].id, { thread_id: thread.id, run_id: run.id, include: [INC] });
    assert.equal(step.type, 'tool_calls');
    for (const st of plain.json.data) checkStep(st, st.type);
    // Invalid values, alone or after a valid one.
    for (const q of ['include[]=step_details', `include[]=${INC}&include[]=bogus`, 'include%5B%5D=nope']) {
      const r = await raw(s, 'GET', `${base}?${q}`);
      assert.equal(r.status, 400, q);
      const e = errorOf(r);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'include');
      assert.match(e.message, /^Invalid value: '[^']+'\. Supported values are: 'step_details\.tool_calls\[\*\]\.file_search\.results\[\*\]\.content' and 'step_details\.tool_calls\[\*\]\.file_search\.queries'\.$/);
      const one = await raw(s, 'GET', `${base}/${plain.json.data[0].id}?${q}`);
      assert.equal(one.status, 400, q);
    }
    // createRun takes include[] too.
    up.script('again');
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs?include[]=${INC}`, { body: { assistant_id: a.id } });
    assert.equal(r.status, 200);
    await client.beta.threads.runs.poll(r.json.id, { thread_id: thread.id }, poll);
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs?include[]=x`, { body: { assistant_id: a.id } });
    assert.equal(r.status, 400);
    // Unknown step, and a step under the wrong run.
    r = await raw(s, 'GET', `${base}/step_nope`);
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, "No run step found with id 'step_nope'.");
  } finally {
    await t.close();
  }
});

test('poll headers: openai-poll-after-ms on run create, retrieve, cancel and submit_tool_outputs', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha')] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ tool_calls: [{ name: 'alpha', arguments: '{}' }] }, 'done');
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id } });
    assert.equal(r.headers.get('openai-poll-after-ms'), '200');
    const run = await client.beta.threads.runs.poll(r.json.id, { thread_id: thread.id }, poll);
    r = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${run.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('openai-poll-after-ms'), '200');
    assert.match(r.headers.get('content-type'), /^application\/json/);
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      body: { tool_outputs: [{ tool_call_id: run.required_action.submit_tool_outputs.tool_calls[0].id, output: 'x' }] },
    });
    assert.equal(r.headers.get('openai-poll-after-ms'), '200');
    await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, poll);
    let release;
    up.script({ text: 'slow', wait: new Promise((res) => { release = res; }) });
    const live = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${live.id}/cancel`);
    assert.equal(r.headers.get('openai-poll-after-ms'), '200');
    assert.equal(r.json.status, 'cancelling');
    release();
    await client.beta.threads.runs.poll(live.id, { thread_id: thread.id }, poll);
  } finally {
    await t.close();
  }
});

test('every run and step object has all its keys, nulls explicit, in every status', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [fn('alpha')] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ tool_calls: [{ name: 'alpha', arguments: '{}' }] }, { text: 'done' });
    // Every run and step object on a stream, through requires_action and on to completed.
    let r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    let ev = parseSSE(r.text);
    const created = ev[0].data;
    checkRun(created, 'created');
    assert.equal(created.status, 'queued');
    for (const k of ['required_action', 'last_error', 'started_at', 'cancelled_at', 'failed_at', 'completed_at', 'incomplete_details', 'usage', 'max_prompt_tokens', 'max_completion_tokens']) {
      assert.equal(created[k], null, k);
    }
    assert.deepEqual(created.truncation_strategy, { type: 'auto', last_messages: null });
    assert.equal(created.tool_choice, 'auto');
    assert.equal(created.response_format, 'auto');
    assert.equal(created.parallel_tool_calls, true);
    assert.equal(created.temperature, 1);
    assert.equal(created.top_p, 1);
    assert.deepEqual(created.metadata, {});
    assert.deepEqual(created.tool_resources, {});
    assert.equal(created.expires_at, created.created_at + 600);
    for (const e of ev) {
      if (e.event.startsWith('thread.run.step.delta')) continue;
      if (e.event.startsWith('thread.run.step.')) checkStep(e.data, e.event);
      else if (e.event.startsWith('thread.run.')) checkRun(e.data, e.event);
    }
    const waiting = ev.at(-2).data;
    assert.equal(waiting.status, 'requires_action');
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${waiting.id}/submit_tool_outputs`, {
      body: { stream: true, tool_outputs: [{ tool_call_id: waiting.required_action.submit_tool_outputs.tool_calls[0].id, output: 'x' }] },
    });
    ev = parseSSE(r.text);
    for (const e of ev) {
      if (e.event.startsWith('thread.run.step.delta')) continue;
      if (e.event.startsWith('thread.run.step.')) checkStep(e.data, e.event);
      else if (e.event.startsWith('thread.run.')) checkRun(e.data, e.event);
    }
    const steps = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${waiting.id}/steps`);
    for (const st of steps.json.data) {
      checkStep(st, st.type);
      assert.equal(st.status, 'completed');
      assert.equal(st.last_error, null);
      assert.equal(st.expired_at, null);
      assert.equal(st.cancelled_at, null);
      assert.equal(st.failed_at, null);
      assert.deepEqual(st.metadata, {});
      assert.deepEqual(Object.keys(st.usage).sort(), ['completion_tokens', 'prompt_tokens', 'total_tokens']);
    }
    // Failed and cancelled runs, and their steps.
    up.script({ error: { status: 400, message: 'bad request', type: 'invalid_request_error' } });
    const failed = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(failed.status, 'failed');
    checkRun((await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${failed.id}`)).json, 'failed');
    up.script({ text: 'Partial more', chunks: ['Partial', ' more'], stallAfter: 1 });
    const live = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    for (let i = 0; i < 100; i++) {
      if ((await client.beta.threads.messages.list(thread.id, { run_id: live.id })).data.length) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const cancelling = await raw(s, 'POST', `/v1/threads/${thread.id}/runs/${live.id}/cancel`);
    checkRun(cancelling.json, 'cancelling');
    const cancelled = await client.beta.threads.runs.poll(live.id, { thread_id: thread.id }, poll);
    assert.equal(cancelled.status, 'cancelled');
    checkRun((await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${live.id}`)).json, 'cancelled');
    const cs = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${live.id}/steps`);
    assert.deepEqual(cs.json.data.map((x) => x.status), ['cancelled']);
    for (const st of cs.json.data) checkStep(st, 'cancelled step');
  } finally {
    await t.close();
  }
});

test('Azure paths: createRun accepts and ignores a body thread_id, createThreadAndRun stream_options; /v1 still refuses both', async () => {
  const t = await setup();
  try {
    const { client, up, s } = t;
    const az = azure(s);
    const q = `?api-version=${AZURE_API_VERSION}`;
    const a = await client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const other = await client.beta.threads.create();

    // createRun: thread_id in the body (Azure's spec lists it) is ignored,
    // also when it names another thread: the path's thread runs.
    up.script('one', 'two', 'three');
    let run = await az.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, thread_id: thread.id }, poll);
    assert.equal(run.status, 'completed');
    assert.equal(run.thread_id, thread.id);
    run = await az.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, thread_id: other.id }, poll);
    assert.equal(run.status, 'completed');
    assert.equal(run.thread_id, thread.id);
    assert.equal((await client.beta.threads.runs.list(other.id)).data.length, 0);
    let r = await raw(s, 'POST', `/openai/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, thread_id: thread.id, stream: true } });
    assert.equal(r.status, 200);
    assert.equal(parseSSE(r.text).at(-2).event, 'thread.run.completed');

    // createThreadAndRun: stream_options (Azure's chatCompletionStreamOptions), streamed or not.
    up.script('four', 'five');
    const tr = await az.beta.threads.createAndRunPoll({
      assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'x' }] }, stream_options: { include_usage: true },
    }, poll);
    assert.equal(tr.status, 'completed');
    r = await raw(s, 'POST', `/openai/threads/runs${q}`, {
      body: { assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'y' }] }, stream: true, stream_options: null },
    });
    assert.equal(r.status, 200);
    assert.equal(parseSSE(r.text).at(-2).event, 'thread.run.completed');
    assert.equal(up.requests.length, 5);
    for (const x of up.requests) {
      assert.equal(x.body.thread_id, undefined);
      assert.deepEqual(x.body.stream_options, { include_usage: true }); // assistd's own, as always
    }

    // Still checked on Azure: their types, and other unknown parameters.
    const bad = [
      [`/openai/threads/${thread.id}/runs${q}`, { assistant_id: a.id, thread_id: 7 }, 'thread_id', 'invalid_type'],
      [`/openai/threads/runs${q}`, { assistant_id: a.id, stream_options: { include_usage: 'yes' } }, 'stream_options.include_usage', 'invalid_type'],
      [`/openai/threads/runs${q}`, { assistant_id: a.id, stream_options: { other: true } }, 'stream_options.other', 'unknown_parameter'],
      [`/openai/threads/runs${q}`, { assistant_id: a.id, thread_id: thread.id }, 'thread_id', 'unknown_parameter'],
      [`/openai/threads/${thread.id}/runs${q}`, { assistant_id: a.id, stream_options: {} }, 'stream_options', 'unknown_parameter'],
      [`/openai/threads/${thread.id}/runs${q}`, { assistant_id: a.id, bogus: 1 }, 'bogus', 'unknown_parameter'],
      // OpenAI's shape refuses both, exactly as before.
      [`/v1/threads/${thread.id}/runs`, { assistant_id: a.id, thread_id: thread.id }, 'thread_id', 'unknown_parameter'],
      [`/v1/threads/runs`, { assistant_id: a.id, stream_options: { include_usage: true } }, 'stream_options', 'unknown_parameter'],
    ];
    for (const [p, body, param, code] of bad) {
      r = await raw(s, 'POST', p, { body });
      assert.equal(r.status, 400, `${p} ${JSON.stringify(body)}`);
      const e = errorOf(r);
      assert.equal(e.param, param, `${p} ${JSON.stringify(body)}`);
      assert.equal(e.code, code);
      if (code === 'unknown_parameter') assert.equal(e.message, `Unknown parameter: '${param}'.`);
    }
    await assert.rejects(client.beta.threads.runs.create(thread.id, { assistant_id: a.id, thread_id: thread.id }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'thread_id');
    assert.equal(up.requests.length, 5);
  } finally {
    await t.close();
  }
});

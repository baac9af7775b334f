// Runs through each upstream dialect the scripted model speaks: Azure
// OpenAI (deployment URL, api-version, api-key header, no model in the
// body), vLLM and Ollama (tool calls arriving whole; Ollama's finish_reason
// 'stop' with tool calls), and a backends file's model list (GET /v1/models,
// unknown models refused on assistants and runs, upstream_model sent).
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, openai, azure, raw, errorOf } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';
import { parseSSE } from './lib/runs.mjs';

const tmp = mkdtempSync(path.join(tmpdir(), 'assistd-runs-dialects-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function configFile(cfg) {
  const f = path.join(tmp, `backends-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

// An assistd whose model prod-gpt4o is the Azure deployment gpt4o-prod of a
// scripted upstream in Azure's dialect.
async function startAzure() {
  const up = await startUpstream({ dialect: 'azure', apiKey: 'az-secret', deployments: { 'gpt4o-prod': 'gpt-4o-2024-08-06' } });
  const s = await startServer({
    args: ['--config', configFile({
      backends: [{ name: 'az', kind: 'azure', base_url: up.url, api_key_env: 'AZ_KEY', api_version: '2024-10-21', max_retries: 0 }],
      models: [{ id: 'prod-gpt4o', backend: 'az', deployment: 'gpt4o-prod' }],
    })],
    env: { AZ_KEY: 'az-secret' },
  });
  return { up, s };
}

const weather = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};

// The seed's loop, generalised: run, answer every call with its city, poll.
async function toolLoop(client, threadId, assistantId, outputs) {
  let run = await client.beta.threads.runs.createAndPoll(threadId, { assistant_id: assistantId }, { pollIntervalMs: 20 });
  assert.equal(run.status, 'requires_action');
  const calls = run.required_action.submit_tool_outputs.tool_calls;
  run = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
    thread_id: threadId,
    tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: outputs[JSON.parse(c.function.arguments).city] })),
  }, { pollIntervalMs: 20 });
  return { run, calls };
}

test('azure backend: deployment URL, api-version query, api-key header, no model in the body', async () => {
  const { up, s } = await startAzure();
  try {
    // Driven through the AzureOpenAI client, as an Azure user would.
    const client = azure(s);
    const a = await client.beta.assistants.create({ model: 'prod-gpt4o', instructions: 'Be brief.', tools: [weather] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    up.script(
      { tool_calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { text: 'Sunny in Paris.', chunks: ['Sunny ', 'in Paris.'] },
    );
    const { run, calls } = await toolLoop(client, thread.id, a.id, { Paris: '{"sky":"sunny"}' });
    assert.equal(run.status, 'completed');
    assert.equal(run.model, 'prod-gpt4o');
    assert.deepEqual(calls.map((c) => c.function), [{ name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    const msgs = await client.beta.threads.messages.list(thread.id);
    assert.equal(msgs.data[0].content[0].text.value, 'Sunny in Paris.');

    assert.equal(up.requests.length, 2);
    for (const r of up.requests) {
      assert.equal(r.method, 'POST');
      assert.equal(r.path, '/openai/deployments/gpt4o-prod/chat/completions');
      assert.deepEqual(r.query, { 'api-version': '2024-10-21' });
      assert.equal(r.headers['api-key'], 'az-secret');
      assert.equal(r.headers.authorization, undefined);
      assert.equal('model' in r.body, false);
      assert.equal(r.body.stream, true);
      assert.deepEqual(r.body.stream_options, { include_usage: true });
    }
    assert.deepEqual(up.requests[0].body.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Weather in Paris?' }]);
    assert.deepEqual(up.requests[1].body.messages.slice(-1), [{ role: 'tool', tool_call_id: calls[0].id, content: '{"sky":"sunny"}' }]);

    // Streaming: Azure's prompt-filter preamble is not relayed; deltas are.
    up.script({ text: 'Cloudy.', chunks: ['Cloudy', '.'] });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.deepEqual(ev.filter((e) => e.event === 'thread.message.delta').map((e) => e.data.delta.content[0].text.value), ['Cloudy', '.']);
    assert.equal(ev.at(-2).event, 'thread.run.completed');
  } finally {
    await s.stop();
    await up.close();
  }
});

// Azure's content filter stops an answer with finish_reason content_filter:
// the message ends incomplete for that reason (Message.incomplete_details),
// its step and the run complete (a run's incomplete_details only name token
// limits), and the stream says thread.message.incomplete.
test('azure backend: an answer stopped by the content filter ends its message incomplete (content_filter)', async () => {
  const { up, s } = await startAzure();
  try {
    const client = azure(s);
    const a = await client.beta.assistants.create({ model: 'prod-gpt4o' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Tell me something.' }] });
    up.script({ text: 'Well, the', chunks: ['Well, ', 'the'], finish_reason: 'content_filter' });
    const r = await raw(s, 'POST', `/openai/threads/${thread.id}/runs?api-version=2024-05-01-preview`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    const tail = ev.slice(ev.findLastIndex((e) => e.event === 'thread.message.delta') + 1);
    assert.deepEqual(tail.map((e) => e.event), ['thread.message.incomplete', 'thread.run.step.completed', 'thread.run.completed', 'done']);
    const msg = tail[0].data;
    assert.equal(msg.status, 'incomplete');
    assert.deepEqual(msg.incomplete_details, { reason: 'content_filter' });
    assert.equal(msg.content[0].text.value, 'Well, the');
    assert.equal(tail[2].data.incomplete_details, null);
    const stored = await client.beta.threads.messages.retrieve(msg.id, { thread_id: thread.id });
    assert.deepEqual(stored, msg);
  } finally {
    await s.stop();
    await up.close();
  }
});

test('azure backend: an unknown deployment fails the run without retries; a wrong key too', async () => {
  const up = await startUpstream({ dialect: 'azure', apiKey: 'az-secret', deployments: { real: 'gpt-4o' } });
  const s = await startServer({
    args: ['--config', configFile({
      backends: [
        { name: 'az', kind: 'azure', base_url: up.url, api_key_env: 'AZ_KEY', api_version: '2024-10-21' },
        { name: 'bad', kind: 'azure', base_url: up.url, api_key_env: 'BAD_KEY', api_version: '2024-10-21' },
      ],
      models: [{ id: 'ghost', backend: 'az', deployment: 'missing' }, { id: 'real', backend: 'bad', deployment: 'real' }],
    })],
    env: { AZ_KEY: 'az-secret', BAD_KEY: 'wrong' },
  });
  try {
    const client = openai(s);
    for (const model of ['ghost', 'real']) {
      const a = await client.beta.assistants.create({ model });
      const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
      const before = up.requests.length;
      const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
      assert.equal(run.status, 'failed', model);
      assert.equal(run.last_error.code, 'server_error');
      assert.equal(up.requests.length, before + 1, '4xx answers are not retried');
    }
  } finally {
    await s.stop();
    await up.close();
  }
});

for (const dialect of ['vllm', 'ollama']) {
  test(`${dialect}: whole tool calls (two in parallel) give requires_action, then the answer`, async () => {
    const up = await startUpstream({ dialect, apiKey: 'local-key' });
    const s = await startServer({
      args: ['--config', configFile({
        backends: [{ name: 'local', kind: 'openai', base_url: up.url, api_key_env: 'LOCAL_KEY' }],
        models: [{ id: 'llama', backend: 'local', upstream_model: 'meta-llama/Llama-3.1-8B-Instruct' }],
      })],
      env: { LOCAL_KEY: 'local-key' },
    });
    try {
      const client = openai(s);
      const a = await client.beta.assistants.create({ model: 'llama', tools: [weather] });
      const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Paris and Tokyo?' }] });
      up.script(
        { tool_calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }, { name: 'get_weather', arguments: '{"city":"Tokyo"}' }] },
        { text: 'Paris sunny, Tokyo rainy.' },
      );
      // Streamed, to see the deltas of calls that arrive whole.
      const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
      const ev = parseSSE(r.text);
      assert.deepEqual(ev.map((e) => e.event), [
        'thread.run.created', 'thread.run.queued', 'thread.run.in_progress', 'thread.run.step.created', 'thread.run.step.in_progress',
        'thread.run.step.delta', 'thread.run.step.delta', 'thread.run.step.delta',
        'thread.run.requires_action', 'done']);
      const run = ev.at(-2).data;
      const calls = run.required_action.submit_tool_outputs.tool_calls;
      assert.deepEqual(calls.map((c) => c.function), [
        { name: 'get_weather', arguments: '{"city":"Paris"}' }, { name: 'get_weather', arguments: '{"city":"Tokyo"}' }]);
      assert.notEqual(calls[0].id, calls[1].id);
      const deltas = ev.filter((e) => e.event === 'thread.run.step.delta').map((e) => e.data.delta.step_details.tool_calls[0]);
      assert.deepEqual(deltas, [
        { index: 0, id: calls[0].id, type: 'function', function: { name: 'get_weather', arguments: '', output: null } },
        { index: 0, type: 'function', function: { arguments: '{"city":"Paris"}' } },
        // The second call is announced whole once the answer ends: calls are
        // relayed one after the other (engine.c, flush_held_calls).
        { index: 1, id: calls[1].id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Tokyo"}', output: null } },
      ]);
      const done = await client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
        thread_id: thread.id,
        tool_outputs: [{ tool_call_id: calls[1].id, output: 'rainy' }, { tool_call_id: calls[0].id, output: 'sunny' }],
      }, { pollIntervalMs: 20 });
      assert.equal(done.status, 'completed');
      const msgs = await client.beta.threads.messages.list(thread.id);
      assert.equal(msgs.data[0].content[0].text.value, 'Paris sunny, Tokyo rainy.');
      assert.equal(up.requests.length, 2);
      for (const q of up.requests) {
        assert.equal(q.path, '/v1/chat/completions');
        assert.equal(q.headers.authorization, 'Bearer local-key');
        assert.equal(q.body.model, 'meta-llama/Llama-3.1-8B-Instruct');
      }
      // Outputs go back in the order of the calls, whatever order they came in.
      assert.deepEqual(up.requests[1].body.messages.slice(-3), [
        { role: 'assistant', content: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: c.function })) },
        { role: 'tool', tool_call_id: calls[0].id, content: 'sunny' },
        { role: 'tool', tool_call_id: calls[1].id, content: 'rainy' },
      ]);
    } finally {
      await s.stop();
      await up.close();
    }
  });
}

test('ollama: a text answer with finish_reason stop completes, usage counted', async () => {
  const up = await startUpstream({ dialect: 'ollama' });
  const s = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'ollama' }, args: ['--models', 'llama3.1'] });
  try {
    const client = openai(s);
    const a = await client.beta.assistants.create({ model: 'llama3.1' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    up.script({ text: 'Hello from llama', usage: { prompt_tokens: 12, completion_tokens: 4 } });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.usage, { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 });
    const msgs = await client.beta.threads.messages.list(thread.id);
    assert.equal(msgs.data[0].content[0].text.value, 'Hello from llama');
    assert.equal(up.requests[0].body.model, 'llama3.1');
  } finally {
    await s.stop();
    await up.close();
  }
});

// The README's complete example ("Runs"), run as written: its shell line's
// variables (OPENAI_BASE_URL pointed at a fixture speaking Ollama's
// dialect instead of a live Ollama) and its script, with only the base URL
// changed to this server's. The script must print the model's answer.
test("README: the complete example against an Ollama-style server runs as written", async () => {
  const { readFileSync, writeFileSync: write, rmSync: rm } = await import('node:fs');
  const { execFile } = await import('node:child_process');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const at = readme.indexOf('A complete example against a real OpenAI-compatible server');
  assert.ok(at > 0, 'the README has the example');
  const sh = /```sh\n([^\n]*make run)\n```/.exec(readme.slice(at));
  const js = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(sh && js, 'the example has a shell line and a script');
  const env = Object.fromEntries([...sh[1].matchAll(/\b([A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  assert.deepEqual(Object.keys(env).sort(), ['ASSISTD_MODELS', 'OPENAI_API_KEY', 'OPENAI_BASE_URL']);
  const up = await startUpstream({ dialect: 'ollama', apiKey: env.OPENAI_API_KEY });
  const s = await startServer({ keys: null, env: { ...env, OPENAI_BASE_URL: up.url } });
  const script = new URL(`./readme-example-${process.pid}.mjs`, import.meta.url);
  try {
    assert.ok(js[1].includes('"http://localhost:8080/v1"'));
    write(script, js[1].replace('"http://localhost:8080/v1"', JSON.stringify(`${s.url}/v1`)));
    up.script({ text: '2 + 2 = 4.', chunks: ['2 + 2', ' = ', '4.'] });
    const out = await new Promise((resolve, reject) => {
      execFile(process.execPath, [script.pathname], { timeout: 30000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    assert.equal(out, '2 + 2 = 4.\n');
    const body = up.requests[0].body;
    assert.equal(body.model, 'llama3.1');
    assert.equal(body.stream, true);
    assert.deepEqual(body.messages.map((m) => m.role), ['system', 'user']);
    assert.equal(body.messages[0].content, 'Answer briefly.');
    assert.equal(body.messages[1].content, 'What is 2+2?');
  } finally {
    rm(script, { force: true });
    await s.stop();
    await up.close();
  }
});

test('a backends file: GET /v1/models lists its models; unknown models are refused on assistants and runs', async () => {
  const up = await startUpstream({ apiKey: 'k' });
  const s = await startServer({
    args: ['--config', configFile({
      backends: [{ name: 'main', kind: 'openai', base_url: up.url, api_key_env: 'MAIN_KEY' }],
      models: [{ id: 'gpt-4o', backend: 'main' }, { id: 'small', backend: 'main', upstream_model: 'gpt-4o-mini' }],
    })],
    env: { MAIN_KEY: 'k' },
  });
  try {
    const client = openai(s);
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), ['gpt-4o', 'small']);
    for (const m of list.data) assert.equal(m.object, 'model');
    assert.equal((await client.models.retrieve('small')).id, 'small');
    await assert.rejects(client.models.retrieve('gpt-5'), (e) => e.status === 404);

    let r = await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-5' } });
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: "The requested model 'gpt-5' does not exist.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' });
    const a = await client.beta.assistants.create({ model: 'small' });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, model: 'gpt-5' } });
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: "The requested model 'gpt-5' does not exist.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' });
    r = await raw(s, 'POST', '/v1/threads/runs', { body: { assistant_id: a.id, model: 'gpt-5', thread: { messages: [{ role: 'user', content: 'x' }] } } });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).code, 'model_not_found');
    // Nothing was stored by the refused requests.
    assert.equal((await client.beta.threads.runs.list(thread.id)).data.length, 0);
    assert.equal(up.requests.length, 0);

    // A known override is used, and its upstream_model is what is sent.
    up.script({ text: 'small answer' }, { text: 'big answer' });
    let run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.model, 'small');
    assert.equal(up.requests[0].body.model, 'gpt-4o-mini');
    run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id, model: 'gpt-4o' }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'completed');
    assert.equal(run.model, 'gpt-4o');
    assert.equal(up.requests[1].body.model, 'gpt-4o');
  } finally {
    await s.stop();
    await up.close();
  }
});

// vLLM with gpt-oss (vllm-project/vllm#23522) sends a different tool-call id
// on a continuation piece of the same call (same index): still one call.
test('vllm: a continuation piece with a new tool-call id continues the call at its index', async () => {
  const up = await startUpstream({ dialect: 'vllm' });
  const s = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'k' }, args: ['--models', 'gpt-oss'] });
  try {
    const client = openai(s);
    const f = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { x: { type: 'string' } } } } };
    const a = await client.beta.assistants.create({ model: 'gpt-oss', tools: [f] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'call f' }] });
    up.script({
      raw: async (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        const chunk = (delta, fr = null) => `data: ${JSON.stringify({ id: 'chatcmpl-oss', object: 'chat.completion.chunk', created: 1, model: 'gpt-oss', choices: [{ index: 0, delta, logprobs: null, finish_reason: fr }] })}\n\n`;
        res.write(chunk({ role: 'assistant', content: '' }));
        res.write(chunk({ tool_calls: [{ index: 0, id: 'chatcmpl-tool-id1', type: 'function', function: { name: 'f', arguments: '{"x"' } }] }));
        res.write(chunk({ tool_calls: [{ index: 0, id: 'chatcmpl-tool-id2', type: 'function', function: { arguments: ':"1"}' } }] }));
        res.write(chunk({ content: '' }, 'tool_calls'));
        res.end('data: [DONE]\n\n');
      },
    });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 20 });
    assert.equal(run.status, 'requires_action');
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].function, { name: 'f', arguments: '{"x":"1"}' });
    assert.equal(calls[0].type, 'function');
  } finally {
    await s.stop();
    await up.close();
  }
});

// file_search inside runs: the tool offered to the model as a function, the
// search run server-side over the assistant's and the thread's vector
// stores, results given to the model as numbered sources, and the model's
// 【K:I†name】 markers turned into file_citation annotations with exact
// indexes; the run step (results, content only with include[]) and the
// stream (step deltas, annotation deltas with their index).
import test from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { raw } from './lib/server.mjs';
import { setupRuns, parseSSE, withRestarts } from './lib/runs.mjs';

const poll = { pollIntervalMs: 20 };
const VAULT = [
  'Vault runbook.',
  '',
  'To unseal the vault, three of the five key holders each enter their unseal key share. The vault stays sealed until the threshold of three shares is reached.',
  '',
  'Backups of the vault storage run every night at 02:00 and are kept for thirty days.',
].join('\n');
const MENU = 'The cafeteria serves soup on Mondays and pasta on Fridays.';

async function storeWith(client, files) {
  const ids = [];
  for (const [name, text] of files) {
    const f = await client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' });
    ids.push(f.id);
  }
  const vs = await client.vectorStores.create({ name: 'docs', file_ids: ids });
  for (let i = 0; i < 200; i++) {
    const cur = await client.vectorStores.retrieve(vs.id);
    if (cur.status === 'completed') return { vs: cur, ids };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('vector store did not finish indexing');
}

test('file_search: the model searches, reads numbered sources, and its markers become exact file_citation annotations', async () => {
  const t = await setupRuns();
  try {
    const { client, up, s } = t;
    const { vs, ids } = await storeWith(client, [['vault_info.txt', VAULT], ['menu.txt', MENU]]);
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', instructions: 'Answer from the files.', tools: [{ type: 'file_search' }],
      tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'How is the vault unsealed?' }] });
    const answer = 'Three of five key holders enter their shares \u30100:0\u2020vault_info.txt\u3011.';
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries":["unseal vault key shares"]}' }] }, { text: answer });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));

    // Offered as a function; the second call carries the call and its sources.
    const offered = up.requests[0].body.tools.map((x) => x.function.name);
    assert.deepEqual(offered, ['file_search']);
    const second = up.requests[1].body.messages;
    const call = second.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.equal(call.tool_calls[0].function.name, 'file_search');
    assert.equal(call.tool_calls[0].function.arguments, '{"queries":["unseal vault key shares"]}');
    const sources = second.find((m) => m.role === 'tool');
    assert.equal(sources.tool_call_id, call.tool_calls[0].id);
    assert.match(sources.content, /^\u30100:0\u2020vault_info\.txt\u3011\n/);
    assert.match(sources.content, /three of the five key holders/);

    // The annotation points exactly at the marker.
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    const text = msgs.data[0].content[0].text;
    assert.equal(text.value, answer);
    assert.equal(text.annotations.length, 1);
    const ann = text.annotations[0];
    assert.equal(ann.type, 'file_citation');
    assert.equal(ann.text, '\u30100:0\u2020vault_info.txt\u3011');
    assert.deepEqual(ann.file_citation, { file_id: ids[0] });
    assert.equal(text.value.slice(ann.start_index, ann.end_index), ann.text);

    // The step: results without content, and with it on request.
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    const st = steps.data.find((x) => x.type === 'tool_calls');
    assert.equal(st.status, 'completed');
    const fs = st.step_details.tool_calls[0];
    assert.equal(fs.type, 'file_search');
    assert.equal(fs.id, call.tool_calls[0].id);
    assert.deepEqual(fs.file_search.ranking_options, { ranker: 'default_2024_08_21', score_threshold: 0 });
    assert.ok(fs.file_search.results.length >= 1);
    assert.equal(fs.file_search.results[0].file_id, ids[0]);
    assert.equal(fs.file_search.results[0].file_name, 'vault_info.txt');
    assert.ok(fs.file_search.results[0].score > 0 && fs.file_search.results[0].score <= 1);
    assert.equal(fs.file_search.results[0].content, undefined);
    const withContent = await client.beta.threads.runs.steps.retrieve(st.id, {
      thread_id: thread.id, run_id: run.id, include: ['step_details.tool_calls[*].file_search.results[*].content'],
    });
    const quote = withContent.step_details.tool_calls[0].file_search.results[0].content[0];
    assert.equal(quote.type, 'text');
    assert.match(quote.text, /three of the five key holders/);

    // Streamed: the step delta names the tool, the annotation arrives in a
    // message delta with its index, before message.completed.
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries":["vault backups"]}' }] }, { text: 'Nightly at 02:00 \u30100:0\u2020vault_info.txt\u3011.' });
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.equal(ev.at(-1).event, 'done');
    assert.equal(ev.at(-2).event, 'thread.run.completed');
    const stepDeltas = ev.filter((e) => e.event === 'thread.run.step.delta');
    assert.equal(stepDeltas[0].data.delta.step_details.tool_calls[0].type, 'file_search');
    const annDelta = ev.find((e) => e.event === 'thread.message.delta' && e.data.delta.content[0].text?.annotations?.length);
    assert.ok(annDelta, 'an annotation delta');
    const d = annDelta.data.delta.content[0].text.annotations[0];
    assert.equal(d.index, 0);
    assert.equal(d.type, 'file_citation');
    assert.ok(ev.findIndex((e) => e === annDelta) < ev.findIndex((e) => e.event === 'thread.message.completed'));
    const completedStep = ev.find((e) => e.event === 'thread.run.step.completed' && e.data.type === 'tool_calls');
    assert.equal(completedStep.data.step_details.tool_calls[0].file_search.results[0].content, undefined);
  } finally {
    await t.close();
  }
});

test('file_search: markers that name no result stay plain text; a run without stores tells the model there is nothing to search', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'anything?' }] });
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries":["x"]}' }] }, { text: 'Nothing \u30103:9\u2020ghost.txt\u3011.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed');
    const tool = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.match(tool.content, /nothing to search/);
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.deepEqual(msgs.data[0].content[0].text.annotations, []);
    // A user function named like the built-in is still a function when the
    // run does not have file_search.
    const b = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'function', function: { name: 'file_search', parameters: { type: 'object', properties: {} } } }] });
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{}' }] });
    const r2 = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: b.id }, poll);
    assert.equal(r2.status, 'requires_action');
    await client.beta.threads.runs.cancel(r2.id, { thread_id: thread.id });
  } finally {
    await t.close();
  }
});

// assistd's own include[] value: the queries each file_search call searched
// (OpenAI's step object has no field for them; the playground's logs show
// them). Each include[] value adds only its own field; without either the
// step is exactly OpenAI's.
const INC_CONTENT = 'step_details.tool_calls[*].file_search.results[*].content';
const INC_QUERIES = 'step_details.tool_calls[*].file_search.queries';

test('file_search queries: include[] adds the queries searched to each call, after the search parsed them', async () => {
  const t = await setupRuns();
  try {
    const { client, up, s } = t;
    const { vs } = await storeWith(client, [['vault_info.txt', VAULT], ['menu.txt', MENU]]);
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'How is the vault unsealed, and what is for lunch?' }] });
    const ten = Array.from({ length: 10 }, (_, i) => `query ${i}`);
    up.script({
      tool_calls: [
        // Non-strings and empty strings are not searched.
        { name: 'file_search', arguments: JSON.stringify({ queries: ['unseal vault key shares', '', 7, 'soup on Mondays'] }) },
        // A single "query" is searched when "queries" has none.
        { name: 'file_search', arguments: '{"query":"vault backups"}' },
        // At most eight queries are searched.
        { name: 'file_search', arguments: JSON.stringify({ queries: ten }) },
        // No query at all: the call ran, with nothing searched.
        { name: 'file_search', arguments: '{}' },
      ],
    }, { text: 'Three key holders \u30100:0\u2020vault_info.txt\u3011.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const want = [['unseal vault key shares', 'soup on Mondays'], ['vault backups'], ten.slice(0, 8), []];
    const callsOf = (steps) => steps.find((x) => x.type === 'tool_calls').step_details.tool_calls;

    // Queries only: each call gets them, results stay without content.
    const listed = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include: [INC_QUERIES] });
    const calls = callsOf(listed.data);
    assert.equal(calls.length, 4);
    assert.deepEqual(calls.map((c) => c.file_search.queries), want);
    assert.ok(calls[0].file_search.results.length >= 1);
    for (const c of calls) for (const r of c.file_search.results) assert.equal(r.content, undefined);
    // The first call searched both its queries: the vault and the menu are found.
    assert.deepEqual(new Set(calls[0].file_search.results.map((r) => r.file_name)), new Set(['vault_info.txt', 'menu.txt']));
    const stepId = listed.data.find((x) => x.type === 'tool_calls').id;
    const one = await client.beta.threads.runs.steps.retrieve(stepId, { thread_id: thread.id, run_id: run.id, include: [INC_QUERIES] });
    assert.deepEqual(one.step_details.tool_calls.map((c) => c.file_search.queries), want);
    assert.equal(one.step_details.tool_calls[0].file_search.results[0].content, undefined);

    // Both values: queries and content.
    const both = await client.beta.threads.runs.steps.retrieve(stepId, { thread_id: thread.id, run_id: run.id, include: [INC_CONTENT, INC_QUERIES] });
    assert.deepEqual(both.step_details.tool_calls.map((c) => c.file_search.queries), want);
    assert.match(both.step_details.tool_calls[0].file_search.results.find((r) => r.file_name === 'vault_info.txt').content[0].text, /three of the five key holders/);
    const bothListed = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include: [INC_QUERIES, INC_CONTENT] });
    assert.deepEqual(callsOf(bothListed.data), both.step_details.tool_calls);

    // Content only, and neither: no queries field; neither is OpenAI's shape.
    const content = await client.beta.threads.runs.steps.retrieve(stepId, { thread_id: thread.id, run_id: run.id, include: [INC_CONTENT] });
    for (const c of content.step_details.tool_calls) assert.equal('queries' in c.file_search, false);
    assert.ok(content.step_details.tool_calls[0].file_search.results[0].content);
    const plain = await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${run.id}/steps/${stepId}`);
    assert.equal(plain.status, 200);
    assert.doesNotMatch(plain.text, /"queries"/);
    for (const c of plain.json.step_details.tool_calls) {
      assert.deepEqual(Object.keys(c.file_search).sort(), ['ranking_options', 'results']);
      for (const r of c.file_search.results) assert.deepEqual(Object.keys(r).sort(), ['file_id', 'file_name', 'score']);
    }
    // The message step has no file_search call and comes back as stored.
    const msgStep = bothListed.data.find((x) => x.type === 'message_creation');
    assert.equal('queries' in msgStep.step_details, false);

    // Any other value is still OpenAI's 400, naming both supported values.
    for (const include of [['bogus'], [INC_QUERIES, 'step_details.tool_calls[*].file_search.queries[*]']]) {
      await assert.rejects(client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include }), (e) => {
        assert.equal(e.status, 400);
        assert.equal(e.param, 'include');
        assert.equal(e.code, 'invalid_value');
        assert.equal(e.error.message, `Invalid value: '${include.at(-1)}'. Supported values are: '${INC_CONTENT}' and '${INC_QUERIES}'.`);
        return true;
      });
      await assert.rejects(client.beta.threads.runs.steps.retrieve(stepId, { thread_id: thread.id, run_id: run.id, include }), (e) => e.status === 400);
    }
    // Run creation accepts the new value like the content one (only the
    // step endpoints add fields).
    up.script('Nothing more.');
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs?include[]=${encodeURIComponent(INC_QUERIES)}&include[]=${encodeURIComponent(INC_CONTENT)}`, { body: { assistant_id: a.id } });
    assert.equal(r.status, 200, r.text);
    assert.equal('queries' in r.json, false);
    const done = await client.beta.threads.runs.poll(r.json.id, { thread_id: thread.id }, poll);
    assert.equal(done.status, 'completed');
    const bad = await raw(s, 'POST', `/v1/threads/${thread.id}/runs?include[]=nope`, { body: { assistant_id: a.id } });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /'step_details\.tool_calls\[\*\]\.file_search\.queries'/);
  } finally {
    await t.close();
  }
});

test('file_search queries: a call still searching (its store indexing) has no queries yet; once it has run it has', async () => {
  // Failing embeddings hold the file in ingestion (retried with back-off
  // from 0.5 s), so the store is indexing and the search waits for it.
  const t = await setupRuns({ env: { ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' } });
  try {
    const { client, up } = t;
    up.failEmbeddings(1000);
    const f = await client.files.create({ file: await toFile(Buffer.from(VAULT), 'vault_info.txt'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ file_ids: [f.id] });
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'How is the vault unsealed?' }] });
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries":["unseal vault"]}' }] }, { text: 'I could not find it.' });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    let seen = null;
    for (let i = 0; i < 300 && !seen; i++) {
      const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include: [INC_QUERIES] });
      seen = steps.data.find((x) => x.type === 'tool_calls') ?? null;
      if (!seen) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(seen, 'the tool_calls step appeared');
    assert.equal((await client.vectorStores.retrieve(vs.id)).status, 'in_progress', 'the store was still indexing');
    assert.equal(seen.status, 'in_progress');
    assert.equal(seen.step_details.tool_calls[0].type, 'file_search');
    assert.equal('queries' in seen.step_details.tool_calls[0].file_search, false);

    // Let the embeddings through: ingestion's next retry succeeds.
    up.failEmbeddings(0);
    const done = await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, poll);
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
    const after = await client.beta.threads.runs.steps.retrieve(seen.id, { thread_id: thread.id, run_id: run.id, include: [INC_QUERIES] });
    assert.equal(after.status, 'completed');
    assert.deepEqual(after.step_details.tool_calls[0].file_search.queries, ['unseal vault']);
  } finally {
    t.up.failEmbeddings(0);
    await t.close();
  }
});

// SIGTERM while a run's file_search waits for its query's embedding from a
// backend that does not answer: the server stops promptly (the tool gives
// up on the call) and ends the run failed with a clear error on its way
// out, rather than leaving it in progress.
test('file_search: SIGTERM while the search waits for the embeddings backend stops promptly; the run ends failed', async () => {
  await withRestarts(async (t) => {
    const { up } = t;
    let client = t.client();
    const f = await client.files.create({ file: await toFile(Buffer.from(VAULT), 'vault_info.txt'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ file_ids: [f.id] });
    const ready = await client.vectorStores.files.poll(vs.id, f.id, poll);
    assert.equal(ready.status, 'completed');
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'How is the vault unsealed?' }] });
    let release = () => {};
    up.holdEmbeddings(new Promise((r) => { release = r; }));
    const n = up.embeddingRequests.length;
    up.script({ tool_calls: [{ name: 'file_search', arguments: '{"queries":["unseal vault"]}' }] }, { text: 'Three key holders.' });
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: a.id });
    const q = await up.waitForEmbedding(n);
    assert.deepEqual(q.body.input, ['unseal vault']);
    const t1 = Date.now();
    const exited = new Promise((r) => t.s.proc.on('close', () => r(Date.now())));
    t.s.proc.kill('SIGTERM');
    const took = await Promise.race([exited.then((x) => x - t1), new Promise((r) => setTimeout(() => r(Infinity), 8000))]);
    release();
    up.holdEmbeddings(null);
    assert.ok(took < 4000, `shutdown took ${took} ms with the embeddings backend silent`);
    await t.stop(); // exit code 0, no sanitizer report
    await t.start();
    client = t.client();
    const end = await client.beta.threads.runs.poll(run.id, { thread_id: thread.id }, poll);
    assert.equal(end.status, 'failed');
    assert.deepEqual(end.last_error, { code: 'server_error', message: 'The server is shutting down.' });
    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data[0].type, 'tool_calls');
    assert.equal(steps.data[0].status, 'failed');
  }, { env: { ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' } });
});

// Usage with a built-in tool: the tool_calls step shows its call's usage
// once its tools have run and it completes (null before), the message step
// its own, and the run, once it ends, the sum of both calls.
test('file_search usage: the tool step gets its call\'s usage when it completes; the run the sum', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const { vs } = await storeWith(client, [['vault_info.txt', VAULT]]);
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'How is the vault unsealed?' }] });
    up.script(
      { tool_calls: [{ name: 'file_search', arguments: '{"queries":["unseal vault"]}' }], usage: { prompt_tokens: 9, completion_tokens: 3 } },
      { text: 'Three key holders.', usage: { prompt_tokens: 20, completion_tokens: 5 } },
    );
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.usage, { prompt_tokens: 29, completion_tokens: 8, total_tokens: 37 });
    const steps = (await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' })).data;
    assert.deepEqual(steps.map((s) => [s.type, s.status, s.usage]), [
      ['tool_calls', 'completed', { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }],
      ['message_creation', 'completed', { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 }],
    ]);
  } finally {
    await t.close();
  }
});

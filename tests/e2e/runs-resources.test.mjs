// createThreadAndRun's top-level tool_resources: they are the run's (shown
// on the run object), override the assistant's tool by tool (the thread's
// still count), reach file_search and code_interpreter, and are checked as
// a thread's are. A plain createRun keeps tool_resources {}.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { raw, errorOf } from './lib/server.mjs';
import { setupRuns, parseSSE } from './lib/runs.mjs';

const poll = { pollIntervalMs: 20 };
const VAULT = 'Vault runbook. To unseal the vault, three of the five key holders each enter their unseal key share.';
const MENU = 'The cafeteria serves soup on Mondays and pasta on Fridays.';
const search = (q) => ({ tool_calls: [{ name: 'file_search', arguments: JSON.stringify({ queries: [q] }) }] });

async function storeWith(client, name, text) {
  const f = await client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' });
  const vs = await client.vectorStores.create({ name, file_ids: [f.id] });
  for (let i = 0; i < 200; i++) {
    const cur = await client.vectorStores.retrieve(vs.id);
    if (cur.status === 'completed') return { vs: cur, fileId: f.id };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('vector store did not finish indexing');
}

async function searchResults(client, threadId, runId) {
  const steps = await client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' });
  const st = steps.data.find((x) => x.type === 'tool_calls');
  return st.step_details.tool_calls[0].file_search.results.map((r) => r.file_name);
}

test('createThreadAndRun tool_resources: file_search searches the store given only at top level, instead of the assistant\'s', async () => {
  const t = await setupRuns();
  try {
    const { client, up, s } = t;
    const vault = await storeWith(client, 'vault_info.txt', VAULT);
    const menu = await storeWith(client, 'menu.txt', MENU);
    const bare = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }] });

    // The assistant has no store: the run's own is searched.
    up.script(search('unseal vault key shares'), 'Three of five key holders.');
    const tr = { file_search: { vector_store_ids: [vault.vs.id] } };
    const run = await client.beta.threads.createAndRunPoll({
      assistant_id: bare.id, thread: { messages: [{ role: 'user', content: 'How is the vault unsealed?' }] }, tool_resources: tr,
    }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const sources = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.match(sources.content, /three of the five key holders/);
    assert.deepEqual(await searchResults(client, run.thread_id, run.id), ['vault_info.txt']);
    assert.deepEqual(run.tool_resources, tr);
    assert.deepEqual((await client.beta.threads.runs.retrieve(run.id, { thread_id: run.thread_id })).tool_resources, tr);

    // An assistant with a store of its own: the run's override replaces it.
    const withMenu = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [menu.vs.id] } },
    });
    up.script(search('vault soup'), 'Answered.');
    const over = await client.beta.threads.createAndRunPoll({
      assistant_id: withMenu.id, thread: { messages: [{ role: 'user', content: 'vault or soup?' }] }, tool_resources: tr,
    }, poll);
    assert.equal(over.status, 'completed', JSON.stringify(over.last_error));
    assert.deepEqual(await searchResults(client, over.thread_id, over.id), ['vault_info.txt']);

    // A plain createRun on that thread shows {} and searches the assistant's store again.
    up.script(search('vault soup'), 'Answered again.');
    const plain = await client.beta.threads.runs.createAndPoll(over.thread_id, { assistant_id: withMenu.id }, poll);
    assert.equal(plain.status, 'completed', JSON.stringify(plain.last_error));
    assert.deepEqual(plain.tool_resources, {});
    assert.deepEqual(await searchResults(client, over.thread_id, plain.id), ['menu.txt']);

    // Streamed: the run in thread.run.created carries them too.
    up.script('No search needed.');
    const r = await raw(s, 'POST', '/v1/threads/runs', {
      body: { assistant_id: bare.id, thread: { messages: [{ role: 'user', content: 'hi' }] }, tool_resources: tr, stream: true },
    });
    const ev = parseSSE(r.text);
    assert.deepEqual(ev.find((e) => e.event === 'thread.run.created').data.tool_resources, tr);
    assert.equal(ev.at(-2).event, 'thread.run.completed');
  } finally {
    await t.close();
  }
});

test('createThreadAndRun tool_resources: code_interpreter file_ids given only at top level are in /mnt/data', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const f = await client.files.create({ file: await toFile(Buffer.from('a,b\n1,2\n'), 'data.csv'), purpose: 'assistants' });
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const code = 'print(open("/mnt/data/data.csv").read().strip())';
    up.script({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code }) }] }, 'Read it.');
    const run = await client.beta.threads.createAndRunPoll({
      assistant_id: a.id, thread: { messages: [{ role: 'user', content: 'read data.csv' }] },
      tool_resources: { code_interpreter: { file_ids: [f.id] } },
    }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const out = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.equal(out.content.trim(), 'a,b\n1,2');
    assert.deepEqual(run.tool_resources, { code_interpreter: { file_ids: [f.id] } });
  } finally {
    await t.close();
  }
});

test('createThreadAndRun tool_resources naming an unknown vector store or file: the 400 a thread gets, no run started', async () => {
  const t = await setupRuns();
  try {
    const { client, up, s } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }, { type: 'code_interpreter' }] });
    const cases = [
      [{ file_search: { vector_store_ids: ['vs_nope'] } }, 'tool_resources.file_search.vector_store_ids[0]'],
      [{ code_interpreter: { file_ids: ['file-nope'] } }, 'tool_resources.code_interpreter.file_ids[0]'],
    ];
    for (const [tr, param] of cases) {
      const asThread = await client.beta.threads.create({ tool_resources: tr }).catch((e) => e);
      assert.ok(asThread instanceof OpenAI.BadRequestError, `threads.create refuses ${JSON.stringify(tr)}`);
      const err = await client.beta.threads.createAndRun({ assistant_id: a.id, thread: {}, tool_resources: tr }).catch((e) => e);
      assert.ok(err instanceof OpenAI.BadRequestError, `createAndRun refuses ${JSON.stringify(tr)}: ${err}`);
      assert.equal(err.status, 400);
      assert.equal(err.param, param);
      assert.equal(err.code, 'invalid_value');
      assert.equal(err.type, 'invalid_request_error');
      assert.equal(err.error.message, asThread.error.message);
      // Streamed too: a JSON 400, not a stream.
      const r = await raw(s, 'POST', '/v1/threads/runs', { body: { assistant_id: a.id, tool_resources: tr, stream: true } });
      assert.equal(r.status, 400);
      assert.equal(errorOf(r).param, param);
    }
    assert.match((await client.beta.threads.createAndRun({
      assistant_id: a.id, tool_resources: cases[0][0],
    }).catch((e) => e)).message, /no vector store found with id 'vs_nope'/);
    assert.equal(up.requests.length, 0);
  } finally {
    await t.close();
  }
});

// Vector stores through the official SDK: CRUD and pagination, attaching
// files (files.createAndPoll, uploadAndPoll, fileBatches.uploadAndPoll),
// statuses and file_counts, failures with the right last_error.code,
// chunking_strategy validation, search (keyword only, with attribute
// filters, and with an embeddings backend), file content, deletion removing
// chunks, expiry, restart during ingestion, and project isolation.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { toFile, NotFoundError, BadRequestError } from 'openai';
import { startServer, openai, azure, raw, errorOf, KEY } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const VAULT = 'Vault runbook.\n\nRotate the unseal keys every 90 days. The root token is revoked after setup.';
const MONITOR = 'Monitoring guide.\n\nAlerts are routed to the on-call engineer through PagerDuty. Dashboards live in Grafana.';
const SALES = JSON.stringify({ company: 'Contoso', quarter: 'Q3', revenue_usd: 1250000, region: 'EMEA' });

const upload = async (c, text, name) => c.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' });

function assertCounts(fc) {
  assert.equal(fc.total, fc.in_progress + fc.completed + fc.failed + fc.cancelled, JSON.stringify(fc));
}

async function waitFor(fn, ms = 15000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('vector stores, keyword retrieval', () => {
  let s;
  let c;
  before(async () => { s = await startServer(); c = openai(s); });
  after(async () => { await s.stop(); });

  test('CRUD and pagination', async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await c.vectorStores.create({ name: `store-${i}`, metadata: { i: String(i) } }));
    const vs = made[0];
    assert.match(vs.id, /^vs_[A-Za-z0-9]{24}$/);
    assert.equal(vs.object, 'vector_store');
    assert.equal(vs.status, 'completed');
    assert.deepEqual(vs.file_counts, { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });
    assert.equal(vs.usage_bytes, 0);
    assert.equal(vs.expires_at, null);
    assert.ok(vs.last_active_at >= vs.created_at);
    const seen = [];
    for await (const v of c.vectorStores.list({ limit: 2, order: 'asc' })) seen.push(v.id);
    const mine = made.map((m) => m.id);
    assert.deepEqual(seen.filter((id) => mine.includes(id)), mine);
    const page = await c.vectorStores.list({ limit: 2 });
    assert.equal(page.data.length, 2);
    assert.equal(page.has_more, true);
    const upd = await c.vectorStores.update(vs.id, { name: 'renamed', metadata: { k: 'v' }, expires_after: { anchor: 'last_active_at', days: 3 } });
    assert.equal(upd.name, 'renamed');
    assert.deepEqual(upd.metadata, { k: 'v' });
    assert.deepEqual(upd.expires_after, { anchor: 'last_active_at', days: 3 });
    assert.equal(upd.expires_at, upd.last_active_at + 3 * 86400);
    const got = await c.vectorStores.retrieve(vs.id);
    assert.equal(got.name, 'renamed');
    const del = await c.vectorStores.delete(vs.id);
    assert.deepEqual(del, { id: vs.id, object: 'vector_store.deleted', deleted: true });
    await assert.rejects(c.vectorStores.retrieve(vs.id), (e) => e instanceof NotFoundError && /No vector store found with id/.test(e.message));
    // Azure shape, same handlers.
    const az = await azure(s).vectorStores.retrieve(made[1].id);
    assert.equal(az.id, made[1].id);
  });

  test('createAndPoll, uploadAndPoll, fileBatches.uploadAndPoll; counts and filters', async () => {
    const vs = await c.vectorStores.create({ name: 'kb' });
    const f1 = await upload(c, VAULT, 'vault_info.txt');
    const vf = await c.vectorStores.files.createAndPoll(vs.id, { file_id: f1.id, attributes: { team: 'ops', year: 2024 } });
    assert.equal(vf.status, 'completed', JSON.stringify(vf));
    assert.equal(vf.object, 'vector_store.file');
    assert.equal(vf.vector_store_id, vs.id);
    assert.equal(vf.last_error, null);
    assert.deepEqual(vf.chunking_strategy, { type: 'static', static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 } });
    assert.deepEqual(vf.attributes, { team: 'ops', year: 2024 });
    assert.ok(vf.usage_bytes > 0);
    assert.ok(!('_batch' in vf));

    const vf2 = await c.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(MONITOR), 'monitoring.md'));
    assert.equal(vf2.status, 'completed');

    const batch = await c.vectorStores.fileBatches.uploadAndPoll(vs.id, {
      files: [await toFile(Buffer.from(SALES), 'contoso_sales.json'), await toFile(Buffer.from('hello'), 'tool.exe')],
    });
    assert.equal(batch.object, 'vector_store.files_batch');
    assert.match(batch.id, /^vsfb_/);
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 1, failed: 1, cancelled: 0, total: 2 });
    const bfiles = [];
    for await (const f of c.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: vs.id })) bfiles.push(f);
    assert.equal(bfiles.length, 2);
    const failedInBatch = (await c.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: vs.id, filter: 'failed' })).data;
    assert.equal(failedInBatch.length, 1);
    assert.equal(failedInBatch[0].last_error.code, 'unsupported_file');

    const store = await c.vectorStores.retrieve(vs.id);
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 3, failed: 1, cancelled: 0, total: 4 });
    assert.equal(store.status, 'completed');
    const all = [];
    for await (const f of c.vectorStores.files.list(vs.id, { limit: 1 })) all.push(f);
    assert.equal(all.length, 4);
    assert.equal(store.usage_bytes, all.reduce((a, f) => a + f.usage_bytes, 0));
    const done = (await c.vectorStores.files.list(vs.id, { filter: 'completed' })).data;
    assert.equal(done.length, 3);
    const bad = await raw(s, 'GET', `/v1/vector_stores/${vs.id}/files?filter=nope`);
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad).param, 'filter');

    // retrieve / update attributes / content
    const r = await c.vectorStores.files.retrieve(f1.id, { vector_store_id: vs.id });
    assert.equal(r.id, f1.id);
    const u = await c.vectorStores.files.update(f1.id, { vector_store_id: vs.id, attributes: { team: 'sec' } });
    assert.deepEqual(u.attributes, { team: 'sec' });
    const content = [];
    for await (const part of c.vectorStores.files.content(f1.id, { vector_store_id: vs.id })) content.push(part);
    assert.equal(content.length, 1);
    assert.equal(content[0].type, 'text');
    assert.equal(content[0].text, VAULT);
  });

  test('broken and unsupported files fail with the right code', async () => {
    const vs = await c.vectorStores.create({});
    const broken = await c.files.create({ file: await toFile(Buffer.from([0x66, 0x6f, 0xff, 0xfe, 0x00, 0x41]), 'broken.txt'), purpose: 'assistants' });
    const unsupported = await upload(c, 'MZ binary', 'setup.exe');
    const empty = await upload(c, '   \n', 'empty.txt');
    const a = await c.vectorStores.files.createAndPoll(vs.id, { file_id: broken.id });
    assert.equal(a.status, 'failed');
    assert.equal(a.last_error.code, 'invalid_file');
    assert.ok(a.last_error.message.length > 0);
    const b = await c.vectorStores.files.createAndPoll(vs.id, { file_id: unsupported.id });
    assert.equal(b.status, 'failed');
    assert.equal(b.last_error.code, 'unsupported_file');
    const e = await c.vectorStores.files.createAndPoll(vs.id, { file_id: empty.id });
    assert.equal(e.last_error.code, 'invalid_file');
    const store = await c.vectorStores.retrieve(vs.id);
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 0, failed: 3, cancelled: 0, total: 3 });
    await assert.rejects(c.vectorStores.files.create(vs.id, { file_id: 'file-doesnotexist' }),
      (err) => err instanceof BadRequestError && err.param === 'file_id');
  });

  test('chunking_strategy, expires_after, attributes and search validation', async () => {
    const f = await upload(c, VAULT, 'v.txt');
    const cases = [
      [{ file_ids: [f.id], chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 50, chunk_overlap_tokens: 0 } } },
        'chunking_strategy.static.max_chunk_size_tokens', /integer below minimum value\. Expected a value >= 100, but got 50 instead\./],
      [{ file_ids: [f.id], chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 5000, chunk_overlap_tokens: 0 } } },
        'chunking_strategy.static.max_chunk_size_tokens', /integer above maximum value\. Expected a value <= 4096/],
      [{ file_ids: [f.id], chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 400, chunk_overlap_tokens: 201 } } },
        'chunking_strategy.static.chunk_overlap_tokens', /Expected a value <= 200 \(half of max_chunk_size_tokens\), but got 201 instead\./],
      [{ chunking_strategy: { type: 'fancy' } }, 'chunking_strategy.type', /Invalid value: 'fancy'/],
      [{ chunking_strategy: { type: 'static' } }, 'chunking_strategy.static', /Missing required parameter: 'chunking_strategy.static'\./],
      [{ expires_after: { anchor: 'created_at', days: 1 } }, 'expires_after.anchor', /Invalid value: 'created_at'/],
      [{ expires_after: { anchor: 'last_active_at', days: 366 } }, 'expires_after.days', /integer above maximum value/],
      [{ file_ids: ['file-nope'] }, 'file_ids[0]', /no file found with id 'file-nope'/],
      [{ bogus: 1 }, 'bogus', /Unknown parameter: 'bogus'\./],
    ];
    for (const [body, param, msg] of cases) {
      const r = await raw(s, 'POST', '/v1/vector_stores', { body });
      assert.equal(r.status, 400, JSON.stringify(body));
      const e = errorOf(r);
      assert.equal(e.param, param, JSON.stringify(body));
      assert.match(e.message, msg);
    }
    const ok = await c.vectorStores.create({ file_ids: [f.id], chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 50 } } });
    const vf = await c.vectorStores.files.retrieve(f.id, { vector_store_id: ok.id });
    assert.deepEqual(vf.chunking_strategy, { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 50 } });
    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]));
    const r1 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/files`, { body: { file_id: f.id, attributes: tooMany } });
    assert.equal(r1.status, 400);
    assert.equal(errorOf(r1).code, 'object_above_max_properties');
    const r2 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/files`, { body: { file_id: f.id, attributes: { a: [1] } } });
    assert.equal(r2.status, 400);
    assert.equal(errorOf(r2).param, 'attributes.a');
    const r3 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/search`, { body: { query: 'x', max_num_results: 51 } });
    assert.equal(r3.status, 400);
    assert.equal(errorOf(r3).param, 'max_num_results');
    const r4 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/search`, { body: { query: 'x', filters: { type: 'between', key: 'a', value: 1 } } });
    assert.equal(r4.status, 400);
    assert.equal(errorOf(r4).param, 'filters.type');
    // A query array is bounded (each query is ranked over the whole store).
    const r7 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/search`, { body: { query: Array.from({ length: 21 }, (_, i) => `q${i}`) } });
    assert.equal(r7.status, 400);
    assert.equal(errorOf(r7).code, 'array_above_max_length');
    assert.equal(errorOf(r7).type, 'invalid_request_error');
    const r8 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/search`, { body: { query: [] } });
    assert.equal(r8.status, 400);
    assert.equal(errorOf(r8).param, 'query');
    const r9 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/search`, { body: { query: 'x', ranking_options: { score_threshold: 1.5 } } });
    assert.equal(r9.status, 400);
    assert.equal(errorOf(r9).param, 'ranking_options.score_threshold');
    const r5 = await raw(s, 'POST', `/v1/vector_stores/${ok.id}/file_batches`, { body: {} });
    assert.equal(r5.status, 400);
    assert.equal(errorOf(r5).param, 'file_ids');
    const r6 = await raw(s, 'POST', '/v1/vector_stores', { body: {}, beta: false });
    assert.equal(r6.status, 400);
    assert.equal(errorOf(r6).code, 'invalid_beta');
  });

  test('search: right file first, filters, multiple queries, deletion removes chunks', async () => {
    const vs = await c.vectorStores.create({ name: 'search' });
    const ids = {};
    for (const [name, text, attrs] of [['vault_info.txt', VAULT, { team: 'security', year: 2023 }],
      ['monitoring.md', MONITOR, { team: 'ops', year: 2024 }], ['contoso_sales.json', SALES, { team: 'sales', year: 2024 }]]) {
      const f = await upload(c, text, name);
      ids[name] = f.id;
      const vf = await c.vectorStores.files.createAndPoll(vs.id, { file_id: f.id, attributes: attrs });
      assert.equal(vf.status, 'completed');
    }
    const before = (await c.vectorStores.retrieve(vs.id)).last_active_at;
    const res = await c.vectorStores.search(vs.id, { query: 'How often are the unseal keys rotated?' });
    assert.equal(res.data[0].file_id, ids['vault_info.txt']);
    assert.equal(res.data[0].filename, 'vault_info.txt');
    assert.ok(res.data[0].score > 0 && res.data[0].score <= 1);
    assert.deepEqual(res.data[0].attributes, { team: 'security', year: 2023 });
    assert.equal(res.data[0].content[0].type, 'text');
    assert.match(res.data[0].content[0].text, /unseal keys every 90 days/);
    const rawRes = await raw(s, 'POST', `/v1/vector_stores/${vs.id}/search`, { body: { query: 'PagerDuty alerts', rewrite_query: true } });
    assert.equal(rawRes.json.object, 'vector_store.search_results.page');
    assert.deepEqual(rawRes.json.search_query, ['PagerDuty alerts']);
    assert.equal(rawRes.json.has_more, false);
    assert.equal(rawRes.json.next_page, null);
    assert.equal(rawRes.json.data[0].file_id, ids['monitoring.md']);
    assert.ok((await c.vectorStores.retrieve(vs.id)).last_active_at >= before);

    // Multiple queries are fused: both files come back.
    const multi = await raw(s, 'POST', `/v1/vector_stores/${vs.id}/search`, { body: { query: ['Contoso revenue', 'Grafana dashboards'] } });
    const got = multi.json.data.map((d) => d.file_id);
    assert.ok(got.includes(ids['contoso_sales.json']) && got.includes(ids['monitoring.md']), JSON.stringify(multi.json));
    assert.deepEqual(multi.json.search_query, ['Contoso revenue', 'Grafana dashboards']);

    // Filters on attributes.
    const q = 'Contoso revenue PagerDuty unseal';
    const f1 = await c.vectorStores.search(vs.id, { query: q, filters: { type: 'eq', key: 'team', value: 'ops' } });
    assert.deepEqual(f1.data.map((d) => d.file_id), [ids['monitoring.md']]);
    const f2 = await c.vectorStores.search(vs.id, { query: q, filters: { type: 'and', filters: [{ type: 'gte', key: 'year', value: 2024 }, { type: 'ne', key: 'team', value: 'ops' }] } });
    assert.deepEqual(f2.data.map((d) => d.file_id), [ids['contoso_sales.json']]);
    const f3 = await c.vectorStores.search(vs.id, { query: q, filters: { type: 'or', filters: [{ type: 'in', key: 'team', value: ['security', 'sales'] }, { type: 'lt', key: 'year', value: 2000 }] } });
    assert.deepEqual(f3.data.map((d) => d.file_id).sort(), [ids['contoso_sales.json'], ids['vault_info.txt']].sort());
    const f4 = await c.vectorStores.search(vs.id, { query: q, filters: { type: 'eq', key: 'missing', value: 'x' } });
    assert.equal(f4.data.length, 0);

    // max_num_results and score_threshold
    const one = await c.vectorStores.search(vs.id, { query: q, max_num_results: 1 });
    assert.equal(one.data.length, 1);
    const thr = await c.vectorStores.search(vs.id, { query: q, ranking_options: { score_threshold: 1 } });
    assert.ok(thr.data.length <= 1);
    for (const d of thr.data) assert.equal(d.score, 1);

    // Deleting the file from the store removes its chunks.
    const del = await c.vectorStores.files.delete(ids['vault_info.txt'], { vector_store_id: vs.id });
    assert.deepEqual(del, { id: ids['vault_info.txt'], object: 'vector_store.file.deleted', deleted: true });
    const after = await c.vectorStores.search(vs.id, { query: 'unseal keys rotated' });
    assert.ok(!after.data.some((d) => d.file_id === ids['vault_info.txt']));
    await assert.rejects(c.vectorStores.files.retrieve(ids['vault_info.txt'], { vector_store_id: vs.id }), NotFoundError);
    // ... and it can be attached again.
    const again = await c.vectorStores.files.createAndPoll(vs.id, { file_id: ids['vault_info.txt'] });
    assert.equal(again.status, 'completed');
    const back = await c.vectorStores.search(vs.id, { query: 'unseal keys rotated' });
    assert.equal(back.data[0].file_id, ids['vault_info.txt']);
    // Deleting the store: its search is gone.
    await c.vectorStores.delete(vs.id);
    await assert.rejects(c.vectorStores.search(vs.id, { query: 'unseal' }), NotFoundError);
  });

  test('deleting a File removes it from every vector store', async () => {
    const f = await upload(c, VAULT, 'vault_info.txt');
    const keep = await upload(c, MONITOR, 'monitoring.md');
    const a = await c.vectorStores.create({ name: 'a', file_ids: [f.id, keep.id] });
    const b = await c.vectorStores.create({ name: 'b', file_ids: [f.id] });
    for (const vs of [a, b]) {
      await waitFor(async () => (await c.vectorStores.retrieve(vs.id)).file_counts.in_progress === 0);
      const hit = await c.vectorStores.search(vs.id, { query: 'unseal keys rotated' });
      assert.equal(hit.data[0].file_id, f.id);
    }
    assert.deepEqual(await c.files.delete(f.id), { id: f.id, object: 'file', deleted: true });
    for (const vs of [a, b]) {
      const res = await c.vectorStores.search(vs.id, { query: 'unseal keys rotated' });
      assert.ok(!res.data.some((d) => d.file_id === f.id), JSON.stringify(res.data));
      await assert.rejects(c.vectorStores.files.retrieve(f.id, { vector_store_id: vs.id }), NotFoundError);
      const st = await c.vectorStores.retrieve(vs.id);
      assertCounts(st.file_counts);
      assert.equal(st.file_counts.total, vs.id === a.id ? 1 : 0);
    }
    const left = await c.vectorStores.search(a.id, { query: 'PagerDuty alerts' });
    assert.equal(left.data[0].file_id, keep.id);
  });

  test('tool_resources vector_stores helper and file_search attachments create stores', async () => {
    const f1 = await upload(c, VAULT, 'vault_info.txt');
    const f2 = await upload(c, MONITOR, 'monitoring.md');
    const a = await c.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'file_search' }],
      tool_resources: { file_search: { vector_stores: [{ file_ids: [f1.id], metadata: { from: 'helper' } }] } },
    });
    const [avs] = a.tool_resources.file_search.vector_store_ids;
    assert.match(avs, /^vs_/);
    const st = await waitFor(async () => { const v = await c.vectorStores.retrieve(avs); return v.status === 'completed' && v; });
    assert.deepEqual(st.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
    assert.deepEqual(st.metadata, { from: 'helper' });
    const bad = await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o', tool_resources: { file_search: { vector_stores: [{ file_ids: ['file-nope'] }] } } } });
    assert.equal(bad.status, 400);
    assert.equal(errorOf(bad).param, 'tool_resources.file_search.vector_stores[0].file_ids[0]');

    const t = await c.beta.threads.create({
      messages: [{ role: 'user', content: 'read this', attachments: [{ file_id: f1.id, tools: [{ type: 'file_search' }] }] }],
    });
    const [tvs] = t.tool_resources.file_search.vector_store_ids;
    assert.match(tvs, /^vs_/);
    assert.deepEqual((await c.beta.threads.retrieve(t.id)).tool_resources, t.tool_resources);
    const tstore = await c.vectorStores.retrieve(tvs);
    assert.deepEqual(tstore.expires_after, { anchor: 'last_active_at', days: 7 });
    await c.beta.threads.messages.create(t.id, { role: 'user', content: 'and this', attachments: [{ file_id: f2.id, tools: [{ type: 'file_search' }] }] });
    // code_interpreter-only attachments do not touch the store.
    await c.beta.threads.messages.create(t.id, { role: 'user', content: 'no', attachments: [{ file_id: f2.id, tools: [{ type: 'code_interpreter' }] }] });
    const done = await waitFor(async () => { const v = await c.vectorStores.retrieve(tvs); return v.status === 'completed' && v; });
    assert.deepEqual(done.file_counts, { in_progress: 0, completed: 2, failed: 0, cancelled: 0, total: 2 });
    assert.deepEqual((await c.beta.threads.retrieve(t.id)).tool_resources.file_search.vector_store_ids, [tvs]);
    const res = await c.vectorStores.search(tvs, { query: 'PagerDuty' });
    assert.equal(res.data[0].file_id, f2.id);
  });

  test('a text over the 5,000,000-token limit fails with invalid_file', async () => {
    const vs = await c.vectorStores.create({});
    const f = await upload(c, ' a'.repeat(5000001), 'huge.txt');
    const vf = await c.vectorStores.files.createAndPoll(vs.id, { file_id: f.id }, { pollIntervalMs: 100 });
    assert.equal(vf.status, 'failed');
    assert.equal(vf.last_error.code, 'invalid_file');
    assert.match(vf.last_error.message, /5000000 tokens/);
    assert.equal(vf.usage_bytes, 0);
  });

  test('a file deleted or re-attached while it is ingested', async () => {
    const big = 'Ledger reconciliation closes every Friday. The auditor signs the report.\n\n'.repeat(30000);
    const f = await upload(c, big, 'ledger.txt');
    // Deleted at once: the job finds no row, writes no chunks.
    const vs = await c.vectorStores.create({ file_ids: [f.id] });
    const del = await c.vectorStores.files.delete(f.id, { vector_store_id: vs.id });
    assert.equal(del.deleted, true);
    await new Promise((r) => setTimeout(r, 1500));
    const st = await c.vectorStores.retrieve(vs.id);
    assert.deepEqual(st.file_counts, { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });
    assert.equal(st.usage_bytes, 0);
    assert.equal((await c.vectorStores.search(vs.id, { query: 'auditor' })).data.length, 0);
    const gone = await raw(s, 'GET', `/v1/vector_stores/${vs.id}/files/${f.id}`);
    assert.equal(gone.status, 404);
    assert.equal(errorOf(gone).type, 'invalid_request_error');
    // Re-attached with another chunking while the first job runs: the file
    // ends with the chunking it was last attached with.
    const vs2 = await c.vectorStores.create({});
    await c.vectorStores.files.create(vs2.id, { file_id: f.id });
    const vf = await c.vectorStores.files.createAndPoll(vs2.id, {
      file_id: f.id, chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 0 } },
    }, { pollIntervalMs: 100 });
    assert.equal(vf.status, 'completed');
    assert.deepEqual(vf.chunking_strategy, { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 0 } });
    const content = await raw(s, 'GET', `/v1/vector_stores/${vs2.id}/files/${f.id}/content`);
    assert.equal(content.status, 200);
    const parts = content.json.data;
    assert.ok(parts.length > 1000, String(parts.length)); // 100-token chunks, not 800
    assert.ok(parts.every((p) => p.text.length < 1000));
  });

  test('batch cancel leaves consistent counts', async () => {
    const vs = await c.vectorStores.create({});
    const files = [];
    for (let i = 0; i < 20; i++) files.push((await upload(c, `${MONITOR} ${i}\n`.repeat(200), `m${i}.txt`)).id);
    const b = await c.vectorStores.fileBatches.create(vs.id, { file_ids: files });
    const cancelled = await c.vectorStores.fileBatches.cancel(b.id, { vector_store_id: vs.id });
    assertCounts(cancelled.file_counts);
    assert.equal(cancelled.file_counts.in_progress, 0);
    assert.equal(cancelled.file_counts.total, 20);
    assert.ok(['cancelled', 'completed'].includes(cancelled.status));
    if (cancelled.file_counts.cancelled > 0) assert.equal(cancelled.status, 'cancelled');
    const store = await waitFor(async () => { const v = await c.vectorStores.retrieve(vs.id); return v.status === 'completed' && v; });
    assertCounts(store.file_counts);
    assert.equal(store.file_counts.cancelled, cancelled.file_counts.cancelled);
  });

  test('other projects cannot see stores', async () => {
    const s2 = await startServer({ keys: null, keysFile: 'sk-a a\nsk-b b\n' });
    try {
      const a = openai(s2, 'sk-a');
      const b = openai(s2, 'sk-b');
      const vs = await a.vectorStores.create({ name: 'private' });
      const f = await upload(a, VAULT, 'v.txt');
      await a.vectorStores.files.createAndPoll(vs.id, { file_id: f.id });
      await assert.rejects(b.vectorStores.retrieve(vs.id), NotFoundError);
      await assert.rejects(b.vectorStores.search(vs.id, { query: 'unseal' }), NotFoundError);
      await assert.rejects(b.vectorStores.files.retrieve(f.id, { vector_store_id: vs.id }), NotFoundError);
      await assert.rejects(b.vectorStores.delete(vs.id), NotFoundError);
      const listB = await b.vectorStores.list();
      assert.equal(listB.data.length, 0);
      // b cannot attach a's file to its own store either.
      const vsb = await b.vectorStores.create({});
      await assert.rejects(b.vectorStores.files.create(vsb.id, { file_id: f.id }), BadRequestError);
    } finally {
      await s2.stop();
    }
  });
});

describe('vector stores with an embeddings backend', () => {
  let s;
  let up;
  let c;
  before(async () => {
    up = await startUpstream({ apiKey: 'up-key' });
    s = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' } });
    c = openai(s);
  });
  after(async () => { await s.stop(); await up.close(); });

  test('files are embedded in batches and searches are hybrid', async () => {
    const vs = await c.vectorStores.create({});
    const batch = await c.vectorStores.fileBatches.uploadAndPoll(vs.id, {
      files: [await toFile(Buffer.from(VAULT), 'vault_info.txt'), await toFile(Buffer.from(MONITOR), 'monitoring.md')],
    });
    assert.equal(batch.file_counts.completed, 2);
    assert.ok(up.embeddingRequests.length >= 2);
    for (const r of up.embeddingRequests) {
      assert.equal(r.body.model, 'fixture-embed');
      assert.equal(r.headers.authorization, 'Bearer up-key');
    }
    const n = up.embeddingRequests.length;
    const res = await c.vectorStores.search(vs.id, { query: 'unseal keys' });
    assert.equal(up.embeddingRequests.length, n + 1);
    assert.deepEqual(up.embeddingRequests[n].body.input, ['unseal keys']);
    assert.equal(res.data[0].filename, 'vault_info.txt');
    // Fused from two lists: the top chunk is first in at least one.
    assert.ok(res.data[0].score >= (1 / 61 + 1 / 62) / (2 / 61) - 1e-9, String(res.data[0].score));
    // Embedding usage counts in usage_bytes (64 floats per chunk).
    const files = (await c.vectorStores.files.list(vs.id)).data;
    for (const f of files) assert.ok(f.usage_bytes > 256);
  });

  test('a failing embeddings backend is retried, then fails the file with server_error', async () => {
    const vs = await c.vectorStores.create({});
    up.failEmbeddings(1);
    const ok = await c.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(VAULT), 'retry.txt'));
    assert.equal(ok.status, 'completed');
    up.failEmbeddings(100);
    const bad = await c.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(MONITOR), 'fail.txt'));
    up.failEmbeddings(0);
    assert.equal(bad.status, 'failed');
    assert.equal(bad.last_error.code, 'server_error');
    assert.match(bad.last_error.message, /embedding/i);
  });
});

// A search whose query must be embedded waits for a remote call; it must
// not hold an HTTP thread meanwhile (one here: --threads 1). SIGTERM while
// searches wait on a backend that never answers: the server gives up on the
// embeddings calls, answers each waiting search 503 (the SDKs retry that)
// and exits cleanly within a few seconds -- not after the calls' own
// timeouts (libmicrohttpd refuses to stop with suspended connections, so
// every deferred search must have been answered).
test('a search waiting for the embeddings backend holds no HTTP thread; shutdown does not wait for the backend', async () => {
  const up = await startUpstream({ apiKey: 'up-key' });
  const s = await startServer({ args: ['--threads', '1'], env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' } });
  let release = () => {};
  try {
    const c = openai(s);
    const vs = await c.vectorStores.create({});
    const f = await c.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(VAULT), 'vault_info.txt'));
    assert.equal(f.status, 'completed');
    up.holdEmbeddings(new Promise((r) => { release = r; }));
    const n = up.embeddingRequests.length;
    let answered = false;
    const pending = c.vectorStores.search(vs.id, { query: 'unseal keys' }).finally(() => { answered = true; });
    await up.waitForEmbedding(n);
    // The only HTTP thread goes on answering while the search waits.
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await c.vectorStores.retrieve(vs.id, { timeout: 3000 })).id, vs.id);
    assert.ok(Date.now() - t0 < 3000, `five retrieves took ${Date.now() - t0} ms`);
    assert.equal(answered, false, 'the search waits for its embedding');
    release();
    up.holdEmbeddings(null);
    const res = await pending;
    assert.deepEqual(up.embeddingRequests[n].body.input, ['unseal keys']);
    assert.equal(res.data[0].filename, 'vault_info.txt');
    // Six at once (four run, two queue), then SIGTERM while they wait on
    // a backend that does not answer until the test ends.
    up.holdEmbeddings(new Promise((r) => { release = r; }));
    const m = up.embeddingRequests.length;
    const many = Array.from({ length: 6 }, () => c.vectorStores.search(vs.id, { query: 'root token' }, { maxRetries: 0 }).then((r) => r, (e) => e));
    await up.waitForEmbedding(m + 3);
    const exited = new Promise((r) => s.proc.on('close', () => r(Date.now())));
    const t1 = Date.now();
    s.proc.kill('SIGTERM');
    const took = await Promise.race([exited.then((t) => t - t1), sleep(8000).then(() => Infinity)]);
    assert.ok(took < 4000, `shutdown took ${took} ms with the embeddings backend silent`);
    const settled = await Promise.all(many);
    // The four running ones are answered 503; the two queued ones are too,
    // or lose their connection if the front stopped before they ran.
    const refused = settled.filter((r) => r?.status === 503);
    assert.ok(refused.length >= 4, settled.map(String).join('; '));
    for (const r of settled) {
      if (r?.status === 503) {
        assert.equal(r.error.type, 'server_error');
        assert.equal(r.error.message, 'The server is shutting down.');
      } else {
        assert.ok(r instanceof Error && !('status' in r && r.status), String(r));
      }
    }
    console.log(`searches at SIGTERM: ${refused.length} of 6 answered 503; exit after ${took} ms`);
  } finally {
    release();
    await s.stop();
    await up.close();
  }
});

// A search whose embedding call failed and waits to try again (back-off
// 0.5 s, 1 s, 2 s ...) when SIGTERM comes: the wait is cut short too, and
// the search is answered 503.
test('SIGTERM while a search backs off between embedding retries: answered 503 at once', async () => {
  const up = await startUpstream({ apiKey: 'up-key' });
  const s = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' } });
  try {
    const c = openai(s);
    const vs = await c.vectorStores.create({});
    const f = await c.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(VAULT), 'vault_info.txt'));
    assert.equal(f.status, 'completed');
    up.failEmbeddings(1000);
    const n = up.embeddingRequests.length;
    const pending = c.vectorStores.search(vs.id, { query: 'unseal keys' }, { maxRetries: 0 }).then((r) => r, (e) => e);
    await up.waitForEmbedding(n + 1); // failed twice: now in its 1 s back-off
    const t1 = Date.now();
    s.proc.kill('SIGTERM');
    const r = await pending;
    assert.equal(r?.status, 503, String(r));
    assert.equal(r.error.message, 'The server is shutting down.');
    assert.ok(Date.now() - t1 < 900, `answered after ${Date.now() - t1} ms`);
  } finally {
    up.failEmbeddings(0);
    await s.stop();
    await up.close();
  }
});

// Ingestion waiting on an embeddings backend that does not answer must not
// hold up SIGTERM: the file is left in_progress (not failed) and is ingested
// again by the next start. body(t) gets { s, c, f, vs } with the file's
// embedding call held, stops s itself, and returns; then the backend is let
// through, a second server starts on the same data, and the file must end
// completed there.
async function ingestCutByShutdown(body) {
  const up = await startUpstream({ apiKey: 'up-key' });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-vs-term-'));
  const env = { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ASSISTD_EMBEDDINGS_MODEL: 'fixture-embed' };
  let release = () => {};
  let s2 = null;
  try {
    const s = await startServer({ dataDir, env });
    const c = openai(s);
    up.holdEmbeddings(new Promise((r) => { release = r; }));
    const f = await upload(c, VAULT, 'vault_info.txt');
    const vs = await c.vectorStores.create({ file_ids: [f.id] });
    await up.waitForEmbedding(0);
    await body({ up, s, c, f, vs });
    release();
    up.holdEmbeddings(null);
    s2 = await startServer({ dataDir, env });
    const c2 = openai(s2);
    const vf = await c2.vectorStores.files.poll(vs.id, f.id, { pollIntervalMs: 100 });
    assert.equal(vf.status, 'completed', JSON.stringify(vf.last_error));
    assert.ok(up.embeddingRequests.length >= 2, 'embedded again after the restart');
    const res = await c2.vectorStores.search(vs.id, { query: 'unseal keys' });
    assert.equal(res.data[0].filename, 'vault_info.txt');
  } finally {
    release();
    if (s2) await s2.stop();
    await up.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

test('SIGTERM while a file waits for its embeddings: prompt exit, and the next start completes the file', async () => {
  await ingestCutByShutdown(async ({ s }) => {
    const t1 = Date.now();
    const exited = new Promise((r) => s.proc.on('close', () => r(Date.now())));
    s.proc.kill('SIGTERM');
    const took = await Promise.race([exited.then((t) => t - t1), sleep(8000).then(() => Infinity)]);
    assert.ok(took < 4000, `shutdown took ${took} ms with the embeddings backend silent`);
    await s.stop({ keepData: true }); // exit code 0, no sanitizer report
  });
});

// The same while shutdown takes longer than the embeddings call needs to
// give up (a stream whose client stopped reading holds the front up to 2 s):
// the file must still be left in_progress, not failed with "The server is
// shutting down." (the ingestion's own stop flag comes later than the
// server's).
test('SIGTERM with a file waiting for its embeddings and a slow shutdown: the file is not failed', async () => {
  let req = null;
  try {
    await ingestCutByShutdown(async ({ up, s, c }) => {
      // A run streaming far more than the client reads.
      const a = await c.beta.assistants.create({ model: 'gpt-4o' });
      const th = await c.beta.threads.create({ messages: [{ role: 'user', content: 'go' }] });
      const chunks = Array.from({ length: 100000 }, () => 'xxxxxxxxxx');
      up.script({ text: chunks.join(''), chunks });
      const http = await import('node:http');
      let got = 0;
      req = http.request({ host: '127.0.0.1', port: s.port, method: 'POST', path: `/v1/threads/${th.id}/runs`,
        headers: { authorization: `Bearer ${KEY}`, 'openai-beta': 'assistants=v2', 'content-type': 'application/json' } }, (res) => {
        res.on('data', (d) => { got += d.length; if (got > 100000) res.pause(); });
      });
      req.on('error', () => {});
      req.end(JSON.stringify({ assistant_id: a.id, stream: true }));
      for (let i = 0; i < 100 && got <= 100000; i++) await sleep(50);
      assert.ok(got > 100000, 'the stream flowed, then the client stopped reading');
      await sleep(2500); // the socket's buffers fill up behind the paused client
      const t1 = Date.now();
      s.proc.kill('SIGTERM');
      await s.stop({ keepData: true });
      const took = Date.now() - t1;
      assert.ok(took > 1500, `the shutdown was slow enough to matter (${took} ms)`);
      req.destroy();
    });
  } finally {
    req?.destroy();
  }
});

function hasSqlite3() {
  try { execFileSync('sqlite3', ['-version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

describe('durability and expiry', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-vs-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('a file in progress at kill -9 ends completed after the restart', async () => {
    const s = await startServer({ dataDir });
    const c = openai(s);
    const big = 'The quick brown fox jumps over the lazy dog. Unseal keys rotate quarterly.\n\n'.repeat(40000);
    const f = await upload(c, big, 'big.txt');
    const vs = await c.vectorStores.create({ file_ids: [f.id] });
    await s.kill9();
    const s2 = await startServer({ dataDir });
    try {
      const c2 = openai(s2);
      const vf = await c2.vectorStores.files.poll(vs.id, f.id, { pollIntervalMs: 100 });
      assert.ok(['completed', 'failed'].includes(vf.status), vf.status);
      assert.equal(vf.status, 'completed');
      const st = await c2.vectorStores.retrieve(vs.id);
      assert.equal(st.status, 'completed');
      assert.deepEqual(st.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
      const res = await c2.vectorStores.search(vs.id, { query: 'unseal keys' });
      assert.ok(res.data.length > 0);
      await s2.stop({ keepData: true });
    } catch (e) {
      await s2.kill9();
      throw e;
    }
  });

  test('an expired store reports expired and refuses search and changes', { skip: !hasSqlite3() && 'sqlite3 CLI not installed' }, async () => {
    let s = await startServer({ dataDir });
    let c = openai(s);
    const vs = await c.vectorStores.create({ name: 'short', expires_after: { anchor: 'last_active_at', days: 1 } });
    assert.equal(vs.expires_at, vs.last_active_at + 86400);
    await s.stop({ keepData: true });
    // Two days pass.
    execFileSync('sqlite3', [path.join(dataDir, 'assistd.db'),
      `UPDATE objects SET body = json_set(body, '$.last_active_at', json_extract(body, '$.last_active_at') - 172800) WHERE id = '${vs.id}'`]);
    s = await startServer({ dataDir });
    try {
      c = openai(s);
      const got = await c.vectorStores.retrieve(vs.id);
      assert.equal(got.status, 'expired');
      assert.ok(got.expires_at < Date.now() / 1000);
      await assert.rejects(c.vectorStores.search(vs.id, { query: 'x' }), (e) => e instanceof BadRequestError && /is expired/.test(e.message));
      await assert.rejects(c.vectorStores.update(vs.id, { name: 'n' }), (e) => e instanceof BadRequestError && /is expired/.test(e.message));
      const f = await upload(c, VAULT, 'v.txt');
      await assert.rejects(c.vectorStores.files.create(vs.id, { file_id: f.id }), BadRequestError);
      const del = await c.vectorStores.delete(vs.id);
      assert.equal(del.deleted, true);
    } finally {
      await s.stop();
    }
  });
});

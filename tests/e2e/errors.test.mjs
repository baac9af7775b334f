// Malformed input on the endpoints added with vector stores, uploads, the
// include[] values of runs and steps, and the playground's static files:
// wrong types, unknown fields, bad ids, oversized values, bad JSON and
// wrong methods. Every answer must be OpenAI's error body
// {"error":{"message","type","param","code"}} (message a non-empty string)
// with OpenAI's status, never 408/409, and the server must survive all of
// it (stop() fails on any sanitizer report or a non-zero exit).
//
// Regression: an error message that echoes bytes from the URL which are not
// UTF-8 (a path id, a query value, a playground path) used to lose its
// "message" key altogether, because json_string() refuses invalid UTF-8.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { toFile } from 'openai';
import { startServer, openai, raw, errorOf, httpRequest } from './lib/server.mjs';

const INC_CONTENT = 'step_details.tool_calls[*].file_search.results[*].content';

// The whole error contract in one place: status, all four keys, a message.
function assertError(r, status, { param, code, type = 'invalid_request_error' } = {}) {
  const ctx = `${r.status} ${r.text}`;
  assert.equal(r.status, status, ctx);
  assert.notEqual(r.status, 408, ctx);
  assert.notEqual(r.status, 409, ctx);
  const e = errorOf(r);
  assert.deepEqual(Object.keys(r.json), ['error'], ctx);
  assert.equal(typeof e.message, 'string', ctx);
  assert.ok(e.message.length > 0, ctx);
  assert.equal(e.type, type, ctx);
  if (param !== undefined) assert.equal(e.param, param, ctx);
  if (code !== undefined) assert.equal(e.code, code, ctx);
  return e;
}

describe('OpenAI-shaped errors on the new endpoints', () => {
  let s, c, pg, vs, file, asst, thread, run;

  before(async () => {
    // A tiny playground directory, so static.c's own checks are reached.
    pg = mkdtempSync(path.join(tmpdir(), 'assistd-pg-'));
    writeFileSync(path.join(pg, 'index.html'), '<!doctype html><title>pg</title>');
    mkdirSync(path.join(pg, 'assets'));
    s = await startServer({ args: ['--playground-dir', pg, '--max-json-body', '64K'] });
    c = openai(s);
    file = await c.files.create({ file: await toFile(Buffer.from('unseal keys rotate every 90 days'), 'a.txt'), purpose: 'assistants' });
    vs = await c.vectorStores.create({ name: 'errors' });
    asst = await c.beta.assistants.create({ model: 'gpt-4o' });
    thread = await c.beta.threads.create();
    // No upstream is reachable: the run exists, which is all the steps
    // endpoints need.
    run = await c.beta.threads.runs.create(thread.id, { assistant_id: asst.id });
  });

  after(async () => {
    await s?.stop();
    if (pg) rmSync(pg, { recursive: true, force: true });
  });

  test('bytes that are not UTF-8 in the URL keep the error message', async () => {
    const V = `/v1/vector_stores/${vs.id}`;
    assertError(await raw(s, 'GET', '/v1/vector_stores/vs_%ff'), 400, { param: 'vector_store_id' });
    assertError(await raw(s, 'GET', '/v1/vector_stores?order=%ff'), 400, { param: 'order', code: 'invalid_value' });
    assertError(await raw(s, 'GET', '/v1/vector_stores?after=%ff%fe'), 400, { param: 'after' });
    assertError(await raw(s, 'GET', `${V}/files/file-%ff`), 400, { param: 'file_id' });
    assertError(await raw(s, 'GET', `/v1/threads/${thread.id}/runs/${run.id}/steps?include[]=%ff`), 400, { param: 'include' });
    assertError(await raw(s, 'GET', '/v1/nope%c3'), 404);
    assertError(await raw(s, 'GET', '/playground/%ff.js', { key: null, beta: false }), 404);
    // A valid multi-byte character is echoed as is.
    const e = assertError(await raw(s, 'GET', '/v1/vector_stores?order=%c3%a9'), 400, { param: 'order' });
    assert.match(e.message, /'é'/);
  });

  test('vector stores: bad JSON, wrong types, unknown fields, bounds, bad ids', async () => {
    const V = `/v1/vector_stores/${vs.id}`;
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: '{"name":', headers: { 'Content-Type': 'application/json' } }), 400);
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: '[]', headers: { 'Content-Type': 'application/json' } }), 400, { code: 'invalid_type' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { name: 5 } }), 400, { param: 'name', code: 'invalid_type' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { nme: 'x' } }), 400, { param: 'nme', code: 'unknown_parameter' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { file_ids: ['file-nope'] } }), 400, { param: 'file_ids[0]' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { expires_after: { anchor: 'last_active_at', days: 366 } } }), 400,
      { param: 'expires_after.days', code: 'integer_above_max_value' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 60 } } } }), 400,
      { param: 'chunking_strategy.static.chunk_overlap_tokens' });
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { metadata: { a: 'x'.repeat(513) } } }), 400, { param: 'metadata.a' });
    // Over --max-json-body (64K here): 413 before the body is read.
    assertError(await raw(s, 'POST', '/v1/vector_stores', { body: { name: 'x'.repeat(70 * 1024) } }), 413, { code: 'request_too_large' });
    assertError(await raw(s, 'GET', '/v1/vector_stores/vs_nope'), 404);
    assertError(await raw(s, 'GET', `/v1/vector_stores/${'a'.repeat(3000)}`), 400, { param: 'vector_store_id' });
    assertError(await raw(s, 'GET', '/v1/vector_stores?limit=0'), 400, { param: 'limit' });
    assertError(await raw(s, 'GET', '/v1/vector_stores?limit=abc'), 400, { param: 'limit', code: 'invalid_type' });
    assertError(await raw(s, 'POST', V, { body: { file_ids: [] } }), 400, { param: 'file_ids', code: 'unknown_parameter' });
    assertError(await raw(s, 'PUT', '/v1/vector_stores', { body: {} }), 405, { code: 'method_not_allowed' });
    assertError(await raw(s, 'PATCH', V, { body: {} }), 405, { code: 'method_not_allowed' });
    assertError(await raw(s, 'DELETE', '/v1/vector_stores/vs_nope'), 404);
  });

  test('vector store files and file batches', async () => {
    const V = `/v1/vector_stores/${vs.id}`;
    assertError(await raw(s, 'POST', `${V}/files`, { body: {} }), 400, { param: 'file_id', code: 'missing_required_parameter' });
    assertError(await raw(s, 'POST', `${V}/files`, { body: { file_id: 1 } }), 400, { param: 'file_id', code: 'invalid_type' });
    assertError(await raw(s, 'POST', `${V}/files`, { body: { file_id: 'file-nope' } }), 400, { param: 'file_id' });
    assertError(await raw(s, 'POST', `${V}/files`, { body: { file_id: file.id, attributes: { a: [1] } } }), 400, { param: 'attributes.a' });
    assertError(await raw(s, 'POST', `${V}/files`, { body: { file_id: file.id, foo: 1 } }), 400, { param: 'foo', code: 'unknown_parameter' });
    assertError(await raw(s, 'POST', '/v1/vector_stores/vs_nope/files', { body: { file_id: file.id } }), 404);
    assertError(await raw(s, 'GET', `${V}/files/file-nope`), 404);
    assertError(await raw(s, 'GET', `${V}/files/file-nope/content`), 404);
    assertError(await raw(s, 'POST', `${V}/files/${file.id}`, { body: {} }), 400, { param: 'attributes' });
    assertError(await raw(s, 'GET', `${V}/files?filter=bogus`), 400, { param: 'filter', code: 'invalid_value' });
    assertError(await raw(s, 'POST', `${V}/file_batches`, { body: { file_ids: [] } }), 400, { param: 'file_ids', code: 'array_below_min_length' });
    assertError(await raw(s, 'POST', `${V}/file_batches`, { body: { file_ids: [1] } }), 400, { param: 'file_ids[0]', code: 'invalid_type' });
    assertError(await raw(s, 'POST', `${V}/file_batches`, { body: { file_ids: [file.id], files: [{ file_id: file.id }] } }), 400, { param: 'files' });
    assertError(await raw(s, 'POST', `${V}/file_batches`, { body: { files: [{}] } }), 400, { param: 'files[0].file_id' });
    assertError(await raw(s, 'GET', `${V}/file_batches/vsfb_nope`), 404);
    assertError(await raw(s, 'POST', `${V}/file_batches/vsfb_nope/cancel`), 404);
    assertError(await raw(s, 'GET', `${V}/file_batches/vsfb_nope/files`), 404);
    assertError(await raw(s, 'DELETE', `${V}/file_batches/vsfb_nope`), 405, { code: 'method_not_allowed' });
  });

  test('vector store search', async () => {
    const S = `/v1/vector_stores/${vs.id}/search`;
    assertError(await raw(s, 'POST', S, { body: {} }), 400, { param: 'query', code: 'missing_required_parameter' });
    assertError(await raw(s, 'POST', S, { body: { query: 5 } }), 400, { param: 'query', code: 'invalid_type' });
    assertError(await raw(s, 'POST', S, { body: { query: ['a', 1] } }), 400, { param: 'query[1]' });
    assertError(await raw(s, 'POST', S, { body: { query: 'a', max_num_results: 51 } }), 400, { param: 'max_num_results' });
    assertError(await raw(s, 'POST', S, { body: { query: 'a', max_num_results: 1e30 } }), 400, { param: 'max_num_results', code: 'invalid_type' });
    assertError(await raw(s, 'POST', S, { body: { query: 'a', filters: { type: 'eq', value: 1 } } }), 400, { param: 'filters.key' });
    assertError(await raw(s, 'POST', S, { body: { query: 'a', ranking_options: { ranker: 'nope' } } }), 400, { param: 'ranking_options.ranker' });
    assertError(await raw(s, 'POST', S, { body: { query: 'a', rewrite_query: 'yes' } }), 400, { param: 'rewrite_query' });
    // Nesting deeper than the JSON parser allows is a parse error, not a crash.
    const deep = '{"type":"and","filters":['.repeat(300) + '{"type":"eq","key":"a","value":1}' + ']}'.repeat(300);
    assertError(await raw(s, 'POST', S, { body: `{"query":"a","filters":${deep}}`, headers: { 'Content-Type': 'application/json' } }), 400);
    assertError(await raw(s, 'POST', '/v1/vector_stores/vs_nope/search', { body: { query: 'a' } }), 404);
    assertError(await raw(s, 'GET', S), 405, { code: 'method_not_allowed' });
  });

  test('uploads', async () => {
    const ok = { filename: 'a.txt', purpose: 'assistants', bytes: 3, mime_type: 'text/plain' };
    assertError(await raw(s, 'POST', '/v1/uploads', { body: {} }), 400, { code: 'missing_required_parameter' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: { ...ok, bytes: '3' } }), 400, { param: 'bytes', code: 'invalid_type' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: { ...ok, bytes: -1 } }), 400, { param: 'bytes' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: { ...ok, bytes: 1e15 } }), 400, { param: 'bytes', code: 'integer_above_max_value' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: { ...ok, purpose: 'bogus' } }), 400, { param: 'purpose', code: 'invalid_value' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: { ...ok, zz: 1 } }), 400, { param: 'zz', code: 'unknown_parameter' });
    assertError(await raw(s, 'POST', '/v1/uploads', { body: '{', headers: { 'Content-Type': 'application/json' } }), 400);
    assertError(await raw(s, 'GET', '/v1/uploads'), 405, { code: 'method_not_allowed' });
    assertError(await raw(s, 'POST', '/v1/uploads/upload_nope/complete', { body: { part_ids: [] } }), 404);
    assertError(await raw(s, 'POST', '/v1/uploads/upload_nope/cancel'), 404);
    const up = (await raw(s, 'POST', '/v1/uploads', { body: ok })).json;
    assert.match(up.id, /^upload_/);
    const U = `/v1/uploads/${up.id}`;
    assertError(await raw(s, 'POST', `${U}/parts`, { body: { data: 'abc' } }), 400);
    const noData = new FormData();
    noData.append('other', 'abc');
    assertError(await raw(s, 'POST', `${U}/parts`, { body: noData }), 400, { param: 'data' });
    assertError(await raw(s, 'POST', `${U}/parts`, {
      body: '--XX\r\ngarbage', headers: { 'Content-Type': 'multipart/form-data; boundary=XX' },
    }), 400);
    assertError(await raw(s, 'GET', `${U}/parts`), 405, { code: 'method_not_allowed' });
    assertError(await raw(s, 'POST', `${U}/complete`, { body: { part_ids: 'x' } }), 400, { param: 'part_ids', code: 'invalid_type' });
    assertError(await raw(s, 'POST', `${U}/complete`, { body: { part_ids: ['part_nope'] } }), 400, { param: 'part_ids' });
    assertError(await raw(s, 'POST', `${U}/complete`, { body: { part_ids: [], md5: 5 } }), 400, { param: 'md5' });
    assertError(await raw(s, 'POST', `${U}/complete`, { body: { part_ids: [] } }), 400, { param: 'part_ids' }); // 0 != 3 bytes
    assert.equal((await raw(s, 'POST', `${U}/cancel`)).status, 200);
    assertError(await raw(s, 'POST', `${U}/cancel`), 400);
    assertError(await raw(s, 'POST', `${U}/complete`, { body: { part_ids: [] } }), 400);
  });

  test('include[] on runs and run steps', async () => {
    const R = `/v1/threads/${thread.id}/runs`;
    const bad = { param: 'include', code: 'invalid_value' };
    assertError(await raw(s, 'POST', `${R}?include[]=bogus`, { body: { assistant_id: asst.id } }), 400, bad);
    assertError(await raw(s, 'POST', `${R}?include[]=`, { body: { assistant_id: asst.id } }), 400, bad);
    // include is a query parameter, not a body field.
    assertError(await raw(s, 'POST', R, { body: { assistant_id: asst.id, include: [INC_CONTENT] } }), 400, { param: 'include', code: 'unknown_parameter' });
    assertError(await raw(s, 'GET', `${R}/${run.id}/steps?include[]=bogus`), 400, bad);
    assertError(await raw(s, 'GET', `${R}/${run.id}/steps/step_nope?include[]=bogus`), 400, bad);
    assertError(await raw(s, 'GET', `${R}/${run.id}/steps/step_nope?include[]=${INC_CONTENT}`), 404);
    assertError(await raw(s, 'GET', `${R}/run_nope/steps?include[]=${INC_CONTENT}`), 404);
    assertError(await raw(s, 'GET', `${R}/${run.id}/steps/bogus`), 400, { param: 'step_id' });
    assertError(await raw(s, 'GET', `${R}/${run.id}/steps?limit=0`), 400, { param: 'limit' });
    // Many repeats of a valid value are fine.
    const many = Array.from({ length: 100 }, () => `include[]=${INC_CONTENT}`).join('&');
    const ok = await raw(s, 'GET', `${R}/${run.id}/steps?${many}`);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.object, 'list');
  });

  test('playground: wrong methods, traversal, hidden files, directories', async () => {
    const get = (p, method = 'GET') => httpRequest(s, { method, path: p });
    assert.equal((await get('/playground/')).status, 200);
    assertError(await get('/playground/', 'POST'), 405, { code: 'method_not_allowed' });
    assertError(await get('/playground', 'DELETE'), 405, { code: 'method_not_allowed' });
    assertError(await get('/playground/index.html', 'PUT'), 405, { code: 'method_not_allowed' });
    for (const p of ['/playground/../index.html', '/playground/%2e%2e/index.html', '/playground/.env',
      '/playground//index.html', '/playground/nope.js', '/playground/a%00b', '/playground/assets/',
      '/playground/index.html/x', `/playground/${'a'.repeat(3000)}`]) {
      const r = await get(p);
      assert.notEqual(r.status, 200, p);
      assertError(r, r.status === 400 ? 400 : 404);
    }
    assertError(await get('/playground/assets'), 404);
  });
});

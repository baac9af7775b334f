// The HTTP front: URL shapes (OpenAI, Azure dated, Azure deployments, Azure
// v1), unknown routes and methods, bad bodies (malformed JSON, bad UTF-8,
// arrays, deep nesting, huge numbers, oversized with Content-Length and
// chunked), bad IDs, and the headers every response carries. The server must
// survive all of it: stop() checks for a clean exit and sanitizer reports.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, openai, raw, errorOf, httpRequest, KEY, AZURE_API_VERSION } from './lib/server.mjs';

const AV = `api-version=${AZURE_API_VERSION}`;
const PARSE_ERROR = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";
const AUTH = { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2' };

let s;
before(async () => { s = await startServer({ args: ['--max-json-body', '1K'] }); });
after(async () => { await s.stop(); });

function assertJsonResponse(r) {
  assert.equal(r.headers.get ? r.headers.get('content-type') : r.headers['content-type'], 'application/json', r.text);
  assert.match(r.headers.get ? r.headers.get('x-request-id') : r.headers['x-request-id'], /^req_[A-Za-z0-9]+$/);
}

describe('URL shapes', () => {
  test('the same assistant through every shape', async () => {
    const a = (await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o', name: 'shapes' } })).json;
    const paths = [
      `/v1/assistants/${a.id}`,
      `/openai/assistants/${a.id}?${AV}`,
      `/openai/deployments/gpt-4o/assistants/${a.id}?${AV}`,
      `/openai/v1/assistants/${a.id}`,
    ];
    for (const p of paths) {
      const r = await raw(s, 'GET', p);
      assert.equal(r.status, 200, p);
      assertJsonResponse(r);
      assert.deepEqual(r.json, a, p);
    }
    // Create and list through the Azure shapes too.
    const b = await raw(s, 'POST', `/openai/deployments/my-dep/assistants?${AV}`, { key: null, headers: { 'api-key': KEY }, beta: false, body: { model: 'gpt-4o' } });
    assert.equal(b.status, 200);
    const list = await raw(s, 'GET', `/openai/assistants?${AV}&limit=100`, { beta: false });
    assert.ok(list.json.data.some((x) => x.id === b.json.id));
    const list2 = await raw(s, 'GET', '/openai/v1/assistants?limit=100', { beta: false });
    assert.deepEqual(list2.json, list.json);
  });

  test('missing api-version on dated Azure URLs: 400', async () => {
    for (const p of ['/openai/assistants', '/openai/deployments/dep/assistants', '/openai/models']) {
      const r = await raw(s, 'GET', p);
      assert.equal(r.status, 400, p);
      assertJsonResponse(r);
      const e = errorOf(r);
      assert.equal(e.param, 'api-version');
      assert.equal(e.code, 'missing_required_parameter');
      assert.match(e.message, /^Missing required query parameter: 'api-version'\./);
    }
    // An empty value is as good as missing.
    assert.equal((await raw(s, 'GET', '/openai/assistants?api-version=')).status, 400);
  });

  test('unknown routes: 404 JSON naming method and URL', async () => {
    const cases = [
      ['GET', '/v1/nope'], ['GET', '/nope'], ['GET', '/'], ['POST', '/v1/assistants/asst_x/nope'],
      ['GET', '/openai/deployments/'], ['GET', '/v1'], ['GET', '/v1/'], ['GET', '/v1/assistants/'],
      ['GET', '/healthz/extra'], ['GET', '/v2/assistants'], ['GET', '/v1//assistants'],
    ];
    for (const [m, p] of cases) {
      const r = await raw(s, m, p);
      assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
      assertJsonResponse(r);
      assert.deepEqual(errorOf(r), { message: `Invalid URL (${m} ${p})`, type: 'invalid_request_error', param: null, code: null });
    }
  });

  test('wrong method: 405 JSON', async () => {
    for (const [m, p] of [['PUT', '/v1/assistants'], ['DELETE', '/v1/assistants'], ['PATCH', '/v1/assistants/asst_abc'], ['POST', '/v1/models'], ['POST', '/healthz']]) {
      const r = await raw(s, m, p);
      assert.equal(r.status, 405, `${m} ${p}`);
      assertJsonResponse(r);
      assert.deepEqual(errorOf(r), { message: `Method ${m} is not allowed for URL ${p}.`, type: 'invalid_request_error', param: null, code: 'method_not_allowed' });
    }
  });

  test('no redirects, ever', async () => {
    for (const p of ['/v1/assistants/', '/v1', '/openai', '/openai/', '/v1/assistants?x=1', '//v1/assistants']) {
      const r = await raw(s, 'GET', p);
      assert.ok(r.status < 300 || r.status >= 400, `${p} -> ${r.status}`);
      assert.equal(r.headers.get('location'), null);
    }
  });

  test('query strings do not confuse routing; unknown query params are ignored', async () => {
    const r = await raw(s, 'GET', '/v1/assistants?limit=2&foo=bar&after=');
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
  });
});

describe('bad input', () => {
  async function post(body, headers = {}) {
    const r = await raw(s, 'POST', '/v1/assistants', { body, headers: { 'Content-Type': 'application/json', ...headers } });
    assertJsonResponse(r);
    return r;
  }

  test('malformed JSON, trailing garbage, bad UTF-8: the parse error', async () => {
    for (const body of ['{', '{"model":', 'not json', '{"model":"gpt-4o"} x', '{"model":"gpt-4o",}', "{'model':'gpt-4o'}", '{"model":"gpt-4o"}{}', '\u0000', '{"model":"gpt\\u0000"}']) {
      const r = await post(body);
      assert.equal(r.status, 400, body);
      assert.deepEqual(errorOf(r), { message: PARSE_ERROR, type: 'invalid_request_error', param: null, code: null }, body);
    }
    for (const bytes of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]) {
      const body = Buffer.concat([Buffer.from('{"model":"gpt-4o","name":"'), Buffer.from(bytes), Buffer.from('"}')]);
      const r = await post(new Uint8Array(body));
      assert.equal(r.status, 400);
      assert.equal(errorOf(r).message, PARSE_ERROR);
    }
  });

  test('a JSON value that is not an object', async () => {
    for (const [body, got] of [['[]', 'an array'], ['[{"model":"gpt-4o"}]', 'an array'], ['"str"', 'a string'], ['42', 'an integer'], ['null', 'null'], ['true', 'a boolean']]) {
      const r = await post(body);
      assert.equal(r.status, 400, body);
      assert.deepEqual(errorOf(r), { message: `Invalid type for 'body': expected an object, but got ${got} instead.`, type: 'invalid_request_error', param: null, code: 'invalid_type' }, body);
    }
  });

  test('deep nesting is refused without crashing', async () => {
    const deep = (n) => '{"model":"gpt-4o","metadata":' + '['.repeat(n) + ']'.repeat(n) + '}';
    const r = await post(deep(100));
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).message, PARSE_ERROR);
    // 100 levels of objects inside a function's parameters (within 1K).
    const params = '{"a":'.repeat(100) + '1' + '}'.repeat(100);
    const r2 = await post(`{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":${params}}}]}`);
    assert.equal(r2.status, 400);
  });

  test('huge numbers', async () => {
    const r = await post('{"model":"gpt-4o","temperature":123456789012345678901234567890}');
    assert.equal(r.status, 400);
    errorOf(r);
    const r2 = await post('{"model":"gpt-4o","temperature":1e999}');
    assert.equal(r2.status, 400);
    errorOf(r2);
    const r3 = await post('{"model":"gpt-4o","tools":[{"type":"file_search","file_search":{"max_num_results":99999999999999999999}}]}');
    assert.equal(r3.status, 400);
    errorOf(r3);
    const r4 = await post('{"model":"gpt-4o","temperature":-1e308}');
    assert.equal(r4.status, 400);
    assert.equal(errorOf(r4).code, 'decimal_below_min_value');
  });

  test('empty body on create means {}: missing model', async () => {
    for (const body of ['', undefined]) {
      const r = await raw(s, 'POST', '/v1/assistants', { body });
      assert.equal(r.status, 400);
      assertJsonResponse(r);
      assert.deepEqual(errorOf(r), { message: "Missing required parameter: 'model'.", type: 'invalid_request_error', param: 'model', code: 'missing_required_parameter' });
    }
  });

  test('body over --max-json-body: 413 with Content-Length', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', instructions: 'x'.repeat(2000) });
    const r = await raw(s, 'POST', '/v1/assistants', { body, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 413);
    assertJsonResponse(r);
    const e = errorOf(r);
    assert.equal(e.code, 'request_too_large');
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.message, `The request body is ${Buffer.byteLength(body)} bytes; the limit for this endpoint is 1024 bytes.`);
    // Exactly at the limit is fine.
    const pad = 1024 - JSON.stringify({ model: 'gpt-4o', instructions: '' }).length;
    const exact = JSON.stringify({ model: 'gpt-4o', instructions: 'y'.repeat(pad) });
    assert.equal(exact.length, 1024);
    assert.equal((await raw(s, 'POST', '/v1/assistants', { body: exact, headers: { 'Content-Type': 'application/json' } })).status, 200);
  });

  test('early refusals of a large body reach the client (no reset while it is still sending)', async () => {
    // 413 and 401 are decided from the headers; the body is still drained so
    // the client reads the answer instead of EPIPE / "Connection error.".
    const instructions = 'x'.repeat(4 * 1024 * 1024);
    for (let i = 0; i < 5; i++) {
      await assert.rejects(openai(s).beta.assistants.create({ model: 'gpt-4o', instructions }), (e) => {
        assert.equal(e.status, 413, `${e.constructor.name}: ${e.message}`);
        assert.equal(e.error.code, 'request_too_large');
        return true;
      });
      await assert.rejects(openai(s, 'sk-wrong').beta.assistants.create({ model: 'gpt-4o', instructions }), (e) => e.status === 401);
      await assert.rejects(openai(s).beta.assistants.update('undefined', { instructions }), (e) => e.status === 413 || e.status === 400);
    }
    assert.equal((await raw(s, 'GET', '/v1/assistants?limit=1')).status, 200);
  });

  test('body over --max-json-body: 413 when chunked', async () => {
    const chunks = ['{"model":"gpt-4o","instructions":"'];
    for (let i = 0; i < 20; i++) chunks.push('z'.repeat(100));
    chunks.push('"}');
    const r = await httpRequest(s, { method: 'POST', path: '/v1/assistants', headers: { ...AUTH, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunks });
    assert.equal(r.status, 413);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(r.headers['x-request-id'], /^req_/);
    assert.deepEqual(r.json.error, {
      message: 'The request body is larger than the 1024 bytes this endpoint accepts.',
      type: 'invalid_request_error', param: null, code: 'request_too_large',
    });
    // A small chunked body works, split anywhere, even inside a UTF-8 sequence.
    const whole = Buffer.from(JSON.stringify({ model: 'gpt-4o', name: 'chunked ✓ é' }));
    const pieces = [];
    for (let i = 0; i < whole.length; i += 3) pieces.push(whole.subarray(i, i + 3));
    const ok = await httpRequest(s, { method: 'POST', path: '/v1/assistants', headers: { ...AUTH, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunks: pieces });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.name, 'chunked ✓ é');
    // A huge declared Content-Length is refused before the body is read.
    const big = await httpRequest(s, { method: 'POST', path: '/v1/assistants', headers: { ...AUTH, 'Content-Type': 'application/json', 'Content-Length': '1000000000' }, chunks: ['{"model":'] });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.message, 'The request body is 1000000000 bytes; the limit for this endpoint is 1024 bytes.');
  });

  test('Expect: 100-continue: refused at once without 100, accepted after 100', async () => {
    const exchange = (head, bodyAfterContinue) => new Promise((resolve, reject) => {
      const sock = net.connect(s.port, '127.0.0.1', () => sock.write(head));
      let out = '';
      let sent = false;
      sock.on('data', (d) => {
        out += d;
        if (!sent && bodyAfterContinue && out.startsWith('HTTP/1.1 100')) { sent = true; sock.write(bodyAfterContinue); }
        const m = /\r\nContent-Length: (\d+)\r\n\r\n/i.exec(out);
        if (m && /^HTTP\/1\.1 [2-5]/m.test(out.replace(/^HTTP\/1\.1 100[^\n]*\n\r\n/, '')) && out.length >= m.index + m[0].length + Number(m[1])) {
          sock.destroy();
          resolve(out);
        }
      });
      sock.on('error', reject);
      setTimeout(() => { sock.destroy(); reject(new Error(`no answer: ${JSON.stringify(out)}`)); }, 3000);
    });
    const hdr = (len) => `POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nOpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\nExpect: 100-continue\r\n\r\n`;
    const refused = await exchange(hdr(5000));
    assert.match(refused, /^HTTP\/1\.1 413 /);
    assert.doesNotMatch(refused, /100 Continue/);
    assert.match(refused, /"code":"request_too_large"/);
    const body = '{"model":"gpt-4o","name":"continued"}';
    const ok = await exchange(hdr(body.length), body);
    assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.match(ok, /"name":"continued"/);
  });

  test('the server keeps serving after refusing bodies on a keep-alive connection', async () => {
    const agentPath = '/v1/assistants';
    const r1 = await httpRequest(s, { method: 'POST', path: agentPath, headers: { ...AUTH, 'Content-Type': 'application/json' }, chunks: ['{"model":'] });
    assert.equal(r1.status, 400);
    const r2 = await httpRequest(s, { method: 'GET', path: `${agentPath}?limit=1`, headers: AUTH });
    assert.equal(r2.status, 200);
  });

  test('bad ids: 400 with the expected prefix', async () => {
    const cases = ['undefined', 'null', 'thread_abc', 'asst_', 'ASST_abc', 'asst_a.b', `asst_${'a'.repeat(200)}`, 'asst_%E2%9C%93'];
    for (const id of cases) {
      for (const m of ['GET', 'POST', 'DELETE']) {
        const r = await raw(s, m, `/v1/assistants/${id}`, { body: m === 'POST' ? {} : undefined });
        assert.equal(r.status, 400, `${m} ${id}: ${r.text}`);
        assertJsonResponse(r);
        const e = errorOf(r);
        assert.equal(e.param, 'assistant_id');
        assert.equal(e.type, 'invalid_request_error');
        assert.match(e.message, /^Invalid 'assistant_id': '.*'\. Expected an ID that begins with 'asst'\.$/);
      }
    }
    const r = await raw(s, 'GET', '/v1/assistants/undefined');
    assert.equal(errorOf(r).message, "Invalid 'assistant_id': 'undefined'. Expected an ID that begins with 'asst'.");
    // Older SDKs passed an undefined variable through as the string (openai-node#1545).
    await assert.rejects(openai(s).beta.assistants.retrieve(`${undefined}`), (e) => e.status === 400 && e.error.message === "Invalid 'assistant_id': 'undefined'. Expected an ID that begins with 'asst'.");
    // Well-formed but unknown: 404.
    const nf = await raw(s, 'GET', '/v1/assistants/asst_doesnotexist');
    assert.equal(nf.status, 404);
    assert.deepEqual(errorOf(nf), { message: "No assistant found with id 'asst_doesnotexist'.", type: 'invalid_request_error', param: null, code: null });
  });

  test('a body on GET and DELETE is ignored', async () => {
    const a = (await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o' } })).json;
    const r = await httpRequest(s, { method: 'GET', path: `/v1/assistants/${a.id}`, headers: { ...AUTH, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunks: ['{"garbage'] });
    assert.equal(r.status, 200);
    const d = await httpRequest(s, { method: 'DELETE', path: `/v1/assistants/${a.id}`, headers: { ...AUTH, 'Content-Type': 'application/json', 'Content-Length': '7' }, chunks: ['[1,2,3]'] });
    assert.equal(d.status, 200);
    assert.equal(d.json.deleted, true);
  });
});

describe('every response', () => {
  test('has application/json and x-request-id, unique per request', async () => {
    const ids = new Set();
    const reqs = [
      ['GET', '/v1/assistants', {}], ['GET', '/v1/nope', {}], ['PUT', '/v1/assistants', {}], ['GET', '/v1/assistants', { key: null }],
      ['GET', '/v1/assistants', { beta: false }], ['GET', '/openai/assistants', {}], ['GET', '/healthz', { key: null }],
      ['GET', '/v1/models', {}], ['GET', '/v1/models/nope', {}], ['GET', '/v1/assistants?limit=0', {}], ['POST', '/v1/assistants', { body: '{' }],
    ];
    for (const [m, p, o] of reqs) {
      const r = await raw(s, m, p, o);
      assertJsonResponse(r);
      if (r.status >= 400) errorOf(r);
      ids.add(r.headers.get('x-request-id'));
    }
    assert.equal(ids.size, reqs.length);
    const metrics = await raw(s, 'GET', '/metrics', { key: null, beta: false });
    assert.match(metrics.headers.get('content-type'), /^text\/plain/);
    assert.match(metrics.headers.get('x-request-id'), /^req_/);
  });

  test('/metrics shows the store checkpointer at work', async () => {
    await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o', name: 'ckpt' } });
    const value = (text, name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    let text = '';
    for (let i = 0; i < 30; i++) { // the checkpointer passes every 200 ms
      text = (await raw(s, 'GET', '/metrics', { key: null, beta: false })).text;
      if (value(text, 'assistd_store_checkpoints_total') >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(value(text, 'assistd_store_checkpoints_total') >= 1, text);
    assert.equal(value(text, 'assistd_store_checkpoint_failures_total'), 0);
    assert.ok(value(text, 'assistd_store_wal_restarts_total') >= 0);
    assert.ok(value(text, 'assistd_store_wal_frames') >= 0);
    assert.match(text, /^# TYPE assistd_store_wal_frames gauge$/m);
  });

  test('raw garbage on the socket does not take the server down', async () => {
    const sendRaw = (data) => new Promise((resolve) => {
      const sock = net.connect(s.port, '127.0.0.1', () => sock.end(data));
      let out = '';
      sock.on('data', (d) => { out += d; });
      sock.on('close', () => resolve(out));
      sock.on('error', () => resolve(out));
      setTimeout(() => { sock.destroy(); resolve(out); }, 2000);
    });
    await sendRaw('GARBAGE\r\n\r\n');
    await sendRaw('GET /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    await sendRaw('POST /v1/assistants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    await sendRaw(`GET /v1/assistants HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`);
    await sendRaw('POST /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n');
    const r = await raw(s, 'GET', '/v1/assistants?limit=1');
    assert.equal(r.status, 200);
  });

  test('a request dropped mid-body does not leak or crash', async () => {
    await new Promise((resolve) => {
      const sock = net.connect(s.port, '127.0.0.1', () => {
        sock.write(`POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nOpenAI-Beta: assistants=v2\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model":"gpt-4o","na`);
        setTimeout(() => { sock.destroy(); resolve(); }, 100);
      });
    });
    const r = await raw(s, 'GET', '/v1/assistants?limit=1');
    assert.equal(r.status, 200);
  });
});

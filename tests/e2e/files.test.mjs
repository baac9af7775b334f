// /files: upload through the SDK (OpenAI and AzureOpenAI), retrieve, list
// with purpose filter and auto-pagination, download (bytes and
// Content-Type), delete; expiry; and the raw-HTTP edge cases the SDK hides:
// missing parts, bad purposes, malformed or truncated multipart bodies,
// oversize files, binary content, other projects, no OpenAI-Beta header,
// and durability across kill -9.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { toFile, NotFoundError, BadRequestError } from 'openai';
import { startServer, openai, azure, raw, errorOf, httpRequest, KEY } from './lib/server.mjs';

const FILE_KEYS = ['id', 'object', 'bytes', 'created_at', 'expires_at', 'filename', 'purpose', 'status', 'status_details'];

function hasSqlite3() {
  try { execFileSync('sqlite3', ['-version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

function form(fields, file) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  if (file) fd.append(file.field ?? 'file', new Blob([file.data], { type: file.type ?? '' }), file.name);
  return fd;
}

// POST /v1/files with a FormData body (fetch sets the multipart boundary).
async function postForm(s, fd, { key = KEY, prefix = '/v1' } = {}) {
  const res = await fetch(`${s.url}${prefix}/files`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: fd });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

async function download(s, id, headers = {}) {
  const res = await fetch(`${s.url}/v1/files/${id}/content`, { headers: { Authorization: `Bearer ${KEY}`, ...headers } });
  return { status: res.status, ctype: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

function assertFileShape(f, { filename, purpose, bytes }) {
  assert.deepEqual(Object.keys(f).sort(), [...FILE_KEYS].sort());
  assert.match(f.id, /^file-[A-Za-z0-9]{24}$/);
  assert.equal(f.object, 'file');
  assert.equal(f.filename, filename);
  assert.equal(f.purpose, purpose);
  assert.equal(f.bytes, bytes);
  assert.equal(f.status, 'processed');
  assert.equal(f.status_details, null);
  assert.ok(Math.abs(f.created_at - Date.now() / 1000) < 60, `created_at ${f.created_at}`);
}

describe('files through the SDK', () => {
  let s;
  before(async () => { s = await startServer(); });
  after(async () => { await s.stop(); });

  test('create, retrieve, content, delete (OpenAI client)', async () => {
    const client = openai(s);
    const text = 'Meeting notes\nline two\n';
    const f = await client.files.create({ file: await toFile(Buffer.from(text), 'notes.txt'), purpose: 'assistants' });
    assertFileShape(f, { filename: 'notes.txt', purpose: 'assistants', bytes: Buffer.byteLength(text) });
    assert.equal(f.expires_at, null);
    assert.ok(existsSync(path.join(s.dataDir, 'files', f.id)));

    assert.deepEqual(await client.files.retrieve(f.id), f);

    const resp = await client.files.content(f.id);
    assert.equal(resp.status, 200);
    assert.equal(resp.headers.get('content-type'), 'text/plain');
    assert.equal(await resp.text(), text);

    const del = await client.files.delete(f.id);
    assert.deepEqual(del, { id: f.id, object: 'file', deleted: true });
    assert.ok(!existsSync(path.join(s.dataDir, 'files', f.id)), 'bytes removed');

    for (const call of [() => client.files.retrieve(f.id), () => client.files.content(f.id), () => client.files.delete(f.id)]) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof NotFoundError);
        assert.equal(e.status, 404);
        assert.equal(e.error.message, `No such File object: ${f.id}`);
        assert.equal(e.error.type, 'invalid_request_error');
        assert.equal(e.error.param, 'id');
        assert.equal(e.error.code, null);
        return true;
      });
    }
    assert.ok(!(await client.files.list()).data.some((x) => x.id === f.id));
  });

  test('the AzureOpenAI client sees the same files', async () => {
    const az = azure(s);
    const f = await az.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'data.jsonl'), purpose: 'batch' });
    assertFileShape(f, { filename: 'data.jsonl', purpose: 'batch', bytes: 8 });
    // purpose=batch expires after 30 days by default, as OpenAI documents.
    assert.equal(f.expires_at, f.created_at + 30 * 24 * 3600);
    assert.deepEqual(await openai(s).files.retrieve(f.id), f);
    assert.deepEqual(await az.files.retrieve(f.id), f);
    const listed = [];
    for await (const x of az.files.list({ purpose: 'batch' })) listed.push(x.id);
    assert.ok(listed.includes(f.id));
    const resp = await az.files.content(f.id);
    assert.equal(await resp.text(), '{"a":1}\n');
    assert.deepEqual(await az.files.delete(f.id), { id: f.id, object: 'file', deleted: true });
    await assert.rejects(openai(s).files.retrieve(f.id), NotFoundError);
  });

  test('expires_after sets expires_at; bad values are 400', async () => {
    const client = openai(s);
    const f = await client.files.create({
      file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'user_data',
      expires_after: { anchor: 'created_at', seconds: 7200 },
    });
    assert.equal(f.expires_at, f.created_at + 7200);
    assert.equal(f.purpose, 'user_data');
    assert.deepEqual(await client.files.retrieve(f.id), f);

    await assert.rejects(client.files.create({
      file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 10 },
    }), (e) => {
      assert.ok(e instanceof BadRequestError);
      assert.equal(e.error.param, 'expires_after.seconds');
      assert.equal(e.error.code, 'integer_below_min_value');
      return true;
    });
    await assert.rejects(client.files.create({
      file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 2592001 },
    }), (e) => e.status === 400 && e.error.code === 'integer_above_max_value');
    await assert.rejects(client.files.create({
      file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants',
      expires_after: { anchor: 'last_active_at', seconds: 3600 },
    }), (e) => e.status === 400 && e.error.param === 'expires_after.anchor' && e.error.code === 'invalid_value');
    const r = await postForm(s, form({ purpose: 'assistants', 'expires_after[anchor]': 'created_at', 'expires_after[seconds]': 'soon' }, { data: 'x', name: 'x.txt' }));
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'expires_after.seconds');
    assert.equal(errorOf(r).code, 'invalid_type');
  });

  test('every upload purpose is accepted; others are 400', async () => {
    const client = openai(s);
    for (const purpose of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals']) {
      const f = await client.files.create({ file: await toFile(Buffer.from('p'), `${purpose}.txt`), purpose });
      assert.equal(f.purpose, purpose);
    }
    for (const purpose of ['assistants_output', 'Assistants', '', 'batch_output']) {
      const r = await postForm(s, form({ purpose }, { data: 'x', name: 'x.txt' }));
      assert.equal(r.status, 400, purpose);
      const e = errorOf(r);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'purpose');
      assert.equal(e.code, 'invalid_value');
      assert.match(e.message, /^Invalid value: '.*'\. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'\.$/);
    }
  });

  test('binary content round trip (all 256 byte values), python-style Accept', async () => {
    const data = Buffer.alloc(256 * 4);
    for (let i = 0; i < data.length; i++) data[i] = i % 256;
    const f = await openai(s).files.create({ file: await toFile(data, 'bytes.bin'), purpose: 'assistants' });
    assert.equal(f.bytes, data.length);
    // The python SDK sends Accept: application/binary; it must not be refused.
    const d = await download(s, f.id, { Accept: 'application/binary' });
    assert.equal(d.status, 200);
    assert.equal(d.ctype, 'application/octet-stream');
    assert.ok(d.body.equals(data));
    const resp = await openai(s).files.content(f.id);
    assert.ok(Buffer.from(await resp.arrayBuffer()).equals(data));
    // An empty file is a file too.
    const empty = await openai(s).files.create({ file: await toFile(Buffer.alloc(0), 'empty.txt'), purpose: 'assistants' });
    assert.equal(empty.bytes, 0);
    const de = await download(s, empty.id);
    assert.equal(de.status, 200);
    assert.equal(de.body.length, 0);
  });

  test('Content-Type of downloads: the part\'s type when meaningful, else from the extension', async () => {
    const cases = [
      { name: 'report.bin', type: 'application/pdf', want: 'application/pdf' },
      { name: 'image.png', type: '', want: 'image/png' },
      { name: 'photo.JPEG', type: 'application/octet-stream', want: 'image/jpeg' },
      { name: 'table.csv', type: '', want: 'text/csv' },
      { name: 'data.json', type: '', want: 'application/json' },
      { name: 'script.py', type: '', want: 'text/x-python' },
      { name: 'doc.docx', type: '', want: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' },
      { name: 'README', type: '', want: 'application/octet-stream' },
    ];
    for (const c of cases) {
      const r = await postForm(s, form({ purpose: 'assistants' }, { data: 'abc', name: c.name, type: c.type }));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.filename, c.name);
      const d = await download(s, r.json.id);
      assert.equal(d.status, 200);
      assert.equal(d.ctype, c.want, c.name);
      assert.equal(d.body.toString(), 'abc');
    }
  });

  test('a UTF-8 file name is kept as sent', async () => {
    const f = await openai(s).files.create({ file: await toFile(Buffer.from('é'), 'résumé – 2024.txt'), purpose: 'assistants' });
    assert.equal(f.filename, 'résumé – 2024.txt');
    assert.equal((await openai(s).files.retrieve(f.id)).filename, 'résumé – 2024.txt');
  });

  test('OpenAI-Beta is not required on /files', async () => {
    const r = await postForm(s, form({ purpose: 'assistants' }, { data: 'nb', name: 'nb.txt' }));
    assert.equal(r.status, 200);
    for (const p of ['/v1/files', `/v1/files/${r.json.id}`, `/v1/files/${r.json.id}/content`]) {
      const g = await raw(s, 'GET', p, { beta: false });
      assert.equal(g.status, 200, p);
    }
    assert.equal((await raw(s, 'DELETE', `/v1/files/${r.json.id}`, { beta: false })).status, 200);
  });
});

describe('listing files', () => {
  let s;
  before(async () => { s = await startServer(); });
  after(async () => { await s.stop(); });

  test('default order desc, purpose filter, auto-pagination visits each file once', async () => {
    const client = openai(s);
    const made = [];
    for (let i = 0; i < 7; i++) {
      const purpose = i % 3 === 0 ? 'vision' : 'assistants';
      made.push(await client.files.create({ file: await toFile(Buffer.from(`f${i}`), `f${i}.txt`), purpose }));
    }
    const all = await client.files.list();
    assert.deepEqual(all.data.map((f) => f.id), made.map((f) => f.id).reverse());
    assert.equal(all.has_more, false);
    assert.deepEqual(all.data[0], made[made.length - 1]);

    const seen = [];
    for await (const f of client.files.list({ limit: 2 })) seen.push(f.id);
    assert.deepEqual(seen, made.map((f) => f.id).reverse());

    const asc = [];
    for await (const f of client.files.list({ limit: 3, order: 'asc' })) asc.push(f.id);
    assert.deepEqual(asc, made.map((f) => f.id));

    const vision = [];
    for await (const f of client.files.list({ purpose: 'vision', limit: 1 })) vision.push(f.id);
    assert.deepEqual(vision, made.filter((f) => f.purpose === 'vision').map((f) => f.id).reverse());
    assert.deepEqual((await client.files.list({ purpose: 'batch' })).data, []);

    const page = await raw(s, 'GET', '/v1/files?limit=2', { beta: false });
    assert.equal(page.status, 200);
    assert.deepEqual(Object.keys(page.json), ['object', 'data', 'first_id', 'last_id', 'has_more']);
    assert.equal(page.json.object, 'list');
    assert.equal(page.json.first_id, made[6].id);
    assert.equal(page.json.last_id, made[5].id);
    assert.equal(page.json.has_more, true);
    // No `before` on /files: it is ignored.
    const b = await raw(s, 'GET', `/v1/files?limit=2&before=${made[0].id}`, { beta: false });
    assert.deepEqual(b.json, page.json);
    // Deleting while paging keeps the cursor valid.
    const next = await raw(s, 'GET', `/v1/files?limit=2&after=${made[5].id}`);
    await client.files.delete(made[5].id);
    const again = await raw(s, 'GET', `/v1/files?limit=2&after=${made[5].id}`);
    assert.deepEqual(again.json, next.json);
  });

  test('limit bounds 1..10000, bad order and cursor', async () => {
    const empty = await raw(s, 'GET', '/v1/files?purpose=fine-tune');
    assert.deepEqual(empty.json, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    assert.equal((await raw(s, 'GET', '/v1/files?limit=10000')).status, 200);
    for (const [q, code] of [['limit=0', 'integer_below_min_value'], ['limit=10001', 'integer_above_max_value'], ['limit=abc', 'invalid_type'], ['order=sideways', 'invalid_value'], ['after=file-doesnotexist', 'invalid_value']]) {
      const r = await raw(s, 'GET', `/v1/files?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(errorOf(r).code, code, q);
    }
  });
});

describe('raw HTTP edge cases of POST /files', () => {
  let s;
  before(async () => { s = await startServer(); });
  after(async () => { await s.stop(); });

  test('missing file part, file under another field, missing purpose', async () => {
    let r = await postForm(s, form({ purpose: 'assistants' }));
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: "Missing required parameter: 'file'.", type: 'invalid_request_error', param: 'file', code: 'missing_required_parameter' });
    r = await postForm(s, form({ purpose: 'assistants' }, { field: 'document', data: 'x', name: 'x.txt' }));
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'file');
    r = await postForm(s, form({ purpose: 'assistants', file: 'just text, no filename' }));
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'file');
    r = await postForm(s, form({}, { data: 'x', name: 'x.txt' }));
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: "Missing required parameter: 'purpose'.", type: 'invalid_request_error', param: 'purpose', code: 'missing_required_parameter' });
  });

  test('wrong Content-Type, truncated and malformed multipart bodies', async () => {
    let r = await raw(s, 'POST', '/v1/files', { body: { purpose: 'assistants' }, beta: false });
    assert.equal(r.status, 400);
    assert.match(errorOf(r).message, /multipart\/form-data/);
    const B = 'XyZboundary123';
    const head = `--${B}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${B}\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\nContent-Type: text/plain\r\n\r\nhello`;
    // Truncated: no closing boundary.
    r = await raw(s, 'POST', '/v1/files', { body: head, headers: { 'Content-Type': `multipart/form-data; boundary=${B}` }, beta: false });
    assert.equal(r.status, 400);
    assert.match(errorOf(r).message, /malformed/);
    // Garbage instead of a first boundary.
    r = await raw(s, 'POST', '/v1/files', { body: 'not multipart at all', headers: { 'Content-Type': `multipart/form-data; boundary=${B}` }, beta: false });
    assert.equal(r.status, 400);
    errorOf(r);
    // No boundary parameter.
    r = await raw(s, 'POST', '/v1/files', { body: head, headers: { 'Content-Type': 'multipart/form-data' }, beta: false });
    assert.equal(r.status, 400);
    errorOf(r);
    // Two file parts.
    const two = `--${B}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\na\r\n--${B}\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\n\r\nb\r\n--${B}--\r\n`;
    r = await raw(s, 'POST', '/v1/files', { body: two, headers: { 'Content-Type': `multipart/form-data; boundary=${B}` }, beta: false });
    assert.equal(r.status, 400);
    errorOf(r);
    // The well-formed version of the truncated body works.
    r = await raw(s, 'POST', '/v1/files', { body: `${head}\r\n--${B}--\r\n`, headers: { 'Content-Type': `multipart/form-data; boundary=${B}` }, beta: false });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.bytes, 5);
    assert.equal(r.json.filename, 't.txt');
    // Nothing was left behind in DATA/tmp by the failures.
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'tmp')), []);
  });

  test('bad file ids: 400 with OpenAI\'s wording; unknown ids: 404', async () => {
    for (const [m, p] of [['GET', '/v1/files/abc'], ['DELETE', '/v1/files/asst_123'], ['GET', '/v1/files/abc/content']]) {
      const r = await raw(s, m, p);
      assert.equal(r.status, 400, p);
      const e = errorOf(r);
      assert.equal(e.param, 'file_id');
      assert.match(e.message, /^Invalid 'file_id': '.*'\. Expected an ID that begins with 'file'\.$/);
    }
    const r = await raw(s, 'GET', '/v1/files/file-nope');
    assert.equal(r.status, 404);
    assert.equal(errorOf(r).message, 'No such File object: file-nope');
  });
});

test('oversize files: 413 OpenAI-shaped, server fine afterwards', async () => {
  const s = await startServer({ args: ['--max-upload', '1K'] });
  try {
    // Streamed past the limit (Content-Length within the envelope allowance).
    let r = await postForm(s, form({ purpose: 'assistants' }, { data: Buffer.alloc(4096, 'a'), name: 'big.txt' }));
    assert.equal(r.status, 413);
    let e = errorOf(r);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.code, 'file_too_large');
    // Refused from the declared Content-Length: a body the server is willing
    // to drain is read and dropped, then answered (no connection reset)...
    r = await postForm(s, form({ purpose: 'assistants' }, { data: Buffer.alloc(1024 * 1024, 'b'), name: 'huge.txt' }));
    assert.equal(r.status, 413);
    assert.equal(errorOf(r).code, 'request_too_large');
    // ...and a huge one is answered before its body is read.
    r = await httpRequest(s, {
      method: 'POST', path: '/v1/files',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'multipart/form-data; boundary=bb', 'Content-Length': String(4 * 1024 ** 3) },
      chunks: ['--bb\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n\r\nbbbb'],
    });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'request_too_large');
    // Exactly at the limit is fine, and the server still works.
    const f = await openai(s).files.create({ file: await toFile(Buffer.alloc(1024, 'c'), 'ok.txt'), purpose: 'assistants' });
    assert.equal(f.bytes, 1024);
    const d = await download(s, f.id);
    assert.ok(d.body.equals(Buffer.alloc(1024, 'c')));
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'tmp')), []);
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'files')), [f.id]);
  } finally {
    await s.stop();
  }
});

test('files of another project are invisible (404) and untouched', async () => {
  const s = await startServer({ keysFile: 'key-a projA\nkey-b projB\n', keys: null });
  try {
    const a = openai(s, 'key-a');
    const b = openai(s, 'key-b');
    const f = await a.files.create({ file: await toFile(Buffer.from('secret'), 'secret.txt'), purpose: 'assistants' });
    await assert.rejects(b.files.retrieve(f.id), (e) => e.status === 404 && e.error.message === `No such File object: ${f.id}`);
    await assert.rejects(b.files.content(f.id), (e) => e.status === 404);
    await assert.rejects(b.files.delete(f.id), (e) => e.status === 404);
    assert.deepEqual((await b.files.list()).data, []);
    const r = await raw(s, 'GET', `/v1/files?after=${f.id}`, { key: 'key-b' });
    assert.equal(r.status, 400);
    // Still there for its owner.
    assert.deepEqual(await a.files.retrieve(f.id), f);
    assert.equal(await (await a.files.content(f.id)).text(), 'secret');
  } finally {
    await s.stop();
  }
});

test('durability: files survive kill -9; an upload cut by the crash leaves nothing', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-files-'));
  try {
    let s = await startServer({ dataDir });
    const client = openai(s);
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
    const f1 = await client.files.create({ file: await toFile(data, 'one.bin'), purpose: 'assistants' });
    const f2 = await client.files.create({ file: await toFile(Buffer.from('two'), 'two.txt'), purpose: 'vision' });
    const gone = await client.files.create({ file: await toFile(Buffer.from('gone'), 'gone.txt'), purpose: 'assistants' });
    await client.files.delete(gone.id);

    // Start an upload and crash while its bytes are in DATA/tmp.
    const B = 'crashboundary';
    const pending = httpRequest(s, {
      method: 'POST', path: '/v1/files',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': `multipart/form-data; boundary=${B}`, 'Content-Length': '1000000' },
      chunks: [`--${B}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${B}\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\n\r\n${'z'.repeat(20000)}`],
    }).catch(() => 'aborted');
    const tmp = path.join(dataDir, 'tmp');
    for (let i = 0; i < 200 && readdirSync(tmp).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(readdirSync(tmp).length, 1, 'the cut upload is being written to DATA/tmp');
    await s.kill9();
    await pending;

    s = await startServer({ dataDir });
    try {
      assert.deepEqual(readdirSync(tmp), [], 'DATA/tmp is cleaned at start-up');
      const c = openai(s);
      const ids = [];
      for await (const f of c.files.list({ limit: 1 })) ids.push(f.id);
      assert.deepEqual(ids, [f2.id, f1.id]);
      assert.deepEqual(await c.files.retrieve(f1.id), f1);
      assert.ok(Buffer.from(await (await c.files.content(f1.id)).arrayBuffer()).equals(data));
      assert.equal(await (await c.files.content(f2.id)).text(), 'two');
      await assert.rejects(c.files.retrieve(gone.id), NotFoundError);
      assert.deepEqual(readdirSync(path.join(dataDir, 'files')).sort(), [f1.id, f2.id].sort());
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('expired files behave as deleted and are purged', { skip: !hasSqlite3() && 'needs the sqlite3 command-line tool' }, async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-files-'));
  try {
    let s = await startServer({ dataDir });
    let client = openai(s);
    const mk = async (name) => client.files.create({ file: await toFile(Buffer.from(name), `${name}.txt`), purpose: 'assistants', expires_after: { anchor: 'created_at', seconds: 3600 } });
    const old1 = await mk('old1');
    const keep = await client.files.create({ file: await toFile(Buffer.from('keep'), 'keep.txt'), purpose: 'assistants' });
    const old2 = await mk('old2');
    const old3 = await mk('old3');
    await s.stop({ keepData: true });
    // Move three expiry dates into the past (as if an hour had gone by).
    execFileSync('sqlite3', [path.join(dataDir, 'assistd.db'),
      `UPDATE objects SET body=json_set(body,'$.expires_at',1000) WHERE id IN ('${old1.id}','${old2.id}','${old3.id}')`]);
    s = await startServer({ dataDir });
    try {
      client = openai(s);
      await assert.rejects(client.files.retrieve(old1.id), (e) => e.status === 404 && e.error.message === `No such File object: ${old1.id}`);
      assert.ok(!existsSync(path.join(dataDir, 'files', old1.id)), 'expired bytes purged');
      await assert.rejects(client.files.content(old2.id), NotFoundError);
      // Listing skips expired files, even when a whole page would be expired.
      const ids = [];
      for await (const f of client.files.list({ limit: 1 })) ids.push(f.id);
      assert.deepEqual(ids, [keep.id]);
      const page = await raw(s, 'GET', '/v1/files?limit=1');
      assert.deepEqual(page.json.data.map((f) => f.id), [keep.id]);
      await assert.rejects(client.files.delete(old3.id), NotFoundError);
      assert.deepEqual(readdirSync(path.join(dataDir, 'files')), [keep.id]);
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

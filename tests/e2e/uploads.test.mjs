// /uploads: create, add parts, complete (ordered concatenation, byte count
// and md5 checks) and cancel through the SDK (OpenAI and AzureOpenAI), the
// state rules (no parts or completion after cancel/complete/expiry), the
// error cases, other projects, OpenAI-Beta not required, the part size
// limit, and durability of completed uploads across kill -9.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { toFile, BadRequestError, NotFoundError } from 'openai';
import { startServer, openai, azure, raw, errorOf, KEY } from './lib/server.mjs';

const UPLOAD_KEYS = ['id', 'object', 'bytes', 'created_at', 'filename', 'purpose', 'status', 'expires_at', 'file'];
const md5 = (b) => createHash('md5').update(b).digest('hex');

function hasSqlite3() {
  try { execFileSync('sqlite3', ['-version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

async function addPart(client, uploadId, buf) {
  return client.uploads.parts.create(uploadId, { data: await toFile(buf, 'part') });
}

// A part sent by hand: multipart field `data`.
async function postPart(s, uploadId, fd, key = KEY) {
  const res = await fetch(`${s.url}/v1/uploads/${uploadId}/parts`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: fd });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, text, json };
}

function assert400(e, re, param) {
  assert.ok(e instanceof BadRequestError, String(e));
  assert.equal(e.status, 400);
  assert.equal(e.error.type, 'invalid_request_error');
  if (re) assert.match(e.error.message, re);
  if (param !== undefined) assert.equal(e.error.param, param);
  return true;
}

describe('uploads through the SDK', () => {
  let s;
  before(async () => { s = await startServer(); });
  after(async () => { await s.stop(); });

  test('create, parts out of order, complete in the given order with md5', async () => {
    const client = openai(s);
    const a = Buffer.from('{"n":1}\n{"n":2}\n');
    const b = Buffer.from('{"n":3}\n');
    const whole = Buffer.concat([a, b]);
    const up = await client.uploads.create({ bytes: whole.length, filename: 'train.jsonl', mime_type: 'application/jsonl', purpose: 'fine-tune' });
    assert.deepEqual(Object.keys(up), UPLOAD_KEYS);
    assert.match(up.id, /^upload_[A-Za-z0-9]{24}$/);
    assert.equal(up.object, 'upload');
    assert.equal(up.bytes, whole.length);
    assert.equal(up.filename, 'train.jsonl');
    assert.equal(up.purpose, 'fine-tune');
    assert.equal(up.status, 'pending');
    assert.equal(up.expires_at, up.created_at + 3600);
    assert.equal(up.file, null);
    assert.ok(Math.abs(up.created_at - Date.now() / 1000) < 60);

    const pb = await addPart(client, up.id, b);
    const pa = await addPart(client, up.id, a);
    for (const p of [pa, pb]) {
      assert.deepEqual(Object.keys(p), ['id', 'object', 'created_at', 'upload_id']);
      assert.match(p.id, /^part_[A-Za-z0-9]{24}$/);
      assert.equal(p.object, 'upload.part');
      assert.equal(p.upload_id, up.id);
    }
    assert.equal(readdirSync(path.join(s.dataDir, 'parts')).length, 2);

    const done = await client.uploads.complete(up.id, { part_ids: [pa.id, pb.id], md5: md5(whole) });
    assert.deepEqual(Object.keys(done), UPLOAD_KEYS);
    assert.equal(done.id, up.id);
    assert.equal(done.status, 'completed');
    assert.equal(done.created_at, up.created_at);
    assert.equal(done.expires_at, up.expires_at);
    const f = done.file;
    assert.match(f.id, /^file-/);
    assert.equal(f.object, 'file');
    assert.equal(f.bytes, whole.length);
    assert.equal(f.filename, 'train.jsonl');
    assert.equal(f.purpose, 'fine-tune');
    assert.equal(f.status, 'processed');
    assert.equal(f.expires_at, null);
    assert.deepEqual(await client.files.retrieve(f.id), f);
    const resp = await client.files.content(f.id);
    assert.equal(resp.headers.get('content-type'), 'application/jsonl', 'the mime_type of the upload');
    assert.ok(Buffer.from(await resp.arrayBuffer()).equals(whole));
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'parts')), [], 'parts removed after completion');
    assert.ok((await client.files.list({ purpose: 'fine-tune' })).data.some((x) => x.id === f.id));

    // Completed: no more parts, no second completion, no cancel.
    await assert.rejects(addPart(client, up.id, a), (e) => assert400(e, /completed/));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [pa.id, pb.id] }), (e) => assert400(e, /completed/));
    await assert.rejects(client.uploads.cancel(up.id), (e) => assert400(e, /completed/));
  });

  test('large binary parts: bytes and md5 across buffer boundaries; expires_after reaches the File', async () => {
    const client = openai(s);
    const parts = [randomBytes(300 * 1024 + 7), randomBytes(1024 * 1024 + 63), randomBytes(1)];
    const whole = Buffer.concat(parts);
    const up = await client.uploads.create({
      bytes: whole.length, filename: 'blob.bin', mime_type: 'application/octet-stream', purpose: 'assistants',
      expires_after: { anchor: 'created_at', seconds: 86400 },
    });
    const ids = [];
    for (const p of parts) ids.push((await addPart(client, up.id, p)).id);
    const done = await client.uploads.complete(up.id, { part_ids: ids, md5: md5(whole).toUpperCase() });
    assert.equal(done.status, 'completed');
    assert.equal(done.file.bytes, whole.length);
    assert.equal(done.file.expires_at, done.file.created_at + 86400);
    const resp = await client.files.content(done.file.id);
    assert.equal(resp.headers.get('content-type'), 'application/octet-stream');
    assert.ok(Buffer.from(await resp.arrayBuffer()).equals(whole));
  });

  test('an empty upload completes with no parts', async () => {
    const client = openai(s);
    const up = await client.uploads.create({ bytes: 0, filename: 'empty.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const done = await client.uploads.complete(up.id, { part_ids: [], md5: md5(Buffer.alloc(0)) });
    assert.equal(done.file.bytes, 0);
    assert.equal((await (await client.files.content(done.file.id)).text()), '');
  });

  test('the AzureOpenAI client', async () => {
    const az = azure(s);
    const data = Buffer.from('azure upload body');
    const up = await az.uploads.create({ bytes: data.length, filename: 'az.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const p = await addPart(az, up.id, data);
    const done = await az.uploads.complete(up.id, { part_ids: [p.id] });
    assert.equal(done.status, 'completed');
    assert.deepEqual(await openai(s).files.retrieve(done.file.id), done.file);
    assert.equal(await (await az.files.content(done.file.id)).text(), 'azure upload body');
    const up2 = await az.uploads.create({ bytes: 5, filename: 'c.txt', mime_type: 'text/plain', purpose: 'batch' });
    const c = await az.uploads.cancel(up2.id);
    assert.equal(c.status, 'cancelled');
  });

  test('complete: byte mismatch, bad md5, unknown, foreign and repeated parts are 400; the upload stays usable', async () => {
    const client = openai(s);
    const data = Buffer.from('0123456789');
    const up = await client.uploads.create({ bytes: 10, filename: 'd.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const p1 = await addPart(client, up.id, data.subarray(0, 4));
    const p2 = await addPart(client, up.id, data.subarray(4));
    const other = await client.uploads.create({ bytes: 4, filename: 'o.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const op = await addPart(client, other.id, data.subarray(0, 4));

    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p1.id] }), (e) => assert400(e, /total 4 bytes.*bytes=10/));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p1.id, p2.id], md5: md5(Buffer.from('nope')) }), (e) => assert400(e, /md5/, 'md5'));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p1.id, 'part_doesnotexist'] }), (e) => assert400(e, /part_doesnotexist/, 'part_ids'));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p1.id, op.id] }), (e) => assert400(e, new RegExp(op.id), 'part_ids'));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p1.id, p1.id, p2.id] }), (e) => assert400(e, /more than once/, 'part_ids'));
    await assert.rejects(client.uploads.complete(up.id, {}), (e) => assert400(e, /Missing required parameter: 'part_ids'/, 'part_ids'));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: 'x' }), (e) => assert400(e, null, 'part_ids'));
    assert.equal(readdirSync(path.join(s.dataDir, 'tmp')).length, 0, 'failed completions leave no temporaries');

    // Wrong order gives other bytes, which the md5 catches.
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p2.id, p1.id], md5: md5(data) }), (e) => assert400(e, /md5/));
    const done = await client.uploads.complete(up.id, { part_ids: [p1.id, p2.id], md5: md5(data) });
    assert.equal(await (await client.files.content(done.file.id)).text(), '0123456789');
    // The other upload's part is untouched by this completion.
    const od = await client.uploads.complete(other.id, { part_ids: [op.id] });
    assert.equal(await (await client.files.content(od.file.id)).text(), '0123');
  });

  test('cancel: status cancelled, parts dropped, no parts or completion afterwards', async () => {
    const client = openai(s);
    const before = readdirSync(path.join(s.dataDir, 'parts')).length;
    const up = await client.uploads.create({ bytes: 6, filename: 'x.txt', mime_type: 'text/plain', purpose: 'vision' });
    const p = await addPart(client, up.id, Buffer.from('abcdef'));
    assert.equal(readdirSync(path.join(s.dataDir, 'parts')).length, before + 1);
    const c = await client.uploads.cancel(up.id);
    assert.deepEqual(c, { ...up, status: 'cancelled' });
    assert.equal(readdirSync(path.join(s.dataDir, 'parts')).length, before, 'part bytes removed');
    await assert.rejects(addPart(client, up.id, Buffer.from('x')), (e) => assert400(e, /cancelled/));
    await assert.rejects(client.uploads.complete(up.id, { part_ids: [p.id] }), (e) => assert400(e, /cancelled/));
    await assert.rejects(client.uploads.cancel(up.id), (e) => assert400(e, /cancelled/));
  });

  test('racing completes and cancels: exactly one wins, the rest are 400', async () => {
    const client = openai(s);
    for (let round = 0; round < 5; round++) {
      const data = randomBytes(256 * 1024);
      const up = await client.uploads.create({ bytes: data.length, filename: `race${round}.bin`, mime_type: 'application/octet-stream', purpose: 'assistants' });
      const p1 = await addPart(client, up.id, data.subarray(0, 100000));
      const p2 = await addPart(client, up.id, data.subarray(100000));
      const calls = [
        client.uploads.complete(up.id, { part_ids: [p1.id, p2.id] }),
        client.uploads.complete(up.id, { part_ids: [p1.id, p2.id] }),
        round % 2 ? client.uploads.cancel(up.id) : client.uploads.complete(up.id, { part_ids: [p1.id, p2.id] }),
      ];
      const results = await Promise.allSettled(calls);
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status === 'fulfilled' ? r.value.status : r.reason.message)));
      for (const r of results.filter((x) => x.status === 'rejected')) assert400(r.reason, /completed|cancelled/);
      const files = (await client.files.list()).data.filter((f) => f.filename === `race${round}.bin`);
      if (won[0].value.status === 'completed') {
        assert.deepEqual(files, [won[0].value.file]);
        assert.ok(Buffer.from(await (await client.files.content(files[0].id)).arrayBuffer()).equals(data));
      } else {
        assert.deepEqual(files, []);
      }
    }
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'tmp')), []);
    // The losers' published bytes were removed: one file on disk per live File.
    const live = (await client.files.list()).data.map((f) => f.id).sort();
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'files')).sort(), live);
  });

  test('create validation', async () => {
    const client = openai(s);
    const ok = { bytes: 1, filename: 'a.txt', mime_type: 'text/plain', purpose: 'assistants' };
    const big = await client.uploads.create({ ...ok, bytes: 8 * 1024 ** 3 });
    assert.equal(big.bytes, 8 * 1024 ** 3);
    await assert.rejects(client.uploads.create({ ...ok, bytes: 8 * 1024 ** 3 + 1 }), (e) => assert400(e, /8 GB/, 'bytes') && e.error.code === 'integer_above_max_value');
    await assert.rejects(client.uploads.create({ ...ok, bytes: -1 }), (e) => assert400(e, null, 'bytes'));
    await assert.rejects(client.uploads.create({ ...ok, bytes: '10' }), (e) => assert400(e, null, 'bytes'));
    await assert.rejects(client.uploads.create({ ...ok, purpose: 'assistants_output' }), (e) => assert400(e, /Supported values/, 'purpose'));
    const { mime_type: _m, ...noMime } = ok;
    await assert.rejects(client.uploads.create(noMime), (e) => assert400(e, /Missing required parameter: 'mime_type'/, 'mime_type'));
    await assert.rejects(client.uploads.create({ ...ok, expires_after: { anchor: 'created_at', seconds: 60 } }), (e) => assert400(e, null, 'expires_after.seconds'));
    await assert.rejects(client.uploads.create({ ...ok, extra: 1 }), (e) => assert400(e, null));
  });

  test('unknown and malformed upload ids', async () => {
    const client = openai(s);
    for (const call of [
      () => client.uploads.cancel('upload_doesnotexist'),
      () => client.uploads.complete('upload_doesnotexist', { part_ids: [] }),
      () => addPart(client, 'upload_doesnotexist', Buffer.from('x')),
    ]) {
      await assert.rejects(call(), (e) => {
        assert.ok(e instanceof NotFoundError);
        assert.equal(e.error.message, 'No such Upload object: upload_doesnotexist');
        return true;
      });
    }
    const r = await raw(s, 'POST', '/v1/uploads/file-abc/cancel');
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'upload_id');
    assert.match(errorOf(r).message, /Expected an ID that begins with 'upload'\./);
  });

  test('parts: the multipart field is `data`', async () => {
    const client = openai(s);
    const up = await client.uploads.create({ bytes: 3, filename: 'f.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const fd = new FormData();
    fd.append('file', new Blob(['abc']), 'f.txt');
    let r = await postPart(s, up.id, fd);
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), { message: "Missing required parameter: 'data'.", type: 'invalid_request_error', param: 'data', code: 'missing_required_parameter' });
    r = await raw(s, 'POST', `/v1/uploads/${up.id}/parts`, { body: { data: 'abc' } });
    assert.equal(r.status, 400);
    errorOf(r);
    const ok = new FormData();
    ok.append('data', new Blob(['abc']), 'blob');
    r = await postPart(s, up.id, ok);
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'upload.part');
  });

  test('OpenAI-Beta is not required on /uploads', async () => {
    const up = await raw(s, 'POST', '/v1/uploads', { beta: false, body: { bytes: 2, filename: 'b.txt', mime_type: 'text/plain', purpose: 'assistants' } });
    assert.equal(up.status, 200);
    const fd = new FormData();
    fd.append('data', new Blob(['hi']), 'blob');
    const p = await postPart(s, up.json.id, fd);
    assert.equal(p.status, 200);
    const done = await raw(s, 'POST', `/v1/uploads/${up.json.id}/complete`, { beta: false, body: { part_ids: [p.json.id] } });
    assert.equal(done.status, 200);
    assert.equal(done.json.status, 'completed');
    const up2 = await raw(s, 'POST', '/v1/uploads', { beta: false, body: { bytes: 2, filename: 'b.txt', mime_type: 'text/plain', purpose: 'assistants' } });
    assert.equal((await raw(s, 'POST', `/v1/uploads/${up2.json.id}/cancel`, { beta: false })).status, 200);
  });
});

test('a part over --max-part is 413 and the upload goes on', async () => {
  const s = await startServer({ args: ['--max-part', '1K'] });
  try {
    const client = openai(s);
    const up = await client.uploads.create({ bytes: 1024, filename: 'p.bin', mime_type: 'application/octet-stream', purpose: 'assistants' });
    await assert.rejects(addPart(client, up.id, Buffer.alloc(2048, 1)), (e) => e.status === 413 && e.error.code === 'file_too_large');
    const p = await addPart(client, up.id, Buffer.alloc(1024, 2));
    const done = await client.uploads.complete(up.id, { part_ids: [p.id] });
    assert.equal(done.file.bytes, 1024);
    assert.deepEqual(readdirSync(path.join(s.dataDir, 'tmp')), []);
  } finally {
    await s.stop();
  }
});

test('uploads of another project are invisible', async () => {
  const s = await startServer({ keysFile: 'key-a projA\nkey-b projB\n', keys: null });
  try {
    const a = openai(s, 'key-a');
    const b = openai(s, 'key-b');
    const up = await a.uploads.create({ bytes: 3, filename: 'a.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const p = await addPart(a, up.id, Buffer.from('abc'));
    await assert.rejects(addPart(b, up.id, Buffer.from('x')), NotFoundError);
    await assert.rejects(b.uploads.complete(up.id, { part_ids: [p.id] }), NotFoundError);
    await assert.rejects(b.uploads.cancel(up.id), NotFoundError);
    // B cannot use A's part in its own upload either.
    const upb = await b.uploads.create({ bytes: 3, filename: 'b.txt', mime_type: 'text/plain', purpose: 'assistants' });
    await assert.rejects(b.uploads.complete(upb.id, { part_ids: [p.id] }), (e) => assert400(e, null, 'part_ids'));
    const done = await a.uploads.complete(up.id, { part_ids: [p.id] });
    await assert.rejects(b.files.retrieve(done.file.id), NotFoundError);
    assert.equal(await (await a.files.content(done.file.id)).text(), 'abc');
  } finally {
    await s.stop();
  }
});

test('durability: a completed upload\'s File and a pending upload\'s parts survive kill -9', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-uploads-'));
  try {
    let s = await startServer({ dataDir });
    let client = openai(s);
    const data = randomBytes(200 * 1024);
    const up = await client.uploads.create({ bytes: data.length, filename: 'd.bin', mime_type: 'application/octet-stream', purpose: 'assistants' });
    const p1 = await addPart(client, up.id, data.subarray(0, 1000));
    const p2 = await addPart(client, up.id, data.subarray(1000));
    const done = await client.uploads.complete(up.id, { part_ids: [p1.id, p2.id] });
    const half = await client.uploads.create({ bytes: 4, filename: 'h.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const h1 = await addPart(client, half.id, Buffer.from('ab'));
    await s.kill9();

    s = await startServer({ dataDir });
    try {
      client = openai(s);
      assert.deepEqual(readdirSync(path.join(dataDir, 'tmp')), []);
      assert.deepEqual(await client.files.retrieve(done.file.id), done.file);
      assert.ok(Buffer.from(await (await client.files.content(done.file.id)).arrayBuffer()).equals(data));
      const h2 = await addPart(client, half.id, Buffer.from('cd'));
      const hd = await client.uploads.complete(half.id, { part_ids: [h1.id, h2.id] });
      assert.equal(await (await client.files.content(hd.file.id)).text(), 'abcd');
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('an expired upload reports expired and refuses parts and completion', { skip: !hasSqlite3() && 'needs the sqlite3 command-line tool' }, async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-uploads-'));
  try {
    let s = await startServer({ dataDir });
    let client = openai(s);
    const up = await client.uploads.create({ bytes: 2, filename: 'e.txt', mime_type: 'text/plain', purpose: 'assistants' });
    const p = await addPart(client, up.id, Buffer.from('ab'));
    const up2 = await client.uploads.create({ bytes: 2, filename: 'e2.txt', mime_type: 'text/plain', purpose: 'assistants' });
    await s.stop({ keepData: true });
    // As if the hour had passed.
    execFileSync('sqlite3', [path.join(dataDir, 'assistd.db'),
      `UPDATE objects SET body=json_set(body,'$.expires_at',1000) WHERE id IN ('${up.id}','${up2.id}')`]);
    s = await startServer({ dataDir });
    try {
      client = openai(s);
      await assert.rejects(addPart(client, up.id, Buffer.from('x')), (e) => assert400(e, /expired/));
      await assert.rejects(client.uploads.complete(up.id, { part_ids: [p.id] }), (e) => assert400(e, /expired/));
      await assert.rejects(client.uploads.cancel(up.id), (e) => assert400(e, /expired/));
      await assert.rejects(client.uploads.complete(up2.id, { part_ids: [] }), (e) => assert400(e, /expired/));
      assert.deepEqual(readdirSync(path.join(dataDir, 'parts')), [], 'the expired upload\'s parts are dropped');
      const body = execFileSync('sqlite3', [path.join(dataDir, 'assistd.db'), `SELECT json_extract(body,'$.status') FROM objects WHERE id='${up.id}'`]).toString().trim();
      assert.equal(body, 'expired');
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

// Durability: every acknowledged write survives kill -9. 200 concurrent
// creates, then modifications and deletes, each followed by SIGKILL and a
// restart on the same data directory; the schema version is persisted, so
// later starts do not migrate again, and a database from a newer assistd is
// refused.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, openai, raw, runAssistd } from './lib/server.mjs';

const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-durable-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

async function listAll(s) {
  const out = [];
  let after = '';
  for (;;) {
    const r = await raw(s, 'GET', `/v1/assistants?limit=100&order=asc${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200);
    out.push(...r.json.data);
    if (!r.json.has_more) return out;
    after = r.json.last_id;
  }
}

// SQLite keeps PRAGMA user_version at offset 60 of the database header.
function userVersion(file) {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(4);
  readSync(fd, b, 0, 4, 60);
  closeSync(fd);
  return b.readUInt32BE(0);
}

const stored = new Map(); // id -> exact JSON text as acknowledged

test('200 concurrent creates survive kill -9', async () => {
  const s = await startServer({ dataDir });
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => raw(s, 'POST', '/v1/assistants', {
    body: { model: 'gpt-4o', name: `durable-${i}`, instructions: `n=${i} ✓`, metadata: { i: String(i) }, tools: [{ type: 'code_interpreter' }] },
  })));
  await s.kill9(); // right after the last acknowledgement
  for (const r of results) {
    assert.equal(r.status, 200, r.text);
    stored.set(r.json.id, r.text);
  }
  assert.equal(stored.size, 200);

  const s2 = await startServer({ dataDir });
  try {
    assert.doesNotMatch(s2.logs(), /migrated schema/);
    for (const [id, text] of stored) {
      const r = await raw(s2, 'GET', `/v1/assistants/${id}`);
      assert.equal(r.status, 200, id);
      assert.equal(r.text, text);
    }
    const all = await listAll(s2);
    assert.equal(all.length, 200);
    assert.deepEqual(new Set(all.map((a) => a.id)), new Set(stored.keys()));
    // The names were sent concurrently: the list holds each exactly once.
    assert.deepEqual(all.map((a) => a.name).sort(), Array.from({ length: 200 }, (_, i) => `durable-${i}`).sort());
  } finally {
    await s2.stop();
  }
});

test('modifications and deletes survive kill -9', async () => {
  const s = await startServer({ dataDir });
  const ids = [...stored.keys()];
  const c = openai(s);
  const modified = await Promise.all(ids.slice(0, 20).map((id, i) => c.beta.assistants.update(id, { name: `modified-${i}`, metadata: { changed: 'yes' }, temperature: 0.5 })));
  const deleted = ids.slice(20, 30);
  await Promise.all(deleted.map((id) => c.beta.assistants.delete(id)));
  await s.kill9();

  const s2 = await startServer({ dataDir });
  try {
    for (const m of modified) {
      const r = await raw(s2, 'GET', `/v1/assistants/${m.id}`);
      assert.deepEqual(r.json, m);
      assert.equal(r.json.temperature, 0.5);
      assert.deepEqual(r.json.metadata, { changed: 'yes' });
    }
    for (const id of deleted) assert.equal((await raw(s2, 'GET', `/v1/assistants/${id}`)).status, 404);
    for (const id of ids.slice(30)) assert.equal((await raw(s2, 'GET', `/v1/assistants/${id}`)).text, stored.get(id));
    assert.equal((await listAll(s2)).length, 190);
  } finally {
    await s2.stop();
  }
});

test('schema version is persisted: restarts do not migrate again', async () => {
  const db = path.join(dataDir, 'assistd.db');
  // After a clean stop the WAL is checkpointed into the main file.
  assert.equal(userVersion(db), 4);
  for (let i = 0; i < 2; i++) {
    const s = await startServer({ dataDir });
    assert.doesNotMatch(s.logs(), /migrated schema/);
    assert.equal((await listAll(s)).length, 190);
    await s.stop();
  }
  assert.equal(userVersion(db), 4);

  // A fresh directory migrates once.
  const fresh = mkdtempSync(path.join(tmpdir(), 'assistd-fresh-'));
  try {
    const s = await startServer({ dataDir: fresh });
    assert.match(s.logs(), /store: migrated schema to version 1/);
    assert.match(s.logs(), /store: migrated schema to version 2/);
    assert.match(s.logs(), /store: migrated schema to version 3/);
    assert.match(s.logs(), /store: migrated schema to version 4/);
    await s.stop();
    assert.equal(userVersion(path.join(fresh, 'assistd.db')), 4);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
});

test('a database from a newer assistd is refused, not damaged', async () => {
  const db = path.join(dataDir, 'assistd.db');
  const fd = openSync(db, 'r+');
  const b = Buffer.alloc(4);
  b.writeUInt32BE(99, 0);
  writeSync(fd, b, 0, 4, 60);
  closeSync(fd);
  try {
    const r = await runAssistd(['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--api-keys', 'k']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /database schema 99 is newer than this assistd \(4\)/);
    assert.doesNotMatch(r.stderr, /listening on|AddressSanitizer|LeakSanitizer|runtime error/);
    assert.equal(userVersion(db), 99);
  } finally {
    b.writeUInt32BE(4, 0);
    const fd2 = openSync(db, 'r+');
    writeSync(fd2, b, 0, 4, 60);
    closeSync(fd2);
  }
  const s = await startServer({ dataDir });
  assert.equal((await listAll(s)).length, 190);
  await s.stop();
});

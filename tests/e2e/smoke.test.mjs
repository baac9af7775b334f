// Smoke: the binary starts, answers health, and the SDK can create and read
// an assistant through both client classes.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openai, azure, raw } from './lib/server.mjs';

test('server starts, serves /healthz and stops cleanly', async () => {
  const s = await startServer();
  try {
    const r = await raw(s, 'GET', '/healthz', { key: null, beta: false });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(r.json, { status: 'ok' });
  } finally {
    await s.stop();
  }
});

test('OpenAI and AzureOpenAI clients see the same assistant', async () => {
  const s = await startServer();
  try {
    const a = await openai(s).beta.assistants.create({ model: 'gpt-4o', name: 'Math Tutor' });
    assert.match(a.id, /^asst_/);
    const b = await azure(s).beta.assistants.retrieve(a.id);
    assert.deepEqual(b, a);
  } finally {
    await s.stop();
  }
});

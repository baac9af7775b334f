// Authentication, projects and the OpenAI-Beta header: which keys are
// accepted in which header on which URL shape, project isolation with a keys
// file, running without keys (loopback only), and when the beta header is
// required.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openai, azure, raw, errorOf, runAssistd, KEY, AZURE_API_VERSION } from './lib/server.mjs';

const AV = `api-version=${AZURE_API_VERSION}`;

const NO_KEY = {
  message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an api-key header.",
  type: 'invalid_request_error', param: null, code: null,
};

describe('API keys', () => {
  let s;
  before(async () => { s = await startServer({ keys: `${KEY},sk-second-key` }); });
  after(async () => { await s.stop(); });

  test('missing key: 401 with the OpenAI body, on every shape', async () => {
    for (const p of ['/v1/assistants', `/openai/assistants?${AV}`, '/openai/v1/assistants', '/v1/models', '/v1/nope']) {
      const r = await raw(s, 'GET', p, { key: null });
      assert.equal(r.status, 401, p);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.deepEqual(errorOf(r), NO_KEY, p);
    }
    // An empty Bearer token or an empty api-key counts as missing.
    assert.deepEqual(errorOf(await raw(s, 'GET', '/v1/assistants', { key: null, headers: { Authorization: 'Bearer ' } })), NO_KEY);
    assert.deepEqual(errorOf(await raw(s, 'GET', '/v1/assistants', { key: null, headers: { 'api-key': '' } })), NO_KEY);
  });

  test('wrong key: 401 invalid_api_key, and the key is not echoed', async () => {
    const bad = 'sk-wrong-key-zzz';
    for (const headers of [{ Authorization: `Bearer ${bad}` }, { 'api-key': bad }, { Authorization: `Bearer ${KEY}x` }, { Authorization: `Bearer ${KEY.slice(0, -1)}` }]) {
      const r = await raw(s, 'GET', '/v1/assistants', { key: null, headers });
      assert.equal(r.status, 401);
      const e = errorOf(r);
      assert.equal(e.code, 'invalid_api_key');
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, null);
      assert.ok(!r.text.includes(bad) && !r.text.includes(KEY.slice(0, -1)), r.text);
    }
    // The SDK surfaces it as AuthenticationError.
    await assert.rejects(openai(s, bad).beta.assistants.list(), (e) => e.status === 401 && e.constructor.name === 'AuthenticationError');
    await assert.rejects(azure(s, bad).beta.assistants.list(), (e) => e.status === 401);
  });

  test('api-key header works on both shapes; Bearer works on Azure too', async () => {
    for (const p of ['/v1/assistants', `/openai/assistants?${AV}`, '/openai/v1/assistants']) {
      const viaApiKey = await raw(s, 'GET', p, { key: null, headers: { 'api-key': KEY } });
      assert.equal(viaApiKey.status, 200, `${p} ${viaApiKey.text}`);
      const viaBearer = await raw(s, 'GET', p, { headers: { Authorization: `Bearer ${KEY}` } });
      assert.equal(viaBearer.status, 200, p);
    }
    // An empty bearer token does not hide a good api-key header.
    assert.equal((await raw(s, 'GET', '/v1/assistants', { key: null, headers: { Authorization: 'Bearer ', 'api-key': KEY } })).status, 200);
    // "bearer" is case-insensitive; the second key works too.
    assert.equal((await raw(s, 'GET', '/v1/assistants', { key: null, headers: { Authorization: 'bearer sk-second-key' } })).status, 200);
    // Azure with an Entra-style token provider sends Bearer.
    const { AzureOpenAI } = await import('openai');
    const tokenClient = new AzureOpenAI({ endpoint: s.url, apiVersion: AZURE_API_VERSION, azureADTokenProvider: async () => KEY, maxRetries: 0 });
    const a = await tokenClient.beta.assistants.create({ model: 'gpt-4o' });
    assert.deepEqual(await azure(s).beta.assistants.retrieve(a.id), a);
  });

  test('/healthz and /metrics need no key', async () => {
    assert.equal((await raw(s, 'GET', '/healthz', { key: null, beta: false })).status, 200);
    assert.equal((await raw(s, 'GET', '/metrics', { key: null, beta: false })).status, 200);
  });
});

describe('projects from a keys file', () => {
  let s;
  const keysFile = [
    '# key project',
    'sk-alpha-1 alpha',
    'sk-alpha-2   alpha   # a second key for the same project',
    '',
    'sk-beta-1 beta',
    'sk-default-1',
  ].join('\n') + '\n';
  before(async () => { s = await startServer({ keys: null, keysFile }); });
  after(async () => { await s.stop(); });

  test('each project sees only its own assistants', async () => {
    const alpha = openai(s, 'sk-alpha-1');
    const alpha2 = azure(s, 'sk-alpha-2');
    const beta = openai(s, 'sk-beta-1');
    const dflt = openai(s, 'sk-default-1');
    const a = await alpha.beta.assistants.create({ model: 'gpt-4o', name: 'alpha' });
    const b = await beta.beta.assistants.create({ model: 'gpt-4o', name: 'beta' });

    // Both alpha keys share the project.
    assert.deepEqual(await alpha2.beta.assistants.retrieve(a.id), a);
    assert.deepEqual((await alpha2.beta.assistants.list()).data.map((x) => x.id), [a.id]);
    assert.deepEqual((await beta.beta.assistants.list()).data.map((x) => x.id), [b.id]);
    assert.deepEqual((await dflt.beta.assistants.list()).data, []);

    for (const [client, otherId] of [[beta, a.id], [alpha, b.id], [dflt, a.id]]) {
      for (const call of [
        () => client.beta.assistants.retrieve(otherId),
        () => client.beta.assistants.update(otherId, { name: 'stolen' }),
        () => client.beta.assistants.delete(otherId),
      ]) {
        await assert.rejects(call(), (e) => {
          assert.equal(e.status, 404);
          assert.deepEqual(e.error, { message: `No assistant found with id '${otherId}'.`, type: 'invalid_request_error', param: null, code: null });
          return true;
        });
      }
    }
    // A cursor from another project is not a cursor here.
    const r = await raw(s, 'GET', `/v1/assistants?after=${a.id}`, { key: 'sk-beta-1' });
    assert.equal(r.status, 400);
    assert.equal(errorOf(r).param, 'after');
    // Nothing was changed by the failed attempts.
    assert.deepEqual(await alpha.beta.assistants.retrieve(a.id), a);
    assert.deepEqual(await beta.beta.assistants.retrieve(b.id), b);
  });

  test('the access log names the project, never the key', async () => {
    await raw(s, 'GET', '/v1/assistants', { key: 'sk-beta-1' });
    await new Promise((r) => setTimeout(r, 100));
    const logs = s.logs();
    assert.match(logs, /access method=GET path=\/v1\/assistants status=200 .*project=beta/);
    for (const k of ['sk-alpha-1', 'sk-alpha-2', 'sk-beta-1', 'sk-default-1']) assert.ok(!logs.includes(k), k);
  });
});

describe('keys file errors', () => {
  test('a malformed keys file stops start-up with a message', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = (await import('node:path')).default;
    const dir = mkdtempSync(path.join(tmpdir(), 'assistd-keys-'));
    try {
      writeFileSync(path.join(dir, 'k1'), 'sk-a alpha extra-field\n');
      let r = await runAssistd(['--listen', '127.0.0.1:0', '--data-dir', dir, '--keys-file', path.join(dir, 'k1')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /k1:1: expected "KEY \[PROJECT\]"/);
      writeFileSync(path.join(dir, 'k2'), 'sk-a bad/project\n');
      r = await runAssistd(['--listen', '127.0.0.1:0', '--data-dir', dir, '--keys-file', path.join(dir, 'k2')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /project names use/);
      r = await runAssistd(['--listen', '127.0.0.1:0', '--data-dir', dir, '--keys-file', path.join(dir, 'missing')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /cannot read keys file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('no keys configured', () => {
  test('loopback works without a key (and ignores any key sent)', async () => {
    const s = await startServer({ keys: null, env: { ASSISTD_API_KEYS: '', ASSISTD_KEYS_FILE: '' } });
    try {
      assert.match(s.logs(), /authentication off/);
      const r = await raw(s, 'POST', '/v1/assistants', { key: null, body: { model: 'gpt-4o' } });
      assert.equal(r.status, 200);
      assert.equal((await raw(s, 'GET', `/v1/assistants/${r.json.id}`, { key: 'anything' })).status, 200);
      assert.equal((await openai(s, 'whatever').beta.assistants.retrieve(r.json.id)).id, r.json.id);
    } finally {
      await s.stop();
    }
  });

  test('refuses to listen on a non-loopback address', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = (await import('node:path')).default;
    const dir = mkdtempSync(path.join(tmpdir(), 'assistd-nokeys-'));
    try {
      const r = await runAssistd(['--listen', '0.0.0.0:0', '--data-dir', dir], { env: { ASSISTD_API_KEYS: '', ASSISTD_KEYS_FILE: '' } });
      assert.notEqual(r.code, 0);
      assert.equal(r.signal, null);
      assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without API keys/);
      assert.doesNotMatch(r.stderr, /listening on/);
      assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('OpenAI-Beta header', () => {
  let s;
  before(async () => { s = await startServer(); });
  after(async () => { await s.stop(); });

  test('missing on /v1 assistants: 400 invalid_beta', async () => {
    for (const [m, p] of [['GET', '/v1/assistants'], ['POST', '/v1/assistants'], ['GET', '/v1/assistants/asst_abc'], ['DELETE', '/v1/assistants/asst_abc']]) {
      const r = await raw(s, m, p, { beta: false, body: m === 'POST' ? { model: 'gpt-4o' } : undefined });
      assert.equal(r.status, 400, `${m} ${p}`);
      assert.deepEqual(errorOf(r), {
        message: "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by setting the header 'OpenAI-Beta: assistants=v2'.",
        type: 'invalid_request_error', param: null, code: 'invalid_beta',
      });
    }
    // Nothing was created by the refused POST.
    assert.deepEqual((await raw(s, 'GET', '/v1/assistants')).json.data, []);
  });

  test('assistants=v1 is refused', async () => {
    const r = await raw(s, 'GET', '/v1/assistants', { beta: false, headers: { 'OpenAI-Beta': 'assistants=v1' } });
    assert.equal(r.status, 400);
    assert.deepEqual(errorOf(r), {
      message: "The v1 Assistants API has been deprecated. Please try again by setting the header 'OpenAI-Beta: assistants=v2'.",
      type: 'invalid_request_error', param: null, code: 'invalid_beta',
    });
  });

  test('assistants=v2 among other betas is accepted', async () => {
    const r = await raw(s, 'GET', '/v1/assistants', { beta: false, headers: { 'OpenAI-Beta': 'realtime=v1, assistants=v2' } });
    assert.equal(r.status, 200);
  });

  test('not required on Azure shapes nor on /v1/models', async () => {
    assert.equal((await raw(s, 'GET', `/openai/assistants?${AV}`, { beta: false })).status, 200);
    assert.equal((await raw(s, 'GET', '/openai/v1/assistants', { beta: false })).status, 200);
    assert.equal((await raw(s, 'GET', `/openai/deployments/dep/assistants?${AV}`, { beta: false })).status, 200);
    assert.equal((await raw(s, 'GET', '/v1/models', { beta: false })).status, 200);
  });

  test('--require-beta-header false relaxes it', async () => {
    const relaxed = await startServer({ args: ['--require-beta-header', 'false'] });
    try {
      const r = await raw(relaxed, 'POST', '/v1/assistants', { beta: false, body: { model: 'gpt-4o' } });
      assert.equal(r.status, 200);
      assert.equal((await raw(relaxed, 'GET', '/v1/assistants', { beta: false })).json.data.length, 1);
    } finally {
      await relaxed.stop();
    }
  });
});

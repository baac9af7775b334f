// Operations: /healthz, /metrics (Prometheus text), the access log (one line
// per request, never a key or a body), shutdown on SIGINT/SIGTERM, --help
// and option errors, and configuration through ASSISTD_* variables.
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, openai, raw, runAssistd, httpRequest, KEY } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const accessLines = (s) => s.logs().split('\n').filter((l) => / INFO access /.test(l));
// Polls until cond() holds (completion callbacks run after the response is
// sent, and a hang-up is noticed a little later); fails after ms.
async function waitFor(cond, ms = 3000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

test('/healthz: 200 {"status":"ok"}, no key needed', async () => {
  const s = await startServer();
  try {
    for (const key of [null, KEY, 'wrong-key']) {
      const r = await raw(s, 'GET', '/healthz', { key, beta: false });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.equal(r.text, '{"status":"ok"}');
    }
    assert.equal((await raw(s, 'GET', '/healthz?probe=1', { key: null, beta: false })).status, 200);
    // Only at the root: the API prefixes do not serve it.
    assert.equal((await raw(s, 'GET', '/v1/healthz')).status, 404);
  } finally {
    await s.stop();
  }
});

test('/metrics: request counters by route and status, latency histogram, connections', async () => {
  const s = await startServer();
  try {
    const c = openai(s);
    for (let i = 0; i < 3; i++) await c.beta.assistants.create({ model: 'gpt-4o' });
    await raw(s, 'GET', '/v1/assistants');
    await raw(s, 'GET', '/v1/assistants/asst_nope');
    await raw(s, 'GET', '/v1/nope');
    await raw(s, 'GET', '/v1/assistants', { key: 'bad' });
    // Completion callbacks run after the response is sent: scrape until the
    // last request (the 401) has been counted.
    let r;
    await waitFor(async () => {
      r = await raw(s, 'GET', '/metrics', { key: null, beta: false });
      return /route="assistants\.list",status="401"/.test(r.text);
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4');
    const m = r.text;
    const line = (re) => { const x = m.match(re); assert.ok(x, `${re} not in:\n${m}`); return Number(x[1]); };
    assert.match(m, /^# HELP assistd_http_requests_total /m);
    assert.match(m, /^# TYPE assistd_http_requests_total counter$/m);
    assert.equal(line(/^assistd_http_requests_total\{route="assistants\.create",status="200"\} (\d+)$/m), 3);
    assert.equal(line(/^assistd_http_requests_total\{route="assistants\.list",status="200"\} (\d+)$/m), 1);
    assert.equal(line(/^assistd_http_requests_total\{route="assistants\.retrieve",status="404"\} (\d+)$/m), 1);
    assert.equal(line(/^assistd_http_requests_total\{route="unmatched",status="404"\} (\d+)$/m), 1);
    // A refused request is still counted under its route.
    assert.equal(line(/^assistd_http_requests_total\{route="assistants\.list",status="401"\} (\d+)$/m), 1);
    assert.doesNotMatch(m, /route="unmatched",status="401"/);
    assert.match(m, /^# TYPE assistd_http_request_duration_seconds histogram$/m);
    // Buckets are cumulative and end with +Inf == _count.
    const buckets = [...m.matchAll(/^assistd_http_request_duration_seconds_bucket\{route="assistants\.create",le="([^"]+)"\} (\d+)$/gm)];
    assert.ok(buckets.length >= 5);
    assert.equal(buckets.at(-1)[1], '+Inf');
    const counts = buckets.map((b) => Number(b[2]));
    for (let i = 1; i < counts.length; i++) assert.ok(counts[i] >= counts[i - 1]);
    assert.equal(counts.at(-1), 3);
    assert.equal(line(/^assistd_http_request_duration_seconds_count\{route="assistants\.create"\} (\d+)$/m), 3);
    assert.ok(line(/^assistd_http_request_duration_seconds_sum\{route="assistants\.create"\} ([0-9.]+)$/m) > 0);
    assert.match(m, /^# TYPE assistd_open_connections gauge$/m);
    assert.ok(line(/^assistd_open_connections (\d+)$/m) >= 1); // this request's own connection
    assert.ok(line(/^assistd_connections_total (\d+)$/m) >= 1);
    // Label values are fixed route names: ids and paths never become labels.
    assert.doesNotMatch(m, /asst_/);
    // The metrics request itself is counted on the next scrape.
    let again;
    await waitFor(async () => {
      again = (await raw(s, 'GET', '/metrics', { key: null, beta: false })).text;
      return /route="metrics",status="200"/.test(again);
    });
    assert.match(again, /^assistd_http_requests_total\{route="metrics",status="200"\} \d+$/m);
  } finally {
    await s.stop();
  }
});

test('access log: one line per request with method, path, status, dur_ms, req id; never the key or the body', async () => {
  const secret = 'sk-very-secret-access-log-key';
  const s = await startServer({ keys: secret });
  try {
    const marker = 'BODY-MARKER-7f3a9c';
    const ids = [];
    const reqs = [
      ['POST', '/v1/assistants', { body: { model: 'gpt-4o', instructions: marker, metadata: { m: marker } } }, 200],
      ['POST', '/v1/assistants', { body: `{"model":"${marker}"` }, 400],
      ['GET', `/v1/assistants?limit=5&after=`, {}, 200],
      ['GET', '/v1/assistants', { key: `${secret}-wrong` }, 401],
      ['GET', '/v1/nope', {}, 404],
      ['DELETE', '/v1/assistants/asst_nope', {}, 404],
      ['GET', '/openai/assistants?api-version=2024-05-01-preview', { key: null, headers: { 'api-key': secret } }, 200],
    ];
    for (const [m, p, o, status] of reqs) {
      const r = await raw(s, m, p, { key: secret, ...o });
      assert.equal(r.status, status, `${m} ${p}: ${r.text}`);
      ids.push(r.headers.get('x-request-id'));
    }
    await waitFor(() => accessLines(s).length >= reqs.length);
    const lines = accessLines(s);
    assert.equal(lines.length, reqs.length, lines.join('\n'));
    // A line is written when its request completes, which for back-to-back
    // requests need not be in the order the client saw the responses: each
    // is found by its request id.
    reqs.forEach(([m, p, , status], i) => {
      const pathOnly = p.split('?')[0];
      const project = status === 401 ? '-' : 'default';
      const re = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z INFO access method=${m} path=${pathOnly.replace(/[/.?]/g, '\\$&')} status=${status} dur_ms=\\d+\\.\\d{3} req=${ids[i]} project=${project}$`);
      const mine = lines.filter((l) => l.includes(` req=${ids[i]} `));
      assert.equal(mine.length, 1, `${m} ${p}:\n${lines.join('\n')}`);
      assert.match(mine[0], re);
    });
    const all = s.logs();
    assert.ok(!all.includes(secret), 'key in log');
    assert.ok(!all.includes(marker), 'body in log');
    assert.ok(!all.includes('api-version'), 'query string in log');
  } finally {
    await s.stop();
  }
});

test('access log: decoded control characters cannot forge lines or fields', async () => {
  const s = await startServer();
  try {
    await raw(s, 'GET', '/v1/a%0Afake%20status=200%0D');
    await raw(s, 'GET', '/v1/assistants/asst_%0A2026-01-01T00:00:00.000Z%20INFO%20access%20method=GET');
    await raw(s, 'GET', '/v1/%C3%A9%25');
    await waitFor(() => accessLines(s).length >= 3);
    const lines = accessLines(s);
    assert.equal(lines.length, 3, s.logs());
    // In completion order, which need not be the order they were sent.
    for (const re of [
      / path=\/v1\/a%0Afake%20status=200%0D status=404 /,
      / path=\/v1\/assistants\/asst_%0A2026-01-01T00:00:00\.000Z%20INFO%20access%20method=GET status=400 /,
      / path=\/v1\/%C3%A9%25 status=404 /,
    ]) {
      assert.equal(lines.filter((l) => re.test(l)).length, 1, `${re}:\n${lines.join('\n')}`);
    }
    assert.equal(s.logs().split('\n').filter((l) => l.includes('access')).length, 3);
  } finally {
    await s.stop();
  }
});

test('access log: a client that hangs up mid-body is logged as aborted', async () => {
  const s = await startServer();
  try {
    const net = await import('node:net');
    await new Promise((resolve) => {
      const sock = net.connect(s.port, '127.0.0.1', () => {
        sock.write(`POST /v1/assistants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nOpenAI-Beta: assistants=v2\r\nContent-Length: 100\r\n\r\n{"mo`);
        setTimeout(() => { sock.destroy(); resolve(); }, 100);
      });
    });
    await waitFor(() => accessLines(s).length >= 1);
    const lines = accessLines(s);
    assert.equal(lines.length, 1, s.logs());
    assert.match(lines[0], /method=POST path=\/v1\/assistants status=499 .* aborted=1$/);
  } finally {
    await s.stop();
  }
});

test('--access-log false and ASSISTD_ACCESS_LOG=false silence it', async () => {
  for (const opts of [{ args: ['--access-log', 'false'] }, { env: { ASSISTD_ACCESS_LOG: 'false' } }]) {
    const s = await startServer(opts);
    try {
      await raw(s, 'GET', '/v1/assistants');
      await sleep(50);
      assert.equal(accessLines(s).length, 0);
    } finally {
      await s.stop();
    }
  }
});

describe('signals', () => {
  for (const sig of ['SIGINT', 'SIGTERM']) {
    test(`${sig}: exit 0 with "stopped", writes kept`, async () => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-sig-'));
      try {
        const s = await startServer({ dataDir });
        const a = await openai(s).beta.assistants.create({ model: 'gpt-4o', name: sig });
        const exited = new Promise((resolve) => s.proc.on('exit', (code, signal) => resolve({ code, signal })));
        s.proc.kill(sig);
        assert.deepEqual(await exited, { code: 0, signal: null });
        await s.stop();
        assert.match(s.logs(), new RegExp(`received ${sig}, shutting down`));
        assert.match(s.logs(), /INFO stopped\n?$/);
        const s2 = await startServer({ dataDir });
        try {
          assert.equal((await openai(s2).beta.assistants.retrieve(a.id)).name, sig);
        } finally {
          await s2.stop();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  test('SIGTERM with requests in flight: every acknowledged create is kept', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-sig-'));
    try {
      const s = await startServer({ dataDir });
      const c = openai(s);
      const inflight = Array.from({ length: 100 }, (_, i) => c.beta.assistants.create({ model: 'gpt-4o', name: `f${i}` }).then((a) => a.id, () => null));
      await sleep(5);
      s.proc.kill('SIGTERM');
      const acked = (await Promise.all(inflight)).filter(Boolean);
      await s.stop();
      const s2 = await startServer({ dataDir });
      try {
        for (const id of acked) assert.equal((await raw(s2, 'GET', `/v1/assistants/${id}`)).status, 200, id);
      } finally {
        await s2.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('command line', () => {
  const OPTIONS = {
    listen: 'ASSISTD_LISTEN', 'data-dir': 'ASSISTD_DATA_DIR', 'api-keys': 'ASSISTD_API_KEYS', 'keys-file': 'ASSISTD_KEYS_FILE',
    models: 'ASSISTD_MODELS', config: 'ASSISTD_CONFIG', 'max-json-body': 'ASSISTD_MAX_JSON_BODY', 'max-upload': 'ASSISTD_MAX_UPLOAD', 'max-part': 'ASSISTD_MAX_PART',
    threads: 'ASSISTD_THREADS', 'max-connections': 'ASSISTD_MAX_CONNECTIONS', 'conn-timeout': 'ASSISTD_CONN_TIMEOUT', 'run-ttl': 'ASSISTD_RUN_TTL', 'sse-heartbeat': 'ASSISTD_SSE_HEARTBEAT', 'sse-direct': 'ASSISTD_SSE_DIRECT', 'sse-hub-writes': 'ASSISTD_SSE_HUB_WRITES',
    'share-dir': 'ASSISTD_SHARE_DIR', 'playground-dir': 'ASSISTD_PLAYGROUND_DIR', 'sandbox-spares': 'ASSISTD_SANDBOX_SPARES',
    'sandbox-cpu-seconds': 'ASSISTD_SANDBOX_CPU_SECONDS', 'sandbox-memory': 'ASSISTD_SANDBOX_MEMORY', 'sandbox-processes': 'ASSISTD_SANDBOX_PROCESSES', 'sandbox-open-files': 'ASSISTD_SANDBOX_OPEN_FILES', 'sandbox-file-size': 'ASSISTD_SANDBOX_FILE_SIZE', 'sandbox-disk': 'ASSISTD_SANDBOX_DISK', 'sandbox-idle': 'ASSISTD_SANDBOX_IDLE', 'sandbox-max-sessions': 'ASSISTD_SANDBOX_MAX_SESSIONS', 'sandbox-timeout': 'ASSISTD_SANDBOX_TIMEOUT',
    'require-beta-header': 'ASSISTD_REQUIRE_BETA', 'access-log': 'ASSISTD_ACCESS_LOG', 'log-level': 'ASSISTD_LOG_LEVEL',
  };

  test('--help lists every option with its ASSISTD_ variable and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runAssistd([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^usage: assistd \[options\]$/m);
      for (const [opt, env] of Object.entries(OPTIONS)) {
        assert.match(r.stdout, new RegExp(`^  --${opt} +${env} +\\S.*\\(default: [^)]*\\)$`, 'm'), opt);
      }
      // Nothing undocumented: every option line is one of the above, or help/version.
      const listed = [...r.stdout.matchAll(/^ {2}--([a-z-]+)/gm)].map((x) => x[1]);
      assert.deepEqual(listed.sort(), [...Object.keys(OPTIONS), 'help', 'version'].sort());
    }
    const v = await runAssistd(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^assistd \d+\.\d+\.\d+\n$/);
  });

  test('bad options exit 2 with a message and start nothing', async () => {
    const cases = [
      [['--bogus'], /unknown option '--bogus'/],
      [['positional'], /unexpected argument 'positional'/],
      [['--threads'], /option --threads needs a value/],
      [['--threads', 'many'], /invalid value for --threads/],
      [['--listen', 'nocolon'], /invalid value for --listen/],
      [['--listen', '127.0.0.1:70000'], /invalid value for --listen/],
      [['--max-json-body', '0'], /invalid value for --max-json-body/],
      [['--max-json-body', '12Q'], /invalid value for --max-json-body/],
      [['--access-log', 'maybe'], /invalid value for --access-log/],
      [['--log-level', 'loud'], /invalid value for --log-level/],
    ];
    for (const [args, re] of cases) {
      const r = await runAssistd(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /listening on/);
    }
    const env = await runAssistd([], { env: { ASSISTD_THREADS: 'x' } });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /invalid value for ASSISTD_THREADS/);
  });

  test('environment variables configure; the command line wins', async () => {
    const s = await startServer({ env: { ASSISTD_MAX_JSON_BODY: '1K', ASSISTD_MODELS: 'env-model' } });
    try {
      const big = await raw(s, 'POST', '/v1/assistants', { body: { model: 'env-model', instructions: 'x'.repeat(2000) } });
      assert.equal(big.status, 413);
      assert.equal((await raw(s, 'POST', '/v1/assistants', { body: { model: 'env-model' } })).status, 200);
      assert.equal((await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o' } })).status, 400);
    } finally {
      await s.stop();
    }
    const s2 = await startServer({ env: { ASSISTD_MODELS: 'env-model' }, args: ['--models', 'cli-model', '--max-json-body=2K'] });
    try {
      assert.equal((await raw(s2, 'POST', '/v1/assistants', { body: { model: 'cli-model', instructions: 'x'.repeat(1500) } })).status, 200);
      assert.equal((await raw(s2, 'POST', '/v1/assistants', { body: { model: 'env-model' } })).status, 400);
    } finally {
      await s2.stop();
    }
  });

  test('--log-level warn hides info lines but the server still works', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-quiet-'));
    try {
      // startServer waits for the "listening" info line, so run it directly.
      const { spawn } = await import('node:child_process');
      const { BIN } = await import('./lib/server.mjs');
      const proc = spawn(BIN, ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn', '--api-keys', KEY], { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      proc.stderr.on('data', (d) => { log += d; });
      proc.stdout.on('data', (d) => { log += d; });
      await sleep(500);
      const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
      proc.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.doesNotMatch(log, /INFO/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

test('max-connections and threads options are honoured without breaking requests', async () => {
  const s = await startServer({ args: ['--threads', '1', '--max-connections', '4'] });
  try {
    // Connection: close, or idle keep-alive sockets would hold the 4 slots.
    const results = await Promise.all(Array.from({ length: 20 }, () => httpRequest(s, { method: 'GET', path: '/healthz', headers: { Connection: 'close' } })));
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
    assert.equal((await raw(s, 'GET', '/healthz', { key: null, beta: false })).status, 200);
  } finally {
    await s.stop();
  }
});

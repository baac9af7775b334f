// Test harness: starts the real assistd binary on a free port with a fresh
// data directory, and builds clients for it -- the official openai SDK's
// OpenAI and AzureOpenAI classes, and a raw fetch helper for what the SDK
// hides (exact bytes, headers, error bodies).
//
// stop() sends SIGTERM, waits for a clean exit (code 0) and fails if the
// sanitizers reported anything, so every test is also a leak and UB check.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { AzureOpenAI } from 'openai';

const BIN = process.env.ASSISTD_BIN || path.resolve(import.meta.dirname, '../../../build/asan/assistd');
export const KEY = 'sk-test-key-1';
export const AZURE_API_VERSION = '2024-05-01-preview';

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || mkdtempSync(path.join(tmpdir(), 'assistd-e2e-'));
  // code_interpreter sessions run under unprivileged uids that must reach
  // DATA/sandbox (README, "code_interpreter sandbox"); mkdtemp gives 0700.
  chmodSync(dataDir, 0o711);
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', ...opts.env };
  const args = ['--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(opts.args || [])];
  if (opts.keysFile !== undefined) {
    const f = path.join(dataDir, '..', `keys-${path.basename(dataDir)}.txt`);
    writeFileSync(f, opts.keysFile);
    args.push('--keys-file', f);
  }
  if (opts.keys !== null) args.push('--api-keys', opts.keys ?? KEY);
  const proc = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`assistd did not start:\n${log}`)), 15000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on [^ ]+:(\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`assistd exited ${code}:\n${log}`)); });
  });
  proc.removeAllListeners('exit');
  // 'close', not 'exit': 'exit' can precede the last stderr data, and with
  // it a sanitizer report the checks below must see.
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const server = {
    url, port, dataDir, proc,
    logs: () => log,
    async stop({ keepData = false } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const r = await exited;
      if (!keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (SANITIZER.test(log)) throw new Error(`sanitizer report:\n${log}`);
      if (r.code !== 0) throw new Error(`assistd exited with ${r.code ?? r.signal}:\n${log.slice(-4000)}`);
      return r;
    },
    // SIGKILL, for crash tests. Fails if the process had already died
    // (a crash before the kill would make the test prove nothing) or if the
    // sanitizers reported anything before it.
    async kill9() {
      const running = proc.exitCode === null && proc.signalCode === null;
      proc.kill('SIGKILL');
      const r = await exited;
      if (SANITIZER.test(log)) throw new Error(`sanitizer report:\n${log}`);
      if (!running || r.signal !== 'SIGKILL') throw new Error(`assistd had exited (${r.code ?? r.signal}) before kill -9:\n${log.slice(-4000)}`);
      return r;
    },
  };
  return server;
}

export function openai(server, key = KEY, extra = {}) {
  return new OpenAI({ apiKey: key, baseURL: `${server.url}/v1`, maxRetries: 0, ...extra });
}

export function azure(server, key = KEY, extra = {}) {
  return new AzureOpenAI({ apiKey: key, endpoint: server.url, apiVersion: AZURE_API_VERSION, maxRetries: 0, ...extra });
}

// Raw HTTP: returns { status, headers, text, json } (json undefined if not JSON).
export async function raw(server, method, urlPath, { headers = {}, body, key = KEY, beta = true } = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (beta) h['OpenAI-Beta'] = 'assistants=v2';
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array) && !(body instanceof FormData)) {
    payload = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const res = await fetch(server.url + urlPath, { method, headers: h, body: payload, redirect: 'manual' });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

// Asserts an OpenAI-shaped error body with all four keys.
export function errorOf(r) {
  const e = r.json?.error;
  if (!e || !('message' in e) || !('type' in e) || !('param' in e) || !('code' in e)) {
    throw new Error(`not an OpenAI error body (status ${r.status}): ${r.text}`);
  }
  return e;
}

export { BIN };

// Runs the binary to completion (for --help, bad options, refused starts):
// resolves { code, signal, stdout, stderr }. Kills it after timeoutMs.
export function runAssistd(args, { env = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`assistd did not exit:\n${stdout}${stderr}`)); }, timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can precede the last pipe data; wait for the streams to close.
      let open = 2;
      const done = () => { if (--open === 0) resolve({ code, signal, stdout, stderr }); };
      if (proc.stdout.closed) done(); else proc.stdout.on('close', done);
      if (proc.stderr.closed) done(); else proc.stderr.on('close', done);
    });
  });
}

// Low-level HTTP with node:http, for what fetch cannot do: chunked bodies
// written piece by piece, a declared Content-Length, arbitrary headers.
// chunks: array of strings/Buffers written one by one (chunked encoding
// unless a Content-Length header is given). agent: node:http's (false: a
// connection of its own, never an idle kept-alive one). Resolves
// { status, headers, text, json }.
export function httpRequest(server, { method = 'GET', path: p = '/', headers = {}, chunks = [], agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path: p, headers, agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    (async () => {
      for (const c of chunks) {
        if (!req.write(c)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    })().catch(reject);
  });
}

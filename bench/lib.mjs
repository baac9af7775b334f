// lib.mjs -- plumbing shared by the file_search benchmarks (nfcorpus.mjs and
// search_perf.mjs): "--name value" argument parsing, starting a real assistd
// on a data directory and waiting for its "listening on" line, the HTTP API
// helper, file upload, waiting for a vector store to finish indexing, JSONL
// reading and percentiles. Nothing here measures anything by itself; the
// scripts decide what is timed.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const KEY = 'sk-bench';
export const HDR = { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2' };

// "--name value" pairs; a flag with no value (next word missing or starting
// with "--") is "true".
export function parseArgs(argv = process.argv.slice(2)) {
  return Object.fromEntries(
    argv.reduce((acc, a, i, all) => {
      if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']);
      return acc;
    }, []),
  );
}

export function log(...a) { process.stderr.write(a.join(' ') + '\n'); }

// Starts `bin` on 127.0.0.1 with an ephemeral port and waits (up to
// timeoutMs) until it prints "listening on"; env is added to this process's
// environment. Returns {url, pid, stop()}; stop() sends SIGTERM and waits
// for the process to close.
export async function startAssistd(bin, dataDir, env = {}, timeoutMs = 60000) {
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--api-keys', KEY,
    '--access-log', 'false', '--log-level', 'info'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`assistd did not start:\n${out}`)), timeoutMs);
    const on = (d) => {
      if (out.length > 65536) return;
      out += d;
      const m = /listening on [^ ]+:(\d+)/.exec(out);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    proc.on('exit', (c) => reject(new Error(`assistd exited ${c}:\n${out}`)));
  });
  proc.removeAllListeners('exit');
  const closed = new Promise((r) => proc.on('close', r));
  return { url: `http://127.0.0.1:${port}`, pid: proc.pid, async stop() { proc.kill('SIGTERM'); await closed; } };
}

// One API call: JSON body (or multipart for a FormData); returns the parsed
// response, throws on a non-2xx status.
export async function api(s, method, p, body) {
  const r = await fetch(`${s.url}/v1${p}`, {
    method,
    headers: body instanceof FormData ? HDR : { ...HDR, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

// POST /v1/files with purpose "assistants"; returns the file id.
export async function uploadFile(s, text, name) {
  const fd = new FormData();
  fd.append('purpose', 'assistants');
  fd.append('file', new Blob([text]), name);
  return (await api(s, 'POST', '/files', fd)).id;
}

// Polls the store every pollMs until no file is in progress; throws
// `${errPrefix}${file_counts}` unless exactly `expected` files completed.
export async function waitIndexed(s, store, expected, pollMs, errPrefix = '') {
  for (;;) {
    const v = await api(s, 'GET', `/vector_stores/${store}`);
    if (v.file_counts.in_progress === 0) {
      if (v.file_counts.completed !== expected) throw new Error(`${errPrefix}${JSON.stringify(v.file_counts)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export function readJsonl(f) {
  return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// The p-th percentile (nearest rank, no interpolation).
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// Whether the module whose import.meta is meta is the script node was started
// with (so that importing a benchmark, e.g. for nfcorpus.mjs's ndcgAt, does not
// run it).
export function isMain(meta) {
  return Boolean(process.argv[1]) && pathToFileURL(path.resolve(process.argv[1])).href === meta.url;
}

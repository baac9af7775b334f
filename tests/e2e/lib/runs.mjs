// Shared plumbing of the runs tests: an assistd wired to a scripted upstream
// (zero configuration: OPENAI_BASE_URL / OPENAI_API_KEY), and a parser for
// raw Server-Sent Events bodies.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, openai } from './server.mjs';
import { startUpstream } from './upstream.mjs';

// Starts the scripted upstream and an assistd that calls it. close() stops
// both (and fails on sanitizer reports, as server.stop() does).
export async function setupRuns({ dialect = 'openai', args = [], env = {} } = {}) {
  const up = await startUpstream({ dialect, apiKey: 'up-key' });
  const s = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ...env }, args });
  return {
    up, s, client: openai(s),
    async close() { await s.stop(); await up.close(); },
  };
}

// Crash tests: runs body(t) with one scripted upstream and one data
// directory that outlive the assistd processes started over them.
//   t.up        the scripted upstream
//   t.s         the live server; t.client() an SDK client for it
//   t.kill9()   SIGKILL (fails if the process had already died)
//   t.start()   a new process over the same data (args/env as given here)
//   t.restart({ clean }) kill -9 (or, with clean, SIGTERM and the
//               sanitizer check), then start
// Afterwards the live server is stopped with the sanitizer check (unless the
// test left it killed), the upstream closed and the directory removed.
export async function withRestarts(body, { args = [], env = {} } = {}) {
  const up = await startUpstream({ apiKey: 'up-key' });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'assistd-runs-durable-'));
  let alive = false;
  const t = {
    up, dataDir, s: null,
    client() { return openai(t.s); },
    async start() {
      t.s = await startServer({ dataDir, args, env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key', ...env } });
      alive = true;
      return t.s;
    },
    async kill9() { alive = false; await t.s.kill9(); },
    async stop() { alive = false; await t.s.stop({ keepData: true }); },
    async restart({ clean = false } = {}) {
      if (clean) await t.stop(); else await t.kill9();
      return t.start();
    },
  };
  try {
    await t.start();
    await body(t);
    if (alive) await t.stop();
  } finally {
    if (alive) await t.s.kill9().catch(() => {});
    await up.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// A raw SSE body as [{event, data}]: comment lines (heartbeats) skipped,
// data JSON-parsed except for the final `done` event, whose data is the
// literal string '[DONE]'.
export function parseSSE(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (event) out.push({ event, data: event === 'done' ? data.join('\n') : JSON.parse(data.join('\n')) });
  }
  return out;
}

// Polls the run until its status is status (or ms pass); returns the last
// retrieve. For states a test cannot wait on an event for.
export async function waitStatus(client, threadId, runId, status, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (r.status === status || Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 20));
  }
}

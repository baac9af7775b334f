// Shared plumbing of the runs tests: an assistd wired to a scripted upstream
// (zero configuration: OPENAI_BASE_URL / OPENAI_API_KEY), and a parser for
// raw Server-Sent Events bodies.
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

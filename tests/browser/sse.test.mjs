// The playground's event-stream parser (playground/src/sse.js, no DOM) on
// the byte level: every way a stream can be cut into chunks, the three line
// endings, comments, multi-line data, a UTF-8 character split across chunks,
// and a stream that ends in the middle of an event. The browser tests show
// it on assistd's real streams (also rewritten to CRLF and cut short).
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseSSE, sse } from '../../playground/src/sse.js';

const enc = new TextEncoder();

async function collect(chunks) {
  const out = [];
  for await (const ev of parseSSE((async function* () { yield* chunks; })())) out.push(ev);
  return out;
}

// The stream as bytes cut at every position into two chunks, and byte by byte.
async function everySplit(text, expected) {
  const bytes = enc.encode(text);
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(await collect([bytes.slice(0, i), bytes.slice(i)]), expected, `split at byte ${i}`);
  }
  assert.deepEqual(await collect([...bytes].map((b) => Uint8Array.of(b))), expected, 'byte by byte');
}

const STREAM = [
  'event: thread.run.created',
  'data: {"id":"run_1","status":"queued"}',
  '',
  ': keep-alive',
  '',
  'event: thread.message.delta',
  'data: {"id":"msg_1","delta":{"content":[{"index":0,"type":"text","text":{"value":"x = 1 \u2014 done \ud83d\ude00"}}]}}',
  '',
  'data: first line',
  'data:second line',
  '',
  'event: done',
  'data: [DONE]',
  '',
  '',
];
const EVENTS = [
  { event: 'thread.run.created', data: { id: 'run_1', status: 'queued' } },
  { event: 'thread.message.delta', data: { id: 'msg_1', delta: { content: [{ index: 0, type: 'text', text: { value: 'x = 1 \u2014 done \ud83d\ude00' } }] } } },
  { event: 'message', data: 'first line\nsecond line' },
  { event: 'done', data: '[DONE]' },
];

test('LF line endings, cut anywhere (inside CRLF pairs and UTF-8 characters too)', async () => {
  await everySplit(STREAM.join('\n'), EVENTS);
});

test('CRLF line endings, cut anywhere', async () => {
  await everySplit(STREAM.join('\r\n'), EVENTS);
});

test('CR line endings, and all three mixed', async () => {
  await everySplit(STREAM.join('\r'), EVENTS);
  const mixed = STREAM.map((l, i) => l + ['\n', '\r\n', '\r'][i % 3]).join('');
  await everySplit(mixed, EVENTS);
});

test('an event the stream ends in the middle of is not dispatched', async () => {
  const whole = 'event: thread.run.in_progress\ndata: {"id":"run_1","status":"in_progress"}\n\n';
  const cut = 'event: thread.message.delta\ndata: {"id":"msg_1","delta":{"con';
  const one = [{ event: 'thread.run.in_progress', data: { id: 'run_1', status: 'in_progress' } }];
  assert.deepEqual(await collect([enc.encode(whole + cut)]), one);
  // A complete line, but no blank line after it: still unfinished.
  assert.deepEqual(await collect([enc.encode(`${whole}event: x\ndata: {"a":1}\n`)]), one);
  // A trailing CR does end the last line (and a blank CR line the event).
  assert.deepEqual(await collect([enc.encode(`${whole}data: {"a":1}\r\r`)]), [...one, { event: 'message', data: { a: 1 } }]);
  assert.deepEqual(await collect([]), []);
});

test('fields: no space after the colon, unknown fields, an event name reset after each event', async () => {
  const text = 'id: 7\nretry: 10\nevent:custom\ndata:{"n":1}\n\ndata: {"n":2}\n\nevent: empty\n\ndata: {"n":3}\n\n';
  assert.deepEqual(await collect([text]), [
    { event: 'custom', data: { n: 1 } },
    { event: 'message', data: { n: 2 } },
    { event: 'message', data: { n: 3 } }, // "event: empty" had no data: nothing dispatched, name reset
  ]);
});

test('sse() reads a fetch Response body', async () => {
  const body = new ReadableStream({
    start(c) {
      for (const piece of ['event: a\r', '\ndata: {"x":', '1}\r\n', '\r\nevent: b\ndata: [DONE]\n\n']) c.enqueue(enc.encode(piece));
      c.close();
    },
  });
  const out = [];
  for await (const ev of sse(new Response(body))) out.push(ev);
  assert.deepEqual(out, [{ event: 'a', data: { x: 1 } }, { event: 'b', data: '[DONE]' }]);
});

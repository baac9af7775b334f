// Server-Sent Events, parsed as the HTML standard says, with no DOM: lines
// end in CRLF, LF or CR (a CR at the end of a chunk waits for the next one,
// which may start with its LF); a blank line dispatches the event; "data"
// lines join with "\n"; comments (": keep-alive") are skipped; an event the
// stream ends in the middle of is dropped, never dispatched half-read.
// Bytes are decoded as a UTF-8 stream, so a character split across chunks
// survives. Each event is { event, data } with data parsed as JSON when it
// is JSON ("[DONE]" stays a string).

// chunks: an async iterable of Uint8Array (or string) pieces.
export async function* parseSSE(chunks) {
  const dec = new TextDecoder();
  const term = /\r\n|\r|\n/g;
  let buf = '';
  let event = '';
  let data = [];
  // One line; returns the event a blank line completes, or null.
  const line = (l) => {
    if (l === '') {
      const ev = data.length ? { event: event || 'message', data: parseData(data.join('\n')) } : null;
      event = '';
      data = [];
      return ev;
    }
    if (l.startsWith(':')) return null;
    const i = l.indexOf(':');
    const name = i < 0 ? l : l.slice(0, i);
    const val = i < 0 ? '' : l.slice(i + 1).replace(/^ /, '');
    if (name === 'event') event = val;
    else if (name === 'data') data.push(val);
    return null;
  };
  const lines = function* (final) {
    let pos = 0;
    term.lastIndex = 0;
    for (let m = term.exec(buf); m; m = term.exec(buf)) {
      if (!final && m[0] === '\r' && m.index === buf.length - 1) break; // maybe half a CRLF
      const ev = line(buf.slice(pos, m.index));
      pos = term.lastIndex;
      if (ev) yield ev;
    }
    buf = buf.slice(pos);
  };
  for await (const chunk of chunks) {
    buf += typeof chunk === 'string' ? chunk : dec.decode(chunk, { stream: true });
    yield* lines(false);
  }
  buf += dec.decode();
  yield* lines(true);
  // Whatever is left is an unterminated line of an unfinished event.
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text; // "[DONE]"
  }
}

// The events of a fetch Response's body.
export async function* sse(res) {
  const reader = res.body.getReader();
  const chunks = (async function* () {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  })();
  yield* parseSSE(chunks);
}

// search_perf.mjs -- ingestion throughput and keyword search latency of
// assistd's vector stores at scale, through the real HTTP API.
//
//   node bench/search_perf.mjs --bin build-ret/assistd --chunks 100000
//        [--data ../shared/data/nfcorpus] [--passes 3] [--modes bm25,auto] [--out FILE]
//
// Synthetic text: words drawn from NFCorpus's own word frequencies (every
// lower-cased word of corpus.jsonl, weighted by its count; a fixed-seed
// generator, so every run gets the same text) in sentences of 6-24 words
// and paragraphs of 3-8 sentences. Files of 1 MB are uploaded and attached
// in file batches with chunking_strategy static 100 tokens, no overlap, so a
// store of C chunks holds about C x 100 tokens (100,000 chunks: ~40 MB of
// text; the exact chunk count is read back from the database). The
// server's CPU time while indexing is reported too (MB per CPU-second):
// the machine is shared, and wall time includes waiting for the CPU. Ingestion rate = text bytes / (first batch created -> last file
// completed); chunks/s likewise.
//
// Latency: the 323 NFCorpus test queries (--queries N: the first N), one at
// a time, max_num_results 10,
// measured at the client (HTTP round trip on loopback), --passes times per
// mode; p50/p99 per pass and their medians are reported, and the server's
// CPU time per query (user + system from /proc, which load from other
// processes on the machine does not inflate as it does wall time).
//
// The plumbing (arguments, starting assistd, HTTP calls, uploads) is shared
// with nfcorpus.mjs in bench/lib.mjs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { api, isMain, log, parseArgs, pct, readJsonl, startAssistd, uploadFile, waitIndexed } from './lib.mjs';

const args = parseArgs();
const BIN = path.resolve(args.bin || 'build-ret/assistd');
const DATA = path.resolve(args.data || '../shared/data/nfcorpus');
const CHUNKS = Number(args.chunks || 100000);
const PASSES = Number(args.passes || 3);
const MODES = (args.modes || 'bm25,auto').split(',').filter((m) => m && m !== 'none');
// --chunking auto: the API's default chunking (800-token chunks, 400
// overlap) instead of static 100/0, for the ingestion rate users get by
// default; --mb N then sets the amount of text (default 40 MB).
const AUTO_CHUNKING = args.chunking === 'auto';
const NQUERIES = Number(args.queries || 0); // 0: all 323
const FILE_BYTES = 1 << 20;

const start = (dataDir, env = {}) => startAssistd(BIN, dataDir, env, 600000);

// A deterministic text generator over the corpus's word distribution.
function generator(corpus) {
  const counts = new Map();
  for (const d of corpus)
    for (const w of `${d.title} ${d.text}`.toLowerCase().match(/[a-z0-9]+(?:-[a-z0-9]+)*/g) || [])
      counts.set(w, (counts.get(w) || 0) + 1);
  const words = [...counts.keys()];
  const cum = new Float64Array(words.length);
  let acc = 0;
  words.forEach((w, i) => { acc += counts.get(w); cum[i] = acc; });
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const word = () => {
    const x = rnd() * acc;
    let lo = 0, hi = cum.length - 1;
    while (lo < hi) { const m = (lo + hi) >> 1; if (cum[m] < x) lo = m + 1; else hi = m; }
    return words[lo];
  };
  return (bytes) => {
    const parts = [];
    let n = 0;
    while (n < bytes) {
      const sents = 3 + Math.floor(rnd() * 6);
      const para = [];
      for (let s = 0; s < sents; s++) {
        const k = 6 + Math.floor(rnd() * 19);
        const w = [];
        for (let i = 0; i < k; i++) w.push(word());
        w[0] = w[0][0].toUpperCase() + w[0].slice(1);
        para.push(w.join(' ') + '.');
      }
      const p = para.join(' ');
      parts.push(p);
      n += p.length + 2;
    }
    return parts.join('\n\n');
  };
}

// CPU time (user + system) the server process has used, in ms: a measure
// of the work per query that other load on the machine does not inflate.
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10; // utime, stime in 100 Hz ticks
}

const median = (xs) => pct(xs, 50);

async function main() {
  const corpus = readJsonl(path.join(DATA, 'corpus.jsonl'));
  const qrels = new Set(readFileSync(path.join(DATA, 'qrels/test.tsv'), 'utf8').split('\n').slice(1).map((l) => l.split('\t')[0]).filter(Boolean));
  const queries = readJsonl(path.join(DATA, 'queries.jsonl')).filter((q) => qrels.has(q._id)).map((q) => q.text)
    .slice(0, NQUERIES || undefined);
  const gen = generator(corpus);
  const dataDir = args.dir ? path.resolve(args.dir) : mkdtempSync(path.join(tmpdir(), 'assistd-searchperf-'));
  chmodSync(dataDir, 0o711);
  const result = { target_chunks: AUTO_CHUNKING ? null : CHUNKS, chunking: AUTO_CHUNKING ? 'auto (800/400)' : 'static 100/0', modes: {} };
  try {
    let store = args.store;
    if (!store) {
      const s = await start(dataDir);
      const vs = await api(s, 'POST', '/vector_stores', { name: `synthetic-${CHUNKS}` });
      store = vs.id;
      // ~5 bytes a token: C chunks of 100 tokens ~ C * 500 bytes. Upload
      // first (not timed), then attach everything and time the indexing.
      const nfiles = AUTO_CHUNKING ? Number(args.mb || 40) : Math.max(1, Math.round((CHUNKS * 100 * 4) / FILE_BYTES));
      const ids = [];
      let bytes = 0;
      for (let f = 0; f < nfiles; f++) {
        const text = gen(FILE_BYTES);
        bytes += Buffer.byteLength(text);
        ids.push(await uploadFile(s, text, `synthetic-${f}.txt`));
      }
      log(`uploaded ${nfiles} files (${(bytes / 1e6).toFixed(1)} MB)`);
      const t0 = process.hrtime.bigint();
      const cpu0 = cpuMs(s.pid);
      for (let i = 0; i < ids.length; i += 500)
        await api(s, 'POST', `/vector_stores/${store}/file_batches`, {
          file_ids: ids.slice(i, i + 500),
          ...(AUTO_CHUNKING ? {} : { chunking_strategy: { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 0 } } }),
        });
      await waitIndexed(s, store, ids.length, 100);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpuSeconds = (cpuMs(s.pid) - cpu0) / 1000;
      await s.stop();
      // The chunk count, read from the database file itself.
      const { execFileSync } = await import('node:child_process');
      let chunks = NaN;
      try {
        chunks = Number(execFileSync('python3', ['-c', `import sqlite3;print(sqlite3.connect("file:${dataDir}/assistd.db?mode=ro", uri=True).execute("select count(*) from chunks").fetchone()[0])`]).toString());
      } catch { /* no python: leave NaN */ }
      result.ingest = { files: nfiles, bytes, seconds, mb_per_s: bytes / 1e6 / seconds, chunks, chunks_per_s: chunks / seconds,
        server_cpu_seconds: cpuSeconds, mb_per_cpu_s: bytes / 1e6 / cpuSeconds };
      log(`indexed ${(bytes / 1e6).toFixed(1)} MB, ${chunks} chunks in ${seconds.toFixed(1)} s: ${(bytes / 1e6 / seconds).toFixed(2)} MB/s, ${(chunks / seconds).toFixed(0)} chunks/s; server CPU ${cpuSeconds.toFixed(1)} s (${(bytes / 1e6 / cpuSeconds).toFixed(2)} MB per CPU-second)`);
    }
    result.store = store;
    for (const mode of MODES) {
      const s = await start(dataDir, { ASSISTD_SEARCH_RANKER: mode });
      await api(s, 'POST', `/vector_stores/${store}/search`, { query: 'warm up the page cache', max_num_results: 10 });
      const passes = [];
      for (let p = 0; p < PASSES; p++) {
        const lat = [];
        const cpu0 = cpuMs(s.pid);
        for (const q of queries) {
          const t0 = process.hrtime.bigint();
          await api(s, 'POST', `/vector_stores/${store}/search`, { query: q, max_num_results: 10 });
          lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        passes.push({ p50: pct(lat, 50), p99: pct(lat, 99), mean: lat.reduce((a, b) => a + b, 0) / lat.length,
          server_cpu_ms_per_query: (cpuMs(s.pid) - cpu0) / lat.length });
      }
      await s.stop();
      result.modes[mode] = { passes, p50_ms: median(passes.map((x) => x.p50)), p99_ms: median(passes.map((x) => x.p99)),
        cpu_ms_per_query: median(passes.map((x) => x.server_cpu_ms_per_query)) };
      log(`${mode}: p50 ${result.modes[mode].p50_ms.toFixed(2)} ms, p99 ${result.modes[mode].p99_ms.toFixed(2)} ms, server CPU ${result.modes[mode].cpu_ms_per_query.toFixed(2)} ms/query`);
    }
  } finally {
    if (!args.dir) rmSync(dataDir, { recursive: true, force: true });
  }
  const json = JSON.stringify(result, null, 2);
  if (args.out) writeFileSync(args.out, json);
  process.stdout.write(json + '\n');
}

if (isMain(import.meta)) await main();

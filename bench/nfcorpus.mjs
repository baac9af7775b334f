// nfcorpus.mjs -- retrieval quality of assistd's file_search on BEIR NFCorpus,
// measured through the real HTTP API of a real assistd binary.
//
//   node bench/nfcorpus.mjs --bin build-ret/assistd [--data ../shared/data/nfcorpus]
//        [--modes bm25,auto] [--noise 20000] [--out results.json] [--perquery FILE]
//
// What it does:
//   1. starts assistd on a fresh data directory (no embeddings configured);
//   2. uploads every corpus document as a file "<doc id>.txt" (title, blank
//      line, text) with POST /v1/files, and attaches them to one vector store
//      with file batches of 500 (POST /v1/vector_stores/{id}/file_batches),
//      polling until every file is indexed; the wall time gives the
//      ingestion rate of this corpus;
//   3. with --noise N, adds a second vector store of N synthetic chunks (words
//      drawn uniformly from the corpus vocabulary): a store that shares the
//      database but must not change the first store's ranking;
//   4. for every mode (the ASSISTD_SEARCH_RANKER value the server is restarted
//      with: "bm25" = per-store BM25, "auto" = the default ranker, BM25 + RM3;
//      "fts5" = FTS5's bm25(), only on binaries before the own keyword index,
//      which bench/search.sh builds for its same-run baseline),
//      runs every test query through POST /v1/vector_stores/{id}/search with
//      max_num_results 50 (the API's maximum) and scores the ranking.
//
// Scoring is trec_eval's (as pytrec_eval, hence BEIR, computes it): the run
// of a query maps doc id -> score (a document cut into several chunks gets
// its best chunk's score), ordered by score descending, ties by doc id
// descending; nDCG@10 uses the graded qrels as gains with a log2(rank + 1)
// discount, the ideal DCG from the qrels' own grades; recall@k counts the
// judged-relevant (grade > 0) documents in the first k. Every query of the
// qrels counts (a query with no results scores 0).
//
// The plumbing (arguments, starting assistd, HTTP calls, uploads) is shared
// with search_perf.mjs in bench/lib.mjs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { api, isMain, log, parseArgs, pct, readJsonl, startAssistd, uploadFile, waitIndexed } from './lib.mjs';

const args = parseArgs();
const BIN = path.resolve(args.bin || 'build-ret/assistd');
const DATA = path.resolve(args.data || '../shared/data/nfcorpus');
const MODES = (args.modes || 'bm25,auto').split(',');
const NOISE = Number(args.noise || 0);

const start = (dataDir, env = {}) => startAssistd(BIN, dataDir, env, 60000);

async function pool(items, n, fn) {
  let i = 0;
  const out = new Array(items.length);
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) { const k = i++; out[k] = await fn(items[k], k); }
  }));
  return out;
}

// Uploads docs ([{name, text}]) as files and attaches them to a new store;
// returns {store, seconds, bytes}.
async function ingest(s, name, docs) {
  const ids = await pool(docs, 4, (d) => uploadFile(s, d.text, d.name));
  const vs = await api(s, 'POST', '/vector_stores', { name });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ids.length; i += 500)
    await api(s, 'POST', `/vector_stores/${vs.id}/file_batches`, { file_ids: ids.slice(i, i + 500) });
  await waitIndexed(s, vs.id, docs.length, 50, 'ingest: ');
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { store: vs.id, seconds, bytes: docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0) };
}

// trec_eval's ordering: score descending, then doc id descending.
function ranked(run) {
  return Object.entries(run).sort((a, b) => (b[1] - a[1]) || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0)).map((e) => e[0]);
}

export function ndcgAt(run, rels, k) {
  const docs = ranked(run).slice(0, k);
  let dcg = 0;
  docs.forEach((d, i) => { dcg += (rels[d] || 0) / Math.log2(i + 2); });
  const ideal = Object.values(rels).filter((g) => g > 0).sort((a, b) => b - a).slice(0, k);
  let idcg = 0;
  ideal.forEach((g, i) => { idcg += g / Math.log2(i + 2); });
  return idcg > 0 ? dcg / idcg : 0;
}

export function recallAt(run, rels, k) {
  const relevant = Object.keys(rels).filter((d) => rels[d] > 0);
  if (!relevant.length) return 0;
  const top = new Set(ranked(run).slice(0, k));
  return relevant.filter((d) => top.has(d)).length / relevant.length;
}

async function evaluate(s, store, queries, qrels) {
  const qids = Object.keys(qrels);
  const lat = [];
  const per = {};
  await pool(qids, 2, async (qid) => {
    const t0 = process.hrtime.bigint();
    const page = await api(s, 'POST', `/vector_stores/${store}/search`, { query: queries[qid], max_num_results: 50 });
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const run = {};
    for (const h of page.data) {
      const doc = h.filename.replace(/\.txt$/, '');
      if (!(doc in run) || run[doc] < h.score) run[doc] = h.score;
    }
    per[qid] = {
      ndcg10: ndcgAt(run, qrels[qid], 10),
      recall10: recallAt(run, qrels[qid], 10),
      recall50: recallAt(run, qrels[qid], 50),
      empty: page.data.length === 0,
    };
  });
  const mean = (f) => qids.reduce((a, q) => a + per[q][f], 0) / qids.length;
  // Two folds by query order (odd/even position): figures on each half, for
  // checking that a change helps on queries it was not looked at with.
  const fold = (r) => { const q = qids.filter((_, i) => i % 2 === r); return q.reduce((a, x) => a + per[x].ndcg10, 0) / q.length; };
  return {
    queries: qids.length,
    empty: qids.filter((q) => per[q].empty).length,
    ndcg10: mean('ndcg10'),
    recall10: mean('recall10'),
    recall50: mean('recall50'),
    ndcg10_fold0: fold(0),
    ndcg10_fold1: fold(1),
    latency_ms: { p50: pct(lat, 50), p99: pct(lat, 99) },
    per,
  };
}

function noiseDocs(corpus, n) {
  // Words of the corpus, each type once (uniform over the vocabulary, so
  // rare corpus words become common here); 200-word documents.
  const vocab = [...new Set(corpus.flatMap((d) => `${d.title} ${d.text}`.toLowerCase().match(/[a-z]{3,}/g) || []))];
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const docs = [];
  for (let i = 0; i < n; i++) {
    const w = [];
    for (let j = 0; j < 200; j++) w.push(vocab[Math.floor(rnd() * vocab.length)]);
    docs.push({ name: `noise-${i}.txt`, text: w.join(' ') });
  }
  return docs;
}

async function main() {
  const corpus = readJsonl(path.join(DATA, 'corpus.jsonl'));
  const queries = Object.fromEntries(readJsonl(path.join(DATA, 'queries.jsonl')).map((q) => [q._id, q.text]));
  const qrels = {};
  for (const line of readFileSync(path.join(DATA, 'qrels/test.tsv'), 'utf8').split('\n').slice(1)) {
    const [q, d, g] = line.split('\t');
    if (!q) continue;
    (qrels[q] ||= {})[d] = Number(g);
  }
  const dataDir = args.dir ? path.resolve(args.dir) : mkdtempSync(path.join(tmpdir(), 'assistd-nfcorpus-'));
  chmodSync(dataDir, 0o711);
  const result = { corpus_docs: corpus.length, modes: {} };
  let store = args.store;
  try {
    if (!store) {
      const s = await start(dataDir);
      const docs = corpus.map((d) => ({ name: `${d._id}.txt`, text: `${d.title}\n\n${d.text}` }));
      const ing = await ingest(s, 'nfcorpus', docs);
      store = ing.store;
      result.ingest = { seconds: ing.seconds, bytes: ing.bytes, mb_per_s: ing.bytes / 1e6 / ing.seconds, docs_per_s: docs.length / ing.seconds };
      log(`ingested ${docs.length} docs (${(ing.bytes / 1e6).toFixed(2)} MB) in ${ing.seconds.toFixed(1)} s`);
      await s.stop();
    }
    result.store = store;
    const evalAll = async (tag) => {
      for (const mode of MODES) {
        const s = await start(dataDir, { ASSISTD_SEARCH_RANKER: mode });
        const r = await evaluate(s, store, queries, qrels);
        await s.stop();
        if (args.perquery) writeFileSync(`${args.perquery}.${tag}.${mode}.json`, JSON.stringify(r.per));
        delete r.per;
        result.modes[`${tag}${mode}`] = r;
        log(`${tag}${mode}: nDCG@10 ${r.ndcg10.toFixed(4)} recall@50 ${r.recall50.toFixed(4)} (folds ${r.ndcg10_fold0.toFixed(4)}/${r.ndcg10_fold1.toFixed(4)}) p50 ${r.latency_ms.p50.toFixed(1)} ms`);
      }
    };
    await evalAll('');
    if (NOISE > 0) {
      const s = await start(dataDir);
      const ing = await ingest(s, 'noise', noiseDocs(corpus, NOISE));
      await s.stop();
      log(`added a second store of ${NOISE} synthetic docs in ${ing.seconds.toFixed(1)} s`);
      await evalAll('with-noise-store:');
    }
  } finally {
    if (!args.dir) rmSync(dataDir, { recursive: true, force: true });
  }
  const json = JSON.stringify(result, null, 2);
  if (args.out) writeFileSync(args.out, json);
  process.stdout.write(json + '\n');
}

if (isMain(import.meta)) await main();

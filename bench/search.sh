#!/usr/bin/env bash
# search.sh -- file_search benchmarks (make bench-search): retrieval quality
# on BEIR NFCorpus (bench/nfcorpus.mjs) and ingestion throughput / keyword
# search latency at 100,000 and 1,000,000 chunks (bench/search_perf.mjs),
# each against the release binary, with per-store BM25 without feedback
# (ASSISTD_SEARCH_RANKER=bm25) and the default ranker (auto: BM25 + RM3),
# both on assistd's own keyword index.
#
# Same-run baseline: the ranker before the own index (SQLite FTS5, commit
# $BASE_COMMIT, default 1f53ddc) is built from git into a temporary
# directory (`git archive`, which leaves the repository's state alone) and
# measured in the same run on the same data; the ratios new / baseline are
# printed at the end. BASE=0 skips it.
# Results (JSON) go to $OUT (default $BUILD/bench-search); the file_search
# section of bench/RESULTS.md is written by hand from them.
#   RUNS      ingestion/latency repetitions at 100k chunks (default 3)
#   BIG       1 to include the 1,000,000-chunk store (default 1)
#   BIG_QUERIES  queries timed at 1M chunks (default 100)
#   BASE_BIG  1 to measure the baseline at 1M chunks too (default 1; it
#             ingests at under 2 MB/s, so this alone takes several minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-$BUILD/assistd}
DATA=${DATA:-../shared/data/nfcorpus}
OUT=${OUT:-$BUILD/bench-search}
RUNS=${RUNS:-3}
BIG=${BIG:-1}
BIG_QUERIES=${BIG_QUERIES:-100}
BASE=${BASE:-1}
BASE_BIG=${BASE_BIG:-1}
BASE_COMMIT=${BASE_COMMIT:-1f53ddc}
mkdir -p "$OUT"
[ -x "$BIN" ] || make BUILD="$BUILD" all
[ -f "$DATA/corpus.jsonl" ] || { echo "search.sh: NFCorpus not found in $DATA" >&2; exit 1; }

BASE_BIN=
if [ "$BASE" = 1 ]; then
  BASE_DIR=$(mktemp -d /tmp/assistd-base-XXXXXX)
  trap 'rm -rf "$BASE_DIR"' EXIT
  echo "== building the baseline ($BASE_COMMIT, FTS5 ranker) in $BASE_DIR"
  git archive "$BASE_COMMIT" | tar -x -C "$BASE_DIR"
  make -C "$BASE_DIR" BUILD=build -j2 build/assistd >"$OUT/base-build.log" 2>&1
  BASE_BIN="$BASE_DIR/build/assistd"
fi

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== NFCorpus quality (plus a second store of 5,000 synthetic documents in the same database)"
node bench/nfcorpus.mjs --bin "$BIN" --data "$DATA" --modes bm25,auto --noise 5000 --out "$OUT/nfcorpus.json" >/dev/null
[ -z "$BASE_BIN" ] || node bench/nfcorpus.mjs --bin "$BASE_BIN" --data "$DATA" --modes fts5,auto --noise 5000 \
  --out "$OUT/nfcorpus-base.json" >/dev/null
for r in $(seq 1 "$RUNS"); do
  echo "== ingestion with the default chunking (800/400), 40 MB, run $r"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunking auto --mb 40 --modes none \
    --out "$OUT/ingest-auto-$r.json" >/dev/null
  [ -z "$BASE_BIN" ] || node bench/search_perf.mjs --bin "$BASE_BIN" --data "$DATA" --chunking auto --mb 40 \
    --modes none --out "$OUT/ingest-auto-base-$r.json" >/dev/null
done
for r in $(seq 1 "$RUNS"); do
  echo "== 100,000 chunks, run $r"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunks 100000 --passes 3 --modes bm25,auto \
    --out "$OUT/perf-100k-$r.json" >/dev/null
  [ -z "$BASE_BIN" ] || node bench/search_perf.mjs --bin "$BASE_BIN" --data "$DATA" --chunks 100000 --passes 3 \
    --modes fts5,bm25,auto --out "$OUT/perf-100k-base-$r.json" >/dev/null
done
if [ "$BIG" = 1 ]; then
  echo "== 1,000,000 chunks"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunks 1000000 --passes 1 \
    --queries "$BIG_QUERIES" --modes bm25,auto --out "$OUT/perf-1m.json" >/dev/null
  [ -z "$BASE_BIN" ] || [ "$BASE_BIG" != 1 ] || node bench/search_perf.mjs --bin "$BASE_BIN" --data "$DATA" --chunks 1000000 --passes 1 \
    --queries "$BIG_QUERIES" --modes fts5,auto --out "$OUT/perf-1m-base.json" >/dev/null
fi
if [ -n "$BASE_BIN" ]; then
  echo "== new / baseline (same run)"
  OUT="$OUT" node -e '
    const fs = require("fs"), out = process.env.OUT;
    const load = (f) => { try { return JSON.parse(fs.readFileSync(`${out}/${f}`, "utf8")); } catch { return null; } };
    const med = (a) => { a = a.filter((x) => x != null).sort((x, y) => x - y); return a.length ? a[a.length >> 1] : NaN; };
    const pick = (files, get) => med(files.map(load).filter(Boolean).map(get));
    const runs = fs.readdirSync(out);
    const f = (re) => runs.filter((n) => re.test(n));
    const q = load("nfcorpus.json"), qb = load("nfcorpus-base.json");
    if (q && qb) console.log(`NFCorpus nDCG@10 auto: ${q.modes.auto.ndcg10.toFixed(4)} vs ${qb.modes.auto.ndcg10.toFixed(4)} (fts5 ${qb.modes.fts5.ndcg10.toFixed(4)})`);
    const ing = (files) => pick(files, (j) => j.ingest && j.ingest.mb_per_s);
    const a = ing(f(/^ingest-auto-\d+\.json$/)), b = ing(f(/^ingest-auto-base-\d+\.json$/));
    console.log(`ingest 800/400: ${a.toFixed(2)} vs ${b.toFixed(2)} MB/s (x${(a / b).toFixed(2)})`);
    for (const mode of ["bm25", "auto"]) {
      const p = (files) => pick(files, (j) => j.modes && j.modes[mode] && j.modes[mode].p50_ms);
      const n = p(f(/^perf-100k-\d+\.json$/)), o = p(f(/^perf-100k-base-\d+\.json$/));
      console.log(`100k ${mode} p50: ${n.toFixed(2)} vs ${o.toFixed(2)} ms (x${(o / n).toFixed(1)} faster)`);
    }
  ' || true
fi
echo "== results in $OUT"

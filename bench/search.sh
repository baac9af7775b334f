#!/usr/bin/env bash
# search.sh -- file_search benchmarks (make bench-search): retrieval quality
# on BEIR NFCorpus (bench/nfcorpus.mjs) and ingestion throughput / keyword
# search latency at 100,000 and 1,000,000 chunks (bench/search_perf.mjs),
# each against the release binary, comparing in the same run the baseline
# ranker (FTS5's bm25(), ASSISTD_SEARCH_RANKER=fts5), per-store BM25 without
# feedback (=bm25) and the default ranker (auto: per-store BM25 + RM3).
# Results (JSON) go to $OUT (default $BUILD/bench-search); the file_search
# section of bench/RESULTS.md is written by hand from them.
#   RUNS      ingestion/latency repetitions at 100k chunks (default 3)
#   BIG       1 to include the 1,000,000-chunk store (default 1)
#   BIG_QUERIES  queries timed at 1M chunks (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=${BIN:-$BUILD/assistd}
DATA=${DATA:-../shared/data/nfcorpus}
OUT=${OUT:-$BUILD/bench-search}
RUNS=${RUNS:-3}
BIG=${BIG:-1}
BIG_QUERIES=${BIG_QUERIES:-100}
mkdir -p "$OUT"
[ -x "$BIN" ] || make BUILD="$BUILD" all
[ -f "$DATA/corpus.jsonl" ] || { echo "search.sh: NFCorpus not found in $DATA" >&2; exit 1; }
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== NFCorpus quality (plus a second store of 5,000 synthetic documents in the same database)"
node bench/nfcorpus.mjs --bin "$BIN" --data "$DATA" --modes fts5,bm25,auto --noise 5000 --out "$OUT/nfcorpus.json" >/dev/null
for r in $(seq 1 "$RUNS"); do
  echo "== ingestion with the default chunking (800/400), 40 MB, run $r"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunking auto --mb 40 --modes none \
    --out "$OUT/ingest-auto-$r.json" >/dev/null
done
for r in $(seq 1 "$RUNS"); do
  echo "== 100,000 chunks, run $r"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunks 100000 --passes 3 --modes fts5,bm25,auto \
    --out "$OUT/perf-100k-$r.json" >/dev/null
done
if [ "$BIG" = 1 ]; then
  echo "== 1,000,000 chunks"
  node bench/search_perf.mjs --bin "$BIN" --data "$DATA" --chunks 1000000 --passes 1 \
    --queries "$BIG_QUERIES" --modes fts5,bm25,auto --out "$OUT/perf-1m.json" >/dev/null
fi
echo "== results in $OUT"

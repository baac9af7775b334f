#!/usr/bin/env bash
# bench/sandbox.sh -- the code_interpreter benchmark (issue #5, "Performance").
#
# Runs bench/sandbox_bench.c (built by `make bench-sandbox` against the
# release objects; it drives src/sandbox directly: cold session starts with
# and without a spare interpreter in the same run, warm print(1) round trips,
# memory per idle session) and writes its section of bench/RESULTS.md
# between the sandbox.sh markers (everything else in the file is kept).
#
# Environment (optional): SBX_COLD_RUNS=7 SBX_WARM_RUNS=500 SBX_MEM_SESSIONS=4
# SBX_OUT=bench/RESULTS.md.
# Usage: bench/sandbox.sh PATH-TO-sandbox_bench   (or: make bench-sandbox)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:?usage: bench/sandbox.sh PATH-TO-sandbox_bench}
OUT=${SBX_OUT:-$REPO/bench/RESULTS.md}
BEGIN_MARK='<!-- bench/sandbox.sh section: begin (rewritten by bench/sandbox.sh; everything outside it is kept) -->'
END_MARK='<!-- bench/sandbox.sh section: end -->'

TMP=$(mktemp -d /tmp/assistd-sbx-bench-XXXXXX)
chmod 0711 "$TMP" # sessions run under their own unprivileged uids when root
trap 'rm -rf "$TMP"' EXIT

load_before=$(cut -d' ' -f1 /proc/loadavg)
t0=$(date +%s)
"$BIN" "$TMP" "${SBX_COLD_RUNS:-7}" "${SBX_WARM_RUNS:-500}" "${SBX_MEM_SESSIONS:-4}" >"$TMP/table.md"
t1=$(date +%s)
load_after=$(cut -d' ' -f1 /proc/loadavg)
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)

{
  echo "$BEGIN_MARK"
  echo
  echo "## code_interpreter: sessions, spares, memory (bench/sandbox.sh)"
  echo
  echo "Written by \`bench/sandbox.sh\` (\`make bench-sandbox\`) on $(date -u '+%Y-%m-%d %H:%M') UTC in $((t1 - t0)) s."
  echo
  echo "**Machine.** nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); RAM $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME"); $(python3 --version); bubblewrap $(bwrap --version | cut -d' ' -f2). assistd commit $commit${dirty:+ (with uncommitted changes in the work tree)}, release objects (-O2 -g). 1-minute load average $load_before before, $load_after after; the machine is shared, nothing is pinned; run as $(id -un) (sessions under per-slot uids when root)."
  echo
  echo "**Setup.** \`bench/sandbox_bench.c\` calls \`ad_sandbox_exec\` directly with the server's default limits (2 GiB address space, 64 processes, 32 sessions, 120 s). Cold start = wall time of a new session's first \`ad_sandbox_exec\` of \`import numpy as np, pandas as pd, matplotlib.pyplot as plt; print(1)\`, alternating between a sandbox with \`--sandbox-spares 0\` (the baseline: bwrap, Python and the imports on the critical path) and one with \`--sandbox-spares 1\` (it waits for \`assistd_sandbox_spares_ready\` = 1 before each new session; each session is ended after its first result). Warm = \`print(1)\` on a live session. Memory = Pss/Rss from \`/proc/PID/smaps_rollup\` summed over a session's processes (bwrap, the sandbox's init, python3), with ${SBX_MEM_SESSIONS:-4} sessions live at once."
  echo
  cat "$TMP/table.md"
  echo
  echo "$END_MARK"
} >"$TMP/section"

if grep -qF "$BEGIN_MARK" "$OUT"; then
  awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v sec="$TMP/section" '
    $0 == b { while ((getline l < sec) > 0) print l; skip = 1; next }
    $0 == e { skip = 0; next }
    !skip { print }' "$OUT" >"$TMP/out"
else
  { cat "$OUT"; echo; cat "$TMP/section"; } >"$TMP/out"
fi
cat "$TMP/out" >"$OUT"
cat "$TMP/section"

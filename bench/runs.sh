#!/usr/bin/env bash
# bench/runs.sh -- the runs benchmark (issue #3, "Performance"): streaming
# runs through assistd against a scripted chat-completions upstream, with the
# same upstream measured directly as the baseline, in one run.
#
# Three processes on this machine: bench/upstream_emu.c (the scripted
# upstream, one epoll thread), assistd (release build, fresh data dir for
# every measurement, backends file pointing at the emulator) and
# bench/runs_load.c (the load client, one epoll thread). The two bench
# programs are built here with `cc -O2` into $BENCH_TOOLS (not part of the
# server build). Measurements:
#   1. ttft     time to first token (first thread.message.delta) through
#               assistd vs. the first content chunk straight from the
#               emulator, on kept-alive connections, alternating between
#               the two targets batch by batch; at concurrency 1 and 16.
#               The upstream sends its first token at once, so the
#               difference is what assistd adds (creating the run, its DB
#               writes, building the prompt, the model call, relaying).
#   2. lowc     16 concurrent streams: CPU time per relayed token at low
#               concurrency.
#   3. streams  N concurrent streaming runs (ramped with at most 32
#               creations in flight), the upstream sending one token every
#               RUNS_INTERVAL_MS for RUNS_TOKENS tokens; per N: did every
#               stream complete with every token and no gap over the stall
#               threshold, inter-token gaps, assistd RSS and memory per
#               active run, CPU per relayed token in the window where all N
#               stream at once.
# Every measurement runs RUNS_REPEAT times (fresh assistd each time); the
# report gives medians and writes its own section of bench/RESULTS.md
# (between the runs.sh markers; everything else in the file is kept).
#
# Environment (all optional):
#   BENCH_ASSISTD=PATH        assistd binary (default: make build/assistd)
#   BENCH_TOOLS=DIR           where the bench programs are built (build/bench)
#   RUNS_REPEAT=3             repetitions of every measurement
#   RUNS_TTFT_SAMPLES=300     samples per target at concurrency 1 (x2 at 16)
#   RUNS_NS="500 1000 2000 5000"  concurrency levels ("" for none)
#   RUNS_TOKENS=150           tokens per stream in the concurrency test
#   RUNS_INTERVAL_MS=100      ms between tokens in the concurrency test
#   RUNS_HOLD="5000:250:100"  extra N:INTERVAL_MS:TOKENS cases ("" for none):
#                             the same N at a lower token rate per stream
#                             separates holding streams from token throughput
#   RUNS_STALL_MS=1000        a gap longer than this means a stream stalled
#   RUNS_THREADS=2            assistd --threads
#   RUNS_OUT=bench/RESULTS.md report (only written when every measurement ran)
#
# Usage: bench/runs.sh   (or: make bench-runs)   -- from any directory.
# Exit status 0 when every measurement ran (targets missed are reported, not
# failures); 1 on failure. Every process it started is stopped and its temp
# directory removed, also on INT/TERM.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${BENCH_TOOLS:-$REPO/build/bench}
REPEAT=${RUNS_REPEAT:-3}
TTFT_SAMPLES=${RUNS_TTFT_SAMPLES:-300}
NS=${RUNS_NS-500 1000 2000 5000}
TOKENS=${RUNS_TOKENS:-150}
INTERVAL=${RUNS_INTERVAL_MS:-100}
STALL=${RUNS_STALL_MS:-1000}
SRV_THREADS=${RUNS_THREADS:-2}
OUT=${RUNS_OUT:-$REPO/bench/RESULTS.md}
KEY=bench-key-$$
BEGIN_MARK='<!-- bench/runs.sh section: begin (rewritten by bench/runs.sh; everything outside it is kept) -->'
END_MARK='<!-- bench/runs.sh section: end -->'

for v in REPEAT TTFT_SAMPLES TOKENS INTERVAL STALL SRV_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || { echo "runs.sh: $v must be a positive whole number" >&2; exit 2; }
done
for n in $NS; do [[ $n =~ ^[0-9]+$ ]] || { echo "runs.sh: RUNS_NS must be numbers" >&2; exit 2; }; done
HOLD=${RUNS_HOLD-5000:250:100}
CASES=() # N:INTERVAL:TOKENS
for n in $NS; do CASES+=("$n:$INTERVAL:$TOKENS"); done
for h in $HOLD; do
    [[ $h =~ ^[0-9]+:[0-9]+:[0-9]+$ ]] || { echo "runs.sh: RUNS_HOLD entries are N:INTERVAL_MS:TOKENS" >&2; exit 2; }
    CASES+=("$h")
done

log() { printf 'runs.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- binaries -----------------------------------------------------------------

if [[ ${BENCH_ASSISTD:-} ]]; then
    ASSISTD=$BENCH_ASSISTD
    [[ -x $ASSISTD ]] || die "BENCH_ASSISTD=$ASSISTD is not an executable"
else
    log "building the release binary"
    make -C "$REPO" --no-print-directory build/assistd >&2
    ASSISTD=$REPO/build/assistd
fi
mkdir -p "$TOOLS"
for t in upstream_emu runs_load; do
    if [[ ! -x $TOOLS/$t || $REPO/bench/$t.c -nt $TOOLS/$t ]]; then
        log "building $TOOLS/$t"
        cc -std=c17 -O2 -Wall -Wextra -Werror -o "$TOOLS/$t" "$REPO/bench/$t.c"
    fi
done

# Three processes hold one descriptor per stream (assistd two): raise the limit.
HARD=$(ulimit -Hn)
if [[ $HARD == unlimited ]] || ((HARD >= 65536)); then ulimit -n 65536; else ulimit -n "$HARD"; fi
NOFILE=$(ulimit -n)
for c in "${CASES[@]}"; do
    n=${c%%:*}
    ((2 * n + 256 <= NOFILE)) || die "N=$n needs about $((2 * n + 256)) descriptors; ulimit -n is $NOFILE"
done

# ---- processes ------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/assistd-runs-bench.XXXXXX")
EMU_PID=
ASSISTD_PID=
stop_pid() { # PID: TERM, wait up to 10 s, then KILL
    local pid=$1
    [[ $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$ASSISTD_PID"
    stop_pid "$EMU_PID"
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() { # LOGFILE PID -> port
    local port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$1" | head -1)
        [[ $port ]] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "$port"
}

"$TOOLS/upstream_emu" --port 0 >"$TMP/emu.log" 2>&1 &
EMU_PID=$!
EPORT=$(wait_port "$TMP/emu.log" "$EMU_PID")
[[ $EPORT ]] || { cat "$TMP/emu.log" >&2; die "the emulator did not start"; }
cat >"$TMP/backends.json" <<EOF
{"backends": [{"name": "emu", "kind": "openai", "base_url": "http://127.0.0.1:$EPORT/v1",
               "timeout_idle_ms": 120000, "max_retries": 0}],
 "models": [{"id": "bench-model", "backend": "emu", "upstream_model": "bench-model"}]}
EOF
ASSISTD_CMD="ASSISTD_CONFIG=backends.json assistd --listen 127.0.0.1:0 --data-dir TMP --api-keys KEY --access-log false --threads $SRV_THREADS --max-connections 20000"

start_assistd() {
    rm -rf "$TMP/data"
    mkdir -p "$TMP/data"
    ASSISTD_CONFIG=$TMP/backends.json "$ASSISTD" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
        --api-keys "$KEY" --access-log false --threads "$SRV_THREADS" --max-connections 20000 \
        >"$TMP/assistd.log" 2>&1 &
    ASSISTD_PID=$!
    APORT=$(wait_port "$TMP/assistd.log" "$ASSISTD_PID")
    [[ $APORT ]] || { cat "$TMP/assistd.log" >&2; die "assistd did not start"; }
}
stop_assistd() {
    stop_pid "$ASSISTD_PID"
    ASSISTD_PID=
}

# run_load NAME ARGS... : one measurement on a fresh assistd -> $TMP/res/NAME
mkdir -p "$TMP/res"
run_load() {
    local name=$1
    shift
    start_assistd
    if ! "$TOOLS/runs_load" "$@" --assistd "127.0.0.1:$APORT" --emu "127.0.0.1:$EPORT" \
        --key "$KEY" --pid "$ASSISTD_PID" --emu-pid "$EMU_PID" >"$TMP/res/$name" 2>"$TMP/res/$name.err"; then
        cat "$TMP/res/$name.err" >&2
        die "runs_load $name failed"
    fi
    kill -0 "$ASSISTD_PID" 2>/dev/null || { tail -20 "$TMP/assistd.log" >&2; die "assistd died during $name"; }
    stop_assistd
    grep -v '^runs_load: setup' "$TMP/res/$name.err" | head -5 | sed "s/^/runs.sh: [$name] /" >&2 || true
}
val() { sed -n "s/^$2=//p" "$TMP/res/$1"; } # FILE KEY
median() { sort -g | awk '{a[NR] = $1} END { if (!NR) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { # KEY NAME-PREFIX -> median over the repeats
    local r
    for ((r = 1; r <= REPEAT; r++)); do val "$2-$r" "$1"; done | median
}
rng() { # KEY NAME-PREFIX -> min–max
    local r
    for ((r = 1; r <= REPEAT; r++)); do val "$2-$r" "$1"; done | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'
}
f() { awk -v v="$1" -v fmt="$2" 'BEGIN { printf fmt, v }'; }

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
T_START=$(date +%s)

# ---- 1. TTFT ----------------------------------------------------------------------
TTFT_CMD="runs_load ttft --samples S --conc C --tokens 5 --interval-ms 1"
for ((r = 1; r <= REPEAT; r++)); do
    for c in 1 16; do
        s=$TTFT_SAMPLES
        ((c > 1)) && s=$((TTFT_SAMPLES * 2))
        log "ttft concurrency $c, repeat $r/$REPEAT ($s samples per target)"
        run_load "ttft$c-$r" ttft --samples "$s" --conc "$c" --tokens 5 --interval-ms 1
        log "  overhead p50 $(val "ttft$c-$r" overhead_p50_ms) ms, p99 $(val "ttft$c-$r" overhead_p99_ms) ms"
    done
done

# ---- 2. CPU per token at low concurrency --------------------------------------------
for ((r = 1; r <= REPEAT; r++)); do
    log "low concurrency (16 streams x 300 tokens, 10 ms apart), repeat $r/$REPEAT"
    run_load "lowc-$r" streams --n 16 --tokens 300 --interval-ms 10 --stall-ms "$STALL" --deadline 120
    log "  $(val "lowc-$r" cpu_per_token_steady_us) us CPU per token"
done

# ---- 3. concurrency ---------------------------------------------------------------
for c in "${CASES[@]}"; do
    IFS=: read -r n iv tk <<<"$c"
    secs=$((tk * iv / 1000))
    for ((r = 1; r <= REPEAT; r++)); do
        p=n$n-i$iv
        log "streams N=$n, repeat $r/$REPEAT ($tk tokens, one per $iv ms: ${secs}s per stream)"
        run_load "$p-$r" streams --n "$n" --tokens "$tk" --interval-ms "$iv" \
            --stall-ms "$STALL" --deadline $((secs + 240))
        log "  ok $(val "$p-$r" ok)/$n, errors $(val "$p-$r" errors), stalled $(val "$p-$r" stalled), peak active $(val "$p-$r" peak_active), gap p99 $(val "$p-$r" gap_p99_ms) ms, $(val "$p-$r" mem_per_run_kb) KiB/run, $(val "$p-$r" cpu_per_token_steady_us) us/token"
    done
done
T_END=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)

# ---- report -------------------------------------------------------------------------
TTFT_TABLE="| concurrency | samples per target | direct p50 / p99 | assistd p50 / p99 | **overhead p50** (target < 2 ms) | **overhead p99** (target < 10 ms) | ratio assistd/direct p50 | assistd: run.created / in_progress / message.created p50 |
|---:|---:|---:|---:|---:|---:|---:|---:|"
VERDICT=
for c in 1 16; do
    p=ttft$c
    o50=$(med overhead_p50_ms $p) o99=$(med overhead_p99_ms $p)
    TTFT_TABLE+="
| $c | $(val "$p-1" samples_direct) | $(f "$(med direct_first_p50_ms $p)" %.3f) / $(f "$(med direct_first_p99_ms $p)" %.3f) ms | $(f "$(med assistd_first_p50_ms $p)" %.2f) / $(f "$(med assistd_first_p99_ms $p)" %.2f) ms | **$(f "$o50" %.2f) ms** ($(rng overhead_p50_ms $p)) | **$(f "$o99" %.2f) ms** ($(rng overhead_p99_ms $p)) | $(f "$(med ratio_p50 $p)" %.1f)× | $(f "$(med assistd_created_p50_ms $p)" %.2f) / $(f "$(med assistd_in_progress_p50_ms $p)" %.2f) / $(f "$(med assistd_message_created_p50_ms $p)" %.2f) ms |"
    ok50=$(awk -v x="$o50" 'BEGIN { print (x < 2) ? "yes" : "no" }')
    ok99=$(awk -v x="$o99" 'BEGIN { print (x < 10) ? "yes" : "no" }')
    VERDICT+="- TTFT overhead at concurrency $c: p50 $(f "$o50" %.2f) ms < 2 ms — **$ok50**; p99 $(f "$o99" %.2f) ms < 10 ms — **$ok99**.
"
done

LOWC="16 concurrent streams, 300 tokens each, one every 10 ms (1,600 tokens/s): **$(f "$(med cpu_per_token_steady_us lowc)" %.1f) µs** of assistd CPU per relayed token (range $(rng cpu_per_token_steady_us lowc)); $(f "$(med cpu_per_token_total_us lowc)" %.1f) µs counting the whole run (creation, prompt, completion writes); assistd used $(f "$(med steady_cpu_pct lowc)" %.0f)% of one core while streaming. All $(med ok lowc) of 16 streams complete in the median run."

ST_TABLE="| N | one token per (per stream) | streams complete & flowing (median; min) | errors (all repeats) | peak concurrent | ramp (all runs created) | inter-token gap p50 / p99 / p99.9 | worst stream gap (max over streams) | TTFT p50 / p99 under load | assistd RSS idle → with N streams | **memory per active run** | assistd CPU while all N stream | **CPU per relayed token** | emulator CPU |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
HELD=0
HELD_AT=
BEST_FAST=0
for c in "${CASES[@]}"; do
    IFS=: read -r n iv tk <<<"$c"
    p=n$n-i$iv
    okmin=$(for ((r = 1; r <= REPEAT; r++)); do val "$p-$r" ok; done | sort -g | head -1)
    errs=$(for ((r = 1; r <= REPEAT; r++)); do val "$p-$r" errors; val "$p-$r" unfinished; done | awk '{ s += $1 } END { print s + 0 }')
    steady=$(for ((r = 1; r <= REPEAT; r++)); do val "$p-$r" steady; done | median)
    if [[ $steady == 1 ]]; then
        cpu_pct="$(f "$(med steady_cpu_pct $p)" %.0f)% of a core at $(f "$(med steady_tokens_per_s $p)" %.0f) tokens/s"
        cpt="**$(f "$(med cpu_per_token_steady_us $p)" %.1f) µs** ($(rng cpu_per_token_steady_us $p))"
        emu="$(f "$(med steady_emu_cpu_pct $p)" %.0f)%"
    else
        cpu_pct="no window with all N streaming"
        cpt="$(f "$(med cpu_per_token_total_us $p)" %.1f) µs (whole run)"
        emu="-"
    fi
    ST_TABLE+="
| $n | $iv ms ($tk tokens) | $(med ok $p) / $n; $okmin | $errs | $(med peak_active $p) | $(f "$(med ramp_s $p)" %.1f) s | $(f "$(med gap_p50_ms $p)" %.0f) / $(f "$(med gap_p99_ms $p)" %.0f) / $(f "$(med gap_p999_ms $p)" %.0f) ms | $(f "$(med stream_max_gap_max_ms $p)" %.0f) ms | $(f "$(med ttft_p50_ms $p)" %.0f) / $(f "$(med ttft_p99_ms $p)" %.0f) ms | $(f "$(med rss_idle_kb $p)" %.0f) → $(f "$(med rss_peak_kb $p)" %.0f) KiB | **$(f "$(med mem_per_run_kb $p)" %.1f) KiB** | $cpu_pct | $cpt | $emu |"
    if ((okmin == n && n > HELD)); then HELD=$n HELD_AT=$iv; fi
    if ((okmin == n && iv == INTERVAL && n > BEST_FAST)); then BEST_FAST=$n; fi
done
VERDICT+="- Concurrency at one token per $INTERVAL ms per stream: the largest N at which every stream completed and kept flowing (no gap over ${STALL} ms) in every repeat is **$BEST_FAST**.
"
if ((HELD >= 5000)); then
    VERDICT+="- Concurrency: $HELD streams held, every one complete and flowing in every repeat, at one token per $HELD_AT ms per stream — target 5,000 **met at that rate**$( ((BEST_FAST >= 5000)) && echo " (and at $INTERVAL ms)" || echo "; **not met** at one token per $INTERVAL ms").
"
else
    VERDICT+="- Concurrency: the most streams held with every one complete and flowing is **$HELD** — target 5,000 **not met**.
"
fi

PER_RUN="| measurement | repeat | key results |
|---|---:|---|"
for fn in "$TMP"/res/*; do
    [[ $fn == *.err ]] && continue
    b=$(basename "$fn")
    PER_RUN+="
| ${b%-*} | ${b##*-} | $(grep -E '^(ok|errors|stalled|peak_active|overhead_p50_ms|overhead_p99_ms|direct_first_p50_ms|assistd_first_p50_ms|assistd_first_p99_ms|gap_p99_ms|mem_per_run_kb|cpu_per_token_steady_us|steady_cpu_pct|rss_peak_kb|ttft_p50_ms)=' "$fn" | paste -sd' ' | sed 's/ /, /g') |"
done

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$REPO" status --porcelain 2>/dev/null) ]] && COMMIT+=" (with uncommitted changes in the work tree)"
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
HYPER=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
# shellcheck source=/dev/null
OS=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
LIBS=$(pkg-config --modversion libmicrohttpd libcurl jansson sqlite3 2>/dev/null | paste -sd' ' | awk '{printf "libmicrohttpd %s, libcurl %s, jansson %s, SQLite %s", $1, $2, $3, $4}')

SECTION="$BEGIN_MARK

## Runs: streaming through assistd vs. the scripted upstream (bench/runs.sh)

Written by \`bench/runs.sh\` (\`make bench-runs\`) on $(date -u '+%Y-%m-%d %H:%M UTC') in $(((T_END - T_START) / 60)) min $(((T_END - T_START) % 60)) s.

**Machine.** nproc $(nproc); ${CPU_MODEL:-unknown CPU}${HYPER:+ (virtual machine, $HYPER)}; RAM $MEM; kernel $(uname -r); $OS; $LIBS; gcc -O2. assistd commit $COMMIT, $([[ ${BENCH_ASSISTD:-} ]] && echo "binary \`${BENCH_ASSISTD#"$REPO"/}\`" || echo "\`build/assistd\`") (release build, -O2 -g). 1-minute load average $LOAD_BEFORE before, $LOAD_AFTER after; the machine is shared, nothing is pinned.

**Setup.** Three processes on the same $(nproc) cores: the scripted upstream \`bench/upstream_emu.c\` (one epoll thread; OpenAI's exact chunk sequence: role chunk, one token per content chunk, finish_reason, usage, \`[DONE]\`), assistd (\`$ASSISTD_CMD\`, fresh data dir for every measurement, the backends file mapping \`bench-model\` to the emulator), and the load client \`bench/runs_load.c\` (one epoll thread, one connection per stream). Every measurement runs $REPEAT times; tables give the median (range in brackets). Runs are created with \`POST /v1/threads/{id}/runs\` and \`stream: true\` on threads created beforehand (one per run, one user message); the emulator's script for the run travels in \`additional_instructions\` (\`emu:tokens=N,interval_ms=M\`).

### Time to first token: assistd minus direct (target p50 < 2 ms, p99 < 10 ms)

Per sample, TTFT = from writing the request on an open keep-alive connection to the first \`thread.message.delta\` (assistd) or the first content chunk (direct \`POST /v1/chat/completions\` to the emulator, same body size and \`stream_options\`). Batches alternate between the two targets, so both see the same machine. The emulator answers instantly, so *direct* is the floor of the transport and the *overhead* (assistd p50 − direct p50, and the same for p99) is what assistd adds: the create-run transaction (a streamed creation is stored in progress at once), building the prompt (with token counting), the upstream call through libcurl, the message/step inserts that precede the first delta, and relaying. Command: \`$TTFT_CMD\` (C = 1 with S = $TTFT_SAMPLES; C = 16 with S = $((TTFT_SAMPLES * 2))).

$TTFT_TABLE

### Concurrent streaming runs

Per N: N runs, created with at most 32 creations in flight; the upstream streams a fixed number of tokens to each at a fixed spacing (table), long enough that all N overlap once created. A stream is *complete & flowing* when it ends with \`thread.run.completed\` and \`done\`, carried every delta, and never went more than $STALL ms without one. Gaps are measured at the client between consecutive deltas of a stream (the upstream's own spacing is the table's interval). Memory per active run = (VmRSS while all N stream − VmRSS after setup, before the first run) ÷ N; CPU per relayed token = assistd utime+stime (\`/proc/PID/stat\`) ÷ deltas received, over the window in which all N streams were flowing. Command: \`runs_load streams --n N --tokens TOKENS --interval-ms INTERVAL --stall-ms $STALL\`.

$ST_TABLE

### CPU per relayed token at low concurrency

$LOWC

### Against the targets

$VERDICT
**Reproduce:** \`make bench-runs\` (or \`BENCH_ASSISTD=build/assistd bench/runs.sh\`); \`RUNS_REPEAT\`, \`RUNS_NS\`, \`RUNS_TOKENS\`, \`RUNS_INTERVAL_MS\` and the other knobs are described at the top of the script. One measurement by hand: start \`build/bench/upstream_emu --port 0\` and assistd with a backends file pointing at it, then \`build/bench/runs_load streams --assistd 127.0.0.1:APORT --emu 127.0.0.1:EPORT --key KEY --pid ASSISTD_PID --n 1000 --tokens 200 --interval-ms 100\`.

<details><summary>Every measurement</summary>

$PER_RUN

</details>

$END_MARK"

printf '\n%s\n\n%s' "$TTFT_TABLE" "$VERDICT"
printf '\n%s\n' "$ST_TABLE"

# Replace our own section (or append it); everything else stays as it was.
touch "$OUT"
printf '%s\n' "$SECTION" >"$TMP/section"
awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v sec="$TMP/section" '
    $0 == b { skip = 1; if (!done) { while ((getline l < sec) > 0) print l; done = 1 }; next }
    $0 == e { skip = 0; next }
    !skip { print }
    END { if (!done) { print ""; while ((getline l < sec) > 0) print l } }
' "$OUT" >"$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
log "wrote $OUT"

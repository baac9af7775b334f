#!/usr/bin/env bash
# bench/shutdown.sh -- SIGTERM while N streaming runs flow: how long assistd
# takes to exit, its exit code, what every stream's client saw last, and
# what the store holds afterwards.
#
# Same three processes as bench/runs.sh (bench/upstream_emu.c, a release
# assistd on a fresh data dir, bench/runs_load.c): the load client opens N
# streaming runs of many tokens (one every 100 ms), SHUT_WAIT_S seconds
# later assistd gets SIGTERM. A clean shutdown ends every run in flight
# failed ("The server is shutting down."), committed, and each stream ends
# with thread.run.failed; runs_load reports why each stream did not
# complete (error_reason=COUNT REASON), and the store is asked how many
# runs are in which status (the sqlite3 CLI, when installed).
#
# Usage: bench/shutdown.sh [N...]   (default: 1000 5000)
# Environment: BENCH_ASSISTD (default: build/assistd), BENCH_TOOLS
# (default: build/bench), SHUT_WAIT_S (default 10), SHUT_REPEAT (default 3).
# Prints one line per run; writes nothing else. Exit status 0 when every
# run completed its measurement.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BENCH_ASSISTD:-$REPO/build/assistd}
TOOLS=${BENCH_TOOLS:-$REPO/build/bench}
WAIT=${SHUT_WAIT_S:-10}
REPEAT=${SHUT_REPEAT:-3}
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(1000 5000)

mkdir -p "$TOOLS"
for t in upstream_emu runs_load; do
    if [ ! -x "$TOOLS/$t" ] || [ "$REPO/bench/$t.c" -nt "$TOOLS/$t" ]; then
        cc -std=c17 -O2 -Wall -Wextra -Werror -o "$TOOLS/$t" "$REPO/bench/$t.c"
    fi
done
[ -x "$BIN" ] || { echo "shutdown.sh: no assistd at $BIN (make build/assistd)" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

port_of() { # LOG: the port a server printed it listens on
    for _ in $(seq 100); do
        local p
        p=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    return 1
}

for n in "${NS[@]}"; do
    for r in $(seq "$REPEAT"); do
        D="$TMP/$n-$r"
        mkdir -p "$D/data"
        "$TOOLS/upstream_emu" --port 0 >"$D/emu.log" 2>&1 &
        EMU=$!
        PIDS+=("$EMU")
        EP=$(port_of "$D/emu.log")
        cat >"$D/backends.json" <<J
{"backends": [{"name": "emu", "kind": "openai", "base_url": "http://127.0.0.1:$EP/v1", "timeout_idle_ms": 120000, "max_retries": 0}],
 "models": [{"id": "bench-model", "backend": "emu", "upstream_model": "bench-model"}]}
J
        ASSISTD_CONFIG="$D/backends.json" "$BIN" --listen 127.0.0.1:0 --data-dir "$D/data" \
            --api-keys k --access-log false --threads 2 --max-connections 20000 >"$D/a.log" 2>&1 &
        A=$!
        PIDS+=("$A")
        AP=$(port_of "$D/a.log")
        "$TOOLS/runs_load" streams --n "$n" --tokens 100000 --interval-ms 100 --stall-ms 1000 \
            --deadline $((WAIT + 30)) --assistd "127.0.0.1:$AP" --emu "127.0.0.1:$EP" --key k \
            --pid "$A" --emu-pid "$EMU" >"$D/load.out" 2>"$D/load.err" &
        L=$!
        PIDS+=("$L")
        sleep "$WAIT"
        t0=$(date +%s%N)
        kill -TERM "$A"
        rc=0
        wait "$A" || rc=$?
        t1=$(date +%s%N)
        wait "$L" || true
        kill "$EMU" 2>/dev/null || true
        wait "$EMU" 2>/dev/null || true
        reasons=$(sed -n 's/^error_reason=//p' "$D/load.out" | paste -sd ';' -)
        stored=""
        if command -v sqlite3 >/dev/null; then
            stored=$(sqlite3 "$D/data/assistd.db" \
                "SELECT s || ' ' || c FROM (SELECT json_extract(body,'\$.status') AS s, count(*) AS c
                 FROM objects WHERE kind='run' GROUP BY s)" | paste -sd ';' -) || stored="?"
        fi
        echo "n=$n run=$r exit_code=$rc exit_ms=$(((t1 - t0) / 1000000)) streams_ended_by=[$reasons] runs_stored=[$stored]"
        rm -rf "$D"
    done
done

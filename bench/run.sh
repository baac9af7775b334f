#!/usr/bin/env bash
# bench/run.sh -- throughput and tail latency of assistd, measured with wrk
# against a static-file baseline (a private nginx serving the very same
# response bytes) in the same run, and reported as a ratio to it.
#
# Cases (all over keep-alive HTTP/1.1 on 127.0.0.1):
#   retrieve-assistant  GET  /v1/assistants/{id}
#   list-messages       GET  /v1/threads/{id}/messages?limit=20  (thread of 1,000 messages)
#   create-message      POST /v1/threads/{id}/messages           (a second thread, so the
#                                                               listed thread stays as seeded)
#
# Each case runs BENCH_RUNS times for BENCH_SECONDS against both servers with
# the same wrk command (only the port differs); the order of the two servers
# alternates between runs. The table gives the median over the runs; the
# ratio is the median of the per-run ratios (each from the same run).
#
# Environment (all optional):
#   BENCH_RUNS=5            runs per case and server
#   BENCH_SECONDS=10        duration of one wrk run
#   BENCH_WARMUP=2          seconds of unrecorded warm-up per case and server
#   BENCH_CONNECTIONS=64    wrk -c
#   BENCH_WRK_THREADS=2     wrk -t
#   BENCH_SERVER_THREADS=2  assistd --threads and nginx worker_processes
#   BENCH_MESSAGES=1000     messages seeded into the listed thread
#   BENCH_QUIET_WAIT=30     before each round, wait up to this many seconds while
#                           other work keeps more than 20% of a core busy
#   BENCH_OUT=bench/RESULTS.md  report written (only when every case ran)
#   BENCH_ASSISTD=PATH      benchmark this binary instead of building build/assistd
#
# Usage: bench/run.sh    (or: make bench)   -- works from any directory.
# Exit status: 0 when every case ran; 3 when the message endpoints did not
# answer 200 (only retrieve-assistant ran, and BENCH_OUT was left alone);
# 1 on any other failure. Every process it started is stopped and its temp
# directory removed, also on INT/TERM.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$REPO/bench
RUNS=${BENCH_RUNS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SRV_THREADS=${BENCH_SERVER_THREADS:-2}
NMSG=${BENCH_MESSAGES:-1000}
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
OUT=${BENCH_OUT:-$BENCH_DIR/RESULTS.md}
KEY=bench-key-$$
CASES=(retrieve-assistant list-messages create-message)
MARKER='<!-- Everything below this line is kept when bench/run.sh rewrites the file. -->'

for v in RUNS SECONDS_PER_RUN WARMUP CONNS WRK_THREADS SRV_THREADS NMSG QUIET_WAIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number" >&2; exit 2; }
done
((RUNS >= 1 && SECONDS_PER_RUN >= 1 && CONNS >= 1 && WRK_THREADS >= 1 && SRV_THREADS >= 1)) ||
    { echo "bench: runs, seconds, connections and threads must be at least 1" >&2; exit 2; }
((NMSG > 20)) || { echo "bench: BENCH_MESSAGES must be more than one page (20)" >&2; exit 2; }

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- tools ----------------------------------------------------------------

install_missing() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    command -v curl >/dev/null || pkgs+=(curl)
    ((${#pkgs[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${pkgs[*]} and not root: install them first"
        sudo=(sudo)
    fi
    log "installing ${pkgs[*]}"
    # Keep apt from starting the system nginx (port 80) while installing it;
    # the benchmark only ever runs its own private nginx.
    local made_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local ok=0
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
        "${pkgs[@]}" >&2 && ok=1
    if ((!ok)); then # the package lists may be missing or stale: update once
        "${sudo[@]}" apt-get update -q >&2 &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
                --no-install-recommends "${pkgs[@]}" >&2 && ok=1
    fi
    [[ $made_policy ]] && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    ((ok)) || die "could not install ${pkgs[*]}"
}

install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ ${BENCH_ASSISTD:-} ]]; then
    ASSISTD=$BENCH_ASSISTD # a prebuilt binary, e.g. to compare two builds
    [[ -x $ASSISTD ]] || die "BENCH_ASSISTD=$ASSISTD is not an executable"
else
    log "building the release binary"
    make -C "$REPO" --no-print-directory build/assistd >&2
    ASSISTD=$REPO/build/assistd
fi

# ---- temp dir and cleanup -------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/assistd-bench.XXXXXX")
ASSISTD_PID=
NGINX_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true # graceful: master stops its workers
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$NGINX_PID" 2>/dev/null && kill -KILL "$NGINX_PID" 2>/dev/null
    fi
    if [[ $ASSISTD_PID ]] && kill -0 "$ASSISTD_PID" 2>/dev/null; then
        kill -TERM "$ASSISTD_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$ASSISTD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$ASSISTD_PID" 2>/dev/null && kill -KILL "$ASSISTD_PID" 2>/dev/null
    fi
    wait 2>/dev/null || true
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$TMP/data" "$TMP/www"

# ---- assistd ---------------------------------------------------------------

log "starting assistd (--threads $SRV_THREADS)"
"$ASSISTD" --listen 127.0.0.1:0 --data-dir "$TMP/data" --api-keys "$KEY" --access-log false \
    --threads "$SRV_THREADS" >"$TMP/assistd.log" 2>&1 &
ASSISTD_PID=$!
APORT=
for _ in $(seq 100); do
    APORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/assistd.log")
    [[ $APORT ]] && break
    kill -0 "$ASSISTD_PID" 2>/dev/null || break
    sleep 0.1
done
[[ $APORT ]] || { cat "$TMP/assistd.log" >&2; die "assistd did not start"; }
ABASE=http://127.0.0.1:$APORT
HDR=(-H "Authorization: Bearer $KEY" -H "OpenAI-Beta: assistants=v2")

# api METHOD PATH BODY OUTFILE -> prints the HTTP status
api() {
    local args=(-sS -o "$4" -w '%{http_code}' -X "$1" "${HDR[@]}" --max-time 10)
    [[ $3 ]] && args+=(-H "Content-Type: application/json" --data-binary "$3")
    curl "${args[@]}" "$ABASE$2" || echo 000
}
json_id() { sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$1"; }
expect_200() { # STATUS FILE WHAT
    [[ $1 == 200 ]] || die "$3 answered HTTP $1: $(head -c 300 "$2")"
}

log "seeding: one assistant, a thread of $NMSG messages, a second thread for writes"
st=$(api POST /v1/assistants '{"model":"gpt-4o","name":"bench"}' "$TMP/r.json")
expect_200 "$st" "$TMP/r.json" "POST /v1/assistants"
AID=$(json_id "$TMP/r.json")
[[ $AID ]] || die "could not read the assistant id"
URL_PATH_retrieve_assistant=/v1/assistants/$AID
mkdir -p "$TMP/www/v1/assistants"
st=$(api GET "/v1/assistants/$AID" '' "$TMP/www$URL_PATH_retrieve_assistant")
expect_200 "$st" "$TMP/www$URL_PATH_retrieve_assistant" "GET /v1/assistants/{id}"

LUA=$BENCH_DIR/create_message.lua
WBODY=$(sed -n "s/^wrk\.body = '\(.*\)'$/\1/p" "$LUA")
[[ $WBODY ]] || die "cannot read wrk.body from $LUA"

# Seeds the two threads and saves the message bodies; on failure sets
# MSG_WHY and returns 1 (the message cases are then skipped, see below).
MSG_WHY=
seed_messages() {
    local st n_ok n_listed
    st=$(api POST /v1/threads '{}' "$TMP/r.json")
    [[ $st == 200 ]] || { MSG_WHY="POST /v1/threads answered HTTP $st"; return 1; }
    TID=$(json_id "$TMP/r.json")
    st=$(api POST /v1/threads '{}' "$TMP/r.json")
    [[ $st == 200 ]] || { MSG_WHY="POST /v1/threads answered HTTP $st"; return 1; }
    WTID=$(json_id "$TMP/r.json")
    [[ $TID && $WTID ]] || { MSG_WHY="could not read the thread ids"; return 1; }

    # All messages go through one curl process (one keep-alive connection).
    local text="the quick brown fox jumps over the lazy dog; a benchmark message of fixed size." i
    {
        for ((i = 1; i <= NMSG; i++)); do
            printf 'url = "%s/v1/threads/%s/messages"\n' "$ABASE" "$TID"
            printf 'header = "Authorization: Bearer %s"\nheader = "OpenAI-Beta: assistants=v2"\n' "$KEY"
            printf 'header = "Content-Type: application/json"\n'
            printf 'data-binary = "{\\"role\\":\\"user\\",\\"content\\":\\"Message %05d: %s\\"}"\n' \
                "$i" "$text"
            printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 10\n'
            ((i < NMSG)) && printf 'next\n'
        done
    } >"$TMP/seed.curl"
    curl -sS -K "$TMP/seed.curl" >"$TMP/seed.status" || true
    n_ok=$(grep -c '^200$' "$TMP/seed.status" || true)
    if [[ $n_ok != "$NMSG" ]]; then
        st=$(api POST "/v1/threads/$TID/messages" '{"role":"user","content":"probe"}' "$TMP/r.json")
        MSG_WHY="only $n_ok of $NMSG messages were created (POST /v1/threads/{id}/messages: HTTP $st: $(head -c 200 "$TMP/r.json"))"
        return 1
    fi

    # The exact bodies nginx will serve, each at the same path as its assistd URL.
    URL_PATH_list_messages=/v1/threads/$TID/messages
    # shellcheck disable=SC2034 # read indirectly, as URL_QUERY_${case}
    URL_QUERY_list_messages='?limit=20'
    URL_PATH_create_message=/v1/threads/$WTID/messages
    mkdir -p "$TMP/www/v1/threads/$TID" "$TMP/www/v1/threads/$WTID"
    st=$(api GET "/v1/threads/$TID/messages?limit=20" '' "$TMP/www$URL_PATH_list_messages")
    [[ $st == 200 ]] || { MSG_WHY="GET /v1/threads/{id}/messages?limit=20 answered HTTP $st"; return 1; }
    n_listed=$(grep -o '"object":"thread.message"' "$TMP/www$URL_PATH_list_messages" | wc -l)
    [[ $n_listed == 20 ]] || { MSG_WHY="list-messages returned $n_listed messages, expected 20"; return 1; }
    grep -q '"has_more":true' "$TMP/www$URL_PATH_list_messages" ||
        { MSG_WHY="list-messages: expected has_more=true on a thread of $NMSG messages"; return 1; }
    # create-message: one real POST (with wrk's body) is the baseline's body.
    st=$(api POST "/v1/threads/$WTID/messages" "$WBODY" "$TMP/www$URL_PATH_create_message")
    [[ $st == 200 ]] || { MSG_WHY="POST /v1/threads/{id}/messages answered HTTP $st"; return 1; }
    return 0
}
if ! seed_messages; then
    log "WARNING: skipping list-messages and create-message: $MSG_WHY"
    log "WARNING: the report will not be written (run again once the endpoints answer 200)"
    CASES=(retrieve-assistant)
fi

# ---- nginx -----------------------------------------------------------------

if ((EUID == 0)); then
    # Workers drop to an unprivileged user, who must be able to read the files.
    if id www-data >/dev/null 2>&1; then USER_LINE='user www-data;'; else USER_LINE='user nobody nogroup;'; fi
    chmod 755 "$TMP"
    chmod -R a+rX "$TMP/www"
else
    USER_LINE=
fi
start_nginx() {
    local port
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        [[ -z $(ss -Hltn "sport = :$port" 2>/dev/null) ]] || continue
        sed -e "s|@TMP@|$TMP|g" -e "s|@ROOT@|$TMP/www|g" -e "s|@PORT@|$port|g" \
            -e "s|@USER_LINE@|$USER_LINE|" -e "s|@WORKERS@|$SRV_THREADS|g" \
            "$BENCH_DIR/nginx.conf.in" >"$TMP/nginx.conf"
        "$NGINX" -p "$TMP" -e "$TMP/nginx-error.log" -c "$TMP/nginx.conf" >"$TMP/nginx.out" 2>&1 &
        NGINX_PID=$!
        for _ in $(seq 50); do
            if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
                NPORT=$port
                return 0
            fi
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    done
    cat "$TMP/nginx.out" "$TMP/nginx-error.log" >&2 2>/dev/null || true
    die "nginx did not start"
}
log "starting private nginx (worker_processes $SRV_THREADS)"
NPORT=
start_nginx
NBASE=http://127.0.0.1:$NPORT

# Both servers must return the same bytes for the same request.
has_case() { [[ " ${CASES[*]} " == *" $1 "* ]]; }
for c in "${CASES[@]}"; do
    [[ $c == create-message ]] && continue
    p=URL_PATH_${c//-/_} q=URL_QUERY_${c//-/_}
    url_path=${!p}${!q:-}
    curl -sS --max-time 10 "${HDR[@]}" -o "$TMP/a.body" "$ABASE$url_path"
    st=$(curl -sS --max-time 10 "${HDR[@]}" -o "$TMP/n.body" -w '%{http_code}' "$NBASE$url_path")
    [[ $st == 200 ]] || die "nginx answered $st for $url_path"
    cmp -s "$TMP/a.body" "$TMP/n.body" || die "assistd and nginx bodies differ for $url_path"
done
if has_case create-message; then
    st=$(curl -sS --max-time 10 "${HDR[@]}" -H "Content-Type: application/json" \
        --data-binary "$WBODY" -o "$TMP/n.body" -w '%{http_code}' "$NBASE$URL_PATH_create_message")
    if [[ $st != 200 ]] || ! cmp -s "$TMP/n.body" "$TMP/www$URL_PATH_create_message"; then
        die "the nginx POST baseline answered $st or different bytes"
    fi
fi
size_of() { local p=URL_PATH_${1//-/_}; wc -c <"$TMP/www${!p}" | tr -d ' '; }

# ---- measuring ---------------------------------------------------------------

# Busy CPU time of the whole machine (all cores, clock ticks; idle and
# iowait excluded).
machine_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# CPU time of this shell's finished children (wrk, via timeout, in run_wrk).
children_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }
# CPU time (clock ticks, user+system) of a process and its direct children.
TCK=$(getconf CLK_TCK)
cpu_ticks() {
    local t=0 pid v
    for pid in "$1" $(pgrep -P "$1" 2>/dev/null); do
        v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

WRK_OPTS=(-t"$WRK_THREADS" -c"$CONNS" --latency -H "Authorization: Bearer $KEY" -H "OpenAI-Beta: assistants=v2")
# wrk_url CASE BASE
case_url() {
    local c=${1//-/_} p q
    p=URL_PATH_$c q=URL_QUERY_$c
    echo "$2${!p}${!q:-}"
}

# run_wrk CASE TARGET SECONDS OUTFILE
run_wrk() {
    local url base pid extra=()
    if [[ $2 == assistd ]]; then base=$ABASE pid=$ASSISTD_PID; else base=$NBASE pid=$NGINX_PID; fi
    url=$(case_url "$1" "$base")
    [[ $1 == create-message ]] && extra=(-s "$LUA")
    local c0 c1 m0 m1 w0 w1
    c0=$(cpu_ticks "$pid") m0=$(machine_busy) w0=$(children_ticks)
    timeout -k 5 $(($3 + 60)) wrk "${WRK_OPTS[@]}" -d"$3"s "${extra[@]}" "$url" >"$4" 2>&1 ||
        { cat "$4" >&2; die "wrk failed for $1 on $2"; }
    w1=$(children_ticks) m1=$(machine_busy) c1=$(cpu_ticks "$pid")
    {
        echo "cpu_ticks $((c1 - c0))"
        # CPU used by everything but this server and wrk: other work on the
        # machine that competes for the same 2 cores (noise).
        echo "other_ticks $((m1 - m0 - (c1 - c0) - (w1 - w0))) seconds $3"
    } >>"$4"
}

# parse FILE -> "rps p99_ms requests bad server_cpu_us_per_req other_load_%_of_a_core"
parse() {
    awk -v tck="$TCK" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /^ *Non-2xx or 3xx responses:/ { bad += $NF }
        /^ *Socket errors:/ { gsub(/,/, ""); bad += $4 + $6 + $8 + $10 }
        /^cpu_ticks / { cpu = $2 }
        /^other_ticks / { other = $2 < 0 ? 0 : $2; secs = $4 }
        END {
            if (rps == "" || p99 == "") exit 1
            printf "%.2f %.3f %d %d %.1f %.0f\n", rps, p99, reqs, bad, reqs ? cpu / tck * 1e6 / reqs : 0,
                secs ? other / tck / secs * 100 : 0
        }' "$1"
}

median() { sort -g | awk '{a[NR] = $1} END { if (NR % 2) printf "%.6f\n", a[(NR + 1) / 2]; else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

WRK_CMD_ASSISTD="wrk -t$WRK_THREADS -c$CONNS -d${SECONDS_PER_RUN}s --latency -H 'Authorization: Bearer KEY' -H 'OpenAI-Beta: assistants=v2'"
log "assistd on $ABASE, nginx on $NBASE; $RUNS run(s) x ${SECONDS_PER_RUN}s per case and server"

# Percent of one core that other work keeps busy, sampled over 1 s while
# both servers are idle.
other_busy_pct() {
    local b0 b1
    b0=$(machine_busy); sleep 1; b1=$(machine_busy)
    echo $(((b1 - b0) * 100 / TCK))
}
# Waits (at most QUIET_WAIT seconds) for the machine to be quiet: on a shared
# machine this keeps other people's builds and tests out of the numbers.
wait_quiet() {
    local busy waited=0
    busy=$(other_busy_pct)
    while ((busy > 20 && waited < QUIET_WAIT)); do
        ((waited == 0)) && log "machine busy ($busy% of a core used by other work): waiting up to ${QUIET_WAIT}s for it to calm down"
        sleep 4
        waited=$((waited + 5))
        busy=$(other_busy_pct)
    done
    ((busy > 20)) && log "WARNING: $busy% of a core is busy with other work; this run will be noisy"
    return 0
}

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
wait_quiet

if ((WARMUP > 0)); then
    log "warm-up (${WARMUP}s per case and server, not recorded)"
    for c in "${CASES[@]}"; do
        for t in assistd nginx; do run_wrk "$c" "$t" "$WARMUP" "$TMP/warmup.txt"; done
    done
fi

: >"$TMP/results.txt" # case run target rps p99 requests bad cpu_us
for ((r = 1; r <= RUNS; r++)); do
    ((r == 1)) || wait_quiet
    for c in "${CASES[@]}"; do
        if ((r % 2)); then order=(assistd nginx); else order=(nginx assistd); fi
        for t in "${order[@]}"; do
            f=$TMP/wrk-$c-$t-$r.txt
            run_wrk "$c" "$t" "$SECONDS_PER_RUN" "$f"
            line=$(parse "$f") || { cat "$f" >&2; die "cannot parse wrk output"; }
            echo "$c $r $t $line" >>"$TMP/results.txt"
            log "run $r/$RUNS $c $t: $(awk '{printf "%s req/s, p99 %s ms, %s errors, %s us CPU/req, other load %s%%", $1, $2, $4, $5, $6}' <<<"$line")"
        done
    done
done

# ---- report ------------------------------------------------------------------

col() { awk -v c="$1" -v t="$2" -v k="$3" '$1 == c && $3 == t { print $k }' "$TMP/results.txt"; }
per_run_ratio() { # CASE FIELD -> assistd/nginx for each run
    awk -v c="$1" -v k="$2" '$1 == c { v[$2, $3] = $k; n = ($2 > n ? $2 : n) }
        END { for (r = 1; r <= n; r++) if (v[r, "nginx"] > 0) print v[r, "assistd"] / v[r, "nginx"] }' \
        "$TMP/results.txt"
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
range() { col "$1" "$2" "$3" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }
# p99 verdict: "yes", "yes (marginal...)" within 10% of the limit, or "no"
p99_ok() {
    awk -v p="$1" 'BEGIN { if (p >= 5) print "no"; else if (p >= 4.5) print "yes (marginal: within 10% of the limit)"; else print "yes" }'
}

TABLE="| case | response bytes | assistd req/s | nginx req/s | ratio (assistd/nginx req/s) | assistd p99 (range) | nginx p99 (range) | server CPU per request (assistd / nginx) | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|"
VERDICT=
all_ok=1
for c in "${CASES[@]}"; do
    a_rps=$(col "$c" assistd 4 | median) n_rps=$(col "$c" nginx 4 | median)
    a_p99=$(col "$c" assistd 5 | median) n_p99=$(col "$c" nginx 5 | median)
    a_cpu=$(col "$c" assistd 8 | median) n_cpu=$(col "$c" nginx 8 | median)
    ratio=$(per_run_ratio "$c" 4 | median)
    errs=$(awk -v c="$c" '$1 == c && $3 == "assistd" { s += $7 } END { print s + 0 }' "$TMP/results.txt")
    nerrs=$(awk -v c="$c" '$1 == c && $3 == "nginx" { s += $7 } END { print s + 0 }' "$TMP/results.txt")
    TABLE+="
| $c | $(size_of "$c") | $(fmt "$a_rps" %.0f) | $(fmt "$n_rps" %.0f) | $(fmt "$ratio" %.2f) | $(fmt "$a_p99" %.2f) ms ($(range "$c" assistd 5)) | $(fmt "$n_p99" %.2f) ms ($(range "$c" nginx 5)) | $(fmt "$a_cpu" %.0f) µs / $(fmt "$n_cpu" %.0f) µs | $errs / $nerrs |"
    if [[ $c == create-message ]]; then
        p_ok=$(p99_ok "$a_p99")
        VERDICT+="- **$c** (write; the 2× target is for reads, the nginx POST baseline is only a reference): $(fmt "$a_rps" %.0f) req/s; p99 $(fmt "$a_p99" %.2f) ms $([[ $p_ok == no ]] && echo "is over" || echo "is under") 5 ms.
"
    else
        r_ok=$(awk -v x="$ratio" 'BEGIN { print ((x >= 0.5) ? "yes" : "no") }')
        p_ok=$(p99_ok "$a_p99")
        [[ $r_ok == yes && $p_ok != no && $errs == 0 ]] || all_ok=0
        VERDICT+="- **$c**: throughput $(fmt "$ratio" %.2f)× the static file (nginx/assistd = $(awk -v x="$ratio" 'BEGIN { printf "%.2f", ((x > 0) ? 1 / x : 0) }')×): within 2× — **$r_ok**; p99 $(fmt "$a_p99" %.2f) ms < 5 ms — **$p_ok**.
"
    fi
    ((errs == 0)) || VERDICT+="- **$c**: assistd had $errs non-2xx responses or socket errors over all runs.
"
done
if ((all_ok)); then
    VERDICT="Both read targets are met (on the medians).
$VERDICT"
else
    VERDICT="At least one read target is missed.
$VERDICT"
fi

PER_RUN="| case | run | server | req/s | p99 (ms) | requests | errors | server CPU µs/req | other load (% of a core) |
|---|---:|---|---:|---:|---:|---:|---:|---:|
$(awk '{ printf "| %s | %s | %s | %.0f | %.2f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$TMP/results.txt")"
OTHER_MED=$(awk '{ print $9 }' "$TMP/results.txt" | median)
OTHER_MAX=$(awk '$9 > m { m = $9 } END { print m + 0 }' "$TMP/results.txt")
NOISE="During the runs, processes other than the server under test and wrk used a median of $(fmt "$OTHER_MED" %.0f)% and at most $(fmt "$OTHER_MAX" %.0f)% of one core (1-minute load average before the benchmark: $LOAD_BEFORE)."
NOISY=$(awk '$9 > 20 { n++ } END { print n + 0 }' "$TMP/results.txt")
if ((NOISY > 0)); then
    NOISE+=" **$NOISY of $(wc -l <"$TMP/results.txt") runs shared the machine with more than 20% of a core of other work:** their absolute numbers (p99 especially) are pessimistic; the same-run ratios are the fairer comparison."
fi

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$REPO" status --porcelain 2>/dev/null) ]] && COMMIT+=" (with uncommitted changes in the work tree)"
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
HYPER=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
# shellcheck source=/dev/null
OS=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
FS=$(df -PT "$TMP" | awk 'NR == 2 { print $2 }')
WRK_V=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 {print $2}')
NGINX_V=$({ "$NGINX" -v 2>&1 || true; } | sed 's/.*nginx\///')
LIBS=$(pkg-config --modversion libmicrohttpd jansson sqlite3 2>/dev/null | paste -sd' ' | awk '{printf "libmicrohttpd %s, jansson %s, SQLite %s", $1, $2, $3}')

REPORT="# assistd benchmark results

Written by \`bench/run.sh\` (\`make bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC'). Do not edit above the marker line: the next run rewrites it.

## Machine

- nproc: $(nproc); CPU: ${CPU_MODEL:-unknown}${HYPER:+ (virtual machine, $HYPER)}; RAM: $MEM
- kernel: $(uname -r); OS: $OS; data dir on $FS
- wrk $WRK_V, nginx $NGINX_V (Debian); $LIBS
- assistd commit: $COMMIT, $([[ ${BENCH_ASSISTD:-} ]] && echo "binary given by BENCH_ASSISTD=$BENCH_ASSISTD" || echo "release build (\`make build/assistd\`: -O2 -g)")

## Setup

- assistd: \`build/assistd --listen 127.0.0.1:PORT --data-dir TMP --api-keys KEY --access-log false --threads $SRV_THREADS\` (fresh data dir; one assistant; a thread of $NMSG messages; a second, initially empty thread that create-message writes to).
- Baseline: a private nginx (\`bench/nginx.conf.in\`) with \`worker_processes $SRV_THREADS\` to match assistd's $SRV_THREADS HTTP threads, \`access_log off\`, \`keepalive_requests\` raised so neither server closes keep-alive connections, serving the exact response bodies saved from assistd (checked byte for byte) at the same URL paths. The create-message baseline answers the POST with the saved create response (a static file, via \`error_page 405 =200\`).
- Both run on the same $(nproc) cores as wrk; nothing is pinned. Client and server settings are identical for both targets: the same wrk command and headers, only the port differs; the order of the two servers alternates between runs.
- Commands (per case, $RUNS runs of ${SECONDS_PER_RUN}s each per server after a ${WARMUP}s unrecorded warm-up):
  - retrieve-assistant: \`$WRK_CMD_ASSISTD http://127.0.0.1:PORT/v1/assistants/ASST_ID\`
  - list-messages: \`$WRK_CMD_ASSISTD 'http://127.0.0.1:PORT/v1/threads/THREAD_ID/messages?limit=20'\`
  - create-message: \`$WRK_CMD_ASSISTD -s bench/create_message.lua http://127.0.0.1:PORT/v1/threads/THREAD2_ID/messages\`
- Reproduce: \`make bench\` (or \`bench/run.sh\`; \`BENCH_RUNS\`, \`BENCH_SECONDS\`, \`BENCH_CONNECTIONS\` etc. are described at the top of the script).

## Results (median of $RUNS runs)

Ratio = assistd req/s ÷ nginx req/s in the same run, median over the runs (1.00 = as fast as the static file; the read target \"within 2×\" means ≥ 0.50). p99 is wrk's 99th-percentile latency at $CONNS connections. Server CPU per request = user+system CPU time of the server's processes during the run ÷ requests completed. Errors = non-2xx responses + socket errors over all runs (assistd / nginx).

$TABLE

## Against the targets (reads within 2× of the static file; p99 under 5 ms at 64 connections)

$VERDICT
$NOISE

<details><summary>Every run</summary>

$PER_RUN

</details>
"

printf '\n%s\n' "$TABLE"
printf '\n%s' "$VERDICT"

if ((${#CASES[@]} < 3)); then
    log "not writing $OUT: list-messages and create-message were skipped ($MSG_WHY)"
    exit 3
fi
KEPT=
if [[ -f $OUT ]] && grep -qF -- "$MARKER" "$OUT"; then
    KEPT=$(sed -n "/^$(printf '%s' "$MARKER" | sed 's/[][\\/.*^$]/\\&/g')\$/,\$p" "$OUT" | tail -n +2)
fi
{
    printf '%s\n%s\n' "$REPORT" "$MARKER"
    [[ $KEPT ]] && printf '%s\n' "$KEPT"
} >"$OUT.tmp.$$"
mv "$OUT.tmp.$$" "$OUT"
log "wrote $OUT"

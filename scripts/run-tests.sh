#!/usr/bin/env bash
# run-tests.sh [unit|e2e|browser|fuzz ...] -- runs the test stages (all by default)
# against the ASan+UBSan build and prints one closing line:
#   N passed, N failed
# Unit tests are the cmocka binaries in build/asan/unit, black-box tests the
# node:test files in tests/e2e driving build/asan/assistd through the official
# openai SDK, browser the playground in headless Chromium (tests/browser),
# fuzz the libFuzzer targets in build/fuzz for FUZZ_SECONDS each.
# What failed is repeated just above the closing line (names and the first
# lines of each error), so the tail of a long CI log says what broke.
set -uo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit e2e browser fuzz)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BUILD=${BUILD:-build}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
log=$(mktemp -d)
summary="$log/summary"
: >"$summary"

# failing STAGE FILE -- adds node:test's "failing tests" section to the
# summary: per failed test, where it is, its name and its first message
# lines. A stage that died without that section (a crash) gets its last lines.
failing() {
  {
    echo "$1:"
    if grep -q '^✖ failing tests:' "$2"; then
      sed -n '/^✖ failing tests:/,$p' "$2" | awk '
        /^test at / { print; n = 0; keep = 1; next }
        keep && /^ *at / { keep = 0 }
        keep && NF { if (n++ < 5) print }' | head -60 | sed 's/^/    /'
    else
      tail -20 "$2" | sed 's/^/    /'
    fi
  } >>"$summary"
}

run_unit() {
  for t in "$BUILD"/asan/unit/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    if "$t" >"$log/$name.out" 2>&1; then status=0; else status=1; fi
    p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$log/$name.out" | awk '{s+=$4} END {print s+0}')
    f=$(grep -Eo '\[  FAILED  \] [0-9]+' "$log/$name.out" | awk '{s+=$4} END {print s+0}')
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed or sanitizer report
    passed=$((passed + p)); failed=$((failed + f))
    echo "unit  $name: $p passed, $f failed"
    if [ "$status" -ne 0 ]; then
      sed 's/^/    /' "$log/$name.out" | tail -40
      { echo "unit $name:"; grep -E '^\[  FAILED  \] |^\[  ERROR   \]|^\[   LINE   \]|runtime error|Sanitizer' "$log/$name.out" | head -8 | sed 's/^/    /'; } >>"$summary"
    fi
  done
}

run_e2e() {
  [ -d tests/e2e/node_modules ] || { echo "e2e: tests/e2e/node_modules missing (run make deps)"; failed=$((failed + 1)); return; }
  export ASSISTD_BIN=${ASSISTD_BIN:-$PWD/$BUILD/asan/assistd}
  (cd tests/e2e && node --test --test-concurrency=2 --test-reporter=spec *.test.mjs) >"$log/e2e.out" 2>&1
  status=$?
  p=$(grep -E '^ℹ pass [0-9]+' "$log/e2e.out" | awk '{print $3}' | tail -1)
  f=$(grep -E '^ℹ fail [0-9]+' "$log/e2e.out" | awk '{print $3}' | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -ne 0 ]; then cat "$log/e2e.out"; failing e2e "$log/e2e.out"; else grep -E '^(✔|✖|▶)' "$log/e2e.out" | head -400; fi
  echo "e2e: $p passed, $f failed"
}

# The playground in headless Chromium (tests/browser), against the same binary.
run_browser() {
  [ -d tests/browser/node_modules ] || { echo "browser: tests/browser/node_modules missing (run make deps)"; failed=$((failed + 1)); return; }
  export ASSISTD_BIN=${ASSISTD_BIN:-$PWD/$BUILD/asan/assistd}
  (cd tests/browser && BUILD="$BUILD" node --test --test-concurrency=1 --test-reporter=spec *.test.mjs) >"$log/browser.out" 2>&1
  status=$?
  p=$(grep -E '^ℹ pass [0-9]+' "$log/browser.out" | awk '{print $3}' | tail -1)
  f=$(grep -E '^ℹ fail [0-9]+' "$log/browser.out" | awk '{print $3}' | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -ne 0 ]; then cat "$log/browser.out"; failing browser "$log/browser.out"; else grep -E '^(✔|✖|▶|playground)' "$log/browser.out"; fi
  echo "browser: $p passed, $f failed (screenshots in $BUILD/screenshots)"
}

run_fuzz() {
  for fz in "$BUILD"/fuzz/fuzz_*; do
    [ -x "$fz" ] || continue
    name=$(basename "$fz")
    corpus="fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$fz" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$log/" "$work" \
        >"$log/$name.out" 2>&1; then
      passed=$((passed + 1)); echo "fuzz  $name: ok ($(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log/$name.out" | awk '{print $2}') runs in ${FUZZ_SECONDS}s)"
    else
      failed=$((failed + 1)); echo "fuzz  $name: FAILED"; tail -60 "$log/$name.out"
      { echo "fuzz $name:"; grep -E 'ERROR|runtime error|Test unit written' "$log/$name.out" | head -4 | sed 's/^/    /'; } >>"$summary"
    fi
    rm -rf "$work"
  done
}

for s in "${stages[@]}"; do
  case "$s" in
    unit) run_unit ;;
    e2e) run_e2e ;;
    browser) run_browser ;;
    fuzz) run_fuzz ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done
if [ -s "$summary" ]; then
  echo "---- what failed ----"
  cat "$summary"
fi
rm -rf "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

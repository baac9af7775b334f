#!/usr/bin/env bash
# deps.sh -- install what assistd needs to build and test on Debian 12, and
# only what is missing, so that `make run` and `make test` work on a fresh
# machine and cost nothing on a prepared one.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, pkg-config, the libraries assistd links against.
# Run: poppler-utils (pdftotext, file_search ingestion), bubblewrap and Debian's
# Python with its data libraries (the code_interpreter sandbox).
# Test: cmocka (unit tests), clang + compiler-rt (libFuzzer, sanitizers), Node.js (black-box tests),
# chromium (the playground's browser tests; npm's playwright-core drives it, no browser download).
PKGS=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
      libcmocka-dev clang libclang-rt-14-dev clang-format cppcheck sqlite3 libcurl4-openssl-dev libpcre2-dev
      zlib1g-dev libseccomp-dev poppler-utils bubblewrap
      python3 python3-numpy python3-pandas python3-matplotlib python3-scipy python3-sympy python3-sklearn
      python3-openpyxl python3-xlsxwriter python3-docx python3-pil python3-seaborn python3-tabulate
      chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Black-box test clients (pinned in tests/e2e/package-lock.json).
if [ -f tests/e2e/package-lock.json ]; then
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

# Browser tests of the playground (playwright-core, pinned in tests/browser/package-lock.json).
if [ -f tests/browser/package-lock.json ]; then
  if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

# assistd -- build, run and test.
#
#   make run    install missing Debian/npm dependencies, build, start the server
#   make test   install, build under ASan+UBSan, run unit, black-box, browser and fuzz tests
#
# Other targets: all (release build + playground), asan, playground, unit, e2e, browser, fuzz,
# fuzz-long, lint, bench, bench-runs, bench-shutdown, bench-sandbox, bench-search, bench-tokenizer, tokenizer, tokenizer-check, clean.

CC      ?= gcc
FUZZCC  ?= clang
PKGS    := libmicrohttpd jansson sqlite3 libcurl libpcre2-8 zlib libseccomp
CSTD    := -std=c17 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wformat=2 -Wvla
PKGCFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
INCS    := -Isrc
# Data files (tokenizer tables, sandbox driver, playground) are read from the
# checkout's share/ unless --share-dir says otherwise.
SHARE   := -DAD_SHARE_DIR='"$(CURDIR)/share"'
# Build output; helpers working in one checkout may each use their own.
BUILD   ?= build
# The playground (playground/, a vite app) is built into $(BUILD)/playground,
# which is also the compiled default of --playground-dir.
PG_OUT  := $(abspath $(BUILD))/playground
PG_SRC  := $(sort $(wildcard playground/src/*)) playground/index.html playground/vite.config.js \
           playground/package.json playground/package-lock.json
SHARE   += -DAD_PLAYGROUND_DIR='"$(PG_OUT)"'

CFLAGS_REL  := $(CSTD) $(WARN) -O2 -g $(INCS) $(SHARE) $(PKGCFLAGS)
CFLAGS_ASAN := $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined $(INCS) $(SHARE) $(PKGCFLAGS)
LDFLAGS_ASAN := -fsanitize=address,undefined

LIB_SRC  := $(sort $(wildcard src/*/*.c))
MAIN_SRC := src/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

REL_OBJ  := $(LIB_SRC:%.c=$(BUILD)/rel/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/unit/%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)

FUZZ_SECONDS ?= 30

# Short build lines; `make V=1` shows full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all asan run test deps unit e2e browser playground fuzz fuzz-build fuzz-long lint bench bench-runs bench-shutdown bench-sandbox bench-tokenizer clean tokenizer tokenizer-check

all: $(BUILD)/assistd playground

# npm ci only when the lock file is newer than node_modules; vite only when a
# source changed; every text asset also gets a .gz sibling (served when the
# client accepts gzip).
playground: $(BUILD)/playground/index.html

$(BUILD)/playground/index.html: $(PG_SRC)
	@echo "  VITE    $(BUILD)/playground"
	$(Q)cd playground && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
	  npm ci --no-audit --no-fund --loglevel=error; }
	$(Q)cd playground && npx --no-install vite build --logLevel warn --outDir "$(PG_OUT)" --emptyOutDir
	$(Q)find "$(PG_OUT)" -type f \( -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' \
	  -o -name '*.json' \) -exec gzip -9 -k -f {} +
	$(Q)touch $@

$(BUILD)/assistd: $(REL_OBJ) $(BUILD)/rel/src/main.o
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(PKGLIBS)

$(BUILD)/asan/assistd: $(ASAN_OBJ) $(BUILD)/asan/src/main.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(PKGLIBS)

$(BUILD)/rel/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_REL) -MMD -MP -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ASAN) -MMD -MP -c -o $@ $<

$(BUILD)/asan/unit/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CFLAGS_ASAN) -Itests/unit -o $@ $< $(ASAN_OBJ) $(LDFLAGS_ASAN) $(PKGLIBS) -lcmocka

asan: $(BUILD)/asan/assistd

deps:
	@scripts/deps.sh

run: deps
	$(MAKE) $(BUILD)/assistd playground
	./$(BUILD)/assistd

test: deps
	$(MAKE) lint
	$(MAKE) all asan $(UNIT_BIN) fuzz-build
	BUILD=$(BUILD) scripts/run-tests.sh

unit: $(UNIT_BIN)
	BUILD=$(BUILD) scripts/run-tests.sh unit

e2e: $(BUILD)/asan/assistd
	BUILD=$(BUILD) scripts/run-tests.sh e2e

browser: $(BUILD)/asan/assistd playground
	BUILD=$(BUILD) scripts/run-tests.sh browser

# libFuzzer targets: clang, with ASan+UBSan, linking the library sources directly.
FUZZ_CFLAGS := $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined $(INCS) $(SHARE) $(PKGCFLAGS)
$(BUILD)/fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZCC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(PKGLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	BUILD=$(BUILD) scripts/run-tests.sh fuzz

fuzz-long: fuzz-build
	FUZZ_SECONDS=3600 BUILD=$(BUILD) scripts/run-tests.sh fuzz

lint:
	@echo "  LINT    clang-format, cppcheck"
	$(Q)clang-format --dry-run -Werror $(LIB_SRC) $(MAIN_SRC) $(wildcard src/*/*.h) $(UNIT_SRC) $(FUZZ_SRC)
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --suppress=missingIncludeSystem --inline-suppr -Isrc src

# BPE rank tables for src/run/tokenizer.c are committed in share/tokenizer;
# regenerate them only after changing the pinned npm package in tools/tokenizer.
tokenizer:
	scripts/tokenizer-data.sh generate

tokenizer-check:
	scripts/tokenizer-data.sh check

bench: $(BUILD)/assistd
	bench/run.sh

# Streaming runs against a scripted upstream (bench/runs.sh; results in bench/RESULTS.md).
bench-runs: $(BUILD)/assistd
	BENCH_ASSISTD=$(CURDIR)/$(BUILD)/assistd BENCH_TOOLS=$(CURDIR)/$(BUILD)/bench bench/runs.sh

# SIGTERM while 1,000 and 5,000 runs stream: exit time, what each stream saw last (bench/shutdown.sh).
bench-shutdown: $(BUILD)/assistd
	BENCH_ASSISTD=$(CURDIR)/$(BUILD)/assistd BENCH_TOOLS=$(CURDIR)/$(BUILD)/bench bench/shutdown.sh

# code_interpreter: cold starts with/without spares, warm round trips, memory (bench/sandbox.sh).
$(BUILD)/bench/sandbox_bench: bench/sandbox_bench.c $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_REL) -o $@ $< $(REL_OBJ) $(PKGLIBS)

bench-sandbox: $(BUILD)/bench/sandbox_bench
	bench/sandbox.sh $(CURDIR)/$(BUILD)/bench/sandbox_bench

# Tokenizer and chunker throughput on NFCorpus text, piece cache off vs on (bench/tokenizer_bench.c).
$(BUILD)/bench/tokenizer_bench: bench/tokenizer_bench.c $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_REL) -o $@ $< $(REL_OBJ) $(PKGLIBS)

bench-tokenizer: $(BUILD)/bench/tokenizer_bench
	$(BUILD)/bench/tokenizer_bench

# file_search: NFCorpus quality, ingestion rate, search latency (bench/search.sh).
bench-search: $(BUILD)/assistd
	BUILD=$(BUILD) bench/search.sh

clean:
	rm -rf $(BUILD)

-include $(REL_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(BUILD)/rel/src/main.d $(BUILD)/asan/src/main.d

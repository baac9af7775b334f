# assistd -- build, run and test.
#
#   make run    install missing Debian/npm dependencies, build, start the server
#   make test   install, build under ASan+UBSan, run unit, black-box and fuzz tests
#
# Other targets: all (release build), asan, unit, e2e, fuzz, fuzz-long, lint, bench, clean.

CC      ?= gcc
FUZZCC  ?= clang
PKGS    := libmicrohttpd jansson sqlite3 libcurl libpcre2-8
CSTD    := -std=c17 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wformat=2 -Wvla
PKGCFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
INCS    := -Isrc

CFLAGS_REL  := $(CSTD) $(WARN) -O2 -g $(INCS) $(PKGCFLAGS)
CFLAGS_ASAN := $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined $(INCS) $(PKGCFLAGS)
LDFLAGS_ASAN := -fsanitize=address,undefined

LIB_SRC  := $(sort $(wildcard src/util/*.c src/core/*.c src/http/*.c src/api/*.c src/store/*.c src/run/*.c))
MAIN_SRC := src/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

REL_OBJ  := $(LIB_SRC:%.c=build/rel/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/unit/%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

FUZZ_SECONDS ?= 60

# Short build lines; `make V=1` shows full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all asan run test deps unit e2e fuzz fuzz-build fuzz-long lint bench clean tokenizer tokenizer-check

all: build/assistd

build/assistd: $(REL_OBJ) build/rel/src/main.o
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(PKGLIBS)

build/asan/assistd: $(ASAN_OBJ) build/asan/src/main.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(PKGLIBS)

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_REL) -MMD -MP -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS_ASAN) -MMD -MP -c -o $@ $<

build/asan/unit/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CFLAGS_ASAN) -Itests/unit -o $@ $< $(ASAN_OBJ) $(LDFLAGS_ASAN) $(PKGLIBS) -lcmocka

asan: build/asan/assistd

deps:
	@scripts/deps.sh

run: deps
	$(MAKE) build/assistd
	./build/assistd

test: deps
	$(MAKE) lint
	$(MAKE) all asan $(UNIT_BIN) fuzz-build
	scripts/run-tests.sh

unit: $(UNIT_BIN)
	scripts/run-tests.sh unit

e2e: build/asan/assistd
	scripts/run-tests.sh e2e

# libFuzzer targets: clang, with ASan+UBSan, linking the library sources directly.
FUZZ_CFLAGS := $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined $(INCS) $(PKGCFLAGS)
build/fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZCC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(PKGLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	scripts/run-tests.sh fuzz

fuzz-long: fuzz-build
	FUZZ_SECONDS=3600 scripts/run-tests.sh fuzz

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

bench: build/assistd
	bench/run.sh

clean:
	rm -rf build

-include $(REL_OBJ:.o=.d) $(ASAN_OBJ:.o=.d) build/rel/src/main.d build/asan/src/main.d

# Developer entry points. Users install with luarocks (see README.md).
#   make            build the C core into build/
#   make test       install missing Debian packages (and spec/node's npm
#                   packages), build, run every spec, then again on an
#                   ASan+UBSan build, then under an aggressive garbage collector
#   make demo       start our example server, run examples/hello.lua against it
#   make valgrind   the spec suite under valgrind (leaks and errors fail)
#   make fuzz       libFuzzer on inbound messages for FUZZ_TIME s, then on the
#                   JSON codec for FUZZ_JSON_TIME s (fuzz/)
#   make bench      benchmarks (see bench/)
#   make conformance  JSONTestSuite (JSON_TEST_SUITE=checkout) through our server
#   make soak       memory and fairness under abuse, ~2 min (bench/soak.lua)
#   make install    luarocks make (what users run)
#   make lint       luacheck (Debian: lua-check) over lua/ bin/ spec/ bench/ examples/
#                   (first in make test)
#   make docs       the reference manual (LDoc, Debian lua-ldoc) into docs/reference/

LUA      ?= lua5.4
PYTHON   ?= /usr/bin/python3
CC       ?= gcc
MODULE    = jsonrpc_websocket/core.so
SRC       = src/core.c src/loop.c src/drive.c src/vhost.c src/opts.c src/conn.c src/connect.c src/send.c src/receive.c src/keepalive.c src/scan.c src/json.c src/encode.c src/frame.c src/server.c src/workers.c
HDR       = src/jrws.h src/conn.h
PKGS      = lua5.4 liblua5.4-dev libwebsockets-dev libssl-dev libcap-dev \
            libuv1-dev libwebsockets-evlib-uv lua-luv lua-cqueues \
            pkg-config lua-cjson lua-busted luarocks python3-websockets gcc make \
            openssl clang libclang-rt-14-dev lua-check aria2 lua-ldoc nginx

DEMO_PKGS = lua5.4 liblua5.4-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
            libssl-dev libcap-dev pkg-config gcc make

# make bench also plots (bench/run.lua, bench/scale.sh); floor_server links jansson
BENCH_PKGS = gnuplot-nox libjansson-dev

LUA_INC  := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LWS_LIBS := $(shell pkg-config --libs libwebsockets libcrypto libuv 2>/dev/null || echo -lwebsockets -lcrypto -luv) -lm
WARN      = -Wall -Wextra -Werror -Wshadow -Wsign-compare -Wundef \
            -Wwrite-strings -Wredundant-decls -Wdisabled-optimization \
            -Wdouble-promotion -Wmissing-declarations -Wstrict-prototypes \
            -Wmissing-prototypes -Wnested-externs -Wdeclaration-after-statement
CFLAGS   ?= -O2 -g
ALLFLAGS  = -std=gnu99 -fPIC $(WARN) $(CFLAGS) $(LUA_INC)
SANFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=all
# The 1,000-connection spec holds both ends in one process: over 2,000
# descriptors, past the 1,024 that many machines allow by default.
FD_ROOM   = n=$$(ulimit -n); [ "$$n" = unlimited ] || [ "$$n" -ge 4096 ] || ulimit -n 4096;
BUSTED    = busted --lua=$(LUA)

.PHONY: all deps test test-plain test-asan test-gc valgrind demo bench soak install clean lint conformance docs demo-deps

all: build/$(MODULE)

build/$(MODULE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALLFLAGS) -shared -o $@ $(SRC) $(LWS_LIBS)

build-asan/$(MODULE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 -fPIC $(WARN) $(SANFLAGS) $(LUA_INC) -shared -o $@ $(SRC) $(LWS_LIBS)

# Installs, with apt-get, whatever Debian package is missing.
# apt-get installs whatever of the Debian packages $(1) is missing.
define apt_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call apt_missing,$(PKGS))
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing: nodejs npm"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; }
	@{ test -d spec/node/node_modules/ws && test -d spec/node/node_modules/ganache; } || npm ci --prefix spec/node --no-audit --no-fund

test: deps
	$(MAKE) lint
	$(MAKE) test-plain
	$(MAKE) test-asan
	$(MAKE) test-gc
	$(MAKE) fuzz-short

test-plain: build/$(MODULE)
	$(FD_ROOM) $(BUSTED) --cpath='./build/?.so' spec

# The interpreter is not instrumented, so the ASan runtime is preloaded.
# Leak checking is valgrind's job (make valgrind): LSan would also report
# what lua5.4 and busted leave at exit.
test-asan: build-asan/$(MODULE)
	$(FD_ROOM) LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(BUSTED) --cpath='./build-asan/?.so' spec

# The suite with a collector that steps on every allocation.
test-gc: build/$(MODULE)
	$(FD_ROOM) JSONRPC_GC=aggressive $(BUSTED) --cpath='./build/?.so' spec

# --ignore-lua: busted must not re-execute itself outside valgrind.
valgrind: build/$(MODULE)
	$(FD_ROOM) JSONRPC_VALGRIND=1 valgrind --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite -q \
	  $(LUA) /usr/bin/busted --ignore-lua --cpath='./build/?.so' spec

# The reference manual, from docs/api/ (config.ld); generated, not committed.
docs:
	ldoc .

# What building and running the demo needs, and no more.
demo-deps:
	$(call apt_missing,$(DEMO_PKGS))

demo: demo-deps build/$(MODULE)
	sh examples/demo.sh

bench: build/$(MODULE)
	$(call apt_missing,$(BENCH_PKGS))
	$(MAKE) -C bench

# Every document of a JSONTestSuite checkout (github.com/nst/JSONTestSuite,
# not part of this repo) through our server's inbound path; counts of valid
# accepted, invalid rejected, implementation-defined either way.
# CODEC=cjson: the same with lua-cjson plugged in.
JSON_TEST_SUITE ?= ../JSONTestSuite
conformance: build/$(MODULE)
	$(LUA) bench/json_conformance.lua $(JSON_TEST_SUITE)

# Figures of issue 10, written to bench/out/soak.txt (see README "Limits").
soak: build/$(MODULE)
	$(FD_ROOM) $(LUA) bench/soak.lua

install:
	luarocks --lua-version=5.4 make --deps-mode=none jsonrpc-websocket-scm-1.rockspec

# Settings in .luacheckrc.
# Everything we ship or run: lua/ bin/ spec/ bench/ examples/ (first in make test).
lint:
	luacheck lua bin/jsonrpc-ws spec bench examples

clean:
	rm -rf build build-asan src/*.o jsonrpc_websocket

# ---- fuzzing: fuzz/fuzz_inbound.c and fuzz/fuzz_json.c, see README.md
# "Fuzzing" -------------------------------------------------------------
# fuzz_inbound links the C core statically (with -DJR_FUZZING, which adds a
# connection without a wsi) and runs the Lua module from lua/; fuzz_json
# links the codec alone (src/json.c, src/encode.c) and lua-cjson's module
# for the differential. Each fuzzes a copy of its corpus (fuzz/corpus,
# fuzz/corpus_json) in fuzz/out/, so the repo corpora stay as they are;
# crashes are written to fuzz/out/. make fuzz-short (in make test) splits
# FUZZ_SHORT seconds between the two: 3/4 inbound, 1/4 the codec.
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 300
FUZZ_JSON_TIME ?= 60
FUZZ_SHORT ?= 20
FUZZ_BIN    = fuzz/out/fuzz_inbound
FUZZ_JSON_BIN = fuzz/out/fuzz_json
FUZZ_FLAGS  = -std=gnu99 $(WARN) -g -O1 -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -DJR_FUZZING -DJR_FUZZ_ROOT='"$(CURDIR)"' $(LUA_INC)
FUZZ_LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

.PHONY: fuzz fuzz-short fuzz-run

$(FUZZ_BIN): fuzz/fuzz_inbound.c $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/fuzz_inbound.c $(SRC) $(FUZZ_LUA_LIBS) $(LWS_LIBS)

$(FUZZ_JSON_BIN): fuzz/fuzz_json.c src/json.c src/encode.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/fuzz_json.c src/json.c src/encode.c $(FUZZ_LUA_LIBS) -lm

fuzz: $(FUZZ_BIN) $(FUZZ_JSON_BIN)
	$(MAKE) fuzz-run FUZZ_SECONDS=$(FUZZ_TIME)
	$(MAKE) fuzz-run FUZZ_SECONDS=$(FUZZ_JSON_TIME) FUZZ_NAME=fuzz_json FUZZ_CORPUS=corpus_json

fuzz-short: $(FUZZ_BIN) $(FUZZ_JSON_BIN)
	$(MAKE) fuzz-run FUZZ_SECONDS=$$(( $(FUZZ_SHORT) * 3 / 4 ))
	$(MAKE) fuzz-run FUZZ_SECONDS=$$(( $(FUZZ_SHORT) / 4 )) FUZZ_NAME=fuzz_json FUZZ_CORPUS=corpus_json

# Fails on any finding; the last line says how many executions ran clean.
# FUZZ_NAME: the target (fuzz_inbound or fuzz_json), FUZZ_CORPUS its seeds.
FUZZ_NAME   ?= fuzz_inbound
FUZZ_CORPUS ?= corpus
fuzz-run:
	@mkdir -p fuzz/out/$(FUZZ_CORPUS) && cp fuzz/$(FUZZ_CORPUS)/* fuzz/out/$(FUZZ_CORPUS)/
	@echo "$(FUZZ_NAME): fuzzing for $(FUZZ_SECONDS) s, log in fuzz/out/$(FUZZ_NAME).log"
	@status=0; UBSAN_OPTIONS=print_stacktrace=1 \
	  fuzz/out/$(FUZZ_NAME) -max_len=65536 -max_total_time=$(FUZZ_SECONDS) -timeout=10 -detect_leaks=0 \
	    -print_final_stats=1 -artifact_prefix=fuzz/out/ fuzz/out/$(FUZZ_CORPUS) \
	    >fuzz/out/$(FUZZ_NAME).log 2>&1 || status=$$?; \
	  tail -n 30 fuzz/out/$(FUZZ_NAME).log; \
	  if [ $$status -ne 0 ]; then echo "$(FUZZ_NAME): FINDING (exit $$status), see fuzz/out/"; exit $$status; fi; \
	  grep -E '^Done [0-9]+ runs' fuzz/out/$(FUZZ_NAME).log | sed 's/^Done \([0-9]*\) runs.*/$(FUZZ_NAME): \1 executions ran clean/'

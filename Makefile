# atai: build, test and demo the Lua client for Archetype AI's Batch API.
#
#   make [LUA=lua5.4]     build build/$(LUA)/atai/core.so
#   make test             the busted suite under $(LUA) (default lua5.4)
#   make demo             examples/get_job.lua against the fake API server
#   make fake-server      the fake API in the foreground, to try atai by hand:
#                         prints its port, key, an export line to paste and
#                         the job ids it serves (FAKE_PORT, default 0 = any;
#                         FAKE_LATENCY = ms added to every response); Ctrl-C stops
#   make memcheck         the suite under valgrind
#   make test-all         make test under every Lua below; keeps going, then
#                         prints a per-version summary and fails if any failed
#   make test-nvim        atai inside headless Neovim (LuaJIT build), and a
#                         lua5.4 build refused there with a clear message
#   make rock-check       luarocks lint + luarocks make into a throw-away tree,
#                         then loads atai from that tree under lua5.4
#   make bench            get_job against a plain C libcurl + cjson loop
#                         (BENCH_N, BENCH_ROUNDS: see bench/run.sh)
#
# LUA is one of lua5.1 lua5.2 lua5.3 lua5.4 luajit: both the interpreter and
# its pkg-config name. Each gets its own build folder from the same sources.
# Missing Debian packages are installed by scripts/deps.sh (as root), or it
# prints the apt-get line to run.
#
# Variables: CC, CFLAGS (default -O2 -g), LUA, BUSTED_ARGS (extra busted args),
# FAKE_PORT and FAKE_LATENCY (make fake-server).

LUA        ?= lua5.4
CC         ?= cc
CFLAGS     ?= -O2 -g
BUILD      := build/$(LUA)
SO         := $(BUILD)/atai/core.so
SOURCES    := $(wildcard src/*.c src/*.h)
WARN       := -std=c99 -Wall -Wextra -Werror -pedantic
LUA_CFLAGS  = $(shell pkg-config --cflags $(LUA))
CURL_CFLAGS = $(shell pkg-config --cflags libcurl)
CURL_LIBS   = $(shell pkg-config --libs libcurl)
BUSTED_ENV  = env -u ATAI_API_KEY -u ATAI_API_ENDPOINT ATAI_TEST_LUA=$(LUA) ATAI_TEST_CPATH='./$(BUILD)/?.so'
BUSTED_RUN  = $(LUA) /usr/bin/busted --cpath='$(BUILD)/?.so' $(BUSTED_ARGS)
BUSTED      = $(BUSTED_ENV) $(BUSTED_RUN)

LUAS       := lua5.1 lua5.2 lua5.3 lua5.4 luajit
ROCKSPEC   := atai-scm-1.rockspec
FAKE_PORT    ?= 0
FAKE_LATENCY ?= 0

.PHONY: all deps test demo fake-server memcheck test-all test-nvim rock-check bench clean

all: $(SO)

deps:
	@sh scripts/deps.sh $(LUA) $(DEPS_EXTRA)

$(SO): $(SOURCES)
	@mkdir -p $(BUILD)/atai
	$(CC) $(CFLAGS) $(WARN) -fPIC $(LUA_CFLAGS) $(CURL_CFLAGS) -shared -o $@ src/core.c $(CURL_LIBS)

test: deps
	@$(MAKE) --no-print-directory $(SO)
	$(BUSTED)

demo: deps
	@$(MAKE) --no-print-directory $(SO)
	@sh scripts/demo.sh $(LUA) $(BUILD)

fake-server:
	@$(MAKE) --no-print-directory deps LUA=lua5.4
	@lua5.4 spec/support/fake_api.lua --user --port $(FAKE_PORT) \
	  --latency $(FAKE_LATENCY) --ttl 86400 --idle 86400

memcheck:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=valgrind
	@$(MAKE) --no-print-directory $(SO)
	$(BUSTED_ENV) LD_PRELOAD=$$(pkg-config --variable=libdir libcurl)/libcurl.so.4 \
	  valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
	  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	  --suppressions=spec/support/valgrind.supp $(BUSTED_RUN)

test-all:
	@MAKE='$(MAKE)' sh scripts/test_all.sh $(LUAS)

test-nvim:
	@$(MAKE) --no-print-directory deps LUA=luajit DEPS_EXTRA=neovim
	@$(MAKE) --no-print-directory build/luajit/atai/core.so LUA=luajit
	@$(MAKE) --no-print-directory build/lua5.4/atai/core.so LUA=lua5.4
	@sh scripts/test_nvim.sh build/luajit build/lua5.4

rock-check:
	@$(MAKE) --no-print-directory deps LUA=lua5.4 DEPS_EXTRA=luarocks
	@sh scripts/rock_check.sh $(ROCKSPEC) 5.4

bench:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=valgrind
	@sh bench/run.sh $(LUA)

clean:
	rm -rf build

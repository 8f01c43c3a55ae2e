# atai: build, test and demo the Lua client for Archetype AI's Batch API.
#
#   make [LUA=lua5.4]     build build/$(LUA)/atai/core.so
#   make test             the busted suite under $(LUA) (default lua5.4)
#   make demo             examples/get_job.lua against the fake API server
#   make memcheck         the suite under valgrind
#
# LUA is one of lua5.1 lua5.2 lua5.3 lua5.4 luajit: both the interpreter and
# its pkg-config name. Each gets its own build folder from the same sources.
# Missing Debian packages are installed by scripts/deps.sh (as root), or it
# prints the apt-get line to run.
#
# Variables: CC, CFLAGS (default -O2 -g), LUA, BUSTED_ARGS (extra busted args).

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
BUSTED      = env -u ATAI_API_KEY -u ATAI_API_ENDPOINT ATAI_TEST_LUA=$(LUA) ATAI_TEST_CPATH='./$(BUILD)/?.so' \
              $(LUA) /usr/bin/busted --cpath='$(BUILD)/?.so' $(BUSTED_ARGS)

.PHONY: all deps test demo memcheck clean

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

memcheck:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=valgrind
	@$(MAKE) --no-print-directory $(SO)
	LD_PRELOAD=$$(pkg-config --variable=libdir libcurl)/libcurl.so.4 \
	  valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
	  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	  --suppressions=spec/support/valgrind.supp $(BUSTED)

clean:
	rm -rf build

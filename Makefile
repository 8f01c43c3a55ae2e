# atai: build, test and demo the Lua client for Archetype AI's Batch API.
#
#   make [LUA=lua5.4]     build build/$(LUA)/atai/core.so, and build/host
#                         (examples/host.c: a C host embedding Lua 5.4)
#   make test             the busted suite under $(LUA) (default lua5.4)
#   make demo             examples/get_job.lua against the fake API server
#   make fake-server      the fake API in the foreground, to try atai by hand:
#                         prints its port, key, one line to paste (the
#                         endpoint and key, and make env's LUA_PATH,
#                         LUA_CPATH and PATH) and the job ids it serves
#                         (FAKE_PORT, default 0 = any; FAKE_LATENCY = ms
#                         added to every response); Ctrl-C stops
#   make memcheck         the suite under valgrind (but spec/cli_spec.lua: part
#                         of its work is in subprocesses that valgrind does not
#                         watch, and it compares request times),
#                         its big uploads and downloads at ATAI_TEST_BIG_MB=4 MiB
#                         (200 in make test)
#   make test-all         make test under every Lua below; keeps going, then
#                         prints a per-version summary and fails if any failed
#   make test-nvim        atai inside headless Neovim (LuaJIT build), and a
#                         lua5.4 build refused there with a clear message;
#                         then the plugin through the runtimepath install
#                         (after make nvim): one totals line for both
#   make nvim             atai.core for Neovim's LuaJIT into lua/atai/core.so
#                         (the plugin's build step; never installs packages:
#                         needs cc, LuaJIT's headers through pkg-config luajit
#                         or LUA_INCDIR=, and libcurl's; names what is missing)
#   make rock-check       atai-scm-1.rockspec: luarocks lint + luarocks make into
#                         a throw-away tree, then loads atai from that tree under
#                         lua5.4 and runs the tree's bin/atai version; then the
#                         same for the release rock (make dist of ATAI_VERSION),
#                         installed offline with luarocks install
#   make dist VERSION=x.y.z  the release files into dist/: atai-x.y.z.tar.gz
#                         (git archive of HEAD), atai-x.y.z-1.rockspec (made
#                         from atai-scm-1.rockspec), atai-x.y.z-1.src.rock and
#                         SHA256SUMS; fails unless x.y.z is ATAI_VERSION of
#                         src/atai.h, the one place the version lives
#   make install          Lua files to $(PREFIX)/share/lua/<ver>, core.so to
#                         $(PREFIX)/lib/lua/<ver>/atai, bin/atai to $(PREFIX)/bin
#                         (shebang: the chosen LUA), man/atai.1 to
#                         $(PREFIX)/share/man/man1; PREFIX=/usr/local, DESTDIR=
#                         (paths may hold spaces)
#   make uninstall        removes what make install put there
#   make man              regenerates man/atai.1 from the CLI's help data
#   make callgraph        the calls between src/'s C files (scripts/callgraph.lua):
#                         fails on an upward call, a cycle, a function over
#                         60 lines, or atai.h's lists of offers out of date
#   make lint             luacheck (.luacheckrc) over lua/, bin/, spec/, scripts/,
#                         bench/, examples/, plugin/
#   make docs             regenerates doc/reference.md from lua/atai/types.lua
#                         and atai.config.OPTIONS (scripts/gen_reference.lua)
#   make docs-check       fails when the committed doc/reference.md differs
#                         from a fresh generation
#   make doctest          runs every lua and sh block of README.md and doc/*.md
#                         and every examples/*.lua script (the command its
#                         header shows) against the fake API server
#                         (scripts/doctest.lua: prelude, skip markers); ends
#                         with "doctest: N blocks ran, M not run"
#   make env              prints `export LUA_PATH=...; export LUA_CPATH=...;
#                         export PATH=...` for using this checkout in place:
#                         eval "$$(make -s env)"
#   make bench            get_job against a plain C libcurl + cjson loop
#                         (BENCH_N, BENCH_ROUNDS: see bench/run.sh)
#   make sanitize         the lua5.4 suite with atai.core built by clang with
#                         ASan + UBSan (build/sanitize), leak checking on;
#                         fails on any sanitizer report (~1 min)
#   make fuzz             the libFuzzer harnesses of fuzz/ (JSON decode,
#                         error envelope, JSON encode, response headers,
#                         URLs), FUZZ_SECONDS each (default 20), from
#                         fuzz/corpus/<name>; fails on a crash, leak or timeout
#
# LUA is one of lua5.1 lua5.2 lua5.3 lua5.4 luajit: both the interpreter and
# its pkg-config name. Each gets its own build folder from the same sources.
# Missing Debian packages are installed by scripts/deps.sh (as root), or it
# prints the apt-get line to run.
#
# Variables: CC, CFLAGS (default -O2 -g), LUA, BUSTED_ARGS (extra busted args),
# FAKE_PORT and FAKE_LATENCY (make fake-server), VERSION (make dist),
# DOCTEST_ARGS (make doctest: -v, or the files to run), PREFIX and DESTDIR (install,
# uninstall).
# FUZZ_SECONDS, CLANG_VERSION (14: clang-14, libclang-rt-14-dev).

LUA        ?= lua5.4
CC         ?= cc
CFLAGS     ?= -O2 -g
BUILD      := build/$(LUA)
SO         := $(BUILD)/atai/core.so
HOST       := build/host
SOURCES    := $(wildcard src/*.c src/*.h)
WARN       := -std=c99 -Wall -Wextra -Werror -pedantic
LUA_CFLAGS  = $(shell pkg-config --cflags $(LUA))
CURL_CFLAGS = $(shell pkg-config --cflags libcurl)
CURL_LIBS   = $(shell pkg-config --libs libcurl)
BUSTED_ENV  = env -u ATAI_API_KEY -u ATAI_API_KEY_FILE -u ATAI_API_ENDPOINT ATAI_TEST_LUA=$(LUA) ATAI_TEST_CPATH='./$(BUILD)/?.so'
BUSTED_RUN  = $(LUA) /usr/bin/busted --cpath='$(BUILD)/?.so' $(BUSTED_ARGS)
BUSTED      = $(BUSTED_ENV) $(BUSTED_RUN)

LUAS       := lua5.1 lua5.2 lua5.3 lua5.4 luajit
FAKE_PORT    ?= 0
FAKE_LATENCY ?= 0
ROCKSPECS  := atai-scm-1.rockspec
# The version of atai: ATAI_VERSION in src/atai.h, nowhere else.
ATAI_VERSION := $(shell sed -n 's/^\#define ATAI_VERSION "\(.*\)"$$/\1/p' src/atai.h)

# Install layout: the Lua version (5.1 for LuaJIT) names the folders.
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_VER     = $(shell $(LUA) -e 'io.write((_VERSION:gsub("^Lua ", "")))')
LUA_BIN     = $(shell command -v $(LUA) || echo /usr/bin/env $(LUA))
LUA_FILES   = $(shell find lua -type f -name '*.lua' | LC_ALL=C sort)
INST_LUA    = $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VER)
INST_LIB    = $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VER)
INST_BIN    = $(DESTDIR)$(PREFIX)/bin
INST_MAN    = $(DESTDIR)$(PREFIX)/share/man/man1
MAN_PAGE   := man/atai.1

.PHONY: all deps test demo fake-server memcheck test-all test-nvim nvim rock-check dist docs docs-check doctest bench clean install uninstall env man lint callgraph

all: $(SO) $(HOST)

deps:
	@sh scripts/deps.sh $(LUA) $(DEPS_EXTRA)

$(SO): $(SOURCES)
	@mkdir -p $(BUILD)/atai
	$(CC) $(CFLAGS) $(WARN) -fPIC $(LUA_CFLAGS) $(CURL_CFLAGS) -shared -o $@ src/core.c $(CURL_LIBS)

# Lua 5.4 whatever LUA is; -Wl,-E exports its C API to the modules it loads.
$(HOST): examples/host.c
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ examples/host.c $$(pkg-config --cflags --libs lua5.4) -Wl,-E

test: deps
	@$(MAKE) --no-print-directory $(SO) $(HOST)
	$(BUSTED)

demo: deps
	@$(MAKE) --no-print-directory $(SO)
	@sh scripts/demo.sh $(LUA) $(BUILD)

# The line it prints to paste also sets LUA_PATH, LUA_CPATH and PATH for
# this checkout (make env), so that examples/, bin/atai and the
# snippets of README.md and doc/ run in the shell it is pasted into.
fake-server:
	@$(MAKE) --no-print-directory deps LUA=lua5.4
	@lua5.4 spec/support/fake_api.lua --user --port $(FAKE_PORT) \
	  --latency $(FAKE_LATENCY) --ttl 86400 --idle 86400 \
	  --paste-also "$$($(MAKE) -s --no-print-directory env LUA=lua5.4)"

memcheck:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=valgrind
	@$(MAKE) --no-print-directory $(SO) $(HOST)
	$(BUSTED_ENV) ATAI_TEST_BIG_MB=4 ATAI_TEST_SLOW=1 LD_PRELOAD="$$(pkg-config --variable=libdir libcurl)/libcurl.so.4 $$(pkg-config --variable=libdir libcurl)/liblua5.4-luv.so.0" \
	  valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
	  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	  --suppressions=spec/support/valgrind.supp $(BUSTED_RUN) --exclude-pattern=cli_spec

test-all:
	@MAKE='$(MAKE)' sh scripts/test_all.sh $(LUAS)

test-nvim:
	@$(MAKE) --no-print-directory deps LUA=luajit DEPS_EXTRA=neovim
	@$(MAKE) --no-print-directory build/luajit/atai/core.so LUA=luajit
	@$(MAKE) --no-print-directory build/lua5.4/atai/core.so LUA=lua5.4
	@$(MAKE) --no-print-directory nvim
	@sh scripts/test_nvim.sh build/luajit build/lua5.4

# The Neovim plugin's build step: no deps.sh (no apt-get), only the checks
# of scripts/build_nvim.sh. LUA_INCDIR= overrides pkg-config luajit.
NVIM_SO := lua/atai/core.so

nvim: $(NVIM_SO)

$(NVIM_SO): $(SOURCES) scripts/build_nvim.sh
	@CC='$(CC)' CFLAGS='$(CFLAGS)' LUA_INCDIR='$(LUA_INCDIR)' sh scripts/build_nvim.sh $@

rock-check:
	@$(MAKE) --no-print-directory deps LUA=lua5.4 DEPS_EXTRA=luarocks
	@for r in $(ROCKSPECS); do sh scripts/rock_check.sh $$r 5.4 || exit 1; done
	@$(MAKE) --no-print-directory dist VERSION=$(ATAI_VERSION)
	@sh scripts/rock_check.sh dist/atai-$(ATAI_VERSION)-1.src.rock 5.4

dist:
	@$(MAKE) --no-print-directory deps LUA=lua5.4 DEPS_EXTRA=luarocks
	@sh scripts/dist.sh '$(VERSION)'

# The reference is generated under lua5.4 with this checkout's atai.core
# (atai.config, which holds OPTIONS, loads it).
GEN_REFERENCE = LUA_CPATH='build/lua5.4/?.so;;' lua5.4 scripts/gen_reference.lua

docs:
	@$(MAKE) --no-print-directory deps LUA=lua5.4
	@$(MAKE) -s --no-print-directory build/lua5.4/atai/core.so LUA=lua5.4 >&2
	@mkdir -p doc
	@$(GEN_REFERENCE) doc/reference.md
	@echo "docs: doc/reference.md generated"

docs-check:
	@$(MAKE) --no-print-directory deps LUA=lua5.4
	@$(MAKE) -s --no-print-directory build/lua5.4/atai/core.so LUA=lua5.4 >&2
	@tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; $(GEN_REFERENCE) "$$tmp" && \
	if diff -u doc/reference.md "$$tmp"; then echo "docs-check: doc/reference.md is up to date"; \
	else echo "docs-check: doc/reference.md differs from a fresh generation: run make docs and commit it" >&2; exit 1; fi

# lua5.4 runs the blocks and examples; the LuaJIT build is for the Neovim
# example, which runs in headless Neovim.
doctest:
	@$(MAKE) --no-print-directory deps LUA=luajit DEPS_EXTRA=neovim
	@$(MAKE) -s --no-print-directory build/lua5.4/atai/core.so LUA=lua5.4 >&2
	@$(MAKE) -s --no-print-directory build/luajit/atai/core.so LUA=luajit >&2
	@lua5.4 scripts/doctest.lua $(DOCTEST_ARGS)

# Every file under lua/ keeps its place below share/lua/<ver> (atai/init.lua
# is found through ?/init.lua, on every Lua's default path).
# Paths are quoted (a DESTDIR with a space works); install(1) replaces a
# file rather than writing through a symlink, and bin/atai is written to a
# new temporary file beside it and renamed over the old name (a symlink
# planted at INST_BIN/atai is replaced, its target untouched).
install: $(SO)
	@test -n "$(LUA_VER)" || { echo "install: cannot run $(LUA)" >&2; exit 1; }
	@for f in $(LUA_FILES); do \
	  d="$(INST_LUA)/$$(dirname $${f#lua/})"; \
	  install -d "$$d" && install -m 644 "$$f" "$$d/" || exit 1; \
	done
	install -d "$(INST_LIB)/atai" "$(INST_BIN)" "$(INST_MAN)"
	install -m 755 $(SO) "$(INST_LIB)/atai/core.so"
	install -m 644 $(MAN_PAGE) "$(INST_MAN)/atai.1"
	tmp=$$(mktemp "$(INST_BIN)/.atai.XXXXXX") && \
	  { sed '1s|.*|#!$(LUA_BIN)|' bin/atai > "$$tmp" && chmod 755 "$$tmp" && \
	    mv -f "$$tmp" "$(INST_BIN)/atai"; } || { rm -f "$$tmp"; exit 1; }
	@echo "installed atai for $(LUA) under $(DESTDIR)$(PREFIX)"

uninstall:
	@test -n "$(LUA_VER)" || { echo "uninstall: cannot run $(LUA)" >&2; exit 1; }
	rm -f "$(INST_BIN)/atai" "$(INST_LIB)/atai/core.so" "$(INST_MAN)/atai.1"
	@for f in $(LUA_FILES); do rm -f "$(INST_LUA)/$${f#lua/}"; done
	-@rmdir "$(INST_LIB)/atai" "$(INST_LUA)/atai/cli" "$(INST_LUA)/atai" 2>/dev/null || true

# man/atai.1 from the help data (atai.cli.doc); committed, so that the rock
# carries it (spec/cli_spec.lua checks it is up to date).
man: $(SO)
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/?.so;;' \
	  $(LUA) -e 'io.write(require("atai.cli.meta").meta.man())' > $(MAN_PAGE).tmp
	mv -f $(MAN_PAGE).tmp $(MAN_PAGE)

# The build goes to stderr, so that stdout stays eval-able.
env:
	@$(MAKE) --no-print-directory $(SO) >&2
	@echo "export LUA_PATH='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'; \
	export LUA_CPATH='$(CURDIR)/$(BUILD)/?.so;;'; export PATH='$(CURDIR)/bin':\"\$$PATH\""

# luacheck (Debian lua-check) over every Lua file: lua/, bin/atai, spec/,
# scripts/, bench/, examples/, plugin/ (.luacheckrc's include_files; its
# files[] give spec/ busted's globals and the Neovim files vim). LINT_FILES
# narrows it (e.g. LINT_FILES=spec).
LINT_FILES ?= .
callgraph:
	@$(MAKE) --no-print-directory deps LUA=lua5.4
	lua5.4 scripts/callgraph.lua

lint:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=lua-check
	luacheck -q $(LINT_FILES)

bench:
	@$(MAKE) --no-print-directory deps DEPS_EXTRA=valgrind
	@sh bench/run.sh $(LUA)

# ---- make sanitize, make fuzz: clang's sanitizers and libFuzzer ----------
# CORE_SOURCES: the .c files compiled together into atai.core (today only
# src/core.c, which includes the others). CLANG_VERSION picks clang-N and
# its matching libclang-rt-N-dev (libFuzzer, the ASan runtime) and llvm-N
# (llvm-symbolizer).
CORE_SOURCES  := src/core.c
CLANG_VERSION ?= 14
SAN_CC        := clang-$(CLANG_VERSION)
SAN_DEPS      := clang-$(CLANG_VERSION) libclang-rt-$(CLANG_VERSION)-dev llvm-$(CLANG_VERSION)
SAN_FLAGS     := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer -g -O1
SAN_BUILD     := build/sanitize
SAN_SO        := $(SAN_BUILD)/atai/core.so
SAN_RUNTIME    = $$($(SAN_CC) -print-file-name=libclang_rt.asan-x86_64.so)
SYMBOLIZER    := /usr/lib/llvm-$(CLANG_VERSION)/bin/llvm-symbolizer
LUA54_CFLAGS   = $(shell pkg-config --cflags lua5.4)
LUA54_LIBS     = $(shell pkg-config --libs lua5.4)
FUZZ_BUILD    := build/fuzz
FUZZERS       := json_decode error_envelope json_encode headers url
FUZZ_BINS     := $(FUZZERS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_SECONDS  ?= 20
FUZZ_FLAGS    := -fsanitize=fuzzer,address,undefined,float-cast-overflow \
                 -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1

.PHONY: sanitize fuzz

# Same sources and warnings as $(SO), always for lua5.4, sanitizer flags.
$(SAN_SO): $(SOURCES)
	@mkdir -p $(@D)
	$(SAN_CC) $(SAN_FLAGS) $(WARN) -fPIC $(LUA54_CFLAGS) $(CURL_CFLAGS) -shared -o $@ \
	  $(CORE_SOURCES) $(CURL_LIBS)

sanitize:
	@$(MAKE) --no-print-directory deps LUA=lua5.4 DEPS_EXTRA='$(SAN_DEPS)'
	@$(MAKE) --no-print-directory $(SAN_SO) $(HOST)
	@sh scripts/sanitize.sh $(SAN_BUILD) "$(SAN_RUNTIME)" $(SYMBOLIZER) $(BUSTED_ARGS)

# One libFuzzer binary per fuzz/<name>.c; they include the src/ files they test.
$(FUZZ_BUILD)/fuzz_%: fuzz/%.c fuzz/*.h $(SOURCES)
	@mkdir -p $(@D)
	$(SAN_CC) $(FUZZ_FLAGS) $(WARN) -Wno-unused-function $(LUA54_CFLAGS) $(CURL_CFLAGS) \
	  -o $@ $< $(LUA54_LIBS) $(CURL_LIBS)

fuzz:
	@$(MAKE) --no-print-directory deps LUA=lua5.4 DEPS_EXTRA='$(SAN_DEPS)'
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(SYMBOLIZER) $(FUZZERS)

clean:
	rm -rf build dist

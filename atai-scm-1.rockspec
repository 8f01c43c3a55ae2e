-- atai-scm-1.rockspec: LuaRocks build of the atai client (C module atai.core
-- on libcurl + lua-cjson, the pure-Lua modules under lua/, and the atai
-- command) from a checkout. A release's rockspec, atai-X.Y.Z-1.rockspec, is
-- generated from this one by `make dist VERSION=X.Y.Z` (scripts/dist.sh):
-- only its header, version and source differ.
--
--   luarocks make atai-scm-1.rockspec            (from a checkout)
--
-- libcurl is found by its library (libcurl.so) under /usr/local, /usr or /;
-- for another prefix pass CURL_DIR=... or CURL_INCDIR=... CURL_LIBDIR=...
-- (see doc/getting-started.md, "Installing with LuaRocks").
rockspec_format = "3.0"
package = "atai"
version = "scm-1"

source = {
  url = "git+https://github.com/archetypeai/atai-lua.git",
  branch = "main",
}

description = {
  summary = "Lua client for Archetype AI's Batch Processing API",
  detailed = [[
atai talks to Archetype AI's Batch API (jobs, inputs, outputs, pipelines)
from Lua 5.1, 5.2, 5.3, 5.4, LuaJIT and Neovim. The transport is a small C
module (atai.core) on libcurl that decodes JSON with lua-cjson, classifies
errors and retries; the public API is plain Lua.
]],
  homepage = "https://github.com/archetypeai/atai-lua",
  license = "MIT",
  labels = { "api", "http", "client", "curl", "json", "archetype-ai", "neovim" },
  issues_url = "https://github.com/archetypeai/atai-lua/issues",
}

dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}

external_dependencies = {
  CURL = {
    -- Only the library is probed: Debian/Ubuntu keep curl/curl.h in a
    -- multiarch folder (/usr/include/x86_64-linux-gnu) that LuaRocks does
    -- not search, while the compiler finds it there by itself.
    library = "curl",
  },
}

build = {
  type = "builtin",
  modules = {
    -- One translation unit: src/core.c #includes the other .c files.
    ["atai.core"] = {
      sources = { "src/core.c" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    -- Every file under lua/ (spec/rockspec_spec.lua checks this list).
    ["atai"] = "lua/atai/init.lua",
    ["atai.api"] = "lua/atai/api.lua",
    ["atai.check"] = "lua/atai/check.lua",
    ["atai.cli"] = "lua/atai/cli/init.lua",
    ["atai.cli.args"] = "lua/atai/cli/args.lua",
    ["atai.cli.commands"] = "lua/atai/cli/commands.lua",
    ["atai.cli.doc"] = "lua/atai/cli/doc.lua",
    ["atai.cli.files"] = "lua/atai/cli/files.lua",
    ["atai.cli.job"] = "lua/atai/cli/job.lua",
    ["atai.cli.list"] = "lua/atai/cli/list.lua",
    ["atai.cli.meta"] = "lua/atai/cli/meta.lua",
    ["atai.cli.output"] = "lua/atai/cli/output.lua",
    ["atai.cli.pipeline"] = "lua/atai/cli/pipeline.lua",
    ["atai.cli.progress"] = "lua/atai/cli/progress.lua",
    ["atai.config"] = "lua/atai/config.lua",
    ["atai.download"] = "lua/atai/download.lua",
    ["atai.files"] = "lua/atai/files.lua",
    ["atai.handle"] = "lua/atai/handle.lua",
    ["atai.health"] = "lua/atai/health.lua",
    ["atai.methods"] = "lua/atai/methods.lua",
    ["atai.nvim"] = "lua/atai/nvim/init.lua",
    ["atai.nvim.buffers"] = "lua/atai/nvim/buffers.lua",
    ["atai.nvim.commands"] = "lua/atai/nvim/commands.lua",
    ["atai.nvim.config"] = "lua/atai/nvim/config.lua",
    ["atai.pages"] = "lua/atai/pages.lua",
    ["atai.stream"] = "lua/atai/stream.lua",
    ["atai.types"] = "lua/atai/types.lua",
    ["atai.uv"] = "lua/atai/uv.lua",
    ["atai.wait"] = "lua/atai/wait.lua",
  },
  -- The command line: LuaRocks puts a wrapper in the tree's bin/ that runs
  -- it with this tree's Lua and paths.
  install = {
    bin = { atai = "bin/atai" },
  },
  -- man/atai.1: LuaRocks installs no man pages; doc/getting-started.md shows `man -l`.
  -- plugin/ and doc/: the Neovim plugin (:Atai, :help atai) for
  -- rocks.nvim and luarocks.nvim, which add the rock's folder to the
  -- runtimepath.
  copy_directories = { "examples", "man", "plugin", "doc" },
}

-- `luarocks make && luarocks test` from a checkout: busted reads .busted,
-- which finds lua/ and the atai/core.so that `luarocks make` left in the
-- checkout. The fake API server it starts needs lua5.4 on PATH (or
-- ATAI_FAKE_LUA naming a Lua 5.3+ with LuaSocket and lua-cjson). luv is
-- the libuv loop spec/uv_spec.lua drives atai.uv from.
test_dependencies = {
  "busted",
  "luasocket",
  "luv",
}

test = {
  type = "command",
  command = "busted",
}

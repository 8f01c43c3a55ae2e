-- .luacheckrc: luacheck's settings (make lint; .ci/run). atai runs under
-- Lua 5.1 to 5.4 and LuaJIT: "max" knows every version's globals (jit,
-- unpack, table.unpack...). Lines up to 120 columns, as the code is written.
std = "max"
max_line_length = 120
codes = true

-- What `luacheck .` (make lint) checks: every Lua file of the checkout but
-- the rockspecs (luarocks lint's) and what build/ holds. bin/atai has no
-- .lua suffix.
include_files = {
  "lua/**/*.lua", "bin/atai", "spec/**/*.lua", "scripts/*.lua", "bench/*.lua", "examples/*.lua",
  "plugin/*.lua", ".luacheckrc", ".busted",
}

-- LuaLS stubs (---@meta, never run): their arguments are documentation, and
-- an annotation stays on one line, however long (scripts/gen_reference.lua
-- reads them line by line).
files["lua/atai/types.lua"] = { ignore = { "212", "241" }, max_line_length = false }

-- The specs run under busted (describe, it, assert, spy, ...); a table of
-- cases keeps one case per row, so their rows run longer.
files["spec"] = { std = "+busted", max_line_length = 150 }
-- The fake servers and helpers are plain Lua.
files["spec/support"] = { std = "max" }

-- Neovim's Lua: the vim global, read-only but for the tables that are meant
-- to be written (options, variables) and vim.notify, which tests replace.
local writable = { read_only = false, other_fields = true }
local nvim = {
  read_globals = {
    vim = {
      other_fields = true,
      fields = {
        g = writable, b = writable, w = writable, o = writable, bo = writable, wo = writable, v = writable,
        notify = { read_only = false },
      },
    },
  },
}
files["lua/atai/nvim"] = nvim
files["lua/atai/health.lua"] = nvim
files["plugin"] = nvim
files["examples/nvim_job_status.lua"] = nvim
-- spec/nvim runs inside Neovim with its own harness, not busted.
files["spec/nvim"] = { std = "max", read_globals = nvim.read_globals, max_line_length = 150 }

-- .luacheckrc: luacheck's settings (make lint; .ci/run). atai runs under
-- Lua 5.1 to 5.4 and LuaJIT: "max" knows every version's globals (jit,
-- unpack, table.unpack...). Lines up to 120 columns, as the code is written.
std = "max"
max_line_length = 120
codes = true

-- bin/atai has no .lua suffix.
include_files = { "lua/**/*.lua", "bin/atai", "spec/**/*.lua", ".luacheckrc" }

-- The specs run under busted (describe, it, assert, spy, ...).
files["spec"] = { std = "+busted" }

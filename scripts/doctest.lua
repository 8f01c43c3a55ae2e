--- doctest.lua: the documentation runs (make doctest). Every fenced `lua`
-- and `sh` block of README.md and doc/*.md, and every examples/*.lua
-- script, runs against the fake API server (spec/support/fake_api.lua);
-- any failure fails the run.
--
--   lua5.4 scripts/doctest.lua [-v] [FILE.md|examples/NAME.lua ...]
--   (make doctest: all of them; -v prints every block's output)
--
-- Run from the repository root with atai.core built for lua5.4 (and for
-- LuaJIT, for the Neovim example). Each block runs in an environment like
-- the one `make fake-server`'s line sets up: ATAI_API_ENDPOINT and
-- ATAI_API_KEY name the fake server (demo jobs on, its state reset before
-- each block), LUA_PATH/LUA_CPATH find this checkout's lua/ and
-- build/lua5.4, PATH starts with its bin/. Its working folder is a fresh
-- one in which the checkout's top-level entries appear (symbolic links:
-- examples/..., bin/atai, build/... work as from the root), and the files
-- the snippets use as the user's own: volve_inference.csv, normal.csv and
-- anomaly.csv (small sensor CSVs) and job.json (a job spec on
-- volve_inference.csv). TMPDIR is a fresh folder too, and POLL_INTERVAL
-- (read by the examples that wait for a job) is 0.1 s. A block stops at
-- 60 seconds.
--
-- The prelude of a `lua` block (run by lua5.4 before it, so a snippet may
-- use them without defining them):
--
--   atai   = require("atai")
--   client = atai.new()                       -- the fake server's endpoint and key
--   id     = "job_2abc3def4ghi5jkl6mno7pqr"   -- a COMPLETED job the server serves
--
-- An `sh` block runs under `sh -e` (the first failing command fails it).
-- A block that must not run carries, on the line just before its fence,
--
--   <!-- doctest: skip (REASON) -->
--
-- with REASON one of: root (needs root: apt-get, sudo, make install under
-- /usr), network (talks to the real API or the internet), recursive (runs
-- make targets that build or test the project: make test, make dist...),
-- fragment (not a whole program: a signature, a part of a larger one, a
-- config file of another tool). An example script runs the command its
-- header shows, the first comment line that starts with "--   lua5.4
-- examples/" or "--   nvim " (one of them per example), with the comment
-- lines it continues with a trailing backslash.
--
-- Ends with one line "doctest: N blocks ran, M not run" (example scripts
-- count as blocks), then one line per skip reason; exits 1 when a block
-- failed, 2 on a usage or marker error.

package.path = "./?.lua;" .. package.path
local server = require("spec.support.server")

local ROOT = assert(io.popen("pwd")):read("*l")
local REASONS = { root = true, network = true, recursive = true, fragment = true }
local REASON_ORDER = { "root", "network", "recursive", "fragment" }
local BLOCK_SECONDS = 60
-- The user's files of the working folder.
local CSV = "timestamp,xmeas_1,xmeas_2\n2026-01-01T00:00:00Z,0.25,0.5\n2026-01-01T00:00:01Z,0.26,0.51\n"
local USER_FILES = {
  ["volve_inference.csv"] = CSV,
  ["normal.csv"] = CSV,
  ["anomaly.csv"] = CSV,
  ["job.json"] = [[
{
  "name": "volve-classification",
  "pipeline_type": "batch",
  "pipeline_key": "machine-state-classification",
  "inputs": { "worker.inference": [ { "file_id": "volve_inference.csv" } ] }
}
]],
}
local PRELUDE = 'atai = require("atai"); client = atai.new(); id = "job_2abc3def4ghi5jkl6mno7pqr"'

local verbose = false
local targets = {}
for _, a in ipairs(arg) do
  if a == "-v" then verbose = true else targets[#targets + 1] = a end
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  p:close()
  return lines
end

local function usage_error(message)
  io.stderr:write("doctest: ", message, "\n")
  os.exit(2)
end

-- ================================================================ blocks

-- Every fenced lua/sh block of a Markdown file: {file, line (of the
-- fence), lang, code, skip (a reason or nil)}. Other fences are passed over.
local function blocks_of(path)
  local blocks, current = {}, nil
  local previous, n = "", 0
  for line in (read_file(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if current then
      if line:match("^%s*```%s*$") then
        current.code = table.concat(current.lines, "\n") .. "\n"
        blocks[#blocks + 1] = current
        current = nil
      else
        current.lines[#current.lines + 1] = line
      end
    else
      local fence, lang = line:match("^%s*(```+)%s*([%w_+-]*)")
      if fence then
        local marker = previous:match("^%s*<!%-%-%s*doctest:(.-)%-%->%s*$")
        local skip
        if marker then
          skip = marker:match("^%s*skip%s+%((%a+)%)%s*$")
          if not skip or not REASONS[skip] then
            usage_error(("%s:%d: bad marker %q: <!-- doctest: skip (root|network|recursive|fragment) -->")
              :format(path, n - 1, previous))
          end
        end
        current = { file = path, line = n, lang = lang, lines = {}, skip = skip }
        if lang ~= "lua" and lang ~= "sh" then current.other = true end
      end
    end
    previous = line
  end
  if current then usage_error(("%s:%d: fence never closed"):format(path, current.line)) end
  local wanted = {}
  for _, b in ipairs(blocks) do if not b.other then wanted[#wanted + 1] = b end end
  return wanted
end

-- An example script as a block: the command of its header.
local function example_block(path)
  local command, n
  local i = 0
  for line in io.lines(path) do
    i = i + 1
    if not line:match("^%-%-") and not line:match("^%s*$") then break end
    local c = line:match("^%-%-   (lua5%.4 examples/.*)$") or line:match("^%-%-   (nvim .*)$")
    if command and command:match("\\$") then
      command = command .. "\n" .. (line:match("^%-%-(.*)$") or "")
    elseif c and not command then
      command, n = c, i
    end
  end
  if not command then
    usage_error(path .. ": no run line in its header (\"--   lua5.4 " .. path .. " ...\")")
  end
  return { file = path, line = n, lang = "sh", code = command .. "\n", example = true }
end

-- ================================================================ running

local function environment(srv, tmp)
  local vars = {
    ATAI_API_ENDPOINT = srv.endpoint,
    ATAI_API_KEY = srv.key,
    LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
    LUA_CPATH = ROOT .. "/build/lua5.4/?.so;;",
    PATH = ROOT .. "/bin:" .. os.getenv("PATH"),
    POLL_INTERVAL = "0.1", -- the examples' pause between polls of a job (default: seconds)
    TMPDIR = tmp,
    NO_COLOR = "1",
  }
  local names = {}
  for k in pairs(vars) do names[#names + 1] = k end
  table.sort(names)
  local parts = { "env -u ATAI_API_KEY_FILE" }
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. quote(vars[k]) end
  return table.concat(parts, " ")
end

-- Runs one block; returns ok, output (stdout and stderr together).
local function run_block(block, srv, tmp)
  local file = tmp .. "/block"
  local command
  if block.lang == "lua" then
    -- The block keeps its line numbers: its first line is line block.line + 1
    -- of the Markdown file, which error messages name.
    write_file(file, PRELUDE .. ("\n"):rep(block.line) .. block.code)
    command = ("lua5.4 -e %s %s"):format(quote(([[
      local f = assert(io.open(%q, "rb")); local text = f:read("*a"); f:close()
      assert(load(text, %q))()]]):format(file, "@" .. block.file)), "")
  else
    write_file(file, block.code)
    command = "sh -e " .. quote(file)
  end
  local out = tmp .. "/out"
  local cmd = ("cd %s && %s timeout %d %s </dev/null >%s 2>&1; echo $?"):format(
    quote(tmp .. "/work"), environment(srv, tmp), BLOCK_SECONDS, command, quote(out))
  local status = tonumber(lines_of(cmd)[1])
  local output = read_file(out)
  if status == 124 then output = output .. ("\n(stopped after %d s)\n"):format(BLOCK_SECONDS) end
  return status == 0, output
end

-- A fresh working folder tmp/work: links to the checkout's entries, the user's files.
local TOP_LEVEL = lines_of("ls " .. quote(ROOT))
local function prepare_folder(tmp)
  os.execute(("rm -rf %s/* && mkdir -p %s/work"):format(quote(tmp), quote(tmp)))
  for _, name in ipairs(TOP_LEVEL) do
    os.execute(("ln -s %s %s"):format(quote(ROOT .. "/" .. name), quote(tmp .. "/work/" .. name)))
  end
  for name, text in pairs(USER_FILES) do write_file(tmp .. "/work/" .. name, text) end
end

local function indent(text)
  return (text:gsub("\n$", ""):gsub("([^\n]*)", "    %1"))
end

-- ================================================================ main

local files = {}
if #targets == 0 then
  files[#files + 1] = "README.md"
  for _, f in ipairs(lines_of("ls doc/*.md 2>/dev/null | LC_ALL=C sort")) do files[#files + 1] = f end
  for _, f in ipairs(lines_of("ls examples/*.lua | LC_ALL=C sort")) do files[#files + 1] = f end
else
  files = targets
end

local blocks = {}
for _, f in ipairs(files) do
  if f:match("%.md$") then
    for _, b in ipairs(blocks_of(f)) do blocks[#blocks + 1] = b end
  elseif f:match("%.lua$") then
    blocks[#blocks + 1] = example_block(f)
  else
    usage_error("not a Markdown file or an example: " .. f)
  end
end

local srv = server.start { demo_jobs = true }
local tmp = lines_of("mktemp -d")[1]
local ran, failed, skipped = 0, {}, {}
for _, block in ipairs(blocks) do
  local where = ("%s:%d"):format(block.file, block.line)
  if block.skip then
    skipped[block.skip] = (skipped[block.skip] or 0) + 1
    if verbose then print(("skip  %s (%s)"):format(where, block.skip)) end
  else
    srv:reset()
    prepare_folder(tmp)
    local ok, output = run_block(block, srv, tmp)
    ran = ran + 1
    print(("%s  %s %s"):format(ok and "ok  " or "FAIL", where, block.example and "(example)" or block.lang))
    if not ok then
      failed[#failed + 1] = where
      print("  the block:")
      print(indent(block.code))
      print("  its output:")
      print(indent(output))
    elseif verbose and output ~= "" then
      print(indent(output))
    end
  end
end
srv:stop()
os.execute("rm -rf " .. quote(tmp))

local not_run = 0
for _, n in pairs(skipped) do not_run = not_run + n end
if #failed > 0 then print(("doctest: %d failed: %s"):format(#failed, table.concat(failed, " "))) end
print(("doctest: %d blocks ran, %d not run"):format(ran, not_run))
for _, reason in ipairs(REASON_ORDER) do
  if skipped[reason] then print(("  skip (%s): %d"):format(reason, skipped[reason])) end
end
os.exit(#failed == 0 and 0 or 1)

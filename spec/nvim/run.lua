-- spec/nvim/run.lua: atai inside Neovim's LuaJIT (run by scripts/test_nvim.sh,
-- i.e. make test-nvim), against the fake Archetype API; the atai.uv checks
-- are in spec/nvim/uv.lua.
--
--   nvim --headless -u NONE -i NONE -c 'luafile spec/nvim/run.lua' -c 'cquit 3'
--
-- Environment: ATAI_API_ENDPOINT and ATAI_API_KEY (scripts/fake_server.sh),
-- ATAI_SLOW_ENDPOINT (a second fake server answering after 300 ms),
-- ATAI_ROOT (the repository), ATAI_NVIM_BUILD (the LuaJIT build folder, e.g.
-- build/luajit) and ATAI_NVIM_OTHER_BUILD (a build for another Lua, e.g.
-- build/lua5.4, which must be refused with a clear message).
--
-- Writes one line per check and a busted-style totals line to stdout, then
-- quits (spec/nvim/harness.lua). The plugin (the runtimepath install) has
-- its own runner: spec/nvim/plugin.lua.

local ROOT = os.getenv("ATAI_ROOT") or vim.fn.getcwd()
local BUILD = ROOT .. "/" .. (os.getenv("ATAI_NVIM_BUILD") or "build/luajit")
local OTHER_BUILD = ROOT .. "/" .. (os.getenv("ATAI_NVIM_OTHER_BUILD") or "build/lua5.4")
local JOB_ID = "job_2abc3def4ghi5jkl6mno7pqr"
local LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;"
local DEFAULT_CPATH = package.cpath -- Neovim's: finds Debian's lua-cjson for 5.1

local H = dofile(ROOT .. "/spec/nvim/harness.lua")
local it, expect, equal, say = H.it, H.expect, H.equal, H.say

-- Forgets every atai module, so the next require loads from the paths again.
local function unload_atai()
  for name in pairs(package.loaded) do
    if name == "atai" or name:sub(1, 5) == "atai." then package.loaded[name] = nil end
  end
end

local function main()
  local v = vim.version()
  say(("Neovim %d.%d.%d, %s (%s)"):format(v.major, v.minor, v.patch, jit.version, _VERSION))
  package.path = LUA_PATH .. package.path
  package.cpath = BUILD .. "/?.so;" .. DEFAULT_CPATH

  local atai

  it("require('atai') loads the LuaJIT build of atai.core", function()
    expect(jit ~= nil, "not running under LuaJIT")
    atai = require("atai")
    equal("string", type(atai.VERSION), "type(atai.VERSION)")
    equal(BUILD .. "/atai/core.so", package.searchpath("atai.core", package.cpath), "atai.core found at")
    equal("string", type(atai.core.version_info().curl_version), "type(version_info().curl_version)")
    equal(nil, math.type, "math.type (absent before 5.3)")
  end)
  if not atai then return end

  it("atai.get_job returns the job as tables", function()
    local job, err = atai.get_job(JOB_ID)
    expect(job, "get_job failed: " .. tostring(err))
    equal(JOB_ID, job.id, "job.id")
    equal("COMPLETED", job.status, "job.status")
    expect(atai.succeeded(job) and atai.is_terminal(job), "succeeded/is_terminal")
    equal("table", type(job.parameters), "type(job.parameters)")
    equal("table", type(job.parameters.worker), "type(job.parameters.worker)")
    equal(1, job.parameters.worker.parallelism, "job.parameters.worker.parallelism")
    local columns = job.parameters.worker.config.reader_config.data_columns
    equal("table", type(columns), "type(data_columns)")
    equal("xmeas_1", columns[1], "data_columns[1]")
    equal("table", type(job.input_progress), "type(job.input_progress)")
    equal(1, job.input_progress.completed, "job.input_progress.completed")
    equal("number", type(job.input_progress.completed), "type(input_progress.completed)")
  end)

  it("an unknown job gives nil, err with err.kind == 'not_found'", function()
    local job, err = atai.get_job("job_doesnotexist000000000000")
    equal(nil, job, "job")
    expect(atai.is_error(err), "err is not an atai error: " .. tostring(err))
    equal("not_found", err.kind, "err.kind")
    equal(404, err.status, "err.status")
  end)

  it("a client from atai.new works as well", function()
    local client = atai.new({
      endpoint = os.getenv("ATAI_API_ENDPOINT"), api_key = os.getenv("ATAI_API_KEY"),
    })
    local job, err = client:get_job(JOB_ID)
    expect(job, "client:get_job failed: " .. tostring(err))
    equal(JOB_ID, job.id, "job.id")
    client:close()
  end)

  -- atai.uv: Neovim's loop driving clients (spec/nvim/uv.lua)
  dofile(ROOT .. "/spec/nvim/uv.lua") {
    it = it, expect = expect, equal = equal, say = say, atai = atai, root = ROOT, build = BUILD,
  }

  it("a build for another Lua is refused with a clear message", function()
    unload_atai()
    package.cpath = OTHER_BUILD .. "/?.so;" .. DEFAULT_CPATH
    equal(OTHER_BUILD .. "/atai/core.so", package.searchpath("atai.core", package.cpath),
      "atai.core found at")
    local ok, msg = pcall(require, "atai")
    expect(not ok, "require('atai') succeeded with " .. OTHER_BUILD)
    msg = tostring(msg)
    expect(msg:find("atai.core was built for a different Lua than this", 1, true),
      "unclear message: " .. msg)
    expect(msg:find(jit.version, 1, true), "message does not name " .. jit.version .. ": " .. msg)
    expect(msg:find("make LUA=luajit", 1, true), "message does not say how to rebuild: " .. msg)
    -- Lua 5.1's require leaves a sentinel in package.loaded.atai after an
    -- error ("loop or previous error loading module"); atai.core stays unset.
    equal(nil, package.loaded["atai.core"], "package.loaded['atai.core'] after the failure")
  end)

  it("after the refusal, the right build loads once package.loaded.atai is cleared", function()
    unload_atai()
    package.cpath = BUILD .. "/?.so;" .. DEFAULT_CPATH
    local ok, loaded = pcall(require, "atai")
    expect(ok, "require('atai') failed again: " .. tostring(loaded))
    equal("string", type(loaded.VERSION), "type(atai.VERSION)")
  end)
end

H.finish("spec/nvim/run.lua", main)

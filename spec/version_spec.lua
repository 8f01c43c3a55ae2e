-- spec/version_spec.lua: one version everywhere. ATAI_VERSION in
-- src/atai.h is the one place it lives; atai.VERSION, the first line of
-- `atai version`, the release rockspec that scripts/gen_rockspec.lua
-- generates (make dist) and the first dated heading of CHANGELOG.md
-- (`## [X.Y.Z] - YYYY-MM-DD`, below an optional `## [Unreleased]`) must all
-- say it (any Lua 5.1-5.4/LuaJIT; the generator runs under lua5.4).
local util = require("spec.support.util")

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Every line a shell command prints on stdout, and whether it succeeded.
local function lines_of(cmd)
  local p = assert(io.popen(cmd .. "; echo \"exit $?\""))
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  p:close()
  local status = table.remove(lines)
  return lines, status == "exit 0"
end

local HEADER_VERSION = util.read_file("src/atai.h"):match('\n#define%s+ATAI_VERSION%s+"([^"]*)"')

describe("the version", function()
  it("lives in src/atai.h as X.Y.Z", function()
    assert.is_string(HEADER_VERSION, "no #define ATAI_VERSION \"...\" in src/atai.h")
    assert.is_truthy(HEADER_VERSION:match("^%d+%.%d+%.%d+$"), HEADER_VERSION)
  end)

  it("is atai.VERSION", function()
    assert.are.equal(HEADER_VERSION, require("atai").VERSION)
  end)

  it("is the first line of `atai version`", function()
    -- The command as a user of the checkout runs it: bin/atai with this
    -- suite's Lua, the checkout's modules and this build's atai.core.
    local cmd = ("env -u ATAI_API_KEY -u ATAI_API_ENDPOINT LUA_PATH=%s LUA_CPATH=%s %s bin/atai version 2>&1")
      :format(quote("./lua/?.lua;./lua/?/init.lua;;"), quote(util.cpath .. ";;"), util.lua)
    local lines, ok = lines_of(cmd)
    assert.is_true(ok, table.concat(lines, "\n"))
    assert.are.equal("atai " .. HEADER_VERSION, lines[1])
  end)

  it("is the version of the generated release rockspec, and of its source", function()
    local dir = lines_of("mktemp -d")[1]
    local lines, ok = lines_of(("lua5.4 scripts/gen_rockspec.lua %s %s 2>&1"):format(quote(dir), ("0"):rep(32)))
    local spec = {}
    if ok then
      local chunk = assert(loadfile(lines[1], "t", spec))
      if setfenv then setfenv(chunk, spec) end
      chunk()
    end
    if ok then os.remove(lines[1]) end
    os.remove(dir) -- empty by now (remove() takes empty folders too)
    assert.is_true(ok, table.concat(lines, "\n"))
    assert.are.equal(dir .. "/atai-" .. HEADER_VERSION .. "-1.rockspec", lines[1])
    assert.are.equal(HEADER_VERSION .. "-1", spec.version)
    assert.are.equal("atai-" .. HEADER_VERSION, spec.source.dir)
    assert.are.equal("/v" .. HEADER_VERSION .. "/atai-" .. HEADER_VERSION .. ".tar.gz",
      spec.source.url:match("/v[^/]+/[^/]+$"))
  end)

  it("is the first dated heading of CHANGELOG.md, below at most an [Unreleased] one", function()
    local headings = {}
    for line in util.read_file("CHANGELOG.md"):gmatch("[^\n]+") do
      if line:match("^## ") then headings[#headings + 1] = line end
    end
    assert.is_true(#headings > 0, "CHANGELOG.md has no ## headings")
    local first = 1
    if headings[1] == "## [Unreleased]" then first = 2 end
    local version = (headings[first] or ""):match("^## %[(%d+%.%d+%.%d+)%] %- (%d%d%d%d%-%d%d%-%d%d)")
    assert.is_truthy(version, "not a dated version heading: " .. tostring(headings[first]))
    assert.are.equal(HEADER_VERSION, version)
    -- Every later heading is a dated version too (Keep a Changelog).
    for i = first + 1, #headings do
      assert.is_truthy(headings[i]:match("^## %[%d+%.%d+%.%d+%] %- %d%d%d%d%-%d%d%-%d%d"), headings[i])
    end
  end)
end)

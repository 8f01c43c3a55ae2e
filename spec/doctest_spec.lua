-- spec/doctest_spec.lua: scripts/doctest.lua (make doctest) on Markdown
-- files made here: which blocks run, the prelude and the working folder,
-- skip markers and their counts, a failing block failing the run with the
-- Markdown line named, a bad marker refused. doctest runs its blocks with
-- lua5.4 and build/lua5.4, so this runs in the plain lua5.4 suite only.
local util = require("spec.support.util")

if util.lua ~= "lua5.4" or not util.cpath:find("build/lua5.4/", 1, true) then
  describe("scripts/doctest.lua", function()
    pending("runs with the plain lua5.4 build only (this run: " .. util.lua .. ", " .. util.cpath .. ")")
  end)
  return
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs doctest on a Markdown text; returns its exit code and output.
local function doctest(markdown)
  local base = os.tmpname()
  local md = base .. ".md"
  local f = assert(io.open(md, "wb"))
  f:write(markdown)
  f:close()
  local p = assert(io.popen(("env -u ATAI_API_KEY -u ATAI_API_ENDPOINT lua5.4 scripts/doctest.lua %s 2>&1; echo \"exit $?\"")
    :format(quote(md))))
  local out = p:read("*a")
  p:close()
  os.remove(md)
  os.remove(base)
  local code = tonumber(out:match("exit (%d+)%s*$"))
  return code, out
end

local FENCE = "```"

describe("scripts/doctest.lua", function()
  it("runs lua and sh blocks with the prelude, in a folder with the user's files, and counts skips", function()
    local code, out = doctest(table.concat({
      "# t", "",
      FENCE .. "lua",
      "assert(atai.VERSION and client and id == 'job_2abc3def4ghi5jkl6mno7pqr')",
      "local job = assert(client:get_job(id))          -- the fake server, through the environment",
      "assert(job.status == 'COMPLETED')",
      FENCE, "",
      FENCE .. "sh",
      "atai version | head -n 1                        # bin/ is on PATH",
      "test -f volve_inference.csv && test -f job.json && test -f examples/get_job.lua",
      FENCE, "",
      "<!-- doctest: skip (fragment) -->",
      FENCE .. "lua",
      "this is not Lua",
      FENCE, "",
      "<!-- doctest: skip (root) -->",
      FENCE .. "sh",
      "sudo false",
      FENCE, "",
      FENCE .. "text",
      "not run, not counted",
      FENCE, "",
    }, "\n"))
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("doctest: 2 blocks ran, 2 not run\n  skip (root): 1\n  skip (fragment): 1\n", 1, true), out)
  end)

  it("fails when a block fails, naming the Markdown line of a Lua error", function()
    local code, out = doctest(table.concat({
      "# t", "",
      FENCE .. "lua",
      "print('fine')",
      "error('boom')",
      FENCE, "",
      FENCE .. "sh",
      "false",
      "echo never",
      FENCE, "",
      FENCE .. "sh",
      "true",
      FENCE, "",
    }, "\n"))
    assert.are.equal(1, code, out)
    assert.is_truthy(out:find("%.md:5: boom"), out)           -- line 5 of the Markdown file
    assert.is_truthy(out:find("FAIL  [^\n]*%.md:3 lua"), out)
    assert.is_truthy(out:find("FAIL  [^\n]*%.md:8 sh"), out)
    assert.is_falsy(out:find("\n    never\n", 1, true), out)   -- sh -e: stops at the first failure
    assert.is_truthy(out:find("doctest: 3 blocks ran, 0 not run", 1, true), out)
  end)

  it("refuses a marker with an unknown reason", function()
    local code, out = doctest(table.concat({
      "<!-- doctest: skip (slow) -->",
      FENCE .. "sh",
      "true",
      FENCE, "",
    }, "\n"))
    assert.are.equal(2, code, out)
    assert.is_truthy(out:find("bad marker", 1, true), out)
  end)
end)

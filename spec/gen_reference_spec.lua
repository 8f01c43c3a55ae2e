-- spec/gen_reference_spec.lua: scripts/gen_reference.lua (make docs) reads
-- LuaLS annotations generically (classes and fields, aliases in both
-- forms, functions with their parameters and returns, module twins,
-- ---@type fields) and atai.config.OPTIONS, writes the same bytes every
-- time, and refuses annotations it cannot place. The generator runs under
-- lua5.4, so this runs in the lua5.4 suite only.
local util = require("spec.support.util")

if util.lua ~= "lua5.4" then
  describe("scripts/gen_reference.lua", function()
    pending("runs under lua5.4 only (this run: " .. util.lua .. ")")
  end)
  return
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the generator on an annotations text; returns ok, stdout+stderr.
local function generate(annotations)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(annotations)
  f:close()
  local p = assert(io.popen(("LUA_CPATH=%s lua5.4 scripts/gen_reference.lua - %s 2>&1; echo \"exit $?\"")
    :format(quote(util.cpath .. ";;"), quote(path))))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  local code = tonumber(out:match("exit (%d+)%s*$"))
  return code == 0, out:gsub("exit %d+%s*$", "")
end

local ANNOTATIONS = [==[
---@meta
--- banner: documents nothing

---@alias demo.Kind "a"|"b"

--- Colours, one a line.
---@alias demo.Colour
---| "red" # like blood
---| "green"

---@class demo.Thing  a thing of the demo
---@field name string           its name
---@field size? integer         absent when unknown
---@field on_done? fun(ok: boolean, err: demo.Kind|nil)  called once

---@class atai.Options
---@field timeout? number  seconds per attempt

---@class demo.Client
local Client = {}

--- Fetches one thing.
---@param id string   the thing's id
---@param opts? {timeout?: number}
---@return demo.Thing|nil thing
---@return atai.Error|nil err
function Client:fetch(id, opts) end

---@class demo
---@field VERSION string
local demo = {}

---@param opts? atai.Options
---@return demo.Client
function demo.new(opts) end

--- The default client's async view.
---@type table<string, function>
demo.async = {}

demo.fetch = Client.fetch --[[@as fun(id: string): demo.Thing|nil, atai.Error|nil]]

---@alias atai.ErrorKind "auth"|"io"
]==]

describe("scripts/gen_reference.lua", function()
  local ok, out = generate(ANNOTATIONS)

  it("generates without error", function()
    assert.is_true(ok, out)
  end)

  it("documents a module's functions and fields, and its default-client twins", function()
    assert.is_truthy(out:find("## demo\n", 1, true), out)
    assert.is_truthy(out:find("| `VERSION` | `string` |  |", 1, true), out)
    assert.is_truthy(out:find("### demo.new(opts)\n", 1, true), out)
    assert.is_truthy(out:find("| `async` | `table<string, function>` | The default client's async view. |", 1, true), out)
    assert.is_truthy(out:find("| `demo.fetch` | `fun(id: string): demo.Thing\\|nil, atai.Error\\|nil` |", 1, true), out)
  end)

  it("documents an object's methods with parameters and returns", function()
    assert.is_truthy(out:find("## demo.Client\n", 1, true), out)
    assert.is_truthy(out:find("### client:fetch(id, opts)\n\nFetches one thing.\n", 1, true), out)
    assert.is_truthy(out:find("| `id` | `string` | the thing's id |", 1, true), out)
    assert.is_truthy(out:find("| `opts` (optional) | `{timeout?: number}` |  |", 1, true), out)
    assert.is_truthy(out:find("Returns `demo.Thing|nil` thing, `atai.Error|nil` err.", 1, true), out)
  end)

  it("documents classes, fields with function types, and both alias forms", function()
    assert.is_truthy(out:find("### demo.Thing\n\na thing of the demo\n", 1, true), out)
    assert.is_truthy(out:find("| `size` (optional) | `integer` | absent when unknown |", 1, true), out)
    assert.is_truthy(out:find("| `on_done` (optional) | `fun(ok: boolean, err: demo.Kind\\|nil)` | called once |", 1, true), out)
    assert.is_truthy(out:find('Alias of `"a"|"b"`.', 1, true), out)
    assert.is_truthy(out:find('### demo.Colour\n\nColours, one a line.\n\n- `"red"`: like blood\n- `"green"`\n', 1, true), out)
  end)

  it("lists the options of atai.config.OPTIONS with bounds and defaults, and the error kinds", function()
    assert.is_truthy(out:find("| `timeout` | number from 0.001 to 86400 (seconds) | 60 | seconds per attempt |", 1, true), out)
    assert.is_truthy(out:find("| `max_response_bytes` | integer from 1 to 4503599627370496 (bytes) | 67108864 (64 MiB) |", 1, true), out)
    assert.is_truthy(out:find("## Error kinds\n", 1, true), out)
    assert.is_truthy(out:find("- `auth`\n- `io`\n", 1, true), out)
  end)

  it("writes the same bytes every time", function()
    local again_ok, again = generate(ANNOTATIONS)
    assert.is_true(again_ok, again)
    assert.are.equal(out, again)
  end)

  it("refuses a field outside a class, an atai.Options field that is no option, a function of no class", function()
    local cases = {
      { "---@field orphan string\n", "outside a ---@class" },
      { "---@class atai.Options\n---@field no_such_option? number\n---@alias atai.ErrorKind \"io\"\n",
        "not in atai.config.OPTIONS: no_such_option" },
      { "function nowhere.f() end\n", "nowhere is no class's table" },
    }
    for _, case in ipairs(cases) do
      local case_ok, case_out = generate(case[1])
      assert.is_false(case_ok, case_out)
      assert.is_truthy(case_out:find(case[2], 1, true), case_out)
    end
  end)
end)

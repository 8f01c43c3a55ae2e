-- spec/json_encode_spec.lua: atai.json_encode (the request-body encoder with
-- sorted keys, public for `bin/atai --json`) and query keys with odd bytes.
local atai = require("atai")
local cjson = require("cjson")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

describe("atai.json_encode", function()
  it("sorts object keys at every level", function()
    assert.are.equal('{"a":1,"b":{"x":true,"y":[1,2]},"c":"s"}',
      atai.json_encode { c = "s", a = 1, b = { y = { 1, 2 }, x = true } })
  end)

  it("keeps atai.null, atai.array and exact integers", function()
    assert.are.equal('{"big":1234567890123456,"empty":[],"list":[1,null,3],"obj":{}}',
      atai.json_encode { big = 1234567890123456, empty = atai.array(), list = { 1, atai.null, 3 }, obj = {} })
    assert.are.equal('"a\\"b\\n"', atai.json_encode('a"b\n'))
    assert.are.equal("null", atai.json_encode(atai.null))
  end)

  it("writes number keys as strings, in byte order", function()
    local t = { [10] = "ten", [2] = "two", x = "x" }
    assert.are.equal('{"10":"ten","2":"two","x":"x"}', atai.json_encode(t))
  end)

  it("a sparse table is an object: no key is lost", function()
    local t = { nil, "b", x = 1 }
    t.x = nil
    t[-1] = "a"
    local decoded = cjson.decode(atai.json_encode(t))
    assert.are.equal("a", decoded["-1"])
    assert.are.equal("b", decoded["2"])
    local frac = cjson.decode(atai.json_encode { [1] = "one", [1.5] = "half" })
    assert.are.equal("half", frac["1.5"])
  end)

  it("raises on values JSON cannot hold", function()
    local cyclic = {}
    cyclic.self = cyclic
    for _, v in ipairs({ { print }, { 0 / 0 }, { math.huge }, cyclic, { [true] = 1 } }) do
      assert.has_error(function() atai.json_encode(v) end)
    end
  end)
end)

describe("query keys", function()
  local t = fake_api({ max_retries = 0 })

  it("keep every byte, a NUL included", function()
    assert(t.client:request("GET", "/batch/jobs", { query = { ["a\0b"] = "v\0w" } }))
    local req = t.srv:requests()[1]
    local q = util.parse_query(req.query)
    assert.are.same({ "v\0w" }, q["a\0b"])
  end)
end)

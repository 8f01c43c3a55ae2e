-- spec/json_decode_spec.lua: response bodies decoded by atai.core's fast
-- path (well-formed objects and arrays) and by lua-cjson plus the shaping
-- walk (everything the fast path leaves to it) come out the same.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local PATH = "/batch/jobs/job_json"

describe("JSON decoding", function()
  local t = fake_api({ max_retries = 0 })

  local function decode(text)
    t.srv:fault { path = "/v0.5" .. PATH, responses = { { body = text } } }
    return t.client:request("GET", PATH)
  end

  -- A document of every kind of value; `extra` is one more member, e.g. one
  -- that sends the whole document down lua-cjson's path.
  local function doc(extra)
    return '{"int":42,"neg":-7,"zero":-0,"float":1.5,"exp":1e2,"fexp":2.0E1,"small":-2.5e-3,'
      .. '"t":true,"f":false,"gone":null,"s":"plain","esc":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\te",'
      .. '"list":[1,null,"x",[],{},[null]],"obj":{"inner":{"deep":[0.5,null]},"drop":null},'
      .. '"empty":{},"none":[]' .. (extra or "") .. "}"
  end

  local function check_doc(v)
    assert.are.equal(42, v.int)
    assert.are.equal(-7, v.neg)
    assert.are.equal(0, v.zero)
    assert.are.equal(1.5, v.float)
    assert.are.equal(100, v.exp)
    assert.are.equal(20, v.fexp)
    assert.are.equal(-2.5e-3, v.small)
    if util.has_integers then
      for _, k in ipairs({ "int", "neg", "zero", "exp", "fexp" }) do assert.are.equal("integer", math.type(v[k]), k) end
      assert.are.equal("float", math.type(v.float))
      assert.are.equal("float", math.type(v.small))
    end
    assert.is_true(v.t)
    assert.is_false(v.f)
    assert.is_nil(v.gone)
    assert.are.equal("plain", v.s)
    assert.are.equal('a"b\\c/d\b\f\n\r\te', v.esc)
    assert.are.same({ 1, atai.null, "x", {}, {}, { atai.null } }, v.list)
    assert.are.same({ inner = { deep = { 0.5, atai.null } } }, v.obj)
    assert.are.same({}, v.empty)
    assert.are.same({}, v.none)
  end

  it("decodes a well-formed object with atai's rules (fast path)", function()
    check_doc(assert(decode(doc())))
  end)

  it("gives the same values when lua-cjson decodes the document", function()
    local cases = {
      { ',"u":"\\u00e9\\ud83d\\ude00"', "u", "\195\169\240\159\152\128" }, -- \u escapes
      { ',"tab":"x\ty"', "tab", "x\ty" },                                  -- a raw control byte
      { ',"dot":1.', "dot", 1 },                                           -- cjson's leniency
    }
    for _, case in ipairs(cases) do
      local v = assert(decode(doc(case[1])))
      check_doc(v)
      assert.are.equal(case[3], v[case[2]])
      if util.has_integers and case[2] == "dot" then assert.are.equal("integer", math.type(v.dot)) end
    end
    local v = assert(decode(doc(',"long":12345678901234567')))
    check_doc(v)
    assert.are.equal(12345678901234567.0, v.long)
    if util.has_integers then
      assert.are.equal("float", math.type(v.long)) -- beyond 2^53: cjson's float, as before
    end
  end)

  it("keeps the last of duplicate keys, a null one included", function()
    assert.are.same({ b = 2 }, assert(decode('{"a":1,"a":null,"b":null,"b":2}')))
  end)

  it("decodes arrays, deep nesting and bare values", function()
    assert.are.same({ 1, atai.null, { a = true } }, assert(decode(' [1, null, {"a": true, "b": null}] ')))
    local deep = assert(decode(("["):rep(100) .. "null" .. ("]"):rep(100)))
    for _ = 1, 99 do deep = deep[1] end
    assert.are.same({ atai.null }, deep)
    local bare = assert(decode("5"))
    assert.are.equal(5, bare)
    assert.are.equal("hi", assert(decode('"hi"')))
  end)

  it("reports malformed JSON with lua-cjson's message", function()
    for _, text in ipairs({ '{"a":1,}', '{"a":01}', '{"a":1} x', '{"a":"\\q"}', '[1,2' }) do
      local body, err = decode(text)
      assert.is_nil(body, text)
      assert.are.equal("decode", err.kind, text)
      assert.is_truthy(err.message:find("not the JSON expected", 1, true), text)
    end
    local _, err = decode('{"a":1,}')
    assert.is_truthy(err.message:find("Expected object key string", 1, true))
  end)
end)

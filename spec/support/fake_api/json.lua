--[[
  fake_api/json.lua -- the fake server's own JSON codec.

  lua-cjson 2.1.0 turns empty arrays into objects and integers beyond 2^53 into rounded
  floats; this codec keeps arrays (json.array marks them), object key order (json.object)
  and 64-bit integers, and splices pre-encoded text verbatim (json.raw), so seed jobs are
  served from their fixture bytes.
]]

local json = {}

json.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

local ARRAY_MT = { __name = "json.array" }
local RAW_MT = { __name = "json.raw" }
local key_order = setmetatable({}, { __mode = "k" })

-- Mark a table as a JSON array (needed for empty arrays).
function json.array(t) return setmetatable(t or {}, ARRAY_MT) end

-- Wrap already-encoded JSON text so the encoder splices it verbatim.
function json.raw(text) return setmetatable({ text = text }, RAW_MT) end

-- Give an object table a preferred key order for encoding (unknown keys follow, sorted).
function json.object(t, order)
  key_order[t] = order
  return t
end

function json.is_array(v) return getmetatable(v) == ARRAY_MT end
function json.is_object(v)
  return type(v) == "table" and v ~= json.null and getmetatable(v) ~= ARRAY_MT
    and getmetatable(v) ~= RAW_MT
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or string.format("\\u%04x", byte)
end

local function encode_string(s)
  return '"' .. s:gsub('[\0-\31"\\]', ESCAPES) .. '"'
end

-- Integers print exactly; floats print in their shortest round-trip form and keep a
-- fractional part ("2.0", "-0.0") so they stay floats for the reader.
local function encode_number(n)
  if math.type(n) == "integer" then return string.format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json: cannot encode non-finite number")
  end
  if n == 0 then return (1 / n < 0) and "-0.0" or "0.0" end
  if n == math.floor(n) and math.abs(n) < 1e15 then return string.format("%.1f", n) end
  for precision = 14, 17 do
    local s = string.format("%." .. precision .. "g", n)
    if tonumber(s) == n then return s end
  end
end

local function object_keys(t)
  local keys, seen = {}, {}
  for _, k in ipairs(key_order[t] or {}) do
    if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local encode_value

local function encode_table(t, out)
  local mt = getmetatable(t)
  if t == json.null then out[#out + 1] = "null"; return end
  if mt == RAW_MT then out[#out + 1] = t.text; return end
  if mt == ARRAY_MT or (mt == nil and t[1] ~= nil) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out)
    end
    out[#out + 1] = "]"
    return
  end
  out[#out + 1] = "{"
  for i, k in ipairs(object_keys(t)) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encode_string(tostring(k))
    out[#out + 1] = ":"
    encode_value(t[k], out)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out)
  local kind = type(v)
  if kind == "table" then encode_table(v, out)
  elseif kind == "string" then out[#out + 1] = encode_string(v)
  elseif kind == "number" then out[#out + 1] = encode_number(v)
  elseif kind == "boolean" then out[#out + 1] = tostring(v)
  elseif v == nil then out[#out + 1] = "null"
  else error("json: cannot encode a " .. kind) end
end

function json.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

local UNESCAPE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                   n = "\n", r = "\r", t = "\t" }

-- Decode JSON text. Arrays get the array mark, objects remember their key order,
-- integer literals that fit 64 bits stay integers. Returns value or nil, message.
function json.decode(text)
  local pos = 1
  local function fail(msg) error({ json_error = msg .. " at byte " .. pos }, 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end

  local function parse_string()
    local buf, i = {}, pos + 1
    while true do
      local j = text:find('[\0-\31"\\]', i)
      if not j then fail("unterminated string") end
      buf[#buf + 1] = text:sub(i, j - 1)
      local c = text:sub(j, j)
      if c == '"' then pos = j + 1; return table.concat(buf) end
      if c ~= "\\" then pos = j; fail("control character in string") end
      local e = text:sub(j + 1, j + 1)
      if e == "u" then
        local hex = text:match("^%x%x%x%x", j + 2)
        if not hex then pos = j; fail("bad \\u escape") end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local low = text:match("^\\u([dD][c-fC-F]%x%x)", i)
          if low then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
            i = i + 6
          end
        end
        buf[#buf + 1] = utf8.char(cp)
      else
        local u = UNESCAPE[e]
        if not u then pos = j; fail("bad escape") end
        buf[#buf + 1] = u
        i = j + 2
      end
    end
  end

  local function parse_number()
    local lit = text:match("^-?%d+", pos)
    if not lit then fail("unexpected character") end
    local frac = text:match("^%.%d+", pos + #lit) or ""
    local exp = text:match("^[eE][-+]?%d+", pos + #lit + #frac) or ""
    local whole = lit .. frac .. exp
    pos = pos + #whole
    local n = tonumber(whole)
    if frac == "" and exp == "" then n = math.tointeger(n) or n end
    return n
  end

  local parse_value

  local function parse_array()
    local arr = json.array({})
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
    while true do
      arr[#arr + 1] = parse_value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "]" then return arr end
      if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
    end
  end

  local function parse_object()
    local obj, order = {}, {}
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "}" then pos = pos + 1; return json.object(obj, order) end
    while true do
      skip()
      if text:sub(pos, pos) ~= '"' then fail("expected string key") end
      local key = parse_string()
      skip()
      if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
      pos = pos + 1
      if obj[key] == nil then order[#order + 1] = key end
      obj[key] = parse_value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "}" then return json.object(obj, order) end
      if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
    end
  end

  local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", json.null } }

  function parse_value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then return parse_object() end
    if c == "[" then return parse_array() end
    if c == '"' then return parse_string() end
    local lit = LITERALS[c]
    if lit then
      if text:sub(pos, pos + #lit[1] - 1) ~= lit[1] then fail("bad literal") end
      pos = pos + #lit[1]
      return lit[2]
    end
    if c == "" then fail("unexpected end of input") end
    return parse_number()
  end

  local ok, result = pcall(function()
    local v = parse_value()
    skip()
    if pos <= #text then fail("trailing garbage") end
    return v
  end)
  if ok then return result end
  if type(result) == "table" and result.json_error then return nil, result.json_error end
  error(result, 0)
end

-- Deep copy that keeps array marks and key orders.
function json.copy(v)
  if type(v) ~= "table" or v == json.null or getmetatable(v) == RAW_MT then return v end
  local copy = {}
  for k, x in pairs(v) do copy[k] = json.copy(x) end
  if getmetatable(v) == ARRAY_MT then return json.array(copy) end
  return json.object(copy, key_order[v])
end

-- Keys of an object table in encoding order (preferred order first, then sorted).
json.keys = object_keys

return json

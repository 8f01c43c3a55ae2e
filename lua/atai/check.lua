--- atai.check: argument checks shared by the endpoint functions. Each raises
-- "bad argument #n to 'fname' (...)" before any request is sent.

local core = require("atai.core")

local check = {}

--- Whether v is a finite number.
function check.is_number(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end
local is_number = check.is_number

-- The stack level, seen from check.fail, of the first function outside
-- atai's own Lua files: the user's call, however deep inside atai we are.
local function caller_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    local inside = info.what == "tail" or info.source:find("[/\\]atai[/\\][%w_]+%.lua$")
    if not inside then return level - 1 end
    level = level + 1
  end
end

--- Raises an argument error in the style of luaL_argerror, with the
--- position of the user's call.
function check.fail(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), caller_level())
end

--- A job or pipeline id, by atai.core's rule (the one get_job applies).
function check.id(fname, n, value, name)
  local why = core.id_problem(value)
  if why then check.fail(fname, n, (name or "id") .. ": " .. why) end
  return value
end

--- Raises unless `value` (a string) is fit for an HTTP header or a
--- multipart part header: no control byte (C0, tab included, or DEL),
--- which could end the header and start another. `what` names it.
function check.header_text(fname, n, what, value)
  if type(value) == "string" and value:find("%c") then
    check.fail(fname, n, what .. ": a control byte (C0 or DEL) is not allowed in a header value")
  end
  return value
end

--- The permission bits of a file mode option: an integer from 0 to 511, or
--- an octal string ("0600", "644"); nil for anything else. (A Lua literal
--- 0600 is decimal 600, not octal: it is refused as above 511.)
function check.file_mode(v)
  if type(v) == "string" and v:match("^[0-7][0-7]?[0-7]?[0-7]?$") then v = tonumber(v, 8) end
  if is_number(v) and v >= 0 and v <= 511 and v == math.floor(v) then return v end
  return nil
end

-- Kinds of filter field: how to check one, and what it expects.
local FIELD_KINDS = {
  string = { "non-empty string", function(v) return type(v) == "string" and v ~= "" end },
  count = { "integer >= 0", function(v) return is_number(v) and v >= 0 and v == math.floor(v) end },
  limit = { "integer >= 1", function(v) return is_number(v) and v >= 1 and v == math.floor(v) end },
  strings = { "string or list of strings", function(v)
    if type(v) == "string" then return v ~= "" end
    if type(v) ~= "table" or #v == 0 then return false end
    for k, s in pairs(v) do
      if type(k) ~= "number" or type(s) ~= "string" or s == "" then return false end
    end
    return true
  end },
  order = { "'asc' or 'desc'", function(v) return v == "asc" or v == "desc" end },
  ["function"] = { "function", function(v) return type(v) == "function" end },
  seconds = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 and v <= 86400 end },
  bytes = { "integer >= 1 (bytes)", function(v) return is_number(v) and v >= 1 and v == math.floor(v) end },
  size = { "integer from 0 to 2^52 (bytes)", function(v)
    return is_number(v) and v >= 0 and v <= 2 ^ 52 and v == math.floor(v)
  end },
  rate = { "integer from 1 to 2^31 - 1 (bytes per second)", function(v)
    return is_number(v) and v >= 1 and v <= 2 ^ 31 - 1 and v == math.floor(v)
  end },
  duration = { "number from 1 to 604800 (seconds)", function(v) return is_number(v) and v >= 1 and v <= 604800 end },
  mode = { "integer from 0 to 511, or an octal string such as \"0600\"", function(v)
    return check.file_mode(v) ~= nil
  end },
  margin = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 and v <= 86400 end },
  boolean = { "boolean", function(v) return type(v) == "boolean" end },
}

-- Checks the optional table `t` (argument n) against `fields` (name ->
-- kind); `what` names its entries in messages ("filter", "option").
local function check_fields(what, fname, n, t, fields)
  local query = {}
  if t == nil then return query end
  if type(t) ~= "table" then check.fail(fname, n, ("%s table expected, got %s"):format(what, type(t))) end
  for name, value in pairs(t) do
    local kind = fields[name]
    if not kind then
      local known = {}
      for k in pairs(fields) do known[#known + 1] = k end
      table.sort(known)
      check.fail(fname, n, ("unknown %s '%s' (known: %s)"):format(what, tostring(name), table.concat(known, ", ")))
    end
    local spec = FIELD_KINDS[kind]
    if not spec[2](value) then
      check.fail(fname, n, ("%s: %s expected, got %s"):format(name, spec[1], type(value)))
    end
    query[name] = value
  end
  return query
end

--- Checks the optional filter table (argument n) against `fields`
--- (name -> kind) and returns a fresh query table.
function check.filter(fname, n, filter, fields)
  return check_fields("filter", fname, n, filter, fields)
end

--- Checks an optional options table the same way; returns a fresh copy.
function check.options(fname, n, opts, fields)
  return check_fields("option", fname, n, opts, fields)
end

return check

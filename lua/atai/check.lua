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

--- Whether `v` is a string fit for an HTTP header or a multipart part
--- header: no control byte (C0, tab included, or DEL), which could end the
--- header and start another.
function check.is_header_text(v) return type(v) == "string" and not v:find("%c") end

--- Raises unless `value` (a string, or nil) is header text (above); `what`
--- names it.
function check.header_text(fname, n, what, value)
  if type(value) == "string" and not check.is_header_text(value) then
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

-- Filters and option tables are checked by atai.config's one checker
-- (config.check_table: the kinds and messages of every option of atai);
-- required when first used, since atai.config requires this file.

--- Checks the optional filter table (argument n) against `fields`
--- (name -> kind) and returns a fresh query table.
function check.filter(fname, n, filter, fields)
  return require("atai.config").check_table(fname, n, filter, fields, "filter")
end

--- Checks an optional options table the same way; returns a fresh copy.
function check.options(fname, n, opts, fields)
  return require("atai.config").check_table(fname, n, opts, fields, "option")
end

return check

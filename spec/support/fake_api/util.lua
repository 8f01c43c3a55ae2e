--[[
  fake_api/util.lua -- small helpers of the fake server: logging, files, time stamps,
  random ids, FNV-1a, query strings, gzip.
]]

local socket = require("socket")

local now = socket.gettime

local util = { verbose = false }   -- verbose: set by --verbose (logs go to stderr)

-- Log a line to stderr when --verbose is on.
function util.log(fmt, ...)
  if util.verbose then io.stderr:write("[fake_api] ", string.format(fmt, ...), "\n") end
end

-- Log an internal error to stderr (always).
function util.log_error(msg) io.stderr:write("[fake_api] error: ", msg, "\n") end

-- Quote a string for /bin/sh.
function util.shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Whole contents of a file (raises when it cannot be read).
function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot read " .. tostring(err)) end
  local text = f:read("a")
  f:close()
  return text
end

-- Sorted paths of the *.json files in a folder.
function util.list_json_files(dir)
  local files = {}
  local p = io.popen("ls -1 " .. util.shell_quote(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if name:match("%.json$") then files[#files + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(files)
  return files
end

-- UTC timestamp with microseconds, e.g. 2026-04-14T10:00:00.000000Z (default: now).
function util.iso_time(t)
  t = t or now()
  local sec = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%06dZ", math.floor((t - sec) * 1e6))
end

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- Parse "YYYY-MM-DDTHH:MM:SS[.frac]Z" to epoch seconds (nil if not a timestamp).
function util.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)Z$")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return t + (tonumber("0" .. frac) or 0)
end

local ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

-- n random lowercase letters and digits.
function util.random_alnum(n)
  local out = {}
  for i = 1, n do
    local k = math.random(#ALNUM)
    out[i] = ALNUM:sub(k, k)
  end
  return table.concat(out)
end

-- A fresh error_uid (err-<uuid4>).
function util.new_error_uid()
  local hex = function(n) return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1)) end
  return "err-" .. hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3) .. "-" .. hex(12)
end

-- 32-bit FNV-1a, used for ETags.
function util.fnv1a(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return string.format("%08x", h)
end

-- Decode %XX escapes.
function util.pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parse a query string: first value per name, plus every value per name.
function util.parse_query(qs)
  local first, all = {}, {}
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = util.pct_decode(k:gsub("%+", " ")), util.pct_decode(v:gsub("%+", " "))
    if first[k] == nil then first[k] = v end
    all[k] = all[k] or {}
    table.insert(all[k], v)
  end
  return first, all
end

-- gzip a string with the gzip command.
function util.gzip_string(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("gzip -c -n < " .. util.shell_quote(path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- Does an Accept-Encoding header value allow gzip?
function util.accepts_gzip(value)
  for token in (value or ""):gmatch("[^,]+") do
    local coding = token:match("^%s*([^;%s]+)")
    local q = tonumber(token:match(";%s*q=([%d.]+)") or "1")
    if (coding == "gzip" or coding == "x-gzip" or coding == "*") and q and q > 0 then
      return true
    end
  end
  return false
end

return util

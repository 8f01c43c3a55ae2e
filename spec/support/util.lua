-- spec/support/util.lua: shared helpers for the specs (any Lua 5.1-5.4/LuaJIT).
local util = {}

--- The interpreter and C module path the suite runs with (set by make test),
--- for specs that must start a fresh process with its own environment.
util.lua = os.getenv("ATAI_TEST_LUA") or "lua5.4"
util.cpath = os.getenv("ATAI_TEST_CPATH") or "./build/lua5.4/?.so"

--- Runs `code` in a new interpreter with `env` (name -> value, false to
--- unset) and returns its stdout and whether it exited 0.
function util.run_lua(code, env)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local parts = { "env" }
  for name, value in pairs(env or {}) do -- env takes its -u options first
    if value == false then table.insert(parts, 2, "-u " .. name) end
  end
  for name, value in pairs(env or {}) do
    if value ~= false then parts[#parts + 1] = ("%s='%s'"):format(name, value) end
  end
  parts[#parts + 1] = ("LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' LUA_CPATH='%s;;' %s %s 2>&1")
    :format(util.cpath, util.lua, script)
  -- The exit status travels in the output: on 5.1/LuaJIT, close() of a
  -- popen handle says nothing about it.
  local p = assert(io.popen(table.concat(parts, " ") .. '; echo "<run_lua exit $?>"'))
  local out = p:read("*a")
  p:close()
  os.remove(script)
  local status = tonumber(out:match("<run_lua exit (%d+)>\n$"))
  return (out:gsub("<run_lua exit %d+>\n$", "")), status == 0
end

--- The whole content of a file (raises when it cannot be read).
function util.read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

--- A memory figure of this process from /proc/self/status in KiB ("VmRSS",
--- "VmHWM"...), or nil where there is no /proc.
function util.proc_status_kb(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

--- Whether this Lua has an integer subtype (5.3+).
util.has_integers = math.type ~= nil

--- Every string reachable from `v` (keys and values), for leak checks.
function util.strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      util.strings(k, out, seen)
      util.strings(x, out, seen)
    end
  end
  return out
end

--- Parses a raw query string into name -> list of decoded values.
function util.parse_query(raw)
  local out = {}
  for pair in (raw or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unescape(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    k, v = unescape(k), unescape(v)
    out[k] = out[k] or {}
    table.insert(out[k], v)
  end
  return out
end

--- A free loopback port (bound and released), for servers a spec starts.
function util.free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Runs a shell command; returns whether it exited 0 (on every Lua).
function util.sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

return util

--- atai: the Lua client for Archetype AI's Batch Processing API.
--
-- The facade over `atai.core` (C: libcurl transport and engine, JSON,
-- errors). This file holds the default client, the module-level functions
-- and the job helpers. Configuration policy is in `atai.config`, the
-- endpoints in `atai.api`, pagination in `atai.pages`, waiting in
-- `atai.wait`, handles and coroutines in `atai.handle`.

local config -- loaded once atai.core is known to fit this Lua

-- Symbols every Lua C API has: when one of these is missing, the module
-- fits this Lua but the host program does not export its Lua API.
local COMMON_SYMBOLS = { "lua_gettop", "lua_settop", "lua_pushvalue", "lua_type", "lua_pushnil",
  "lua_pushboolean", "lua_pushstring", "lua_createtable", "lua_rawgeti", "lua_error",
  "luaL_checkudata", "luaL_error", "luaL_ref", "luaL_unref", "luaL_newmetatable", "lua_pushlstring",
  "lua_checkstack", "lua_rawget", "lua_rawset", "lua_pushlightuserdata", "lua_touserdata", "luaL_buffinit",
  "luaL_addlstring", "luaL_pushresult" }

-- Loads atai.core, turning the dynamic linker's "undefined symbol" into
-- advice: a module built for another Lua (5.4's in Neovim's LuaJIT), or a
-- host that links Lua statically without exporting its symbols.
local function load_core()
  local ok, core = pcall(require, "atai.core")
  local running = (rawget(_G, "jit") and jit.version) or _VERSION
  if not ok then
    local message = tostring(core)
    local symbol = message:match("undefined symbol: ([%w_]+)")
    if symbol then
      for _, common in ipairs(COMMON_SYMBOLS) do
        if symbol == common then
          error(("atai.core cannot find the Lua C API (undefined symbol %s): the host program "
            .. "embeds %s without exporting its symbols to C modules. Link the host with -Wl,-E "
            .. "(or against a shared liblua); rebuilding atai does not help.\n%s")
            :format(symbol, running, message), 0)
        end
      end
      error(("atai.core was built for a different Lua than this %s: rebuild it for this "
        .. "interpreter (make LUA=%s, or luarocks --lua-version=%s install atai)\n%s")
        :format(running, rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+"),
          _VERSION:match("%d+%.%d+"), message), 0)
    end
    error(core, 0)
  end
  if core._LUA_VERSION ~= _VERSION then
    error(("atai.core was built for %s but is running under %s: rebuild it for this interpreter")
      :format(tostring(core._LUA_VERSION), running), 0)
  end
  return core
end

local core = load_core()
config = require("atai.config")
require("atai.methods") -- builds atai.Client's and the async view's methods, once
local api = require("atai.api")
local pages = require("atai.pages")
local wait = require("atai.wait")
local files = require("atai.files")
local download = require("atai.download")
local handle = require("atai.handle")

---@class atai
local atai = {}

atai.VERSION = core._VERSION
atai._VERSION = core._VERSION
--- Array elements that were JSON `null` decode to this sentinel.
atai.null = core.null
atai.core = core

-- Job statuses, as the API spells them.
local STATUSES = { "PENDING", "ADMITTED", "RUNNING", "COMPLETED", "FAILED", "PREEMPTED", "CANCELLED" }
local TERMINAL = wait.TERMINAL
for _, status in ipairs(STATUSES) do atai[status] = status end
atai.STATUSES = STATUSES

local function status_of(status_or_job, fname)
  local t = type(status_or_job)
  if t == "string" then return status_or_job end
  if t == "table" and type(status_or_job.status) == "string" then return status_or_job.status end
  error(("bad argument #1 to '%s' (status string or job table expected, got %s)")
    :format(fname, t), 3)
end

--- Whether a status (or a job's status) is terminal: COMPLETED, FAILED or CANCELLED.
function atai.is_terminal(status_or_job)
  return TERMINAL[status_of(status_or_job, "is_terminal")] == true
end

--- Whether a status (or a job's status) is COMPLETED.
function atai.succeeded(status_or_job)
  return status_of(status_or_job, "succeeded") == "COMPLETED"
end

--- Creates a client: see doc/configuration.md for the options. It is
--- atai.config's: the options are checked and resolved there, once.
atai.new = config.new

local default_options = {}
local default_client

--- Sets the options of the default client (the one behind atai.get_job and
--- friends). The next call creates it anew from these options.
function atai.configure(opts)
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'configure' (options table expected, got %s)"):format(type(opts)), 2)
  end
  config.resolve(opts, "configure") -- raise now on a bad option, not at the next call
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  default_options = copy
  if default_client then default_client:close() end
  default_client = nil
end

--- The default client, created on first use from atai.configure's options
--- and the environment.
function atai.default_client()
  if not default_client then default_client = atai.new(default_options) end
  return default_client
end

--- Marks a table to encode as a JSON array even when empty.
function atai.array(t)
  if t ~= nil and type(t) ~= "table" then
    error(("bad argument #1 to 'array' (table expected, got %s)"):format(type(t)), 2)
  end
  return setmetatable(t or {}, core.array_mt)
end

--- Whether v is an atai error table (the second value of `nil, err`).
function atai.is_error(v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end

-- Module-level twins of every client method, bound to the default client.
-- Every method names itself in its argument errors (the C ones through
-- arg_error, not the call site), so the twins can be generated.
local function bind(name)
  atai[name] = function(...)
    local client = atai.default_client()
    local a, b = client[name](client, ...) -- not a tail call: keeps the caller's frame
    return a, b
  end
end
for _, name in ipairs({ "get_job", "request", "wait_job", "get_jobs", "wait_jobs", "poll" }) do bind(name) end
for _, name in ipairs(api.BOUND) do bind(name) end
for _, name in ipairs(files.BOUND) do bind(name) end
for _, name in ipairs(download.BOUND) do bind(name) end

--- Handles in flight on the default client (0 before it exists).
function atai.pending()
  return default_client and default_client:pending() or 0
end

--- Seconds until the default client's engine next needs poll, or nil.
function atai.timeout()
  return default_client and default_client:timeout()
end

--- atai.async: the async view of the default client, called with a dot:
--- atai.async.get_job(id) -> handle.
atai.async = setmetatable({}, {
  __index = function(t, name)
    if core.Async[name] == nil then return nil end
    local fn = function(...)
      local view = atai.default_client().async
      local h, e = view[name](view, ...) -- not a tail call: keeps the caller's frame
      return h, e
    end
    rawset(t, name, fn)
    return fn
  end,
})

--- Waits for handles of any clients: values, errs (see doc/async.md, "Non-blocking use").
function atai.wait_all(handles, seconds)
  local values, errs = handle.wait_all(handles, seconds)
  return values, errs
end

--- Runs fn(...) as a coroutine in which blocking calls await: see doc/async.md, "Coroutines".
function atai.run(fn, ...)
  local h = handle.run(fn, ...)
  return h
end

--- Encodes a value as JSON text with object keys sorted; atai.null is null,
--- atai.array() marks empty arrays. Raises on values JSON cannot hold.
function atai.json_encode(value)
  return core.json_encode(value, true)
end

atai.progress = wait.progress
atai.collect = pages.collect

return atai

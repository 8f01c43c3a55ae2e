--- atai: the Lua client for Archetype AI's Batch Processing API.
--
-- The facade over `atai.core` (C: libcurl transport, JSON, errors). This
-- file holds the default client, the module-level functions and the job
-- helpers. Configuration policy is in `atai.config`, the endpoints in
-- `atai.api`, pagination in `atai.pages`, waiting in `atai.wait`.

local config -- loaded once atai.core is known to fit this Lua

-- Loads atai.core, turning the dynamic linker's "undefined symbol" (a module
-- built for another Lua, e.g. 5.4's in Neovim's LuaJIT) into advice.
local function load_core()
  local ok, core = pcall(require, "atai.core")
  local running = (rawget(_G, "jit") and jit.version) or _VERSION
  if not ok then
    if tostring(core):find("undefined symbol", 1, true) then
      error(("atai.core was built for a different Lua than this %s: rebuild it for this "
        .. "interpreter (make LUA=%s, or luarocks --lua-version=%s install atai)\n%s")
        :format(running, rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+"),
          _VERSION:match("%d+%.%d+"), tostring(core)), 0)
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
local api = require("atai.api") -- adds the endpoint methods to atai.Client
local pages = require("atai.pages")
local wait = require("atai.wait") -- adds client:wait_job

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

--- Creates a client: see README "Configuration" for the options.
function atai.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'new' (options table expected, got %s)"):format(type(opts)), 2)
  end
  return core.new_client(config.resolve(opts or {}, "new"))
end

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
bind("get_job")
bind("request")
for _, name in ipairs(api.BOUND) do bind(name) end
bind("wait_job")

atai.progress = wait.progress
atai.collect = pages.collect

-- TEMP(cli): stand-ins until the engine merge
-- Sequential versions of what the engine adds (get_jobs, wait_jobs,
-- json_encode, the on_exchange option), so bin/atai can be tested in the
-- wip-cli worktree. The lead deletes this whole block at merge.
do
  local Client = core.Client
  local TERMINAL_ = wait.TERMINAL

  -- on_exchange: atai.new keeps the callback aside (config.resolve does not
  -- know it); on_retry reports the failed attempts, request/get_job the
  -- last. The wrappers go in only once a client asks for on_exchange, so
  -- argument errors of the others keep pointing at their caller.
  local exchanges = setmetatable({}, { __mode = "k" }) -- client -> {hook, path, started, attempt}
  local wrapped = false
  local function wrap_methods()
    wrapped = true
    for _, name in ipairs({ "request", "get_job" }) do
      local plain = Client[name]
      Client[name] = function(self, x, y, z)
        local state = exchanges[self]
        if not state then return plain(self, x, y, z) end
        local method, path = x, y
        if name == "get_job" then method, path = "GET", "/batch/jobs/" .. tostring(x) end
        state.path, state.started, state.attempt = path, core.now(), 1
        local a, b = plain(self, x, y, z)
        local failed = a == nil
        state.hook({ method = method, path = path, url = failed and b.url or nil,
          status = failed and b.status or (type(b) == "table" and b.status or 200),
          kind = failed and b.kind or nil, seconds = core.now() - state.started, attempt = state.attempt })
        return a, b
      end
    end
  end

  local plain_new = atai.new
  function atai.new(opts)
    local hook = type(opts) == "table" and opts.on_exchange or nil
    if hook == nil then return plain_new(opts) end
    if not wrapped then wrap_methods() end
    local state = { hook = hook }
    local copy = {}
    for k, v in pairs(opts) do if k ~= "on_exchange" then copy[k] = v end end
    local user_on_retry = copy.on_retry
    copy.on_retry = function(info)
      hook({ method = info.method, path = state.path, url = info.url, status = info.status, kind = info.kind,
        seconds = core.now() - state.started, attempt = info.attempt })
      state.started, state.attempt = core.now(), info.attempt + 1
      if user_on_retry then user_on_retry(info) end
    end
    local client = plain_new(copy)
    exchanges[client] = state
    return client
  end

  local check_ = require("atai.check")
  local function check_ids(fname, ids)
    for i = 1, #ids do check_.id(fname, 1, ids[i], ("ids[%d]"):format(i)) end
  end

  -- get_jobs: one get_job after the other.
  function Client:get_jobs(ids, opts)
    check_ids("get_jobs", ids)
    local jobs, errs = {}, {}
    for i = 1, #ids do jobs[i], errs[i] = self:get_job(ids[i], opts) end
    return jobs, errs
  end

  local function job_print(job)
    local p = type(job.input_progress) == "table" and job.input_progress or {}
    return table.concat({ tostring(job.status), tostring(p.pending), tostring(p.processing),
      tostring(p.completed), tostring(p.failed) }, "/")
  end

  -- wait_jobs: polls every unfinished job once per round, one at a time.
  function Client:wait_jobs(ids, opts)
    check_ids("wait_jobs", ids)
    opts = opts or {}
    local interval = opts.interval or 2
    local max_interval = math.max(opts.max_interval or 30, interval)
    local deadline = opts.timeout and core.now() + opts.timeout
    local jobs, errs, seen, prints, open = {}, {}, {}, {}, #ids
    local pause = interval
    while open > 0 do
      for i = 1, #ids do
        if jobs[i] == nil and errs[i] == nil then
          local poll = deadline and { timeout = math.max(deadline - core.now(), 0) + 0.001, max_retries = 0 }
          local job, err = self:get_job(ids[i], poll)
          if job then
            seen[i] = job
            if opts.on_update and job_print(job) ~= prints[i] then opts.on_update(job) end
            prints[i] = job_print(job)
            if TERMINAL_[job.status] then jobs[i], open = job, open - 1 end
          elseif not err.retryable then
            errs[i], open = err, open - 1
          elseif opts.on_error then
            opts.on_error(err)
          end
        end
      end
      local now = core.now()
      if open > 0 and deadline and now >= deadline then
        for i = 1, #ids do
          if jobs[i] == nil and errs[i] == nil then
            errs[i] = core.new_error { kind = "timeout", job = seen[i], retryable = true,
              message = ("job %s is not finished after %g s"):format(ids[i], opts.timeout) }
          end
        end
        open = 0
      elseif open > 0 then
        core.sleep(deadline and math.min(pause, deadline - now) or pause)
        pause = math.min(pause * 1.5, max_interval)
      end
    end
    return jobs, errs
  end
  bind("get_jobs")
  bind("wait_jobs")

  -- json_encode: sorted keys, atai.null as null, atai.array() as [].
  local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
    ["\b"] = "\\b", ["\f"] = "\\f" }
  local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
      return ESC[c] or ("\\u%04X"):format(c:byte())
    end) .. '"'
  end
  local function encode_number(n)
    if n ~= n or n == math.huge or n == -math.huge then error("cannot encode NaN or infinity as JSON", 0) end
    if math.type and math.type(n) == "integer" then return ("%d"):format(n) end
    if n == math.floor(n) and math.abs(n) <= 2 ^ 53 then return ("%.0f"):format(n) end
    local s = ("%.15g"):format(n)
    if tonumber(s) ~= n then s = ("%.17g"):format(n) end
    return s
  end
  local encode
  local function array_length(t)
    local n, keys = #t, 0
    if n == 0 and getmetatable(t) ~= core.array_mt then return nil end
    for k in pairs(t) do
      if type(k) ~= "number" then return nil end
      keys = keys + 1
    end
    return keys == n and n or nil
  end
  local function encode_table(t, out, depth)
    if depth > 200 then error("cannot encode: nested deeper than 200 levels (a cycle?)", 0) end
    local n = array_length(t)
    if n then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(t[i], out, depth + 1)
      end
      out[#out + 1] = "]"
      return
    end
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" and type(k) ~= "number" then error("cannot encode a " .. type(k) .. " key as JSON", 0) end
      keys[#keys + 1] = tostring(k)
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      local v = t[k]
      if v == nil then v = t[tonumber(k)] end
      out[#out + 1] = (i > 1 and "," or "") .. encode_string(k) .. ":"
      encode(v, out, depth + 1)
    end
    out[#out + 1] = "}"
  end
  function encode(v, out, depth)
    local t = type(v)
    if v == nil or v == core.null then out[#out + 1] = "null"
    elseif t == "boolean" then out[#out + 1] = tostring(v)
    elseif t == "number" then out[#out + 1] = encode_number(v)
    elseif t == "string" then out[#out + 1] = encode_string(v)
    elseif t == "table" then encode_table(v, out, depth)
    else error("cannot encode a " .. t .. " as JSON", 0) end
  end
  function atai.json_encode(value)
    local out = {}
    encode(value, out, 0)
    return table.concat(out)
  end
end
-- END TEMP(cli)

return atai

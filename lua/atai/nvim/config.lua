--- atai.nvim.config: the plugin's settings from vim.g.atai, checked on first
-- use, and the API key from ATAI_API_KEY or vim.g.atai.api_key_cmd.
--
-- No setup(): vim.g.atai is read when a command first needs it (again
-- after a change, until a valid table was seen). A bad field gives one
-- ERROR naming it; the key is never read from vim.g.atai itself, and
-- api_key_cmd runs at most once per Neovim, asynchronously.

local M = {}

-- The plugin's own fields: what each must be, and its check.
local function positive(v) return type(v) == "number" and v > 0 and v < math.huge end
local function is_argv(v)
  if type(v) ~= "table" or #v == 0 then return false end
  for k, a in pairs(v) do
    if type(k) ~= "number" or type(a) ~= "string" then return false end
  end
  return true
end
local function is_notify(v) return type(v) == "boolean" or vim.is_callable(v) end

local PLUGIN_FIELDS = {
  poll_interval = { "a number of seconds > 0", positive },
  notify = { "true, false or a function(msg, level, opts) like vim.notify", is_notify },
  api_key_cmd = { "a non-empty list of strings (argv)", is_argv },
}

-- Client options passed on to atai.new, checked by atai.config's rules.
local CLIENT_FIELDS = { "endpoint", "timeout", "connect_timeout", "max_retries", "retry_backoff",
  "retry_backoff_max", "max_response_bytes", "max_concurrency", "ca_file", "ca_path", "proxy", "user_agent" }

M.DEFAULTS = { poll_interval = 2, notify = true }

-- The last valid settings, and the vim.g.atai they came from.
local cached, cached_from

--- Reads and checks vim.g.atai: the settings table {poll_interval, notify,
--- api_key_cmd, client = {atai.new options}}, or nil, message naming the
--- first bad field.
function M.read()
  local g = vim.g.atai
  if g == nil then g = {} end
  if cached and vim.deep_equal(g, cached_from) then return cached end
  if type(g) ~= "table" then return nil, "vim.g.atai: a table expected, got " .. type(g) end
  local options = require("atai.config").OPTIONS
  local client_ok = {}
  for _, name in ipairs(CLIENT_FIELDS) do client_ok[name] = options[name] end
  local fields = {}
  for k in pairs(g) do fields[#fields + 1] = tostring(k) end
  table.sort(fields)
  local settings = { client = {} }
  for _, k in ipairs(fields) do
    local v = g[k]
    if k == "api_key" then
      return nil, "vim.g.atai.api_key: not accepted (keep the key out of your config): set ATAI_API_KEY "
        .. "or vim.g.atai.api_key_cmd"
    elseif PLUGIN_FIELDS[k] then
      if not PLUGIN_FIELDS[k][2](v) then
        return nil, ("vim.g.atai.%s: %s expected, got %s"):format(k, PLUGIN_FIELDS[k][1], type(v))
      end
      settings[k] = v
    elseif client_ok[k] then
      if not client_ok[k].check(v) then
        return nil, ("vim.g.atai.%s: %s expected, got %s"):format(k, client_ok[k].description, type(v))
      end
      settings.client[k] = v
    else
      return nil, ("vim.g.atai.%s: unknown field (see :help atai-config)"):format(k)
    end
  end
  for k, v in pairs(M.DEFAULTS) do
    if settings[k] == nil then settings[k] = v end
  end
  cached, cached_from = settings, g
  return settings
end

-- ---------------------------------------------------------------------------
-- The key

local key_state = "unknown" -- "unknown", "running", "done"
local key_value, key_error
local key_waiters = {}

local function finish_key(value, err)
  key_state, key_value, key_error = "done", value, err
  local waiters = key_waiters
  key_waiters = {}
  for _, fn in ipairs(waiters) do fn(key_value, key_error) end
end

--- Calls fn(key, err) once the key is known: ATAI_API_KEY at once, else
--- the output of api_key_cmd (run once; later calls get its result), else
--- fn(nil) (atai.new then reports the missing key). Never blocks.
function M.with_key(settings, fn)
  local env = os.getenv("ATAI_API_KEY")
  if env and env ~= "" then return fn(nil) end -- atai reads the environment itself
  if not settings.api_key_cmd then return fn(nil) end
  if key_state == "done" then return fn(key_value, key_error) end
  key_waiters[#key_waiters + 1] = fn
  if key_state == "running" then return end
  key_state = "running"
  local argv, out = settings.api_key_cmd, {}
  local ok, job = pcall(vim.fn.jobstart, argv, {
    stdout_buffered = true,
    on_stdout = function(_, data) out = data or {} end,
    on_exit = function(_, code)
      vim.schedule(function()
        local key = vim.trim(table.concat(out, "\n"))
        if code ~= 0 then
          finish_key(nil, ("vim.g.atai.api_key_cmd (%s) exited with status %d"):format(argv[1], code))
        elseif key == "" or key:find("%c") then
          finish_key(nil, ("vim.g.atai.api_key_cmd (%s) printed no usable key"):format(argv[1]))
        else
          finish_key(key)
        end
      end)
    end,
  })
  if not ok or type(job) ~= "number" or job <= 0 then
    finish_key(nil, ("vim.g.atai.api_key_cmd: cannot run %s"):format(argv[1]))
  end
end

--- "env", "cmd" (with whether it ran), or nil: where the key comes from,
--- for :checkhealth (never the key).
function M.key_source(settings)
  local env = os.getenv("ATAI_API_KEY")
  if env and env ~= "" then return "the ATAI_API_KEY environment variable" end
  if settings and settings.api_key_cmd then
    local s = "vim.g.atai.api_key_cmd (" .. settings.api_key_cmd[1] .. ")"
    if key_state == "done" then return s .. (key_value and ", ran once" or ", failed: " .. tostring(key_error)) end
    return s .. ", not run yet"
  end
  return nil
end

return M

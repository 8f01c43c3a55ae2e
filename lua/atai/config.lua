--- atai.config: turns the options of atai.new / atai.configure and the
-- environment into the resolved table that atai.core.new_client takes.
--
-- Explicit options are checked strictly (a wrong one raises, naming it);
-- values read from the environment cannot raise at the call site, so a bad
-- ATAI_API_ENDPOINT becomes a `config` error returned by every request.

local core = require("atai.core")

local config = {}

config.DEFAULT_ENDPOINT = "https://api.u1.archetypeai.app/v0.5"
config.API_VERSION_PATH = "/v0.5"

local function is_number(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end
local function is_whole(v) return is_number(v) and v == math.floor(v) end

-- Each option: how to check it, and what the check expects (for messages).
local OPTIONS = {
  api_key = { "non-empty string", function(v) return type(v) == "string" and v ~= "" end },
  endpoint = { "URL string", function(v) return type(v) == "string" end },
  timeout = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 end },
  connect_timeout = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 end },
  max_retries = { "integer from 0 to 10", function(v) return is_whole(v) and v >= 0 and v <= 10 end },
  retry_backoff = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 end },
  retry_backoff_max = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 end },
  ca_file = { "path string", function(v) return type(v) == "string" and v ~= "" end },
  ca_path = { "path string", function(v) return type(v) == "string" and v ~= "" end },
  proxy = { "proxy URL string", function(v) return type(v) == "string" and v ~= "" end },
  user_agent = { "string", function(v) return type(v) == "string" and not v:find("[%c]") end },
  max_response_bytes = { "integer > 0", function(v) return is_whole(v) and v > 0 end },
  on_retry = { "function", function(v) return type(v) == "function" end },
}

-- Whether `host` (as written in a URL, IPv6 in brackets) is this machine.
local function is_loopback(host)
  host = host:lower()
  if host == "localhost" or host == "[::1]" then return true end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, octet in ipairs({ a, b, c, d }) do
    if tonumber(octet) > 255 then return false end
  end
  return tonumber(a) == 127
end
config.is_loopback = is_loopback

--- Normalises an endpoint: a bare root gains /v0.5, a trailing slash goes.
--- Returns the base URL, or nil and why it cannot be used.
function config.normalize_endpoint(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "endpoint must be an http(s) URL, got '" .. url .. "'" end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "endpoint must use https (got " .. scheme .. "://)"
  end
  if rest:find("[%s?#@]") then
    return nil, "endpoint must not contain spaces, a query, a fragment or credentials"
  end
  local authority, path = rest:match("^([^/]*)(.*)$")
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
  if host == "" then return nil, "endpoint has no host: '" .. url .. "'" end
  if scheme == "http" and not is_loopback(host) then
    return nil, "endpoint must use https: plain http:// is only allowed to a loopback host "
      .. "(127.0.0.0/8, ::1, localhost), so the API key never travels in clear text"
  end
  path = path:gsub("/+$", "")
  if path == "" then path = config.API_VERSION_PATH end
  return scheme .. "://" .. authority .. path
end

local function user_agent(app)
  local lua_version = (rawget(_G, "jit") and jit.version) or _VERSION
  local ua = ("atai-lua/%s libcurl/%s %s"):format(core._VERSION, core.version_info().curl_version, lua_version)
  if app then return app .. " " .. ua end
  return ua
end

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

--- Checks `opts` (raising on unknown or bad options, naming the function
--- `fname`) and returns the table for core.new_client.
function config.resolve(opts, fname)
  for name, value in pairs(opts) do
    local spec = OPTIONS[name]
    if not spec then
      error(("bad argument #1 to '%s' (unknown option '%s')"):format(fname, tostring(name)), 3)
    end
    if not spec[2](value) then
      error(("bad argument #1 to '%s' (option '%s': %s expected, got %s)")
        :format(fname, name, spec[1], type(value)), 3) -- never the value: it may be a secret
    end
  end

  local resolved = {}
  for name in pairs(OPTIONS) do resolved[name] = opts[name] end
  resolved.endpoint = nil
  resolved.api_key = opts.api_key or env("ATAI_API_KEY")
  resolved.user_agent = user_agent(opts.user_agent)

  if opts.endpoint then
    local base, why = config.normalize_endpoint(opts.endpoint)
    if not base then error(("bad argument #1 to '%s' (option 'endpoint': %s)"):format(fname, why), 3) end
    resolved.base_url = base
  else
    local from_env = env("ATAI_API_ENDPOINT")
    local base, why = config.normalize_endpoint(from_env or config.DEFAULT_ENDPOINT)
    if base then
      resolved.base_url = base
    else
      resolved.base_url = config.DEFAULT_ENDPOINT
      resolved.config_error = "ATAI_API_ENDPOINT: " .. why
    end
  end
  return resolved
end

return config

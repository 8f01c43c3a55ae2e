--- atai.config: turns the options of atai.new / atai.configure and the
-- environment into the resolved table that atai.core.new_client takes.
--
-- Explicit options are checked strictly (a wrong one raises, naming it);
-- values read from the environment cannot raise at the call site, so a bad
-- ATAI_API_ENDPOINT becomes a `config` error returned by every request.

local core = require("atai.core")
local check = require("atai.check")

local config = {}

config.DEFAULT_ENDPOINT = "https://api.u1.archetypeai.app/v0.5"
config.API_VERSION_PATH = "/v0.5"

local is_number = check.is_number
local function is_whole(v) return is_number(v) and v == math.floor(v) end
-- A header value: no control characters (CR/LF would inject headers).
local function is_header_text(v) return type(v) == "string" and not v:find("%c") end

-- Each option: how to check it, and what the check expects (for messages).
local OPTIONS = {
  api_key = { "non-empty string without control characters", function(v) return is_header_text(v) and v ~= "" end },
  endpoint = { "URL string", function(v) return type(v) == "string" end },
  timeout = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 end },
  connect_timeout = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 end },
  max_retries = { "integer from 0 to 10", function(v) return is_whole(v) and v >= 0 and v <= 10 end },
  retry_backoff = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 end },
  retry_backoff_max = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 end },
  ca_file = { "path string", function(v) return type(v) == "string" and v ~= "" end },
  ca_path = { "path string", function(v) return type(v) == "string" and v ~= "" end },
  proxy = { "proxy URL string", function(v) return type(v) == "string" and v ~= "" end },
  user_agent = { "string without control characters", is_header_text },
  max_response_bytes = { "integer > 0", function(v) return is_whole(v) and v > 0 end },
  on_retry = { "function", function(v) return type(v) == "function" end },
}

-- The host of an http(s) URL as written (IPv6 in brackets), or nil.
local function url_host(url)
  local authority = url:match("^%a[%w+.-]*://([^/?#]*)")
  if not authority then return nil end
  authority = authority:gsub("^.*@", "")
  return authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
end

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
  local host = url_host(url)
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

-- An environment variable, trimmed (a key pasted with a newline is still
-- the key); nil when unset or blank.
local function env(name)
  local v = os.getenv(name)
  v = v and v:match("^%s*(.-)%s*$")
  if v == "" then return nil end
  return v
end

-- The key must only travel encrypted or stay on this machine: for an
-- http:// (loopback) endpoint, no proxy from the environment, and an
-- explicit proxy only on loopback too. Returns the proxy to use ("" = none).
local function proxy_for(base_url, proxy, fname)
  if not base_url:find("^http://") then return proxy end
  if proxy == nil then return "" end
  local host = url_host(proxy) or proxy:match("^([^:/]*)")
  if not is_loopback(host or "") then
    error(("bad argument #1 to '%s' (option 'proxy': with an http:// endpoint the proxy must "
      .. "be on loopback too, or the API key would cross the network in clear text)"):format(fname), 4)
  end
  return proxy
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
  if not is_header_text(resolved.api_key or "") then
    resolved.api_key = nil
    resolved.config_error = "ATAI_API_KEY contains control characters"
  end

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
      resolved.config_error = resolved.config_error or ("ATAI_API_ENDPOINT: " .. why)
    end
  end
  resolved.proxy = proxy_for(resolved.base_url, opts.proxy, fname)
  return resolved
end

return config

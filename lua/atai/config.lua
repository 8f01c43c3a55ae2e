--- atai.config: turns the options of atai.new / atai.configure and the
-- environment into the resolved table that atai.core.new_client takes, and
-- checks every other option table of atai (per call: get_job's and
-- request's timeout and max_retries, wait_job's, the file functions'; and
-- the list filters): the one place where option values are judged.
--
-- Explicit options are checked strictly (a wrong one raises, naming it and
-- never its value); values read from the environment cannot raise at the
-- call site, so a bad ATAI_API_ENDPOINT becomes a `config` error returned
-- by every request. config.OPTIONS holds every client option's kind and
-- bounds: the one source for atai.new, atai.configure and the per-call
-- options of the same name. atai.core reads only values checked here.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local pages = require("atai.pages")

local config = {}

config.DEFAULT_ENDPOINT = "https://api.u1.archetypeai.app/v0.5"
config.API_VERSION_PATH = "/v0.5"

local is_number = check.is_number
local function is_whole(v) return is_number(v) and v == math.floor(v) end
local is_header_text = check.is_header_text -- no control bytes (CR/LF would inject headers)
local function is_nonempty(v) return type(v) == "string" and v ~= "" end

-- A list of non-empty strings, or one.
local function is_strings(v)
  if type(v) == "string" then return v ~= "" end
  if type(v) ~= "table" or #v == 0 then return false end
  for k, s in pairs(v) do
    if type(k) ~= "number" or type(s) ~= "string" or s == "" then return false end
  end
  return true
end

-- Kinds of value, for every option and filter of atai: what a value of the
-- kind is called in messages, and whether v (given the option, for its
-- bounds) is one.
local KINDS = {
  number = { "number", function(v, o) return is_number(v) and v >= o.min and v <= o.max end },
  positive = { "number > 0", function(v) return is_number(v) and v > 0 end },
  string = { "non-empty string", is_nonempty },
  count = { "integer >= 0", function(v) return is_whole(v) and v >= 0 end },
  limit = { "integer >= 1", function(v) return is_whole(v) and v >= 1 end },
  strings = { "string or list of strings", is_strings },
  order = { "'asc' or 'desc'", function(v) return v == "asc" or v == "desc" end },
  seconds = { "number > 0 (seconds)", function(v) return is_number(v) and v > 0 and v <= 86400 end },
  bytes = { "integer >= 1 (bytes)", function(v) return is_whole(v) and v >= 1 end },
  size = { "integer from 0 to 2^52 (bytes)", function(v) return is_whole(v) and v >= 0 and v <= 2 ^ 52 end },
  rate = { "integer from 1 to 2^31 - 1 (bytes per second)",
    function(v) return is_whole(v) and v >= 1 and v <= 2 ^ 31 - 1 end },
  duration = { "number from 1 to 604800 (seconds)", function(v) return is_number(v) and v >= 1 and v <= 604800 end },
  mode = { "integer from 0 to 511, or an octal string such as \"0600\"",
    function(v) return check.file_mode(v) ~= nil end },
  margin = { "number >= 0 (seconds)", function(v) return is_number(v) and v >= 0 and v <= 86400 end },
  boolean = { "boolean", function(v) return type(v) == "boolean" end },
  integer = { "integer", function(v, o) return is_whole(v) and v >= o.min and v <= o.max end },
  ["function"] = { "function", function(v) return type(v) == "function" end },
  secret = { "non-empty string without control characters",
    function(v) return is_header_text(v) and v ~= "" end },
  text = { "string without control characters", is_header_text },
  path = { "path string", is_nonempty },
  url = { "URL string", function(v) return type(v) == "string" end },
  proxy = { "proxy URL string", is_nonempty },
}

--- Every option of atai.new / atai.configure: kind, bounds (min, max,
--- inclusive, for numbers), unit, default (nil: none, or decided later).
--- Filled in below with `check(v) -> boolean` and `description`.
config.OPTIONS = {
  api_key = { kind = "secret" },
  endpoint = { kind = "url" },
  timeout = { kind = "number", min = 0.001, max = 86400, unit = "seconds", default = 60 },
  connect_timeout = { kind = "number", min = 0.001, max = 86400, unit = "seconds", default = 10 },
  max_retries = { kind = "integer", min = 0, max = 10, default = 2 },
  retry_backoff = { kind = "number", min = 0, max = 3600, unit = "seconds", default = 0.5 },
  retry_backoff_max = { kind = "number", min = 0, max = 3600, unit = "seconds", default = 8 },
  max_response_bytes = { kind = "integer", min = 1, max = 2 ^ 52, unit = "bytes", default = 64 * 1024 * 1024 },
  max_concurrency = { kind = "integer", min = 1, max = 1000, default = 16 },
  max_pages = { kind = "integer", min = 1, max = 10 ^ 7, default = pages.DEFAULT_MAX_PAGES },
  ca_file = { kind = "path" },
  ca_path = { kind = "path" },
  proxy = { kind = "proxy" },
  user_agent = { kind = "text" },
  on_retry = { kind = "function" },
  on_exchange = { kind = "function" },
}
local OPTIONS = config.OPTIONS

-- A bound as people write it: 86400, 0.001, 4503599627370496.
local function bound_text(n)
  if n == math.floor(n) then return ("%.0f"):format(n) end
  return ("%.14g"):format(n)
end

-- What an option expects, for its error message.
local function describe(option)
  local text = KINDS[option.kind][1]
  if option.min then text = ("%s from %s to %s"):format(text, bound_text(option.min), bound_text(option.max)) end
  if option.unit then text = ("%s (%s)"):format(text, option.unit) end
  return text
end

for _, option in pairs(OPTIONS) do
  local test = KINDS[option.kind][2]
  option.check = function(v) return test(v, option) == true end
  option.description = describe(option)
end

-- What a refused value is, without the value itself (it may be a secret).
local function got(option, v)
  if type(v) ~= "number" then return type(v) end
  if v ~= v then return "nan" end
  if v == math.huge or v == -math.huge then return "infinity" end
  if option.kind == "integer" and v ~= math.floor(v) then return "non-integer number" end
  return "number out of range"
end

-- The field spec of a kind name ("limit"): made once, like an option's.
local FIELDS_OF_KIND = {}
for kind, k in pairs(KINDS) do
  FIELDS_OF_KIND[kind] = { kind = kind, description = k[1], check = function(v) return k[2](v) == true end }
end

-- Raises unless `value` suits field `name` of `fields` (name -> an option
-- of config.OPTIONS or a kind name); `label` is how the message names it,
-- a format for the name ("option '%s'", "opts.%s", "%s"); `what` names
-- the entries ("option", "filter") when the name is unknown, listing the
-- known ones when `list_known`.
local function check_field(fname, argn, fields, what, label, name, value, list_known)
  local field = fields[name]
  if type(field) == "string" then field = FIELDS_OF_KIND[field] end
  if not field then
    local known = ""
    if list_known then
      local names = {}
      for k in pairs(fields) do names[#names + 1] = k end
      table.sort(names)
      known = (" (known: %s)"):format(table.concat(names, ", "))
    end
    check.fail(fname, argn, ("unknown %s '%s'%s"):format(what, tostring(name), known))
  end
  if not field.check(value) then
    check.fail(fname, argn,
      ("%s: %s expected, got %s"):format(label:format(name), field.description, got(field, value)))
  end
  return value
end

local function check_option(fname, argn, label, name, value)
  return check_field(fname, argn, OPTIONS, "option", label, name, value, false)
end

--- The one checker of atai's option and filter tables: checks the optional
--- table `t` (argument argn of fname) against `fields` (name -> kind name,
--- or an option of config.OPTIONS) and returns a fresh copy. `what` names
--- the entries ("option", "filter"); `label` formats a name in messages
--- ("%s", "option '%s'").
function config.check_table(fname, argn, t, fields, what, label)
  local copy = {}
  if t == nil then return copy end
  if type(t) ~= "table" then
    check.fail(fname, argn, ("%s table expected, got %s"):format(what == "option" and "options" or what, type(t)))
  end
  for name, value in pairs(t) do
    copy[name] = check_field(fname, argn, fields, what, label or "%s", name, value, true)
  end
  return copy
end

-- The per-call options atai.core reads (get_job, request, get_jobs): the
-- client options of the same name, with their bounds.
local CALL_OPTIONS = { timeout = OPTIONS.timeout, max_retries = OPTIONS.max_retries }

--- Checks the per-call options of get_job/request (opts.timeout,
--- opts.max_retries; other fields are the request's own and are checked
--- where they are used) and returns opts; raises "bad argument #argn to
--- 'fname' (opts.NAME: ... expected, got ...)".
function config.call_options(fname, argn, opts)
  if type(opts) ~= "table" then return opts end -- atai.core names a non-table
  for name, option in pairs(CALL_OPTIONS) do
    local v = opts[name]
    if v ~= nil and not option.check(v) then
      check.fail(fname, argn, ("opts.%s: %s expected, got %s"):format(name, option.description, got(option, v)))
    end
  end
  return opts
end

--- Checks one per-call option (opts.timeout, opts.max_retries of get_job,
--- request, ...) against the bounds of the client option of that name;
--- raises "bad argument #argn to 'fname' (opts.NAME: ... expected, got ...)".
function config.check_call_option(fname, argn, name, value)
  return check_option(fname, argn, "opts.%s", name, value)
end

-- ------------------------------------------------------------ hosts and URLs

-- Splits an authority ("host", "host:port", "[v6]:port") into the host
-- (lower case, IPv6 in brackets) and the port (digits, or nil); or nil, nil,
-- why. Userinfo ('@') is refused by the callers before this.
local function parse_authority(authority)
  local host, rest = authority:match("^(%[[%x:.]*:[%x:.]*%])(.*)$")
  if not host then host, rest = authority:match("^([%w._-]+)(.*)$") end
  if not host then return nil, nil, "no valid host (a name, an IPv4 address or an [IPv6] address)" end
  if rest == "" then return host:lower(), nil end
  local port = rest:match("^:(%d%d?%d?%d?%d?)$")
  if not port or tonumber(port) < 1 or tonumber(port) > 65535 then
    return nil, nil, "a bad port (digits from 1 to 65535, and nothing after them)"
  end
  return host:lower(), ("%d"):format(tonumber(port))
end

--- Whether `host` (lower case, IPv6 in brackets) is this machine. Dotted
--- IPv4 only in plain decimal: a leading zero is octal to some resolvers
--- (0127.0.0.1 is 87.0.0.1), so it is not taken for loopback.
local function is_loopback(host)
  if host == "localhost" or host == "[::1]" then return true end
  local octets = { host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
  if #octets ~= 4 then return false end
  for _, octet in ipairs(octets) do
    if #octet > 3 or octet:find("^0%d") or tonumber(octet) > 255 then return false end
  end
  return octets[1] == "127"
end
config.is_loopback = is_loopback

local CLEAR_TEXT_RULE = "plain http:// is only allowed to a loopback host "
  .. "(127.0.0.0/8, ::1, localhost), so the API key never travels in clear text"

--- Normalises an endpoint: a bare root gains /v0.5, a trailing slash goes.
--- Returns the base URL, or nil and why it cannot be used (never quoting it).
function config.normalize_endpoint(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "endpoint must be an http(s) URL (https://host/...)" end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then return nil, "endpoint must use https" end
  if rest:find("[%s%c?#@\\]") then
    return nil, "endpoint must not contain spaces, a query, a fragment or credentials"
  end
  local authority, path = rest:match("^([^/]*)(.*)$")
  local host, port, why = parse_authority(authority)
  if not host then return nil, "endpoint has " .. why end
  if scheme == "http" and not is_loopback(host) then
    return nil, "endpoint must use https: " .. CLEAR_TEXT_RULE
  end
  path = path:gsub("/+$", "")
  if path == "" then path = config.API_VERSION_PATH end
  return scheme .. "://" .. host .. (port and ":" .. port or "") .. path
end

-- The proxy schemes libcurl understands that atai lets through.
local PROXY_SCHEMES = { http = true, https = true, socks4 = true, socks4a = true, socks5 = true, socks5h = true }

--- Parses a proxy URL ("host:port" means http://host:port): returns
--- { scheme, host, port, url } (url rebuilt from those parts, for
--- libcurl), or nil and why it is refused (never quoting it). Credentials
--- (any '@') are refused: libcurl would take what precedes it as proxy
--- credentials and send the request, key included, to what follows.
function config.parse_proxy(text)
  if text:find("@", 1, true) then
    return nil, "credentials (user:password@) are not accepted in the proxy URL"
  end
  local scheme, rest = text:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then scheme, rest = "http", text end
  scheme = scheme:lower()
  if not PROXY_SCHEMES[scheme] then
    return nil, "the proxy scheme must be http, https, socks4, socks4a, socks5 or socks5h"
  end
  local authority, tail = rest:match("^([^/?#]*)(.*)$")
  if tail ~= "" and tail ~= "/" then
    return nil, "the proxy URL must end after host and port (an optional '/' only)"
  end
  local host, port, why = parse_authority(authority)
  if not host then return nil, "the proxy URL has " .. why end
  return { scheme = scheme, host = host, port = port,
    url = scheme .. "://" .. host .. (port and ":" .. port or "") }
end

-- The key must only travel encrypted or stay on this machine: for an
-- http:// (loopback) endpoint, no proxy from the environment, and an
-- explicit proxy only on loopback too. Returns the proxy to use ("" = none,
-- nil = libcurl's usual *_proxy variables).
local function proxy_for(base_url, text, fname)
  local clear = base_url:find("^http://") ~= nil
  if text == nil then return clear and "" or nil end
  local proxy, why = config.parse_proxy(text)
  if not proxy then check.fail(fname, 1, "option 'proxy': " .. why) end
  if clear and not is_loopback(proxy.host) then
    check.fail(fname, 1, "option 'proxy': with an http:// endpoint the proxy must be on loopback "
      .. "too, or the API key would cross the network in clear text")
  end
  return proxy.url
end

-- ------------------------------------------------------------ resolving

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

--- Reads the API key from the file `path` ($ATAI_API_KEY_FILE, for cron
--- and CI secrets): the key (trimmed), or nil and why the file cannot be
--- used (unreadable or empty; never quoting its content).
function config.read_key_file(path)
  local f, why = io.open(path, "rb")
  if not f then return nil, "cannot read " .. why end
  local text, read_error = f:read("*a")
  f:close()
  if not text then return nil, ("cannot read %s: %s"):format(path, tostring(read_error)) end
  text = text:match("^%s*(.-)%s*$")
  if text == "" then return nil, path .. " is empty" end
  return text
end

-- The key when no option gives one: $ATAI_API_KEY, else the file named by
-- $ATAI_API_KEY_FILE; and the config error when that file cannot be used.
local function key_from_environment()
  local key = env("ATAI_API_KEY")
  if key then return key end
  local file = env("ATAI_API_KEY_FILE")
  if not file then return nil end
  local text, why = config.read_key_file(file)
  if not text then return nil, "ATAI_API_KEY_FILE: " .. why end
  return text
end

-- The base URL from the option (raising when bad) or the environment (a
-- config error when bad); returns base_url, config_error.
local function base_url_for(endpoint, fname)
  if endpoint then
    local base, why = config.normalize_endpoint(endpoint)
    if not base then check.fail(fname, 1, "option 'endpoint': " .. why) end
    return base
  end
  local base, why = config.normalize_endpoint(env("ATAI_API_ENDPOINT") or config.DEFAULT_ENDPOINT)
  if base then return base end
  return config.DEFAULT_ENDPOINT, "ATAI_API_ENDPOINT: " .. why
end

--- atai.new(opts): checks and resolves the options (once: atai.core reads
--- only what this returns) and makes the client. Lua settings of the client
--- (max_pages: pages.DEFAULT_MAX_PAGES unless set) go in its user value.
function config.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'new' (options table expected, got %s)"):format(type(opts)), 2)
  end
  local client = core.new_client(config.resolve(opts or {}, "new"))
  P.settings(client).max_pages = opts and opts.max_pages
  return client
end

--- Checks `opts` (raising on unknown or bad options, naming the function
--- `fname`) and returns the table for core.new_client: every option, with
--- its default when not given, plus base_url and config_error.
function config.resolve(opts, fname)
  for name, value in pairs(opts) do check_option(fname, 1, "option '%s'", name, value) end

  local resolved = {}
  for name, option in pairs(OPTIONS) do
    local value = opts[name]
    if value == nil then value = option.default end
    resolved[name] = value
  end
  resolved.endpoint = nil
  local key_error
  resolved.api_key = opts.api_key
  if resolved.api_key == nil then resolved.api_key, key_error = key_from_environment() end
  resolved.user_agent = user_agent(opts.user_agent)
  if not is_header_text(resolved.api_key or "") then
    resolved.api_key = nil
    key_error = "ATAI_API_KEY contains control characters"
  end
  local endpoint_error
  resolved.base_url, endpoint_error = base_url_for(opts.endpoint, fname)
  resolved.config_error = key_error or endpoint_error
  resolved.proxy = proxy_for(resolved.base_url, opts.proxy, fname)
  return resolved
end

return config

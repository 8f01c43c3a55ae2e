#!/usr/bin/env lua5.4
--[[
  fake_api.lua -- a fake Archetype AI Batch Processing API (v0.5) for atai's tests.

  Usage:  lua5.4 spec/support/fake_api.lua [--port N] [--key KEY] [--fixtures DIR]
                                           [--ttl SECONDS] [--idle SECONDS] [--verbose]

  Binds 127.0.0.1 only, prints exactly one line "PORT <n>" on stdout once it listens,
  then serves real HTTP/1.1 (keep-alive, Content-Length and chunked request bodies,
  Expect: 100-continue, many concurrent connections).  It exits by itself after --ttl
  seconds (default 600) or after --idle seconds without any request (default 120), so an
  orphan can never linger.  The key may also come from env ATAI_FAKE_KEY.

  Always runs under lua5.4 and needs only LuaSocket.  It carries its own small JSON
  codec because lua-cjson 2.1.0 turns empty arrays into objects and integers beyond
  2^53 into rounded floats; this codec keeps arrays, key order and 64-bit integers, and
  seed jobs are served from their fixture bytes verbatim (escapes included).

  Design: one coroutine per connection, driven by a scheduler over socket.select.
  Reads and writes yield until the socket is ready; sleep(d) yields until a deadline, so
  a delayed response on one connection never blocks the others.

  Control API (no auth, never logged, never faulted), JSON in and out:
    POST /_fake/reset     reload fixtures; clear faults, counters, request log, toggles
    POST /_fake/faults    {"method"?, "path" | "path_prefix"?, "responses": [F, ...]}
    POST /_fake/config    {"full_write_bodies", "ignore_offset", "page_total_lies"}
    GET  /_fake/stats     {"connections", "accepted", "faults_pending", "requests": [...]}
    POST /_fake/shutdown  respond, then exit
  See the "Faults" and "Control API" sections below for the exact semantics.

  The API key is never written anywhere: logs go to stderr (only with --verbose) and
  the request log replaces the Authorization header by "auth": "ok"|"missing"|"wrong".
]]

local socket = require("socket")

local now = socket.gettime

-- ===================================================================== JSON

local json = {}

json.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

local ARRAY_MT = { __name = "json.array" }
local RAW_MT = { __name = "json.raw" }
local key_order = setmetatable({}, { __mode = "k" })

-- Mark a table as a JSON array (needed for empty arrays).
function json.array(t) return setmetatable(t or {}, ARRAY_MT) end

-- Wrap already-encoded JSON text so the encoder splices it verbatim.
function json.raw(text) return setmetatable({ text = text }, RAW_MT) end

-- Give an object table a preferred key order for encoding (unknown keys follow, sorted).
function json.object(t, order)
  key_order[t] = order
  return t
end

function json.is_array(v) return getmetatable(v) == ARRAY_MT end
function json.is_object(v)
  return type(v) == "table" and v ~= json.null and getmetatable(v) ~= ARRAY_MT
    and getmetatable(v) ~= RAW_MT
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or string.format("\\u%04x", byte)
end

local function encode_string(s)
  return '"' .. s:gsub('[\0-\31"\\]', ESCAPES) .. '"'
end

-- Integers print exactly; floats print in their shortest round-trip form and keep a
-- fractional part ("2.0", "-0.0") so they stay floats for the reader.
local function encode_number(n)
  if math.type(n) == "integer" then return string.format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json: cannot encode non-finite number")
  end
  if n == 0 then return (1 / n < 0) and "-0.0" or "0.0" end
  if n == math.floor(n) and math.abs(n) < 1e15 then return string.format("%.1f", n) end
  for precision = 14, 17 do
    local s = string.format("%." .. precision .. "g", n)
    if tonumber(s) == n then return s end
  end
end

local function object_keys(t)
  local keys, seen = {}, {}
  for _, k in ipairs(key_order[t] or {}) do
    if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local encode_value

local function encode_table(t, out)
  local mt = getmetatable(t)
  if t == json.null then out[#out + 1] = "null"; return end
  if mt == RAW_MT then out[#out + 1] = t.text; return end
  if mt == ARRAY_MT or (mt == nil and t[1] ~= nil) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out)
    end
    out[#out + 1] = "]"
    return
  end
  out[#out + 1] = "{"
  for i, k in ipairs(object_keys(t)) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encode_string(tostring(k))
    out[#out + 1] = ":"
    encode_value(t[k], out)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out)
  local kind = type(v)
  if kind == "table" then encode_table(v, out)
  elseif kind == "string" then out[#out + 1] = encode_string(v)
  elseif kind == "number" then out[#out + 1] = encode_number(v)
  elseif kind == "boolean" then out[#out + 1] = tostring(v)
  elseif v == nil then out[#out + 1] = "null"
  else error("json: cannot encode a " .. kind) end
end

function json.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

local UNESCAPE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                   n = "\n", r = "\r", t = "\t" }

-- Decode JSON text. Arrays get the array mark, objects remember their key order,
-- integer literals that fit 64 bits stay integers. Returns value or nil, message.
function json.decode(text)
  local pos = 1
  local function fail(msg) error({ json_error = msg .. " at byte " .. pos }, 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end

  local function parse_string()
    local buf, i = {}, pos + 1
    while true do
      local j = text:find('[\0-\31"\\]', i)
      if not j then fail("unterminated string") end
      buf[#buf + 1] = text:sub(i, j - 1)
      local c = text:sub(j, j)
      if c == '"' then pos = j + 1; return table.concat(buf) end
      if c ~= "\\" then pos = j; fail("control character in string") end
      local e = text:sub(j + 1, j + 1)
      if e == "u" then
        local hex = text:match("^%x%x%x%x", j + 2)
        if not hex then pos = j; fail("bad \\u escape") end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local low = text:match("^\\u([dD][c-fC-F]%x%x)", i)
          if low then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
            i = i + 6
          end
        end
        buf[#buf + 1] = utf8.char(cp)
      else
        local u = UNESCAPE[e]
        if not u then pos = j; fail("bad escape") end
        buf[#buf + 1] = u
        i = j + 2
      end
    end
  end

  local function parse_number()
    local lit = text:match("^-?%d+", pos)
    if not lit then fail("unexpected character") end
    local frac = text:match("^%.%d+", pos + #lit) or ""
    local exp = text:match("^[eE][-+]?%d+", pos + #lit + #frac) or ""
    local whole = lit .. frac .. exp
    pos = pos + #whole
    local n = tonumber(whole)
    if frac == "" and exp == "" then n = math.tointeger(n) or n end
    return n
  end

  local parse_value

  local function parse_array()
    local arr = json.array({})
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
    while true do
      arr[#arr + 1] = parse_value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "]" then return arr end
      if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
    end
  end

  local function parse_object()
    local obj, order = {}, {}
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "}" then pos = pos + 1; return json.object(obj, order) end
    while true do
      skip()
      if text:sub(pos, pos) ~= '"' then fail("expected string key") end
      local key = parse_string()
      skip()
      if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
      pos = pos + 1
      if obj[key] == nil then order[#order + 1] = key end
      obj[key] = parse_value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "}" then return json.object(obj, order) end
      if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
    end
  end

  local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", json.null } }

  function parse_value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then return parse_object() end
    if c == "[" then return parse_array() end
    if c == '"' then return parse_string() end
    local lit = LITERALS[c]
    if lit then
      if text:sub(pos, pos + #lit[1] - 1) ~= lit[1] then fail("bad literal") end
      pos = pos + #lit[1]
      return lit[2]
    end
    if c == "" then fail("unexpected end of input") end
    return parse_number()
  end

  local ok, result = pcall(function()
    local v = parse_value()
    skip()
    if pos <= #text then fail("trailing garbage") end
    return v
  end)
  if ok then return result end
  if type(result) == "table" and result.json_error then return nil, result.json_error end
  error(result, 0)
end

-- Deep copy that keeps array marks and key orders.
local function deep_copy(v)
  if type(v) ~= "table" or v == json.null or getmetatable(v) == RAW_MT then return v end
  local copy = {}
  for k, x in pairs(v) do copy[k] = deep_copy(x) end
  if getmetatable(v) == ARRAY_MT then return json.array(copy) end
  return json.object(copy, key_order[v])
end

-- ==================================================================== utilities

local opts = {
  port = 0, key = os.getenv("ATAI_FAKE_KEY") or "test-key", ttl = 600, idle = 120,
  verbose = false,
  fixtures = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/../fixtures",
}

local function log(fmt, ...)
  if opts.verbose then io.stderr:write("[fake_api] ", string.format(fmt, ...), "\n") end
end

local function log_error(msg) io.stderr:write("[fake_api] error: ", msg, "\n") end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("cannot read " .. tostring(err)) end
  local text = f:read("a")
  f:close()
  return text
end

local function list_json_files(dir)
  local files = {}
  local p = io.popen("ls -1 " .. shell_quote(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if name:match("%.json$") then files[#files + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(files)
  return files
end

local function iso_time(t)
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
local function parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)Z$")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return t + (tonumber("0" .. frac) or 0)
end

local ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

local function random_alnum(n)
  local out = {}
  for i = 1, n do
    local k = math.random(#ALNUM)
    out[i] = ALNUM:sub(k, k)
  end
  return table.concat(out)
end

local function new_error_uid()
  local hex = function(n) return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1)) end
  return "err-" .. hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3) .. "-" .. hex(12)
end

-- 32-bit FNV-1a, used for ETags.
local function fnv1a(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return string.format("%08x", h)
end

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parse a query string: first value per name, plus every value per name.
local function parse_query(qs)
  local first, all = {}, {}
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = pct_decode(k:gsub("%+", " ")), pct_decode(v:gsub("%+", " "))
    if first[k] == nil then first[k] = v end
    all[k] = all[k] or {}
    table.insert(all[k], v)
  end
  return first, all
end

local function gzip_string(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("gzip -c -n < " .. shell_quote(path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- Does an Accept-Encoding header value allow gzip?
local function accepts_gzip(value)
  for token in (value or ""):gmatch("[^,]+") do
    local coding = token:match("^%s*([^;%s]+)")
    local q = tonumber(token:match(";%s*q=([%d.]+)") or "1")
    if (coding == "gzip" or coding == "x-gzip" or coding == "*") and q and q > 0 then
      return true
    end
  end
  return false
end

-- ==================================================================== scheduler

local sched = { threads = {}, stopping = false }

-- Yield until `sock` is ready for mode "r"/"w", or until `deadline`.
-- Returns "ready" or "timeout".
local function wait_io(sock, mode, deadline)
  return coroutine.yield({ sock = sock, mode = mode, wake = deadline })
end

local function sleep(seconds)
  coroutine.yield({ wake = now() + seconds })
end

local function resume(thread, ...)
  local ok, request = coroutine.resume(thread.co, ...)
  if not ok then
    log_error(debug.traceback(thread.co, tostring(request)))
    thread.dead = true
  elseif coroutine.status(thread.co) == "dead" then
    thread.dead = true
  else
    thread.sock, thread.mode, thread.wake = request.sock, request.mode, request.wake
  end
end

local function spawn(fn, ...)
  local thread = { co = coroutine.create(fn) }
  table.insert(sched.threads, thread)
  resume(thread, ...)
end

-- One pass of the loop: wait for readiness (at most `max_wait` s), resume ready threads.
local function sched_step(listener, on_accept, max_wait)
  local recvt, sendt, timeout = { listener }, {}, max_wait
  local t0 = now()
  for _, th in ipairs(sched.threads) do
    if th.sock then table.insert(th.mode == "w" and sendt or recvt, th.sock) end
    if th.wake then timeout = math.min(timeout, math.max(0, th.wake - t0)) end
  end
  local readable, writable = socket.select(recvt, sendt, timeout)
  if readable[listener] then on_accept() end
  local t1, ready = now(), {}
  for _, th in ipairs(sched.threads) do
    local io_ready = th.sock and (readable[th.sock] or writable[th.sock])
    if not th.dead and (io_ready or (th.wake and t1 >= th.wake)) then
      ready[#ready + 1] = { th, io_ready and "ready" or "timeout" }
    end
  end
  for _, r in ipairs(ready) do resume(r[1], r[2]) end
  local alive = {}
  for _, th in ipairs(sched.threads) do
    if not th.dead then alive[#alive + 1] = th end
  end
  sched.threads = alive
end

-- ==================================================================== HTTP I/O

local READ_TIMEOUT = 30       -- seconds allowed inside one request
local KEEPALIVE_IDLE = 60     -- idle keep-alive connections are closed after this
local WRITE_TIMEOUT = 30
local MAX_HEAD = 64 * 1024
local MAX_BODY = 32 * 1024 * 1024

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [301] = "Moved Permanently", [302] = "Found",
  [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [413] = "Payload Too Large",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

local Conn = {}
Conn.__index = Conn

function Conn.new(sock, serial)
  sock:settimeout(0)
  pcall(sock.setoption, sock, "tcp-nodelay", true)
  return setmetatable({ sock = sock, buf = "", serial = serial }, Conn)
end

-- Append whatever the socket has to the buffer, waiting until `deadline`.
function Conn:fill(deadline)
  while true do
    local data, err, partial = self.sock:receive(65536)
    local chunk = data or partial
    if chunk and #chunk > 0 then self.buf = self.buf .. chunk; return true end
    if err == "closed" then return nil, "closed" end
    if wait_io(self.sock, "r", deadline) == "timeout" then return nil, "timeout" end
  end
end

function Conn:read_line(deadline)
  while true do
    local nl = self.buf:find("\n", 1, true)
    if nl then
      local line = self.buf:sub(1, nl - 1):gsub("\r$", "")
      self.buf = self.buf:sub(nl + 1)
      return line
    end
    if #self.buf > MAX_HEAD then return nil, "line too long" end
    local ok, err = self:fill(deadline)
    if not ok then return nil, err end
  end
end

function Conn:read_bytes(n, deadline)
  while #self.buf < n do
    local ok, err = self:fill(deadline)
    if not ok then return nil, err end
  end
  local data = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return data
end

function Conn:send(data)
  local i, deadline = 1, now() + WRITE_TIMEOUT
  while i <= #data do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      if wait_io(self.sock, "w", deadline) == "timeout" then return nil, "timeout" end
    else
      return nil, err
    end
  end
  return true
end

function Conn:close() self.sock:close() end

local function read_chunked_body(conn, deadline)
  local parts, size = {}, 0
  while true do
    local line, err = conn:read_line(deadline)
    if not line then return nil, err end
    local n = tonumber(line:match("^%s*(%x+)"), 16)
    if not n then return nil, "bad chunk size" end
    if n == 0 then break end
    size = size + n
    if size > MAX_BODY then return nil, "body too large" end
    local data, derr = conn:read_bytes(n, deadline)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    if conn:read_line(deadline) ~= "" then return nil, "bad chunk terminator" end
  end
  repeat -- trailers, up to the empty line
    local line, err = conn:read_line(deadline)
    if not line then return nil, err end
  until line == ""
  return table.concat(parts)
end

local function read_body(conn, req, deadline)
  local te = (req.headers["transfer-encoding"] or ""):lower()
  local length = req.headers["content-length"]
  if te ~= "" or length then
    if (req.headers["expect"] or ""):lower() == "100-continue" then
      conn:send("HTTP/1.1 100 Continue\r\n\r\n")
    end
  end
  if te:find("chunked", 1, true) then return read_chunked_body(conn, deadline) end
  if not length then return "" end
  local n = tonumber(length:match("^%s*(%d+)%s*$"))
  if not n then return nil, "bad content-length" end
  if n > MAX_BODY then return nil, "body too large" end
  return conn:read_bytes(n, deadline)
end

-- Read one request; nil, err on EOF/timeout/malformed input.
local function read_request(conn)
  local line, err
  repeat -- tolerate stray CRLFs between requests
    line, err = conn:read_line(now() + KEEPALIVE_IDLE)
    if not line then return nil, err end
  until line ~= ""
  local deadline = now() + READ_TIMEOUT
  local method, target, version = line:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, "bad request line" end
  local headers, raw_headers = {}, {}
  while true do
    local h, herr = conn:read_line(deadline)
    if not h then return nil, herr end
    if h == "" then break end
    local name, value = h:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "bad header line" end
    name = name:lower()
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    raw_headers[#raw_headers + 1] = { name, value }
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  local req = { method = method:upper(), target = target, path = path, query = query,
                version = version, headers = headers, raw_headers = raw_headers }
  req.params, req.params_all = parse_query(query)
  local body, berr = read_body(conn, req, deadline)
  if not body then return nil, berr end
  req.body = body
  return req
end

local function wants_keep_alive(req)
  local c = (req.headers["connection"] or ""):lower()
  if c:find("close", 1, true) then return false end
  if req.version == "1.0" then return c:find("keep-alive", 1, true) ~= nil end
  return true
end

-- Find a header key in `headers` case-insensitively; returns the key actually used.
local function header_key(headers, name)
  for key in pairs(headers) do
    if key:lower() == name:lower() then return key end
  end
  return nil
end

-- Serialise a response {status, headers, body}. `keep` decides the Connection header;
-- `truncate` (bytes) announces the full Content-Length but sends only a prefix.
local function write_response(conn, resp, keep, truncate)
  local body = resp.body or ""
  local no_body = resp.status == 304 or resp.status == 204
  local lines = { string.format("HTTP/1.1 %d %s", resp.status, REASONS[resp.status] or "Status") }
  local headers = resp.headers or {}
  local length_key = header_key(headers, "Content-Length")
  if length_key then headers[length_key] = nil end
  if not no_body then
    if body ~= "" and not header_key(headers, "Content-Type") then
      headers["Content-Type"] = "application/json"
    end
    headers["Content-Length"] = tostring(#body)
  else
    body = ""
  end
  if not header_key(headers, "Connection") then
    headers["Connection"] = keep and "keep-alive" or "close"
  end
  local names = {}
  for name in pairs(headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. tostring(headers[name]) end
  local head = table.concat(lines, "\r\n") .. "\r\n\r\n"
  if truncate then body = body:sub(1, truncate) end
  return conn:send(head .. body)
end

-- ==================================================================== server state

local state = {
  store = nil,          -- see load_store()
  faults = {},          -- fault rules, in registration order
  config = nil,         -- toggles, see default_config()
  stats = nil,          -- {connections, accepted, requests}
  generation = 0,       -- bumped by reset so reused connections count again
  serial = 0,           -- connection serial numbers (the "conn" field of logged requests)
  last_activity = now(),
}

local function default_config()
  return { full_write_bodies = false, ignore_offset = false, page_total_lies = 0 }
end

local function reset_counters()
  state.stats = { connections = 0, accepted = 0, requests = json.array({}) }
  state.generation = state.generation + 1
end

-- ==================================================================== API errors

local ApiError = {}

-- Raise an API error carrying an envelope; `errors` is a list of {code, message, suggestion}.
local function raise_errors(status, errors, legacy_detail)
  error(setmetatable({ status = status, errors = errors, detail = legacy_detail }, ApiError), 0)
end

local function raise(status, code, message, suggestion)
  raise_errors(status, { { code = code, message = message, suggestion = suggestion } })
end

local function error_envelope(errors)
  local list = json.array({})
  for _, e in ipairs(errors) do
    list[#list + 1] = json.object({
      code = e.code, message = e.message,
      suggestion = e.suggestion or json.null, error_uid = new_error_uid(),
    }, { "code", "message", "suggestion", "error_uid" })
  end
  return { errors = list }
end

local DEFAULT_CODES = {
  [400] = "bad_request", [401] = "unauthorized", [403] = "forbidden", [404] = "not_found",
  [408] = "request_timeout", [409] = "conflict", [413] = "payload_too_large",
  [422] = "unprocessable_entity", [429] = "rate_limit_exceeded", [500] = "internal_error",
  [502] = "bad_gateway", [503] = "service_unavailable", [504] = "gateway_timeout",
}

local function not_found(what, id)
  raise(404, "not_found", what .. " " .. id .. " not found",
        "Check the " .. what:lower() .. " id; list endpoints show the ids that exist.")
end

-- ==================================================================== query params

local DEFAULT_LIMIT, MAX_LIMIT = 10, 100

-- Non-negative integer query parameter (400 otherwise).
local function int_param(req, name, default)
  local v = req.params[name]
  if v == nil or v == "" then return default end
  local n = v:match("^%d+$") and math.tointeger(tonumber(v))
  if not n then
    raise(400, "invalid_parameter",
          "Query parameter '" .. name .. "' must be a non-negative integer, got '" .. v .. "'",
          "Pass " .. name .. " as a whole number, e.g. " .. name .. "=" .. default .. ".")
  end
  return n
end

local function page_params(req)
  local offset = int_param(req, "offset", 0)
  local limit = math.min(int_param(req, "limit", DEFAULT_LIMIT), MAX_LIMIT)
  return offset, limit
end

-- Keep items whose fields equal every non-empty query filter; `fields` maps
-- query parameter → item field.
local function filter_items(items, req, fields)
  local out = {}
  for _, item in ipairs(items) do
    local keep = true
    for param, field in pairs(fields) do
      local want = req.params[param]
      if want and want ~= "" and tostring(item[field]) ~= want then keep = false end
    end
    if keep then out[#out + 1] = item end
  end
  return out
end

-- Build a list envelope: optional job_id, then total/offset/limit and the named array.
-- Honours the ignore_offset and page_total_lies toggles.
local function page_body(req, items, name, job_id)
  local offset, limit = page_params(req)
  local start = state.config.ignore_offset and 0 or offset
  local page = json.array({})
  for i = start + 1, math.min(#items, start + limit) do page[#page + 1] = items[i] end
  local body = { total = #items + state.config.page_total_lies, offset = offset,
                 limit = limit, [name] = page }
  local order = { "total", "offset", "limit", name }
  if job_id then body.job_id = job_id; table.insert(order, 1, "job_id") end
  return json.object(body, order)
end

-- ==================================================================== store: shapes

local ORG_ID = "org_1abc2def3ghi4jkl"
local TEP_JOB = "job_2abc3def4ghi5jkl6mno7pqr"

local JOB_FIELDS = { "id", "org_id", "name", "pipeline_type", "pipeline_key",
  "pipeline_version", "status", "parameters", "retry_count", "preemption_count",
  "queue_position", "queue_depth", "input_progress", "created_at", "updated_at",
  "started_at", "completed_at", "failed_at", "cancelled_at", "error" }
local INPUT_FIELDS = { "id", "job_id", "port_name", "file_id", "data", "status",
  "error_message", "created_at", "completed_at" }
local DATA_FIELDS = { "ref", "filename", "file_type", "file_extension", "num_bytes",
  "metadata", "file_tags", "file_attributes" }
local EVENT_FIELDS = { "id", "event_type", "level", "message", "payload", "input_id",
  "index", "created_at" }
local PROGRESS_FIELDS = { "id", "kind", "step", "message", "metrics", "payload",
  "input_id", "index", "created_at" }
local OUTPUT_FIELDS = { "id", "job_id", "port_name", "input_id", "input_file_id", "data",
  "expires_at", "created_at" }
local PIPELINE_FIELDS = { "id", "pipeline_key", "pipeline_version", "name", "description",
  "pipeline_type", "components", "default_config", "config_schema", "user_config_schema",
  "edges", "inputs", "outputs", "retry_policy", "visibility", "org_id", "status",
  "created_at", "updated_at" }

local TERMINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local CANCELLABLE = { PENDING = true, RUNNING = true, PREEMPTED = true, ADMITTED = true }
local RETRYABLE = { FAILED = true, CANCELLED = true }
local INPUT_STATUSES = { "pending", "processing", "completed", "failed" }

local MIME_TYPES = { csv = "text/csv", json = "application/json", jsonl = "application/jsonl",
  txt = "text/plain", jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png",
  mp4 = "video/mp4" }

local function data_ref(url, filename, num_bytes, metadata)
  local ext = filename:match("%.([%w]+)$")
  return json.object({
    ref = url, filename = filename,
    file_type = MIME_TYPES[ext and ext:lower() or ""] or "application/octet-stream",
    file_extension = ext and ("." .. ext) or "", num_bytes = num_bytes,
    metadata = metadata or json.object({}, {}), file_tags = json.null,
    file_attributes = json.null,
  }, DATA_FIELDS)
end

local function is_set(v) return v ~= nil and v ~= json.null end

-- ==================================================================== store: records

--[[ A job record:
  { job = <job object>, raw = <fixture text or nil once mutated>, seq = <list order>,
    events, progress, inputs, outputs = <arrays>, ranks = {input_id → completion rank},
    traces_points = <fixture points or nil>, sim = {phase, fail} or nil }
  Only jobs with `sim` advance on GET (created and retried jobs). ]]

local function next_id(counter)
  local store = state.store
  store[counter] = store[counter] + 1
  return store[counter]
end

local function add_event(rec, event_type, level, message, payload, input, at)
  table.insert(rec.events, json.object({
    id = next_id("event_id"), event_type = event_type, level = level, message = message,
    payload = payload or json.object({}, {}),
    input_id = input and input.id or json.null, index = input and 0 or json.null,
    created_at = at or iso_time(),
  }, EVENT_FIELDS))
end

local function add_progress(rec, input, step, percent, at)
  table.insert(rec.progress, json.object({
    id = next_id("progress_id"), kind = "inference", step = step,
    message = string.format("Processing %s: %d%%", input.file_id, percent),
    metrics = json.object({ percent_complete = percent, items_processed = percent // 10,
                            items_total = 10 },
                          { "percent_complete", "items_processed", "items_total" }),
    payload = json.object({}, {}), input_id = input.id, index = 0,
    created_at = at or iso_time(),
  }, PROGRESS_FIELDS))
end

local function output_port_of(job)
  local p = state.store.pipelines_by_key[job.pipeline_key]
  if p and json.is_object(p.outputs) then
    local keys = object_keys(p.outputs)
    if keys[1] then return keys[1] end
  end
  return "worker.results"
end

local function tracked_port_of(job)
  local p = state.store.pipelines_by_key[job.pipeline_key]
  if p and json.is_object(p.inputs) then
    for _, k in ipairs(object_keys(p.inputs)) do
      if p.inputs[k].tracked ~= false then return k end
    end
  end
  return "worker.inference"
end

local function add_output(rec, input, at)
  local job = rec.job
  local stem = input.file_id:gsub("%.%w+$", "")
  local filename = "pred_" .. stem .. "_part_1.csv"
  table.insert(rec.outputs, json.object({
    id = "out_" .. random_alnum(12), job_id = job.id, port_name = output_port_of(job),
    input_id = input.id, input_file_id = input.file_id,
    data = data_ref("https://storage.example.com/outputs/" .. job.id .. "/" .. filename
                    .. "?X-Amz-Signature=fake", filename, 2048),
    expires_at = iso_time(now() + 3600), created_at = at or iso_time(),
  }, OUTPUT_FIELDS))
end

local function new_input(rec, port, file_id, status, metadata, at)
  local input = json.object({
    id = "inp_" .. random_alnum(12), job_id = rec.job.id, port_name = port,
    file_id = file_id,
    data = data_ref("https://storage.example.com/files/" .. file_id, file_id,
                    1024 * #file_id, metadata),
    status = status, error_message = json.null, created_at = rec.job.created_at,
    completed_at = json.null,
  }, INPUT_FIELDS)
  if status == "completed" or status == "failed" then input.completed_at = at end
  table.insert(rec.inputs, input)
  return input
end

local function count_inputs(rec, port)
  local counts = json.object({ pending = 0, processing = 0, completed = 0, failed = 0 },
                             INPUT_STATUSES)
  for _, input in ipairs(rec.inputs) do
    if counts[input.status] and (not port or port == "" or input.port_name == port) then
      counts[input.status] = counts[input.status] + 1
    end
  end
  return counts
end

-- Record a change: drop the verbatim fixture text, refresh derived fields.
local function mutated(rec)
  rec.raw = nil
  rec.job.updated_at = iso_time()
  rec.job.input_progress = count_inputs(rec)
end

local function finish_input(rec, input, status, at)
  input.status = status
  input.completed_at = at
  rec.rank_count = (rec.rank_count or 0) + 1
  rec.ranks[input.id] = rec.rank_count
end

-- Fill events/inputs/progress/outputs of a seed job from its status and input_progress.
local function synthesize_children(rec)
  local job = rec.job
  local ip = json.is_object(job.input_progress) and job.input_progress or {}
  local started = is_set(job.started_at) and job.started_at or nil
  local ended = (is_set(job.completed_at) and job.completed_at)
    or (is_set(job.failed_at) and job.failed_at) or (is_set(job.cancelled_at) and job.cancelled_at)
    or job.updated_at
  add_event(rec, "job.created", "INFO", "Job queued", nil, nil, job.created_at)
  if started then add_event(rec, "running_job", "INFO", "Job started", nil, nil, started) end
  local port, n = tracked_port_of(job), 0
  for _, status in ipairs({ "completed", "failed", "processing", "pending" }) do
    for _ = 1, math.tointeger(ip[status]) or 0 do
      n = n + 1
      local input = new_input(rec, port, string.format("input_%02d.csv", n), status, nil,
                              ended)
      if status == "completed" or status == "failed" then
        finish_input(rec, input, status, ended)
        add_progress(rec, input, 2, 100, ended)
      elseif status == "processing" then
        add_progress(rec, input, 1, 50, started)
      end
      if status == "completed" then
        add_event(rec, "inference.success", "SUCCESS", "Inference completed for input",
                  nil, input, ended)
        add_output(rec, input, ended)
      elseif status == "failed" then
        input.error_message = "Input file format not supported"
        add_event(rec, "inference.failed", "FAILED", "Input file format not supported",
                  json.object({ error_code = "UNSUPPORTED_FORMAT" }), input, ended)
      end
    end
  end
  if job.status == "COMPLETED" then
    add_event(rec, "job.completed", "SUCCESS", "Job completed", nil, nil, ended)
  elseif job.status == "FAILED" then
    local msg = json.is_object(job.error) and job.error.message or "Job failed"
    add_event(rec, "job.failed", "FAILED", msg,
              json.is_object(job.error) and deep_copy(job.error) or nil, nil, ended)
  elseif job.status == "CANCELLED" then
    add_event(rec, "job.cancelled", "WARN", "Job cancelled", nil, nil, ended)
  end
end

local function new_record(job, raw)
  return { job = job, raw = raw, events = {}, progress = {}, inputs = {}, outputs = {},
           ranks = {}, seq = 0 }
end

-- The documented TEP job gets the documented example children (made consistent).
local function seed_tep_children(rec, fixtures)
  local function items(name, field) return json.decode(read_file(fixtures .. "/" .. name))[field] end
  rec.events = items("job_events.json", "events")
  local extra_events = {
    { 1003, "vectorizing_file", "INFO", "Vectorizing tep_inference.csv", {}, "inp_abc123def456", 0, "2026-04-14T10:06:00Z" },
    { 1004, "inference.success", "SUCCESS", "Inference completed for input", { duration_ms = 980 }, "inp_abc123def456", 1, "2026-04-14T10:10:00Z" },
    { 1005, "job.completed", "SUCCESS", "Job completed", {}, json.null, json.null, "2026-04-14T10:15:00Z" },
  }
  for _, e in ipairs(extra_events) do
    table.insert(rec.events, json.object({ id = e[1], event_type = e[2], level = e[3],
      message = e[4], payload = json.object(e[5], {}), input_id = e[6], index = e[7],
      created_at = e[8] }, EVENT_FIELDS))
  end

  rec.progress = items("job_progress.json", "entries")
  table.insert(rec.progress, json.object({ id = 503, kind = "postprocess", step = 3,
    message = "Writing results", metrics = json.object({ percent_complete = 100,
      items_processed = 10, items_total = 10 }, { "percent_complete", "items_processed",
      "items_total" }),
    payload = json.object({}, {}), input_id = "inp_abc123def456", index = 0,
    created_at = "2026-04-14T10:14:00Z" }, PROGRESS_FIELDS))

  rec.inputs = items("job_inputs_tep.json", "inputs")
  table.insert(rec.inputs, json.object({ id = "inp_nshot0normal", job_id = TEP_JOB,
    port_name = "worker.n_shots", file_id = "nshot_normal.csv",
    data = data_ref("https://storage.example.com/files/nshot_normal.csv", "nshot_normal.csv",
                    81920, json.object({ class = "normal" })),
    status = "reference", error_message = json.null, created_at = "2026-04-14T10:00:00Z",
    completed_at = json.null }, INPUT_FIELDS))
  rec.ranks = { inp_abc123def456 = 1 }
  rec.rank_count = 1

  local first = items("job_outputs.json", "outputs")[1]
  first.port_name = "worker.results"
  first.input_file_id = "file_abc123"
  json.object(first, OUTPUT_FIELDS)
  rec.outputs = { first }
  for k = 2, 25 do
    local filename = string.format("pred_tep_inference_part_%03d.csv", k)
    table.insert(rec.outputs, json.object({ id = string.format("out_tep%09d", k),
      job_id = TEP_JOB, port_name = "worker.results", input_id = "inp_abc123def456",
      input_file_id = "file_abc123",
      data = data_ref("https://storage.example.com/outputs/" .. filename
                      .. "?X-Amz-Signature=fake" .. k, filename, 4096 + k),
      expires_at = "2026-04-14T11:00:00Z",
      created_at = string.format("2026-04-14T10:10:%02dZ", k) }, OUTPUT_FIELDS))
  end

  rec.traces_points = items("job_inputs_progress_traces.json", "points")
end

-- ==================================================================== store: registry

-- Extra pipelines so the registry has more than one page; {id, key, version, name,
-- type, visibility, status, input port?, output port?}.
local EXTRA_PIPELINES = {
  { "ppl_actdetect00001", "activity-detection", "1.0.3", "Activity Detection", "batch", "platform", "published", "worker.data", "worker.result" },
  { "ppl_actdetect00000", "activity-detection", "0.9.0", "Activity Detection", "batch", "platform", "deactivated", "worker.data", "worker.result" },
  { "ppl_mscdraft000001", "machine-state-classification", "1.2.0-rc1", "Machine State Classification", "batch", "platform", "draft" },
  { "ppl_anomalytrain01", "anomaly-trainer", "0.3.0", "Anomaly Trainer", "training", "platform", "published" },
  { "ppl_embedtrain0001", "embedding-finetune", "0.1.0", "Embedding Fine-tune", "training", "org", "published" },
  { "ppl_orgtagger00002", "org-image-tagger", "2.0.0", "Org Image Tagger", "batch", "org", "published" },
  { "ppl_orgtagger00001", "org-image-tagger", "1.0.0", "Org Image Tagger", "batch", "org", "deleted" },
  { "ppl_sensorsumm0001", "sensor-summarizer", "0.5.0", "Sensor Summarizer", "batch", "platform", "published" },
  { "ppl_videoindex0001", "video-indexer", "0.2.0", "Video Indexer", "batch", "platform", "draft" },
  { "ppl_forecasttrain1", "timeseries-forecast-trainer", "1.0.0", "Forecast Trainer", "training", "platform", "published" },
}

local function synth_pipeline(spec)
  local obj = function(t) return json.object(t, {}) end
  local port = json.object({ name = "Input files", description = "Files to process",
    mode = "plain_file_list", distribute = "scatter", required = true, tracked = true },
    { "name", "description", "mode", "distribute", "required", "tracked" })
  return json.object({
    id = spec[1], pipeline_key = spec[2], pipeline_version = spec[3], name = spec[4],
    description = spec[4] .. " (synthetic fake-server pipeline)", pipeline_type = spec[5],
    components = obj({ worker = "cmp_" .. spec[1]:sub(5) }),
    default_config = obj({ worker = json.object({ parallelism = 1, config = obj({}) },
                                                { "parallelism", "config" }) }),
    config_schema = obj({}), user_config_schema = obj({}), edges = json.array({}),
    inputs = obj({ [spec[8] or "worker.data"] = port }),
    outputs = obj({ [spec[9] or "worker.results"] = json.object({ name = "Output files",
      description = "Results" }, { "name", "description" }) }),
    retry_policy = obj({}), visibility = spec[6], org_id = ORG_ID, status = spec[7],
    created_at = "2026-03-15T00:00:00Z", updated_at = "2026-04-01T00:00:00Z",
  }, PIPELINE_FIELDS)
end

local function schema_of(p)
  return json.object({ id = p.id, pipeline_key = p.pipeline_key,
    pipeline_version = p.pipeline_version, user_schema = p.user_config_schema,
    config_schema = p.config_schema, inputs = p.inputs, outputs = p.outputs },
    { "id", "pipeline_key", "pipeline_version", "user_schema", "config_schema", "inputs",
      "outputs" })
end

local function load_registry(store, fixtures)
  store.pipelines, store.pipelines_by_key, store.pipeline_docs = {}, {}, {}
  local function add(p)
    table.insert(store.pipelines, p)
    if p.status == "published" or not store.pipelines_by_key[p.pipeline_key] then
      store.pipelines_by_key[p.pipeline_key] = p
    end
  end
  for _, name in ipairs({ "pipelines_list.json", "pipelines_list_msc.json" }) do
    for _, p in ipairs(json.decode(read_file(fixtures .. "/" .. name)).pipelines) do add(p) end
  end
  for _, spec in ipairs(EXTRA_PIPELINES) do add(synth_pipeline(spec)) end
  -- Documented single-pipeline bodies are served verbatim.
  for _, pair in ipairs({ { "pipeline_get.json", "pipeline_schema.json" },
                          { "pipeline_get_msc.json", "pipeline_schema_msc.json" } }) do
    local get_raw = read_file(fixtures .. "/" .. pair[1])
    store.pipeline_docs[json.decode(get_raw).id] = {
      get = json.raw(get_raw), schema = json.raw(read_file(fixtures .. "/" .. pair[2])) }
  end
end

-- A key can be used for new jobs if some version of it is published.
local function pipeline_usable(key)
  if key == "machine-state-classification" then return true end
  local p = state.store.pipelines_by_key[key]
  return p ~= nil and p.status == "published"
end

-- ==================================================================== store: loading

local function load_store()
  local fixtures = opts.fixtures
  local store = { jobs = {}, seq = 0, event_id = 5000, progress_id = 7000 }
  state.store = store
  load_registry(store, fixtures)
  store.queue_raw = read_file(fixtures .. "/queue.json")

  local files = { fixtures .. "/job_completed_tep.json" }
  for _, f in ipairs(list_json_files(fixtures .. "/jobs")) do files[#files + 1] = f end
  local records = {}
  for _, path in ipairs(files) do
    local raw = read_file(path)
    local job, err = json.decode(raw)
    if not json.is_object(job) or type(job.id) ~= "string" then
      error("seed job " .. path .. " is not a job object: " .. tostring(err))
    end
    local rec = new_record(job, raw)
    if job.id == TEP_JOB then seed_tep_children(rec, fixtures) else synthesize_children(rec) end
    records[#records + 1] = rec
    store.jobs[job.id] = rec
  end
  table.sort(records, function(a, b)
    if a.job.created_at ~= b.job.created_at then
      return tostring(a.job.created_at) < tostring(b.job.created_at)
    end
    return a.job.id < b.job.id
  end)
  for _, rec in ipairs(records) do store.seq = store.seq + 1; rec.seq = store.seq end
end

local function reset_all()
  load_store()
  state.faults = {}
  state.config = default_config()
  reset_counters()
end

-- ==================================================================== job lifecycle

-- Steps taken by created/retried jobs, one per GET /batch/jobs/{id}:
--   create → PENDING; GET 1 → RUNNING (inputs pending); GET 2 → RUNNING (processing);
--   GET 3 → RUNNING (inputs completed, or the first one failed); GET 4 → COMPLETED/FAILED.
local LIFECYCLE = {
  function(rec)
    local job = rec.job
    job.status, job.started_at = "RUNNING", iso_time()
    job.queue_position, job.queue_depth = json.null, json.null
    add_event(rec, "running_job", "INFO", "Job started")
  end,
  function(rec)
    for _, input in ipairs(rec.inputs) do
      if input.status == "pending" then
        input.status = "processing"
        add_event(rec, "vectorizing_file", "INFO", "Vectorizing " .. input.file_id, nil, input)
        add_progress(rec, input, 1, 50)
      end
    end
  end,
  function(rec)
    local failed_one = false
    for _, input in ipairs(rec.inputs) do
      if input.status == "processing" then
        local at = iso_time()
        add_progress(rec, input, 2, 100, at)
        if rec.sim.fail and not failed_one then
          failed_one = true
          finish_input(rec, input, "failed", at)
          input.error_message = "Input file format not supported"
          add_event(rec, "inference.failed", "FAILED", "Input file format not supported",
                    json.object({ error_code = "UNSUPPORTED_FORMAT" }), input, at)
        else
          finish_input(rec, input, "completed", at)
          add_event(rec, "inference.success", "SUCCESS", "Inference completed for input",
                    json.object({ duration_ms = 1250 }), input, at)
          add_output(rec, input, at)
        end
      end
    end
  end,
  function(rec)
    local job, at = rec.job, iso_time()
    if rec.sim.fail then
      job.status, job.failed_at = "FAILED", at
      job.error = json.object({ code = "job_failed", message = "Pipeline worker failed",
        details = json.object({ failed_inputs = count_inputs(rec).failed }) },
        { "code", "message", "details" })
      add_event(rec, "job.failed", "FAILED", "Pipeline worker failed", deep_copy(job.error))
    else
      job.status, job.completed_at = "COMPLETED", at
      add_event(rec, "job.completed", "SUCCESS", "Job completed")
    end
  end,
}

local function advance(rec)
  local sim = rec.sim
  if not sim or TERMINAL[rec.job.status] or sim.phase >= #LIFECYCLE then return end
  sim.phase = sim.phase + 1
  LIFECYCLE[sim.phase](rec)
  mutated(rec)
end

local function start_sim(rec)
  rec.sim = { phase = 0, fail = rec.job.name:lower():find("fail", 1, true) ~= nil }
end

local function pending_count()
  local n = 0
  for _, rec in pairs(state.store.jobs) do
    if rec.job.status == "PENDING" then n = n + 1 end
  end
  return n
end

-- ==================================================================== API handlers

local function need_job(id)
  local rec = state.store.jobs[id]
  if not rec then not_found("Job", id) end
  return rec
end

-- Read-path body: fixture bytes while untouched, else the (re-encoded) job object.
local function job_body(rec)
  return rec.raw and json.raw(rec.raw) or rec.job
end

-- Write-path body: a copy of the job with input_progress null.
local function write_body(rec)
  local copy = deep_copy(rec.job)
  copy.input_progress = json.null
  return copy
end

local function parse_json_body(req)
  local body, err = json.decode(req.body)
  if body == nil then
    raise(400, "invalid_json", "Request body is not valid JSON: " .. tostring(err),
          "Send a JSON object with Content-Type: application/json.")
  end
  if not json.is_object(body) then
    raise(400, "invalid_json", "Request body must be a JSON object", nil)
  end
  return body
end

local function sorted_jobs()
  local list = {}
  for _, rec in pairs(state.store.jobs) do list[#list + 1] = rec end
  table.sort(list, function(a, b) return a.seq > b.seq end)  -- newest first
  return list
end

local function list_jobs(req)
  local q = (req.params.q or ""):lower()
  local matched = {}
  for _, rec in ipairs(sorted_jobs()) do
    local job = rec.job
    local ok = (req.params.pipeline_type or "") == "" or job.pipeline_type == req.params.pipeline_type
    ok = ok and ((req.params.status or "") == "" or job.status == req.params.status:upper())
    ok = ok and (q == "" or tostring(job.name):lower():find(q, 1, true) ~= nil)
    if ok then matched[#matched + 1] = job_body(rec) end
  end
  return 200, page_body(req, matched, "jobs")
end

local function get_job(req, id)
  local rec = need_job(id)
  advance(rec)
  return 200, job_body(rec)
end

-- Validate the create-job inputs object: port → [{file_id, metadata?}].
local function check_inputs(inputs)
  if inputs == nil or inputs == json.null then return {} end
  local bad = function(msg)
    raise(400, "invalid_parameter", msg,
          "inputs maps port names to arrays of {\"file_id\": ..., \"metadata\": {...}}.")
  end
  if not json.is_object(inputs) then bad("'inputs' must be an object") end
  for _, port in ipairs(object_keys(inputs)) do
    local files = inputs[port]
    if not json.is_array(files) then bad("inputs['" .. port .. "'] must be an array") end
    for i, item in ipairs(files) do
      if not json.is_object(item) or type(item.file_id) ~= "string" then
        bad(string.format("inputs['%s'][%d].file_id must be a string", port, i - 1))
      end
    end
  end
  return inputs
end

local function create_job(req)
  local body = parse_json_body(req)
  local missing = {}
  for _, field in ipairs({ "name", "pipeline_type", "pipeline_key" }) do
    if type(body[field]) ~= "string" or body[field] == "" then
      missing[#missing + 1] = { code = "missing_parameter",
        message = "Failed to find key: " .. field,
        suggestion = "Resubmit your query with the expected parameters." }
    end
  end
  if #missing > 0 then raise_errors(400, missing) end
  if body.pipeline_type ~= "batch" and body.pipeline_type ~= "training" then
    raise(400, "invalid_parameter", "pipeline_type must be 'batch' or 'training'", nil)
  end
  if not pipeline_usable(body.pipeline_key) then
    raise(422, "invalid_pipeline", "Pipeline '" .. body.pipeline_key .. "' has no active versions",
          "List pipelines with GET /v0.5/batch/registry/pipelines to find a published key.")
  end
  local inputs = check_inputs(body.inputs)
  local pipeline = state.store.pipelines_by_key[body.pipeline_key]
  local at, position = iso_time(), pending_count() + 1
  local job = json.object({
    id = "job_" .. random_alnum(26), org_id = ORG_ID, name = body.name,
    pipeline_type = body.pipeline_type, pipeline_key = body.pipeline_key,
    pipeline_version = type(body.pipeline_version) == "string" and body.pipeline_version
      or (pipeline and pipeline.pipeline_version or "1.0.0"),
    status = "PENDING",
    parameters = json.is_object(body.parameters) and body.parameters or json.object({}, {}),
    retry_count = 0, preemption_count = 0, queue_position = position, queue_depth = position,
    input_progress = json.null, created_at = at, updated_at = at, started_at = json.null,
    completed_at = json.null, failed_at = json.null, cancelled_at = json.null,
    error = json.null,
  }, JOB_FIELDS)
  local rec = new_record(job, nil)
  for _, port in ipairs(object_keys(inputs)) do
    for _, item in ipairs(inputs[port]) do  -- every port counts as tracked here
      new_input(rec, port, item.file_id, "pending",
                json.is_object(item.metadata) and item.metadata or nil)
    end
  end
  add_event(rec, "job.created", "INFO", "Job queued", nil, nil, at)
  job.input_progress = count_inputs(rec)
  state.store.seq = state.store.seq + 1
  rec.seq = state.store.seq
  start_sim(rec)
  state.store.jobs[job.id] = rec
  return 201, write_body(rec)
end

local function cancel_job(req, id)
  local rec = need_job(id)
  local job = rec.job
  if not CANCELLABLE[job.status] then
    raise(409, "conflict", "Job " .. id .. " is already " .. job.status,
          "Only PENDING, ADMITTED, RUNNING or PREEMPTED jobs can be cancelled.")
  end
  job.status, job.cancelled_at = "CANCELLED", iso_time()
  job.queue_position, job.queue_depth = json.null, json.null
  add_event(rec, "job.cancelled", "WARN", "Job cancelled by user")
  mutated(rec)
  if state.config.full_write_bodies then return 200, write_body(rec) end
  return 200, json.object({ id = id, status = job.status, cancelled_at = job.cancelled_at },
                          { "id", "status", "cancelled_at" })
end

local function retry_job(req, id)
  local rec = need_job(id)
  local job = rec.job
  if not RETRYABLE[job.status] then
    raise(409, "conflict", "Job " .. id .. " is " .. job.status
          .. "; only FAILED or CANCELLED jobs can be retried", nil)
  end
  job.status, job.retry_count = "PENDING", job.retry_count + 1
  for _, f in ipairs({ "started_at", "completed_at", "failed_at", "cancelled_at", "error" }) do
    job[f] = json.null
  end
  local position = pending_count()
  job.queue_position, job.queue_depth = position, position
  for _, input in ipairs(rec.inputs) do
    if input.status ~= "reference" then
      input.status, input.error_message, input.completed_at = "pending", json.null, json.null
    end
  end
  rec.outputs, rec.ranks, rec.rank_count, rec.traces_points = {}, {}, 0, nil
  add_event(rec, "job.retried", "INFO", "Job re-queued (retry " .. job.retry_count .. ")")
  start_sim(rec)
  mutated(rec)
  if state.config.full_write_bodies then return 200, write_body(rec) end
  return 200, json.object({ id = id, status = job.status, retry_count = job.retry_count },
                          { "id", "status", "retry_count" })
end

local function delete_job(req, id)
  need_job(id)
  state.store.jobs[id] = nil
  return 200, json.object({ id = id, deleted = true }, { "id", "deleted" })
end

local function get_queue() return 200, json.raw(state.store.queue_raw) end

local function list_events(req, id)
  local rec = need_job(id)
  local items = filter_items(rec.events, req,
    { level = "level", event_type = "event_type", input_id = "input_id" })
  return 200, page_body(req, items, "events", id)
end

local function list_progress(req, id)
  local rec = need_job(id)
  local items = filter_items(rec.progress, req, { kind = "kind", input_id = "input_id" })
  return 200, page_body(req, items, "entries", id)
end

local function list_inputs(req, id)
  local rec = need_job(id)
  local items = filter_items(rec.inputs, req, { port_name = "port_name", status = "status" })
  return 200, page_body(req, items, "inputs", id)
end

local function latest_progress_of(rec, input_id)
  for i = #rec.progress, 1, -1 do
    if rec.progress[i].input_id == input_id then return rec.progress[i] end
  end
  return json.null
end

local function list_inputs_progress(req, id)
  local rec = need_job(id)
  local wanted = nil
  for _, s in ipairs(req.params_all.status or {}) do
    if s ~= "" then wanted = wanted or {}; wanted[s] = true end
  end
  local order = req.params.order or "asc"
  if order ~= "asc" and order ~= "desc" then
    raise(400, "invalid_parameter", "order must be 'asc' or 'desc'", nil)
  end
  local port, items = req.params.port_name or "", {}
  for _, input in ipairs(rec.inputs) do
    if input.status ~= "reference" and (port == "" or input.port_name == port)
        and (not wanted or wanted[input.status]) then
      items[#items + 1] = json.object({ input = input,
        latest_progress = latest_progress_of(rec, input.id),
        step = rec.ranks[input.id] or json.null }, { "input", "latest_progress", "step" })
    end
  end
  if order == "desc" then
    for i = 1, #items // 2 do items[i], items[#items + 1 - i] = items[#items + 1 - i], items[i] end
  end
  return 200, page_body(req, items, "items", id)
end

local function get_counts(req, id)
  local rec = need_job(id)
  local counts = count_inputs(rec, req.params.port_name)
  counts.job_id = id
  return 200, json.object(counts, { "job_id", "pending", "processing", "completed", "failed" })
end

-- Traces: fixture points for the TEP job, otherwise a start and a latest point.
-- bucket_seconds = (end - start) / clamp(buckets, 10, 1000), so the clamp is observable.
local function traces_body(rec, buckets)
  local job = rec.job
  local started = parse_time(is_set(job.started_at) and job.started_at or job.created_at)
  local ended = parse_time(job.completed_at) or parse_time(job.failed_at)
    or parse_time(job.cancelled_at) or parse_time(job.updated_at) or started
  local counts = count_inputs(rec)
  local finished = counts.completed + counts.failed
  local points = rec.traces_points
  if not points then
    points = json.array({ json.object({ t = is_set(job.started_at) and job.started_at or job.created_at,
      step = 0, files = json.object({ completed = 0, failed = 0 }, { "completed", "failed" }),
      items = json.object({}, {}) }, { "t", "step", "files", "items" }) })
    if finished > 0 then
      table.insert(points, json.object({ t = job.updated_at, step = finished,
        files = json.object({ completed = counts.completed, failed = counts.failed },
                            { "completed", "failed" }),
        items = json.object({ inference = json.object({ success = counts.completed,
          failed = counts.failed }, { "success", "failed" }) }) },
        { "t", "step", "files", "items" }))
    end
  end
  -- latest_event_at is null until an input finished or progress was emitted.
  local active = rec.traces_points or finished > 0 or #rec.progress > 0
  local latest = active and job.updated_at or json.null
  return json.object({ job_id = job.id, bucket_seconds = (ended - started) / buckets + 0.0,
    latest_event_at = latest, points = points },
    { "job_id", "bucket_seconds", "latest_event_at", "points" })
end

local function get_traces(req, id)
  local rec = need_job(id)
  local raw = req.params.buckets
  local buckets = 100
  if raw and raw ~= "" then
    buckets = raw:match("^%-?%d+$") and math.tointeger(tonumber(raw))
    if not buckets then
      raise(400, "invalid_parameter", "Query parameter 'buckets' must be an integer, got '"
            .. raw .. "'", "Use an integer between 10 and 1000.")
    end
  end
  buckets = math.max(10, math.min(1000, buckets))
  local text = json.encode(traces_body(rec, buckets))
  local etag = 'W/"' .. fnv1a(text) .. '"'
  for tag in (req.headers["if-none-match"] or ""):gmatch("[^,]+") do
    tag = tag:match("^%s*(.-)%s*$")
    if tag == "*" or tag == etag or tag == etag:sub(3) then
      return 304, nil, { ETag = etag }
    end
  end
  return 200, json.raw(text), { ETag = etag }
end

local function list_outputs(req, id)
  local rec = need_job(id)
  local items = filter_items(rec.outputs, req, { port_name = "port_name", input_id = "input_id" })
  return 200, page_body(req, items, "outputs", id)
end

local function list_pipelines(req)
  local items = filter_items(state.store.pipelines, req,
    { pipeline_type = "pipeline_type", visibility = "visibility", status = "status" })
  return 200, page_body(req, items, "pipelines")
end

local function find_pipeline(id)
  for _, p in ipairs(state.store.pipelines) do
    if p.id == id then return p end
  end
  not_found("Pipeline", id)
end

local function get_pipeline(req, id)
  local doc = state.store.pipeline_docs[id]
  if doc then return 200, doc.get end
  return 200, find_pipeline(id)
end

local function get_pipeline_schema(req, id)
  local doc = state.store.pipeline_docs[id]
  if doc then return 200, doc.schema end
  return 200, schema_of(find_pipeline(id))
end

-- Routes under /v0.5, tried in order (queue before {id}). Captures are percent-decoded.
local ROUTES = {
  { "GET",    "^/batch/jobs/queue$",                          get_queue },
  { "GET",    "^/batch/jobs$",                                list_jobs },
  { "POST",   "^/batch/jobs$",                                create_job },
  { "GET",    "^/batch/jobs/([^/]+)$",                        get_job },
  { "DELETE", "^/batch/jobs/([^/]+)$",                        delete_job },
  { "POST",   "^/batch/jobs/([^/]+)/cancel$",                 cancel_job },
  { "POST",   "^/batch/jobs/([^/]+)/retry$",                  retry_job },
  { "GET",    "^/batch/jobs/([^/]+)/events$",                 list_events },
  { "GET",    "^/batch/jobs/([^/]+)/progress$",               list_progress },
  { "GET",    "^/batch/jobs/([^/]+)/inputs$",                 list_inputs },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress$",        list_inputs_progress },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress/counts$", get_counts },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress/traces$", get_traces },
  { "GET",    "^/batch/jobs/([^/]+)/outputs$",                list_outputs },
  { "GET",    "^/batch/registry/pipelines$",                  list_pipelines },
  { "GET",    "^/batch/registry/pipelines/([^/]+)$",          get_pipeline },
  { "GET",    "^/batch/registry/pipelines/([^/]+)/schema$",   get_pipeline_schema },
}

local API_PREFIX = "/v0.5"

local function json_response(status, body, headers)
  headers = headers or {}
  local text = nil
  if body ~= nil then
    text = json.encode(body)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  return { status = status, headers = headers, body = text }
end

local function error_response(err)
  if err.detail then return json_response(err.status, { detail = err.detail }) end
  return json_response(err.status, error_envelope(err.errors))
end

-- Run `fn(...)`, turning raised ApiErrors into envelope responses and crashes into 500s.
local function guarded(fn, ...)
  local ok, status, body, headers = xpcall(fn, function(e)
    if getmetatable(e) == ApiError then return e end
    return debug.traceback(tostring(e), 2)
  end, ...)
  if ok then return json_response(status, body, headers) end
  if getmetatable(status) == ApiError then return error_response(status) end
  log_error(status)
  return error_response({ status = 500, errors = { { code = "internal_error",
    message = "Fake server crashed: " .. tostring(status):match("^[^\n]*") } } })
end

local function auth_state(req)
  local value = req.headers["authorization"]
  if value == nil then return "missing" end
  return value == "Bearer " .. opts.key and "ok" or "wrong"
end

-- The normal (fault-free) behaviour of the API.
local function api_response(req)
  return guarded(function()
    if req.path:sub(1, #API_PREFIX + 1) ~= API_PREFIX .. "/" then
      raise(404, "not_found", "No route for " .. req.method .. " " .. req.path, nil)
    end
    if auth_state(req) ~= "ok" then
      raise_errors(401, nil, "Invalid or missing API key")
    end
    local sub = req.path:sub(#API_PREFIX + 1)
    for _, route in ipairs(ROUTES) do
      local method, pattern, handler = route[1], route[2], route[3]
      local found = { sub:find(pattern) }
      if found[1] and method == req.method then
        local caps = {}
        for i = 3, #found do caps[#caps + 1] = pct_decode(found[i]) end
        return handler(req, table.unpack(caps))
      end
    end
    raise(404, "not_found", "No route for " .. req.method .. " " .. req.path,
          "See the Batch Processing API reference for valid paths.")
  end)
end

-- ==================================================================== faults

--[[ A fault rule: {method?, path? | path_prefix?, responses = [F...], next = 1}.
  Rules are tried in registration order; the first matching rule that still has
  responses left consumes its next F. F fields:
    status, headers, body (raw string), json (encoded as body)   custom response
    delay        seconds to wait before anything else
    close        close the connection without responding (after delay)
    close_after_bytes  announce full Content-Length, send n body bytes, close
    gzip         gzip the body when Accept-Encoding allows; logged as "gzip"
    pass         serve the normal route (delay/headers/gzip/close_after_bytes still apply)
  F without status/body/json serves the normal route too. Custom status without a body
  gets an error envelope for status >= 400 (code from the status) and "" otherwise. ]]

local function take_fault(req)
  for _, rule in ipairs(state.faults) do
    local responses = rule.responses
    local matches = rule.next <= #responses
      and (rule.method == nil or rule.method == req.method)
      and (rule.path == nil or rule.path == req.path)
      and (rule.path_prefix == nil or req.path:sub(1, #rule.path_prefix) == rule.path_prefix)
    if matches then
      rule.next = rule.next + 1
      return responses[rule.next - 1]
    end
  end
  return nil
end

local function custom_response(f)
  local status = math.tointeger(f.status) or 200
  local body
  if type(f.body) == "string" then
    body = f.body
  elseif f.json ~= nil then
    body = json.encode(f.json)
  elseif status >= 400 then
    body = json.encode(error_envelope({ { code = DEFAULT_CODES[status] or "error",
      message = "Injected fault: HTTP " .. status } }))
  else
    body = ""
  end
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = body }
end

-- Header names from a fault replace ours case-insensitively.
local function merge_headers(resp, extra)
  if not json.is_object(extra) then return end
  for name, value in pairs(extra) do
    for existing in pairs(resp.headers) do
      if existing:lower() == name:lower() then resp.headers[existing] = nil end
    end
    resp.headers[name] = tostring(value)
  end
end

local function log_request(req, conn)
  local headers = json.object({}, {})
  for name, value in pairs(req.headers) do
    if name ~= "authorization" then headers[name] = value end
  end
  local entry = json.object({ method = req.method, path = req.path, query = req.query,
    headers = headers, auth = auth_state(req), body = req.body, gzip = false,
    conn = conn.serial, t = now() },
    { "method", "path", "query", "headers", "auth", "body", "gzip", "conn", "t" })
  table.insert(state.stats.requests, entry)
  if conn.counted ~= state.generation then
    conn.counted = state.generation
    state.stats.connections = state.stats.connections + 1
  end
  return entry
end

-- Serve an API request, applying the next matching fault. Returns a response table,
-- or nil when the connection must be closed without a response.
local function serve_api(req, conn)
  local entry = log_request(req, conn)
  local f = take_fault(req) or {}
  local delay = tonumber(f.delay)
  if delay and delay > 0 then sleep(delay) end
  if f.close == true then return nil end
  local custom = not f.pass and (f.status ~= nil or f.body ~= nil or f.json ~= nil)
  local resp = custom and custom_response(f) or api_response(req)
  merge_headers(resp, f.headers)
  if f.gzip == true and resp.body and accepts_gzip(req.headers["accept-encoding"]) then
    resp.body = gzip_string(resp.body)
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Vary"] = "Accept-Encoding"
    entry.gzip = true
  end
  resp.truncate = math.tointeger(f.close_after_bytes)
  return resp
end

-- ==================================================================== control API

local function control_body(req)
  if req.body == "" then return json.object({}, {}) end
  return parse_json_body(req)
end

local function add_fault(req)
  local body = control_body(req)
  if not json.is_array(body.responses) then
    raise(400, "invalid_parameter", "'responses' must be an array of fault objects", nil)
  end
  for _, f in ipairs(body.responses) do
    if not json.is_object(f) then raise(400, "invalid_parameter", "each fault must be an object", nil) end
  end
  local rule = { method = type(body.method) == "string" and body.method:upper() or nil,
    path = type(body.path) == "string" and body.path or nil,
    path_prefix = type(body.path_prefix) == "string" and body.path_prefix or nil,
    responses = body.responses, next = 1 }
  table.insert(state.faults, rule)
  return 200, { ok = true, rule = #state.faults }
end

local function faults_pending()
  local n = 0
  for _, rule in ipairs(state.faults) do n = n + #rule.responses - rule.next + 1 end
  return n
end

local function set_config(req)
  local body = control_body(req)
  for name, value in pairs(body) do
    local current = state.config[name]
    if current == nil then raise(400, "invalid_parameter", "unknown toggle '" .. name .. "'", nil) end
    if type(value) ~= type(current) then
      raise(400, "invalid_parameter", "toggle '" .. name .. "' must be a " .. type(current), nil)
    end
    state.config[name] = math.tointeger(value) or value
  end
  return 200, state.config
end

local function get_stats()
  return 200, json.object({ connections = state.stats.connections,
    accepted = state.stats.accepted, faults_pending = faults_pending(),
    requests = state.stats.requests },
    { "connections", "accepted", "faults_pending", "requests" })
end

local function do_reset()
  reset_all()
  return 200, { ok = true }
end

local function do_shutdown()
  return 200, { ok = true }, nil, true
end

local CONTROL_ROUTES = {
  { "POST", "/_fake/reset",    do_reset },
  { "POST", "/_fake/faults",   add_fault },
  { "POST", "/_fake/config",   set_config },
  { "GET",  "/_fake/stats",    get_stats },
  { "POST", "/_fake/shutdown", do_shutdown },
}

local function serve_control(req)
  for _, route in ipairs(CONTROL_ROUTES) do
    if route[1] == req.method and route[2] == req.path then
      local stop = false
      local resp = guarded(function()
        local status, body, headers, shutdown = route[3](req)
        stop = shutdown
        return status, body, headers
      end)
      resp.close, resp.shutdown = stop, stop
      return resp
    end
  end
  return json_response(404, error_envelope({ { code = "not_found",
    message = "No control route " .. req.method .. " " .. req.path } }))
end

-- ==================================================================== connections

local function serve_connection(conn)
  while true do
    local req, err = read_request(conn)
    if not req then
      if err ~= "closed" and err ~= "timeout" then
        local status = err == "body too large" and 413 or 400
        write_response(conn, json_response(status, error_envelope({ { code = DEFAULT_CODES[status],
          message = "Malformed HTTP request: " .. tostring(err) } })), false)
      end
      break
    end
    state.last_activity = now()
    log("%s %s", req.method, req.path)
    local resp
    if req.path:sub(1, 7) == "/_fake/" then resp = serve_control(req)
    else resp = serve_api(req, conn) end
    if not resp then break end  -- fault: close without a response
    local forced = header_key(resp.headers, "Connection")
    local keep = wants_keep_alive(req) and not resp.close and not resp.truncate
      and not (forced and resp.headers[forced]:lower() == "close")
    local sent = write_response(conn, resp, keep, resp.truncate)
    if resp.shutdown then sched.stopping = true end
    if not sent or not keep then break end
  end
  conn:close()
end

local function accept_all(listener)
  while true do
    local sock = listener:accept()
    if not sock then return end
    state.stats.accepted = state.stats.accepted + 1
    state.serial = state.serial + 1
    local conn = Conn.new(sock, state.serial)
    spawn(function()
      local ok, err = xpcall(serve_connection, debug.traceback, conn)
      if not ok then log_error(err); pcall(conn.close, conn) end
    end)
  end
end

-- ==================================================================== main

local function parse_args(argv)
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local function value()
      i = i + 1
      if argv[i] == nil then io.stderr:write("missing value for ", a, "\n"); os.exit(2) end
      return argv[i]
    end
    if a == "--port" then opts.port = tonumber(value())
    elseif a == "--key" then opts.key = value()
    elseif a == "--fixtures" then opts.fixtures = value()
    elseif a == "--ttl" then opts.ttl = tonumber(value())
    elseif a == "--idle" then opts.idle = tonumber(value())
    elseif a == "--verbose" then opts.verbose = true
    else io.stderr:write("unknown argument: ", a, "\n"); os.exit(2) end
    i = i + 1
  end
end

local function main(argv)
  parse_args(argv)
  math.randomseed(os.time(), math.floor(now() * 1e6) % 1000003)
  reset_all()
  local listener = assert(socket.bind("127.0.0.1", opts.port, 128))
  listener:settimeout(0)
  local _, port = listener:getsockname()
  io.stdout:write("PORT ", port, "\n")
  io.stdout:flush()
  local started = now()
  state.last_activity = started
  while not sched.stopping do
    sched_step(listener, function() accept_all(listener) end, 1.0)
    local t = now()
    if t - started > opts.ttl then log("ttl reached, exiting"); break end
    if t - state.last_activity > opts.idle then log("idle, exiting"); break end
  end
  listener:close()
  for _, th in ipairs(sched.threads) do
    if th.sock then pcall(th.sock.close, th.sock) end
  end
  os.exit(0)
end

main(arg or {})

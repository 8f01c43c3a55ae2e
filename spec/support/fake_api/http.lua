--[[
  fake_api/http.lua -- HTTP/1.1 on a non-blocking socket, inside a scheduler thread.

  Conn wraps an accepted socket (buffered reads that yield to the scheduler);
  read_request parses one request (Content-Length and chunked bodies, Expect:
  100-continue), or only its head when the body is to be streamed (req.reader hands
  it out piece by piece, never whole: uploads far over MAX_BODY pass through);
  write_response serialises {status, headers, body}, or {status, headers, stream}
  whose body is made range by range (a download of any size).
]]

local socket = require("socket")
local sched = require("fake_api.sched")
local util = require("fake_api.util")

local now = socket.gettime
local wait_io = sched.wait_io

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

local http = {}

local Conn = {}
Conn.__index = Conn
http.Conn = Conn

-- Wrap an accepted socket (made non-blocking); `serial` numbers the connection.
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

-- One line without its CR/LF; nil, err on EOF, timeout or a line over MAX_HEAD.
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

-- Exactly n bytes; nil, err on EOF or timeout. A long body is gathered in
-- parts and joined once (appending each read to the buffer is quadratic).
function Conn:read_bytes(n, deadline)
  if #self.buf < n then
    local parts, have = { self.buf }, #self.buf
    self.buf = ""
    while have < n do
      local ok, err = self:fill(deadline)
      if not ok then
        self.buf = table.concat(parts)
        return nil, err
      end
      parts[#parts + 1], have, self.buf = self.buf, have + #self.buf, ""
    end
    self.buf = table.concat(parts)
  end
  local data = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return data
end

-- Send all of `data`, yielding while the socket is full; true or nil, err.
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

-- Close the socket.
function Conn:close() self.sock:close() end

-- The next chunk size of a chunked body (after the previous chunk's CRLF unless
-- `first`); 0 at the end, once the trailers are read. nil, err when malformed.
local function next_chunk_size(conn, first, deadline)
  if not first then
    local line, err = conn:read_line(deadline)
    if line ~= "" then return nil, err or "bad chunk terminator" end
  end
  local line, err = conn:read_line(deadline)
  if not line then return nil, err end
  local n = tonumber(line:match("^%s*(%x+)"), 16)
  if not n then return nil, "bad chunk size" end
  if n == 0 then
    repeat
      local trailer, terr = conn:read_line(deadline)
      if not trailer then return nil, terr end
    until trailer == ""
  end
  return n
end

local function read_chunked_body(conn, deadline)
  local parts, size, first = {}, 0, true
  while true do
    local n, err = next_chunk_size(conn, first, deadline)
    if not n then return nil, err end
    if n == 0 then break end
    first, size = false, size + n
    if size > MAX_BODY then return nil, "body too large" end
    local data, derr = conn:read_bytes(n, deadline)
    if not data then return nil, derr end
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- Answers Expect: 100-continue when the request has a body.
local function continue_body(conn, req)
  local te = (req.headers["transfer-encoding"] or ""):lower()
  if (te ~= "" or req.headers["content-length"])
      and (req.headers["expect"] or ""):lower() == "100-continue" then
    conn:send("HTTP/1.1 100 Continue\r\n\r\n")
  end
  return te
end

local function read_body(conn, req, deadline)
  local te = continue_body(conn, req)
  local length = req.headers["content-length"]
  if te:find("chunked", 1, true) then return read_chunked_body(conn, deadline) end
  if not length then return "" end
  local n = tonumber(length:match("^%s*(%d+)%s*$"))
  if not n then return nil, "bad content-length" end
  if n > MAX_BODY then return nil, "body too large" end
  return conn:read_bytes(n, deadline)
end

-- Up to `max` bytes of what the connection has (waiting for some); nil, err.
function Conn:take(max, deadline)
  if #self.buf == 0 then
    local ok, err = self:fill(deadline)
    if not ok then return nil, err end
  end
  local piece = self.buf:sub(1, max)
  self.buf = self.buf:sub(max + 1)
  return piece
end

-- req.reader for a streamed body: each call returns the next piece, nil at the end,
-- or nil, err. req.bytes counts what was read; req.body_done is set at the end.
local function body_reader(conn, req)
  local chunked = continue_body(conn, req):find("chunked", 1, true) ~= nil
  local left = chunked and 0 or tonumber((req.headers["content-length"] or "0"):match("^%s*(%d+)%s*$"))
  local first = true
  req.bytes = 0
  if not left then return function() return nil, "bad content-length" end end
  return function()
    local deadline = now() + READ_TIMEOUT
    if req.body_done then return nil end
    if chunked and left == 0 then
      local n, err = next_chunk_size(conn, first, deadline)
      if not n then return nil, err end
      first, left = false, n
    end
    if left == 0 then req.body_done = true; return nil end
    local piece, err = conn:take(math.min(left, 65536), deadline)
    if not piece then return nil, err end
    left = left - #piece
    req.bytes = req.bytes + #piece
    return piece
  end
end

-- Reads and drops what is left of a streamed body; true or nil, err.
function http.drain(req)
  while req.reader and not req.body_done do
    local piece, err = req.reader()
    if not piece and err then return nil, err end
  end
  return true
end

-- Read one request; nil, err on EOF/timeout/malformed input. When `streamed(req)` is
-- true after the head, the body is left to req.reader (req.body stays "").
function http.read_request(conn, streamed)
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
  req.params, req.params_all = util.parse_query(query)
  if streamed and streamed(req) then
    req.body, req.reader = "", body_reader(conn, req)
    return req
  end
  local body, berr = read_body(conn, req, deadline)
  if not body then return nil, berr end
  req.body = body
  return req
end

-- Does the request allow the connection to stay open?
function http.wants_keep_alive(req)
  local c = (req.headers["connection"] or ""):lower()
  if c:find("close", 1, true) then return false end
  if req.version == "1.0" then return c:find("keep-alive", 1, true) ~= nil end
  return true
end

-- Find a header key in `headers` case-insensitively; returns the key actually used.
function http.header_key(headers, name)
  for key in pairs(headers) do
    if key:lower() == name:lower() then return key end
  end
  return nil
end

local STREAM_PIECE = 256 * 1024

-- Sends the body of resp.stream = {length, range(offset, len)}: `truncate` bytes at
-- most; resp.stall = {after = bytes, seconds = s} pauses once mid-body.
local function send_stream(conn, resp, truncate)
  local length, sent, stall = resp.stream.length, 0, resp.stall
  local limit = truncate and math.min(truncate, length) or length
  while sent < limit do
    local n = math.min(STREAM_PIECE, limit - sent)
    if stall and sent < stall.after then n = math.min(n, stall.after - sent) end
    if stall and sent == stall.after then sched.sleep(stall.seconds); stall = nil end
    if n > 0 then
      local ok = conn:send(resp.stream.range(sent, n))
      if not ok then return nil end
      sent = sent + n
    end
  end
  return true
end

-- Serialise a response {status, headers, body} (or {status, headers, stream}, see
-- send_stream; resp.no_length sends it without Content-Length, ended by the close).
-- `keep` decides the Connection header; `truncate` (bytes) announces the full
-- Content-Length but sends only a prefix.
function http.write_response(conn, resp, keep, truncate)
  local body = resp.body or ""
  local no_body = resp.status == 304 or resp.status == 204
  local lines = { string.format("HTTP/1.1 %d %s", resp.status, REASONS[resp.status] or "Status") }
  local headers = resp.headers or {}
  local length_key = http.header_key(headers, "Content-Length")
  if length_key then headers[length_key] = nil end
  if resp.stream then
    headers["Content-Length"] = not resp.no_length and tostring(resp.stream.length) or nil
    keep = keep and not resp.no_length
  elseif not no_body then
    if body ~= "" and not http.header_key(headers, "Content-Type") then
      headers["Content-Type"] = "application/json"
    end
    headers["Content-Length"] = tostring(#body)
  else
    body = ""
  end
  if not http.header_key(headers, "Connection") then
    headers["Connection"] = keep and "keep-alive" or "close"
  end
  local names = {}
  for name in pairs(headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. tostring(headers[name]) end
  local head = table.concat(lines, "\r\n") .. "\r\n\r\n"
  if resp.stream then
    if not conn:send(head) then return nil end
    return send_stream(conn, resp, truncate)
  end
  if truncate then body = body:sub(1, truncate) end
  return conn:send(head .. body)
end

-- Accept every connection waiting on `listener`; each runs serve(conn) in its own
-- scheduler thread (a crash is logged and closes the socket). `serial()` numbers
-- the connections (0 without it).
function http.accept_all(listener, serve, serial)
  while true do
    local sock = listener:accept()
    if not sock then return end
    local conn = Conn.new(sock, serial and serial() or 0)
    sched.spawn(function()
      local ok, err = xpcall(serve, debug.traceback, conn)
      if not ok then util.log_error(err); pcall(conn.close, conn) end
    end)
  end
end

return http

--[[
  spec/support/server.lua -- start and drive the fake Batch API server from busted.

  Works under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT (LuaSocket + lua-cjson only).
  The server itself (spec/support/fake_api.lua) always runs under lua5.4, or under the
  interpreter named by env ATAI_FAKE_LUA.

    local server = require("spec.support.server")
    local srv = server.start{ key = "test-key" }   -- spawn, wait for "PORT n"
    srv.port, srv.endpoint, srv.key                -- endpoint = http://127.0.0.1:<port>/v0.5
    srv:reset()
    srv:fault{ method = "GET", path = "/v0.5/batch/jobs/x",
               responses = { { status = 503 }, { pass = true } } }
    srv:config{ ignore_offset = true }
    srv:stats(); srv:requests()
    srv:stop()

  server.start{ latency = 300, demo_jobs = true } passes --latency / --demo-jobs;
  server.spawn{ script, args, env } runs any server script that prints "PORT n";
  server.start_hostile() starts spec/support/hostile_server.lua with it.

  Also exported: server.connect(host, port[, timeout]) -> a tiny keep-alive HTTP/1.1
  client (conn:request{method, path, headers, body}, conn:close()) used by the control
  calls and handy for raw protocol tests.  Paths are relative to the repository root
  (busted runs from there).
]]

local socket = require("socket")
local cjson = require("cjson")

local M = {}

local CONTROL_TIMEOUT = 5   -- seconds for control requests
local START_TIMEOUT = 10

-- ------------------------------------------------------------------ raw HTTP client

local Conn = {}
Conn.__index = Conn

-- Open a TCP connection; returns conn or nil, err.
function M.connect(host, port, timeout)
  local sock = socket.tcp()
  sock:settimeout(timeout or CONTROL_TIMEOUT)
  local ok, err = sock:connect(host or "127.0.0.1", port)
  if not ok then sock:close(); return nil, err end
  return setmetatable({ sock = sock }, Conn)
end

local function read_headers(sock)
  local headers = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then return headers end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
end

local function read_chunked(sock)
  local parts = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local n = tonumber(line:match("^%s*(%x+)") or "", 16)
    if not n then return nil, "bad chunk size" end
    if n == 0 then break end
    local data, derr = sock:receive(n)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    sock:receive("*l")
  end
  repeat local l = sock:receive("*l") until not l or l == ""
  return table.concat(parts)
end

-- Send one request and read the response.
-- opts: method, path, headers (table), body (string).
-- Returns {status, reason, headers (lowercased), body} or nil, err.
function Conn:request(opts)
  local method = opts.method or "GET"
  local body = opts.body
  local lines = { method .. " " .. opts.path .. " HTTP/1.1", "Host: 127.0.0.1" }
  local has_length = false
  for name, value in pairs(opts.headers or {}) do
    lines[#lines + 1] = name .. ": " .. value
    if name:lower() == "content-length" or name:lower() == "transfer-encoding" then
      has_length = true
    end
  end
  if body and not has_length then lines[#lines + 1] = "Content-Length: " .. #body end
  local ok, err = self.sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  if not ok then return nil, err end
  local status_line, serr = self.sock:receive("*l")
  if not status_line then return nil, serr end
  local status, reason = status_line:match("^HTTP/%d%.%d (%d+) ?(.*)$")
  if not status then return nil, "bad status line: " .. status_line end
  local headers, herr = read_headers(self.sock)
  if not headers then return nil, herr end
  local resp = { status = tonumber(status), reason = reason, headers = headers, body = "" }
  if method == "HEAD" or resp.status == 204 or resp.status == 304 then return resp end
  local data, derr, partial
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    data, derr = read_chunked(self.sock)
  elseif headers["content-length"] then
    data, derr, partial = self.sock:receive(tonumber(headers["content-length"]))
  else
    data, derr, partial = self.sock:receive("*a")
  end
  if not data then
    resp.body, resp.error = partial or "", derr
    return resp
  end
  resp.body = data
  return resp
end

function Conn:close() self.sock:close() end

-- ------------------------------------------------------------------ server handle

local Server = {}
Server.__index = Server

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Send a control request; raises a clear error if the server is gone or refuses.
function Server:control(method, path, payload)
  local conn, err = M.connect("127.0.0.1", self.port, CONTROL_TIMEOUT)
  if not conn then
    error(string.format("fake API server on port %d is not reachable (%s); did it exit?",
                        self.port, tostring(err)), 2)
  end
  local body = payload ~= nil and cjson.encode(payload) or nil
  local resp, rerr = conn:request{ method = method, path = path, body = body,
    headers = { ["Content-Type"] = "application/json", ["Connection"] = "close" } }
  conn:close()
  if not resp or resp.error then
    error(string.format("fake API control %s %s failed: %s", method, path,
                        tostring(rerr or resp.error)), 2)
  end
  local decoded = resp.body ~= "" and cjson.decode(resp.body) or nil
  if resp.status ~= 200 then
    error(string.format("fake API control %s %s returned %d: %s", method, path,
                        resp.status, resp.body), 2)
  end
  return decoded
end

function Server:reset() return self:control("POST", "/_fake/reset") end

-- spec: {method?, path? | path_prefix?, responses = {F, ...}}
function Server:fault(spec) return self:control("POST", "/_fake/faults", spec) end

function Server:config(toggles) return self:control("POST", "/_fake/config", toggles) end

function Server:stats() return self:control("GET", "/_fake/stats") end

function Server:requests() return self:stats().requests end

-- Absolute URL for a path under the server root (e.g. "/v0.5/batch/jobs").
function Server:url(path) return "http://127.0.0.1:" .. self.port .. (path or "") end

-- Ask the server to exit and reap it. Safe to call twice.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(self.control, self, "POST", "/_fake/shutdown")
  if self.handle then self.handle:close() end
  self.handle = nil
end

-- Run a LuaSocket server script under lua5.4 (or env ATAI_FAKE_LUA) and wait until it
-- printed "PORT n" and accepts connections. opts: script, args (list, quoted here),
-- env (name -> value: secrets stay off the command line), lua, what (its name in
-- errors). Returns the popen handle (the rest of its stdout) and the port; raises.
function M.spawn(opts)
  local lua = opts.lua or os.getenv("ATAI_FAKE_LUA") or "lua5.4"
  local what = opts.what or opts.script
  local parts = {}
  for name, value in pairs(opts.env or {}) do parts[#parts + 1] = name .. "=" .. shell_quote(value) end
  parts[#parts + 1] = "exec " .. lua .. " " .. shell_quote(opts.script)
  for _, a in ipairs(opts.args or {}) do parts[#parts + 1] = shell_quote(a) end
  local handle = io.popen(table.concat(parts, " "), "r")
  if not handle then error("cannot spawn " .. what .. ": " .. lua .. " " .. opts.script, 2) end
  local line = handle:read("*l")
  local port = line and tonumber(line:match("^PORT (%d+)$"))
  if not port then
    handle:close()
    error(what .. " did not start (expected 'PORT <n>', got "
          .. tostring(line) .. "); is " .. lua .. " with LuaSocket installed?", 2)
  end
  -- Make sure it is accepting connections before handing it out.
  local deadline = socket.gettime() + START_TIMEOUT
  repeat
    local conn = M.connect("127.0.0.1", port, 1)
    if conn then conn:close(); return handle, port end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  handle:close()
  error(what .. " printed PORT " .. port .. " but does not accept connections", 2)
end

-- Command-line flags of fake_api.lua for start() options: option -> flag (a value
-- flag when the option is not a boolean).
local START_FLAGS = { fixtures = "--fixtures", verbose = "--verbose", latency = "--latency",
                      demo_jobs = "--demo-jobs", user = "--user", paste_also = "--paste-also" }

-- opts: key ("test-key"), port (0), fixtures (default: next to the script), ttl (600),
-- idle (120), lua (env ATAI_FAKE_LUA or "lua5.4"), script path, verbose,
-- latency (ms before every API response), demo_jobs, user (user mode: the listing
-- follows "PORT n" on srv.handle), paste_also (with user: text appended to its
-- export line).
function M.start(opts)
  opts = opts or {}
  local key = opts.key or "test-key"
  local args = { "--port", tostring(opts.port or 0), "--ttl", tostring(opts.ttl or 600),
                 "--idle", tostring(opts.idle or 120) }
  for name, flag in pairs(START_FLAGS) do
    if opts[name] == true then
      args[#args + 1] = flag
    elseif opts[name] then
      args[#args + 1] = flag
      args[#args + 1] = tostring(opts[name])
    end
  end
  -- The key travels in the environment, not on the command line.
  local handle, port = M.spawn{ script = opts.script or "spec/support/fake_api.lua",
    args = args, env = { ATAI_FAKE_KEY = key }, lua = opts.lua, what = "fake API server" }
  return setmetatable({ port = port, key = key, handle = handle,
    endpoint = "http://127.0.0.1:" .. port .. "/v0.5" }, Server)
end

-- Start spec/support/hostile_server.lua (broken answers by scenario, see there).
-- opts: ttl (300), lua. The handle is the same as start()'s: port, endpoint, stop().
function M.start_hostile(opts)
  opts = opts or {}
  local handle, port = M.spawn{ script = "spec/support/hostile_server.lua",
    args = { "--port", "0", "--ttl", tostring(opts.ttl or 300) }, lua = opts.lua,
    what = "hostile server" }
  return setmetatable({ port = port, handle = handle,
    endpoint = "http://127.0.0.1:" .. port .. "/v0.5" }, Server)
end

return M

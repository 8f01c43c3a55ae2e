--[[
  spec/support/h2_server.lua -- a local HTTP/2-over-TLS server for the specs: Debian's nginx
  (`make deps DEPS_EXTRA=nginx`), run unprivileged-style in the foreground from a temporary
  prefix, with a throw-away CA and a server certificate for localhost made with openssl(1).

    local h2 = require("spec.support.h2_server")
    h2.available()                   -- true, or nil and why (nginx is not installed)
    local srv, why = h2.start()      -- nil, why when nginx is missing or will not start
    srv.port, srv.ca                 -- the CA certificate (PEM) to pass as ca_file
    srv.endpoint                     -- https://localhost:<port>/v0.5
    srv:log()                        -- the access log so far: { {connection =, requests =,
                                     --   protocol = "HTTP/2.0", method =, uri =, status =}, ... }
    srv:log_since(before, want)      -- the entries after the first `before`, once there are
                                     --   `want` of them (nginx logs a request after answering
                                     --   it, so the log can lag the client by a moment)
    srv:connections(entries)         -- how many distinct connections those entries used
    srv:stop()                       -- stops nginx, removes the temporary directory

  nginx answers GET /v0.5/batch/jobs/<id> with 200 and a small completed job whose id is
  <id>, anything else with 404 and a JSON error. One process (master_process off, so no
  worker switches user), keepalive_requests high, pid, error and access logs in the
  temporary directory. Works under Lua 5.1-5.4 and LuaJIT (LuaSocket only).
]]

local socket = require("socket")
local util = require("spec.support.util")
local free_port, sh = util.free_port, util.sh

local M = {}

local START_TIMEOUT = 10 -- seconds

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- The nginx binary (root's PATH has /usr/sbin, a user's may not), or nil.
local function find_nginx()
  for _, path in ipairs({ "/usr/sbin/nginx", "/usr/local/sbin/nginx" }) do
    if sh("test -x " .. path) then return path end
  end
  local p = io.popen("command -v nginx 2>/dev/null")
  local path = p:read("*l")
  p:close()
  return path ~= "" and path or nil
end

-- A CA (ca.pem) and a server certificate it signed for localhost and
-- 127.0.0.1 (server.pem, server.key), all in dir. Returns true or nil, why.
local function make_certs(dir)
  write_file(dir .. "/server.ext", "basicConstraints = CA:FALSE\n"
    .. "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
    .. "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local steps = {
    ("openssl req -x509 %s -days 1 -subj /CN=atai-test-ca -keyout %s/ca.key -out %s/ca.pem "
      .. "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"):format(ec, dir, dir),
    ("openssl req %s -subj /CN=localhost -keyout %s/server.key -out %s/server.csr"):format(ec, dir, dir),
    ("openssl x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial -days 1 "
      .. "-extfile %s/server.ext -out %s/server.pem"):format(dir, dir, dir, dir, dir),
  }
  for _, cmd in ipairs(steps) do
    if not sh(cmd .. " >/dev/null 2>&1") then return nil, "openssl failed: " .. cmd end
  end
  return true
end

-- The completed job nginx serves; $1 is the id from the path.
local JOB = '{"id":"$1","name":"h2-job","pipeline_type":"batch","pipeline_key":"machine-state-classification",'
  .. '"status":"COMPLETED","retry_count":0,"input_progress":{"pending":0,"processing":0,"completed":1,'
  .. '"failed":0},"created_at":"2026-04-14T10:00:00Z","completed_at":"2026-04-14T10:15:00Z"}'

local function nginx_conf(dir, port)
  return table.concat({
    "master_process off;",
    "pid " .. dir .. "/nginx.pid;",
    "error_log " .. dir .. "/error.log info;",
    "events { worker_connections 1024; }",
    "http {",
    "  log_format h2 '$connection $connection_requests $server_protocol $request_method $request_uri $status';",
    "  access_log " .. dir .. "/access.log h2;",
    "  keepalive_requests 100000;",
    "  http2_max_concurrent_streams 256;",
    "  client_body_temp_path " .. dir .. "/tmp/body;",
    "  proxy_temp_path " .. dir .. "/tmp/proxy;",
    "  fastcgi_temp_path " .. dir .. "/tmp/fastcgi;",
    "  uwsgi_temp_path " .. dir .. "/tmp/uwsgi;",
    "  scgi_temp_path " .. dir .. "/tmp/scgi;",
    "  server {",
    ("    listen 127.0.0.1:%d ssl http2;"):format(port),
    "    server_name localhost;",
    "    ssl_certificate " .. dir .. "/server.pem;",
    "    ssl_certificate_key " .. dir .. "/server.key;",
    "    default_type application/json;",
    "    location ~ ^/v0\\.5/batch/jobs/([A-Za-z0-9_-]+)$ {",
    "      return 200 '" .. JOB .. "';",
    "    }",
    "    location / {",
    "      return 404 '{\"detail\":\"not found\"}';",
    "    }",
    "  }",
    "}",
    "",
  }, "\n")
end

local Server = {}
Server.__index = Server

--- The access log so far, one table per request.
function Server:log()
  local entries = {}
  local f = io.open(self.dir .. "/access.log")
  if not f then return entries end
  for line in f:lines() do
    local conn, reqs, proto, method, uri, status = line:match("^(%d+) (%d+) (%S+) (%S+) (%S+) (%d+)$")
    if conn then
      entries[#entries + 1] = { connection = tonumber(conn), requests = tonumber(reqs), protocol = proto,
        method = method, uri = uri, status = tonumber(status) }
    end
  end
  f:close()
  return entries
end

--- The entries after the first `before`, waiting (up to START_TIMEOUT)
--- until there are at least `want` of them.
function Server:log_since(before, want)
  local deadline = socket.gettime() + START_TIMEOUT
  while true do
    local all, new = self:log(), {}
    for i = before + 1, #all do new[#new + 1] = all[i] end
    if #new >= (want or 0) or socket.gettime() > deadline then return new end
    socket.sleep(0.01)
  end
end

--- How many distinct connections the log entries used.
function Server:connections(entries) -- luacheck: ignore 212/self
  local seen, n = {}, 0
  for _, e in ipairs(entries) do
    if not seen[e.connection] then seen[e.connection], n = true, n + 1 end
  end
  return n
end

--- Stops nginx and removes its directory.
function Server:stop()
  if self.pid then sh("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  if self.dir then sh("rm -rf '" .. self.dir .. "'") end
  self.dir = nil
end

-- Waits until nginx accepts connections on port; false if it died or
-- START_TIMEOUT passed.
local function wait_listening(pid, port)
  local deadline = socket.gettime() + START_TIMEOUT
  while socket.gettime() < deadline do
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() return true end
    if not sh("kill -0 " .. pid .. " 2>/dev/null") then return false end
    socket.sleep(0.05)
  end
  return false
end

local NOT_INSTALLED = "nginx is not installed (make deps DEPS_EXTRA=nginx installs it)"

--- true when nginx is installed, else nil and why.
function M.available()
  if find_nginx() then return true end
  return nil, NOT_INSTALLED
end

--- Starts nginx; returns the server, or nil and why not.
function M.start()
  local nginx = find_nginx()
  if not nginx then return nil, NOT_INSTALLED end
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p '" .. dir .. "/tmp'"))
  local srv = setmetatable({ dir = dir }, Server)
  local ok, why = make_certs(dir)
  if not ok then srv:stop() return nil, why end
  srv.port, srv.ca = free_port(), dir .. "/ca.pem"
  srv.endpoint = ("https://localhost:%d/v0.5"):format(srv.port)
  write_file(dir .. "/nginx.conf", nginx_conf(dir, srv.port))
  local p = assert(io.popen(("sh -c 'echo $$; exec %s -p %s/ -c %s/nginx.conf -e %s/error.log "
    .. "-g \"daemon off;\" >/dev/null 2>&1 </dev/null' & "):format(nginx, dir, dir, dir)))
  srv.pid = tonumber(p:read("*l"))
  p:close()
  if not (srv.pid and wait_listening(srv.pid, srv.port)) then
    local f = io.open(dir .. "/error.log")
    local log = f and f:read("*a") or ""
    if f then f:close() end
    srv:stop()
    return nil, "nginx did not start: " .. log:gsub("%s+$", "")
  end
  return srv
end

return M

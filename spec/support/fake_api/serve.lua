--[[
  fake_api/serve.lua -- connections and the main loop.

  Each accepted connection runs serve_connection in its own scheduler thread: read a
  request, answer it (control API, or the API with the next matching fault applied),
  repeat while keep-alive.  serve.run() binds 127.0.0.1, prints "PORT n" and loops
  until /_fake/shutdown, the --ttl or the --idle limit.  --latency delays every API
  response with the scheduler's sleep, so other connections go on meanwhile.
]]

local socket = require("socket")
local json = require("fake_api.json")
local control = require("fake_api.control")
local demo = require("fake_api.demo")
local errors = require("fake_api.errors")
local faults = require("fake_api.faults")
local http = require("fake_api.http")
local routes = require("fake_api.routes")
local sched = require("fake_api.sched")
local state = require("fake_api.state")
local storage = require("fake_api.storage")
local store = require("fake_api.store")
local util = require("fake_api.util")

local now = socket.gettime
local log = util.log
local json_response, error_envelope, DEFAULT_CODES = errors.json_response, errors.envelope,
  errors.DEFAULT_CODES

-- Append a request to the request log (never its Authorization header).
local function log_request(req, conn)
  local headers = json.object({}, {})
  for name, value in pairs(req.headers) do
    if name ~= "authorization" then headers[name] = value end
  end
  local entry = json.object({ method = req.method, path = req.path, query = req.query,
    headers = headers, auth = routes.auth_state(req), body = req.body, gzip = false,
    conn = conn.serial, t = now() },
    { "method", "path", "query", "headers", "auth", "body", "bytes", "gzip", "conn", "t", "t_reply" })
  table.insert(state.stats.requests, entry)
  if conn.counted ~= state.generation then
    conn.counted = state.generation
    state.stats.connections = state.stats.connections + 1
  end
  return entry
end

-- Serve an API request after --latency, applying the next matching fault (else the
-- demo job's behaviour). Returns a response table, or nil when the connection must be
-- closed without a response. The log entry's t_reply is when the answer was ready.
local function serve_api(req, conn)
  local entry = log_request(req, conn)
  if state.opts.latency > 0 then sched.sleep(state.opts.latency / 1000) end
  local f = faults.take(req) or demo.fault(req) or {}
  local delay = tonumber(f.delay)
  if delay and delay > 0 then sched.sleep(delay) end
  if f.close == true then return nil end
  local custom = not f.pass and (f.status ~= nil or f.body ~= nil or f.json ~= nil)
  local resp = custom and faults.custom_response(f) or routes.api_response(req)
  if not resp then return nil end -- a streamed body broke off: nothing to answer
  faults.merge_headers(resp, f.headers)
  if f.gzip == true and resp.body and util.accepts_gzip(req.headers["accept-encoding"]) then
    resp.body = util.gzip_string(resp.body)
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Vary"] = "Accept-Encoding"
    entry.gzip = true
  end
  resp.truncate = math.tointeger(f.close_after_bytes)
  if resp.stream and tonumber(f.stall_after_bytes) then
    resp.stall = { after = math.tointeger(f.stall_after_bytes), seconds = tonumber(f.stall) or 2 }
  end
  if resp.stream and f.no_content_length == true then resp.no_length, resp.close = true, true end
  entry.t_reply = now()
  req.log_entry = entry
  return resp
end

-- Serve the requests of one connection until it closes.
local function serve_connection(conn)
  while true do
    local req, err = http.read_request(conn, routes.streams)
    if not req then
      if err ~= "closed" and err ~= "timeout" then
        local status = err == "body too large" and 413 or 400
        http.write_response(conn, json_response(status, error_envelope({ { code = DEFAULT_CODES[status],
          message = "Malformed HTTP request: " .. tostring(err) } })), false)
      end
      break
    end
    state.last_activity = now()
    log("%s %s", req.method, req.path)
    local resp
    local kind = storage.kind(req)
    if kind then storage.count(kind, 1) end
    if req.path:sub(1, 7) == "/_fake/" then resp = control.serve(req)
    else resp = serve_api(req, conn) end
    -- a streamed body the handler did not read (an error, a fault) is read and dropped
    if resp and not http.drain(req) then resp = nil end
    if req.reader and req.log_entry then req.log_entry.bytes = req.bytes end
    if not resp then  -- fault: close without a response
      if kind then storage.count(kind, -1) end
      break
    end
    local forced = http.header_key(resp.headers, "Connection")
    local keep = http.wants_keep_alive(req) and not resp.close and not resp.truncate
      and not (forced and resp.headers[forced]:lower() == "close")
    local sent = http.write_response(conn, resp, keep, resp.truncate)
    if kind then storage.count(kind, -1) end
    if resp.shutdown then sched.stopping = true end
    if not sent or not keep then break end
  end
  conn:close()
end

-- Count an accepted connection and give it the next serial number.
local function next_serial()
  state.stats.accepted = state.stats.accepted + 1
  state.serial = state.serial + 1
  return state.serial
end

-- Load the store, listen on 127.0.0.1:state.opts.port, print "PORT n" and serve
-- until shutdown, ttl or idle; then exit the process.
local function run()
  local opts = state.opts
  math.randomseed(os.time(), math.floor(now() * 1e6) % 1000003)
  local listener = assert(socket.bind("127.0.0.1", opts.port, 128))
  listener:settimeout(0)
  local _, port = listener:getsockname()
  state.port = tonumber(port) -- before the store: presigned URLs point here
  store.reset_all()
  io.stdout:write("PORT ", port, "\n")
  if opts.user then io.stdout:write(table.concat(demo.listing(port), "\n"), "\n") end
  io.stdout:flush()
  local started = now()
  state.last_activity = started
  while not sched.stopping do
    sched.step(listener, function() http.accept_all(listener, serve_connection, next_serial) end,
               1.0)
    local t = now()
    if t - started > opts.ttl then log("ttl reached, exiting"); break end
    if t - state.last_activity > opts.idle then log("idle, exiting"); break end
  end
  listener:close()
  sched.close_all()
  os.exit(0)
end

return { run = run }

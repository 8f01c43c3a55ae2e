#!/usr/bin/env lua5.4
--[[
  hostile_storage.lua -- a hostile presigned "storage" host, and the API listing
  that points at it, for spec/hostile_storage_spec.lua (downloads that must stop,
  fail one output, or time out).

  Usage:  lua5.4 spec/support/hostile_storage.lua [--port N] [--ttl SECONDS]

  Binds 127.0.0.1, prints "PORT <n>" once it listens, and exits by itself after --ttl
  seconds (default 300) or on POST /_fake/shutdown.  Runs under lua5.4 with LuaSocket
  only, on the fake API's scheduler and HTTP reader (spec/support/fake_api/), so a
  trickling answer on one connection never holds up the others.

    POST /_hostile/outputs?total=N   body: a JSON array of outputs, kept as given
    GET  /v0.5/batch/jobs/<id>/outputs?offset=&limit=
                                     the outputs kept (offset 0; later pages empty),
                                     total N
    GET  /_hostile/stats             {"endless_bytes": bytes /endless handed to the
                                     socket, "requests": {path = count}}
    GET  /blob/<n>                   200, n bytes (blob_bytes(n) below), Content-Length
    GET  /endless                    200, no Content-Length: bytes until the client
                                     hangs up (or ENDLESS_CAP)
    GET  /length/<n>                 200, Content-Length n, the bytes sent until the
                                     client hangs up (at most n)
    GET  /trickle/<n>/<ms>           200, Content-Length n, one byte every ms
    GET  /status/<code>              that status with Retry-After: 1 and a short body
    GET  /late_status/<code>/<ms>    that status after ms (no Retry-After)
]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local http = require("fake_api.http")
local sched = require("fake_api.sched")

local ENDLESS_CAP = 256 * 1024 * 1024 -- /endless gives up after this
local PIECE = 64 * 1024

local outputs, total = "[]", 0
local stats = { endless_bytes = 0, requests = {} }
local stopping = false

-- The bytes of /blob/<n>: "0123456789" over and over, cut at n.
local function blob_bytes(n)
  return ("0123456789"):rep(n // 10 + 1):sub(1, n)
end

local function head(status, headers)
  return "HTTP/1.1 " .. status .. "\r\n" .. table.concat(headers, "\r\n") .. "\r\n\r\n"
end

local function answer(conn, status, body, extra)
  local headers = { "Content-Type: application/json", "Content-Length: " .. #body }
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  conn:send(head(status, headers) .. body)
  return "keep"
end

-- Sends `count` bytes of `piece` pieces until the client hangs up; returns the
-- bytes handed to the socket.
local function pour(conn, count)
  local piece, sent = ("x"):rep(PIECE), 0
  while sent < count do
    local n = math.min(PIECE, count - sent)
    if not conn:send(n == PIECE and piece or piece:sub(1, n)) then break end
    sent = sent + n
  end
  return sent
end

local ROUTES = {
  { "^/blob/(%d+)$", function(conn, _, n)
    n = tonumber(n)
    conn:send(head("200 OK", { "Content-Type: application/octet-stream", "Content-Length: " .. n })
      .. blob_bytes(n))
    return "keep"
  end },
  { "^/endless$", function(conn)
    conn:send(head("200 OK", { "Content-Type: application/octet-stream", "Connection: close" }))
    local piece = ("x"):rep(PIECE)
    while stats.endless_bytes < ENDLESS_CAP and conn:send(piece) do
      stats.endless_bytes = stats.endless_bytes + PIECE
    end
    return "close"
  end },
  { "^/length/(%d+)$", function(conn, _, n)
    n = tonumber(n)
    conn:send(head("200 OK", { "Content-Type: application/octet-stream", "Content-Length: " .. n }))
    pour(conn, n)
    return "close"
  end },
  { "^/trickle/(%d+)/(%d+)$", function(conn, _, n, ms)
    n, ms = tonumber(n), tonumber(ms)
    if not conn:send(head("200 OK", { "Content-Type: application/octet-stream",
                                      "Content-Length: " .. n })) then
      return "close"
    end
    local body = blob_bytes(n)
    for i = 1, n do
      sched.sleep(ms / 1000)
      if not conn:send(body:sub(i, i)) then break end
    end
    return "close"
  end },
  { "^/status/(%d+)$", function(conn, _, code)
    return answer(conn, code .. " Hostile", '{"error":"hostile"}', { "Retry-After: 1" })
  end },
  { "^/late_status/(%d+)/(%d+)$", function(conn, _, code, ms)
    sched.sleep(tonumber(ms) / 1000)
    return answer(conn, code .. " Hostile", '{"error":"hostile"}')
  end },
  { "^/v0%.5/batch/jobs/[^/]+/outputs$", function(conn, req)
    local offset = math.tointeger(tonumber(req.params.offset)) or 0
    local limit = math.tointeger(tonumber(req.params.limit)) or 100
    return answer(conn, "200 OK", ('{"job_id":"job_hostile","offset":%d,"limit":%d,"total":%d,"outputs":%s}')
      :format(offset, limit, total, offset == 0 and outputs or "[]"))
  end },
  { "^/_hostile/stats$", function(conn)
    local counts = {}
    for path, n in pairs(stats.requests) do counts[#counts + 1] = ("%q:%d"):format(path, n) end
    return answer(conn, "200 OK", ('{"endless_bytes":%d,"requests":{%s}}')
      :format(stats.endless_bytes, table.concat(counts, ",")))
  end },
}

local function route(conn, req)
  if req.method == "POST" and req.path == "/_fake/shutdown" then
    stopping = true
    answer(conn, "200 OK", '{"ok":true}', { "Connection: close" })
    return "close"
  end
  if req.method == "POST" and req.path == "/_hostile/outputs" then
    outputs, total = req.body, math.tointeger(tonumber(req.params.total)) or 0
    stats = { endless_bytes = 0, requests = {} }
    return answer(conn, "200 OK", '{"ok":true}')
  end
  stats.requests[req.path] = (stats.requests[req.path] or 0) + 1
  for _, r in ipairs(ROUTES) do
    local captures = { req.path:match(r[1]) }
    if captures[1] then return r[2](conn, req, table.unpack(captures)) end
  end
  return answer(conn, "404 Not Found", '{"errors":[{"code":"not_found","message":"no such route"}]}')
end

local function serve_connection(conn)
  while true do
    local req = http.read_request(conn)
    if not req then break end
    if route(conn, req) ~= "keep" then break end
  end
  conn:close()
end

require("fake_api.listen").main("hostile_storage.lua", arg or {}, serve_connection, function() return stopping end)

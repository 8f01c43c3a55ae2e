#!/usr/bin/env lua5.4
--[[
  hostile_server.lua -- a hostile HTTP server for atai's security specs
  (spec/hostile_server_spec.lua): it answers with broken or malicious bytes.

  Usage:  lua5.4 spec/support/hostile_server.lua [--port N] [--ttl SECONDS]

  Binds 127.0.0.1, prints "PORT <n>" once it listens, and exits by itself after --ttl
  seconds (default 300) or on POST /_fake/shutdown.  Runs under lua5.4 with LuaSocket
  only, on the fake API's scheduler and HTTP reader (spec/support/fake_api/), so an
  endless or trickling answer on one connection never holds up the others.  Requests
  are read as HTTP; answers are raw bytes, written by the scenario the path names:

    GET /v0.5/batch/jobs/<scenario>[/...]   one of SCENARIOS below
    GET /v0.5/batch/jobs?offset=&limit=     alternating pages: A, B, A, B ... (by offset
                                            / limit), `limit` jobs each, no total
    GET /v0.5/batch/registry/pipelines      endless registry: every page brings new
                                            pipeline ids and no total (after
                                            ENDLESS_PAGES pages an empty page, so a client
                                            that never stops still ends)
]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local http = require("fake_api.http")
local sched = require("fake_api.sched")

local ENDLESS_PAGES = 200          -- registry pages before the safety stop
local FLOOD_HEADERS = 10000        -- header_flood
local HUGE_HEADER = 1024 * 1024    -- huge_header: one header line of 1 MiB
local BOMB_BYTES = 100 * 1000 * 1000   -- gzip_bomb: inflated size
local STREAM_CAP = 1024 * 1024 * 1024  -- endless_body gives up after 1 GiB
local TRICKLE_DELAY = 0.2          -- trickle: seconds between bytes

-- ============================================================= raw answers

-- An HTTP head: status line (as given, possibly broken) and header lines.
local function head(status_line, headers)
  return status_line .. "\r\n" .. table.concat(headers or {}, "\r\n")
    .. ((headers and #headers > 0) and "\r\n" or "") .. "\r\n"
end

-- A complete answer with a JSON body and a Content-Length.
local function json_answer(status_line, body, extra)
  local headers = { "Content-Type: application/json", "Content-Length: " .. #body }
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  return head(status_line, headers) .. body
end

local function job_json(id) return '{"id":"' .. id .. '","status":"RUNNING"}' end

-- A scenario that sends fixed bytes and closes.
local function raw(bytes)
  return function(conn) conn:send(bytes); return "close" end
end

-- ============================================================= gzip bomb

-- Bits into bytes, least significant bit first (RFC 1951 order).
local function bit_writer()
  local out, acc, n = {}, 0, 0
  local w = {}
  function w.bits(value, count)
    acc, n = acc | (value << n), n + count
    while n >= 8 do
      out[#out + 1] = string.char(acc & 0xff)
      acc, n = acc >> 8, n - 8
    end
  end
  -- A Huffman code goes most significant bit first.
  function w.code(code, len)
    local rev = 0
    for i = 0, len - 1 do rev = (rev << 1) | ((code >> i) & 1) end
    w.bits(rev, len)
  end
  function w.take()   -- whole bytes written so far (a partial byte stays)
    local s = table.concat(out)
    out = {}
    return s
  end
  function w.flush() if n > 0 then w.bits(0, 8 - n) end return w.take() end
  return w
end

-- CRC-32 of `len` zero bytes, by squaring the one-zero-bit operator (as zlib's
-- crc32_combine does), so 100 MB take microseconds.
local function crc32_zeros(len)
  local function times(mat, vec)
    local sum, i = 0, 1
    while vec ~= 0 do
      if vec & 1 ~= 0 then sum = sum ~ mat[i] end
      vec, i = vec >> 1, i + 1
    end
    return sum
  end
  local function square(mat)
    local sq = {}
    for k = 1, 32 do sq[k] = times(mat, mat[k]) end
    return sq
  end
  local op = { 0xedb88320 }
  for k = 2, 32 do op[k] = 1 << (k - 2) end
  op = square(square(square(op)))   -- one zero byte
  local crc = 0xffffffff
  while len > 0 do
    if len & 1 ~= 0 then crc = times(op, crc) end
    len = len >> 1
    if len > 0 then op = square(op) end
  end
  return crc ~ 0xffffffff
end

-- gzip of BOMB_BYTES zeros: one fixed-Huffman deflate block, a literal 0 then
-- matches of 258 bytes at distance 1 (13 bits each: 8 whole matches = 13 bytes, so
-- the bulk is one string.rep).
local function gzip_bomb()
  local matches = (BOMB_BYTES - 1) // 258
  local size = 1 + matches * 258
  local w = bit_writer()
  local function match() w.code(0xc5, 8); w.code(0, 5) end  -- length 258, distance 1
  w.bits(1, 1); w.bits(1, 2)            -- BFINAL, BTYPE = fixed Huffman
  w.code(0x30, 8)                       -- literal 0
  match()                               -- 3 + 8 + 13 bits: byte aligned again
  local prefix = w.take()
  for _ = 1, 8 do match() end
  local unit = w.take()
  local bulk = (matches - 1) // 8
  for _ = 1, (matches - 1) - bulk * 8 do match() end
  w.code(0, 7)                          -- end of block
  local tail = w.flush()
  return "\31\139\8\0\0\0\0\0\0\3" .. prefix .. unit:rep(bulk) .. tail
    .. string.pack("<I4I4", crc32_zeros(size), size & 0xffffffff)
end

local bomb   -- built on first use

-- ============================================================= scenarios

-- Stream `chunk` as chunked body pieces until the client hangs up.
local function stream_forever(conn)
  conn:send(head("HTTP/1.1 200 OK", { "Content-Type: application/json",
                                      "Transfer-Encoding: chunked" }) .. "5\r\n[\"x\",\r\n")
  local piece = ('"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",'):rep(2000)
  local chunk = string.format("%x\r\n%s\r\n", #piece, piece)
  local sent = 0
  while sent < STREAM_CAP and conn:send(chunk) do sent = sent + #chunk end
  return "close"
end

local function trickle(conn)
  local body = job_json("trickle") .. string.rep(" ", 60)
  if not conn:send(head("HTTP/1.1 200 OK", { "Content-Type: application/json",
                                             "Content-Length: " .. #body })) then
    return "close"
  end
  for i = 1, #body do
    if not conn:send(body:sub(i, i)) then break end
    sched.sleep(TRICKLE_DELAY)
  end
  return "close"
end

local function header_flood(conn)
  local lines = { "Content-Type: application/json" }
  for i = 1, FLOOD_HEADERS do lines[#lines + 1] = string.format("X-Flood-%05d: v", i) end
  local body = job_json("header_flood")
  lines[#lines + 1] = "Content-Length: " .. #body
  conn:send(head("HTTP/1.1 200 OK", lines) .. body)
  return "close"
end

local function huge_header(conn)
  conn:send(json_answer("HTTP/1.1 200 OK", job_json("huge_header"),
                        { "X-Huge: " .. string.rep("a", HUGE_HEADER) }))
  return "close"
end

local function gzip_answer(conn)
  bomb = bomb or gzip_bomb()
  conn:send(head("HTTP/1.1 200 OK", { "Content-Type: application/json",
    "Content-Encoding: gzip", "Content-Length: " .. #bomb }) .. bomb)
  return "close"
end

-- Announces the first job, then sends a whole second answer in the same write: a
-- client that read past Content-Length would take it for the next answer.
local function long_length(conn)
  local smuggled = json_answer("HTTP/1.1 200 OK", job_json("smuggled"))
  conn:send(json_answer("HTTP/1.1 200 OK", job_json("long_length")) .. smuggled)
  return "keep"
end

local function short_length(conn)
  conn:send(head("HTTP/1.1 200 OK", { "Content-Type: application/json",
    "Content-Length: 1000" }) .. job_json("short_length"):sub(1, 10))
  return "close"
end

-- A chunked answer whose first chunk-size line is `size`.
local function bad_chunk(size)
  return raw(head("HTTP/1.1 200 OK", { "Content-Type: application/json",
    "Transfer-Encoding: chunked" }) .. size .. "\r\n" .. job_json("bad_chunk") .. "\r\n0\r\n\r\n")
end

local TRACES = '{"job_id":"etag_crlf","bucket_seconds":1.0,"latest_event_at":null,"points":[]}'

-- Scenario name → function(conn, req) → "keep" | "close".
local SCENARIOS = {
  garbage_status = raw("HELLO\r\n\r\n"),
  no_status = raw(job_json("no_status")),
  status_negative = raw(json_answer("HTTP/1.1 -5 OK", job_json("status_negative"))),
  status_huge = raw(json_answer("HTTP/1.1 99999999999 OK", job_json("status_huge"))),
  short_length = short_length,
  long_length = long_length,
  bad_chunk_hex = bad_chunk("zz"),
  bad_chunk_negative = bad_chunk("-1"),
  bad_chunk_overflow = bad_chunk("ffffffffffffffffffffffff"),
  header_flood = header_flood,
  huge_header = huge_header,
  endless_body = stream_forever,
  gzip_bomb = gzip_answer,
  trickle = trickle,
  array_body = raw(json_answer("HTTP/1.1 200 OK", "[]")),
  etag_crlf = raw(json_answer("HTTP/1.1 200 OK", TRACES, { 'ETag: "a\rb"' })),
}

-- Alternating pages: page A or B by offset / limit, `limit` jobs, no total.
local function alternating_pages(conn, req)
  local limit = math.max(1, math.min(100, math.tointeger(tonumber(req.params.limit)) or 100))
  local offset = math.tointeger(tonumber(req.params.offset)) or 0
  local name = (offset // limit) % 2 == 0 and "a" or "b"
  local jobs = {}
  for i = 1, limit do jobs[i] = job_json(string.format("job_page_%s_%d", name, i)) end
  conn:send(json_answer("HTTP/1.1 200 OK", '{"offset":' .. offset .. ',"limit":' .. limit
    .. ',"jobs":[' .. table.concat(jobs, ",") .. "]}"))
  return "keep"
end

-- Endless registry: ids never seen before on every page, no total.
local function endless_registry(conn, req)
  local limit = math.max(1, math.min(100, math.tointeger(tonumber(req.params.limit)) or 100))
  local offset = math.tointeger(tonumber(req.params.offset)) or 0
  local items = {}
  if offset // limit < ENDLESS_PAGES then
    for i = offset + 1, offset + limit do
      items[#items + 1] = string.format('{"id":"ppl_endless_%d","pipeline_key":"endless-%d",'
        .. '"pipeline_version":"1.0.0","status":"published"}', i, i)
    end
  end
  conn:send(json_answer("HTTP/1.1 200 OK", '{"offset":' .. offset .. ',"limit":' .. limit
    .. ',"pipelines":[' .. table.concat(items, ",") .. "]}"))
  return "keep"
end

local stopping = false

local function shutdown(conn)
  conn:send(json_answer("HTTP/1.1 200 OK", '{"ok":true}', { "Connection: close" }))
  stopping = true
  return "close"
end

local function not_found(conn)
  conn:send(json_answer("HTTP/1.1 404 Not Found", '{"errors":[{"code":"not_found",'
    .. '"message":"no such hostile scenario"}]}'))
  return "keep"
end

-- The handler of a request: exact routes, then a scenario named by the path.
local function route(req)
  if req.method == "POST" and req.path == "/_fake/shutdown" then return shutdown end
  if req.path == "/v0.5/batch/jobs" then return alternating_pages end
  if req.path == "/v0.5/batch/registry/pipelines" then return endless_registry end
  local name = req.path:match("^/v0%.5/batch/jobs/([^/]+)")
  return SCENARIOS[name] or not_found
end

-- ============================================================= main

local function serve_connection(conn)
  while true do
    local req = http.read_request(conn)
    if not req then break end
    if route(req)(conn, req) ~= "keep" then break end
  end
  conn:close()
end

require("fake_api.listen").main("hostile_server.lua", arg or {}, serve_connection, function() return stopping end)

#!/usr/bin/env lua5.4
--[[
  fake_api.lua -- a fake Archetype AI Batch Processing API (v0.5) for atai's tests.

  Usage:  lua5.4 spec/support/fake_api.lua [--port N] [--key KEY] [--fixtures DIR]
                                           [--ttl SECONDS] [--idle SECONDS] [--verbose]
                                           [--latency MS] [--demo-jobs] [--user]
                                           [--paste-also TEXT]

  Binds 127.0.0.1 only, prints exactly one line "PORT <n>" on stdout once it listens,
  then serves real HTTP/1.1 (keep-alive, Content-Length and chunked request bodies,
  Expect: 100-continue, many concurrent connections).  It exits by itself after --ttl
  seconds (default 600) or after --idle seconds without any request (default 120), so an
  orphan can never linger.  The key may also come from env ATAI_FAKE_KEY.

    --latency MS   every API response (not the /_fake/ control calls) waits MS ms first,
                   without holding up other connections
    --demo-jobs    also serve the demo jobs (a slow one, a flaky one, two that advance
                   per GET: see fake_api/demo.lua); off for the specs, whose totals count
                   the seven seed jobs
    --user         user mode (make fake-server): --demo-jobs, and after "PORT n" print the
                   endpoint, the key, an `export ATAI_API_ENDPOINT=... ATAI_API_KEY=...`
                   line and the jobs served with what each does
    --paste-also TEXT  (with --user) shell text appended to that line after "; " (make
                   fake-server: the exports of `make env`, so that the one pasted line
                   also finds the checkout's atai, atai.core and bin/atai)

  Always runs under lua5.4 and needs only LuaSocket.  This file is the entry script:
  it parses the command line and starts the server; the server itself is in the
  modules of spec/support/fake_api/ (found next to this file, whatever the current
  directory):

    json.lua       the JSON codec (keeps arrays, key order, 64-bit integers, raw text)
    util.lua       logging, files, timestamps, random ids, query strings, gzip
    sched.lua      the scheduler: one coroutine per connection over socket.select
    http.lua       HTTP/1.1 reading and writing on a non-blocking socket
    state.lua      the shared mutable state (options, store, faults, toggles, stats)
    errors.lua     API errors, the error envelope, JSON responses
    paging.lua     offset/limit pages and query filters of list endpoints
    records.lua    job records: object shapes, events, progress, inputs, outputs
    registry.lua   the pipeline registry and its handlers
    store.lua      loading the seed jobs from the fixtures; the full reset
    lifecycle.lua  how created/retried jobs advance, one step per GET
    jobs.lua       handlers: list, get, create, cancel, retry, delete, queue
    job_io.lua     handlers: events, progress, inputs, counts, traces, outputs
    files.lua      the Files API: POST /files and /files/base64 (multipart, streamed),
                   metadata, delete, download, and the multipart upload (initiate with
                   resume, parts/urls, parts/checkpoint, complete with a CRC-32C check,
                   abort)
    crc32c.lua     CRC-32C and its combine in plain Lua (the check at complete)
    storage.lua    presigned URLs on this server: part PUTs, output blobs, signatures
    blob.lua       the bytes of an output blob, made from its key
    routes.lua     the route table under /v0.5, authentication
    faults.lua     injected faults (what POST /_fake/faults can ask for)
    control.lua    the control API under /_fake/ (reset, faults, config, stats, shutdown)
    demo.lua       opt-in demo jobs (--demo-jobs) and the user-mode listing (--user)
    serve.lua      connections and the main loop
    listen.lua     the main loop of hostile_server.lua and hostile_storage.lua

  The API key is never written anywhere but in the --user listing (meant for pasting):
  logs go to stderr (only with --verbose) and the request log replaces the
  Authorization header by "auth": "ok"|"missing"|"wrong".
]]

-- This script's folder: the modules are in <here>/fake_api/, the fixtures in <here>/../fixtures.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local state = require("fake_api.state")
local util = require("fake_api.util")
local serve = require("fake_api.serve")

local opts = state.opts
opts.fixtures = here .. "/../fixtures"

-- Options taking a value: flag → {option, converter}; the converter returns nil
-- for a bad value.
local function non_negative(v)
  local n = tonumber(v)
  return n and n >= 0 and n or nil
end
local VALUE_FLAGS = {
  ["--port"] = { "port", non_negative }, ["--key"] = { "key", tostring },
  ["--fixtures"] = { "fixtures", tostring }, ["--ttl"] = { "ttl", non_negative },
  ["--idle"] = { "idle", non_negative }, ["--latency"] = { "latency", non_negative },
  ["--paste-also"] = { "paste_also", tostring },
}
-- Switches: flag → option set to true.
local SWITCHES = { ["--verbose"] = "verbose", ["--demo-jobs"] = "demo_jobs", ["--user"] = "user" }

local function usage_error(...)
  io.stderr:write("fake_api.lua: ", table.concat({ ... }), "\n")
  os.exit(2)
end

-- Set state.opts from the command line (exit 2 on a bad one).
local function parse_args(argv)
  local i = 1
  while i <= #argv do
    local a, flag = argv[i], VALUE_FLAGS[argv[i]]
    if flag then
      i = i + 1
      if argv[i] == nil then usage_error("missing value for ", a) end
      opts[flag[1]] = flag[2](argv[i]) or usage_error("bad value for ", a, ": ", argv[i])
    elseif SWITCHES[a] then
      opts[SWITCHES[a]] = true
    else
      usage_error("unknown argument: ", a)
    end
    i = i + 1
  end
  opts.demo_jobs = opts.demo_jobs or opts.user
end

parse_args(arg or {})
util.verbose = opts.verbose
serve.run()

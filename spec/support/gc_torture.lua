--[[
  spec/support/gc_torture.lua -- finalizers that close the client, or use it again,
  in the middle of a client method (issue 11, finding 1). Run by
  spec/hostile_lua_spec.lua in a child interpreter of the Lua under test:

    lua gc_torture.lua SCENARIO

  A child, because its heap is small: with the collector at its top speed a GC
  cycle ends at nearly every allocation, so the self-re-arming finalizer below runs
  at nearly every allocation inside a method (C argument building, the engine's
  delivery, the making of results). In busted's larger heap a cycle spans many
  calls. The child starts its own fake API server and prints:

    RESULT calls=N completed=N cancelled=N before=N hit=N runs=R nested=N
    UNEXPECTED <what>                 (one line per result that is neither)

  `runs` is how often the finalizer ran during one undisturbed call (the points at
  which it acts are spread over them); `hit` how many calls it disturbed from
  inside. A crash, a raise or a hang shows as a missing RESULT line.
]]

local atai = require("atai")
local server = require("spec.support.server")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local JOB_PATH = "/batch/jobs/" .. SEED
local POINTS = 8 -- calls per scenario, each disturbed at another run, or at
                  -- every run when a call has at most EVERY of them
local EVERY = 100

local srv = server.start()

-- ------------------------------------------------------------ the finalizer

local hook   -- function(run), called by the finalizer while set
local runs = 0
local arm

local function on_gc()
  runs = runs + 1
  if hook then
    local ok, e = pcall(hook, runs)
    if not ok then print("UNEXPECTED the finalizer's hook raised: " .. tostring(e)) end
  end
  arm()
end

if rawget(_G, "newproxy") then -- 5.1 and LuaJIT: tables have no __gc
  arm = function() getmetatable(newproxy(true)).__gc = on_gc end
else
  arm = function() setmetatable({}, { __gc = on_gc }) end
end

-- The collector at its top speed, a whole cycle per step and the next one
-- at once, so that nearly every allocation ends a cycle and runs the
-- finalizer: 5.4 caps stepmul at about 1000 (a byte, in units of 4); the
-- older collectors take any value. (pause 100, stepmul 200 suffice on 5.4
-- only; 5.2's collector still runs it less often, every few dozen.)
if _VERSION == "Lua 5.4" then
  collectgarbage("incremental", 50, 1000)
else
  collectgarbage("setpause", 50)
  collectgarbage("setstepmul", 100000)
end
arm()

-- ------------------------------------------------------------ helpers

local function new_client(extra)
  local opts = { endpoint = srv.endpoint, api_key = srv.key, max_retries = 0, retry_backoff = 0.001 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return atai.new(opts)
end

local function many_headers(n)
  local h = {}
  for i = 1, n do h["X-Hostile-" .. i] = ("v"):rep(16) .. i end
  return h
end
local HEADERS = many_headers(2000)

-- The job's next response carries 2,000 extra headers.
local function header_flood()
  srv:fault { method = "GET", path = "/v0.5" .. JOB_PATH, responses = { { pass = true, headers = HEADERS } } }
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local totals = { calls = 0, completed = 0, cancelled = 0, before = 0, hit = 0, runs = 0, nested = 0 }

-- Sorts the results of one call: `check(a, b)` says whether a success is whole.
local function classify(ok, a, b, check)
  totals.calls = totals.calls + 1
  if not ok and tostring(a):find("attempt to use a closed atai client", 1, true) then
    totals.before = totals.before + 1 -- closed by the caller's own allocations, before the call
  elseif not ok then
    print("UNEXPECTED raised: " .. tostring(a))
  elseif a ~= nil and check(a, b) then
    totals.completed = totals.completed + 1
  elseif a == nil and atai.is_error(b) and b.kind == "cancelled" then
    totals.cancelled = totals.cancelled + 1
  else
    print(("UNEXPECTED result: %s, %s"):format(tostring(a), tostring(b)))
  end
end

-- A fresh server state, then prepare() (faults) when given.
local function fresh(prepare)
  srv:reset()
  if prepare then prepare() end
end

-- How often the finalizer runs during call(client) on a fresh client.
local function runs_of(call, prepare, client_opts)
  local c = new_client(client_opts)
  local best = 0
  for _ = 1, 2 do -- the first call may start in a collector pause
    fresh(prepare)
    runs = 0
    local args = { pcall(call, c) }
    best = math.max(best, runs)
    if not args[1] then print("UNEXPECTED raised undisturbed: " .. tostring(args[2])) end
  end
  c:close()
  return best
end

-- Runs call(client) POINTS times (or once per run), each time on a fresh
-- client (with client_opts) that the finalizer disturbs with act(client)
-- at another of its runs; prepare() sets the server's faults for a call.
local function disturb(call, check, act, prepare, client_opts)
  local r = runs_of(call, prepare, client_opts)
  totals.runs = r
  local points = r <= EVERY and r or POINTS
  for i = 1, points do
    local at = math.max(1, math.floor(r * i / points))
    local c = new_client(client_opts)
    fresh(prepare)
    local in_call, hit = false, false
    hook = function(run)
      if run == at then
        act(c)
        hit = in_call
      end
    end
    runs = 0
    in_call = true
    local res = { pcall(call, c) }
    in_call = false
    hook = nil
    if hit then totals.hit = totals.hit + 1 end
    classify(res[1], res[2], res[3], check)
    c:close()
  end
end

local function close(c) c:close() end

local function is_job(job) return type(job) == "table" and job.id == SEED end

local function is_flooded_meta(body, meta)
  return is_job(body) and meta.status == 200 and count_keys(meta.headers) >= 2000
end

local function is_meta(body, meta) return is_job(body) and meta.status == 200 end

-- ------------------------------------------------------------ scenarios

local REQUEST_OPTS = { headers = HEADERS }

local scenarios = {}

-- 2,000 request headers: the finalizer closes while the request is built.
scenarios.close_request_headers = function()
  disturb(function(c) return c:request("GET", JOB_PATH, REQUEST_OPTS) end, is_meta, close)
end

-- 2,000 response headers: it closes while they become a Lua table.
scenarios.close_response_headers = function()
  disturb(function(c) return c:request("GET", JOB_PATH) end, is_flooded_meta, close, header_flood)
end

-- get_job: it closes while the job is decoded.
scenarios.close_get_job = function()
  disturb(function(c) return c:get_job(SEED) end, is_job, close, header_flood)
end

-- client.async: a handle started on a client closed while it was being
-- built completes (cancelled), never stays pending.
scenarios.close_async_start = function()
  disturb(function(c)
    local h = c.async:request("GET", JOB_PATH, REQUEST_OPTS)
    return h:wait(5) -- kind "pending" if it never completes
  end, is_meta, close)
end

-- A nested blocking get_job from the finalizer, on the same client.
local function nested_get_job(c)
  local ok, job, err = pcall(c.get_job, c, SEED)
  if ok and is_job(job) then
    totals.nested = totals.nested + 1
  elseif ok then
    print("UNEXPECTED nested get_job: " .. tostring(err))
  elseif not tostring(job):find("blocking call inside a callback", 1, true) then
    print("UNEXPECTED nested get_job raised: " .. tostring(job))
  end
end

scenarios.nested_request = function()
  disturb(function(c) return c:request("GET", JOB_PATH, REQUEST_OPTS) end, is_meta, nested_get_job)
  disturb(function(c) return c:request("GET", JOB_PATH) end, is_flooded_meta, nested_get_job, header_flood)
end

-- A nested async get_job from the finalizer: each one completes with the job.
scenarios.nested_async = function()
  local handles = {}
  local function start(c) handles[#handles + 1] = { c, c.async:get_job(SEED) } end
  disturb(function(c)
    local body, meta = c:request("GET", JOB_PATH)
    local mine = {}
    for i = #handles, 1, -1 do
      if handles[i][1] == c then
        mine[#mine + 1] = handles[i][2]
        table.remove(handles, i)
      end
    end
    for _, h in ipairs(mine) do
      local job, err = h:wait(5)
      if is_job(job) then totals.nested = totals.nested + 1
      else print("UNEXPECTED nested async get_job: " .. tostring(err)) end
    end
    return body, meta
  end, is_flooded_meta, start, header_flood)
end

-- 503, 503, then the job, with on_retry set: the finalizer closes while the
-- retry notice (its info table) is made, or anywhere else in the call.
local function retries()
  srv:fault { method = "GET", path = "/v0.5" .. JOB_PATH,
    responses = { { status = 503 }, { status = 503 }, { pass = true } } }
end

scenarios.close_on_retry = function()
  local opts = { max_retries = 2, on_retry = function() totals.nested = totals.nested + 1 end }
  disturb(function(c) return c:get_job(SEED) end, is_job, close, retries, opts)
end

-- The same with an async handle nobody holds: only its on_done keeps track.
-- Once the client is closed, its callbacks run at any client's poll.
scenarios.close_on_retry_async = function()
  local opts = { max_retries = 2, on_retry = function() totals.nested = totals.nested + 1 end }
  local other = new_client()
  disturb(function(c)
    local slot = {}
    c.async:get_job(SEED):on_done(function(job, err) slot[1], slot[2] = job, err end)
    for _ = 1, 100 do
      if slot[1] ~= nil or slot[2] ~= nil then break end
      if not pcall(c.poll, c, 0.05) then other:poll(0) end
    end
    return slot[1], slot[2]
  end, is_job, close, retries, opts)
  other:close()
end

local name = arg[1]
if not scenarios[name] then
  print("UNEXPECTED unknown scenario " .. tostring(name))
else
  local ok, e = pcall(scenarios[name])
  if not ok then print("UNEXPECTED scenario raised: " .. tostring(e)) end
end
hook = nil
srv:stop()
print(("RESULT calls=%d completed=%d cancelled=%d before=%d hit=%d runs=%d nested=%d"):format(
  totals.calls, totals.completed, totals.cancelled, totals.before, totals.hit, totals.runs, totals.nested))

--[[
  spec/hostile_lua_spec.lua -- atai against hostile Lua code (issue 11). Each test is
  named after the finding it covers:
    1  finalizers that close the client, or call it again, in the middle of a method
       (in a child interpreter: spec/support/gc_torture.lua);
    2  errors and yields in every callback, closed clients, bodies JSON cannot hold;
    3  wait_job's edge values;  4  big numbers;  5  error kinds ([] job, no file
       descriptors left);  6  memory after one large response;  7  per-call
       max_retries, %2e paths, closed clients in the Lua layer;  8  tostring after
       retries.
  Closures whose errors must point at this file are written on one line and make
  no tail call, so the line they were defined on is the line of the call.
]]

local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local JOB_PATH = "/batch/jobs/" .. SEED
local PATH = "/v0.5" .. JOB_PATH
local LUA54 = _VERSION == "Lua 5.4" and rawget(_G, "jit") == nil

-- Calls fn (a one-line closure) and returns what it raised, asserting that
-- the message starts with this file and the closure's line.
local function raised_here(fn)
  local line = debug.getinfo(fn, "S").linedefined
  local ok, msg = pcall(fn)
  assert.is_false(ok, "did not raise")
  msg = tostring(msg)
  assert.is_truthy(msg:find("^[^\n]*hostile_lua_spec%.lua:" .. line .. ": "), msg)
  return msg
end

-- Calls fn and returns what it raised (asserting that it did).
local function raised(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok, "did not raise")
  return tostring(msg)
end

-- Polls `client` until fn() is true or poll raises; returns what it raised.
local function poll_until_raise(client, fn)
  for _ = 1, 100 do
    local ok, msg = pcall(client.poll, client, 0.05)
    if not ok then return tostring(msg) end
    if fn and fn() then return nil end
  end
  return nil
end

-- The engine of `client` is consistent: blocking and async calls work, and
-- nothing is left pending.
local function assert_consistent(client)
  assert.are.equal(SEED, assert(client:get_job(SEED)).id)
  assert.are.equal(SEED, assert(client.async:get_job(SEED):wait(5)).id)
  assert.are.equal(0, client:pending())
end

describe("hostile Lua", function()
  local t = fake_api({ max_retries = 0 })
  local client = t.new_client -- another client on the fake server, closed after the test

  -- One test per case {name, one-line closure calling a method of `closed`}:
  -- on a closed client it raises "attempt to use a closed atai client" at
  -- the closure's line.
  local closed
  local function closed_client_tests(prefix, cases)
    for _, case in ipairs(cases) do
      it(prefix .. case[1], function()
        closed = client()
        closed:close()
        local msg = raised_here(case[2])
        assert.is_truthy(msg:find("attempt to use a closed atai client", 1, true), msg)
      end)
    end
  end

  -- ---------------------------------------------------------------- finding 1

  describe("finding 1: a finalizer closing the client, or calling it, mid-method", function()
    -- Runs a scenario of spec/support/gc_torture.lua in a child interpreter;
    -- returns its RESULT counts. Every call ended whole or cancelled.
    local function torture(scenario)
      local out, ok = util.run_lua(("arg = { [0] = 'gc_torture.lua', %q }\ndofile('spec/support/gc_torture.lua')\n")
        :format(scenario))
      assert.is_true(ok, out)
      assert.is_falsy(out:find("UNEXPECTED", 1, true), out)
      local line = assert(out:match("RESULT ([^\n]+)"), out)
      local r = {}
      for k, v in line:gmatch("(%w+)=(%d+)") do r[k] = tonumber(v) end
      assert.is_true(r.calls > 0 and r.hit > 0, out)
      assert.are.equal(r.calls, r.completed + r.cancelled + r.before, out)
      return r, out
    end

    -- scenario, test name, and what its counts must show (strict on 5.4, whose
    -- collector runs the finalizer at nearly every allocation).
    local scenarios = {
      { "close_request_headers", "closing the client while 2,000 request headers are built: cancelled",
        function(r) return not LUA54 or (r.runs >= 1000 and r.cancelled >= 1) end },
      { "close_response_headers", "closing the client while 2,000 response headers become a table",
        function(r) return not LUA54 or (r.runs >= 1000 and r.completed >= 1) end },
      { "close_get_job", "closing the client at every point of a get_job",
        function(r) return not LUA54 or (r.runs >= 20 and r.calls == r.runs) end },
      { "close_async_start", "an async request on a client closed while it was built completes, cancelled",
        function(r) return not LUA54 or r.cancelled >= 1 end },
      { "nested_request", "a nested blocking get_job on the same client mid-request",
        function(r) return r.completed == r.calls and r.nested >= 1 end },
      { "nested_async", "an async get_job started on the same client mid-request",
        function(r) return r.completed == r.calls and r.nested >= 1 end },
      { "close_on_retry", "closing the client while on_retry's notice is made (blocking get_job)",
        function(r) return r.nested >= 1 end }, -- nested: on_retry calls
      { "close_on_retry_async", "the same for an async get_job nobody holds: its on_done still runs",
        function(r) return r.nested >= 1 end },
    }
    for _, case in ipairs(scenarios) do
      it("finding 1: a finalizer: " .. case[2], function()
        local r, out = torture(case[1])
        assert.is_true(case[3](r), out)
      end)
    end
  end)

  -- ---------------------------------------------------------------- finding 2

  describe("finding 2: errors in callbacks propagate and leave the engine consistent", function()
    it("finding 2: on_done raising: out of poll; the handle keeps its job", function()
      local h = t.client.async:get_job(SEED):on_done(function() error("on_done boom") end)
      local msg = poll_until_raise(t.client)
      assert.is_truthy(msg and msg:find("on_done boom", 1, true), msg)
      assert.are.equal(SEED, h:result().id)
      assert_consistent(t.client)
    end)

    it("finding 2: on_done raising: out of wait()", function()
      local h = t.client.async:get_job(SEED):on_done(function() error("on_done boom") end)
      assert.is_truthy(raised(h.wait, h):find("on_done boom", 1, true))
      assert.are.equal(SEED, h:result().id)
      assert_consistent(t.client)
    end)

    it("finding 2: on_retry raising: out of a blocking get_job, and out of poll for an async one", function()
      local c = client { max_retries = 1, on_retry = function() error("on_retry boom") end }
      t.srv:fault { path = PATH, responses = { { status = 503 }, { status = 503 } } }
      assert.is_truthy(raised(c.get_job, c, SEED):find("on_retry boom", 1, true))
      t.srv:reset()
      t.srv:fault { path = PATH, responses = { { status = 503 } } }
      local h = c.async:get_job(SEED)
      local msg = poll_until_raise(c)
      assert.is_truthy(msg and msg:find("on_retry boom", 1, true), msg)
      assert.are.equal(SEED, assert(h:wait(5)).id) -- the retry went on
      assert_consistent(c)
    end)

    it("finding 2: on_exchange raising: out of a blocking get_job, and out of poll for an async one", function()
      local c = client { on_exchange = function() error("on_exchange boom") end }
      assert.is_truthy(raised(c.get_job, c, SEED):find("on_exchange boom", 1, true))
      local h = c.async:get_job(SEED)
      local msg = poll_until_raise(c)
      assert.is_truthy(msg and msg:find("on_exchange boom", 1, true), msg)
      assert.are.equal(SEED, assert(h:wait(5)).id)
      local quiet = client()
      assert_consistent(quiet)
    end)

    it("finding 2: wait_job's on_update raising: out of wait_job; the async form is cancelled", function()
      local boom = function() error("on_update boom") end
      assert.is_truthy(raised(t.client.wait_job, t.client, SEED, { on_update = boom }):find("on_update boom", 1, true))
      local h = t.client.async:wait_job(SEED, { on_update = boom })
      local msg = poll_until_raise(t.client, function() return h:done() end)
      assert.is_truthy(msg and msg:find("on_update boom", 1, true), msg)
      local job, err = h:result()
      assert.is_nil(job)
      assert.are.equal("cancelled", err.kind)
      assert_consistent(t.client)
    end)

    it("finding 2: wait_job's on_error raising: out of wait_job", function()
      t.srv:fault { path = PATH, responses = { { status = 503 } } }
      local opts = { interval = 0.01, on_error = function() error("on_error boom") end }
      assert.is_truthy(raised(t.client.wait_job, t.client, SEED, opts):find("on_error boom", 1, true))
      assert_consistent(t.client)
    end)

    it("finding 2: an atai.run body raising, before and after its first await", function()
      assert.is_truthy(raised(atai.run, function() error("run boom") end):find("run boom", 1, true))
      local h = atai.run(function()
        t.client:get_job(SEED)
        error("late boom")
      end)
      assert.is_truthy(raised(h.wait, h):find("late boom", 1, true))
      local v, err = h:result()
      assert.is_nil(v)
      assert.are.equal("callback", err.kind)
      assert.is_truthy(err.message:find("late boom", 1, true))
      assert_consistent(t.client)
    end)
  end)

  describe("finding 2: coroutine.yield inside a callback is a clear error", function()
    it("finding 2: in on_done, polled from the main thread", function()
      t.client.async:get_job(SEED):on_done(function() coroutine.yield("x") end)
      local msg = poll_until_raise(t.client)
      assert.is_truthy(msg and msg:find("yield", 1, true), msg)
      assert_consistent(t.client)
    end)

    it("finding 2: in on_done, polled from inside a coroutine", function()
      local co = coroutine.create(function()
        local h = t.client.async:get_job(SEED):on_done(function() coroutine.yield("x") end)
        for _ = 1, 100 do
          t.client:poll(0.05)
          if h:done() then break end
        end
        return "no error"
      end)
      local ok, msg = coroutine.resume(co)
      assert.is_false(ok, msg)
      assert.is_truthy(tostring(msg):find("yield", 1, true), msg)
      assert_consistent(t.client)
    end)

    it("finding 2: in on_retry and in on_exchange", function()
      local y = function() coroutine.yield("x") end
      local c = client { max_retries = 1, on_retry = y }
      t.srv:fault { path = PATH, responses = { { status = 503 } } }
      assert.is_truthy(raised(c.get_job, c, SEED):find("yield", 1, true))
      local e = client { on_exchange = y }
      assert.is_truthy(raised(e.get_job, e, SEED):find("yield", 1, true))
      assert_consistent(client())
    end)

    it("finding 2: in wait_job's on_update: raised by the blocking form, kind callback for the async one", function()
      local y = function() coroutine.yield("x") end
      assert.is_truthy(raised(t.client.wait_job, t.client, SEED, { on_update = y }):find("yield", 1, true))
      local job, err = t.client.async:wait_job(SEED, { on_update = y }):wait(5)
      assert.is_nil(job)
      assert.are.equal("callback", err.kind)
      assert.is_truthy(err.message:find("yielded string, not a handle", 1, true), err.message)
      assert_consistent(t.client)
    end)

    it("finding 2: an atai.run body yielding something else than a handle", function()
      local v, err = atai.run(function() coroutine.yield(42) end):wait(5)
      assert.is_nil(v)
      assert.are.equal("callback", err.kind)
      assert.is_truthy(err.message:find("yielded number, not a handle", 1, true), err.message)
    end)
  end)

  describe("finding 2: every method of a closed client raises at the caller's line", function()
    local S, SPEC = SEED, { name = "n", pipeline_type = "t", pipeline_key = "k" }
    closed_client_tests("finding 2: ", {
      { "get_job", function() closed:get_job(S) end },
      { "request", function() closed:request("GET", "/x") end },
      { "list_jobs", function() closed:list_jobs() end },
      { "create_job", function() closed:create_job(SPEC) end },
      { "cancel_job", function() closed:cancel_job(S) end },
      { "retry_job", function() closed:retry_job(S) end },
      { "delete_job", function() closed:delete_job(S) end },
      { "queue", function() closed:queue() end },
      { "job_events", function() closed:job_events(S) end },
      { "job_progress", function() closed:job_progress(S) end },
      { "job_inputs", function() closed:job_inputs(S) end },
      { "job_inputs_progress", function() closed:job_inputs_progress(S) end },
      { "job_input_counts", function() closed:job_input_counts(S) end },
      { "job_input_traces", function() closed:job_input_traces(S) end },
      { "job_outputs", function() closed:job_outputs(S) end },
      { "pipelines", function() closed:pipelines() end },
      { "pipeline", function() closed:pipeline(S) end },
      { "pipeline_schema", function() closed:pipeline_schema(S) end },
      { "find_pipeline", function() closed:find_pipeline("k") end },
      { "wait_job", function() closed:wait_job(S) end },
      { "get_jobs", function() closed:get_jobs({ S }) end },
      { "wait_jobs", function() closed:wait_jobs({ S }) end },
      { "each_job (its first step)", function() for _ in closed:each_job() do end end },
      { "poll", function() closed:poll() end },
      { "async get_job", function() closed.async:get_job(S) end },
      { "async request", function() closed.async:request("GET", "/x") end },
      { "async list_jobs", function() closed.async:list_jobs() end },
      { "async job_input_traces", function() closed.async:job_input_traces(S) end },
      { "async sleep", function() closed.async:sleep(1) end },
    })

    it("finding 2: pending, timeout, sockets and close only report (0, nil, {}, nothing)", function()
      local c = client()
      c:close()
      assert.are.equal(0, c:pending())
      assert.is_nil(c:timeout())
      assert.are.same({}, c:sockets())
      c:close()
    end)
  end)

  describe("finding 2: request bodies JSON cannot hold", function()
    it("finding 2: a 10 MB string in a body is sent whole", function()
      local big = ("x"):rep(10 * 1024 * 1024)
      local body, meta = t.client:request("POST", "/batch/jobs", { body = { name = big } })
      -- the fake API refuses the job (no pipeline): what matters is that it read the body
      assert.is_nil(body)
      assert.are.equal("invalid_request", meta.kind, tostring(meta))
      local req = t.srv:requests()[1]
      assert.is_true(#req.body > #big, #req.body)
    end)

    it("finding 2: a cyclic body (t.self = t, or t[1] = t) raises naming a cycle, no stack overflow", function()
      local cyclic = {}
      cyclic.self = cyclic
      local looped = {}
      looped[1] = looped
      for _, body in ipairs({ cyclic, looped }) do
        local msg = raised(t.client.request, t.client, "POST", "/batch/jobs", { body = body })
        assert.is_truthy(msg:find("request body: nested deeper than 200 levels (a cycle?)", 1, true), msg)
        msg = raised(atai.json_encode, body)
        assert.is_truthy(msg:find("nested deeper than 200 levels (a cycle?)", 1, true), msg)
      end
      local spec = { name = "n", pipeline_type = "t", pipeline_key = "k", parameters = cyclic }
      assert.is_truthy(raised(t.client.create_job, t.client, spec):find("(a cycle?)", 1, true))
      assert.are.equal(0, #t.srv:requests())
    end)

    it("finding 2: a body nested 100,000 deep raises like a cycle", function()
      local deep = {}
      for _ = 1, 100000 do deep = { deep } end
      local msg = raised(t.client.request, t.client, "POST", "/batch/jobs", { body = deep })
      assert.is_truthy(msg:find("nested deeper than 200 levels", 1, true), msg)
    end)

    it("finding 2: a body holding a function, a coroutine or a userdata raises naming it", function()
      local co = coroutine.create(function() end)
      for what, v in pairs({ ["function"] = print, thread = co, userdata = io.stdout }) do
        local msg = raised(t.client.request, t.client, "POST", "/batch/jobs", { body = { v = v } })
        assert.is_truthy(msg:find("request body: cannot encode a " .. what .. " as JSON", 1, true), msg)
      end
      assert.are.equal(0, #t.srv:requests())
    end)

    it("finding 2: NaN and infinities raise, in bodies, queries and filters", function()
      for _, n in ipairs({ 0 / 0, math.huge, -math.huge }) do
        local msg = raised(t.client.request, t.client, "POST", "/batch/jobs", { body = { n = n } })
        assert.is_truthy(msg:find("cannot encode NaN or infinity as JSON", 1, true), msg)
        msg = raised(t.client.request, t.client, "GET", "/batch/jobs", { query = { limit = n } })
        assert.is_truthy(msg:find("opts.query.limit: string, integer, finite number or boolean expected", 1, true), msg)
        msg = raised(t.client.list_jobs, t.client, { limit = n })
        assert.is_truthy(msg:find("limit: integer >= 1 expected", 1, true), msg)
      end
      assert.are.equal(0, #t.srv:requests())
      assert_consistent(t.client)
    end)
  end)

  -- ---------------------------------------------------------------- finding 3

  describe("finding 3: wait_job's edge values", function()
    it("finding 3: timeout = 90000 (over a day) waits for a job that completes", function()
      local job = assert(t.client:wait_job(SEED, { timeout = 90000, interval = 0.01 }))
      assert.are.equal("COMPLETED", job.status)
      job = assert(t.client.async:wait_job(SEED, { timeout = 90000, interval = 0.01 }):wait(5))
      assert.are.equal("COMPLETED", job.status)
    end)

    it("finding 3: interval = 1e9 with timeout = 0.05 times out at once, without raising", function()
      local started = atai.core.now()
      local job, err = t.client:wait_job("job_running", { interval = 1e9, max_interval = 1e9, timeout = 0.05 })
      assert.is_nil(job)
      assert.are.equal("timeout", err.kind)
      assert.are.equal("RUNNING", err.job.status)
      assert.is_true(atai.core.now() - started < 5) -- not the 1e9 s interval
    end)
  end)

  -- ---------------------------------------------------------------- finding 4

  describe("finding 4: big numbers", function()
    it("finding 4: options of 2^63 or 1e300 raise argument errors naming them", function()
      for _, name in ipairs({ "max_response_bytes", "timeout", "connect_timeout", "retry_backoff",
        "retry_backoff_max", "max_retries", "max_concurrency", "max_pages" }) do
        for _, n in ipairs({ 2 ^ 63, 1e300 }) do
          local msg = raised(atai.new, { api_key = "k", [name] = n })
          assert.is_truthy(msg:find("(option '" .. name .. "': ", 1, true), msg)
          assert.is_truthy(msg:find("got number out of range)", 1, true), msg)
        end
      end
    end)

    it("finding 4: per-call numbers of 2^63 or 1e300 raise argument errors before any request", function()
      local c = t.client
      for _, n in ipairs({ 2 ^ 63, 1e300, 0 / 0 }) do
        assert.is_truthy(raised(c.get_job, c, SEED, { timeout = n }):find("opts.timeout", 1, true))
        assert.is_truthy(raised(c.get_job, c, SEED, { max_retries = n }):find("opts.max_retries", 1, true))
        assert.is_truthy(raised(c.request, c, "GET", "/x", { timeout = n }):find("opts.timeout", 1, true))
        assert.is_truthy(raised(c.get_jobs, c, { SEED }, { timeout = n }):find("opts.timeout", 1, true))
        assert.is_truthy(raised(c.poll, c, n):find("seconds: number >= 0 expected", 1, true))
        local view = c.async
        assert.is_truthy(raised(view.sleep, view, n):find("seconds: number >= 0 expected", 1, true))
      end
      assert.are.equal(0, #t.srv:requests())
    end)

    it("finding 4: tostring of an error whose status is 1e300, NaN, -1, 2^31... prints no HTTP code", function()
      for _, status in ipairs({ 1e300, 0 / 0, -1, 2 ^ 31, 2 ^ 63, math.huge, -math.huge, 1.5, -0.5 }) do
        local text = tostring(atai.core.new_error { kind = "http", status = status, message = "m" })
        assert.are.equal("atai http error: m", text)
      end
      assert.are.equal("atai http error (HTTP 404): m", tostring(atai.core.new_error { kind = "http", status = 404, message = "m" }))
    end)

    it("finding 4: tostring with absurd attempts or elapsed prints no 'after' part", function()
      for _, case in ipairs({ { 1e300, 1 }, { 0 / 0, 1 }, { 2 ^ 31, 1 }, { 3, 1e300 }, { 3, 0 / 0 }, { 3, -1 }, { -3, 1 } }) do
        local err = atai.core.new_error { kind = "server", message = "m", attempts = case[1], elapsed = case[2] }
        assert.are.equal("atai server error: m", tostring(err))
      end
    end)
  end)

  -- ---------------------------------------------------------------- finding 5

  describe("finding 5: error kinds", function()
    it("finding 5: a [] body (or any JSON that is not an object) to get_job is kind decode", function()
      for _, body in ipairs({ "[]", "[{}]", "null", '"job"', "42", "true" }) do
        t.srv:fault { path = PATH, responses = { { status = 200, body = body } } }
        local job, err = t.client:get_job(SEED)
        assert.is_nil(job, body)
        assert.are.equal("decode", err.kind, body)
        assert.is_truthy(err.message:find("expected a JSON object", 1, true), err.message)
      end
    end)

    it("finding 5: no file descriptors left: the error says 'too many open files'", function()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
        local atai = require("atai")
        local c = atai.new { endpoint = %q, api_key = %q, max_retries = 0 }
        local files = {}
        while true do -- every descriptor this process may open
          local file = io.open("/dev/null", "r")
          if not file then break end
          files[#files + 1] = file
        end
        local job, err = c:get_job(%q)
        print(#files, job and "JOB" or err.kind, tostring(err))
      ]]):format(t.srv.endpoint, t.srv.key, SEED))
      f:close()
      local cmd = ("ulimit -n 32 && LUA_PATH='./lua/?.lua;./lua/?/init.lua;./?.lua;;' LUA_CPATH='%s;;' exec %s %s 2>&1")
        :format(util.cpath, util.lua, script)
      local p = assert(io.popen("sh -c \"" .. cmd .. "\""))
      local out = p:read("*a")
      p:close()
      os.remove(script)
      local opened, kind = out:match("^(%d+)%s+(%S+)")
      assert.is_truthy(opened and tonumber(opened) > 0, out)
      assert.are.equal("network", kind, out)
      assert.is_truthy(out:find("too many open files", 1, true), out)
    end)
  end)

  -- ---------------------------------------------------------------- finding 6

  describe("finding 6: memory after one large response", function()
    -- In a child, with glibc's mmap threshold pinned at 128 KiB: large blocks
    -- are then always mapped and unmapped when freed, so RSS shows what is
    -- still held, not where glibc's dynamic threshold happened to put a
    -- freed 30 MB string. (A child also runs natively under make memcheck.)
    local CHILD = [[
      local atai = require("atai")
      local function rss_kb()
        collectgarbage()
        collectgarbage()
        local f = assert(io.open("/proc/self/status", "r"))
        local text = f:read("*a")
        f:close()
        return tonumber(text:match("VmRSS:%%s*(%%d+)"))
      end
      local c = atai.new { endpoint = %q, api_key = %q, max_retries = 0 }
      assert(c:queue()) -- the connection and the client's buffers are made
      local before = rss_kb()
      local function big() -- its values go with its frame
        local body, meta = c:request("GET", %q)
        return meta.status, #body.pad
      end
      local status, size = big()
      local job = assert(c:get_job(%q))
      print("RESULT", status, size, job.id, rss_kb() - before)
    ]]

    it("finding 6: a 30 MB body, then a small one: RSS back within 8 MB", function()
      if not util.proc_status_kb("VmRSS") then
        pending("no /proc/self/status here")
        return
      end
      if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
        pending("under make sanitize: ASan's quarantine keeps freed memory, RSS means nothing")
        return
      end
      local pad = ("x"):rep(30 * 1024 * 1024)
      t.srv:fault { path = PATH, responses = { { status = 200, body = '{"id": "big", "pad": "' .. pad .. '"}' } } }
      local out = util.run_lua(CHILD:format(t.srv.endpoint, t.srv.key, JOB_PATH, SEED),
        { MALLOC_MMAP_THRESHOLD_ = 131072 })
      local status, size, id, growth = out:match("RESULT%s+(%d+)%s+(%d+)%s+(%S+)%s+(%-?%d+)")
      assert.are.equal("200", status, out)
      assert.are.equal(tostring(#pad), size, out)
      assert.are.equal(SEED, id, out)
      assert.is_true(tonumber(growth) < 8 * 1024, ("RSS grew by %s KiB"):format(growth))
    end)
  end)

  -- ---------------------------------------------------------------- finding 7

  describe("finding 7: smaller ones", function()
    it("finding 7: per-call max_retries takes 0..10 like atai.new, 11 raises (get_job, request, get_jobs)", function()
      local c = t.client
      for _, n in ipairs({ 0, 10 }) do
        assert.are.equal(SEED, assert(c:get_job(SEED, { max_retries = n })).id)
        assert.are.equal(200, select(2, c:request("GET", JOB_PATH, { max_retries = n })).status)
        assert.are.equal(SEED, c:get_jobs({ SEED }, { max_retries = n })[1].id)
      end
      for _, n in ipairs({ 11, -1, 1.5 }) do
        local expects = "opts.max_retries: integer from 0 to 10 expected"
        assert.is_truthy(raised(c.get_job, c, SEED, { max_retries = n }):find(expects, 1, true))
        assert.is_truthy(raised(c.request, c, "GET", JOB_PATH, { max_retries = n }):find(expects, 1, true))
        assert.is_truthy(raised(c.get_jobs, c, { SEED }, { max_retries = n }):find("opts.max_retries: integer from 0 to 10", 1, true))
      end
    end)

    it("finding 7: request() sends '/a.b/%2e%2ex' (not a dot segment) as it is", function()
      local body, err = t.client:request("GET", "/a.b/%2e%2ex")
      assert.is_nil(body)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("/v0.5/a.b/%2e%2ex", t.srv:requests()[1].path)
    end)

    describe("finding 7: a closed client raises at the caller's line from the Lua layer too", function()
      local S = SEED
      closed_client_tests("finding 7: ", {
        { "list_jobs", function() closed:list_jobs { limit = 1 } end },
        { "wait_job", function() closed:wait_job(S, { timeout = 1 }) end },
        { "get_jobs", function() closed:get_jobs({ S, S }) end },
        { "get_jobs of no ids", function() closed:get_jobs({}) end },
        { "wait_jobs", function() closed:wait_jobs({ S }) end },
        { "wait_jobs of no ids", function() closed:wait_jobs({}) end },
        { "find_pipeline", function() closed:find_pipeline("k", { limit = 5 }) end },
        { "each_pipeline (its first step)", function() closed:each_pipeline()() end },
        { "async wait_job", function() closed.async:wait_job(S) end },
        { "async get_jobs", function() closed.async:get_jobs({ S }) end },
        { "async wait_jobs", function() closed.async:wait_jobs({ S }) end },
        { "async find_pipeline", function() closed.async:find_pipeline("k") end },
      })
    end)
  end)

  -- ---------------------------------------------------------------- finding 8

  describe("finding 8: tostring after retries", function()
    it("finding 8: three 503s with max_retries = 2: 'after 3 attempts in'", function()
      local c = client { max_retries = 2, retry_backoff = 0.01 }
      t.srv:fault { path = PATH, responses = { { status = 503 }, { status = 503 }, { status = 503 } } }
      local job, err = c:get_job(SEED)
      assert.is_nil(job)
      assert.are.equal("server", err.kind)
      assert.are.equal(3, err.attempts)
      assert.is_truthy(tostring(err):find("^atai server error %(HTTP 503%): .* %(after 3 attempts in %d+%.%d s%)$"),
        tostring(err))
      assert.are.equal(3, #t.srv:requests())
    end)
  end)
end)

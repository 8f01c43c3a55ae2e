-- spec/async_spec.lua: the non-blocking engine: client.async, handles,
-- poll/pending/timeout, concurrency, retries on due times, close,
-- reentrancy and callback errors. Concurrency is proven by the fake
-- server's records (distinct connections, arrival before any answer),
-- never by wall-clock asserts.
local atai = require("atai")
local fake_api = require("spec.support.fake")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local IDS = { SEED, "job_running", "job_failed", "job_cancelled", "job_pending", "job_numbers" }
local PATH = "/v0.5/batch/jobs/" .. SEED

-- Drives `client` until every handle is done (bounded: 200 polls of 50 ms).
local function drive(client, handles)
  for _ = 1, 200 do
    local all = true
    for _, h in ipairs(handles) do all = all and h:done() end
    if all then return end
    client:poll(0.05)
  end
  error("handles did not complete")
end

-- `n` delayed answers for `path` (GET), each held `delay` seconds.
local function slow(srv, path, n, delay)
  local responses = {}
  for i = 1, n do responses[i] = { delay = delay, pass = true } end
  srv:fault { method = "GET", path = path, responses = responses }
end

describe("client.async", function()
  local t = fake_api({ max_retries = 0 })

  it("starts get_job and returns a handle at once; poll completes it", function()
    local h = t.client.async:get_job(SEED)
    assert.is_false(h:done())
    local v, err = h:result()
    assert.is_nil(v)
    assert.are.equal("pending", err.kind)
    assert.are.equal(1, t.client:pending())
    drive(t.client, { h })
    assert.is_true(h:done())
    assert.are.equal(SEED, h:result().id)
    assert.are.equal(0, t.client:pending())
    assert.is_nil(t.client:timeout())
  end)

  it("has every blocking method, with the same results", function()
    local names = { "get_job", "request", "list_jobs", "create_job", "cancel_job", "retry_job",
      "delete_job", "queue", "job_events", "job_progress", "job_inputs", "job_inputs_progress",
      "job_input_counts", "job_input_traces", "job_outputs", "pipelines", "pipeline",
      "pipeline_schema", "find_pipeline", "wait_job", "get_jobs", "wait_jobs", "sleep" }
    for _, name in ipairs(names) do
      assert.is_function(t.client.async[name], name)
      assert.is_function(atai.async[name], name)
    end
    local body, meta = t.client.async:request("GET", "/batch/jobs/queue"):wait()
    assert.are.equal(200, meta.status)
    assert.are.same(t.client:queue(), body)
    local page = t.client.async:list_jobs { limit = 2 }:wait()
    assert.are.equal(2, #page.jobs)
    local p = assert(t.client.async:find_pipeline("machine-state-classification"):wait())
    assert.are.equal("machine-state-classification", p.pipeline_key)
    local traces = assert(t.client.async:job_input_traces(SEED):wait())
    assert.is_false(traces.not_modified)
    local none, err = t.client.async:get_job("job_missing"):wait()
    assert.is_nil(none)
    assert.are.equal("not_found", err.kind)
  end)

  it("raises on bad arguments like the blocking methods, at the caller's line", function()
    local a = t.client.async
    local cases = { -- (no tail calls: the caller's frame must stay for its line)
      { function() local _ = a:get_job(42) end, "bad argument #1 to 'get_job'" },
      { function() local _ = a:get_job("a/b") end, "bad argument #1 to 'get_job'" },
      { function() local _ = a:request("FETCH", "/x") end, "bad argument #1 to 'request'" },
      { function() local _ = a:list_jobs { nope = 1 } end, "bad argument #1 to 'list_jobs'" },
      { function() local _ = a:cancel_job("") end, "bad argument #1 to 'cancel_job'" },
      { function() local _ = a:wait_job(SEED, { interval = -1 }) end, "bad argument #2 to 'wait_job'" },
      { function() local _ = a:sleep(-1) end, "bad argument #1 to 'sleep'" },
      { function() local _ = a:get_jobs({ "ok", 5 }) end, "bad argument #1 to 'get_jobs'" },
      { function() local _ = atai.async.get_job(false) end, "bad argument #1 to 'get_job'" },
      { function() local _ = a.get_job(SEED) end, "called with ':'" },
    }
    for i, case in ipairs(cases) do
      local ok, msg = pcall(case[1])
      assert.is_false(ok, i)
      assert.is_truthy(tostring(msg):find(case[2], 1, true), msg)
      assert.is_truthy(tostring(msg):find("async_spec.lua:%d+:"), msg)
    end
    assert.are.equal(0, #t.srv:requests())
  end)

  it("atai.async uses the default client, called with a dot", function()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() atai.configure {} end)
    local h = atai.async.get_job(SEED)
    assert.are.equal(1, atai.pending())
    assert.is_number(atai.timeout())
    local job = h:wait()
    assert.are.equal(SEED, job.id)
    assert.are.equal(0, atai.pending())
    local values = atai.wait_all { atai.async.get_job(SEED), atai.async.get_job("job_failed") }
    assert.are.equal("FAILED", values[2].status)
    assert.are.equal(0, atai.poll(0))
  end)
end)

describe("handles", function()
  local t = fake_api({ max_retries = 0 })

  it("wait(seconds) gives kind pending while the handle goes on", function()
    slow(t.srv, PATH, 1, 0.3)
    local h = t.client.async:get_job(SEED)
    local v, err = h:wait(0.01)
    assert.is_nil(v)
    assert.are.equal("pending", err.kind)
    assert.is_false(h:done())
    assert.are.equal(SEED, h:wait().id)
  end)

  it("cancel() ends it with kind cancelled; cancelling a done handle does nothing", function()
    slow(t.srv, PATH, 1, 0.3)
    local h = t.client.async:get_job(SEED)
    local seen
    h:on_done(function(v, err) seen = { v, err } end)
    h:cancel()
    assert.are.equal(0, t.client:pending())
    t.client:poll(0)
    assert.is_true(h:done())
    local v, err = h:result()
    assert.is_nil(v)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal("cancelled", seen[2].kind)
    local done = t.client.async:get_job(SEED)
    assert(done:wait())
    done:cancel()
    assert.are.equal(SEED, done:result().id)
  end)

  it("on_done is called once, from poll, never from the call that registers it", function()
    local h = t.client.async:get_job(SEED)
    local calls = {}
    assert.are.equal(h, h:on_done(function(job) calls[#calls + 1] = job.id end))
    assert.are.equal(0, #calls)
    drive(t.client, { h })
    assert.are.same({ SEED }, calls)
    -- on a done handle: at the next poll, not now
    h:on_done(function(job) calls[#calls + 1] = "late " .. job.id end)
    assert.are.equal(1, #calls)
    t.client:poll(0)
    assert.are.same({ SEED, "late " .. SEED }, calls)
    t.client:poll(0)
    assert.are.equal(2, #calls)
    assert.has_error(function() h:on_done("nope") end)
  end)

  it("a dropped handle still completes and calls its callbacks", function()
    local got
    t.client.async:get_job(SEED):on_done(function(job) got = job.id end)
    collectgarbage()
    collectgarbage()
    for _ = 1, 100 do
      if got then break end
      t.client:poll(0.05)
    end
    assert.are.equal(SEED, got)
  end)

  it("sleep completes with true on the engine's timers", function()
    local h = t.client.async:sleep(0.01)
    assert.is_true(t.client:timeout() <= 0.01)
    assert.is_true(h:wait())
    assert.are.equal(0, t.client:pending())
  end)

  it("sleeps complete in due order, not the order they were set; cancel and close end the rest", function()
    local P = require("atai.core.private") -- a test of internals: the engine's clock
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() c:close() end)
    P.time_scale(c, 0.001)
    local order, ends = {}, {}
    for _, s in ipairs({ 3, 1, 2 }) do
      c.async:sleep(s):on_done(function(ok) order[#order + 1] = ok and s end)
    end
    local cancelled, closed = c.async:sleep(1e6), c.async:sleep(1e6)
    assert.is_truthy(tostring(closed):find("(sleep, timer)", 1, true))
    cancelled:on_done(function(ok, err) ends.cancelled = ok or err.kind end)
    closed:on_done(function(ok, err) ends.closed = ok or err.kind end)
    assert.are.equal(5, c:pending())
    cancelled:cancel()
    assert.is_true(cancelled:done())
    while #order < 3 do c:poll(1) end
    assert.are.same({ 1, 2, 3 }, order)
    assert.are.equal(1, c:pending())
    assert.is_true(c:timeout() > 0) -- the long sleep (1000 s scaled) is the next due time
    c:close()
    assert.is_true(closed:done())
    assert.are.same({ cancelled = "cancelled", closed = "cancelled" }, ends)
    assert.is_truthy(tostring(closed):find("(sleep, done)", 1, true))
  end)

  it("atai.wait_all takes handles of several clients; a running one gives pending", function()
    local other = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() other:close() end)
    slow(t.srv, "/v0.5/batch/jobs/job_running", 1, 0.5)
    local values, errs = atai.wait_all({ t.client.async:get_job(SEED), other.async:get_job("job_failed"),
      t.client.async:get_job("job_missing"), other.async:get_job("job_running") }, 0.25)
    assert.are.equal(SEED, values[1].id)
    assert.are.equal("job_failed", values[2].id)
    assert.is_nil(values[3])
    assert.are.equal("not_found", errs[3].kind)
    assert.is_nil(values[4])
    assert.are.equal("pending", errs[4].kind)
  end)
end)

describe("the engine", function()
  local t = fake_api({ max_retries = 0, max_concurrency = 100 })

  it("runs many transfers at once: all arrive before any answer", function()
    for _, id in ipairs(IDS) do slow(t.srv, "/v0.5/batch/jobs/" .. id, 1, 0.3) end
    local handles = {}
    for i, id in ipairs(IDS) do handles[i] = t.client.async:get_job(id) end
    assert.are.equal(#IDS, t.client:pending())
    drive(t.client, handles)
    local reqs, conns, first_answer = t.srv:requests(), {}, math.huge
    local last_arrival = 0
    for _, r in ipairs(reqs) do
      conns[r.conn] = true
      last_arrival = math.max(last_arrival, r.t)
      first_answer = math.min(first_answer, r.t + 0.3)
    end
    assert.are.equal(#IDS, #reqs)
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(#IDS, n) -- one connection each: they overlapped
    assert.is_true(last_arrival < first_answer) -- every request was in before the first answer
  end)

  it("max_concurrency = 100 really runs 100 at once", function()
    local ids = {}
    for i = 1, 100 do ids[i] = "job_many_" .. i end
    t.srv:fault { method = "GET", path_prefix = "/v0.5/batch/jobs/job_many_",
      responses = (function()
        local r = {}
        for i = 1, 100 do r[i] = { delay = 0.5, json = { id = "x", status = "RUNNING" } } end
        return r
      end)() }
    local jobs, errs = t.client:get_jobs(ids)
    assert.are.same({}, errs)
    assert.are.equal(100, #jobs)
    local reqs, conns, last_arrival, first = t.srv:requests(), {}, 0, math.huge
    for _, r in ipairs(reqs) do
      conns[r.conn] = true
      last_arrival, first = math.max(last_arrival, r.t), math.min(first, r.t)
    end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(100, #reqs)
    assert.are.equal(100, n)
    assert.is_true(last_arrival < first + 0.5) -- all 100 in before the first answer
  end)

  it("a client with transfers in flight is kept alive by them", function()
    local h = atai.new({ endpoint = t.srv.endpoint, api_key = t.srv.key }).async:get_job(SEED)
    collectgarbage()
    collectgarbage()
    assert.are.equal(SEED, h:wait().id)
  end)

  it("poll returns the number completed; pending and timeout follow", function()
    local a, b = t.client.async:get_job(SEED), t.client.async:get_job("job_failed")
    assert.are.equal(2, t.client:pending())
    local n = 0
    for _ = 1, 100 do
      n = n + t.client:poll(0.05)
      if n == 2 then break end
    end
    assert.are.equal(2, n)
    assert.is_true(a:done() and b:done())
    assert.are.equal(0, t.client:pending())
    assert.is_nil(t.client:timeout())
    assert.are.equal(0, t.client:poll(0))
  end)

  it("a wait on a Lua handle returns once the callback completing it has run (P.step)", function()
    -- A sleep of 10 s keeps the engine waiting. poll(10) would sit it out,
    -- as the old Op wait sat out a whole 0.1 s slice after its handle had
    -- completed; P.step and the wait return when the callback has run, the
    -- sleep still going (no clock read: it is done only if they waited).
    local long = t.client.async:sleep(10)
    local ran = 0
    local P = require("atai.core.private") -- a test of internals
    P.defer(t.client, false, function() ran = ran + 1 end)
    assert.are.equal(0, P.step(t.client, 10))
    assert.are.equal(1, ran)
    local steps = 0
    local step = P.step
    finally(function() P.step = step end)
    P.step = function(...) steps = steps + 1; return step(...) end
    local handle = require("atai.handle")
    local op = handle.Op.new(t.client, false)
    P.defer(t.client, false, function() handle.complete(op, "done") end)
    assert.are.equal("done", op:wait())
    assert.are.equal(1, steps) -- Op:wait drives the engine with P.step
    assert.is_false(long:done())
    long:cancel()
    assert.has_error(function() P.step(t.client, -1) end)
  end)

  it("poll(0, {budget}) leaves further completions for the next call", function()
    for _, id in ipairs(IDS) do t.client.async:get_job(id) end
    local total, calls = 0, 0
    repeat
      local n = t.client:poll(0.01, { budget = 1e-9 })
      assert.is_true(n <= 1, n) -- the budget is spent after the first completion
      total, calls = total + n, calls + 1
    until total >= #IDS or calls > 500
    assert.are.equal(#IDS, total)
    assert.is_true(calls >= #IDS)
  end)

  it("client:sockets() lists what libcurl watches while a transfer runs", function()
    slow(t.srv, PATH, 1, 0.3)
    local h = t.client.async:get_job(SEED)
    local fds
    for _ = 1, 50 do
      t.client:poll(0.01)
      fds = t.client:sockets()
      if next(fds) then break end
    end
    local fd, what = next(fds)
    assert.is_number(fd)
    assert.is_truthy(what == "r" or what == "w" or what == "rw")
    h:wait()
  end)
end)

describe("max_concurrency", function()
  local t = fake_api({ max_retries = 0, max_concurrency = 2 })

  it("queues the rest in order, never more than 2 at once", function()
    for _, id in ipairs(IDS) do slow(t.srv, "/v0.5/batch/jobs/" .. id, 1, 0.1) end
    local jobs, errs = t.client:get_jobs(IDS)
    for i, id in ipairs(IDS) do
      assert.is_nil(errs[i])
      assert.are.equal(id, jobs[i].id)
    end
    local reqs, conns, position = t.srv:requests(), {}, {}
    for i, r in ipairs(reqs) do
      conns[r.conn] = true
      position[r.path] = i
    end
    -- started in queue order: only the two in flight together (neighbours
    -- in the queue) may reach the server in either order
    for i, id in ipairs(IDS) do
      local at = position["/v0.5/batch/jobs/" .. id]
      assert.is_true(at ~= nil and math.abs(at - i) <= 1, id .. " arrived " .. tostring(at) .. "th")
    end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.is_true(n <= 2, n)
  end)

  it("is accepted by atai.configure and validated", function()
    atai.configure { max_concurrency = 100, api_key = "k" }
    finally(function() atai.configure {} end)
    assert.has_error(function() atai.new { max_concurrency = 0 } end)
    assert.has_error(function() atai.configure { max_concurrency = 1001 } end)
  end)
end)

describe("get_jobs and wait_jobs", function()
  local t = fake_api({ max_retries = 0, max_concurrency = 16 })

  it("get_jobs gives jobs and errors by position", function()
    local jobs, errs = t.client:get_jobs({ SEED, "job_missing", "job_failed" })
    assert.are.equal(SEED, jobs[1].id)
    assert.is_nil(jobs[2])
    assert.are.equal("not_found", errs[2].kind)
    assert.are.equal("FAILED", jobs[3].status)
    local mod_jobs = (function()
      atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
      finally(function() atai.configure {} end)
      return atai.get_jobs({ SEED })
    end)()
    assert.are.equal(SEED, mod_jobs[1].id)
  end)

  it("wait_jobs polls created jobs concurrently until terminal", function()
    local ids = {}
    for i = 1, 3 do
      ids[i] = assert(t.client:create_job { name = (i == 2) and "fail " .. i or "run " .. i,
        pipeline_type = "batch", pipeline_key = "machine-state-classification",
        inputs = { ["worker.inference"] = { { file_id = "a.csv" } } } }).id
    end
    local updates = 0
    local jobs, errs = t.client:wait_jobs(ids, { interval = 0.01, on_update = function() updates = updates + 1 end })
    assert.are.same({}, errs)
    assert.are.equal("COMPLETED", jobs[1].status)
    assert.are.equal("FAILED", jobs[2].status)
    assert.are.equal("COMPLETED", jobs[3].status)
    assert.is_true(updates >= 3)
  end)

  it("wait_jobs' timeout bounds the whole call", function()
    local jobs, errs = t.client:wait_jobs({ "job_running", "job_failed" }, { interval = 0.02, timeout = 0.1 })
    assert.is_nil(jobs[1])
    assert.are.equal("timeout", errs[1].kind)
    assert.are.equal("RUNNING", errs[1].job.status)
    assert.are.equal("FAILED", jobs[2].status)
  end)

  it("async wait_job completes when the job is terminal, calling on_update", function()
    local id = assert(t.client:create_job { name = "async", pipeline_type = "batch",
      pipeline_key = "machine-state-classification" }).id
    local seen = {}
    local h = t.client.async:wait_job(id, { interval = 0.01, on_update = function(j) seen[#seen + 1] = j.status end })
    assert.are.equal(1, t.client:pending())
    local job = h:wait()
    assert.are.equal("COMPLETED", job.status)
    assert.are.equal("COMPLETED", seen[#seen])
    assert.are.equal(0, t.client:pending())
  end)
end)

describe("retries on the engine", function()
  local t = fake_api({ max_retries = 2, retry_backoff = 0.01 })

  it("run on_retry from poll, not from the transfer", function()
    local infos = {}
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, retry_backoff = 0.01,
      on_retry = function(info) infos[#infos + 1] = info end }
    finally(function() c:close() end)
    t.srv:fault { path = PATH, responses = { { status = 503 }, { pass = true } } }
    local h = c.async:get_job(SEED)
    assert.are.equal(0, #infos)
    local job = h:wait()
    assert.are.equal(SEED, job.id)
    assert.are.equal(1, #infos)
    assert.are.equal("server", infos[1].kind)
    assert.are.equal(1, infos[1].attempt)
  end)

  it("a 429 with Retry-After holds every new attempt of the client", function()
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 1 }
    finally(function() c:close() end)
    t.srv:fault { path = PATH, responses = { { status = 429, headers = { ["Retry-After"] = "1" } } } }
    local first = c.async:get_job(SEED)
    while #t.srv:requests() < 1 do c:poll(0.01) end
    c:poll(0.05) -- the 429 arrives; its retry waits out Retry-After
    local second = c.async:get_job("job_failed")
    c:poll(0.2)
    assert.are.equal(1, #t.srv:requests()) -- the new request waits for the rate limit too
    assert.is_true(c:timeout() > 0.5)
    first:cancel()
    second:cancel()
  end)

  it("tostring of a failure after retries names attempts and time", function()
    t.srv:fault { path = PATH, responses = { { status = 503 }, { status = 503 }, { status = 503 } } }
    local job, err = t.client:get_job(SEED)
    assert.is_nil(job)
    assert.are.equal(3, err.attempts)
    assert.is_truthy(tostring(err):find("after 3 attempts in %d+%.%d s"), tostring(err))
  end)
end)

describe("close", function()
  local t = fake_api({ max_retries = 0 })

  it("cancels what is in flight and runs their callbacks inside close", function()
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
    slow(t.srv, PATH, 1, 0.3)
    local h = c.async:get_job(SEED)
    local seen
    h:on_done(function(_, err) seen = err.kind end)
    c:close()
    assert.are.equal("cancelled", seen)
    assert.are.equal("cancelled", select(2, h:result()).kind)
    assert.has_error(function() c:poll(0) end, nil)
  end)

  it("from a callback is deferred until it returns; poll then returns at once", function()
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
    slow(t.srv, "/v0.5/batch/jobs/job_running", 1, 2)
    local slow_h = c.async:get_job("job_running")
    local state
    c.async:get_job(SEED):on_done(function()
      c:close()
      state = tostring(c) -- still open inside the callback
    end)
    local other_err
    slow_h:on_done(function(_, err) other_err = err end)
    c:poll(5)
    assert.is_falsy(state:find("closed", 1, true))
    assert.is_truthy(tostring(c):find("closed", 1, true))
    assert.are.equal("cancelled", other_err.kind)
  end)

  it("ends a wait with kind cancelled", function()
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
    slow(t.srv, "/v0.5/batch/jobs/job_running", 1, 2)
    local slow_h = c.async:get_job("job_running")
    c.async:get_job(SEED):on_done(function() c:close() end)
    local v, err = slow_h:wait()
    assert.is_nil(v)
    assert.are.equal("cancelled", err.kind)
  end)
end)

describe("reentrancy and callback errors", function()
  local t = fake_api({ max_retries = 0 })

  it("a callback may start requests but not block or poll", function()
    local errors, chained = {}, nil
    local h = t.client.async:get_job(SEED)
    h:on_done(function()
      errors[1] = select(2, pcall(t.client.get_job, t.client, SEED))
      errors[2] = select(2, pcall(t.client.poll, t.client, 0))
      errors[3] = select(2, pcall(function() return t.client.async:get_job(SEED):wait() end))
      chained = t.client.async:get_job("job_failed")
    end)
    drive(t.client, { h })
    for i = 1, 3 do
      assert.is_truthy(tostring(errors[i]):find("blocking call inside a callback: use client.async", 1, true),
        tostring(errors[i]))
    end
    assert.are.equal("FAILED", chained:wait().status)
  end)

  it("an error raised by on_done propagates out of poll; the rest go on", function()
    local a, b = t.client.async:get_job(SEED), t.client.async:get_job("job_failed")
    local b_seen
    a:on_done(function() error("boom from on_done") end)
    b:on_done(function(job) b_seen = job.status end)
    local ok, msg
    for _ = 1, 100 do
      ok, msg = pcall(t.client.poll, t.client, 0.05)
      if not ok then break end
    end
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("boom from on_done", 1, true))
    for _ = 1, 100 do
      if b_seen then break end
      t.client:poll(0.05)
    end
    assert.are.equal("FAILED", b_seen)
    assert.is_true(a:done())
    assert.are.equal(SEED, t.client:get_job(SEED).id) -- the engine still works
  end)

  it("a wait_job whose on_update raised is cancelled, the error out of wait", function()
    local h = t.client.async:wait_job("job_running", { interval = 0.01, on_update = function() error("bad update") end })
    local ok, msg = pcall(function() return h:wait() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("bad update", 1, true))
    local v, err = h:result()
    assert.is_nil(v)
    assert.are.equal("cancelled", err.kind)
    assert.are.equal(0, t.client:pending())
  end)
end)

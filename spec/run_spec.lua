-- spec/run_spec.lua: atai.run coroutines (the cosocket model): blocking
-- calls await inside them, on every Lua of make test-all (5.1 and LuaJIT
-- cannot yield across pcall or a for-in iterator: nothing here needs to).
local atai = require("atai")
local fake_api = require("spec.support.fake")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("atai.run", function()
  local t = fake_api({ max_retries = 0 })

  it("runs fn at once until its first await, and completes with its results", function()
    local steps = {}
    local h = atai.run(function(a, b)
      steps[#steps + 1] = "start " .. a
      local job = t.client:get_job(SEED) -- awaits: yields its handle
      steps[#steps + 1] = "got " .. job.id
      return job.status, b
    end, "x", 42)
    assert.are.same({ "start x" }, steps)
    assert.is_false(h:done())
    assert.are.equal(0, t.client:pending()) -- run handles and their requests are not counted
    local status, b = h:wait()
    assert.are.equal("COMPLETED", status)
    assert.are.equal(42, b)
    assert.are.same({ "start x", "got " .. SEED }, steps)
  end)

  it("blocking methods await inside it: lists, pages, collect, find_pipeline, wait_job", function()
    local h = atai.run(function()
      local page = assert(t.client:list_jobs { limit = 2 })
      local all = assert(atai.collect(t.client:each_job { limit = 2 }))
      local p = assert(t.client:find_pipeline("machine-state-classification"))
      local done = assert(t.client:wait_job("job_failed", { interval = 0.01 }))
      local body, meta = t.client:request("GET", "/batch/jobs/queue")
      return #page.jobs, #all, p.pipeline_key, done.status, meta.status, body ~= nil
    end)
    local n_page, n_all, key, status, http, has_body = h:wait()
    assert.are.equal(2, n_page)
    assert.is_true(n_all >= 7)
    assert.are.equal("machine-state-classification", key)
    assert.are.equal("FAILED", status)
    assert.are.equal(200, http)
    assert.is_true(has_body)
  end)

  it("await gives nil, err without raising; sleep pauses without blocking anyone", function()
    local h = atai.run(function()
      local job, err = t.client.async:get_job("job_missing"):await()
      local slept = t.client.async:sleep(0.01):await()
      return job, err.kind, slept
    end)
    local job, kind, slept = h:wait()
    assert.is_nil(job)
    assert.are.equal("not_found", kind)
    assert.is_true(slept)
  end)

  it("several runs interleave on one engine", function()
    local order = {}
    local function worker(name, pause)
      return atai.run(function()
        t.client.async:sleep(pause):await()
        order[#order + 1] = name
        return name
      end)
    end
    local slow, fast = worker("slow", 0.05), worker("fast", 0.01)
    local values = atai.wait_all { slow, fast }
    assert.are.same({ "slow", "fast" }, values)
    assert.are.same({ "fast", "slow" }, order)
  end)

  it("h:wait(seconds) inside a run awaits with a timeout", function()
    t.srv:fault { method = "GET", path = "/v0.5/batch/jobs/" .. SEED, responses = { { delay = 0.3, pass = true } } }
    local h = atai.run(function()
      local inner = t.client.async:get_job(SEED)
      local v, err = inner:wait(0.01)
      local later = inner:wait()
      return v, err.kind, later.id
    end)
    local v, kind, id = h:wait()
    assert.is_nil(v)
    assert.are.equal("pending", kind)
    assert.are.equal(SEED, id)
  end)

  it("an error inside fn propagates out of the wait that resumed it, with fn's traceback", function()
    local h = atai.run(function()
      t.client.async:sleep(0.01):await()
      error("broken inside the run")
    end)
    local ok, msg = pcall(function() return h:wait() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("broken inside the run", 1, true))
    assert.is_truthy(tostring(msg):find("traceback", 1, true))
    local v, err = h:result()
    assert.is_nil(v)
    assert.are.equal("callback", err.kind)
    assert.is_truthy(err.traceback:find("run_spec.lua", 1, true))
  end)

  it("an error before the first await raises from atai.run itself", function()
    local ok, msg = pcall(atai.run, function() error("at once") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("at once", 1, true))
    assert.has_error(function() atai.run("not a function") end)
  end)

  it("cancel stops resuming the coroutine and cancels what it awaits", function()
    local resumed = false
    local inner
    local h = atai.run(function()
      inner = t.client.async:sleep(5)
      inner:await()
      resumed = true
    end)
    h:cancel()
    local v, err = h:result()
    assert.is_nil(v)
    assert.are.equal("cancelled", err.kind)
    assert.is_true(inner:done())
    t.client:poll(0.02)
    assert.is_false(resumed)
  end)

  it("outside a run, await is wait", function()
    local job = t.client.async:get_job(SEED):await()
    assert.are.equal(SEED, job.id)
  end)

  it("a run may be driven by poll alone, as a host loop does", function()
    local got
    atai.run(function() got = t.client:get_job(SEED).id end)
    for _ = 1, 100 do
      if got then break end
      t.client:poll(0.05)
    end
    assert.are.equal(SEED, got)
  end)
end)

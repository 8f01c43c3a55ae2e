-- spec/wait_spec.lua: wait_job and progress.
local atai = require("atai")
local fake_api = require("spec.support.fake")

local MSC = "machine-state-classification"

describe("wait_job", function()
  local t = fake_api({ max_retries = 0 })

  local function create(name)
    return assert(t.client:create_job { name = name, pipeline_type = "batch", pipeline_key = MSC,
      inputs = { ["worker.inference"] = { { file_id = "a.csv" }, { file_id = "b.csv" } } } })
  end

  it("polls until COMPLETED, calling on_update on each change", function()
    local job = create("run")
    local updates = {}
    local final, err = t.client:wait_job(job.id, { interval = 0.01, on_update = function(j)
      updates[#updates + 1] = { status = j.status, progress = atai.progress(j) }
    end })
    assert.is_nil(err)
    assert.are.equal("COMPLETED", final.status)
    assert.is_true(atai.succeeded(final))
    assert.are.equal("COMPLETED", updates[#updates].status)
    assert.are.equal(100, updates[#updates].progress.percent)
    assert.are.equal(2, updates[#updates].progress.done)
    assert.is_true(#updates >= 3)
    for i = 2, #updates do -- every call reports a change
      local a, b = updates[i - 1], updates[i]
      assert.is_false(a.status == b.status and a.progress.done == b.progress.done
        and a.progress.pending == b.progress.pending)
    end
  end)

  it("returns a FAILED job as a result, not an error", function()
    local job = create("this will fail")
    local final, err = t.client:wait_job(job.id, { interval = 0.01 })
    assert.is_nil(err)
    assert.are.equal("FAILED", final.status)
    assert.is_false(atai.succeeded(final))
    assert.are.equal("table", type(final.error))
  end)

  it("returns at once for a job already terminal", function()
    local final = assert(t.client:wait_job("job_cancelled", { interval = 5 }))
    assert.are.equal("CANCELLED", final.status)
    assert.are.equal(1, #t.srv:requests())
  end)

  it("times out with kind timeout and the last job seen", function()
    local final, err = t.client:wait_job("job_running", { interval = 0.02, timeout = 0.15 })
    assert.is_nil(final)
    assert.are.equal("timeout", err.kind)
    assert.are.equal("RUNNING", err.job.status)
    assert.is_true(atai.is_error(err))
    assert.is_truthy(tostring(err):find("job_running", 1, true))
  end)

  it("timeout bounds the whole wait, slow polls included", function()
    t.srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { delay = 3 }, { delay = 3 } } }
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 2, timeout = 60 }
    local final, err = c:wait_job("job_running", { interval = 0.01, timeout = 0.3 })
    c:close()
    assert.is_nil(final)
    assert.are.equal("timeout", err.kind)
    -- a poll cut at the deadline (and at most one more, cut at once):
    -- not 3 attempts of 60 s each
    assert.is_true(#t.srv:requests() <= 2, #t.srv:requests() .. " requests")
  end)

  it("keeps waiting through retryable errors, reporting them to on_error", function()
    local job = create("flaky")
    t.srv:fault { path = "/v0.5/batch/jobs/" .. job.id, responses = {
      { status = 503 }, { close_after_bytes = 5 }, { status = 502 } } }
    local errors = {}
    local final = assert(t.client:wait_job(job.id, { interval = 0.01,
      on_error = function(e) errors[#errors + 1] = e.kind end }))
    assert.are.equal("COMPLETED", final.status)
    assert.are.same({ "server", "network", "server" }, errors)
  end)

  it("ends on a non-retryable error", function()
    local final, err = t.client:wait_job("job_missing", { interval = 0.01 })
    assert.is_nil(final)
    assert.are.equal("not_found", err.kind)
  end)

  it("grows the interval by half up to max_interval, on the engine's timers", function()
    local Async = atai.core.Async
    local real_sleep, slept = Async.sleep, {}
    Async.sleep = function(view, s) slept[#slept + 1] = s; return real_sleep(view, 0) end
    local ok, final = pcall(t.client.wait_job, t.client, create("grow").id, { interval = 0.1, max_interval = 0.2 })
    Async.sleep = real_sleep
    assert.is_true(ok, final)
    assert.are.equal("COMPLETED", final.status)
    assert.are.equal(3, #slept) -- a created job completes on the 4th poll
    assert.are.same({ 0.1, 0.15, 0.2 }, (function()
      local r = {}
      for i, s in ipairs(slept) do r[i] = math.floor(s * 1000 + 0.5) / 1000 end
      return r
    end)())
  end)

  it("is on the module too", function()
    finally(function() atai.configure {} end)
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    local final = assert(atai.wait_job("job_failed", { interval = 0.01 }))
    assert.are.equal("FAILED", final.status)
  end)

  describe("bad arguments raise", function()
    local cases = {
      { { interval = 0 }, "option 'interval'" },
      { { interval = -1 }, "option 'interval'" },
      { { timeout = "10" }, "option 'timeout'" },
      { { on_update = true }, "option 'on_update'" },
      { { every = 1 }, "unknown option 'every'" },
      { "fast", "options table expected" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local ok, msg = pcall(t.client.wait_job, t.client, "job_running", case[1])
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #2 to 'wait_job'", 1, true), msg)
        assert.is_truthy(msg:find(case[2], 1, true), msg)
        assert.are.equal(0, #t.srv:requests())
      end)
    end
  end)
end)

describe("progress", function()
  it("turns input_progress into done/total/percent", function()
    local p = atai.progress { input_progress = { pending = 1, processing = 1, completed = 1, failed = 1 } }
    assert.are.same({ done = 2, total = 4, percent = 50, completed = 1, failed = 1, processing = 1, pending = 1 }, p)
  end)

  it("is nil for a job without input_progress (write-path responses)", function()
    assert.is_nil(atai.progress { id = "job_x", status = "PENDING" })
  end)

  it("is 0 percent when there are no tracked inputs", function()
    assert.are.equal(0, atai.progress({ input_progress = { pending = 0, processing = 0, completed = 0, failed = 0 } }).percent)
  end)

  it("raises on a non-table", function()
    assert.has_error(function() atai.progress("job_x") end)
  end)

  it("succeeded takes a status or a job", function()
    assert.is_true(atai.succeeded("COMPLETED"))
    assert.is_false(atai.succeeded({ status = "FAILED" }))
    assert.has_error(function() atai.succeeded(3) end)
  end)
end)

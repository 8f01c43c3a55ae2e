-- spec/h2_spec.lua: atai over HTTP/2 and TLS, against a local nginx
-- (spec/support/h2_server.lua) with a throw-away CA: HTTP/2 is negotiated,
-- verification stays on, and concurrent calls share one multiplexed
-- connection, as the server's access log shows. Pending when nginx is not
-- installed (make deps DEPS_EXTRA=nginx).
local atai = require("atai")
local h2 = require("spec.support.h2_server")

describe("HTTP/2 over TLS", function()
  local available, why = h2.available()
  if not available then
    pending("HTTP/2 specs skipped: " .. why)
    return
  end
  local srv

  setup(function() srv = assert(h2.start()) end)
  teardown(function() if srv then srv:stop() end end)

  it("gets a job over HTTP/2 with ca_file trusting the CA", function()
    local before = #srv:log()
    local c = atai.new { endpoint = srv.endpoint, api_key = "k", ca_file = srv.ca }
    local job, err = c:get_job("job_h2_one")
    c:close()
    assert.is_nil(err)
    assert.are.equal("job_h2_one", job.id)
    assert.are.equal("COMPLETED", job.status)
    local log = srv:log_since(before, 1)
    assert.are.equal(1, #log)
    assert.are.equal("HTTP/2.0", log[1].protocol)
    assert.are.equal("/v0.5/batch/jobs/job_h2_one", log[1].uri)
    assert.are.equal(200, log[1].status)
  end)

  it("fails with kind network when the CA is not trusted (verification on)", function()
    local before = #srv:log()
    local c = atai.new { endpoint = srv.endpoint, api_key = "k" }
    local job, err = c:get_job("job_h2_untrusted")
    c:close()
    assert.is_nil(job)
    assert.are.equal("network", err.kind)
    assert.is_false(err.retryable)
    assert.is_truthy(err.message:lower():find("certificate", 1, true), err.message)
    assert.are.equal(0, #srv:log_since(before)) -- no request got through
  end)

  it("multiplexes 100 concurrent get_jobs on at most 2 connections", function()
    local ids = {}
    for i = 1, 100 do ids[i] = ("job_h2_%03d"):format(i) end
    local before = #srv:log()
    local c = atai.new { endpoint = srv.endpoint, api_key = "k", ca_file = srv.ca, max_concurrency = 100 }
    local jobs, errs = c:get_jobs(ids)
    c:close()
    for i = 1, 100 do
      assert.is_nil(errs and errs[i])
      assert.are.equal(ids[i], jobs[i].id)
    end
    local log = srv:log_since(before, 100)
    assert.are.equal(100, #log)
    for _, entry in ipairs(log) do assert.are.equal("HTTP/2.0", entry.protocol) end
    assert.is_true(srv:connections(log) <= 2, srv:connections(log) .. " connections")
  end)
end)

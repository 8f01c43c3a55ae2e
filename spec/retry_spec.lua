-- spec/retry_spec.lua: retries of get_job, backoff and Retry-After.
local atai = require("atai")
local server = require("spec.support.server")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local PATH = "/v0.5/batch/jobs/" .. SEED

describe("retries", function()
  local srv, client, retries

  local function new_client(opts)
    opts = opts or {}
    opts.endpoint = opts.endpoint or srv.endpoint
    opts.api_key = srv.key
    opts.retry_backoff = opts.retry_backoff or 0.01
    opts.on_retry = opts.on_retry or function(info) retries[#retries + 1] = info end
    return atai.new(opts)
  end

  setup(function()
    srv = server.start()
    client = nil
  end)
  teardown(function() srv:stop() end)
  before_each(function()
    srv:reset()
    retries = {}
    client = new_client()
  end)
  after_each(function() client:close() end)

  it("503, 503, 200 succeeds on the third attempt", function()
    srv:fault { path = PATH, responses = { { status = 503 }, { status = 503 }, { pass = true } } }
    local job, err = client:get_job(SEED)
    assert.is_nil(err)
    assert.are.equal(SEED, job.id)
    assert.are.equal(3, #srv:requests())
    assert.are.equal(2, #retries)
    assert.are.equal(1, retries[1].attempt)
    assert.are.equal(2, retries[2].attempt)
    assert.are.equal("server", retries[1].kind)
    assert.are.equal(503, retries[1].status)
    assert.are.equal("GET", retries[1].method)
  end)

  it("gives up after max_retries (default 2), saying how many attempts", function()
    srv:fault { path = PATH, responses = { { status = 503 }, { status = 503 }, { status = 503 }, { status = 503 } } }
    local job, err = client:get_job(SEED)
    assert.is_nil(job)
    assert.are.equal("server", err.kind)
    assert.are.equal(3, err.attempts)
    assert.is_true(err.retryable)
    assert.are.equal(3, #srv:requests())
  end)

  it("max_retries = 0 makes one attempt", function()
    local once = new_client { max_retries = 0 }
    srv:fault { path = PATH, responses = { { status = 503 } } }
    local _, err = once:get_job(SEED)
    once:close()
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, #srv:requests())
  end)

  for _, status in ipairs({ 408, 429, 500, 502, 503, 504 }) do
    it("retries HTTP " .. status, function()
      srv:fault { path = PATH, responses = { { status = status }, { pass = true } } }
      assert(client:get_job(SEED))
      assert.are.equal(2, #srv:requests())
    end)
  end

  for _, status in ipairs({ 400, 401, 403, 404, 409, 413, 422, 501 }) do
    it("does not retry HTTP " .. status, function()
      srv:fault { path = PATH, responses = { { status = status }, { pass = true } } }
      local _, err = client:get_job(SEED)
      assert.are.equal(status, err.status)
      assert.are.equal(1, err.attempts)
      assert.is_false(err.retryable)
      assert.are.equal(1, #srv:requests())
    end)
  end

  it("retries a timeout", function()
    local quick = new_client { timeout = 0.3 }
    srv:fault { path = PATH, responses = { { delay = 1.5 }, { pass = true } } }
    local job, err = quick:get_job(SEED)
    quick:close()
    assert.is_nil(err)
    assert.are.equal(SEED, job.id)
    assert.are.equal("timeout", retries[1].kind)
  end)

  it("retries a connection closed mid-body", function()
    srv:fault { path = PATH, responses = { { close_after_bytes = 5 }, { pass = true } } }
    assert(client:get_job(SEED))
    assert.are.equal("network", retries[1].kind)
  end)

  it("retries a refused connection, then reports network", function()
    local dead = new_client { endpoint = "http://127.0.0.1:1/v0.5" }
    local _, err = dead:get_job(SEED)
    dead:close()
    assert.are.equal("network", err.kind)
    assert.are.equal(3, err.attempts)
    assert.are.equal(2, #retries)
  end)

  it("does not retry a decode error", function()
    srv:fault { path = PATH, responses = { { status = 200, body = "not json" }, { pass = true } } }
    local _, err = client:get_job(SEED)
    assert.are.equal("decode", err.kind)
    assert.are.equal(1, #srv:requests())
  end)

  it("backs off exponentially with jitter, capped at retry_backoff_max", function()
    local c = new_client { retry_backoff = 0.02, retry_backoff_max = 0.05, max_retries = 4 }
    srv:fault { path = PATH, responses = { { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 }, { pass = true } } }
    assert(c:get_job(SEED))
    c:close()
    local caps = { 0.02, 0.04, 0.05, 0.05 }
    assert.are.equal(4, #retries)
    for i, info in ipairs(retries) do
      assert.is_true(info.delay >= caps[i] / 2 - 1e-9 and info.delay <= caps[i] + 1e-9,
        ("retry %d waited %g, expected within [%g, %g]"):format(i, info.delay, caps[i] / 2, caps[i]))
    end
  end)

  it("uses the default backoff of 0.5 s doubling", function()
    local seen
    local c = atai.new { endpoint = srv.endpoint, api_key = srv.key,
      on_retry = function(info) seen = info; error("stop here") end }
    srv:fault { path = PATH, responses = { { status = 500 } } }
    local ok, msg = pcall(c.get_job, c, SEED)
    c:close()
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("stop here", 1, true))
    assert.is_true(seen.delay >= 0.25 and seen.delay <= 0.5, tostring(seen.delay))
  end)

  describe("Retry-After", function()
    -- on_retry raises to stop before the wait: the delay is read, not slept.
    local function first_delay(headers)
      local seen
      local c = new_client { on_retry = function(info) seen = info; error("stop") end }
      srv:fault { path = PATH, responses = { { status = 429, headers = headers } } }
      pcall(c.get_job, c, SEED)
      c:close()
      return seen and seen.delay
    end

    it("in seconds is honoured", function()
      assert.are.equal(7, first_delay { ["Retry-After"] = "7" })
    end)

    it("as an HTTP-date is honoured", function()
      local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30)
      local d = first_delay { ["Retry-After"] = when }
      assert.is_true(d >= 28 and d <= 31, tostring(d))
    end)

    it("is capped at 60 seconds", function()
      assert.are.equal(60, first_delay { ["Retry-After"] = "3600" })
    end)

    it("in the past means no wait", function()
      assert.are.equal(0, first_delay { ["Retry-After"] = "Mon, 01 Jan 2001 00:00:00 GMT" })
    end)

    for _, bad in ipairs({ "soon", "1e1", "0x10", "inf", "-5" }) do
      it("that is not digits or an HTTP-date (" .. bad .. ") falls back to backoff", function()
        local d = first_delay { ["Retry-After"] = bad }
        assert.is_true(d > 0 and d <= 0.01, tostring(d))
      end)
    end

    it("is waited out on the engine's clock, then the retry succeeds", function()
      -- the injectable clock: a 1 s Retry-After takes 10 ms here, while
      -- on_retry still reports the server's 1 s
      require("atai.core.private").time_scale(client, 0.01)
      finally(function() require("atai.core.private").time_scale(client, 1) end)
      srv:fault { path = PATH, responses = { { status = 503, headers = { ["Retry-After"] = "1" } }, { pass = true } } }
      assert(client:get_job(SEED))
      assert.are.equal(1, retries[1].delay)
      assert.are.equal(1, #retries)
      local reqs = srv:requests()
      assert.are.equal(2, #reqs)
      assert.is_true(reqs[2].t - reqs[1].t < 0.9) -- not the real second
    end)

    it("is reported on the error when retries run out", function()
      local c = new_client { max_retries = 0 }
      srv:fault { path = PATH, responses = { { status = 429, headers = { ["Retry-After"] = "12" } } } }
      local _, err = c:get_job(SEED)
      c:close()
      assert.are.equal("rate_limited", err.kind)
      assert.are.equal(12, err.retry_after)
    end)
  end)
end)

describe("on_retry", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)

  it("of a blocking call may make blocking calls; a close from it is deferred", function()
    local client
    local results = {}
    -- a long backoff: the close, applied once on_retry returns, finds the
    -- call waiting for its retry (it is never waited out)
    client = atai.new { endpoint = srv.endpoint, api_key = srv.key, retry_backoff = 5,
      on_retry = function()
        results[#results + 1] = { pcall(client.get_job, client, SEED) }
        results[#results + 1] = { pcall(client.close, client) }
        results[#results + 1] = tostring(client) -- not closed yet: deferred
      end }
    srv:fault { path = PATH, responses = { { status = 503 }, { pass = true } } }
    local job, err = client:get_job(SEED)
    assert.is_true(results[1][1])
    assert.are.equal(SEED, results[1][2].id) -- the nested blocking call worked
    assert.is_true(results[2][1])
    assert.is_falsy(results[3]:find("closed", 1, true))
    -- once on_retry returned, the close cancelled the call in flight
    assert.is_nil(job)
    assert.are.equal("cancelled", err.kind)
    assert.is_truthy(tostring(client):find("closed", 1, true))
  end)

  it("an error it raises propagates, and the client stays usable", function()
    local client = atai.new { endpoint = srv.endpoint, api_key = srv.key,
      on_retry = function() error("from the hook") end }
    srv:fault { path = PATH, responses = { { status = 503 } } }
    local ok, msg = pcall(client.get_job, client, SEED)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("from the hook", 1, true))
    assert(client:get_job(SEED))
    client:close()
  end)
end)

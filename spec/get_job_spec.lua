-- spec/get_job_spec.lua: atai.get_job / client:get_job against the fake API.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("get_job", function()
  local t = fake_api()

  it("returns the job as plain Lua tables", function()
    local job, err = t.client:get_job(SEED)
    assert.is_nil(err)
    assert.are.equal(SEED, job.id)
    assert.are.equal("COMPLETED", job.status)
    assert.are.equal("machine-state-classification", job.pipeline_key)
    assert.are.equal("omega_1_4_base", job.parameters.worker.config.model_type)
    assert.are.same({ "xmeas_1", "xmeas_2", "xmv_11" },
      job.parameters.worker.config.reader_config.data_columns)
    assert.are.equal(false, job.parameters.worker.config.classifier_config.normalize_embeddings)
    assert.are.same({ pending = 0, processing = 0, completed = 1, failed = 0 }, job.input_progress)
    assert.is_nil(getmetatable(job))
  end)

  it("sends GET /v0.5/batch/jobs/{id} with the key, Accept and a User-Agent", function()
    assert(t.client:get_job(SEED))
    local req = t.srv:requests()[1]
    assert.are.equal("GET", req.method)
    assert.are.equal("/v0.5/batch/jobs/" .. SEED, req.path)
    assert.are.equal("ok", req.auth)
    assert.are.equal("application/json", req.headers["accept"])
    assert.is_truthy(req.headers["accept-encoding"]:find("gzip", 1, true))
    local ua = req.headers["user-agent"]
    local lua_version = (rawget(_G, "jit") and jit.version) or _VERSION
    assert.are.equal(("atai-lua/%s libcurl/%s %s")
      :format(atai.VERSION, atai.core.version_info().curl_version, lua_version), ua)
  end)

  it("drops null members and keeps the rest", function()
    local job = assert(t.client:get_job(SEED))
    assert.is_nil(job.failed_at)
    assert.is_nil(job.cancelled_at)
    assert.is_nil(job.queue_position)
    assert.is_nil(job.error)
    assert.are.equal("2026-04-14T10:15:00Z", job.completed_at)
  end)

  it("decodes integral numbers as integers where Lua has them", function()
    local job = assert(t.client:get_job(SEED))
    assert.are.equal(0, job.retry_count)
    assert.are.equal(32, job.parameters.worker.config.batch_size)
    if util.has_integers then
      assert.are.equal("integer", math.type(job.retry_count))
      assert.are.equal("integer", math.type(job.input_progress.completed))
    end
    local nums = assert(t.client:get_job("job_numbers")).parameters
    assert.are.equal(0, nums.zero)
    assert.are.equal(-1, nums.minus_one)
    assert.are.equal(1.5, nums.one_and_half)
    assert.are.equal(1000, nums.exp_thousand)
    assert.are.equal(2, nums.two_float)
    assert.are.equal(1e300, nums.huge)
    assert.are.equal(2 ^ 53, nums.two_pow_53)
    if util.has_integers then
      assert.are.equal("integer", math.type(nums.zero))
      assert.are.equal("integer", math.type(nums.minus_one))
      assert.are.equal("float", math.type(nums.one_and_half))
      assert.are.equal("integer", math.type(nums.exp_thousand))
      assert.are.equal("float", math.type(nums.two_pow_53)) -- may be 2^53 + 1 rounded
      assert.are.equal("float", math.type(nums.beyond_2_53))
      assert.are.equal("float", math.type(nums.huge))
    end
  end)

  it("keeps every byte of strings: UTF-8, escapes and surrogate pairs", function()
    local job = assert(t.client:get_job("job_unicode"))
    assert.are.equal("Gr\195\188\195\159e, \230\151\165\230\156\172, emoji \240\159\154\128", job.name)
    assert.are.equal('say "hi"\\path\\to\nline two\ttab \195\169 / slash', job.parameters.note)
    assert.are.equal("\195\133ngstr\195\182m \226\152\131 \240\159\154\128", job.parameters.unicode)
  end)

  it("turns a null array element into atai.null, keeping positions", function()
    local job = assert(t.client:get_job("job_unicode"))
    local tags = job.parameters.tags
    assert.are.equal(3, #tags)
    assert.are.equal("a", tags[1])
    assert.are.equal(atai.null, tags[2])
    assert.are.equal("b", tags[3])
    local list = assert(t.client:get_job("job_numbers")).parameters.list
    assert.are.equal(9, #list)
    if util.has_integers then
      assert.are.equal("float", math.type(list[3]))
      assert.are.equal("integer", math.type(list[2]))
      assert.are.equal("float", math.type(list[4]))
    end
  end)

  it("reuses one connection: 50 calls, at most 2 connections", function()
    for _ = 1, 50 do assert(t.client:get_job(SEED)) end
    local stats = t.srv:stats()
    assert.are.equal(50, #stats.requests)
    assert.is_true(stats.connections <= 2, "connections: " .. stats.connections)
  end)

  it("decodes gzip-encoded bodies", function()
    t.srv:fault { path = "/v0.5/batch/jobs/" .. SEED, responses = { { gzip = true } } }
    local job, err = t.client:get_job(SEED)
    assert.is_nil(err)
    assert.are.equal(SEED, job.id)
    assert.is_true(t.srv:requests()[1].gzip)
  end)

  it("is also a function on the module, using the default client", function()
    finally(function() atai.configure {} end)
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    local job, err = atai.get_job(SEED)
    assert.is_nil(err)
    assert.are.equal(SEED, job.id)
  end)

  it("takes per-call options: timeout and max_retries", function()
    t.srv:fault { path = "/v0.5/batch/jobs/" .. SEED, responses = { { delay = 1 }, { status = 503 }, { status = 503 } } }
    local _, err = t.client:get_job(SEED, { timeout = 0.2, max_retries = 0 })
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, err.attempts)
    _, err = t.client:get_job(SEED, { max_retries = 1 })
    assert.are.equal(503, err.status)
    assert.are.equal(2, err.attempts)
    for _, bad in ipairs({ "fast", { timeout = 0 }, { timeout = "1" }, { max_retries = -1 }, { max_retries = 0.5 } }) do
      local ok, msg = pcall(t.client.get_job, t.client, SEED, bad)
      assert.is_false(ok)
      assert.is_truthy(msg:find("bad argument #2 to 'get_job'", 1, true), msg)
    end
  end)

  describe("bad arguments raise before any request", function()
    local cases = {
      { "no id", {}, "id: string expected, got no value" },
      { "a number", { 42 }, "id: string expected, got number" },
      { "a table", { {} }, "id: string expected, got table" },
      { "an empty string", { "" }, "id: must not be empty" },
      { "129 bytes", { ("a"):rep(129) }, "id: longer than 128 bytes" },
      { "a slash", { "job/../x" }, "id: invalid byte at position 4" },
      { "a space", { "job x" }, "id: invalid byte at position 4" },
      { "a percent", { "job%2F" }, "id: invalid byte at position 4" },
      { "a NUL byte", { "job\0x" }, "id: invalid byte at position 4" },
      { "non-ASCII", { "j\195\182b" }, "id: invalid byte at position 2" },
      { "the reserved word queue", { "queue" }, "'queue' is a reserved path" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local args = case[2]
        local ok, msg = pcall(function() return t.client:get_job(args[1]) end)
        if #args == 0 then ok, msg = pcall(function() return t.client:get_job() end) end
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #1 to 'get_job'", 1, true), msg)
        assert.is_truthy(msg:find(case[3], 1, true), msg)
        ok, msg = pcall(function() return atai.get_job(args[1]) end)
        if #args == 0 then ok, msg = pcall(function() return atai.get_job() end) end
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #1 to 'get_job'", 1, true), msg)
        assert.are.equal(0, #t.srv:requests())
      end)
    end

    it("accepts 128 bytes", function()
      local _, err = t.client:get_job(("a"):rep(128))
      assert.are.equal("not_found", err.kind)
    end)

    it("a closed client", function()
      local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
      c:close()
      c:close() -- idempotent
      local ok, msg = pcall(function() return c:get_job(SEED) end)
      assert.is_false(ok)
      assert.is_truthy(msg:find("closed atai client", 1, true), msg)
      assert.is_truthy(tostring(c):find("closed", 1, true))
    end)
  end)
end)

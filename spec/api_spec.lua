-- spec/api_spec.lua: every Batch API endpoint function.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local MSC = "machine-state-classification"

describe("batch API", function()
  local t = fake_api()

  local function last_request() local r = t.srv:requests(); return r[#r] end

  describe("list_jobs", function()
    it("returns a page: total, offset, limit and jobs", function()
      local page = assert(t.client:list_jobs { limit = 3 })
      assert.are.equal(3, page.limit)
      assert.are.equal(0, page.offset)
      assert.are.equal(7, page.total)
      assert.are.equal(3, #page.jobs)
      assert.are.equal("string", type(page.jobs[1].id))
    end)

    it("sends its filters as the query", function()
      local page = assert(t.client:list_jobs { status = "RUNNING", pipeline_type = "batch", q = "tep", offset = 0, limit = 5 })
      local q = util.parse_query(last_request().query)
      assert.are.same({ "RUNNING" }, q.status)
      assert.are.same({ "batch" }, q.pipeline_type)
      assert.are.same({ "tep" }, q.q)
      assert.are.same({ "5" }, q.limit)
      for _, job in ipairs(page.jobs) do assert.are.equal("RUNNING", job.status) end
    end)

    it("works with no filter, on the module too", function()
      finally(function() atai.configure {} end)
      atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
      assert.are.equal(7, assert(atai.list_jobs()).total)
    end)
  end)

  describe("create_job", function()
    local spec = {
      name = "tep run", pipeline_type = "batch", pipeline_key = MSC, pipeline_version = "1.1.1",
      inputs = {
        ["worker.inference"] = { { file_id = "tep_inference.csv" } },
        ["worker.n_shots"] = { { file_id = "normal.csv", metadata = { class = "normal" } } },
      },
      parameters = { worker = { parallelism = 1, config = { window_size = 64, data_columns = { "a", "b" } } } },
    }

    it("POSTs the spec as JSON and returns the PENDING job", function()
      local job, err = t.client:create_job(spec)
      assert.is_nil(err)
      assert.are.equal("PENDING", job.status)
      assert.is_truthy(job.id:match("^job_"))
      assert.is_nil(job.input_progress)
      local req = last_request()
      assert.are.equal("POST", req.method)
      assert.are.equal("/v0.5/batch/jobs", req.path)
      local sent = require("cjson").decode(req.body)
      assert.are.equal("tep run", sent.name)
      assert.are.equal("normal", sent.inputs["worker.n_shots"][1].metadata.class)
      assert.are.equal(64, sent.parameters.worker.config.window_size)
      assert.are.equal(1, #t.srv:requests())
    end)

    it("keeps an empty input list a JSON array", function()
      assert(t.client:create_job { name = "n", pipeline_type = "batch", pipeline_key = MSC, inputs = { ["worker.inference"] = {} } })
      assert.is_truthy(last_request().body:find('"worker.inference":[]', 1, true))
    end)

    it("is never retried once sent: 503, timeout, cut connection", function()
      for _, fault in ipairs({ { status = 503 }, { close_after_bytes = 2 }, { close = true } }) do
        t.srv:reset()
        t.srv:fault { method = "POST", path = "/v0.5/batch/jobs", responses = { fault } }
        local job, err = t.client:create_job(spec)
        assert.is_nil(job)
        assert.are.equal(1, err.attempts)
        assert.are.equal(1, #t.srv:requests())
      end
      local quick = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, timeout = 0.2 }
      t.srv:reset()
      t.srv:fault { method = "POST", path = "/v0.5/batch/jobs", responses = { { delay = 1 } } }
      local _, err = quick:create_job(spec)
      quick:close()
      assert.are.equal("timeout", err.kind)
      assert.are.equal(1, err.attempts)
    end)

    it("is retried when the connection was refused (nothing sent)", function()
      local dead = atai.new { endpoint = "http://127.0.0.1:1/v0.5", api_key = "k", retry_backoff = 0.01 }
      local _, err = dead:create_job(spec)
      dead:close()
      assert.are.equal("network", err.kind)
      assert.are.equal(3, err.attempts)
    end)

    it("reports the API's validation error", function()
      local _, err = t.client:create_job { name = "x", pipeline_type = "batch", pipeline_key = "no-such-pipeline" }
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal(422, err.status)
    end)

    local bad = {
      { "no spec", nil, "spec table expected" },
      { "missing name", { pipeline_type = "batch", pipeline_key = MSC }, "spec.name is required" },
      { "missing pipeline_type", { name = "n", pipeline_key = MSC }, "spec.pipeline_type is required" },
      { "missing pipeline_key", { name = "n", pipeline_type = "batch" }, "spec.pipeline_key is required" },
      { "empty name", { name = "", pipeline_type = "batch", pipeline_key = MSC }, "spec.name: non-empty string" },
      { "numeric version", { name = "n", pipeline_type = "batch", pipeline_key = MSC, pipeline_version = 1 }, "spec.pipeline_version" },
      { "unknown field", { name = "n", pipeline_type = "batch", pipeline_key = MSC, priority = 1 }, "unknown field spec.priority" },
      { "inputs not a table", { name = "n", pipeline_type = "batch", pipeline_key = MSC, inputs = "a.csv" }, "spec.inputs: table expected" },
      { "input without file_id", { name = "n", pipeline_type = "batch", pipeline_key = MSC, inputs = { p = { { id = "x" } } } },
        "spec.inputs[p][1]" },
      { "input list as a map", { name = "n", pipeline_type = "batch", pipeline_key = MSC, inputs = { p = { a = { file_id = "x" } } } },
        "list of files expected" },
      { "parameters not a table", { name = "n", pipeline_type = "batch", pipeline_key = MSC, parameters = 3 }, "spec.parameters: table expected" },
      { "parameters with a function", { name = "n", pipeline_type = "batch", pipeline_key = MSC, parameters = { f = print } },
        "request body: cannot encode a function" },
    }
    for _, case in ipairs(bad) do
      it("raises before sending: " .. case[1], function()
        local ok, msg = pcall(t.client.create_job, t.client, case[2])
        assert.is_false(ok)
        assert.is_truthy(tostring(msg):find(case[3], 1, true), msg)
        assert.are.equal(0, #t.srv:requests())
      end)
    end

    it("names create_job in its argument errors", function()
      local ok, msg = pcall(atai.create_job, { name = "n" })
      assert.is_false(ok)
      assert.is_truthy(msg:find("bad argument #1 to 'create_job'", 1, true), msg)
    end)
  end)

  describe("cancel_job", function()
    it("cancels a running job: {id, status, cancelled_at}", function()
      local res = assert(t.client:cancel_job("job_running"))
      assert.are.equal("job_running", res.id)
      assert.are.equal("CANCELLED", res.status)
      assert.are.equal("string", type(res.cancelled_at))
      assert.are.equal("/v0.5/batch/jobs/job_running/cancel", last_request().path)
      assert.are.equal("CANCELLED", assert(t.client:get_job("job_running")).status)
    end)

    it("accepts the full job body too", function()
      t.srv:config { full_write_bodies = true }
      local res = assert(t.client:cancel_job("job_pending"))
      assert.are.equal("CANCELLED", res.status)
      assert.are.equal("job_pending", res.id)
      assert.is_nil(res.input_progress)
      assert.are.equal("string", type(res.pipeline_key))
    end)

    it("is a conflict on a terminal job, with the API's message", function()
      local res, err = t.client:cancel_job(SEED)
      assert.is_nil(res)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(409, err.status)
      assert.is_truthy(err.message:find("COMPLETED", 1, true), err.message)
      assert.are.equal(1, #t.srv:requests())
    end)

    it("is not retried on 503", function()
      t.srv:fault { method = "POST", path = "/v0.5/batch/jobs/job_running/cancel", responses = { { status = 503 } } }
      local _, err = t.client:cancel_job("job_running")
      assert.are.equal(1, err.attempts)
    end)
  end)

  describe("retry_job", function()
    it("re-queues a FAILED job: {id, status, retry_count}", function()
      local res = assert(t.client:retry_job("job_failed"))
      assert.are.equal("PENDING", res.status)
      assert.are.equal(1, res.retry_count)
    end)

    it("accepts the full job body too", function()
      t.srv:config { full_write_bodies = true }
      local res = assert(t.client:retry_job("job_cancelled"))
      assert.are.equal("PENDING", res.status)
      assert.are.equal("string", type(res.created_at))
    end)

    it("is a conflict on a COMPLETED job", function()
      local _, err = t.client:retry_job(SEED)
      assert.are.equal("conflict", err.kind)
    end)
  end)

  describe("delete_job", function()
    it("deletes, then the job is not found", function()
      local res = assert(t.client:delete_job("job_cancelled"))
      assert.are.same({ id = "job_cancelled", deleted = true }, res)
      assert.are.equal("DELETE", last_request().method)
      local _, err = t.client:get_job("job_cancelled")
      assert.are.equal("not_found", err.kind)
    end)

    it("is not retried on 503", function()
      t.srv:fault { method = "DELETE", path = "/v0.5/batch/jobs/job_cancelled", responses = { { status = 503 } } }
      local _, err = t.client:delete_job("job_cancelled")
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #t.srv:requests())
    end)
  end)

  it("queue: depth per pipeline type", function()
    local q = assert(t.client:queue())
    assert.are.equal("/v0.5/batch/jobs/queue", last_request().path)
    assert.are.equal("batch", q.queues[1].pipeline_type)
    assert.are.equal("number", type(q.queues[1].depth))
  end)

  it("job_events: a page, filtered by level", function()
    local page = assert(t.client:job_events(SEED, { level = "SUCCESS", limit = 10 }))
    assert.are.equal(SEED, page.job_id)
    assert.is_true(#page.events > 0)
    for _, e in ipairs(page.events) do assert.are.equal("SUCCESS", e.level) end
    assert.are.same({ "SUCCESS" }, util.parse_query(last_request().query).level)
  end)

  it("job_progress: entries with metrics", function()
    local page = assert(t.client:job_progress(SEED))
    assert.are.equal(3, page.total)
    assert.are.equal(50, page.entries[2].metrics.percent_complete)
    assert.is_nil(page.entries[2].input_id) -- null member: absent
  end)

  it("job_inputs: filtered by status", function()
    local page = assert(t.client:job_inputs(SEED, { status = "completed" }))
    assert.are.equal(1, #page.inputs)
    assert.are.equal("completed", page.inputs[1].status)
    assert.are.equal("tep_inference.csv", page.inputs[1].data.filename)
  end)

  it("job_inputs_progress: repeated status, order", function()
    local page = assert(t.client:job_inputs_progress("job_running", { status = { "processing", "pending" }, order = "desc", limit = 20 }))
    local q = util.parse_query(last_request().query)
    assert.are.same({ "processing", "pending" }, q.status)
    assert.are.same({ "desc" }, q.order)
    for _, item in ipairs(page.items) do
      assert.is_truthy(item.input.status == "processing" or item.input.status == "pending")
    end
  end)

  it("job_input_counts: per-status counts, port-scoped", function()
    local counts = assert(t.client:job_input_counts("job_running", { port_name = "worker.inference" }))
    assert.are.equal("job_running", counts.job_id)
    assert.are.equal(2, counts.completed)
    assert.are.same({ "worker.inference" }, util.parse_query(last_request().query).port_name)
  end)

  describe("job_input_traces", function()
    it("returns points and the ETag; with the ETag, not modified", function()
      local traces = assert(t.client:job_input_traces(SEED, { buckets = 50 }))
      assert.is_false(traces.not_modified)
      assert.are.equal("string", type(traces.etag))
      assert.are.equal(3, #traces.points)
      assert.are.same({ "50" }, util.parse_query(last_request().query).buckets)
      local again = assert(t.client:job_input_traces(SEED, { buckets = 50, etag = traces.etag }))
      assert.is_true(again.not_modified)
      assert.are.equal(traces.etag, again.etag)
      assert.are.equal(traces.etag, last_request().headers["if-none-match"])
    end)

    it("a stale ETag gets the full body", function()
      local traces = assert(t.client:job_input_traces(SEED, { etag = '"stale"' }))
      assert.is_false(traces.not_modified)
      assert.are.equal(3, #traces.points)
    end)

    it("raises on a bad buckets or etag", function()
      assert.has_error(function() t.client:job_input_traces(SEED, { buckets = 0 }) end)
      assert.has_error(function() t.client:job_input_traces(SEED, { buckets = 1.5 }) end)
      assert.has_error(function() t.client:job_input_traces(SEED, { etag = 5 }) end)
    end)
  end)

  it("job_outputs: presigned URLs, paged", function()
    local page = assert(t.client:job_outputs(SEED, { limit = 10, offset = 20 }))
    assert.are.equal(25, page.total)
    assert.are.equal(5, #page.outputs)
    assert.is_truthy(page.outputs[1].data.ref:match("^https://"))
  end)

  describe("registry", function()
    it("pipelines: a filtered page", function()
      local page = assert(t.client:pipelines { pipeline_type = "batch", limit = 5 })
      assert.are.equal(5, page.limit)
      for _, p in ipairs(page.pipelines) do assert.are.equal("batch", p.pipeline_type) end
    end)

    it("pipeline and pipeline_schema by id", function()
      local found = assert(t.client:find_pipeline(MSC))
      local p = assert(t.client:pipeline(found.id))
      assert.are.equal(MSC, p.pipeline_key)
      local schema = assert(t.client:pipeline_schema(found.id))
      assert.are.equal(found.id, schema.id)
      assert.are.equal("table", type(schema.user_schema))
      local _, err = t.client:pipeline("ppl_missing")
      assert.are.equal("not_found", err.kind)
    end)

    it("find_pipeline matches pipeline_key across pages", function()
      local p = assert(t.client:find_pipeline(MSC, { limit = 2 }))
      assert.are.equal(MSC, p.pipeline_key)
      assert.is_true(#t.srv:requests() >= 1)
    end)

    it("find_pipeline: not_found for an unknown key", function()
      local p, err = t.client:find_pipeline("no-such-key")
      assert.is_nil(p)
      assert.are.equal("not_found", err.kind)
      assert.is_truthy(err.message:find("no-such-key", 1, true))
    end)

    it("find_pipeline raises on a bad key", function()
      assert.has_error(function() t.client:find_pipeline(nil) end)
      assert.has_error(function() t.client:find_pipeline("") end)
    end)
  end)

  describe("writes retry only what cannot have reached the server", function()
    for _, fname in ipairs({ "cancel_job", "retry_job", "delete_job" }) do
      it(fname .. ": a refused connection is retried, a 503 is not", function()
        local dead = atai.new { endpoint = "http://127.0.0.1:1/v0.5", api_key = "k", retry_backoff = 0.01 }
        local _, err = dead[fname](dead, "job_running")
        dead:close()
        assert.are.equal("network", err.kind)
        assert.are.equal(3, err.attempts)
        t.srv:fault { path_prefix = "/v0.5/batch/jobs/job_running", responses = { { status = 503 } } }
        _, err = t.client[fname](t.client, "job_running")
        assert.are.equal(503, err.status)
        assert.are.equal(1, err.attempts)
      end)
    end
  end)

  it("argument errors point at the caller's line, not into atai", function()
    local ok, msg = pcall(function() t.client:job_events(42) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("api_spec.lua:%d+: bad argument #1 to 'job_events'"), msg)
    ok, msg = pcall(function() t.client:create_job({}) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("api_spec.lua:%d+: bad argument #1 to 'create_job'"), msg)
    ok, msg = pcall(function() atai.find_pipeline(5) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("api_spec.lua:%d+: bad argument #1 to 'find_pipeline'"), msg)
  end)

  describe("every id-taking function checks its id before sending", function()
    local fns = { "get_job", "cancel_job", "retry_job", "delete_job", "job_events", "job_progress",
      "job_inputs", "job_inputs_progress", "job_input_counts", "job_input_traces", "job_outputs",
      "pipeline", "pipeline_schema", "wait_job", "each_event", "each_progress", "each_input",
      "each_input_progress", "each_output" }
    for _, fname in ipairs(fns) do
      it(fname, function()
        for _, bad in ipairs({ 42, "", "queue", "a/b", ("x"):rep(129) }) do
          local ok, msg = pcall(function() return t.client[fname](t.client, bad) end)
          assert.is_false(ok)
          assert.is_truthy(msg:find("bad argument #1 to '" .. fname .. "'", 1, true), msg)
          ok, msg = pcall(function() return atai[fname](bad) end)
          assert.is_false(ok)
          assert.is_truthy(msg:find("bad argument #1 to '" .. fname .. "'", 1, true), msg)
        end
        assert.are.equal(0, #t.srv:requests())
      end)
    end
  end)

  describe("filters are checked before sending", function()
    local cases = {
      { "list_jobs", { { statuz = "RUNNING" } }, "unknown filter 'statuz'" },
      { "list_jobs", { { limit = 0 } }, "limit: integer >= 1 expected" },
      { "list_jobs", { { offset = -1 } }, "offset: integer >= 0 expected" },
      { "list_jobs", { { status = 5 } }, "status: non-empty string expected" },
      { "list_jobs", { "RUNNING" }, "filter table expected" },
      { "job_inputs_progress", { SEED, { order = "up" } }, "order: 'asc' or 'desc' expected" },
      { "job_inputs_progress", { SEED, { status = { 1 } } }, "status: string or list of strings" },
      { "pipelines", { { visibility = true } }, "visibility: non-empty string" },
      { "job_outputs", { SEED, { port = "x" } }, "unknown filter 'port'" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ": " .. case[3], function()
        local ok, msg = pcall(t.client[case[1]], t.client, case[2][1], case[2][2])
        assert.is_false(ok)
        assert.is_truthy(msg:find(case[3], 1, true), msg)
        assert.are.equal(0, #t.srv:requests())
      end)
    end
  end)
end)

--[[
  spec/fake_api_spec.lua -- tests of the fake Batch API server itself.

  Talks to spec/support/fake_api.lua over raw LuaSocket (not through the atai client),
  so the fake can be trusted by the client's own specs.
  Run: lua5.4 /usr/bin/busted spec/fake_api_spec.lua
]]

local server = require("spec.support.server")
local cjson = require("cjson")
local socket = require("socket")

local TEP = "job_2abc3def4ghi5jkl6mno7pqr"

local srv

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function fixture(name) return cjson.decode(read_file("spec/fixtures/" .. name)) end

-- One request on a fresh connection. opts: method, headers, body, auth (false = none).
local function request(path, opts)
  opts = opts or {}
  local headers = { Connection = "close" }
  if opts.auth ~= false then headers.Authorization = "Bearer " .. (opts.key or srv.key) end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local conn = assert(server.connect("127.0.0.1", srv.port, opts.timeout or 5))
  local resp, err = conn:request{ method = opts.method or "GET", path = path,
                                  headers = headers, body = opts.body }
  conn:close()
  return resp, err
end

local function api(path, opts) return request("/v0.5" .. path, opts) end

local function api_json(path, opts)
  local resp = assert(api(path, opts))
  return resp.status, (resp.body ~= "" and cjson.decode(resp.body) or nil), resp
end

local function post_json(path, payload, opts)
  opts = opts or {}
  opts.method = opts.method or "POST"
  opts.body = payload and cjson.encode(payload) or nil
  opts.headers = { ["Content-Type"] = "application/json" }
  return api_json(path, opts)
end

-- Fetch every page of a list endpoint; returns items, reported totals.
local function all_pages(path, field, limit)
  local items, totals, offset = {}, {}, 0
  local sep = path:find("?", 1, true) and "&" or "?"
  repeat
    local status, body = api_json(path .. sep .. "offset=" .. offset .. "&limit=" .. limit)
    assert.are.equal(200, status)
    totals[#totals + 1] = body.total
    for _, item in ipairs(body[field]) do items[#items + 1] = item end
    offset = offset + limit
  until offset >= body.total or #body[field] == 0
  return items, totals
end

local function gunzip(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("gzip -dc < '" .. path .. "'")
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return out
end

local function last_request() local r = srv:requests(); return r[#r] end

describe("fake Batch API server", function()
  setup(function() srv = server.start{ key = "test-key" } end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  describe("startup and control", function()
    it("exposes port, endpoint and key", function()
      assert.is_number(srv.port)
      assert.are.equal("http://127.0.0.1:" .. srv.port .. "/v0.5", srv.endpoint)
      assert.are.equal("test-key", srv.key)
    end)

    it("starts empty after reset", function()
      local stats = srv:stats()
      assert.are.equal(0, stats.connections)
      assert.are.equal(0, #stats.requests)
      assert.are.equal(0, stats.faults_pending)
    end)

    it("rejects unknown toggles", function()
      assert.has_error(function() srv:config{ no_such_toggle = true } end)
    end)
  end)

  describe("auth", function()
    it("returns 401 with the legacy detail body when the key is missing", function()
      local status, body, resp = api_json("/batch/jobs/" .. TEP, { auth = false })
      assert.are.equal(401, status)
      assert.are.same({ detail = "Invalid or missing API key" }, body)
      assert.are.equal("application/json", resp.headers["content-type"])
    end)

    it("returns 401 for a wrong key and never logs the Authorization header", function()
      local status = api_json("/batch/jobs/" .. TEP, { key = "nope" })
      assert.are.equal(401, status)
      api_json("/batch/jobs/" .. TEP)
      api_json("/batch/jobs/" .. TEP, { auth = false })
      local reqs = srv:requests()
      assert.are.equal("wrong", reqs[1].auth)
      assert.are.equal("ok", reqs[2].auth)
      assert.are.equal("missing", reqs[3].auth)
      for _, r in ipairs(reqs) do assert.is_nil(r.headers.authorization) end
      local stats_text = cjson.encode(srv:stats())
      assert.is_nil(stats_text:find("test-key", 1, true))
    end)

    it("returns the 404 envelope for unknown routes", function()
      local status, body = api_json("/batch/nothing")
      assert.are.equal(404, status)
      assert.are.equal("not_found", body.errors[1].code)
      assert.truthy(body.errors[1].error_uid:match("^err%-"))
    end)
  end)

  describe("seed jobs", function()
    it("serves the documented TEP job verbatim", function()
      local status, body, resp = api_json("/batch/jobs/" .. TEP)
      assert.are.equal(200, status)
      assert.are.same(fixture("job_completed_tep.json"), body)
      assert.are.equal(read_file("spec/fixtures/job_completed_tep.json"), resp.body)
    end)

    it("serves RUNNING, FAILED, CANCELLED and PENDING jobs", function()
      local _, running = api_json("/batch/jobs/job_running")
      assert.are.equal("RUNNING", running.status)
      assert.are.equal(1, running.input_progress.processing)
      local _, failed = api_json("/batch/jobs/job_failed")
      assert.are.equal("FAILED", failed.status)
      assert.is_string(failed.failed_at)
      assert.are.equal("input_resolution_failed", failed.error.code)
      local _, cancelled = api_json("/batch/jobs/job_cancelled")
      assert.are.equal("CANCELLED", cancelled.status)
      local _, pending = api_json("/batch/jobs/job_pending")
      assert.are.equal("PENDING", pending.status)
      assert.are.equal(3, pending.queue_position)
    end)

    it("keeps \\u escapes, surrogate pairs and nulls in job_unicode", function()
      local _, body, resp = api_json("/batch/jobs/job_unicode")
      assert.truthy(resp.body:find("\\ud83d\\ude80", 1, true))
      assert.are.equal("Grüße, 日本, emoji 🚀", body.name)
      assert.are.equal('say "hi"\\path\\to\nline two\ttab é / slash', body.parameters.note)
      assert.are.equal(cjson.null, body.parameters.tags[2])
      assert.are.equal(3, #body.parameters.tags)
    end)

    it("keeps number literals in job_numbers byte for byte", function()
      local _, _, resp = api_json("/batch/jobs/job_numbers")
      for _, lit in ipairs({ "9007199254740993", "9007199254740992", "1e3", "-0.0",
                             "1e300", "2.0", "1.5" }) do
        assert.truthy(resp.body:find(lit, 1, true), lit)
      end
      assert.are.equal(read_file("spec/fixtures/jobs/job_numbers.json"), resp.body)
    end)

    it("returns the 404 envelope for unknown jobs", function()
      local status, body = api_json("/batch/jobs/job_missing")
      assert.are.equal(404, status)
      assert.are.equal("not_found", body.errors[1].code)
      assert.are.equal("Job job_missing not found", body.errors[1].message)
    end)

    it("routes /batch/jobs/queue before /batch/jobs/{id}", function()
      local status, body = api_json("/batch/jobs/queue")
      assert.are.equal(200, status)
      assert.are.same(fixture("queue.json"), body)
    end)
  end)

  describe("HTTP/1.1 transport", function()
    it("serves two requests on one keep-alive connection", function()
      local conn = assert(server.connect("127.0.0.1", srv.port))
      local auth = { Authorization = "Bearer test-key" }
      local r1 = assert(conn:request{ path = "/v0.5/batch/jobs/" .. TEP, headers = auth })
      local r2 = assert(conn:request{ path = "/v0.5/batch/jobs/job_failed", headers = auth })
      conn:close()
      assert.are.equal(200, r1.status)
      assert.are.equal(200, r2.status)
      assert.are.equal("keep-alive", r1.headers.connection)
      local stats = srv:stats()
      assert.are.equal(1, stats.connections)
      assert.are.equal(stats.requests[1].conn, stats.requests[2].conn)
    end)

    it("closes the connection after Connection: close", function()
      local conn = assert(server.connect("127.0.0.1", srv.port))
      local r1 = assert(conn:request{ path = "/v0.5/batch/jobs/" .. TEP,
        headers = { Authorization = "Bearer test-key", Connection = "close" } })
      assert.are.equal("close", r1.headers.connection)
      local r2 = conn:request{ path = "/v0.5/batch/jobs/" .. TEP,
        headers = { Authorization = "Bearer test-key" } }
      conn:close()
      assert.is_nil(r2)
    end)

    it("counts one connection per TCP connection", function()
      api_json("/batch/jobs/" .. TEP)
      api_json("/batch/jobs/" .. TEP)
      assert.are.equal(2, srv:stats().connections)
    end)

    it("accepts chunked request bodies", function()
      local payload = cjson.encode({ name = "chunked-run", pipeline_type = "batch",
                                     pipeline_key = "machine-state-classification" })
      local half = math.floor(#payload / 2)
      local chunked = string.format("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", half,
        payload:sub(1, half), #payload - half, payload:sub(half + 1))
      local resp = assert(api("/batch/jobs", { method = "POST", body = chunked,
        headers = { ["Transfer-Encoding"] = "chunked", ["Content-Type"] = "application/json" } }))
      assert.are.equal(201, resp.status)
      assert.are.equal(payload, last_request().body)
    end)

    it("answers Expect: 100-continue", function()
      local payload = cjson.encode({ name = "expect-run", pipeline_type = "batch",
                                     pipeline_key = "machine-state-classification" })
      local sock = socket.tcp()
      sock:settimeout(5)
      assert(sock:connect("127.0.0.1", srv.port))
      sock:send("POST /v0.5/batch/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
        .. "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: "
        .. #payload .. "\r\nConnection: close\r\n\r\n")
      assert.are.equal("HTTP/1.1 100 Continue", sock:receive("*l"))
      assert.are.equal("", sock:receive("*l"))
      sock:send(payload)
      assert.are.equal("HTTP/1.1 201 Created", sock:receive("*l"))
      sock:close()
    end)

    it("does not let a delayed response block other connections", function()
      srv:fault{ path = "/v0.5/batch/jobs/job_running", responses = { { delay = 1.5 } } }
      local slow = assert(server.connect("127.0.0.1", srv.port))
      slow.sock:send("GET /v0.5/batch/jobs/job_running HTTP/1.1\r\nHost: x\r\n"
        .. "Authorization: Bearer test-key\r\n\r\n")
      local t0 = socket.gettime()
      local status = api_json("/batch/jobs/" .. TEP)
      assert.are.equal(200, status)
      assert.is_true(socket.gettime() - t0 < 1.0)
      assert.are.equal("HTTP/1.1 200 OK", slow.sock:receive("*l"))
      assert.is_true(socket.gettime() - t0 >= 1.4)
      slow:close()
    end)
  end)

  describe("faults", function()
    it("serves a status sequence, then passes through", function()
      local path = "/v0.5/batch/jobs/" .. TEP
      srv:fault{ method = "GET", path = path,
                 responses = { { status = 503 }, { status = 503 }, { pass = true } } }
      local s1, b1 = api_json("/batch/jobs/" .. TEP)
      local s2 = api_json("/batch/jobs/" .. TEP)
      local s3 = api_json("/batch/jobs/" .. TEP)
      local s4 = api_json("/batch/jobs/" .. TEP)
      assert.are.same({ 503, 503, 200, 200 }, { s1, s2, s3, s4 })
      assert.are.equal("service_unavailable", b1.errors[1].code)
      assert.are.equal(0, srv:stats().faults_pending)
    end)

    it("matches by method and path_prefix", function()
      srv:fault{ method = "POST", path_prefix = "/v0.5/batch/jobs/", responses = { { status = 500 } } }
      assert.are.equal(200, (api_json("/batch/jobs/job_pending")))
      assert.are.equal(500, (post_json("/batch/jobs/job_pending/cancel")))
      assert.are.equal(200, (post_json("/batch/jobs/job_pending/cancel")))
    end)

    it("sends custom headers, raw bodies and json bodies", function()
      srv:fault{ path = "/v0.5/batch/jobs/x", responses = {
        { status = 429, headers = { ["Retry-After"] = "2" }, json = { error = { code = "RATE" } } },
        { status = 502, body = "<html>bad gateway</html>", headers = { ["Content-Type"] = "text/html" } },
      } }
      local r1 = assert(api("/batch/jobs/x"))
      assert.are.equal(429, r1.status)
      assert.are.equal("2", r1.headers["retry-after"])
      assert.are.same({ error = { code = "RATE" } }, cjson.decode(r1.body))
      local r2 = assert(api("/batch/jobs/x"))
      assert.are.equal(502, r2.status)
      assert.are.equal("text/html", r2.headers["content-type"])
      assert.are.equal("<html>bad gateway</html>", r2.body)
    end)

    it("delays before answering", function()
      srv:fault{ path = "/v0.5/batch/jobs/" .. TEP, responses = { { delay = 0.5 } } }
      local t0 = socket.gettime()
      local status = api_json("/batch/jobs/" .. TEP)
      assert.are.equal(200, status)
      assert.is_true(socket.gettime() - t0 >= 0.45)
    end)

    it("closes the connection without a response", function()
      srv:fault{ path = "/v0.5/batch/jobs/" .. TEP, responses = { { close = true } } }
      local resp, err = api("/batch/jobs/" .. TEP)
      assert.is_nil(resp)
      assert.are.equal("closed", err)
      assert.are.equal(1, #srv:requests())
    end)

    it("truncates the body after close_after_bytes", function()
      srv:fault{ path = "/v0.5/batch/jobs/" .. TEP, responses = { { close_after_bytes = 10 } } }
      local resp = assert(api("/batch/jobs/" .. TEP))
      assert.are.equal(200, resp.status)
      assert.are.equal(#read_file("spec/fixtures/job_completed_tep.json"),
                       tonumber(resp.headers["content-length"]))
      assert.are.equal(10, #resp.body)
      assert.are.equal("closed", resp.error)
    end)

    it("gzips the normal body only when Accept-Encoding allows it", function()
      local path = "/v0.5/batch/jobs/" .. TEP
      srv:fault{ path = path, responses = { { gzip = true }, { gzip = true } } }
      local zipped = assert(api("/batch/jobs/" .. TEP,
                                { headers = { ["Accept-Encoding"] = "gzip, deflate" } }))
      assert.are.equal("gzip", zipped.headers["content-encoding"])
      assert.are.equal(read_file("spec/fixtures/job_completed_tep.json"), gunzip(zipped.body))
      local plain = assert(api("/batch/jobs/" .. TEP))
      assert.is_nil(plain.headers["content-encoding"])
      assert.are.same(fixture("job_completed_tep.json"), cjson.decode(plain.body))
      local reqs = srv:requests()
      assert.is_true(reqs[1].gzip)
      assert.is_false(reqs[2].gzip)
    end)

    it("is exhausted after its responses and reset clears it", function()
      srv:fault{ path_prefix = "/v0.5/", responses = { { status = 503 }, { status = 503 } } }
      assert.are.equal(503, (api_json("/batch/jobs/" .. TEP)))
      srv:reset()
      assert.are.equal(200, (api_json("/batch/jobs/" .. TEP)))
    end)

    it("records method, path, raw query, headers and body", function()
      api_json("/batch/jobs?status=FAILED&q=tep%20broken", { headers = { ["X-Trace"] = "abc" } })
      local r = last_request()
      assert.are.equal("GET", r.method)
      assert.are.equal("/v0.5/batch/jobs", r.path)
      assert.are.equal("status=FAILED&q=tep%20broken", r.query)
      assert.are.equal("abc", r.headers["x-trace"])
      assert.are.equal("", r.body)
    end)
  end)

  describe("pagination", function()
    it("lists jobs consistently across pages", function()
      local _, first = api_json("/batch/jobs")
      assert.are.equal(10, first.limit)
      local items, totals = all_pages("/batch/jobs", "jobs", 2)
      assert.are.equal(first.total, #items)
      local seen = {}
      for _, job in ipairs(items) do
        assert.is_nil(seen[job.id])
        seen[job.id] = true
      end
      for _, t in ipairs(totals) do assert.are.equal(#items, t) end
      assert.is_true(seen[TEP] and seen.job_unicode and seen.job_numbers)
    end)

    it("filters jobs by status, pipeline_type and q", function()
      local _, failed = api_json("/batch/jobs?status=FAILED")
      assert.are.equal(1, failed.total)
      assert.are.equal("job_failed", failed.jobs[1].id)
      local _, training = api_json("/batch/jobs?pipeline_type=training")
      assert.are.equal(1, training.total)
      assert.are.equal("job_numbers", training.jobs[1].id)
      local _, q = api_json("/batch/jobs?q=tep")
      assert.are.equal(#q.jobs, q.total)
      for _, job in ipairs(q.jobs) do assert.truthy(job.name:lower():find("tep", 1, true)) end
    end)

    it("rejects bad offset/limit and clamps limit to 100", function()
      for _, query in ipairs({ "offset=-1", "limit=abc", "limit=1.5", "offset=x" }) do
        local status, body = api_json("/batch/jobs?" .. query)
        assert.are.equal(400, status, query)
        assert.are.equal("invalid_parameter", body.errors[1].code)
      end
      local _, body = api_json("/batch/jobs?limit=1000")
      assert.are.equal(100, body.limit)
    end)

    it("pages through 5 events, 3 progress entries and 25 outputs of the TEP job", function()
      local events = all_pages("/batch/jobs/" .. TEP .. "/events", "events", 2)
      assert.are.equal(5, #events)
      assert.are.equal(1001, events[1].id)
      local progress = all_pages("/batch/jobs/" .. TEP .. "/progress", "entries", 2)
      assert.are.equal(3, #progress)
      local outputs = all_pages("/batch/jobs/" .. TEP .. "/outputs", "outputs", 10)
      assert.are.equal(25, #outputs)
      assert.are.equal("out_abc123def456", outputs[1].id)
    end)

    it("filters events, inputs and outputs", function()
      local _, ev = api_json("/batch/jobs/" .. TEP .. "/events?level=SUCCESS")
      assert.are.equal(3, ev.total)
      local _, inputs = api_json("/batch/jobs/" .. TEP .. "/inputs?status=reference")
      assert.are.equal(1, inputs.total)
      assert.are.equal("worker.n_shots", inputs.inputs[1].port_name)
      local _, outs, resp = api_json("/batch/jobs/" .. TEP .. "/outputs?port_name=nope")
      assert.are.equal(0, outs.total)
      assert.truthy(resp.body:find('"outputs":[]', 1, true))  -- empty arrays stay arrays
    end)

    it("lists more than 10 pipelines with filters, and gets pipelines and schemas", function()
      local pipelines = all_pages("/batch/registry/pipelines", "pipelines", 5)
      assert.is_true(#pipelines > 10)
      local _, training = api_json("/batch/registry/pipelines?pipeline_type=training")
      for _, p in ipairs(training.pipelines) do assert.are.equal("training", p.pipeline_type) end
      local _, p = api_json("/batch/registry/pipelines/ppl_abc123def456")
      assert.are.same(fixture("pipeline_get_msc.json"), p)
      local _, schema = api_json("/batch/registry/pipelines/pip_abc123def456/schema")
      assert.are.same(fixture("pipeline_schema.json"), schema)
      local _, synth = api_json("/batch/registry/pipelines/ppl_actdetect00001/schema")
      assert.are.equal("activity-detection", synth.pipeline_key)
      assert.are.equal(404, (api_json("/batch/registry/pipelines/ppl_nope")))
    end)

    it("ignore_offset always returns the first page", function()
      srv:config{ ignore_offset = true }
      local _, p1 = api_json("/batch/jobs?offset=0&limit=2")
      local _, p2 = api_json("/batch/jobs?offset=2&limit=2")
      assert.are.equal(p1.jobs[1].id, p2.jobs[1].id)
      assert.are.equal(2, p2.offset)
    end)

    it("page_total_lies inflates total", function()
      srv:config{ page_total_lies = 3 }
      local _, body = api_json("/batch/jobs/" .. TEP .. "/events")
      assert.are.equal(8, body.total)
      assert.are.equal(5, #body.events)
    end)
  end)

  describe("job lifecycle", function()
    local function create(name, inputs)
      return post_json("/batch/jobs", { name = name, pipeline_type = "batch",
        pipeline_key = "machine-state-classification",
        inputs = inputs or { ["worker.inference"] = { { file_id = "a.csv" }, { file_id = "b.csv" } } } })
    end

    it("creates a PENDING job and completes it in 4 polls", function()
      local status, job = create("lifecycle-run")
      assert.are.equal(201, status)
      assert.truthy(job.id:match("^job_[a-z0-9]+$"))
      assert.are.equal(30, #job.id)
      assert.are.equal("PENDING", job.status)
      assert.are.equal(cjson.null, job.input_progress)
      assert.is_number(job.queue_position)
      local seen = {}
      for i = 1, 4 do
        local _, j = api_json("/batch/jobs/" .. job.id)
        local ip = j.input_progress
        seen[i] = string.format("%s:%d/%d/%d/%d", j.status, ip.pending, ip.processing,
                                ip.completed, ip.failed)
      end
      assert.are.same({ "RUNNING:2/0/0/0", "RUNNING:0/2/0/0", "RUNNING:0/0/2/0",
                        "COMPLETED:0/0/2/0" }, seen)
      local _, j = api_json("/batch/jobs/" .. job.id)
      assert.are.equal("COMPLETED", j.status)
      assert.is_string(j.completed_at)
      local _, outs = api_json("/batch/jobs/" .. job.id .. "/outputs")
      assert.are.equal(2, outs.total)
      local _, ev = api_json("/batch/jobs/" .. job.id .. "/events?event_type=job.completed")
      assert.are.equal(1, ev.total)
      local _, counts = api_json("/batch/jobs/" .. job.id .. "/inputs/progress/counts")
      assert.are.same({ job_id = job.id, pending = 0, processing = 0, completed = 2, failed = 0 },
                      counts)
      local _, listed = api_json("/batch/jobs?q=lifecycle")
      assert.are.equal(1, listed.total)
      assert.are.equal(job.id, listed.jobs[1].id)
    end)

    it("ends FAILED when the name contains 'fail'", function()
      local _, job = create("will-fail-run", { data = { { file_id = "x.csv" } } })
      local j
      for _ = 1, 4 do _, j = api_json("/batch/jobs/" .. job.id) end
      assert.are.equal("FAILED", j.status)
      assert.is_string(j.failed_at)
      assert.are.equal("job_failed", j.error.code)
      assert.are.equal(1, j.input_progress.failed)
      local _, ev = api_json("/batch/jobs/" .. job.id .. "/events?level=FAILED")
      assert.is_true(ev.total >= 1)
    end)

    it("validates create bodies", function()
      local status, body = post_json("/batch/jobs", { name = "x" })
      assert.are.equal(400, status)
      assert.are.equal(2, #body.errors)
      assert.are.equal("missing_parameter", body.errors[1].code)
      status, body = post_json("/batch/jobs", { name = "x", pipeline_type = "batch",
                                                pipeline_key = "no-such-pipeline" })
      assert.are.equal(422, status)
      assert.truthy(body.errors[1].message:find("no-such-pipeline", 1, true))
      local resp = assert(api("/batch/jobs", { method = "POST", body = "{not json" }))
      assert.are.equal(400, resp.status)
    end)

    it("cancels, refuses a second cancel, retries and refuses a second retry", function()
      local status, body = post_json("/batch/jobs/job_pending/cancel")
      assert.are.equal(200, status)
      assert.are.equal("CANCELLED", body.status)
      assert.is_string(body.cancelled_at)
      assert.are.same({ "cancelled_at", "id", "status" }, (function()
        local keys = {}
        for k in pairs(body) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      status, body = post_json("/batch/jobs/job_pending/cancel")
      assert.are.equal(409, status)
      assert.are.equal("conflict", body.errors[1].code)
      assert.are.equal("Job job_pending is already CANCELLED", body.errors[1].message)
      status, body = post_json("/batch/jobs/job_pending/retry")
      assert.are.equal(200, status)
      assert.are.same({ id = "job_pending", status = "PENDING", retry_count = 1 }, body)
      status, body = post_json("/batch/jobs/job_pending/retry")
      assert.are.equal(409, status)
      assert.are.equal("conflict", body.errors[1].code)
    end)

    it("refuses to cancel COMPLETED and FAILED jobs, or retry a COMPLETED one", function()
      assert.are.equal(409, (post_json("/batch/jobs/" .. TEP .. "/cancel")))
      assert.are.equal(409, (post_json("/batch/jobs/job_failed/cancel")))
      assert.are.equal(409, (post_json("/batch/jobs/" .. TEP .. "/retry")))
      assert.are.equal(404, (post_json("/batch/jobs/job_missing/cancel")))
    end)

    it("retried jobs run again to completion", function()
      local _, body = post_json("/batch/jobs/job_failed/retry")
      assert.are.equal("PENDING", body.status)
      local j
      for _ = 1, 4 do _, j = api_json("/batch/jobs/job_failed") end
      assert.are.equal("COMPLETED", j.status)
      assert.are.equal(1, j.retry_count)
      assert.are.equal(cjson.null, j.error)
    end)

    it("returns full job bodies on cancel/retry with full_write_bodies", function()
      srv:config{ full_write_bodies = true }
      local _, body = post_json("/batch/jobs/job_running/cancel")
      assert.are.equal("CANCELLED", body.status)
      assert.are.equal("tep-running-run", body.name)
      assert.are.equal(cjson.null, body.input_progress)
      _, body = post_json("/batch/jobs/job_running/retry")
      assert.are.equal(1, body.retry_count)
      assert.are.equal(cjson.null, body.input_progress)
      assert.are.equal("org_1abc2def3ghi4jkl", body.org_id)
    end)

    it("deletes jobs", function()
      local status, body = api_json("/batch/jobs/job_cancelled", { method = "DELETE" })
      assert.are.equal(200, status)
      assert.are.same({ id = "job_cancelled", deleted = true }, body)
      assert.are.equal(404, (api_json("/batch/jobs/job_cancelled")))
      assert.are.equal(404, (api_json("/batch/jobs/job_cancelled", { method = "DELETE" })))
      srv:reset()
      assert.are.equal(200, (api_json("/batch/jobs/job_cancelled")))
    end)
  end)

  describe("inputs progress and traces", function()
    it("lists tracked inputs with repeatable status filters and order", function()
      local _, all = api_json("/batch/jobs/job_running/inputs/progress")
      assert.are.equal(4, all.total)
      local _, some = api_json("/batch/jobs/job_running/inputs/progress?status=processing&status=pending")
      assert.are.equal(2, some.total)
      local _, desc = api_json("/batch/jobs/job_running/inputs/progress?order=desc")
      assert.are.equal(all.items[1].input.id, desc.items[4].input.id)
      local _, tep = api_json("/batch/jobs/" .. TEP .. "/inputs/progress")
      assert.are.equal(1, tep.total)  -- the n-shot reference input is excluded
      assert.are.equal("inp_abc123def456", tep.items[1].input.id)
    end)

    it("returns counts consistent with input_progress, scoped by port", function()
      local _, job = api_json("/batch/jobs/job_running")
      local _, counts = api_json("/batch/jobs/job_running/inputs/progress/counts")
      for _, k in ipairs({ "pending", "processing", "completed", "failed" }) do
        assert.are.equal(job.input_progress[k], counts[k])
      end
      local _, none = api_json("/batch/jobs/job_running/inputs/progress/counts?port_name=nope")
      assert.are.equal(0, none.completed)
    end)

    it("serves traces with an ETag and 304 on If-None-Match", function()
      local path = "/batch/jobs/" .. TEP .. "/inputs/progress/traces"
      local r1 = assert(api(path))
      assert.are.equal(200, r1.status)
      local etag = r1.headers.etag
      assert.truthy(etag:match('^W/".+"$'))
      local r2 = assert(api(path, { headers = { ["If-None-Match"] = etag } }))
      assert.are.equal(304, r2.status)
      assert.are.equal("", r2.body)
      assert.are.equal(etag, r2.headers.etag)
      local r3 = assert(api(path, { headers = { ["If-None-Match"] = 'W/"other"' } }))
      assert.are.equal(200, r3.status)
    end)

    it("clamps buckets to [10, 1000] and rejects non-integers", function()
      local path = "/batch/jobs/" .. TEP .. "/inputs/progress/traces"
      local _, b100 = api_json(path)
      local _, b5 = api_json(path .. "?buckets=5")
      local _, b10 = api_json(path .. "?buckets=10")
      local _, b5000 = api_json(path .. "?buckets=5000")
      local _, b1000 = api_json(path .. "?buckets=1000")
      assert.are.equal(b10.bucket_seconds, b5.bucket_seconds)
      assert.are.equal(b1000.bucket_seconds, b5000.bucket_seconds)
      assert.are.equal(780 / 100, b100.bucket_seconds)
      local status, body = api_json(path .. "?buckets=abc")
      assert.are.equal(400, status)
      assert.are.equal("invalid_parameter", body.errors[1].code)
    end)

    it("changes the ETag as a created job advances", function()
      local _, job = post_json("/batch/jobs", { name = "etag-run", pipeline_type = "batch",
        pipeline_key = "machine-state-classification",
        inputs = { ["worker.inference"] = { { file_id = "a.csv" } } } })
      local path = "/batch/jobs/" .. job.id .. "/inputs/progress/traces"
      local e1 = assert(api(path)).headers.etag
      for _ = 1, 4 do api_json("/batch/jobs/" .. job.id) end
      local r = assert(api(path, { headers = { ["If-None-Match"] = e1 } }))
      assert.are.equal(200, r.status)
      assert.are_not.equal(e1, r.headers.etag)
    end)
  end)

  describe("files and storage", function()
    -- A multipart/form-data body with one "file" field.
    local function form(boundary, filename, type_, content)
      return ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
        .. "Content-Type: %s\r\n\r\n%s\r\n--%s--\r\n"):format(boundary, filename, type_, content, boundary)
    end

    -- The body in chunks of `size` bytes (Transfer-Encoding: chunked).
    local function chunked(body, size)
      local out = {}
      for i = 1, #body, size do
        local piece = body:sub(i, i + size - 1)
        out[#out + 1] = ("%x\r\n%s\r\n"):format(#piece, piece)
      end
      return table.concat(out) .. "0\r\n\r\n"
    end

    it("POST /files parses a chunked multipart body across chunk borders, boundary included", function()
      local content = ("a,b\r\n--notquite\r\n"):rep(50)
      local body = chunked(form("XyZ", "c.csv", "text/csv", content), 7)
      local status, reply = api_json("/files", { method = "POST", body = body, headers = {
        ["Content-Type"] = "multipart/form-data; boundary=XyZ", ["Transfer-Encoding"] = "chunked" } })
      assert.are.equal(200, status)
      assert.are.same({ is_valid = true, file_id = "c.csv", file_uid = reply.file_uid }, reply)
      assert.are.equal(content, srv:stats().files["c.csv"].content)
    end)

    it("POST /files refuses a form without a file, an unsupported type, a non-form body", function()
      local cases = {
        { "multipart/form-data; boundary=b", "--b--\r\n", 400, "missing_parameter" },
        { "multipart/form-data; boundary=b", form("b", "x.bin", "application/octet-stream", "x"), 400, "invalid_file_type" },
        { "application/json", "{}", 400, "invalid_parameter" },
      }
      for _, case in ipairs(cases) do
        local status, reply = api_json("/files", { method = "POST", body = case[2], headers = { ["Content-Type"] = case[1] } })
        assert.are.equal(case[3], status)
        assert.are.equal(case[4], reply.errors[1].code)
      end
    end)

    it("presigned URLs: a good signature serves, a wrong or expired one is a 403, no key needed", function()
      local outputs = srv:control("POST", "/_fake/outputs", { job_id = TEP,
        outputs = { { filename = "o.csv", num_bytes = 100 } } }).outputs
      local _, page = api_json("/batch/jobs/" .. TEP .. "/outputs")
      local ref = page.outputs[1].data.ref
      assert.are.equal(outputs[1].id, page.outputs[1].id)
      local path = ref:match("^http://127%.0%.0%.1:%d+(/.*)$")
      local r = assert(request(path, { auth = false }))
      assert.are.equal(200, r.status)
      assert.are.equal(require("spec.support.fake_api.blob").content(outputs[1].id, 100), r.body)
      r = assert(request(path:gsub("Signature=%x+", "Signature=0"), { auth = false }))
      assert.are.equal(403, r.status)
      assert.is_truthy(r.body:find("SignatureDoesNotMatch", 1, true))
      srv:config { expired_listings = 1 }
      _, page = api_json("/batch/jobs/" .. TEP .. "/outputs")
      r = assert(request(page.outputs[1].data.ref:match("^http://[^/]+(/.*)$"), { auth = false }))
      assert.are.equal(403, r.status)
      assert.is_truthy(r.body:find("Request has expired", 1, true))
      assert.are.equal("missing", srv:requests()[2].auth)
    end)

    it("the multipart flow: initiate, PUT parts (ETag each, length checked), complete, abort", function()
      srv:config { part_size = 4 }
      local status, init = post_json("/files/uploads/initiate", { filename = "m.csv", file_type = "text/csv", num_bytes = 10 })
      assert.are.equal(200, status)
      assert.are.equal(3, #init.parts)
      assert.are.same({ 0, 4, 8 }, { init.parts[1].offset, init.parts[2].offset, init.parts[3].offset })
      assert.are.equal(2, init.parts[3].length)
      local tokens = {}
      for i, part in ipairs(init.parts) do
        local path = part.url:match("^http://[^/]+(/.*)$")
        local short = assert(request(path, { method = "PUT", auth = false, body = "x" }))
        assert.are.equal(400, short.status)
        local r = assert(request(path, { method = "PUT", auth = false, body = ("0123456789"):sub(part.offset + 1, part.offset + part.length) }))
        assert.are.equal(200, r.status)
        tokens[i] = { part_number = part.part_number, part_token = r.headers.etag }
      end
      local bad = post_json("/files/uploads/" .. init.upload_id .. "/complete", { parts = { tokens[1] } })
      assert.are.equal(400, bad)
      local _, done = post_json("/files/uploads/" .. init.upload_id .. "/complete", { parts = tokens })
      assert.are.equal("m.csv", done.file_name)
      assert.are.equal(10, done.num_bytes)
      assert.are.equal(409, (post_json("/files/uploads/" .. init.upload_id .. "/abort")))
      assert.are.equal(404, (post_json("/files/uploads/upl_nope/abort")))
      assert.are.equal("completed", srv:stats().uploads[init.upload_id].status)
    end)

    it("uploads by parts: numbered from 0, URLs that expire, parts/urls, checkpoints, resume, CRC-32C, abort", function()
      local core = require("atai.core") -- (the fake's own CRC is Lua 5.3+: this spec runs on every Lua)
      local function checksum(crc)
        return core.base64(string.char(math.floor(crc / 16777216) % 256, math.floor(crc / 65536) % 256,
          math.floor(crc / 256) % 256, crc % 256))
      end
      local text = "0123456789"
      srv:config { part_size = 4, url_ttl = 0.3 }
      local spec = { filename = "r.csv", file_type = "text/csv", num_bytes = 10, resume_if_started = true }
      local _, init = post_json("/files/uploads/initiate", spec)
      assert.is_false(init.is_resume)
      assert.are.equal("crc32c", init.integrity_algorithm)
      assert.are.same({ 0, 1, 2 }, { init.parts[1].part_number, init.parts[2].part_number, init.parts[3].part_number })
      assert.is_string(init.parts[1].expires_at)
      local base = "/files/uploads/" .. init.upload_id
      local function put(part)
        return assert(request(part.url:match("^http://[^/]+(/.*)$"), { method = "PUT", auth = false,
          body = text:sub(part.offset + 1, part.offset + part.length) }))
      end
      local first = put(init.parts[1])
      assert.are.equal(200, first.status)
      socket.sleep(0.35) -- on the server's clock, the URLs have expired
      assert.are.equal(403, put(init.parts[2]).status)
      local status, fresh = post_json(base .. "/parts/urls", { part_numbers = { 1, 2 } })
      assert.are.equal(200, status)
      assert.are.same({ 1, 2 }, { fresh.parts[1].part_number, fresh.parts[2].part_number })
      local second = put(fresh.parts[1])
      assert.are.equal(200, second.status)
      assert.are.equal(400, (post_json(base .. "/parts/checkpoint", { parts = { { part_number = 0,
        part_token = first.headers.etag:gsub('"', "") } } }))) -- the ETag byte for byte, quotes kept
      local _, ck = post_json(base .. "/parts/checkpoint", { parts = { { part_number = 0, part_token = first.headers.etag },
        { part_number = 1, part_token = second.headers.etag } } })
      assert.are.equal(2, ck.num_checkpointed)
      local _, again = post_json("/files/uploads/initiate", spec) -- same name and size: resumed
      assert.is_true(again.is_resume)
      assert.are.equal(init.upload_id, again.upload_id)
      assert.are.equal(1, #again.parts)
      assert.are.equal(2, again.parts[1].part_number)
      local third = put(again.parts[1])
      local last = { part_number = 2, part_token = third.headers.etag }
      assert.are.equal(400, (post_json(base .. "/complete", { parts = { last,
        { part_number = 0, part_token = first.headers.etag } } }))) -- a checkpointed part repeated
      local crc = core.crc32c(text)
      assert.are.equal(400, (post_json(base .. "/complete", { parts = { last }, integrity_checksum = checksum((crc + 1) % 4294967296) })))
      assert.are.equal("Corrupt", srv:stats().files["r.csv"].file_status)
      assert.are.equal(409, (post_json(base .. "/abort")))
      -- a good checksum on a new upload; abort answers an empty body before completion, 409 after
      local _, up = post_json("/files/uploads/initiate", { filename = "g.csv", num_bytes = 10 })
      local tokens = {}
      for i, part in ipairs(up.parts) do tokens[i] = { part_number = part.part_number, part_token = put(part).headers.etag } end
      local code, done = post_json("/files/uploads/" .. up.upload_id .. "/complete", { parts = tokens,
        integrity_checksum = checksum(crc) })
      assert.are.equal(200, code)
      assert.are.equal("Registered", done.file_status)
      assert.are.equal(409, (post_json("/files/uploads/" .. up.upload_id .. "/abort")))
      local _, other = post_json("/files/uploads/initiate", { filename = "h.csv", num_bytes = 3 })
      local code2, body2 = post_json("/files/uploads/" .. other.upload_id .. "/abort")
      assert.are.equal(200, code2)
      assert.is_nil(body2)
    end)
  end)
end)

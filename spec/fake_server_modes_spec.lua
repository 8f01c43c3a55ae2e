--[[
  spec/fake_server_modes_spec.lua -- the fake API server's options for users and tests:
  --latency MS, --demo-jobs and the user mode of `make fake-server` (--user).

  Raw LuaSocket, like spec/fake_api_spec.lua; timing is read from the server's own
  request log (t = arrival, t_reply = answer ready), never from the wall clock here.
]]

local server = require("spec.support.server")
local cjson = require("cjson")

-- Send a GET on a fresh connection without reading the answer; returns the conn.
local function send_get(srv, path)
  local conn = assert(server.connect("127.0.0.1", srv.port))
  assert(conn.sock:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    .. "Authorization: Bearer " .. srv.key .. "\r\nConnection: close\r\n\r\n"))
  return conn
end

-- Read the whole answer of a conn from send_get; returns its status code.
local function read_status(conn)
  local text = assert(conn.sock:receive("*a"))
  conn:close()
  return tonumber(text:match("^HTTP/1%.1 (%d+)"))
end

local function get_status(srv, path) return read_status(send_get(srv, path)) end

-- Every job id of GET /batch/jobs (one page of 100).
local function listed_ids(srv)
  local conn = assert(server.connect("127.0.0.1", srv.port))
  local resp = assert(conn:request{ path = "/v0.5/batch/jobs?limit=100",
    headers = { Authorization = "Bearer " .. srv.key, Connection = "close" } })
  conn:close()
  local body = cjson.decode(resp.body)
  local ids = {}
  for _, job in ipairs(body.jobs) do ids[#ids + 1] = job.id end
  return ids, body.total
end

describe("fake API server --latency", function()
  local srv
  setup(function() srv = server.start{ latency = 300 } end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  it("delays every API response by the latency, two connections at once", function()
    local a = send_get(srv, "/v0.5/batch/jobs/job_running")
    local b = send_get(srv, "/v0.5/batch/jobs/job_failed")
    assert.are.equal(200, read_status(a))
    assert.are.equal(200, read_status(b))
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    for _, r in ipairs(reqs) do assert.is_true(r.t_reply - r.t >= 0.3) end
    -- The second request was read while the first one was still waiting: the
    -- latency is the scheduler's sleep, not a blocking one.
    local first, second = reqs[1], reqs[2]
    assert.is_true(second.t < first.t_reply)
  end)

  it("applies to error answers too", function()
    assert.are.equal(404, get_status(srv, "/v0.5/batch/jobs/job_missing"))
    local r = srv:requests()[1]
    assert.is_true(r.t_reply - r.t >= 0.3)
  end)
end)

describe("fake API server without --demo-jobs", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)

  it("serves the seven seed jobs only, answers at once, prints nothing after PORT", function()
    local ids, total = listed_ids(srv)
    assert.are.equal(7, total)
    for _, id in ipairs(ids) do assert.is_nil(id:find("demo", 1, true)) end
    local r = srv:requests()[1]
    assert.is_true(r.t_reply - r.t < 0.3)
    srv:control("POST", "/_fake/shutdown")
    local rest = srv.handle:read("*a")
    assert.are.equal("", rest)   -- no listing, so no key, outside user mode
    srv:stop()
  end)
end)

describe("fake API server --demo-jobs", function()
  local srv
  setup(function() srv = server.start{ demo_jobs = true } end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  it("adds the demo jobs to the list", function()
    local ids, total = listed_ids(srv)
    assert.are.equal(11, total)
    local seen = {}
    for _, id in ipairs(ids) do seen[id] = true end
    for _, id in ipairs({ "job_demo_slow", "job_demo_flaky", "job_demo_progress",
                          "job_demo_will_fail", "job_running" }) do
      assert.is_true(seen[id], id)
    end
  end)

  it("answers GET job_demo_slow after 300 ms, its other routes at once", function()
    assert.are.equal(200, get_status(srv, "/v0.5/batch/jobs/job_demo_slow"))
    assert.are.equal(200, get_status(srv, "/v0.5/batch/jobs/job_demo_slow/events"))
    local reqs = srv:requests()
    assert.is_true(reqs[1].t_reply - reqs[1].t >= 0.3)
    assert.is_true(reqs[2].t_reply - reqs[2].t < 0.3)
  end)

  it("answers GET job_demo_flaky 503, 200, 503, 200 and starts over after a reset", function()
    local statuses = {}
    for i = 1, 4 do statuses[i] = get_status(srv, "/v0.5/batch/jobs/job_demo_flaky") end
    assert.are.same({ 503, 200, 503, 200 }, statuses)
    srv:reset()
    assert.are.equal(503, get_status(srv, "/v0.5/batch/jobs/job_demo_flaky"))
  end)

  it("lets injected faults go first", function()
    srv:fault{ path = "/v0.5/batch/jobs/job_demo_flaky", responses = { { status = 404 } } }
    assert.are.equal(404, get_status(srv, "/v0.5/batch/jobs/job_demo_flaky"))
    assert.are.equal(503, get_status(srv, "/v0.5/batch/jobs/job_demo_flaky"))
  end)

  it("advances job_demo_progress to COMPLETED and job_demo_will_fail to FAILED", function()
    local function status_after_gets(id)
      local conn = assert(server.connect("127.0.0.1", srv.port))
      local body
      for _ = 1, 4 do
        local resp = assert(conn:request{ path = "/v0.5/batch/jobs/" .. id,
          headers = { Authorization = "Bearer " .. srv.key } })
        body = cjson.decode(resp.body)
      end
      conn:close()
      return body.status
    end
    assert.are.equal("COMPLETED", status_after_gets("job_demo_progress"))
    assert.are.equal("FAILED", status_after_gets("job_demo_will_fail"))
  end)
end)

describe("fake API server user mode (make fake-server)", function()
  local srv, lines
  setup(function()
    srv = server.start{ user = true, latency = 25, key = "user-mode-key" }
    lines = {}
    repeat
      local line = srv.handle:read("*l")
      lines[#lines + 1] = line
    until line == nil or line == "Ctrl-C stops the server."
  end)
  teardown(function() srv:stop() end)

  local function find_line(pattern)
    for _, line in ipairs(lines) do
      if line:find(pattern) then return line end
    end
    return nil
  end

  it("prints an export line to paste, with the endpoint and the key", function()
    local want = "export ATAI_API_ENDPOINT=http://127.0.0.1:" .. srv.port
      .. "/v0.5 ATAI_API_KEY=user-mode-key"
    assert.is_not_nil(find_line("^" .. want:gsub("%p", "%%%0") .. "$"))
    assert.is_not_nil(find_line("^key: user%-mode%-key"))
    assert.is_not_nil(find_line("^latency: 25 ms"))
  end)

  it("lists every job it serves, with what the demo ones do", function()
    local ids, total = listed_ids(srv)
    assert.are.equal(11, total)
    for _, id in ipairs(ids) do
      assert.is_not_nil(find_line("^  " .. id:gsub("%p", "%%%0") .. " "), id)
    end
    assert.is_not_nil(find_line("^  job_demo_slow +RUNNING +every GET answers after 300 ms"))
    assert.is_not_nil(find_line("^  job_demo_flaky +COMPLETED +every other GET answers 503"))
    assert.is_not_nil(find_line("^  job_demo_progress +PENDING .*COMPLETED"))
    assert.is_not_nil(find_line("^  job_demo_will_fail +PENDING .*FAILED"))
    assert.is_not_nil(find_line("^  job_running +RUNNING"))
  end)
end)

describe("fake API server user mode with --paste-also (make fake-server)", function()
  it("appends the text to the one line to paste", function()
    local srv = server.start{ user = true, key = "k", paste_also = "export LUA_PATH='/x/?.lua;;'" }
    local export
    repeat
      local line = srv.handle:read("*l")
      if line and line:match("^export ") then export = line end
    until line == nil or line == "Ctrl-C stops the server."
    srv:stop()
    assert.are.equal("export ATAI_API_ENDPOINT=http://127.0.0.1:" .. srv.port
      .. "/v0.5 ATAI_API_KEY=k; export LUA_PATH='/x/?.lua;;'", export)
  end)
end)

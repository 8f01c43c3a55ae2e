-- spec/cli_spec.lua: bin/atai run as a subprocess against the fake API:
-- every command and flag, stdout, stderr and the exit code, --json output
-- decoded back, a terminal through script(1), Ctrl-C, make install/env.
-- Subprocess-heavy, so it runs under lua5.4 only (make test; make test-all
-- runs it in its lua5.4 round and skips it under the other Luas).
local util = require("spec.support.util")

if util.lua ~= "lua5.4" then
  describe("bin/atai", function()
    pending("runs under lua5.4 only (this run: " .. util.lua .. ")")
  end)
  return
end

local cjson = require("cjson")
local socket = require("socket")
local server = require("spec.support.server")
local helpers = require("spec.support.files")

-- A key that must never show in any output.
local KEY = "sk-cli-secret-7f3a9d"
local ROOT = assert(io.popen("pwd")):read("*l")
local CREATE_SPEC = {
  name = "cli-run", pipeline_type = "batch", pipeline_key = "machine-state-classification",
  inputs = { ["worker.inference"] = { { file_id = "a.csv" }, { file_id = "b.csv" } } },
}

local srv

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local read_file = util.read_file

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The environment of a run: the fake server's endpoint and key unless
-- `env` says otherwise (false unsets a variable).
local function env_prefix(env)
  local vars = { ATAI_API_KEY = KEY, ATAI_API_ENDPOINT = srv.endpoint, NO_COLOR = false,
    LUA_CPATH = util.cpath .. ";./?.so;;" }
  for k, v in pairs(env or {}) do vars[k] = v end
  local unset, set = {}, {}
  for k, v in pairs(vars) do
    if v == false then unset[#unset + 1] = "-u " .. k else set[#set + 1] = k .. "=" .. quote(v) end
  end
  table.sort(set)
  return "env -u ATAI_API_KEY -u ATAI_API_ENDPOINT " .. table.concat(unset, " ") .. " " .. table.concat(set, " ")
end

local function command_line(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  return table.concat(parts, " ")
end

-- Runs bin/atai ARGS; opts.env, opts.stdin (text), opts.bin (another atai),
-- opts.cwd. Returns { code, stdout, stderr, json() }.
local function atai(args, opts)
  opts = opts or {}
  local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
  write_file(input, opts.stdin or "")
  local cmd = ("%s%s %s %s <%s >%s 2>%s; echo $?"):format(opts.cwd and ("cd " .. quote(opts.cwd) .. " && ") or "",
    env_prefix(opts.env), opts.bin or (ROOT .. "/bin/atai"), command_line(args), input, out, err)
  local p = assert(io.popen(cmd))
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local r = { code = code, stdout = read_file(out), stderr = read_file(err) }
  os.remove(out); os.remove(err); os.remove(input)
  function r.json() return cjson.decode(r.stdout) end
  return r
end

-- The output of bin/atai ARGS on a terminal (script(1)): stdout and
-- stderr together, and the exit code. `columns`: the terminal's width.
local function atai_tty(args, env, columns)
  local inner = ("%s%s %s/bin/atai %s"):format(columns and ("stty cols " .. columns .. "; ") or "",
    env_prefix(env), ROOT, command_line(args))
  local p = assert(io.popen(("script -qec %s /dev/null </dev/null; echo \"<exit $?>\""):format(quote(inner))))
  local text = p:read("*a")
  p:close()
  return text:gsub("<exit %d+>%s*$", ""), tonumber(text:match("<exit (%d+)>%s*$"))
end

-- Requests the fake server saw for `path` (under /v0.5).
local function hits(path, method)
  local n = 0
  for _, r in ipairs(srv:requests()) do
    if r.path == "/v0.5" .. path and (not method or r.method == method) then n = n + 1 end
  end
  return n
end

local function lines(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

-- No Lua stack trace and no key in anything a run printed.
local function assert_clean(r)
  assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
  assert.is_nil((r.stdout .. r.stderr):find(KEY, 1, true), "the API key was printed")
end

-- Creates a job through the CLI and returns its id (the fake server moves
-- it one step through its lifecycle at each GET; "fail" in the name fails it).
local function create(name)
  local spec = {}
  for k, v in pairs(CREATE_SPEC) do spec[k] = v end
  spec.name = name or spec.name
  local r = atai({ "job", "create", "--file", "-", "--json" }, { stdin = cjson.encode(spec) })
  assert.are.equal(0, r.code, r.stderr)
  return r.json().id
end

describe("bin/atai", function()
  setup(function() srv = server.start { key = KEY } end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  describe("usage errors exit 2, with no stack trace and no request", function()
    local CASES = {
      { {}, "no command given" },
      { { "jobs" }, "unknown command 'jobs'" },
      { { "job" }, "'job' needs a subcommand" },
      { { "job", "get", "job_running", "--bogus" }, "unknown flag '--bogus'" },
      { { "job", "wait", "job_running", "--timeout" }, "--timeout needs a value (DURATION)" },
      { { "job", "wait", "job_running", "--timeout", "5x" }, "--timeout: bad duration '5x'" },
      { { "job", "wait", "job_running", "--interval", "0" }, "--interval: bad duration '0'" },
      { { "job", "wait", "job_running", "--interval=-1s" }, "--interval: bad duration '-1s'" },
      { { "job", "get", "job_running", "--follow" }, "--follow does not apply to 'job get'" },
      { { "job", "get" }, "'job get' needs ID..." },
      { { "job", "cancel", "job_a", "job_b" }, "too many arguments for 'job cancel'" },
      { { "job", "get", "job/../x" }, "invalid byte at position 4" },
      { { "job", "get", "job_running", "queue" }, "'queue' is a reserved path" },
      { { "job", "list", "--all", "--limit", "5" }, "--all and --limit exclude each other" },
      { { "job", "list", "--limit", "0" }, "--limit: bad value '0'" },
      { { "job", "list", "--status", "DONE" }, "--status: unknown status 'DONE'" },
      { { "queue", "--retries", "11" }, "--retries: bad value '11' (a whole number from 0 to 10)" },
      { { "queue", "--json=yes" }, "--json takes no value" },
      { { "queue", "--endpoint", "ftp://example.com" }, "endpoint must use https" },
      { { "queue", "--api-key", "" }, "api_key" },
      { { "help", "nothing" }, "no help for 'nothing'" },
      { { "job", "create" }, "job create needs --file" },
      { { "job", "create", "--file", "/nonexistent/spec.json" }, "--file: cannot read" },
    }
    for _, case in ipairs(CASES) do
      it("atai " .. table.concat(case[1], " "), function()
        local r = atai(case[1])
        assert.are.equal(2, r.code, r.stderr)
        assert.is_truthy(r.stderr:find(case[2], 1, true), r.stderr)
        assert.are.equal("", r.stdout)
        assert_clean(r)
        assert.are.equal(0, #srv:requests())
      end)
    end

    it("a spec file that is not a JSON object, or that create_job refuses", function()
      for _, case in ipairs({ { "{not json", "is not a JSON object" }, { "[1, 2]", "unknown field spec.1" },
        { '{"name": "x", "pipeline_type": "batch"}', "spec.pipeline_key is required" } }) do
        local r = atai({ "job", "create", "--file", "-" }, { stdin = case[1] })
        assert.are.equal(2, r.code, r.stderr)
        assert.is_truthy(r.stderr:find(case[2], 1, true), r.stderr)
        assert_clean(r)
      end
      assert.are.equal(0, #srv:requests())
    end)

    it("points at the command's help", function()
      local r = atai({ "job", "wait", "job_running", "--interval", "soon" })
      assert.is_truthy(r.stderr:find("Run 'atai help job wait' for usage.", 1, true), r.stderr)
    end)
  end)

  describe("the API key", function()
    it("missing: exit 4 before any request", function()
      for _, key in ipairs({ false, "", "  \n" }) do
        local r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_KEY = key } })
        assert.are.equal(4, r.code)
        assert.is_truthy(r.stderr:find("no API key: set the ATAI_API_KEY environment variable", 1, true), r.stderr)
        assert.are.equal("", r.stdout)
      end
      assert.are.equal(0, #srv:requests())
    end)

    it("missing, with a bad id too: the usage error wins (exit 2)", function()
      local r = atai({ "job", "get", "bad/id" }, { env = { ATAI_API_KEY = false } })
      assert.are.equal(2, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("invalid byte at position 4", 1, true), r.stderr)
      assert.are.equal(0, #srv:requests())
    end)

    it("wrong: the API's 401 exits 4", function()
      local r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_KEY = "sk-wrong" } })
      assert.are.equal(4, r.code)
      assert.is_truthy(r.stderr:find("auth error (HTTP 401)", 1, true), r.stderr)
    end)

    it("--api-key works, with a warning to prefer the environment", function()
      local r = atai({ "--api-key", KEY, "job", "get", "job_running", "--verbose" }, { env = { ATAI_API_KEY = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("--api-key is visible to other users", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("prefer the ATAI_API_KEY environment variable", 1, true), r.stderr)
      assert_clean(r)
      assert.are.equal("ok", srv:requests()[1].auth)
    end)

    it("a 403 exits 4", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { status = 403 } } }
      local r = atai({ "job", "get", "job_running" })
      assert.are.equal(4, r.code)
      assert.is_truthy(r.stderr:find("permission error (HTTP 403)", 1, true), r.stderr)
    end)
  end)

  describe("job get", function()
    it("prints a compact line: id, status, pipeline, progress, failed, age", function()
      local r = atai({ "job", "get", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^job_running  RUNNING    machine%-state%-classification  2/4 %(50%%%)  failed 0  %d+d\n$"),
        r.stdout)
      assert.are.equal("", r.stderr)
    end)

    it("--json: the job object, keys sorted", function()
      local r = atai({ "--json", "job", "get", "job_failed" })
      assert.are.equal(0, r.code, r.stderr)
      local job = r.json()
      assert.are.equal("job_failed", job.id)
      assert.are.equal("FAILED", job.status)
      assert.are.equal(1, job.input_progress.failed)
      local keys = {}
      for key in r.stdout:gmatch('"([%w_]+)":') do
        if key == "created_at" or key == "id" or key == "name" or key == "status" then keys[#keys + 1] = key end
      end
      assert.are.same({ "created_at", "id", "name", "status" }, keys)
      assert.are.equal(1, #lines(r.stdout))
    end)

    it("several ids: an array in the order given, null for an id that failed (its error on stderr)", function()
      local r = atai({ "job", "get", "job_failed", "job_missing", "job_running", "--json" })
      assert.are.equal(5, r.code)
      local list = r.json()
      assert.are.equal(3, #list)
      assert.are.equal("job_failed", list[1].id)
      assert.are.equal(cjson.null, list[2])
      assert.are.equal("job_running", list[3].id)
      assert.is_truthy(r.stderr:find("job_missing: not_found error (HTTP 404): Job job_missing not found", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("[code=not_found]", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("[error_uid=err-", 1, true), r.stderr)
      assert.are.equal(3, hits("/batch/jobs/job_failed") + hits("/batch/jobs/job_missing") + hits("/batch/jobs/job_running"))
    end)

    it("one id that failed: nothing on stdout with --json", function()
      local r = atai({ "job", "get", "job_missing", "--json" })
      assert.are.equal(5, r.code)
      assert.are.equal("", r.stdout)
    end)

    it("several ids are fetched concurrently (overlapping requests)", function()
      for _, id in ipairs({ "job_failed", "job_running", "job_pending" }) do
        srv:fault { path = "/v0.5/batch/jobs/" .. id, responses = { { delay = 0.3, pass = true } } }
      end
      local r = atai({ "job", "get", "job_failed", "job_running", "job_pending" })
      assert.are.equal(0, r.code, r.stderr)
      local first, last = math.huge, -math.huge
      for _, req in ipairs(srv:requests()) do
        first, last = math.min(first, req.t), math.max(last, req.t)
      end
      assert.is_true(last - first < 0.3, "the requests did not overlap")
    end)

    local STATUS_CODES = {
      { { "job_2abc3def4ghi5jkl6mno7pqr" }, 0 }, { { "job_failed" }, 3 }, { { "job_cancelled" }, 6 },
      { { "job_running" }, 8 }, { { "job_pending" }, 8 },
      { { "job_failed", "job_running" }, 3 }, { { "job_cancelled", "job_running" }, 6 },
      { { "job_failed", "job_missing" }, 5 }, { { "job_running", "job_2abc3def4ghi5jkl6mno7pqr" }, 8 },
    }
    for _, case in ipairs(STATUS_CODES) do
      it(("--exit-status of %s: %d"):format(table.concat(case[1], " "), case[2]), function()
        local args = { "job", "get", "--exit-status" }
        for _, id in ipairs(case[1]) do args[#args + 1] = id end
        local r = atai(args)
        assert.are.equal(case[2], r.code, r.stderr)
        assert.are.equal(#case[1] - (case[2] == 5 and 1 or 0), #lines(r.stdout))
      end)
    end

    it("any status exits 0 without --exit-status", function()
      local r = atai({ "job", "get", "job_failed", "job_cancelled", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(3, #lines(r.stdout))
    end)

    local RUNTIME = {
      { { status = 500 }, "server error (HTTP 500)" },
      { { status = 429 }, "rate_limited error (HTTP 429)" },
      { { status = 409 }, "conflict error (HTTP 409)" },
      { { status = 200, body = "<html>oops</html>" }, "decode error" },
      { { close = true }, "network error" },
    }
    for _, case in ipairs(RUNTIME) do
      it("a runtime error exits 1: " .. case[2], function()
        srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { case[1] } }
        local r = atai({ "job", "get", "job_running", "--retries", "0" })
        assert.are.equal(1, r.code)
        assert.is_truthy(r.stderr:find("job_running: " .. case[2], 1, true), r.stderr)
        assert.are.equal("", r.stdout)
        assert_clean(r)
      end)
    end

    it("an unreachable endpoint exits 1 (network)", function()
      local r = atai({ "job", "get", "job_running", "--retries", "0" }, { env = { ATAI_API_ENDPOINT = "http://127.0.0.1:1/v0.5" } })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("network error", 1, true), r.stderr)
    end)

    it("a bad ATAI_API_ENDPOINT is a config error: exit 1", function()
      local r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_ENDPOINT = "ftp://example.com" } })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("config error", 1, true), r.stderr)
      assert.are.equal(0, #srv:requests())
    end)
  end)

  describe("global flags", function()
    it("are accepted before and after the command words", function()
      for _, args in ipairs({ { "--json", "--quiet", "job", "get", "job_running" }, { "job", "--json", "get", "job_running", "--quiet" } }) do
        local r = atai(args)
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("job_running", r.json().id)
      end
    end)

    it("--endpoint replaces ATAI_API_ENDPOINT", function()
      local r = atai({ "queue", "--endpoint", srv.endpoint }, { env = { ATAI_API_ENDPOINT = "http://127.0.0.1:1/v0.5" } })
      assert.are.equal(0, r.code, r.stderr)
    end)

    it("--verbose: one line per HTTP exchange (method, path, status, time, attempt), never the key", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { status = 503 }, { pass = true } } }
      local r = atai({ "job", "get", "job_running", "job_failed", "--verbose", "--retries", "1" })
      assert.are.equal(0, r.code, r.stderr)
      local exchanges = {}
      for line in r.stderr:gmatch("[^\n]+") do
        if line:find("^atai: GET ") then exchanges[#exchanges + 1] = line end
      end
      assert.are.equal(3, #exchanges, r.stderr)
      assert.is_truthy(r.stderr:find("atai: GET /[%w/.]*batch/jobs/job_running %-> 503 %([%d.]+ s, attempt 1%)"), r.stderr)
      assert.is_truthy(r.stderr:find("atai: GET /[%w/.]*batch/jobs/job_running %-> 200 %([%d.]+ s, attempt 2%)"), r.stderr)
      assert.is_truthy(r.stderr:find("atai: GET /[%w/.]*batch/jobs/job_failed %-> 200 %([%d.]+ s, attempt 1%)"), r.stderr)
      assert_clean(r)
    end)

    it("--retries N: N retries of a retryable failure", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { status = 503 }, { pass = true } } }
      assert.are.equal(0, atai({ "job", "get", "job_running", "--retries", "1" }).code)
      assert.are.equal(2, hits("/batch/jobs/job_running"))
      srv:reset()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { status = 503 }, { pass = true } } }
      assert.are.equal(1, atai({ "job", "get", "job_running", "--retries", "0" }).code)
      assert.are.equal(1, hits("/batch/jobs/job_running"))
    end)

    it("--request-timeout bounds each HTTP attempt", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { delay = 2, pass = true } } }
      local r = atai({ "job", "get", "job_running", "--request-timeout", "100ms", "--retries", "0" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("timeout error", 1, true), r.stderr)
    end)

    it("--quiet prints nothing but errors", function()
      local r = atai({ "job", "get", "job_running", "job_missing", "--quiet" })
      assert.are.equal(5, r.code)
      assert.are.equal("", r.stdout)
      assert.is_truthy(r.stderr:find("job_missing: not_found", 1, true), r.stderr)
    end)

    it("colours the status on a terminal, not with --no-color or NO_COLOR, not off a terminal", function()
      local text, code = atai_tty({ "job", "get", "job_failed" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\27[31mFAILED", 1, true), text)
      for _, run in ipairs({ { { "job", "get", "job_failed", "--no-color" } }, { { "job", "get", "job_failed" }, { NO_COLOR = "1" } } }) do
        local plain = atai_tty(run[1], run[2])
        assert.is_truthy(plain:find("job_failed  FAILED", 1, true), plain)
        assert.is_nil(plain:find("\27[", 1, true), plain)
      end
      local r = atai({ "job", "get", "job_failed" })
      assert.is_nil(r.stdout:find("\27", 1, true), r.stdout)
    end)
  end)

  describe("job list", function()
    it("prints the newest jobs first, one line each", function()
      local r = atai({ "job", "list" })
      assert.are.equal(0, r.code, r.stderr)
      local got = lines(r.stdout)
      assert.are.equal(7, #got)
      assert.is_truthy(got[#got]:find("^job_2abc3def4ghi5jkl6mno7pqr  COMPLETED"), got[#got])
    end)

    it("--status (any case) and --type filter; --json prints the array of jobs", function()
      local r = atai({ "job", "list", "--status", "failed", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      local jobs = r.json()
      assert.are.equal(1, #jobs)
      assert.are.equal("job_failed", jobs[1].id)
      local q = util.parse_query(srv:requests()[1].query)
      assert.are.same({ "FAILED" }, q.status)
      r = atai({ "job", "list", "--type", "training", "--json" })
      assert.are.equal("job_numbers", r.json()[1].id)
      assert.are.equal(1, #r.json())
    end)

    it("an empty list is [] with --json", function()
      local r = atai({ "job", "list", "--status", "ADMITTED", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("[]\n", r.stdout)
    end)

    it("--limit N prints N jobs from one page of N", function()
      local r = atai({ "job", "list", "--limit", "2" })
      assert.are.equal(2, #lines(r.stdout))
      assert.are.equal(1, #srv:requests())
      assert.are.same({ "2" }, util.parse_query(srv:requests()[1].query).limit)
    end)

    it("prints 20 jobs by default, every job with --all", function()
      local client = require("atai").new { endpoint = srv.endpoint, api_key = KEY }
      for i = 1, 14 do assert(client:create_job { name = "bulk-" .. i, pipeline_type = "batch",
        pipeline_key = "machine-state-classification" }) end
      client:close()
      assert.are.equal(20, #lines(atai({ "job", "list" }).stdout))
      local r = atai({ "job", "list", "--all", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(21, #r.json())
    end)

    it("a failing page: its error on stderr, exit by kind", function()
      srv:fault { path = "/v0.5/batch/jobs", method = "GET", responses = { { status = 401 } } }
      local r = atai({ "job", "list", "--json" })
      assert.are.equal(4, r.code)
      assert.are.equal("", r.stdout)
    end)
  end)

  describe("job wait", function()
    it("follows a created job to COMPLETED: exit 0, a line per status change off a terminal", function()
      local id = create()
      local r = atai({ "job", "wait", id, "--interval", "50ms" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^" .. id .. "  COMPLETED  machine%-state%-classification  2/2 %(100%%%)  failed 0  %d+s\n$"), r.stdout)
      local progress = lines(r.stderr)
      assert.are.equal(2, #progress, r.stderr)
      assert.is_truthy(progress[1]:find("^" .. id .. "  RUNNING"), progress[1])
      assert.is_truthy(progress[2]:find("^" .. id .. "  COMPLETED  2/2 %(100%%%)  [%d.]+s$"), progress[2])
      assert.is_nil(r.stderr:find("\27", 1, true))
    end)

    it("a created job that FAILS exits 3; --json prints the job", function()
      local id = create("will-fail")
      local r = atai({ "job", "wait", id, "--interval", "50ms", "--json", "--quiet" })
      assert.are.equal(3, r.code, r.stderr)
      assert.are.equal("FAILED", r.json().status)
      assert.are.equal("", r.stderr)
    end)

    it("a CANCELLED job exits 6", function()
      assert.are.equal(6, atai({ "job", "wait", "job_cancelled" }).code)
    end)

    it("times out: exit 7, the last job seen in --json", function()
      local r = atai({ "job", "wait", "job_running", "--timeout", "200ms", "--interval", "50ms", "--json" })
      assert.are.equal(7, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("job_running: timed out (last status: RUNNING)", 1, true), r.stderr)
      assert.are.equal("RUNNING", r.json().status)
      assert.is_true(hits("/batch/jobs/job_running") >= 2)
    end)

    local SEVERITY = {
      { { "job_failed", "job_running" }, 3 }, { { "job_cancelled", "job_running" }, 6 },
      { { "job_missing", "job_failed" }, 5 }, { { "job_2abc3def4ghi5jkl6mno7pqr", "job_running" }, 7 },
      { { "job_2abc3def4ghi5jkl6mno7pqr", "job_numbers" }, 0 },
    }
    for _, case in ipairs(SEVERITY) do
      it(("%s: exit %d (the most severe)"):format(table.concat(case[1], " + "), case[2]), function()
        local args = { "job", "wait", "--timeout", "150ms", "--interval", "50ms", "--json" }
        for _, id in ipairs(case[1]) do args[#args + 1] = id end
        local r = atai(args)
        assert.are.equal(case[2], r.code, r.stderr)
        local list = r.json()
        for i, id in ipairs(case[1]) do
          if id == "job_missing" then assert.are.equal(cjson.null, list[i]) else assert.are.equal(id, list[i].id) end
        end
      end)
    end

    it("--fail-fast stops at the first FAILED job, without waiting for the others", function()
      local r = atai({ "job", "wait", "job_running", "job_failed", "--fail-fast", "--interval", "50ms",
        "--timeout", "5s", "--json" })
      assert.are.equal(3, r.code, r.stderr)
      local list = r.json()
      assert.are.equal("RUNNING", list[1].status)
      assert.are.equal("FAILED", list[2].status)
      assert.is_true(hits("/batch/jobs/job_running") <= 2, "job_running was polled on after the failure")
      assert.is_nil(r.stderr:find("timed out", 1, true), r.stderr)
    end)

    it("--fail-fast stops at a CANCELLED job too (exit 6)", function()
      local r = atai({ "job", "wait", "job_running", "job_cancelled", "--fail-fast", "--interval", "50ms", "--timeout", "5s" })
      assert.are.equal(6, r.code, r.stderr)
      assert.is_true(hits("/batch/jobs/job_running") <= 2)
    end)

    it("polls several jobs concurrently (overlapping requests)", function()
      for _, id in ipairs({ "job_failed", "job_cancelled" }) do
        srv:fault { path = "/v0.5/batch/jobs/" .. id, responses = { { delay = 0.3, pass = true } } }
      end
      local r = atai({ "job", "wait", "job_failed", "job_cancelled" })
      assert.are.equal(3, r.code, r.stderr)
      local reqs = srv:requests()
      assert.is_true(math.abs(reqs[2].t - reqs[1].t) < 0.3, "the polls did not overlap")
    end)

    it("goes on after a retryable polling error, saying so", function()
      local id = create()
      srv:fault { path = "/v0.5/batch/jobs/" .. id, responses = { { status = 503 } } }
      local r = atai({ "job", "wait", id, "--interval", "50ms", "--retries", "0" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("retrying after: server error (HTTP 503)", 1, true), r.stderr)
    end)

    it("on a terminal: a live line per job redrawn in place, with a progress bar", function()
      local a, b = create("tty-a"), create("tty-b")
      local text, code = atai_tty({ "job", "wait", a, b, "--interval", "50ms" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\27[2A", 1, true), "no cursor-up over the two lines")
      assert.is_truthy(text:find("\r\27[K" .. a, 1, true), text)
      assert.is_truthy(text:find("[" .. ("#"):rep(16) .. "]  2/2 (100%)", 1, true), text)
      assert.is_truthy(text:find("[" .. ("."):rep(16) .. "]  0/2 (0%)", 1, true), text)
      for line in text:gsub("\27%[%d*m", ""):gmatch("\r\27%[K([^\r\n]*)") do
        assert.is_true(#line < 80, "a live line is wider than the terminal: " .. line)
      end
      assert.is_truthy(text:find("\27[32mCOMPLETED", 1, true), text)
    end)

    it("on a terminal with --no-color: redrawn, not coloured, cut to the terminal's width", function()
      local text, code = atai_tty({ "job", "wait", create(), "--interval", "50ms", "--no-color" }, nil, 50)
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\27[1A", 1, true), text)
      assert.is_nil(text:find("\27[32m", 1, true), text)
      local n = 0
      for line in text:gmatch("\r\27%[K([^\r\n]*)") do
        n = n + 1
        assert.is_true(#line < 50, line)
      end
      assert.is_true(n >= 2)
    end)

    it("Ctrl-C stops cleanly: exit 130", function()
      local err = os.tmpname()
      local script = ([[
%s %s/bin/atai job wait job_running --interval 50ms 2>%s &
pid=$!
n=0
until grep -q RUNNING %s || [ $n -gt 100 ]; do sleep 0.05; n=$((n+1)); done
kill -INT $pid
wait $pid
echo $?]]):format(env_prefix(), ROOT, err, err)
      local p = assert(io.popen("sh -c " .. quote(script)))
      local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
      p:close()
      local stderr = read_file(err)
      os.remove(err)
      assert.are.equal(130, code, stderr)
      assert.is_truthy(stderr:find("atai: interrupted", 1, true), stderr)
      assert.is_nil(stderr:find("traceback", 1, true), stderr)
    end)
  end)

  describe("job cancel, retry, delete", function()
    it("cancel: the job is CANCELLED (get --exit-status then exits 6)", function()
      local r = atai({ "job", "cancel", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_running  CANCELLED\n", r.stdout)
      assert.are.equal(6, atai({ "job", "get", "job_running", "--exit-status" }).code)
    end)

    it("cancel --json prints the API's object; a finished job is a conflict (exit 1)", function()
      local r = atai({ "job", "cancel", "job_pending", "--json" })
      assert.are.equal("CANCELLED", r.json().status)
      assert.are.equal("job_pending", r.json().id)
      r = atai({ "job", "cancel", "job_failed" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("job_failed: conflict error (HTTP 409)", 1, true), r.stderr)
    end)

    it("retry re-queues a FAILED job; a running one is a conflict", function()
      local r = atai({ "job", "retry", "job_failed" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_failed  PENDING  retry 1\n", r.stdout)
      assert.are.equal(1, atai({ "job", "retry", "job_running" }).code)
    end)

    it("delete removes the job (get then exits 5)", function()
      local r = atai({ "job", "delete", "job_failed", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_failed", r.json().id)
      assert.are.equal("job_cancelled  deleted\n", atai({ "job", "delete", "job_cancelled" }).stdout)
      assert.are.equal(5, atai({ "job", "get", "job_failed" }).code)
      assert.are.equal(5, atai({ "job", "delete", "job_failed" }).code)
    end)
  end)

  describe("job create", function()
    it("--file SPEC.json posts the spec and prints the new job", function()
      local file = os.tmpname()
      write_file(file, cjson.encode(CREATE_SPEC))
      local r = atai({ "job", "create", "--file", file })
      os.remove(file)
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^job_%w+  PENDING    machine%-state%-classification  %-  failed %-  %d+s\n$"), r.stdout)
      local body = cjson.decode(srv:requests()[1].body)
      assert.are.equal("cli-run", body.name)
      assert.are.equal("a.csv", body.inputs["worker.inference"][1].file_id)
    end)

    it("an API refusal exits 1 with the API's code", function()
      local r = atai({ "job", "create", "--file", "-" }, { stdin = '{"name": "x", "pipeline_type": "batch", "pipeline_key": "no-such-pipeline"}' })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("invalid_request error (HTTP 4", 1, true), r.stderr)
    end)
  end)

  describe("job events, inputs, outputs", function()
    it("events: a line per event; --level filters; --json an array", function()
      local r = atai({ "job", "events", "job_failed" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(5, #lines(r.stdout))
      assert.is_truthy(r.stdout:find("FAILED   inference.failed  Input file format not supported  [inp_", 1, true), r.stdout)
      r = atai({ "job", "events", "job_failed", "--level", "failed", "--json" })
      local events = r.json()
      assert.are.equal(2, #events)
      for _, e in ipairs(events) do assert.are.equal("FAILED", e.level) end
    end)

    it("events --follow prints new events until the job is finished and drained", function()
      local id = create()
      local r = atai({ "job", "events", id, "--follow", "--interval", "50ms", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      local events, ids = r.json(), {}
      for _, e in ipairs(events) do
        assert.is_nil(ids[e.id], "event printed twice")
        ids[e.id] = true
      end
      assert.are.equal("job.created", events[1].event_type)
      assert.are.equal("job.completed", events[#events].event_type)
      local all = atai({ "job", "events", id, "--json" }).json()
      assert.are.equal(#all, #events)
    end)

    it("events --follow of a finished job prints its events and ends", function()
      local r = atai({ "job", "events", "job_failed", "--follow" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(5, #lines(r.stdout))
    end)

    it("events --follow: a failing events page exits by its kind", function()
      srv:fault { path = "/v0.5/batch/jobs/job_failed/events", responses = { { status = 500 } } }
      local r = atai({ "job", "events", "job_failed", "--follow", "--retries", "0" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("job_failed: server error (HTTP 500)", 1, true), r.stderr)
    end)

    it("events of an unknown job exits 5", function()
      assert.are.equal(5, atai({ "job", "events", "job_missing" }).code)
      assert.are.equal(5, atai({ "job", "events", "job_missing", "--follow" }).code)
    end)

    it("inputs: status, port and file of each input", function()
      local r = atai({ "job", "inputs", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      local got = lines(r.stdout)
      assert.are.equal(4, #got)
      assert.is_truthy(got[3]:find("^inp_%w+  processing  worker.inference  input_03.csv$"), got[3])
      assert.are.equal(4, #atai({ "job", "inputs", "job_running", "--json" }).json())
    end)

    it("outputs: every page, with the download URL", function()
      local r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(25, #r.json())
      r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr" })
      assert.is_truthy(r.stdout:find("pred_tep_inference_part_025.csv  https://storage.example.com/outputs/", 1, true))
      assert.are.equal(5, atai({ "job", "outputs", "job_missing" }).code)
    end)
  end)

  describe("files upload, job outputs --download", function()
    local TEP = "job_2abc3def4ghi5jkl6mno7pqr"
    local dir

    before_each(function() dir = helpers.tmpdir() end)
    after_each(function() helpers.remove(dir) end)

    it("files upload: a line per file (id, size, route); --json the result, an array for several", function()
      write_file(dir .. "/a.csv", "a,b\n1,2\n")
      write_file(dir .. "/b.csv", "x\n")
      local r = atai({ "files", "upload", dir .. "/a.csv" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("a.csv  8 B  simple\n", r.stdout)
      assert.are.equal("a,b\n1,2\n", srv:stats().files["a.csv"].content)
      r = atai({ "files", "upload", dir .. "/a.csv", dir .. "/b.csv", "--json" })
      local doc = r.json()
      assert.are.equal("a.csv", doc[1].file_id)
      assert.are.equal("b.csv", doc[2].file_id)
      assert.are.equal("a.csv", atai({ "files", "upload", dir .. "/a.csv", "--json" }).json().file_id)
      assert_clean(r)
    end)

    it("files upload: a file that cannot be read fails (exit 1), the others still go", function()
      write_file(dir .. "/ok.csv", "1\n")
      local r = atai({ "files", "upload", dir .. "/missing.csv", dir .. "/ok.csv" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("missing.csv: io error", 1, true), r.stderr)
      assert.are.equal("ok.csv  2 B  simple\n", r.stdout)
      assert.are.equal(2, atai({ "files" }).code)
      assert.are.equal(2, atai({ "files", "upload" }).code)
      assert.are.equal(2, atai({ "files", "upload", dir .. "/ok.csv", "--parallel", "0" }).code)
    end)

    it("files upload on a terminal draws a progress bar", function()
      write_file(dir .. "/t.csv", ("0123456789\n"):rep(1000))
      local text, code = atai_tty({ "files", "upload", dir .. "/t.csv" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\r\27[K" .. dir .. "/t.csv  [################]  10.7 KiB / 10.7 KiB  100%", 1, true), text)
    end)

    it("Ctrl-C during a multipart upload aborts it: exit 130", function()
      local path = dir .. "/big.csv"
      assert(os.execute("truncate -s 100M " .. quote(path)))
      srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { delay = 10, pass = true } } }
      local pid_file, code_file = dir .. "/pid", dir .. "/code"
      os.execute(("sh -c %s &"):format(quote(("%s %s/bin/atai files upload %s 2>%s & echo $! >%s; wait $!; echo $? >%s")
        :format(env_prefix(), ROOT, quote(path), quote(dir .. "/err"), quote(pid_file), quote(code_file)))))
      local started = false
      for _ = 1, 200 do
        started = helpers.read(pid_file) and #helpers.requests(srv, "/_storage/") > 0
        if started then break end
        socket.sleep(0.05)
      end
      assert.is_true(started)
      os.execute("kill -INT " .. helpers.read(pid_file))
      for _ = 1, 200 do
        if helpers.read(code_file) then break end
        socket.sleep(0.05)
      end
      assert.are.equal("130", (helpers.read(code_file) or ""):match("%d+"))
      assert.is_truthy(helpers.read(dir .. "/err"):find("atai: interrupted", 1, true))
      local _, upload = next(srv:stats().uploads)
      assert.are.equal("aborted", upload.status)
    end)

    it("job outputs --download DIR: every output in DIR, a summary; again: all skipped", function()
      srv:control("POST", "/_fake/outputs", { job_id = TEP, outputs = { { filename = "a.csv", num_bytes = 1000 },
        { filename = "b.csv", num_bytes = 2000 } } })
      local r = atai({ "job", "outputs", TEP, "--download", dir .. "/out", "--parallel", "2" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("2 downloaded, 0 skipped (complete), 0 failed; 2.9 KiB into " .. dir .. "/out\n", r.stdout)
      assert.are.same({ "a.csv", "b.csv" }, helpers.list(dir .. "/out"))
      r = atai({ "job", "outputs", TEP, "--download", dir .. "/out", "--json" })
      assert.are.same({ downloaded = 0, skipped = 2, bytes = 0, failed = {}, dir = dir .. "/out" }, r.json())
      assert_clean(r)
    end)

    it("job outputs --download: a failed file is reported (exit 1); a bad job exits 5", function()
      srv:control("POST", "/_fake/outputs", { job_id = TEP, outputs = { { filename = "bad.csv", num_bytes = 10, size = 20 },
        { filename = "ok.csv", num_bytes = 5 } } })
      local r = atai({ "job", "outputs", TEP, "--download", dir, "--json" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("(bad.csv): decode error", 1, true), r.stderr)
      local doc = r.json()
      assert.are.equal(1, doc.downloaded)
      assert.are.equal("bad.csv", doc.failed[1].filename)
      assert.are.equal("decode", doc.failed[1].kind)
      assert.are.equal(5, atai({ "job", "outputs", "job_missing", "--download", dir }).code)
      assert.are.equal(2, atai({ "job", "outputs", TEP, "--parallel", "2" }).code)
    end)

    it("job outputs --download on a terminal draws a progress bar", function()
      srv:control("POST", "/_fake/outputs", { job_id = TEP, outputs = { { filename = "a.csv", num_bytes = 2048 } } })
      local text, code = atai_tty({ "job", "outputs", TEP, "--download", dir })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\r\27[K" .. TEP .. "  [################]  2.0 KiB / 2.0 KiB  100%", 1, true), text)
    end)
  end)

  describe("pipelines, pipeline, queue", function()
    it("pipelines --type: one line per pipeline; --json an array", function()
      local r = atai({ "pipelines", "--type", "training" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(3, #lines(r.stdout))
      assert.is_truthy(r.stdout:find("ppl_anomalytrain01  anomaly-trainer  0.3.0  published  training  Anomaly Trainer", 1, true))
      assert.are.equal(3, #atai({ "pipelines", "--type", "training", "--json" }).json())
    end)

    it("pipeline KEY: the published version; by id too", function()
      local r = atai({ "pipeline", "activity-detection", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("ppl_actdetect00001", r.json().id)
      r = atai({ "pipeline", "ppl_actdetect00000" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^ppl_actdetect00000  activity%-detection  0.9.0  deactivated"), r.stdout)
      assert.is_truthy(r.stdout:find("  inputs:  worker.data\n", 1, true), r.stdout)
    end)

    it("pipeline --schema prints the schema as JSON", function()
      local r = atai({ "pipeline", "machine-state-classification", "--schema" })
      assert.are.equal(0, r.code, r.stderr)
      local schema = r.json()
      assert.are.equal("machine-state-classification", schema.pipeline_key)
      assert.are.equal("table", type(schema.user_schema))
    end)

    it("an unknown pipeline exits 5 (a key that cannot be an id too)", function()
      local r = atai({ "pipeline", "no-such-key" })
      assert.are.equal(5, r.code)
      assert.is_truthy(r.stderr:find("no pipeline with pipeline_key 'no-such-key'", 1, true), r.stderr)
      r = atai({ "pipeline", "no.such.key" })
      assert.are.equal(5, r.code)
      assert.is_truthy(r.stderr:find("no pipeline with pipeline_key 'no.such.key'", 1, true), r.stderr)
    end)

    it("a failing schema or queue request exits 1", function()
      srv:fault { path_prefix = "/v0.5/batch/registry/pipelines/ppl_actdetect00001/schema", responses = { { status = 500 } } }
      local r = atai({ "pipeline", "ppl_actdetect00001", "--schema", "--retries", "0" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.stderr:find("ppl_actdetect00001: server error (HTTP 500)", 1, true), r.stderr)
      assert.are.equal("", r.stdout)
      srv:fault { path = "/v0.5/batch/jobs/queue", responses = { { status = 502 } } }
      r = atai({ "queue", "--retries", "0", "--json" })
      assert.are.equal(1, r.code)
      assert.are.equal("", r.stdout)
    end)

    it("queue: depth per pipeline type; --json the API's object", function()
      local r = atai({ "queue" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("batch  12\ntraining  3\n", r.stdout)
      assert.are.equal(12, atai({ "queue", "--json" }).json().queues[1].depth)
    end)
  end)

  describe("version and help", function()
    it("version: atai, libcurl, TLS, HTTP/2 and Lua, with no API key", function()
      local atai_lib = require("atai")
      local info = atai_lib.core.version_info()
      local r = atai({ "version" }, { env = { ATAI_API_KEY = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(("atai %s\nlibcurl %s (TLS: %s, HTTP/2: %s)\nLua 5.4\n"):format(atai_lib.VERSION,
        info.curl_version, info.ssl_version, info.http2 and "yes" or "no"), r.stdout)
      local doc = atai({ "job", "list", "--version", "--json" }).json()
      assert.are.same({ atai = atai_lib.VERSION, libcurl = info.curl_version, tls = info.ssl_version,
        http2 = info.http2 == true, lua = "Lua 5.4" }, doc)
      assert.are.equal(0, #srv:requests())
    end)

    it("help lists every command; help COMMAND, --help and -h its flags", function()
      local r = atai({ "help" })
      assert.are.equal(0, r.code)
      for _, c in ipairs({ "job get", "job list", "job wait", "job create", "job events", "pipelines", "queue", "version" }) do
        assert.is_truthy(r.stdout:find("\n  " .. c .. " ", 1, true), c)
      end
      for _, args in ipairs({ { "help", "job", "wait" }, { "job", "wait", "--help" }, { "-h", "job", "wait", "x" } }) do
        r = atai(args, { env = { ATAI_API_KEY = false } })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy(r.stdout:find("Usage: atai job wait ID...", 1, true), r.stdout)
        assert.is_truthy(r.stdout:find("--fail-fast", 1, true), r.stdout)
      end
    end)

    it("help exit-codes: every code, the order, and the same codes in the README", function()
      local r = atai({ "help", "exit-codes" })
      assert.are.equal(0, r.code)
      local readme = read_file("README.md")
      for _, code in ipairs({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 130 }) do
        assert.is_truthy(r.stdout:find("\n  " .. code .. " ", 1, true), code)
        assert.is_truthy(readme:find("\n| " .. code .. " |", 1, true), "README has no row for exit code " .. code)
      end
      assert.is_truthy(r.stdout:find("130, 2, 4, 1, 5, 3, 6, 7, 8, 0", 1, true))
      assert.is_truthy(readme:find("130, 2, 4, 1, 5, 3, 6, 7, 8, 0", 1, true))
    end)
  end)

  it("without the library next to it or on the path: exit 1, saying so", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -p %s/bin && cp bin/atai %s/bin/"):format(dir, dir)))
    local r = atai({ "version" }, { bin = dir .. "/bin/atai", cwd = "/", env = { LUA_PATH = "/nonexistent/?.lua", LUA_CPATH = "/nonexistent/?.so" } })
    os.execute("rm -rf " .. dir)
    assert.are.equal(1, r.code)
    assert.is_truthy(r.stderr:find("^atai: cannot load the atai library: module 'atai' not found"), r.stderr)
  end)

  describe("make install, make env", function()
    local function sh(cmd)
      local p = assert(io.popen(cmd .. " 2>&1; echo \"<exit $?>\""))
      local text = p:read("*a")
      p:close()
      return text, tonumber(text:match("<exit (%d+)>%s*$"))
    end

    it("installs into DESTDIR; the installed atai runs from another folder; uninstall removes it", function()
      local dest = sh("mktemp -d"):match("^(%S+)")
      local text, code = sh(("make --no-print-directory install LUA=lua5.4 PREFIX=/opt/atai DESTDIR=%s"):format(dest))
      assert.are.equal(0, code, text)
      local bin = dest .. "/opt/atai/bin/atai"
      local lua_bin = sh("command -v lua5.4"):match("^(%S+)")
      assert.are.equal("#!" .. lua_bin, read_file(bin):match("^[^\n]*"))
      for _, file in ipairs({ "share/lua/5.4/atai/init.lua", "share/lua/5.4/atai/api.lua", "lib/lua/5.4/atai/core.so" }) do
        assert.is_truthy(io.open(dest .. "/opt/atai/" .. file), file)
      end
      local r = atai({ "version", "--verbose" }, { bin = bin, cwd = "/", env = { LUA_PATH = false, LUA_CPATH = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("atai from " .. dest .. "/opt/atai/bin/../share/lua/5.4/atai/init.lua", 1, true), r.stdout)
      assert.is_truthy(r.stdout:find("atai.core from " .. dest .. "/opt/atai/bin/../lib/lua/5.4/atai/core.so", 1, true), r.stdout)
      r = atai({ "job", "get", "job_running", "--json" }, { bin = bin, cwd = "/", env = { LUA_PATH = false, LUA_CPATH = false } })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_running", r.json().id)
      text, code = sh(("make --no-print-directory uninstall LUA=lua5.4 PREFIX=/opt/atai DESTDIR=%s"):format(dest))
      assert.are.equal(0, code, text)
      local left = sh(("find %s -type f"):format(dest))
      assert.are.equal("<exit 0>", left:match("^%s*(.-)%s*$"))
      sh("rm -rf " .. dest)
    end)

    it("make env prints exports that run this checkout's atai from anywhere", function()
      local text, code = sh(("cd / && eval \"$(make -s --no-print-directory -C %s env)\" && atai version --verbose"):format(ROOT))
      assert.are.equal(0, code, text)
      local root = ROOT:gsub("%p", "%%%0")
      assert.is_truthy(text:find("atai from " .. root .. "/[%w/.]*lua/atai/init.lua"), text)
      assert.is_truthy(text:find("atai.core from " .. root .. "/[%w/.]*build/lua5.4/atai/core.so"), text)
    end)
  end)
end)

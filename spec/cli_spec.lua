-- spec/cli_spec.lua: the command line (atai.cli) against the fake API:
-- every command and flag, stdout, stderr and the exit code, --json output
-- decoded back. Most cases call atai.cli.run in-process (every Lua of make
-- test-all); what needs a real process runs bin/atai under lua5.4 only:
-- exit codes seen by a shell, a terminal through script(1), Ctrl-C,
-- /dev/full, a pipe closed by its reader, completion in bash, make
-- install/env.
local util = require("spec.support.util")

-- The cases that run bin/atai as a process (lua5.4 only).
local process_it = util.lua == "lua5.4" and it or function(name)
  pending(name .. " (a bin/atai process: lua5.4 only; this run: " .. util.lua .. ")")
end

local cjson = require("cjson")
local socket = require("socket")
local server = require("spec.support.server")
local helpers = require("spec.support.files")
local cli = require("atai.cli")

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
local function env_vars(env)
  local vars = { ATAI_API_KEY = KEY, ATAI_API_ENDPOINT = srv.endpoint, NO_COLOR = false,
    LUA_CPATH = util.cpath .. ";./?.so;;" }
  for k, v in pairs(env or {}) do vars[k] = v end
  return vars
end

local function env_prefix(env)
  local unset, set = {}, {}
  for k, v in pairs(env_vars(env)) do
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

local function result(code, stdout, stderr)
  local r = { code = code, stdout = stdout, stderr = stderr }
  function r.json() return cjson.decode(r.stdout) end
  return r
end

-- Runs bin/atai ARGS as a process; opts.env, opts.stdin (text), opts.bin
-- (another atai), opts.cwd. Returns { code, stdout, stderr, json() }.
local function atai_process(args, opts)
  opts = opts or {}
  local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
  write_file(input, opts.stdin or "")
  local cmd = ("%s%s %s %s <%s >%s 2>%s; echo $?"):format(opts.cwd and ("cd " .. quote(opts.cwd) .. " && ") or "",
    env_prefix(opts.env), quote(opts.bin or (ROOT .. "/bin/atai")), command_line(args), input, out, err)
  local p = assert(io.popen(cmd))
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local r = result(code, read_file(out), read_file(err))
  os.remove(out); os.remove(err); os.remove(input)
  return r
end

-- A stream that keeps what is written to it.
local function sink()
  local parts = {}
  return {
    write = function(self, ...)
      for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
      return self
    end,
    flush = function(self) return self end,
    text = function() return table.concat(parts) end,
  }
end

-- Runs atai.cli.run(ARGS) in this process, with the environment of
-- env_vars(opts.env) and opts.stdin; the same result as atai_process.
local function atai(args, opts)
  opts = opts or {}
  if opts.bin or opts.cwd then return atai_process(args, opts) end
  local vars = env_vars(opts.env)
  local stdin = { text = opts.stdin or "" }
  function stdin.read(self)
    local text = self.text
    self.text = ""
    return text
  end
  local out, err = sink(), sink()
  local code = cli.run(args, { stdin = stdin, stdout = out, stderr = err,
    getenv = function(name) return vars[name] or nil end })
  return result(code, out:text(), err:text())
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

describe("atai.cli", function()
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
      { { "job", "list", "--type", "" }, "--type: empty value" },
      { { "pipelines", "--type=" }, "--type: empty value" },
      { { "job", "events", "job_running", "--level", "" }, "--level: empty value" },
      { { "job", "outputs", "job_running", "-o", "" }, "--download: empty value" },
      { { "pipeline", "" }, "pipeline: an empty ID|KEY" },
      { { "job", "wait", "job_running", "--timeout", "9999999h" }, "--timeout: bad duration '9999999h'" },
      { { "queue", "--request-timeout", "25h" }, "--request-timeout: '25h' is out of range (0.001 to 86400 seconds)" },
      { { "job", "outputs", "job_running", "-o", "d", "--max-seconds", "8d" }, "--max-seconds: bad duration '8d'" },
      { { "job", "outputs", "job_running", "-o", "d", "--max-seconds", "169h" }, "--max-seconds: '169h' is out of range" },
      { { "job", "outputs", "job_running", "-o", "d", "--max-seconds", "500ms" }, "--max-seconds: '500ms' is out of range" },
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
    it("prints a row: id, status, pipeline, progress, failed, age (tab-separated when piped)", function()
      local r = atai({ "job", "get", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^job_running\tRUNNING\tmachine%-state%-classification\t2/4 %(50%%%)\t0\t%d+d\n$"),
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

    process_it("colours the status on a terminal, not with --no-color or NO_COLOR, not off a terminal", function()
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
      assert.is_truthy(got[#got]:find("^job_2abc3def4ghi5jkl6mno7pqr\tCOMPLETED\t"), got[#got])
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
      assert.is_truthy(r.stdout:find("^" .. id .. "\tCOMPLETED\tmachine%-state%-classification\t2/2 %(100%%%)\t0\t%d+s\n$"), r.stdout)
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

    process_it("on a terminal: a live line per job redrawn in place, with a progress bar", function()
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

    process_it("on a terminal with --no-color: redrawn, not coloured, cut to the terminal's width", function()
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

    process_it("Ctrl-C stops cleanly: exit 130", function()
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
      assert.are.equal("job_running\tCANCELLED\t-\n", r.stdout)
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
      assert.are.equal("job_failed\tPENDING\t1\n", r.stdout)
      assert.are.equal(1, atai({ "job", "retry", "job_running" }).code)
    end)

    it("delete removes the job (get then exits 5)", function()
      local r = atai({ "job", "delete", "job_failed", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_failed", r.json().id)
      assert.are.equal("job_cancelled\tdeleted\n", atai({ "job", "delete", "job_cancelled" }).stdout)
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
      assert.is_truthy(r.stdout:find("^job_%w+\tPENDING\tmachine%-state%-classification\t%-\t%-\t%d+s\n$"), r.stdout)
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
      assert.is_truthy(r.stdout:find("\tFAILED\tinference.failed\tInput file format not supported\tinp_", 1, true), r.stdout)
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
      assert.is_truthy(got[3]:find("^inp_%w+\tprocessing\tworker.inference\tinput_03.csv\t%-$"), got[3])
      assert.are.equal(4, #atai({ "job", "inputs", "job_running", "--json" }).json())
    end)

    it("outputs: every page, with the download URL", function()
      local r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(25, #r.json())
      r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr" })
      assert.is_truthy(r.stdout:find("pred_tep_inference_part_025.csv\thttps://storage.example.com/outputs/", 1, true))
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
      assert.are.equal("a.csv\t8 B\tsimple\n", r.stdout)
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
      assert.are.equal("ok.csv\t2 B\tsimple\n", r.stdout)
      assert.are.equal(2, atai({ "files" }).code)
      assert.are.equal(2, atai({ "files", "upload" }).code)
      assert.are.equal(2, atai({ "files", "upload", dir .. "/ok.csv", "--parallel", "0" }).code)
    end)

    process_it("files upload on a terminal draws a progress bar", function()
      write_file(dir .. "/t.csv", ("0123456789\n"):rep(1000))
      local text, code = atai_tty({ "files", "upload", dir .. "/t.csv" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\r\27[K" .. dir .. "/t.csv  [################]  10.7 KiB / 10.7 KiB  100%", 1, true), text)
    end)

    process_it("Ctrl-C during a multipart upload aborts it: exit 130", function()
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
      assert.is_truthy(r.stderr:find("(bad.csv): too_large error", 1, true), r.stderr)
      local doc = r.json()
      assert.are.equal(1, doc.downloaded)
      assert.are.equal("bad.csv", doc.failed[1].filename)
      assert.are.equal("too_large", doc.failed[1].kind) -- longer than its num_bytes: stopped at once
      assert.are.equal(5, atai({ "job", "outputs", "job_missing", "--download", dir }).code)
      assert.are.equal(2, atai({ "job", "outputs", TEP, "--parallel", "2" }).code)
    end)

    process_it("job outputs --download on a terminal draws a progress bar", function()
      srv:control("POST", "/_fake/outputs", { job_id = TEP, outputs = { { filename = "a.csv", num_bytes = 2048 } } })
      local text, code = atai_tty({ "job", "outputs", TEP, "--download", dir })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find("\r\27[K" .. TEP .. "  [################]  2.0 KiB / 2.0 KiB  100%", 1, true), text)
    end)
  end)

  -- Issues 14 and 15 end to end: the flags the CLI gained for the library's
  -- new options (--max-seconds, --resume) and what they print, against the
  -- fake API (upload faults, part counters) and the hostile storage host.
  describe("end to end: --max-seconds, --resume, rate and ETA", function()
    local TEP = "job_2abc3def4ghi5jkl6mno7pqr"
    local KB = 1024
    local KEPT = "upload %s kept: run the same command with --resume to continue\n"
    local dir, host

    -- spec/support/hostile_storage.lua: {endpoint, url(path), outputs(list), stop()}.
    local function start_storage()
      local handle, port = server.spawn { script = "spec/support/hostile_storage.lua",
        args = { "--port", "0", "--ttl", "300" }, what = "hostile storage" }
      local h = { endpoint = "http://127.0.0.1:" .. port .. "/v0.5" }
      function h.url(path) return "http://127.0.0.1:" .. port .. path end
      local function control(method, path, body)
        local conn = assert(server.connect("127.0.0.1", port))
        local resp = assert(conn:request { method = method, path = path, body = body,
          headers = { ["Content-Type"] = "application/json", Connection = "close" } })
        conn:close()
        assert(resp.status == 200, "hostile storage control: " .. tostring(resp.status))
      end
      -- The listing's outputs: {id, ref, filename, num_bytes}.
      function h.outputs(list)
        local objects = {}
        for i, o in ipairs(list) do
          objects[i] = cjson.encode { id = o[1], data = { ref = o[2], filename = o[3], num_bytes = o[4] } }
        end
        control("POST", "/_hostile/outputs?total=" .. #list, "[" .. table.concat(objects, ",") .. "]")
      end
      function h.stop()
        pcall(control, "POST", "/_fake/shutdown")
        handle:close()
      end
      return h
    end

    setup(function() host = start_storage() end)
    teardown(function() host.stop() end)
    before_each(function() dir = helpers.tmpdir() end)
    after_each(function() helpers.remove(dir) end)

    -- A file of n bytes that differ from part to part; its path.
    local function file(name, n)
      local chunks = {}
      for i = 0, math.floor(n / 64) do chunks[#chunks + 1] = ("%063d\n"):format(i * 7919 % 1000003) end
      local path = dir .. "/" .. name
      write_file(path, table.concat(chunks):sub(1, n))
      return path
    end

    local function puts() return #helpers.requests(srv, "/_storage/", "PUT") end
    local function aborts()
      local n = 0
      for _, r in ipairs(helpers.requests(srv, "/v0.5/files/uploads/", "POST")) do
        if r.path:find("/abort$") then n = n + 1 end
      end
      return n
    end

    -- The whole file's CRC-32C as the fake server keeps it (base64 of 4 big-endian bytes).
    local function checksum_of(text)
      local crc = require("atai.core").crc32c(text)
      return require("atai.core").base64(string.char(math.floor(crc / 16777216) % 256,
        math.floor(crc / 65536) % 256, math.floor(crc / 256) % 256, crc % 256))
    end

    -- The one upload the fake server knows: upload, id.
    local function the_upload()
      local id, upload = next(srv:stats().uploads)
      return upload, id
    end

    -- PUTs to storage: `n` that pass, then `after` (each).
    local function puts_then(n, after, count)
      local responses = {}
      for i = 1, n do responses[i] = { pass = true } end
      for i = n + 1, n + (count or 8) do responses[i] = after end
      srv:fault { method = "PUT", path_prefix = "/_storage/", responses = responses }
    end

    it("job outputs --download --max-seconds 1: a trickling output fails as timeout, its partial file removed (exit 1)", function()
      host.outputs { { "out_slow", host.url("/trickle/100/50"), "slow.bin", 100 }, -- 5 s of body
        { "out_ok", host.url("/blob/30"), "ok.bin", 30 } }
      local r = atai({ "job", "outputs", TEP, "--download", dir, "--max-seconds", "1", "--json" },
        { env = { ATAI_API_ENDPOINT = host.endpoint } })
      assert.are.equal(1, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("atai: out_slow (slow.bin): timeout error", 1, true), r.stderr)
      assert.is_truthy(r.stderr:find("max_seconds", 1, true), r.stderr)
      local doc = r.json()
      assert.are.equal(1, doc.downloaded)
      assert.are.equal(1, #doc.failed)
      assert.are.same({ "out_slow", "slow.bin", "timeout" }, { doc.failed[1].output_id, doc.failed[1].filename,
        doc.failed[1].kind })
      assert.are.same({ "ok.bin" }, helpers.list(dir)) -- no slow.bin, no temporary file
      assert_clean(r)
    end)

    it("job outputs --download: a body past its num_bytes fails as too_large, nothing left of it (exit 1)", function()
      host.outputs { { "out_big", host.url("/length/31457280"), "big.bin", 10 } } -- 30 MiB for 10 declared
      local r = atai({ "job", "outputs", TEP, "--download", dir }, { env = { ATAI_API_ENDPOINT = host.endpoint } })
      assert.are.equal(1, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("atai: out_big (big.bin): too_large error", 1, true), r.stderr)
      assert.are.equal("0 downloaded, 0 skipped (complete), 1 failed; 0 B into " .. dir .. "\n", r.stdout)
      assert.are.same({}, helpers.list(dir))
    end)

    it("files upload --resume: a failure keeps the upload (its id on stderr, exit 1); again: only the rest is sent", function()
      srv:config { part_size = 16 * KB }
      local path = file("keep.csv", 96 * KB) -- 6 parts, small enough for the simple route: --resume forces parts
      puts_then(2, { status = 500 }, 1)
      local command = { "files", "upload", path, "--resume", "--parallel", "1", "--retries", "0" }
      local r = atai(command)
      assert.are.equal(1, r.code, r.stderr)
      local upload, id = the_upload()
      assert.are.equal("open", upload.status)
      assert.is_truthy(r.stderr:find(KEPT:format(id), 1, true), r.stderr)
      assert.are.equal(1, select(2, r.stderr:gsub("kept:", "")))
      assert.are.equal("", r.stdout)
      assert.are.equal(0, aborts())
      local checkpointed = 0
      for _, part in ipairs(upload.parts) do if part.checkpointed then checkpointed = checkpointed + 1 end end
      assert.are.equal(2, checkpointed)
      local before = puts()
      r = atai(command)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("keep.csv\t96.0 KiB\tmultipart\n", r.stdout)
      assert.are.equal("", r.stderr)
      assert.are.equal(4, puts() - before) -- parts 2..5 only
      assert.are.equal("completed", srv:stats().uploads[id].status)
      assert.are.equal(checksum_of(read_file(path)), srv:stats().uploads[id].checksum)
      assert_clean(r)
    end)

    it("files upload without --resume: a failed multipart upload is aborted, no kept line (exit 1)", function()
      srv:config { part_size = 16 * KB }
      local path = file("lines.jsonl", 64 * KB) -- JSONL: by parts whatever its size
      puts_then(1, { status = 500 }, 1)
      local r = atai({ "files", "upload", path, "--parallel", "1", "--retries", "0" })
      assert.are.equal(1, r.code, r.stderr)
      assert.is_truthy(r.stderr:find("lines.jsonl: server error", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("kept", 1, true), r.stderr)
      assert.are.equal("aborted", the_upload().status)
      assert.are.equal(1, aborts())
    end)

    process_it("Ctrl-C during bin/atai files upload --resume: exit 130, the upload kept and said so; --resume ends it", function()
      srv:config { part_size = 16 * KB }
      local path = file("ctrlc.csv", 128 * KB) -- 8 parts
      puts_then(2, { delay = 10, pass = true }, 1) -- the third part hangs until Ctrl-C
      local pid_file, code_file, err_file = dir .. "/pid", dir .. "/code", dir .. "/err"
      os.execute(("sh -c %s &"):format(quote(("%s %s/bin/atai files upload %s --resume --parallel 1 2>%s & echo $! >%s; wait $!; echo $? >%s")
        :format(env_prefix(), ROOT, quote(path), quote(err_file), quote(pid_file), quote(code_file)))))
      local hanging = false
      for _ = 1, 200 do -- the third PUT hangs, the two parts before it are checkpointed
        local upload = the_upload()
        hanging = helpers.read(pid_file) and puts() >= 3 and upload and upload.parts[2].checkpointed
        if hanging then break end
        socket.sleep(0.05)
      end
      assert.is_true(hanging, "parts 0 and 1 checkpointed while part 2 is on its way")
      os.execute("kill -INT " .. helpers.read(pid_file))
      for _ = 1, 200 do
        if helpers.read(code_file) then break end
        socket.sleep(0.05)
      end
      local stderr = helpers.read(err_file) or ""
      assert.are.equal("130", (helpers.read(code_file) or ""):match("%d+"), stderr)
      local upload, id = the_upload()
      assert.are.equal("open", upload.status)
      assert.are.equal(0, aborts())
      assert.is_truthy(stderr:find(KEPT:format(id), 1, true), stderr)
      assert.is_truthy(stderr:find("atai: interrupted", 1, true), stderr)
      local before = puts()
      local r = atai({ "files", "upload", path, "--resume", "--parallel", "1" })
      assert.are.equal(0, r.code, r.stderr)
      upload = srv:stats().uploads[id]
      assert.are.equal("completed", upload.status)
      assert.are.equal(6, puts() - before) -- parts 2..7: 0 and 1 were checkpointed
      assert.are.equal(checksum_of(read_file(path)), upload.checksum)
    end)

    process_it("on a terminal, upload and download lines show the rate in MiB/s and the ETA", function()
      srv:config { part_size = 16 * KB }
      local path = file("rate.csv", 96 * KB) -- 6 parts, 0.15 s each
      local slow = {}
      for i = 1, 6 do slow[i] = { delay = 0.15, pass = true } end
      srv:fault { method = "PUT", path_prefix = "/_storage/", responses = slow }
      local text, code = atai_tty({ "files", "upload", path, "--resume", "--parallel", "1" }, nil, 200)
      assert.are.equal(0, code, text)
      local RATE_ETA = "%d+%.%d MiB/s  ETA %d+:%d%d"
      assert.is_truthy(text:find("rate.csv  %[[#.]+%]  [%d.]+ KiB / 96.0 KiB +%d+%%  " .. RATE_ETA), text)
      -- two outputs one after the other, each pausing half way: in the second
      -- pause the rate has samples from the first (3 MiB of 4 done)
      srv:control("POST", "/_fake/outputs", { job_id = TEP, outputs = { { filename = "a.bin", num_bytes = 2097152 },
        { filename = "b.bin", num_bytes = 2097152 } } })
      local pause = { stall_after_bytes = 1048576, stall = 0.6 }
      srv:fault { method = "GET", path_prefix = "/_blob/", responses = { pause, pause } }
      text, code = atai_tty({ "job", "outputs", TEP, "--download", dir .. "/out", "--parallel", "1" }, nil, 200)
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find(TEP .. "  %[[#.]+%]  3.0 MiB / 4.0 MiB   75%%  1/2 files  " .. RATE_ETA), text)
    end)
  end)

  describe("pipelines, pipeline, queue", function()
    it("pipelines --type: one line per pipeline; --json an array", function()
      local r = atai({ "pipelines", "--type", "training" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(3, #lines(r.stdout))
      assert.is_truthy(r.stdout:find("ppl_anomalytrain01\tanomaly-trainer\t0.3.0\tpublished\ttraining\tAnomaly Trainer", 1, true))
      assert.are.equal(3, #atai({ "pipelines", "--type", "training", "--json" }).json())
    end)

    it("pipeline KEY: the published version; by id too", function()
      local r = atai({ "pipeline", "activity-detection", "--json" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("ppl_actdetect00001", r.json().id)
      r = atai({ "pipeline", "ppl_actdetect00000" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find("^ppl_actdetect00000\tactivity%-detection\t0.9.0\tdeactivated"), r.stdout)
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
      assert.are.equal("batch\t12\ntraining\t3\n", r.stdout)
      assert.are.equal(12, atai({ "queue", "--json" }).json().queues[1].depth)
    end)
  end)

  describe("version and help", function()
    it("version: atai, libcurl, TLS, HTTP/2 and Lua, with no API key", function()
      local atai_lib = require("atai")
      local info = atai_lib.core.version_info()
      local r = atai({ "version" }, { env = { ATAI_API_KEY = false } })
      assert.are.equal(0, r.code, r.stderr)
      local lua = (rawget(_G, "jit") and jit.version) or _VERSION
      assert.are.equal(("atai %s\nlibcurl %s (TLS: %s, HTTP/2: %s)\n%s\n"):format(atai_lib.VERSION,
        info.curl_version, info.ssl_version, info.http2 and "yes" or "no", lua), r.stdout)
      local doc = atai({ "job", "list", "--version", "--json" }).json()
      assert.are.same({ atai = atai_lib.VERSION, libcurl = info.curl_version, tls = info.ssl_version,
        http2 = info.http2 == true, lua = lua }, doc)
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

    it("help exit-codes: every code, the order, and the same codes in doc/cli.md", function()
      local r = atai({ "help", "exit-codes" })
      assert.are.equal(0, r.code)
      local readme = read_file("doc/cli.md")
      for _, code in ipairs({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 130 }) do
        assert.is_truthy(r.stdout:find("\n  " .. code .. " ", 1, true), code)
        assert.is_truthy(readme:find("\n| " .. code .. " |", 1, true), "doc/cli.md has no row for exit code " .. code)
      end
      assert.is_truthy(r.stdout:find("130, 2, 4, 1, 5, 3, 6, 7, 8, 0", 1, true))
      assert.is_truthy(readme:find("130, 2, 4, 1, 5, 3, 6, 7, 8, 0", 1, true))
    end)
  end)

  describe("tables, JSON, short flags, the key file", function()
    process_it("on a terminal: a header and aligned columns; --json pretty-printed", function()
      local text, code = atai_tty({ "job", "get", "job_failed", "job_running", "--no-color" })
      assert.are.equal(0, code, text)
      local rows = lines(text:gsub("\r", ""))
      assert.is_truthy(rows[1]:find("^ID +STATUS +PIPELINE +PROGRESS +FAILED +AGE$"), rows[1])
      assert.is_truthy(rows[2]:find("^job_failed +FAILED +machine"), rows[2])
      assert.is_truthy(rows[3]:find("^job_running  RUNNING +machine"), rows[3])
      assert.are.equal(rows[1]:find("STATUS", 1, true), rows[2]:find("FAILED", 1, true))
      assert.are.equal(rows[1]:find("STATUS", 1, true), rows[3]:find("RUNNING", 1, true))
      assert.are.equal(rows[1]:find("PROGRESS", 1, true), rows[2]:find("%d+/%d+"))
      assert.are.equal(rows[1]:find("PROGRESS", 1, true), rows[3]:find("%d+/%d+"))
      text, code = atai_tty({ "job", "get", "job_failed", "--json" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find('^{\r?\n  "created_at": '), text)
      assert.are.equal("job_failed", cjson.decode((text:gsub("\r", ""))).id)
    end)

    it("piped: --json is one compact line", function()
      local r = atai({ "job", "get", "job_failed", "--json" })
      assert.are.equal(1, #lines(r.stdout))
    end)

    it("-q, -j, -v and -o DIR are --quiet, --json, --verbose and --download DIR", function()
      local r = atai({ "job", "get", "job_running", "-j", "-q" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("job_running", r.json().id)
      r = atai({ "-v", "queue", "-q" })
      assert.are.equal("", r.stdout)
      assert.is_truthy(r.stderr:find("atai: GET /[%w/.]*batch/jobs/queue %-> 200"), r.stderr)
      local dir = helpers.tmpdir()
      srv:control("POST", "/_fake/outputs", { job_id = "job_2abc3def4ghi5jkl6mno7pqr",
        outputs = { { filename = "a.csv", num_bytes = 10 } } })
      r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr", "-o", dir })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({ "a.csv" }, helpers.list(dir))
      helpers.remove(dir)
      assert.are.equal(2, atai({ "job", "get", "job_running", "-x" }).code)
      assert.are.equal(2, atai({ "job", "get", "job_running", "-o", "x" }).code)
    end)

    it("--max-seconds goes with --download and takes a DURATION", function()
      local r = atai({ "job", "outputs", "job_running", "--max-seconds", "10" })
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find("--max-seconds goes with --download DIR", 1, true), r.stderr)
      r = atai({ "job", "outputs", "job_running", "-o", "x", "--max-seconds", "soon" })
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find("--max-seconds: bad duration 'soon'", 1, true), r.stderr)
      assert.are.equal(2, atai({ "job", "get", "job_running", "--max-seconds", "1" }).code)
      assert.are.equal(2, atai({ "job", "get", "job_running", "--resume" }).code)
      assert.are.equal(0, #srv:requests())
    end)

    it("ATAI_API_KEY_FILE: the key from a file; ATAI_API_KEY and --api-key come first", function()
      local dir = helpers.tmpdir()
      write_file(dir .. "/key", KEY .. "\n")
      write_file(dir .. "/wrong", "sk-wrong\n")
      write_file(dir .. "/empty", " \n")
      local r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_KEY = false, ATAI_API_KEY_FILE = dir .. "/key" } })
      assert.are.equal(0, r.code, r.stderr)
      assert_clean(r)
      r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_KEY_FILE = dir .. "/wrong" } })
      assert.are.equal(0, r.code, r.stderr)
      r = atai({ "job", "get", "job_running", "--api-key", KEY }, { env = { ATAI_API_KEY = "sk-wrong",
        ATAI_API_KEY_FILE = dir .. "/wrong" } })
      assert.are.equal(0, r.code, r.stderr)
      for _, file in ipairs({ dir .. "/empty", dir .. "/missing", dir }) do
        r = atai({ "job", "get", "job_running" }, { env = { ATAI_API_KEY = false, ATAI_API_KEY_FILE = file } })
        assert.are.equal(4, r.code, r.stderr)
        assert.is_truthy(r.stderr:find("^atai: ATAI_API_KEY_FILE: "), r.stderr)
        assert.are.equal("", r.stdout)
      end
      helpers.remove(dir)
      assert.are.equal(3, #srv:requests())
    end)

    it("a resumable upload that failed says how to go on", function()
      local files = require("atai.cli.files")
      local err = sink()
      local out = require("atai.cli.output").new { stdout = sink(), stderr = err }
      files.kept(out, { kind = "network", resumable = true, upload_id = "upl_123" })
      files.kept(out, { kind = "network" })
      assert.are.equal("upload upl_123 kept: run the same command with --resume to continue\n", err:text())
    end)

    it("transfer lines show the rate and the ETA", function()
      local progress = require("atai.cli.progress")
      local line = progress.transfer_line("big.bin", { bytes_done = 1048576, bytes_total = 3145728, files_done = 0,
        files_total = 1 }, 1048576)
      assert.are.equal("big.bin  [#####...........]  1.0 MiB / 3.0 MiB   33%  1.0 MiB/s  ETA 0:02", line)
      local meter = progress.meter()
      assert.is_nil(meter(0, 10))
      assert.is_nil(meter(500, 10.1), "a rate from a burst")
      assert.are.equal(1000, meter(1000, 11))
      assert.are.equal(1000, meter(3000, 13))
      assert.are.equal("1:01:01", progress.clock(3661))
    end)
  end)

  describe("help, completion, man page", function()
    it("atai job --help: the group's subcommands and EXAMPLES", function()
      for _, argv in ipairs({ { "job", "--help" }, { "help", "job" }, { "job", "-h" } }) do
        local r = atai(argv, { env = { ATAI_API_KEY = false } })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy(r.stdout:find("^Usage: atai job SUBCOMMAND"), r.stdout)
        for _, name in ipairs({ "get", "list", "wait", "cancel", "retry", "delete", "create", "events", "inputs", "outputs" }) do
          assert.is_truthy(r.stdout:find("\n  " .. name .. " ", 1, true), name)
        end
        assert.is_truthy(r.stdout:find("\nEXAMPLES\n  atai job ", 1, true), r.stdout)
      end
    end)

    it("typos get a suggestion", function()
      local CASES = { { { "jbo", "list" }, "unknown command 'jbo' (did you mean 'job'?)" },
        { { "job", "gte", "job_x" }, "unknown command 'job gte' (did you mean 'get'?)" },
        { { "job", "lsit" }, "(did you mean 'list'?)" }, { { "pipline", "x" }, "(did you mean 'pipeline'?)" },
        { { "files", "uplod" }, "(did you mean 'upload'?)" } }
      for _, case in ipairs(CASES) do
        local r = atai(case[1])
        assert.are.equal(2, r.code)
        assert.is_truthy(r.stderr:find(case[2], 1, true), r.stderr)
      end
      assert.is_nil(atai({ "xyzzy" }).stderr:find("did you mean", 1, true))
      local r = atai({ "job", "list", "--jsno" })
      assert.are.equal(2, r.code)
      assert.is_truthy(r.stderr:find("unknown flag '--jsno' (did you mean '--json'?)", 1, true), r.stderr)
    end)

    it("completion bash|zsh|fish prints a script; another shell is a usage error", function()
      for _, shell in ipairs({ "bash", "zsh", "fish" }) do
        local r = atai({ "completion", shell }, { env = { ATAI_API_KEY = false } })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy(r.stdout:find("atai", 1, true))
      end
      assert.are.equal(2, atai({ "completion", "tcsh" }).code)
      assert.are.equal(0, #srv:requests())
    end)

    process_it("source <(atai completion bash) completes commands, subcommands, flags and job ids in a real bash", function()
      local script = ([[
cd %s
source <(./bin/atai completion bash)
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _atai; echo "${COMPREPLY[*]}"; }
t ./bin/atai jo
t ./bin/atai job ""
t ./bin/atai job get --ex
t ./bin/atai --json job list --status F
t ./bin/atai job get ""
complete -p atai
]]):format(quote(ROOT))
      local path = os.tmpname()
      write_file(path, script)
      local p = assert(io.popen(env_prefix() .. " bash " .. path .. " 2>&1"))
      local got = lines(p:read("*a"))
      p:close()
      os.remove(path)
      assert.are.equal("job", got[1])
      assert.are.equal("get list wait cancel retry delete create events inputs outputs", got[2])
      assert.are.equal("--exit-status", got[3])
      assert.are.equal("FAILED", got[4])
      assert.is_truthy(got[5]:find("job_running", 1, true), got[5])
      assert.is_truthy(got[5]:find("job_2abc3def4ghi5jkl6mno7pqr", 1, true), got[5])
      assert.are.equal("complete -F _atai atai", got[6])
    end)

    it("man/atai.1 is generated from the help data and up to date (make man); it names every command", function()
      local meta = require("atai.cli.meta").meta
      local page = meta.man()
      assert.are.equal(page, read_file("man/atai.1"), "man/atai.1 is stale: run make man")
      for _, c in ipairs(require("atai.cli.commands").list) do
        assert.is_truthy(page:find("\\fBatai " .. c.full:gsub("%-", "\\-") .. "\\fR"), c.full)
      end
    end)

    process_it("man -l man/atai.1 shows every command", function()
      -- man and troff run without make sanitize's preloaded ASan runtime
      -- (their own leaks and mismatches are not atai's).
      local p = assert(io.popen("env -u LD_PRELOAD MANWIDTH=100 man -l man/atai.1 2>&1"))
      local text = p:read("*a")
      p:close()
      for _, c in ipairs(require("atai.cli.commands").list) do
        assert.is_truthy(text:find("\n       atai " .. c.full, 1, true), c.full)
      end
      assert.is_truthy(text:find("EXIT STATUS", 1, true))
    end)
  end)

  -- Issue 14, finding 5: what a server sends is shown, not obeyed, by the terminal.
  describe("finding 5: terminal escape injection", function()
    -- ESC sequences (clear screen, window title), BEL, a C1 control (CSI,
    -- U+009B), an invalid UTF-8 byte and DEL; "é" (valid UTF-8) stays.
    local EVIL = "a\27[2J\27]0;title\7b\194\155c\255d\127é"
    local SHOWN = "a\\x1B[2J\\x1B]0;title\\x07b\\xC2\\x9Bc\\xFFd\\x7Fé"

    local function assert_inert(text)
      local one_line = text:gsub("[\n\t]", "") -- tabs: the columns of piped output
      assert.is_nil(one_line:find("%c"), text)
      assert.is_nil(one_line:find("\255", 1, true), text)
      assert.is_nil(one_line:find("\194\155", 1, true), text)
    end

    local function evil_job(id)
      return { id = id, status = EVIL, pipeline_key = EVIL, name = EVIL, created_at = "2026-01-01T00:00:00Z",
        input_progress = { total = 2, completed = 1, failed = 0 } }
    end

    it("escapes job fields (get, list, wait) on stdout; --json keeps the exact bytes", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { body = cjson.encode(evil_job("job_running")) },
        { body = cjson.encode(evil_job("job_running")) } } }
      local r = atai({ "job", "get", "job_running" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find(SHOWN, 1, true), r.stdout)
      assert_inert(r.stdout)
      r = atai({ "job", "get", "job_running", "--json" })
      assert.are.equal(EVIL, r.json().status)
      srv:fault { path = "/v0.5/batch/jobs", method = "GET", responses = { { body = cjson.encode(
        { total = 1, offset = 0, limit = 20, jobs = { evil_job("job_evil") } }) } } }
      r = atai({ "job", "list" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find(SHOWN, 1, true), r.stdout)
      assert_inert(r.stdout)
    end)

    it("escapes events, outputs and pipelines", function()
      srv:fault { path = "/v0.5/batch/jobs/job_failed/events", responses = { { body = cjson.encode({ total = 1,
        offset = 0, limit = 100, events = { { id = "evt_1", created_at = EVIL, level = EVIL, event_type = EVIL,
          message = EVIL, input_id = EVIL } } }) } } }
      local r = atai({ "job", "events", "job_failed" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find(SHOWN, 1, true), r.stdout)
      assert_inert(r.stdout)
      srv:control("POST", "/_fake/outputs", { job_id = "job_2abc3def4ghi5jkl6mno7pqr",
        outputs = { { filename = EVIL, num_bytes = 10 } } })
      r = atai({ "job", "outputs", "job_2abc3def4ghi5jkl6mno7pqr" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find(SHOWN, 1, true), r.stdout)
      assert_inert(r.stdout)
      srv:fault { path = "/v0.5/batch/registry/pipelines", responses = { { body = cjson.encode({ total = 1,
        offset = 0, limit = 100, pipelines = { { id = "ppl_x", pipeline_key = EVIL, name = EVIL, status = EVIL } } }) } } }
      r = atai({ "pipelines" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_truthy(r.stdout:find(SHOWN, 1, true), r.stdout)
      assert_inert(r.stdout)
    end)

    it("escapes error lines on stderr", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { status = 404,
        body = cjson.encode({ errors = { { code = "not_found", message = EVIL, error_uid = EVIL } } }) } } }
      local r = atai({ "job", "get", "job_running" })
      assert.are.equal(5, r.code, r.stderr)
      assert.is_truthy(r.stderr:find(SHOWN, 1, true), r.stderr)
      assert_inert(r.stderr)
    end)

    process_it("on a real terminal: nothing but atai's own colours reaches it", function()
      srv:fault { path = "/v0.5/batch/jobs/job_running", responses = { { body = cjson.encode(evil_job("job_running")) } } }
      local text, code = atai_tty({ "job", "get", "job_running" })
      assert.are.equal(0, code, text)
      assert.is_truthy(text:find(SHOWN, 1, true), text)
      assert.is_nil(text:gsub("\27%[[%d;]*m", ""):find("[\7\27\255]"), text)
    end)
  end)

  -- Issue 14, finding 6: a write that fails stops the command.
  describe("finding 6: write errors", function()
    local function sh(script)
      local p = assert(io.popen("sh -c " .. quote(script) .. " 2>&1"))
      local text = p:read("*a")
      p:close()
      return text
    end

    process_it("atai job get ID --json > /dev/full exits 1 with one line on stderr", function()
      for _, args in ipairs({ { "job", "get", "job_running", "--json" }, { "job", "get", "job_running" } }) do
        local err = os.tmpname()
        local text = sh(("%s %s/bin/atai %s >/dev/full 2>%s; echo \"<exit $?>\""):format(env_prefix(), ROOT,
          command_line(args), err))
        local stderr = read_file(err)
        os.remove(err)
        assert.are.equal("1", text:match("<exit (%d+)>"), stderr)
        assert.are.equal("atai: cannot write standard output: No space left on device\n", stderr)
      end
    end)

    process_it("atai job list --all | head -1 with SIGPIPE ignored stops at once: exit 141, silent", function()
      local client = require("atai").new { endpoint = srv.endpoint, api_key = KEY }
      local handles = {}
      for i = 1, 250 do
        handles[i] = client.async:create_job { name = "pipe-" .. i, pipeline_type = "batch",
          pipeline_key = "machine-state-classification" }
      end
      for _, h in ipairs(handles) do assert(h:wait()) end
      client:close()
      -- the second page comes late: head -1 has gone by then
      srv:fault { path = "/v0.5/batch/jobs", method = "GET", responses = { { pass = true }, { delay = 0.3, pass = true } } }
      local dir = helpers.tmpdir()
      local text = sh(("trap '' PIPE; { %s %s/bin/atai job list --all 2>%s/err; echo $? >%s/code; } | head -1")
        :format(env_prefix(), ROOT, dir, dir))
      local code, stderr = helpers.read(dir .. "/code"), helpers.read(dir .. "/err")
      helpers.remove(dir)
      assert.is_truthy(text:find("^job_%w+"), text)
      assert.are.equal("141", code:match("%d+"), stderr)
      assert.are.equal("", stderr)
      -- 257 jobs are 3 pages: the third is never asked for
      assert.is_true(hits("/batch/jobs", "GET") <= 2, "pages fetched after the reader had gone")
    end)

    it("in-process: a failing stream stops the command with exit 1; EPIPE with 141, silently", function()
      local function failing(message, errno)
        return { write = function() return nil, message, errno end, flush = function() return nil, message, errno end }
      end
      local err = { parts = {} }
      function err.write(self, ...) for i = 1, select("#", ...) do self.parts[#self.parts + 1] = (select(i, ...)) end return self end
      function err.flush(self) return self end
      local vars = { ATAI_API_KEY = KEY, ATAI_API_ENDPOINT = srv.endpoint }
      local getenv = function(name) return vars[name] end
      local code = cli.run({ "job", "get", "job_running" }, { stdout = failing("No space left on device", 28),
        stderr = err, getenv = getenv })
      assert.are.equal(1, code)
      assert.are.equal("atai: cannot write standard output: No space left on device\n", table.concat(err.parts))
      err.parts = {}
      code = cli.run({ "job", "list", "--all" }, { stdout = failing("Broken pipe", 32), stderr = err, getenv = getenv })
      assert.are.equal(141, code)
      assert.are.equal("", table.concat(err.parts))
    end)
  end)

  it("a decode error that is Ctrl-C inside the JSON decoder (lua.c's 'interrupted!') exits 130, not 1", function()
    local output = require("atai.cli.output")
    local parts = {}
    local stream = { write = function(self, ...) for i = 1, select("#", ...) do parts[#parts + 1] = (select(i, ...)) end
      return self end, flush = function(self) return self end }
    local out = output.new({ stdout = stream, stderr = stream })
    local err = setmetatable({ kind = "decode", status = 200,
      message = "response is not the JSON expected: interrupted!" }, { __tostring = function(e) return e.message end })
    local ok, stop = pcall(out.report, out, err, "job_running")
    assert.is_false(ok)
    assert.are.equal(130, output.stopped(stop))
    assert.are.equal("atai: interrupted\n", table.concat(parts))
    parts = {}
    err.message = "response is not the JSON expected: Expected value but found invalid token at character 1"
    assert.are.equal(1, out:report(err, "job_running"))
  end)

  process_it("bin/atai exits with atai.cli.run's code, seen by the shell", function()
    for _, case in ipairs({ { { "job", "get", "job_running", "--json" }, 0 }, { { "job", "get", "job_missing" }, 5 },
      { { "jbo" }, 2 }, { { "job", "get", "job_failed", "--exit-status" }, 3 } }) do
      local r = atai_process(case[1])
      assert.are.equal(case[2], r.code, r.stderr)
      assert_clean(r)
    end
  end)

  process_it("without the library next to it or on the path: exit 1, saying so", function()
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

    process_it("installs into DESTDIR; the installed atai runs from another folder; uninstall removes it", function()
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

    -- Issue 14: "make install with a DESTDIR containing a space breaks, and
    -- writes bin/atai through a symlink there".
    process_it("make install: a DESTDIR with a space works; a symlink at bin/atai is replaced, not written through", function()
      local base = sh("mktemp -d"):match("^(%S+)")
      local dest = base .. "/dest dir"
      local bin_dir = dest .. "/opt/atai/bin"
      assert(os.execute(("mkdir -p %s && printf 'keep me' > %s && ln -s %s %s"):format(quote(bin_dir),
        quote(base .. "/victim"), quote(base .. "/victim"), quote(bin_dir .. "/atai"))))
      local text, code = sh(("make --no-print-directory install LUA=lua5.4 PREFIX=/opt/atai DESTDIR=%s"):format(quote(dest)))
      assert.are.equal(0, code, text)
      assert.are.equal("keep me", read_file(base .. "/victim"))
      local _, is_link = sh(("test -L %s"):format(quote(bin_dir .. "/atai")))
      assert.are.equal(1, is_link, "bin/atai is still a symlink")
      assert.is_truthy(read_file(bin_dir .. "/atai"):find("^#!"))
      local page = dest .. "/opt/atai/share/man/man1/atai.1"
      assert.are.equal(read_file("man/atai.1"), read_file(page))
      local r = atai({ "job", "get", "job_running", "--json" }, { bin = bin_dir .. "/atai", cwd = "/",
        env = { LUA_PATH = false, LUA_CPATH = false } })
      assert.are.equal(0, r.code, r.stderr)
      local left = sh(("ls -A %s"):format(quote(bin_dir)))
      assert.are.equal("atai", left:match("^%s*(.-)%s*<exit"), "a temporary file was left behind")
      text, code = sh(("make --no-print-directory uninstall LUA=lua5.4 PREFIX=/opt/atai DESTDIR=%s"):format(quote(dest)))
      assert.are.equal(0, code, text)
      assert.are.equal("<exit 0>", sh(("find %s -type f"):format(quote(dest))):match("^%s*(.-)%s*$"))
      sh("rm -rf " .. quote(base))
    end)

    process_it("make env prints exports that run this checkout's atai from anywhere", function()
      local text, code = sh(("cd / && eval \"$(make -s --no-print-directory -C %s env)\" && atai version --verbose"):format(ROOT))
      assert.are.equal(0, code, text)
      local root = ROOT:gsub("%p", "%%%0")
      assert.is_truthy(text:find("atai from " .. root .. "/[%w/.]*lua/atai/init.lua"), text)
      assert.is_truthy(text:find("atai.core from " .. root .. "/[%w/.]*build/lua5.4/atai/core.so"), text)
    end)
  end)
end)

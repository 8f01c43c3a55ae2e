-- spec/examples_spec.lua: every script in examples/ runs against the fake API.
local server = require("spec.support.server")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("examples", function()
  local srv
  setup(function() srv = server.start() end)
  teardown(function() srv:stop() end)
  before_each(function() srv:reset() end)

  -- Runs examples/<name> with args against the fake server.
  local function run(name, args, extra_env)
    local env = { ATAI_API_KEY = srv.key, ATAI_API_ENDPOINT = srv.endpoint, POLL_INTERVAL = "0.01" }
    for k, v in pairs(extra_env or {}) do env[k] = v end
    local code = ("arg = { %s }\ndofile('examples/%s')"):format(
      table.concat((function()
        local quoted = {}
        for i, a in ipairs(args) do quoted[i] = ("%q"):format(a) end
        return quoted
      end)(), ", "), name)
    return util.run_lua(code, env)
  end

  it("get_job.lua prints the job", function()
    local out, ok = run("get_job.lua", { SEED })
    assert.is_true(ok, out)
    assert.is_truthy(out:find(SEED .. "  COMPLETED", 1, true), out)
    assert.is_truthy(out:find('model_type = "omega_1_4_base"', 1, true), out)
  end)

  it("get_job.lua reports an error and fails", function()
    local out, ok = run("get_job.lua", { "job_missing" })
    assert.is_false(ok)
    assert.is_truthy(out:find("atai not_found error (HTTP 404)", 1, true), out)
  end)

  it("list_running.lua lists RUNNING jobs with progress", function()
    local out, ok = run("list_running.lua", {})
    assert.is_true(ok, out)
    assert.is_truthy(out:find("job_running", 1, true), out)
    assert.is_truthy(out:find("%d+%% %(%d+/%d+ inputs%)"), out)
    assert.is_truthy(out:find("1 job(s) RUNNING", 1, true), out)
  end)

  it("create_and_wait.lua creates, shows progress and finishes", function()
    local out, ok = run("create_and_wait.lua", { "machine-state-classification", "worker.inference", "a.csv", "b.csv" })
    assert.is_true(ok, out)
    assert.is_truthy(out:find("created job_", 1, true), out)
    assert.is_truthy(out:find("100%", 1, true), out)
    assert.is_truthy(out:find("finished: COMPLETED", 1, true), out)
    assert.is_falsy(out:find("\r", 1, true), "progress redrawn with \\r outside a terminal")
  end)

  it("failed_events.lua shows why a job failed", function()
    local out, ok = run("failed_events.lua", { "job_failed" })
    assert.is_true(ok, out)
    assert.is_truthy(out:find("job_failed  FAILED", 1, true), out)
    assert.is_truthy(out:find("FAILED ", 1, true), out)
    assert.is_truthy(out:find("failure event(s)", 1, true), out)
    -- the job's error object: sorted fields, a nested one as JSON, never a table address
    assert.is_truthy(out:find('  error.code = input_resolution_failed\n  error.details = {"file_id":', 1, true), out)
    assert.is_falsy(out:find("table: 0x", 1, true), out)
  end)

  it("end_to_end.lua uploads, creates a job on them, waits, downloads the outputs", function()
    local helpers = require("spec.support.files")
    local dir = helpers.tmpdir()
    helpers.write(dir .. "/data.csv", "Timestamp,a,b\n1,2,3\n")
    helpers.write(dir .. "/normal.csv", "Timestamp,a,b\n4,5,6\n")
    local out, ok = run("end_to_end.lua", { dir .. "/data.csv", dir .. "/out", "normal=" .. dir .. "/normal.csv" })
    local files = helpers.list(dir .. "/out")
    local stats = srv:stats()
    helpers.remove(dir)
    assert.is_true(ok, out)
    assert.is_truthy(out:find("uploaded data.csv (20 bytes, simple)", 1, true), out)
    assert.is_truthy(out:find("uploaded normal.csv", 1, true), out)
    assert.is_truthy(out:find("finished: COMPLETED", 1, true), out)
    assert.is_truthy(out:find("downloaded 2, skipped 0, failed 0", 1, true), out)
    assert.is_falsy(out:find("\r", 1, true), "progress redrawn with \\r outside a terminal")
    assert.are.same({ "pred_data_part_1.csv", "pred_normal_part_1.csv" }, files)
    assert.are.equal("Timestamp,a,b\n1,2,3\n", stats.files["data.csv"].content)
    local created
    for _, r in ipairs(stats.requests) do
      if r.method == "POST" and r.path == "/v0.5/batch/jobs" then created = require("cjson").decode(r.body) end
    end
    assert.are.equal("data.csv", created.inputs["worker.inference"][1].file_id)
    assert.are.equal("normal", created.inputs["worker.n_shots"][1].metadata.class)
  end)

  it("output_urls.lua lists every output URL across pages", function()
    local out, ok = run("output_urls.lua", { SEED })
    assert.is_true(ok, out)
    assert.is_truthy(out:find("25 output(s)", 1, true), out)
    assert.is_truthy(out:find("https://", 1, true), out)
  end)
end)

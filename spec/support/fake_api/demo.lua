--[[
  fake_api/demo.lua -- opt-in demo jobs (--demo-jobs) and the user-mode listing (--user).

  The demo jobs are added to the seed jobs only with --demo-jobs (or --user), so the
  specs, which start the server without it, see the usual seven jobs and totals.
  Each may carry a standing behaviour: a fault-like table (see faults.lua) applied to
  every GET /v0.5/batch/jobs/<id> after the injected faults, e.g. a delay or a 503.
]]

local json = require("fake_api.json")
local lifecycle = require("fake_api.lifecycle")
local records = require("fake_api.records")
local state = require("fake_api.state")

local demo = {}

local SLOW_SECONDS = 0.3

-- The demo jobs: id, status, name, input counts {pending, processing, completed,
-- failed}, note (printed in the listing), simulate (advances one step per GET),
-- behave(rec) → fault table or nil for each GET of the job.
local DEMO_JOBS = {
  { id = "job_demo_slow", status = "RUNNING", name = "demo-slow", inputs = { 1, 1, 1, 0 },
    note = "every GET answers after " .. math.floor(SLOW_SECONDS * 1000) .. " ms",
    behave = function() return { delay = SLOW_SECONDS } end },
  { id = "job_demo_flaky", status = "COMPLETED", name = "demo-flaky", inputs = { 0, 0, 2, 0 },
    note = "every other GET answers 503 (the 1st, 3rd, 5th ...): retries get through",
    behave = function(rec)
      rec.demo_gets = (rec.demo_gets or 0) + 1
      if rec.demo_gets % 2 == 1 then return { status = 503 } end
    end },
  { id = "job_demo_progress", status = "PENDING", name = "demo-progress", inputs = { 2, 0, 0, 0 },
    note = "PENDING, then one step per GET: RUNNING ... COMPLETED at the 4th GET",
    simulate = true },
  { id = "job_demo_will_fail", status = "PENDING", name = "demo-will-fail", inputs = { 2, 0, 0, 0 },
    note = "PENDING, then one step per GET: RUNNING ... FAILED at the 4th GET",
    simulate = true },
}

-- What the seed jobs are, for the listing (others show their name).
local NOTES = {
  [records.TEP_JOB] = "the documented example job: events, progress, inputs, 25 outputs, traces",
  job_numbers = "parameters with numeric edge cases (2^53 + 1, -0.0, 1e300 ...)",
  job_unicode = "a name with escapes, accents, CJK and an emoji",
}

local DEMO_AT = "2026-04-16T09:00:00Z"

local function demo_job(spec, position)
  local pending, processing, completed, failed = table.unpack(spec.inputs)
  local started = spec.status ~= "PENDING" and DEMO_AT or json.null
  local queued = spec.status == "PENDING" and position or json.null
  return json.object({
    id = spec.id, org_id = records.ORG_ID, name = spec.name, pipeline_type = "batch",
    pipeline_key = "machine-state-classification", pipeline_version = "1.1.1",
    status = spec.status, parameters = json.object({}, {}), retry_count = 0,
    preemption_count = 0, queue_position = queued, queue_depth = queued,
    input_progress = json.object({ pending = pending, processing = processing,
      completed = completed, failed = failed }, { "pending", "processing", "completed", "failed" }),
    created_at = DEMO_AT, updated_at = DEMO_AT, started_at = started,
    completed_at = spec.status == "COMPLETED" and DEMO_AT or json.null,
    failed_at = json.null, cancelled_at = json.null, error = json.null,
  }, records.JOB_FIELDS)
end

-- New records of the demo jobs (for store.load; in listing order).
function demo.records()
  local out = {}
  for i, spec in ipairs(DEMO_JOBS) do
    local rec = records.new_record(demo_job(spec, i), nil)
    records.synthesize_children(rec)
    rec.demo = spec
    if spec.simulate then lifecycle.start_sim(rec) end
    out[#out + 1] = rec
  end
  return out
end

-- The standing behaviour of a demo job for this request (a fault table), or nil.
function demo.fault(req)
  if req.method ~= "GET" then return nil end
  local id = req.path:match("^/v0%.5/batch/jobs/([^/]+)$")
  local rec = id and state.store.jobs[id]
  if rec and rec.demo and rec.demo.behave then return rec.demo.behave(rec) end
  return nil
end

-- "2 completed, 1 pending" from a record's inputs.
local function input_summary(rec)
  local counts, parts = records.count_inputs(rec), {}
  for _, status in ipairs({ "completed", "failed", "processing", "pending" }) do
    if counts[status] > 0 then parts[#parts + 1] = counts[status] .. " " .. status end
  end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

local function job_lines()
  local recs = {}
  for _, rec in pairs(state.store.jobs) do recs[#recs + 1] = rec end
  table.sort(recs, function(a, b) return a.seq < b.seq end)
  local lines = {}
  for _, rec in ipairs(recs) do
    local job = rec.job
    local note = rec.demo and rec.demo.note or NOTES[job.id]
      or string.format("%s (inputs: %s)", job.name, input_summary(rec))
    lines[#lines + 1] = string.format("  %-30s %-10s %s", job.id, job.status, note)
  end
  return lines
end

-- The user-mode listing printed after "PORT n": endpoint, key, export line, jobs.
function demo.listing(port)
  local opts = state.opts
  local endpoint = "http://127.0.0.1:" .. port .. "/v0.5"
  local lines = {
    "fake Archetype AI Batch API on " .. endpoint,
    "key: " .. opts.key .. "   (a fake key: this server accepts only it)",
    "latency: " .. opts.latency .. " ms added to every API response",
    "",
    "paste into your shell:",
    "export ATAI_API_ENDPOINT=" .. endpoint .. " ATAI_API_KEY=" .. opts.key
      .. (opts.paste_also and ("; " .. opts.paste_also) or ""),
    "",
    "jobs served (GET /v0.5/batch/jobs/<id>):",
  }
  for _, line in ipairs(job_lines()) do lines[#lines + 1] = line end
  for _, line in ipairs({ "",
    "jobs you create (POST /v0.5/batch/jobs) go PENDING, RUNNING ... COMPLETED, one step",
    "per GET (FAILED when their name contains \"fail\"); POST /_fake/reset restores this list.",
    "Ctrl-C stops the server.",
  }) do lines[#lines + 1] = line end
  return lines
end

return demo

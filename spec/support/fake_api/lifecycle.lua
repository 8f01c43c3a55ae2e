--[[
  fake_api/lifecycle.lua -- how created and retried jobs advance, one step per GET.
]]

local json = require("fake_api.json")
local records = require("fake_api.records")
local state = require("fake_api.state")
local util = require("fake_api.util")

local iso_time, deep_copy = util.iso_time, json.copy
local add_event, add_progress, add_output = records.add_event, records.add_progress,
  records.add_output
local finish_input, count_inputs, mutated = records.finish_input, records.count_inputs,
  records.mutated
local TERMINAL = records.TERMINAL

-- Steps taken by created/retried jobs, one per GET /batch/jobs/{id}:
--   create → PENDING; GET 1 → RUNNING (inputs pending); GET 2 → RUNNING (processing);
--   GET 3 → RUNNING (inputs completed, or the first one failed); GET 4 → COMPLETED/FAILED.
local LIFECYCLE = {
  function(rec)
    local job = rec.job
    job.status, job.started_at = "RUNNING", iso_time()
    job.queue_position, job.queue_depth = json.null, json.null
    add_event(rec, "running_job", "INFO", "Job started")
  end,
  function(rec)
    for _, input in ipairs(rec.inputs) do
      if input.status == "pending" then
        input.status = "processing"
        add_event(rec, "vectorizing_file", "INFO", "Vectorizing " .. input.file_id, nil, input)
        add_progress(rec, input, 1, 50)
      end
    end
  end,
  function(rec)
    local failed_one = false
    for _, input in ipairs(rec.inputs) do
      if input.status == "processing" then
        local at = iso_time()
        add_progress(rec, input, 2, 100, at)
        if rec.sim.fail and not failed_one then
          failed_one = true
          finish_input(rec, input, "failed", at)
          input.error_message = "Input file format not supported"
          add_event(rec, "inference.failed", "FAILED", "Input file format not supported",
                    json.object({ error_code = "UNSUPPORTED_FORMAT" }), input, at)
        else
          finish_input(rec, input, "completed", at)
          add_event(rec, "inference.success", "SUCCESS", "Inference completed for input",
                    json.object({ duration_ms = 1250 }), input, at)
          add_output(rec, input, at)
        end
      end
    end
  end,
  function(rec)
    local job, at = rec.job, iso_time()
    if rec.sim.fail then
      job.status, job.failed_at = "FAILED", at
      job.error = json.object({ code = "job_failed", message = "Pipeline worker failed",
        details = json.object({ failed_inputs = count_inputs(rec).failed }) },
        { "code", "message", "details" })
      add_event(rec, "job.failed", "FAILED", "Pipeline worker failed", deep_copy(job.error))
    else
      job.status, job.completed_at = "COMPLETED", at
      add_event(rec, "job.completed", "SUCCESS", "Job completed")
    end
  end,
}

-- Take the next lifecycle step of a simulated job (none for seed or finished jobs).
local function advance(rec)
  local sim = rec.sim
  if not sim or TERMINAL[rec.job.status] or sim.phase >= #LIFECYCLE then return end
  sim.phase = sim.phase + 1
  LIFECYCLE[sim.phase](rec)
  mutated(rec)
end

-- Make a job simulated from PENDING; its name containing "fail" makes it fail.
local function start_sim(rec)
  rec.sim = { phase = 0, fail = rec.job.name:lower():find("fail", 1, true) ~= nil }
end

-- How many jobs are PENDING (queue positions of new and retried jobs).
local function pending_count()
  local n = 0
  for _, rec in pairs(state.store.jobs) do
    if rec.job.status == "PENDING" then n = n + 1 end
  end
  return n
end

return { advance = advance, start_sim = start_sim, pending_count = pending_count }

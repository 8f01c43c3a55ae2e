--[[
  fake_api/jobs.lua -- handlers of the job endpoints: list, get, create, cancel,
  retry, delete, queue.  A handler takes (req, captures...) and returns
  status, body[, headers], or raises an API error (errors.lua).
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local lifecycle = require("fake_api.lifecycle")
local paging = require("fake_api.paging")
local records = require("fake_api.records")
local registry = require("fake_api.registry")
local state = require("fake_api.state")
local util = require("fake_api.util")

local raise, raise_errors, not_found = errors.raise, errors.raise_errors, errors.not_found
local iso_time, random_alnum = util.iso_time, util.random_alnum
local object_keys, deep_copy = json.keys, json.copy
local page_body = paging.page_body
local new_record, new_input, add_event = records.new_record, records.new_input,
  records.add_event
local count_inputs, mutated = records.count_inputs, records.mutated
local advance, start_sim, pending_count = lifecycle.advance, lifecycle.start_sim,
  lifecycle.pending_count
local pipeline_usable = registry.usable
local ORG_ID, JOB_FIELDS = records.ORG_ID, records.JOB_FIELDS
local CANCELLABLE, RETRYABLE = records.CANCELLABLE, records.RETRYABLE

-- The record of job `id`, or a 404.
local function need_job(id)
  local rec = state.store.jobs[id]
  if not rec then not_found("Job", id) end
  return rec
end

-- Read-path body: fixture bytes while untouched, else the (re-encoded) job object.
local function job_body(rec)
  return rec.raw and json.raw(rec.raw) or rec.job
end

-- Write-path body: a copy of the job with input_progress null.
local function write_body(rec)
  local copy = deep_copy(rec.job)
  copy.input_progress = json.null
  return copy
end

-- The request body as a JSON object, or a 400.
local function parse_json_body(req)
  local body, err = json.decode(req.body)
  if body == nil then
    raise(400, "invalid_json", "Request body is not valid JSON: " .. tostring(err),
          "Send a JSON object with Content-Type: application/json.")
  end
  if not json.is_object(body) then
    raise(400, "invalid_json", "Request body must be a JSON object", nil)
  end
  return body
end

-- Every job record, newest first.
local function sorted_jobs()
  local list = {}
  for _, rec in pairs(state.store.jobs) do list[#list + 1] = rec end
  table.sort(list, function(a, b) return a.seq > b.seq end)  -- newest first
  return list
end

-- GET /batch/jobs (filters: pipeline_type, status, q).
local function list_jobs(req)
  local q = (req.params.q or ""):lower()
  local matched = {}
  for _, rec in ipairs(sorted_jobs()) do
    local job = rec.job
    local ok = (req.params.pipeline_type or "") == "" or job.pipeline_type == req.params.pipeline_type
    ok = ok and ((req.params.status or "") == "" or job.status == req.params.status:upper())
    ok = ok and (q == "" or tostring(job.name):lower():find(q, 1, true) ~= nil)
    if ok then matched[#matched + 1] = job_body(rec) end
  end
  return 200, page_body(req, matched, "jobs")
end

-- GET /batch/jobs/{id}: a simulated job advances one step per GET.
local function get_job(_, id)
  local rec = need_job(id)
  advance(rec)
  return 200, job_body(rec)
end

-- Validate the create-job inputs object: port → [{file_id, metadata?}].
local function check_inputs(inputs)
  if inputs == nil or inputs == json.null then return {} end
  local bad = function(msg)
    raise(400, "invalid_parameter", msg,
          "inputs maps port names to arrays of {\"file_id\": ..., \"metadata\": {...}}.")
  end
  if not json.is_object(inputs) then bad("'inputs' must be an object") end
  for _, port in ipairs(object_keys(inputs)) do
    local files = inputs[port]
    if not json.is_array(files) then bad("inputs['" .. port .. "'] must be an array") end
    for i, item in ipairs(files) do
      if not json.is_object(item) or type(item.file_id) ~= "string" then
        bad(string.format("inputs['%s'][%d].file_id must be a string", port, i - 1))
      end
    end
  end
  return inputs
end

-- POST /batch/jobs: validate, queue as PENDING, start the simulation.
local function create_job(req)
  local body = parse_json_body(req)
  local missing = {}
  for _, field in ipairs({ "name", "pipeline_type", "pipeline_key" }) do
    if type(body[field]) ~= "string" or body[field] == "" then
      missing[#missing + 1] = { code = "missing_parameter",
        message = "Failed to find key: " .. field,
        suggestion = "Resubmit your query with the expected parameters." }
    end
  end
  if #missing > 0 then raise_errors(400, missing) end
  if body.pipeline_type ~= "batch" and body.pipeline_type ~= "training" then
    raise(400, "invalid_parameter", "pipeline_type must be 'batch' or 'training'", nil)
  end
  if not pipeline_usable(body.pipeline_key) then
    raise(422, "invalid_pipeline", "Pipeline '" .. body.pipeline_key .. "' has no active versions",
          "List pipelines with GET /v0.5/batch/registry/pipelines to find a published key.")
  end
  local inputs = check_inputs(body.inputs)
  local pipeline = state.store.pipelines_by_key[body.pipeline_key]
  local at, position = iso_time(), pending_count() + 1
  local job = json.object({
    id = "job_" .. random_alnum(26), org_id = ORG_ID, name = body.name,
    pipeline_type = body.pipeline_type, pipeline_key = body.pipeline_key,
    pipeline_version = type(body.pipeline_version) == "string" and body.pipeline_version
      or (pipeline and pipeline.pipeline_version or "1.0.0"),
    status = "PENDING",
    parameters = json.is_object(body.parameters) and body.parameters or json.object({}, {}),
    retry_count = 0, preemption_count = 0, queue_position = position, queue_depth = position,
    input_progress = json.null, created_at = at, updated_at = at, started_at = json.null,
    completed_at = json.null, failed_at = json.null, cancelled_at = json.null,
    error = json.null,
  }, JOB_FIELDS)
  local rec = new_record(job, nil)
  for _, port in ipairs(object_keys(inputs)) do
    for _, item in ipairs(inputs[port]) do  -- every port counts as tracked here
      new_input(rec, port, item.file_id, "pending",
                json.is_object(item.metadata) and item.metadata or nil)
    end
  end
  add_event(rec, "job.created", "INFO", "Job queued", nil, nil, at)
  job.input_progress = count_inputs(rec)
  state.store.seq = state.store.seq + 1
  rec.seq = state.store.seq
  start_sim(rec)
  state.store.jobs[job.id] = rec
  return 201, write_body(rec)
end

-- Record a cancel/retry and answer it: the whole job (input_progress null) with the
-- full_write_bodies toggle, else just the job's `fields`.
local function write_reply(rec, fields)
  mutated(rec)
  if state.config.full_write_bodies then return 200, write_body(rec) end
  local short = {}
  for _, name in ipairs(fields) do short[name] = rec.job[name] end
  return 200, json.object(short, fields)
end

-- POST /batch/jobs/{id}/cancel (409 unless cancellable).
local function cancel_job(_, id)
  local rec = need_job(id)
  local job = rec.job
  if not CANCELLABLE[job.status] then
    raise(409, "conflict", "Job " .. id .. " is already " .. job.status,
          "Only PENDING, ADMITTED, RUNNING or PREEMPTED jobs can be cancelled.")
  end
  job.status, job.cancelled_at = "CANCELLED", iso_time()
  job.queue_position, job.queue_depth = json.null, json.null
  add_event(rec, "job.cancelled", "WARN", "Job cancelled by user")
  return write_reply(rec, { "id", "status", "cancelled_at" })
end

-- POST /batch/jobs/{id}/retry (409 unless FAILED or CANCELLED).
local function retry_job(_, id)
  local rec = need_job(id)
  local job = rec.job
  if not RETRYABLE[job.status] then
    raise(409, "conflict", "Job " .. id .. " is " .. job.status
          .. "; only FAILED or CANCELLED jobs can be retried", nil)
  end
  job.status, job.retry_count = "PENDING", job.retry_count + 1
  for _, f in ipairs({ "started_at", "completed_at", "failed_at", "cancelled_at", "error" }) do
    job[f] = json.null
  end
  local position = pending_count()
  job.queue_position, job.queue_depth = position, position
  for _, input in ipairs(rec.inputs) do
    if input.status ~= "reference" then
      input.status, input.error_message, input.completed_at = "pending", json.null, json.null
    end
  end
  rec.outputs, rec.ranks, rec.rank_count, rec.traces_points = {}, {}, 0, nil
  add_event(rec, "job.retried", "INFO", "Job re-queued (retry " .. job.retry_count .. ")")
  start_sim(rec)
  return write_reply(rec, { "id", "status", "retry_count" })
end

-- DELETE /batch/jobs/{id}.
local function delete_job(_, id)
  need_job(id)
  state.store.jobs[id] = nil
  return 200, json.object({ id = id, deleted = true }, { "id", "deleted" })
end

-- GET /batch/jobs/queue: the documented body.
local function get_queue() return 200, json.raw(state.store.queue_raw) end

return {
  need_job = need_job, parse_json_body = parse_json_body, list_jobs = list_jobs,
  get_job = get_job, create_job = create_job, cancel_job = cancel_job,
  retry_job = retry_job, delete_job = delete_job, get_queue = get_queue,
}

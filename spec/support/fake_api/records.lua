--[[
  fake_api/records.lua -- job records: the shapes of API objects and the children
  (events, progress, inputs, outputs) of each job.

  A job record:
    { job = <job object>, raw = <fixture text or nil once mutated>, seq = <list order>,
      events, progress, inputs, outputs = <arrays>, ranks = {input_id → completion rank},
      traces_points = <fixture points or nil>, sim = {phase, fail} or nil }
  Only jobs with `sim` advance on GET (created and retried jobs; see lifecycle.lua).
]]

local socket = require("socket")
local json = require("fake_api.json")
local state = require("fake_api.state")
local storage = require("fake_api.storage")
local util = require("fake_api.util")

local now = socket.gettime
local iso_time, random_alnum, read_file = util.iso_time, util.random_alnum, util.read_file
local object_keys, deep_copy = json.keys, json.copy

local ORG_ID = "org_1abc2def3ghi4jkl"
local TEP_JOB = "job_2abc3def4ghi5jkl6mno7pqr"

local JOB_FIELDS = { "id", "org_id", "name", "pipeline_type", "pipeline_key",
  "pipeline_version", "status", "parameters", "retry_count", "preemption_count",
  "queue_position", "queue_depth", "input_progress", "created_at", "updated_at",
  "started_at", "completed_at", "failed_at", "cancelled_at", "error" }
local INPUT_FIELDS = { "id", "job_id", "port_name", "file_id", "data", "status",
  "error_message", "created_at", "completed_at" }
local DATA_FIELDS = { "ref", "filename", "file_type", "file_extension", "num_bytes",
  "metadata", "file_tags", "file_attributes" }
local EVENT_FIELDS = { "id", "event_type", "level", "message", "payload", "input_id",
  "index", "created_at" }
local PROGRESS_FIELDS = { "id", "kind", "step", "message", "metrics", "payload",
  "input_id", "index", "created_at" }
local OUTPUT_FIELDS = { "id", "job_id", "port_name", "input_id", "input_file_id", "data",
  "expires_at", "created_at" }
local PIPELINE_FIELDS = { "id", "pipeline_key", "pipeline_version", "name", "description",
  "pipeline_type", "components", "default_config", "config_schema", "user_config_schema",
  "edges", "inputs", "outputs", "retry_policy", "visibility", "org_id", "status",
  "created_at", "updated_at" }

local TERMINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local CANCELLABLE = { PENDING = true, RUNNING = true, PREEMPTED = true, ADMITTED = true }
local RETRYABLE = { FAILED = true, CANCELLED = true }
local INPUT_STATUSES = { "pending", "processing", "completed", "failed" }

local MIME_TYPES = { csv = "text/csv", json = "application/json", jsonl = "application/jsonl",
  txt = "text/plain", jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png",
  mp4 = "video/mp4" }

-- A file reference object (data of inputs and outputs).
local function data_ref(url, filename, num_bytes, metadata)
  local ext = filename:match("%.([%w]+)$")
  return json.object({
    ref = url, filename = filename,
    file_type = MIME_TYPES[ext and ext:lower() or ""] or "application/octet-stream",
    file_extension = ext and ("." .. ext) or "", num_bytes = num_bytes,
    metadata = metadata or json.object({}, {}), file_tags = json.null,
    file_attributes = json.null,
  }, DATA_FIELDS)
end

-- Is a JSON value present and not null?
local function is_set(v) return v ~= nil and v ~= json.null end

-- Next value of a store counter (event_id, progress_id).
local function next_id(counter)
  local store = state.store
  store[counter] = store[counter] + 1
  return store[counter]
end

-- Append an event to a record; `input` and `at` are optional.
local function add_event(rec, event_type, level, message, payload, input, at)
  table.insert(rec.events, json.object({
    id = next_id("event_id"), event_type = event_type, level = level, message = message,
    payload = payload or json.object({}, {}),
    input_id = input and input.id or json.null, index = input and 0 or json.null,
    created_at = at or iso_time(),
  }, EVENT_FIELDS))
end

-- Append a progress entry for `input` at `percent`.
local function add_progress(rec, input, step, percent, at)
  table.insert(rec.progress, json.object({
    id = next_id("progress_id"), kind = "inference", step = step,
    message = string.format("Processing %s: %d%%", input.file_id, percent),
    metrics = json.object({ percent_complete = percent, items_processed = percent // 10,
                            items_total = 10 },
                          { "percent_complete", "items_processed", "items_total" }),
    payload = json.object({}, {}), input_id = input.id, index = 0,
    created_at = at or iso_time(),
  }, PROGRESS_FIELDS))
end

-- The first output port of the job's pipeline.
local function output_port_of(job)
  local p = state.store.pipelines_by_key[job.pipeline_key]
  if p and json.is_object(p.outputs) then
    local keys = object_keys(p.outputs)
    if keys[1] then return keys[1] end
  end
  return "worker.results"
end

-- The first tracked input port of the job's pipeline.
local function tracked_port_of(job)
  local p = state.store.pipelines_by_key[job.pipeline_key]
  if p and json.is_object(p.inputs) then
    for _, k in ipairs(object_keys(p.inputs)) do
      if p.inputs[k].tracked ~= false then return k end
    end
  end
  return "worker.inference"
end

-- An output of `job` whose bytes the loopback storage serves (storage.lua, blob.lua);
-- from `o`: id, port_name, input_id, input_file_id, filename, num_bytes (json.null:
-- none), size (bytes served, default num_bytes). Listings refresh its URL.
local function blob_output(job, o, at)
  local id = o.id or ("out_" .. random_alnum(12))
  local size = math.tointeger(o.size) or math.tointeger(o.num_bytes) or 0
  storage.add_blob(id, size)
  state.blob_of[id] = id
  return json.object({
    id = id, job_id = job.id, port_name = o.port_name or output_port_of(job),
    input_id = o.input_id or json.null, input_file_id = o.input_file_id or json.null,
    data = data_ref((storage.url("/_blob/" .. id, state.config.url_ttl)), o.filename, o.num_bytes),
    expires_at = iso_time(now() + state.config.url_ttl), created_at = at or iso_time(),
  }, OUTPUT_FIELDS)
end

-- Append the output of a finished input (a CSV served by the loopback storage).
local function add_output(rec, input, at)
  local stem = input.file_id:gsub("%.%w+$", "")
  table.insert(rec.outputs, blob_output(rec.job, { input_id = input.id, input_file_id = input.file_id,
    filename = "pred_" .. stem .. "_part_1.csv", num_bytes = 2048 }, at))
end

-- Append an input record on `port`; returns it.
local function new_input(rec, port, file_id, status, metadata, at)
  local input = json.object({
    id = "inp_" .. random_alnum(12), job_id = rec.job.id, port_name = port,
    file_id = file_id,
    data = data_ref("https://storage.example.com/files/" .. file_id, file_id,
                    1024 * #file_id, metadata),
    status = status, error_message = json.null, created_at = rec.job.created_at,
    completed_at = json.null,
  }, INPUT_FIELDS)
  if status == "completed" or status == "failed" then input.completed_at = at end
  table.insert(rec.inputs, input)
  return input
end

-- {pending, processing, completed, failed} over the inputs (of `port`, if given).
local function count_inputs(rec, port)
  local counts = json.object({ pending = 0, processing = 0, completed = 0, failed = 0 },
                             INPUT_STATUSES)
  for _, input in ipairs(rec.inputs) do
    if counts[input.status] and (not port or port == "" or input.port_name == port) then
      counts[input.status] = counts[input.status] + 1
    end
  end
  return counts
end

-- Record a change: drop the verbatim fixture text, refresh derived fields.
local function mutated(rec)
  rec.raw = nil
  rec.job.updated_at = iso_time()
  rec.job.input_progress = count_inputs(rec)
end

-- Mark an input completed/failed and give it the next completion rank.
local function finish_input(rec, input, status, at)
  input.status = status
  input.completed_at = at
  rec.rank_count = (rec.rank_count or 0) + 1
  rec.ranks[input.id] = rec.rank_count
end

-- Fill events/inputs/progress/outputs of a seed job from its status and input_progress.
local function synthesize_children(rec)
  local job = rec.job
  local ip = json.is_object(job.input_progress) and job.input_progress or {}
  local started = is_set(job.started_at) and job.started_at or nil
  local ended = (is_set(job.completed_at) and job.completed_at)
    or (is_set(job.failed_at) and job.failed_at) or (is_set(job.cancelled_at) and job.cancelled_at)
    or job.updated_at
  add_event(rec, "job.created", "INFO", "Job queued", nil, nil, job.created_at)
  if started then add_event(rec, "running_job", "INFO", "Job started", nil, nil, started) end
  local port, n = tracked_port_of(job), 0
  for _, status in ipairs({ "completed", "failed", "processing", "pending" }) do
    for _ = 1, math.tointeger(ip[status]) or 0 do
      n = n + 1
      local input = new_input(rec, port, string.format("input_%02d.csv", n), status, nil,
                              ended)
      if status == "completed" or status == "failed" then
        finish_input(rec, input, status, ended)
        add_progress(rec, input, 2, 100, ended)
      elseif status == "processing" then
        add_progress(rec, input, 1, 50, started)
      end
      if status == "completed" then
        add_event(rec, "inference.success", "SUCCESS", "Inference completed for input",
                  nil, input, ended)
        add_output(rec, input, ended)
      elseif status == "failed" then
        input.error_message = "Input file format not supported"
        add_event(rec, "inference.failed", "FAILED", "Input file format not supported",
                  json.object({ error_code = "UNSUPPORTED_FORMAT" }), input, ended)
      end
    end
  end
  if job.status == "COMPLETED" then
    add_event(rec, "job.completed", "SUCCESS", "Job completed", nil, nil, ended)
  elseif job.status == "FAILED" then
    local msg = json.is_object(job.error) and job.error.message or "Job failed"
    add_event(rec, "job.failed", "FAILED", msg,
              json.is_object(job.error) and deep_copy(job.error) or nil, nil, ended)
  elseif job.status == "CANCELLED" then
    add_event(rec, "job.cancelled", "WARN", "Job cancelled", nil, nil, ended)
  end
end

-- A record for a job object; `raw` is its fixture text (served verbatim until mutated).
local function new_record(job, raw)
  return { job = job, raw = raw, events = {}, progress = {}, inputs = {}, outputs = {},
           ranks = {}, seq = 0 }
end

-- The documented TEP job gets the documented example children (made consistent).
local function seed_tep_children(rec, fixtures)
  local function items(name, field) return json.decode(read_file(fixtures .. "/" .. name))[field] end
  rec.events = items("job_events.json", "events")
  local extra_events = {
    { 1003, "vectorizing_file", "INFO", "Vectorizing tep_inference.csv", {}, "inp_abc123def456", 0, "2026-04-14T10:06:00Z" },
    { 1004, "inference.success", "SUCCESS", "Inference completed for input", { duration_ms = 980 }, "inp_abc123def456", 1, "2026-04-14T10:10:00Z" },
    { 1005, "job.completed", "SUCCESS", "Job completed", {}, json.null, json.null, "2026-04-14T10:15:00Z" },
  }
  for _, e in ipairs(extra_events) do
    table.insert(rec.events, json.object({ id = e[1], event_type = e[2], level = e[3],
      message = e[4], payload = json.object(e[5], {}), input_id = e[6], index = e[7],
      created_at = e[8] }, EVENT_FIELDS))
  end

  rec.progress = items("job_progress.json", "entries")
  table.insert(rec.progress, json.object({ id = 503, kind = "postprocess", step = 3,
    message = "Writing results", metrics = json.object({ percent_complete = 100,
      items_processed = 10, items_total = 10 }, { "percent_complete", "items_processed",
      "items_total" }),
    payload = json.object({}, {}), input_id = "inp_abc123def456", index = 0,
    created_at = "2026-04-14T10:14:00Z" }, PROGRESS_FIELDS))

  rec.inputs = items("job_inputs_tep.json", "inputs")
  table.insert(rec.inputs, json.object({ id = "inp_nshot0normal", job_id = TEP_JOB,
    port_name = "worker.n_shots", file_id = "nshot_normal.csv",
    data = data_ref("https://storage.example.com/files/nshot_normal.csv", "nshot_normal.csv",
                    81920, json.object({ class = "normal" })),
    status = "reference", error_message = json.null, created_at = "2026-04-14T10:00:00Z",
    completed_at = json.null }, INPUT_FIELDS))
  rec.ranks = { inp_abc123def456 = 1 }
  rec.rank_count = 1

  local first = items("job_outputs.json", "outputs")[1]
  first.port_name = "worker.results"
  first.input_file_id = "file_abc123"
  json.object(first, OUTPUT_FIELDS)
  rec.outputs = { first }
  for k = 2, 25 do
    local filename = string.format("pred_tep_inference_part_%03d.csv", k)
    table.insert(rec.outputs, json.object({ id = string.format("out_tep%09d", k),
      job_id = TEP_JOB, port_name = "worker.results", input_id = "inp_abc123def456",
      input_file_id = "file_abc123",
      data = data_ref("https://storage.example.com/outputs/" .. filename
                      .. "?X-Amz-Signature=fake" .. k, filename, 4096 + k),
      expires_at = "2026-04-14T11:00:00Z",
      created_at = string.format("2026-04-14T10:10:%02dZ", k) }, OUTPUT_FIELDS))
  end

  rec.traces_points = items("job_inputs_progress_traces.json", "points")
end

return {
  ORG_ID = ORG_ID, TEP_JOB = TEP_JOB, JOB_FIELDS = JOB_FIELDS,
  PIPELINE_FIELDS = PIPELINE_FIELDS, TERMINAL = TERMINAL, CANCELLABLE = CANCELLABLE,
  RETRYABLE = RETRYABLE,
  is_set = is_set, add_event = add_event, add_progress = add_progress,
  add_output = add_output, blob_output = blob_output, new_input = new_input, count_inputs = count_inputs,
  mutated = mutated, finish_input = finish_input, new_record = new_record,
  synthesize_children = synthesize_children, seed_tep_children = seed_tep_children,
}

--[[
  fake_api/job_io.lua -- handlers of a job's children: events, progress, inputs,
  inputs/progress (+ counts, traces with ETag/304) and outputs.
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local jobs = require("fake_api.jobs")
local paging = require("fake_api.paging")
local records = require("fake_api.records")
local storage = require("fake_api.storage")
local util = require("fake_api.util")

local raise = errors.raise
local need_job = jobs.need_job
local filter_items, page_body = paging.filter_items, paging.page_body
local count_inputs, is_set = records.count_inputs, records.is_set
local parse_time, fnv1a = util.parse_time, util.fnv1a

-- A handler paging one child array of a job (rec[field]) as `name`, filtered by the
-- query parameters of `filters` (query parameter → item field).
local function child_list(field, name, filters)
  return function(req, id)
    local rec = need_job(id)
    return 200, page_body(req, filter_items(rec[field], req, filters), name, id)
  end
end

-- GET /batch/jobs/{id}/events (filters: level, event_type, input_id).
local list_events = child_list("events", "events",
  { level = "level", event_type = "event_type", input_id = "input_id" })

-- GET /batch/jobs/{id}/progress (filters: kind, input_id).
local list_progress = child_list("progress", "entries", { kind = "kind", input_id = "input_id" })

-- GET /batch/jobs/{id}/inputs (filters: port_name, status).
local list_inputs = child_list("inputs", "inputs", { port_name = "port_name", status = "status" })

-- GET /batch/jobs/{id}/outputs (filters: port_name, input_id); outputs served by the
-- loopback storage get fresh presigned URLs on every call.
local list_outputs_page = child_list("outputs", "outputs",
  { port_name = "port_name", input_id = "input_id" })
local function list_outputs(req, id)
  local status, body = list_outputs_page(req, id)
  body.outputs = storage.fresh_outputs(body.outputs)
  return status, body
end

-- The newest progress entry of an input, or null.
local function latest_progress_of(rec, input_id)
  for i = #rec.progress, 1, -1 do
    if rec.progress[i].input_id == input_id then return rec.progress[i] end
  end
  return json.null
end

-- GET /batch/jobs/{id}/inputs/progress (status may repeat; order asc|desc).
local function list_inputs_progress(req, id)
  local rec = need_job(id)
  local wanted = nil
  for _, s in ipairs(req.params_all.status or {}) do
    if s ~= "" then wanted = wanted or {}; wanted[s] = true end
  end
  local order = req.params.order or "asc"
  if order ~= "asc" and order ~= "desc" then
    raise(400, "invalid_parameter", "order must be 'asc' or 'desc'", nil)
  end
  local port, items = req.params.port_name or "", {}
  for _, input in ipairs(rec.inputs) do
    if input.status ~= "reference" and (port == "" or input.port_name == port)
        and (not wanted or wanted[input.status]) then
      items[#items + 1] = json.object({ input = input,
        latest_progress = latest_progress_of(rec, input.id),
        step = rec.ranks[input.id] or json.null }, { "input", "latest_progress", "step" })
    end
  end
  if order == "desc" then
    for i = 1, #items // 2 do items[i], items[#items + 1 - i] = items[#items + 1 - i], items[i] end
  end
  return 200, page_body(req, items, "items", id)
end

-- GET /batch/jobs/{id}/inputs/progress/counts.
local function get_counts(req, id)
  local rec = need_job(id)
  local counts = count_inputs(rec, req.params.port_name)
  counts.job_id = id
  return 200, json.object(counts, { "job_id", "pending", "processing", "completed", "failed" })
end

-- Traces: fixture points for the TEP job, otherwise a start and a latest point.
-- bucket_seconds = (end - start) / clamp(buckets, 10, 1000), so the clamp is observable.
local function traces_body(rec, buckets)
  local job = rec.job
  local started = parse_time(is_set(job.started_at) and job.started_at or job.created_at)
  local ended = parse_time(job.completed_at) or parse_time(job.failed_at)
    or parse_time(job.cancelled_at) or parse_time(job.updated_at) or started
  local counts = count_inputs(rec)
  local finished = counts.completed + counts.failed
  local points = rec.traces_points
  if not points then
    points = json.array({ json.object({ t = is_set(job.started_at) and job.started_at or job.created_at,
      step = 0, files = json.object({ completed = 0, failed = 0 }, { "completed", "failed" }),
      items = json.object({}, {}) }, { "t", "step", "files", "items" }) })
    if finished > 0 then
      table.insert(points, json.object({ t = job.updated_at, step = finished,
        files = json.object({ completed = counts.completed, failed = counts.failed },
                            { "completed", "failed" }),
        items = json.object({ inference = json.object({ success = counts.completed,
          failed = counts.failed }, { "success", "failed" }) }) },
        { "t", "step", "files", "items" }))
    end
  end
  -- latest_event_at is null until an input finished or progress was emitted.
  local active = rec.traces_points or finished > 0 or #rec.progress > 0
  local latest = active and job.updated_at or json.null
  return json.object({ job_id = job.id, bucket_seconds = (ended - started) / buckets + 0.0,
    latest_event_at = latest, points = points },
    { "job_id", "bucket_seconds", "latest_event_at", "points" })
end

-- GET /batch/jobs/{id}/inputs/progress/traces, with an ETag and If-None-Match → 304.
local function get_traces(req, id)
  local rec = need_job(id)
  local raw = req.params.buckets
  local buckets = 100
  if raw and raw ~= "" then
    buckets = raw:match("^%-?%d+$") and math.tointeger(tonumber(raw))
    if not buckets then
      raise(400, "invalid_parameter", "Query parameter 'buckets' must be an integer, got '"
            .. raw .. "'", "Use an integer between 10 and 1000.")
    end
  end
  buckets = math.max(10, math.min(1000, buckets))
  local text = json.encode(traces_body(rec, buckets))
  local etag = 'W/"' .. fnv1a(text) .. '"'
  for tag in (req.headers["if-none-match"] or ""):gmatch("[^,]+") do
    tag = tag:match("^%s*(.-)%s*$")
    if tag == "*" or tag == etag or tag == etag:sub(3) then
      return 304, nil, { ETag = etag }
    end
  end
  return 200, json.raw(text), { ETag = etag }
end

return {
  list_events = list_events, list_progress = list_progress, list_inputs = list_inputs,
  list_inputs_progress = list_inputs_progress, get_counts = get_counts,
  get_traces = get_traces, list_outputs = list_outputs,
}

--[[
  fake_api/store.lua -- loading the job store from the fixtures, and the full reset.

  Seed jobs: spec/fixtures/job_completed_tep.json (the documented TEP job, with the
  documented children) and every spec/fixtures/jobs/*.json (children synthesised from
  their status and input_progress); with --demo-jobs, the demo jobs of demo.lua too.  The store lives in state.store:
    { jobs = {id → record}, seq, event_id, progress_id, queue_raw,
      pipelines, pipelines_by_key, pipeline_docs }
]]

local json = require("fake_api.json")
local demo = require("fake_api.demo")
local records = require("fake_api.records")
local registry = require("fake_api.registry")
local state = require("fake_api.state")
local util = require("fake_api.util")

local read_file, list_json_files = util.read_file, util.list_json_files
local new_record, TEP_JOB = records.new_record, records.TEP_JOB

local store_mod = {}

-- Build state.store from the fixtures folder (state.opts.fixtures).
function store_mod.load()
  local fixtures = state.opts.fixtures
  local store = { jobs = {}, seq = 0, event_id = 5000, progress_id = 7000 }
  state.store = store
  registry.load(store, fixtures)
  store.queue_raw = read_file(fixtures .. "/queue.json")

  local files = { fixtures .. "/job_completed_tep.json" }
  for _, f in ipairs(list_json_files(fixtures .. "/jobs")) do files[#files + 1] = f end
  local recs = {}
  for _, path in ipairs(files) do
    local raw = read_file(path)
    local job, err = json.decode(raw)
    if not json.is_object(job) or type(job.id) ~= "string" then
      error("seed job " .. path .. " is not a job object: " .. tostring(err))
    end
    local rec = new_record(job, raw)
    if job.id == TEP_JOB then records.seed_tep_children(rec, fixtures)
    else records.synthesize_children(rec) end
    recs[#recs + 1] = rec
    store.jobs[job.id] = rec
  end
  if state.opts.demo_jobs then
    for _, rec in ipairs(demo.records()) do
      recs[#recs + 1] = rec
      store.jobs[rec.job.id] = rec
    end
  end
  table.sort(recs, function(a, b)
    if a.job.created_at ~= b.job.created_at then
      return tostring(a.job.created_at) < tostring(b.job.created_at)
    end
    return a.job.id < b.job.id
  end)
  for _, rec in ipairs(recs) do store.seq = store.seq + 1; rec.seq = store.seq end
end

-- Reload the fixtures; clear faults, toggles, counters and the request log.
function store_mod.reset_all()
  state.files, state.uploads, state.blobs, state.blob_of = {}, {}, {}, {}
  state.config = state.default_config()
  store_mod.load()
  state.faults = {}
  state.reset_counters()
end

return store_mod

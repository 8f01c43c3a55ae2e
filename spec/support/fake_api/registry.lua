--[[
  fake_api/registry.lua -- the pipeline registry: the documented pipelines from the
  fixtures plus synthetic ones (so the list has more than one page), and the handlers
  of GET /batch/registry/pipelines, .../pipelines/{id} and .../pipelines/{id}/schema.
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local paging = require("fake_api.paging")
local records = require("fake_api.records")
local state = require("fake_api.state")
local util = require("fake_api.util")

local ORG_ID, PIPELINE_FIELDS = records.ORG_ID, records.PIPELINE_FIELDS
local read_file = util.read_file
local filter_items, page_body, not_found = paging.filter_items, paging.page_body, errors.not_found

-- Extra pipelines so the registry has more than one page; {id, key, version, name,
-- type, visibility, status, input port?, output port?}.
local EXTRA_PIPELINES = {
  { "ppl_actdetect00001", "activity-detection", "1.0.3", "Activity Detection", "batch", "platform", "published", "worker.data", "worker.result" },
  { "ppl_actdetect00000", "activity-detection", "0.9.0", "Activity Detection", "batch", "platform", "deactivated", "worker.data", "worker.result" },
  { "ppl_mscdraft000001", "machine-state-classification", "1.2.0-rc1", "Machine State Classification", "batch", "platform", "draft" },
  { "ppl_anomalytrain01", "anomaly-trainer", "0.3.0", "Anomaly Trainer", "training", "platform", "published" },
  { "ppl_embedtrain0001", "embedding-finetune", "0.1.0", "Embedding Fine-tune", "training", "org", "published" },
  { "ppl_orgtagger00002", "org-image-tagger", "2.0.0", "Org Image Tagger", "batch", "org", "published" },
  { "ppl_orgtagger00001", "org-image-tagger", "1.0.0", "Org Image Tagger", "batch", "org", "deleted" },
  { "ppl_sensorsumm0001", "sensor-summarizer", "0.5.0", "Sensor Summarizer", "batch", "platform", "published" },
  { "ppl_videoindex0001", "video-indexer", "0.2.0", "Video Indexer", "batch", "platform", "draft" },
  { "ppl_forecasttrain1", "timeseries-forecast-trainer", "1.0.0", "Forecast Trainer", "training", "platform", "published" },
}

local function synth_pipeline(spec)
  local obj = function(t) return json.object(t, {}) end
  local port = json.object({ name = "Input files", description = "Files to process",
    mode = "plain_file_list", distribute = "scatter", required = true, tracked = true },
    { "name", "description", "mode", "distribute", "required", "tracked" })
  return json.object({
    id = spec[1], pipeline_key = spec[2], pipeline_version = spec[3], name = spec[4],
    description = spec[4] .. " (synthetic fake-server pipeline)", pipeline_type = spec[5],
    components = obj({ worker = "cmp_" .. spec[1]:sub(5) }),
    default_config = obj({ worker = json.object({ parallelism = 1, config = obj({}) },
                                                { "parallelism", "config" }) }),
    config_schema = obj({}), user_config_schema = obj({}), edges = json.array({}),
    inputs = obj({ [spec[8] or "worker.data"] = port }),
    outputs = obj({ [spec[9] or "worker.results"] = json.object({ name = "Output files",
      description = "Results" }, { "name", "description" }) }),
    retry_policy = obj({}), visibility = spec[6], org_id = ORG_ID, status = spec[7],
    created_at = "2026-03-15T00:00:00Z", updated_at = "2026-04-01T00:00:00Z",
  }, PIPELINE_FIELDS)
end

local function schema_of(p)
  return json.object({ id = p.id, pipeline_key = p.pipeline_key,
    pipeline_version = p.pipeline_version, user_schema = p.user_config_schema,
    config_schema = p.config_schema, inputs = p.inputs, outputs = p.outputs },
    { "id", "pipeline_key", "pipeline_version", "user_schema", "config_schema", "inputs",
      "outputs" })
end

-- Fill store.pipelines, pipelines_by_key and pipeline_docs from the fixtures.
local function load_registry(store, fixtures)
  store.pipelines, store.pipelines_by_key, store.pipeline_docs = {}, {}, {}
  local function add(p)
    table.insert(store.pipelines, p)
    if p.status == "published" or not store.pipelines_by_key[p.pipeline_key] then
      store.pipelines_by_key[p.pipeline_key] = p
    end
  end
  for _, name in ipairs({ "pipelines_list.json", "pipelines_list_msc.json" }) do
    for _, p in ipairs(json.decode(read_file(fixtures .. "/" .. name)).pipelines) do add(p) end
  end
  for _, spec in ipairs(EXTRA_PIPELINES) do add(synth_pipeline(spec)) end
  -- Documented single-pipeline bodies are served verbatim.
  for _, pair in ipairs({ { "pipeline_get.json", "pipeline_schema.json" },
                          { "pipeline_get_msc.json", "pipeline_schema_msc.json" } }) do
    local get_raw = read_file(fixtures .. "/" .. pair[1])
    store.pipeline_docs[json.decode(get_raw).id] = {
      get = json.raw(get_raw), schema = json.raw(read_file(fixtures .. "/" .. pair[2])) }
  end
end

-- A key can be used for new jobs if some version of it is published.
local function pipeline_usable(key)
  if key == "machine-state-classification" then return true end
  local p = state.store.pipelines_by_key[key]
  return p ~= nil and p.status == "published"
end

-- GET /batch/registry/pipelines (filters: pipeline_type, visibility, status).
local function list_pipelines(req)
  local items = filter_items(state.store.pipelines, req,
    { pipeline_type = "pipeline_type", visibility = "visibility", status = "status" })
  return 200, page_body(req, items, "pipelines")
end

local function find_pipeline(id)
  for _, p in ipairs(state.store.pipelines) do
    if p.id == id then return p end
  end
  not_found("Pipeline", id)
end

-- GET /batch/registry/pipelines/{id}: documented bodies verbatim, else the synthetic one.
local function get_pipeline(_, id)
  local doc = state.store.pipeline_docs[id]
  if doc then return 200, doc.get end
  return 200, find_pipeline(id)
end

-- GET /batch/registry/pipelines/{id}/schema.
local function get_pipeline_schema(_, id)
  local doc = state.store.pipeline_docs[id]
  if doc then return 200, doc.schema end
  return 200, schema_of(find_pipeline(id))
end

return {
  load = load_registry, usable = pipeline_usable, list_pipelines = list_pipelines,
  get_pipeline = get_pipeline, get_pipeline_schema = get_pipeline_schema,
}

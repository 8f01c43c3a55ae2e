--[[
  fake_api/control.lua -- the control API under /_fake/ (no auth, never logged, never
  faulted), JSON in and out:
    POST /_fake/reset     reload fixtures; clear faults, counters, request log, toggles
    POST /_fake/faults    {"method"?, "path" | "path_prefix"?, "responses": [F, ...]}
                          (F: see faults.lua)
    POST /_fake/config    {"full_write_bodies", "ignore_offset", "page_total_lies",
                           "part_size", "url_ttl", "expired_listings", "stale_listings",
                           "max_upload_bytes", "integrity_algorithm", "integrity_max_bytes",
                           "corrupt_next_part", "kill_pid", "kill_after_checkpoints"}
                          (see state.default_config)
    POST /_fake/outputs   {"job_id", "outputs": [{id?, filename, num_bytes, size?,
                           port_name?, input_id?}]}: the job's outputs become these, their
                           bytes served by the loopback storage (storage.lua)
    GET  /_fake/stats     {"connections", "accepted", "faults_pending", "storage",
                           "uploads", "files", "requests": [...]}
    POST /_fake/shutdown  respond, then exit
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local jobs = require("fake_api.jobs")
local records = require("fake_api.records")
local state = require("fake_api.state")
local store = require("fake_api.store")

local raise, guarded = errors.raise, errors.guarded
local json_response, error_envelope = errors.json_response, errors.envelope
local parse_json_body = jobs.parse_json_body

local function control_body(req)
  if req.body == "" then return json.object({}, {}) end
  return parse_json_body(req)
end

-- POST /_fake/faults: append a fault rule.
local function add_fault(req)
  local body = control_body(req)
  if not json.is_array(body.responses) then
    raise(400, "invalid_parameter", "'responses' must be an array of fault objects", nil)
  end
  for _, f in ipairs(body.responses) do
    if not json.is_object(f) then raise(400, "invalid_parameter", "each fault must be an object", nil) end
  end
  local rule = { method = type(body.method) == "string" and body.method:upper() or nil,
    path = type(body.path) == "string" and body.path or nil,
    path_prefix = type(body.path_prefix) == "string" and body.path_prefix or nil,
    responses = body.responses, next = 1 }
  table.insert(state.faults, rule)
  return 200, { ok = true, rule = #state.faults }
end

-- How many fault responses are still to be served.
local function faults_pending()
  local n = 0
  for _, rule in ipairs(state.faults) do n = n + #rule.responses - rule.next + 1 end
  return n
end

-- POST /_fake/config: set toggles (unknown names and wrong types are a 400).
local function set_config(req)
  local body = control_body(req)
  for name, value in pairs(body) do
    local current = state.config[name]
    if current == nil then raise(400, "invalid_parameter", "unknown toggle '" .. name .. "'", nil) end
    if type(value) ~= type(current) then
      raise(400, "invalid_parameter", "toggle '" .. name .. "' must be a " .. type(current), nil)
    end
    state.config[name] = math.tointeger(value) or value
  end
  return 200, state.config
end

-- The multipart uploads, for the specs: id -> {status, filename, num_bytes, parts}.
local function uploads_view()
  local view = json.object({}, {})
  for id, u in pairs(state.uploads) do
    local parts = json.array({})
    for n, p in ipairs(u.parts) do
      parts[n] = json.object({ part_number = p.number, offset = p.offset, length = p.length,
        uploaded = p.etag ~= nil, puts = p.puts or 0, head = p.head or json.null,
        checkpointed = p.checkpointed == true, refreshes = p.refreshes or 0, crc = p.crc or json.null },
        { "part_number", "offset", "length", "uploaded", "puts", "head", "checkpointed", "refreshes", "crc" })
    end
    view[id] = json.object({ status = u.status, filename = u.filename, num_bytes = u.num_bytes,
      algorithm = u.algorithm, checksum = u.checksum or json.null, initiates = u.initiates,
      url_calls = u.url_calls, refreshes = u.refreshes, checkpoint_calls = u.checkpoint_calls, parts = parts },
      { "status", "filename", "num_bytes", "algorithm", "checksum", "initiates", "url_calls", "refreshes",
        "checkpoint_calls", "parts" })
  end
  return view
end

-- The Files store, for the specs: name -> metadata plus head (first bytes) and content
-- (small files only).
local function files_view()
  local view = json.object({}, {})
  for name, f in pairs(state.files) do
    local entry = json.copy(f.meta)
    entry.head, entry.content = f.head or json.null, f.content or json.null
    view[name] = entry
  end
  return view
end

-- POST /_fake/outputs: replace a job's outputs by blob-backed ones.
local function set_outputs(req)
  local body = control_body(req)
  local rec = jobs.need_job(tostring(body.job_id))
  if not json.is_array(body.outputs) then raise(400, "invalid_parameter", "'outputs' must be an array", nil) end
  rec.outputs = {}
  for i, o in ipairs(body.outputs) do
    if not json.is_object(o) or type(o.filename) ~= "string" then
      raise(400, "invalid_parameter", "outputs[" .. i .. "] needs a filename", nil)
    end
    rec.outputs[i] = records.blob_output(rec.job, o)
  end
  return 200, { outputs = json.array(rec.outputs) }
end

-- GET /_fake/stats: counters and the request log.
local function get_stats()
  return 200, json.object({ connections = state.stats.connections,
    accepted = state.stats.accepted, faults_pending = faults_pending(),
    requests = state.stats.requests, storage = state.stats.storage, uploads = uploads_view(),
    files = files_view() },
    { "connections", "accepted", "faults_pending", "storage", "uploads", "files", "requests" })
end

-- POST /_fake/reset.
local function do_reset()
  store.reset_all()
  return 200, { ok = true }
end

-- POST /_fake/shutdown: the fourth result asks the server to exit.
local function do_shutdown()
  return 200, { ok = true }, nil, true
end

local CONTROL_ROUTES = {
  { "POST", "/_fake/reset",    do_reset },
  { "POST", "/_fake/faults",   add_fault },
  { "POST", "/_fake/config",   set_config },
  { "POST", "/_fake/outputs",  set_outputs },
  { "GET",  "/_fake/stats",    get_stats },
  { "POST", "/_fake/shutdown", do_shutdown },
}

-- Serve a /_fake/ request; resp.shutdown is set after /_fake/shutdown.
local function serve_control(req)
  for _, route in ipairs(CONTROL_ROUTES) do
    if route[1] == req.method and route[2] == req.path then
      local stop = false
      local resp = guarded(function()
        local status, body, headers, shutdown = route[3](req)
        stop = shutdown
        return status, body, headers
      end)
      resp.close, resp.shutdown = stop, stop
      return resp
    end
  end
  return json_response(404, error_envelope({ { code = "not_found",
    message = "No control route " .. req.method .. " " .. req.path } }))
end

return { serve = serve_control }

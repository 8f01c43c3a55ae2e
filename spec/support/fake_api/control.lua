--[[
  fake_api/control.lua -- the control API under /_fake/ (no auth, never logged, never
  faulted), JSON in and out:
    POST /_fake/reset     reload fixtures; clear faults, counters, request log, toggles
    POST /_fake/faults    {"method"?, "path" | "path_prefix"?, "responses": [F, ...]}
                          (F: see faults.lua)
    POST /_fake/config    {"full_write_bodies", "ignore_offset", "page_total_lies"}
    GET  /_fake/stats     {"connections", "accepted", "faults_pending", "requests": [...]}
    POST /_fake/shutdown  respond, then exit
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local jobs = require("fake_api.jobs")
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

-- GET /_fake/stats: counters and the request log.
local function get_stats()
  return 200, json.object({ connections = state.stats.connections,
    accepted = state.stats.accepted, faults_pending = faults_pending(),
    requests = state.stats.requests },
    { "connections", "accepted", "faults_pending", "requests" })
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

--[[
  fake_api/routes.lua -- the route table of the API under /v0.5, authentication, and
  api_response(req): the normal (fault-free) behaviour of the API.
]]

local errors = require("fake_api.errors")
local jobs = require("fake_api.jobs")
local job_io = require("fake_api.job_io")
local registry = require("fake_api.registry")
local files = require("fake_api.files")
local storage = require("fake_api.storage")
local state = require("fake_api.state")
local util = require("fake_api.util")

local raise, raise_errors, guarded = errors.raise, errors.raise_errors, errors.guarded
local pct_decode = util.pct_decode

-- Routes under /v0.5, tried in order (queue before {id}). Captures are percent-decoded.
local ROUTES = {
  { "GET",    "^/batch/jobs/queue$",                          jobs.get_queue },
  { "GET",    "^/batch/jobs$",                                jobs.list_jobs },
  { "POST",   "^/batch/jobs$",                                jobs.create_job },
  { "GET",    "^/batch/jobs/([^/]+)$",                        jobs.get_job },
  { "DELETE", "^/batch/jobs/([^/]+)$",                        jobs.delete_job },
  { "POST",   "^/batch/jobs/([^/]+)/cancel$",                 jobs.cancel_job },
  { "POST",   "^/batch/jobs/([^/]+)/retry$",                  jobs.retry_job },
  { "GET",    "^/batch/jobs/([^/]+)/events$",                 job_io.list_events },
  { "GET",    "^/batch/jobs/([^/]+)/progress$",               job_io.list_progress },
  { "GET",    "^/batch/jobs/([^/]+)/inputs$",                 job_io.list_inputs },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress$",        job_io.list_inputs_progress },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress/counts$", job_io.get_counts },
  { "GET",    "^/batch/jobs/([^/]+)/inputs/progress/traces$", job_io.get_traces },
  { "GET",    "^/batch/jobs/([^/]+)/outputs$",                job_io.list_outputs },
  { "GET",    "^/batch/registry/pipelines$",                  registry.list_pipelines },
  { "GET",    "^/batch/registry/pipelines/([^/]+)$",          registry.get_pipeline },
  { "GET",    "^/batch/registry/pipelines/([^/]+)/schema$",   registry.get_pipeline_schema },
  { "POST",   "^/files$",                                     files.upload },
  { "POST",   "^/files/base64$",                              files.upload_base64 },
  { "GET",    "^/files/metadata$",                            files.list },
  { "GET",    "^/files/metadata/([^/]+)$",                    files.metadata },
  { "DELETE", "^/files/delete/([^/]+)$",                      files.delete },
  { "GET",    "^/files/download/([^/]+)$",                    files.download },
  { "POST",   "^/files/uploads/initiate$",                    files.initiate },
  { "POST",   "^/files/uploads/([^/]+)/parts/urls$",          files.part_urls },
  { "POST",   "^/files/uploads/([^/]+)/parts/checkpoint$",    files.checkpoint },
  { "POST",   "^/files/uploads/([^/]+)/complete$",            files.complete },
  { "POST",   "^/files/uploads/([^/]+)/abort$",               files.abort },
}

local API_PREFIX = "/v0.5"

-- "ok", "missing" or "wrong": the request's Authorization header against the key.
local function auth_state(req)
  local value = req.headers["authorization"]
  if value == nil then return "missing" end
  return value == "Bearer " .. state.opts.key and "ok" or "wrong"
end

-- The normal (fault-free) behaviour of the API; paths of the storage host (presigned
-- URLs: no key) go to storage.lua.
local function api_response(req)
  if storage.owns(req.path) then return storage.serve(req) end
  return guarded(function()
    if req.path:sub(1, #API_PREFIX + 1) ~= API_PREFIX .. "/" then
      raise(404, "not_found", "No route for " .. req.method .. " " .. req.path, nil)
    end
    if auth_state(req) ~= "ok" then
      raise_errors(401, nil, "Invalid or missing API key")
    end
    local sub = req.path:sub(#API_PREFIX + 1)
    for _, route in ipairs(ROUTES) do
      local method, pattern, handler = route[1], route[2], route[3]
      local found = { sub:find(pattern) }
      if found[1] and method == req.method then
        local caps = {}
        for i = 3, #found do caps[#caps + 1] = pct_decode(found[i]) end
        return handler(req, table.unpack(caps))
      end
    end
    raise(404, "not_found", "No route for " .. req.method .. " " .. req.path,
          "See the Batch Processing API reference for valid paths.")
  end)
end

-- Whether a request's body is streamed to its handler rather than read whole first.
local function streams(req) return files.streams(req) or storage.streams(req) end

return { ROUTES = ROUTES, auth_state = auth_state, api_response = api_response, streams = streams }

--- atai.api: the Batch Processing API endpoints, as methods of atai.Client.
--
-- get_job and request are C (atai.core); everything here is built on
-- client:request, so it shares one transfer engine, one error table and
-- one retry policy per method: GETs retry transient failures; POST and
-- DELETE retry only when the request cannot have reached the server.

local core = require("atai.core")
local check = require("atai.check")
local pages = require("atai.pages")

local Client = core.Client
local api = {}

-- Sends a request and returns the decoded body alone, or nil, err. Writes
-- (POST, DELETE) keep request's policy for them: never repeated once bytes
-- may have reached the server, since the API has no idempotency key.
local function call(self, method, path, opts)
  local body, meta = self:request(method, path, opts)
  if body == nil then return nil, meta end
  return body
end

local function get(self, path, query) return call(self, "GET", path, { query = query }) end
local function write(self, method, path, body) return call(self, method, path, { body = body }) end

local PAGE = { offset = "count", limit = "limit" }

-- Filter fields of each endpoint, merged with offset/limit for lists.
local function fields(list, t)
  local all = {}
  for k, v in pairs(t) do all[k] = v end
  if list then
    for k, v in pairs(PAGE) do all[k] = v end
  end
  return all
end

--- The list endpoints: method name, path (with %s for the id when the
--- first argument is one), filter fields, the page's array, iterator name.
api.LISTS = {
  { "list_jobs", "/batch/jobs", fields(true, { pipeline_type = "string", status = "string", q = "string" }),
    "jobs", "each_job" },
  { "job_events", "/batch/jobs/%s/events",
    fields(true, { level = "string", event_type = "string", input_id = "string" }), "events", "each_event" },
  { "job_progress", "/batch/jobs/%s/progress", fields(true, { kind = "string", input_id = "string" }),
    "entries", "each_progress" },
  { "job_inputs", "/batch/jobs/%s/inputs", fields(true, { port_name = "string", status = "string" }),
    "inputs", "each_input" },
  { "job_inputs_progress", "/batch/jobs/%s/inputs/progress",
    fields(true, { port_name = "string", status = "strings", order = "order" }), "items", "each_input_progress" },
  { "job_outputs", "/batch/jobs/%s/outputs", fields(true, { port_name = "string", input_id = "string" }),
    "outputs", "each_output" },
  { "pipelines", "/batch/registry/pipelines",
    fields(true, { pipeline_type = "string", visibility = "string", status = "string" }), "pipelines", "each_pipeline" },
}

-- Defines client:<name>([id,] filter) -> page, and client:<each>([id,] filter) -> iterator.
local function define_list(name, path, filter_fields, field, each_name)
  local has_id = path:find("%s", 1, true) ~= nil
  local function resolve(fname, a, b)
    if has_id then
      check.id(fname, 1, a)
      return path:format(a), check.filter(fname, 2, b, filter_fields)
    end
    return path, check.filter(fname, 1, a, filter_fields)
  end
  Client[name] = function(self, a, b)
    local p, query = resolve(name, a, b)
    return get(self, p, query)
  end
  Client[each_name] = function(self, a, b)
    local p, query = resolve(each_name, a, b)
    return pages.each(function(q) return get(self, p, q) end, field, query)
  end
end

for _, list in ipairs(api.LISTS) do define_list(list[1], list[2], list[3], list[4], list[5]) end

--- GET /batch/jobs/queue: queued jobs per pipeline type.
function Client:queue()
  return get(self, "/batch/jobs/queue")
end

local COUNTS_FILTER = { port_name = "string" }

--- GET /batch/jobs/{id}/inputs/progress/counts: per-status input counts.
function Client:job_input_counts(id, filter)
  check.id("job_input_counts", 1, id)
  local query = check.filter("job_input_counts", 2, filter, COUNTS_FILTER)
  return get(self, ("/batch/jobs/%s/inputs/progress/counts"):format(id), query)
end

local TRACES_OPTS = { buckets = "limit", etag = "string" }

--- GET /batch/jobs/{id}/inputs/progress/traces: bucketed time series. With
--- opts.etag it sends If-None-Match; an unchanged series answers
--- { not_modified = true, etag = etag }. Otherwise the body, with
--- body.etag set from the ETag header to pass next time.
function Client:job_input_traces(id, opts)
  check.id("job_input_traces", 1, id)
  local o = check.filter("job_input_traces", 2, opts, TRACES_OPTS)
  local headers = o.etag and { ["If-None-Match"] = o.etag } or nil
  local body, meta = self:request("GET", ("/batch/jobs/%s/inputs/progress/traces"):format(id),
    { query = { buckets = o.buckets }, headers = headers })
  if body == nil then return nil, meta end
  if meta.status == 304 then return { not_modified = true, etag = o.etag } end
  if type(body) == "table" then
    body.not_modified = false
    body.etag = meta.headers.etag
  end
  return body
end

--- GET /batch/registry/pipelines/{id}: a pipeline definition.
function Client:pipeline(id)
  check.id("pipeline", 1, id)
  return get(self, "/batch/registry/pipelines/" .. id)
end

--- GET /batch/registry/pipelines/{id}/schema: config schema and ports.
function Client:pipeline_schema(id)
  check.id("pipeline_schema", 1, id)
  return get(self, ("/batch/registry/pipelines/%s/schema"):format(id))
end

-- Compares dotted versions numerically ("1.10.0" > "1.9.2").
local function version_less(a, b)
  local pa, pb = {}, {}
  for n in tostring(a):gmatch("%d+") do pa[#pa + 1] = tonumber(n) end
  for n in tostring(b):gmatch("%d+") do pb[#pb + 1] = tonumber(n) end
  for i = 1, math.max(#pa, #pb) do
    local x, y = pa[i] or 0, pb[i] or 0
    if x ~= y then return x < y end
  end
  return false
end

-- Whether candidate pipeline `p` beats `best`: published first, then newest.
local function better_pipeline(p, best)
  if not best then return true end
  local p_pub, b_pub = p.status == "published", best.status == "published"
  if p_pub ~= b_pub then return p_pub end
  return version_less(best.pipeline_version, p.pipeline_version)
end

local FIND_FILTER = { pipeline_type = "string", visibility = "string", status = "string", limit = "limit" }

--- Finds a pipeline by pipeline_key (the API has no such filter: this lists
--- the registry and matches client-side). Several versions: a published one
--- wins, then the highest pipeline_version. Returns the pipeline, or nil,
--- err (kind "not_found" when no pipeline has that key).
function Client:find_pipeline(key, filter)
  if type(key) ~= "string" or key == "" then
    check.fail("find_pipeline", 1, "key: non-empty string expected, got " .. type(key))
  end
  local query = check.filter("find_pipeline", 2, filter, FIND_FILTER)
  local best
  for p, err in pages.each(function(q) return get(self, "/batch/registry/pipelines", q) end, "pipelines", query) do
    if p == false then return nil, err end
    if p.pipeline_key == key and better_pipeline(p, best) then best = p end
  end
  if best then return best end
  return nil, core.new_error {
    kind = "not_found", message = ("no pipeline with pipeline_key '%s'"):format(key),
  }
end

-- The fields of a job spec and how each is checked.
local SPEC_STRINGS = { name = true, pipeline_type = true, pipeline_key = true, pipeline_version = false }

-- Checks spec.inputs ({port = {{file_id, metadata}}}) and returns a copy
-- whose lists stay JSON arrays even when empty.
local function check_inputs(inputs)
  if type(inputs) ~= "table" then check.fail("create_job", 1, "spec.inputs: table expected, got " .. type(inputs)) end
  local copy = {}
  for port, files in pairs(inputs) do
    local where = "spec.inputs[" .. tostring(port) .. "]"
    if type(port) ~= "string" or port == "" then
      check.fail("create_job", 1, "spec.inputs: keys must be port names (strings)")
    end
    if type(files) ~= "table" then check.fail("create_job", 1, where .. ": list of files expected") end
    local list = setmetatable({}, core.array_mt)
    for i, file in pairs(files) do
      if type(i) ~= "number" or i < 1 or i > #files or i ~= math.floor(i) then
        check.fail("create_job", 1, where .. ": list of files expected")
      end
      if type(file) ~= "table" or type(file.file_id) ~= "string" or file.file_id == "" then
        check.fail("create_job", 1, ("%s[%d]: {file_id = string, metadata = table?} expected"):format(where, i))
      end
      if file.metadata ~= nil and type(file.metadata) ~= "table" then
        check.fail("create_job", 1, ("%s[%d].metadata: table expected"):format(where, i))
      end
    end
    for i = 1, #files do list[i] = files[i] end
    copy[port] = list
  end
  return copy
end

--- POST /batch/jobs: creates a job. spec = {name, pipeline_type,
--- pipeline_key, pipeline_version?, inputs?, parameters?}. Never retried
--- once bytes were sent (no idempotency key): a network error after that
--- may hide a job that was created, so list jobs before creating again.
function Client:create_job(spec)
  if type(spec) ~= "table" then check.fail("create_job", 1, "spec table expected, got " .. type(spec)) end
  local body = {}
  for k, v in pairs(spec) do
    if SPEC_STRINGS[k] ~= nil then
      if type(v) ~= "string" or v == "" then
        check.fail("create_job", 1, ("spec.%s: non-empty string expected, got %s"):format(k, type(v)))
      end
      body[k] = v
    elseif k == "inputs" then
      body.inputs = check_inputs(v)
    elseif k == "parameters" then
      if type(v) ~= "table" then check.fail("create_job", 1, "spec.parameters: table expected, got " .. type(v)) end
      body.parameters = v
    else
      check.fail("create_job", 1, ("unknown field spec.%s"):format(tostring(k)))
    end
  end
  for k, required in pairs(SPEC_STRINGS) do
    if required and body[k] == nil then check.fail("create_job", 1, ("spec.%s is required"):format(k)) end
  end
  return write(self, "POST", "/batch/jobs", body)
end

--- POST /batch/jobs/{id}/cancel. Returns the API's body: {id, status,
--- cancelled_at} or the full job, both documented. A job already terminal
--- gives nil, err with kind "conflict".
function Client:cancel_job(id)
  check.id("cancel_job", 1, id)
  return write(self, "POST", ("/batch/jobs/%s/cancel"):format(id))
end

--- POST /batch/jobs/{id}/retry: re-queues a FAILED or CANCELLED job. Returns
--- {id, status, retry_count} or the full job; other states give "conflict".
function Client:retry_job(id)
  check.id("retry_job", 1, id)
  return write(self, "POST", ("/batch/jobs/%s/retry"):format(id))
end

--- DELETE /batch/jobs/{id}: deletes the job and its data. Returns {id, deleted}.
function Client:delete_job(id)
  check.id("delete_job", 1, id)
  return write(self, "DELETE", "/batch/jobs/" .. id)
end

--- The names of the client methods that atai also offers bound to the
--- default client (beside get_job and request, which init.lua binds).
api.BOUND = { "queue", "job_input_counts", "job_input_traces", "pipeline", "pipeline_schema",
  "find_pipeline", "create_job", "cancel_job", "retry_job", "delete_job" }
for _, list in ipairs(api.LISTS) do
  api.BOUND[#api.BOUND + 1] = list[1]
  api.BOUND[#api.BOUND + 1] = list[5]
end

return api

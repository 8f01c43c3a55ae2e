--- atai.api: the Batch Processing API endpoints, each described once.
--
-- An endpoint is a row of data: its name, HTTP method, path (with {id}),
-- the arguments it checks (id, filter, spec...) and, when the body needs
-- shaping, a finish function. From each row this file makes the blocking
-- method (client:name(...)) and the async one (client.async:name(...) ->
-- handle); both check their arguments the same way and raise before any
-- I/O. get_job and request are C (atai.core); the rest go through the
-- client's engine through atai.core's private P.call (blocking) or P.start (a handle).
-- Retry policy comes from the method: GETs retry transient failures; POST
-- and DELETE only when the request cannot have reached the server.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local pages = require("atai.pages")
local handle = require("atai.handle")

local api = {}

-- The public methods this file makes: atai.methods puts them on atai.Client
-- and the async view (one place, once); nothing here touches those tables.
local Client, Async = {}, {}
api.methods = { client = Client, async = Async }
local function add(name, blocking, async)
  Client[name], Async[name] = blocking, async
end

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

--- The list endpoints: name, path (with {id} when the first argument is an
--- id), filter fields, the page's array, iterator name.
api.LISTS = {
  { "list_jobs", "/batch/jobs", fields(true, { pipeline_type = "string", status = "string", q = "string" }),
    "jobs", "each_job" },
  { "job_events", "/batch/jobs/{id}/events",
    fields(true, { level = "string", event_type = "string", input_id = "string" }), "events", "each_event" },
  { "job_progress", "/batch/jobs/{id}/progress", fields(true, { kind = "string", input_id = "string" }),
    "entries", "each_progress" },
  { "job_inputs", "/batch/jobs/{id}/inputs", fields(true, { port_name = "string", status = "string" }),
    "inputs", "each_input" },
  { "job_inputs_progress", "/batch/jobs/{id}/inputs/progress",
    fields(true, { port_name = "string", status = "strings", order = "order" }), "items", "each_input_progress" },
  { "job_outputs", "/batch/jobs/{id}/outputs", fields(true, { port_name = "string", input_id = "string" }),
    "outputs", "each_output" },
  { "pipelines", "/batch/registry/pipelines",
    fields(true, { pipeline_type = "string", visibility = "string", status = "string" }),
    "pipelines", "each_pipeline" },
}

-- The fields of a job spec and whether each is required.
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

-- Checks a job spec ({name, pipeline_type, pipeline_key, pipeline_version?,
-- inputs?, parameters?}) and returns the request body.
local function check_spec(spec)
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
  return body
end

local TRACES_OPTS = { buckets = "limit", etag = "string" }

-- job_input_traces: the body with not_modified and etag (from the ETag
-- header, to pass next time); a 304 gives { not_modified = true, etag }.
local function finish_traces(etag)
  return function(body, meta)
    if body == nil then return nil, meta end
    if meta.status == 304 then return { not_modified = true, etag = etag } end
    if type(body) == "table" then
      body.not_modified = false
      body.etag = meta.headers.etag
    end
    return body
  end
end

--- Every endpoint but the lists: name, method, path, then what its
--- arguments are ("id", "filter" with its fields, "spec"), or a `prepare`
--- for the unusual ones, which returns the request and a finish function.
api.ENDPOINTS = {
  { "queue", "GET", "/batch/jobs/queue" },
  { "job_input_counts", "GET", "/batch/jobs/{id}/inputs/progress/counts", filter = { port_name = "string" } },
  { "pipeline", "GET", "/batch/registry/pipelines/{id}" },
  { "pipeline_schema", "GET", "/batch/registry/pipelines/{id}/schema" },
  { "create_job", "POST", "/batch/jobs", spec = check_spec },
  { "cancel_job", "POST", "/batch/jobs/{id}/cancel" },
  { "retry_job", "POST", "/batch/jobs/{id}/retry" },
  { "delete_job", "DELETE", "/batch/jobs/{id}" },
  { "job_input_traces", "GET", "/batch/jobs/{id}/inputs/progress/traces", meta = true,
    prepare = function(name, opts)
      local o = check.filter(name, 2, opts, TRACES_OPTS)
      check.header_text(name, 2, "etag", o.etag) -- sent as If-None-Match
      local headers = o.etag and { ["If-None-Match"] = o.etag } or nil
      return { query = { buckets = o.buckets }, headers = headers }, finish_traces(o.etag)
    end },
}

-- Turns an endpoint's arguments into (path, request opts[, finish]).
local function resolve(ep, name, a, b)
  local path, n = ep[3], 1
  if path:find("{id}", 1, true) then
    check.id(name, 1, a)
    path = path:gsub("{id}", a)
    n, a = 2, b
  end
  if ep.prepare then return path, ep.prepare(name, a) end
  if ep.spec then return path, { body = ep.spec(a) } end
  if ep.filter then return path, { query = check.filter(name, n, a, ep.filter) } end
  return path, nil
end


-- The client of an async view; raises when called with '.' instead of ':'.
local function view_client(view, name)
  if getmetatable(view) ~= core.async_mt then
    check.fail(name, 1, "client.async methods are called with ':'")
  end
  return view[1]
end
api.view_client = view_client

-- An async handle that completes with finish(results of h).
local function mapped(client, h, finish)
  local op = handle.Op.new(client, true)
  handle.on_done(handle.internal(h), function(...) handle.complete(op, finish(...)) end)
  op.awaiting = h
  return op
end

-- Defines client:<name>(...) and client.async:<name>(...) for an endpoint.
local function define(ep)
  local name, method = ep[1], ep[2]
  local function prepare(a, b) return resolve(ep, name, a, b) end
  if ep.meta then
    add(name, function(self, a, b)
      local path, opts, finish = prepare(a, b)
      return finish(self:request(method, path, opts))
    end, function(view, a, b)
      local self = view_client(view, name)
      local path, opts, finish = prepare(a, b)
      return mapped(self, self.async:request(method, path, opts), finish)
    end)
    return
  end
  add(name, function(self, a, b)
    local path, opts = prepare(a, b)
    local body, err = P.call(self, method, path, opts)
    return body, err
  end, function(view, a, b)
    local self = view_client(view, name)
    local path, opts = prepare(a, b)
    return P.start(self, method, path, opts)
  end)
end

for _, ep in ipairs(api.ENDPOINTS) do define(ep) end

-- Defines a list endpoint: client:<name>([id,] filter) -> page, its async
-- twin, and client:<each>([id,] filter) -> iterator over every item.
local function define_list(name, path, filter_fields, field, each_name)
  local ep = { name, "GET", path, filter = filter_fields }
  define(ep)
  add(each_name, function(self, a, b)
    local p, opts = resolve(ep, each_name, a, b)
    return pages.each(function(q) return P.call(self, "GET", p, { query = q }) end, field, opts.query,
      P.settings(self).max_pages)
  end)
end

for _, list in ipairs(api.LISTS) do define_list(list[1], list[2], list[3], list[4], list[5]) end

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

local function check_find(name, key, filter)
  if type(key) ~= "string" or key == "" then
    check.fail(name, 1, "key: non-empty string expected, got " .. type(key))
  end
  return check.filter(name, 2, filter, FIND_FILTER)
end

-- find_pipeline's body: pages through the registry with a while loop (a
-- coroutine of atai.run may yield inside it, even on Lua 5.1).
local function find_pipeline(self, key, query)
  local best
  local next_item = self:each_pipeline(query)
  while true do
    local p, err = next_item()
    if p == nil then break end
    if p == false then return nil, err end
    if p.pipeline_key == key and better_pipeline(p, best) then best = p end
  end
  if best then return best end
  return nil, core.new_error {
    kind = "not_found", message = ("no pipeline with pipeline_key '%s'"):format(key),
  }
end

--- Finds a pipeline by pipeline_key (the API has no such filter: this lists
--- the registry and matches client-side). Several versions: a published one
--- wins, then the highest pipeline_version. Returns the pipeline, or nil,
--- err (kind "not_found" when no pipeline has that key).
add("find_pipeline", function(self, key, filter)
  local query = check_find("find_pipeline", key, filter)
  return find_pipeline(self, key, query)
end, function(view, key, filter)
  local client = view_client(view, "find_pipeline")
  P.check(client)
  local query = check_find("find_pipeline", key, filter)
  return handle.spawn(client, true, "find_pipeline", find_pipeline, client, key, query)
end)

--- The names of the client methods that atai also offers bound to the
--- default client (beside get_job and request, which init.lua binds).
api.BOUND = { "find_pipeline" }
for _, ep in ipairs(api.ENDPOINTS) do api.BOUND[#api.BOUND + 1] = ep[1] end
for _, list in ipairs(api.LISTS) do
  api.BOUND[#api.BOUND + 1] = list[1]
  api.BOUND[#api.BOUND + 1] = list[5]
end

--- The async methods (beside get_job, request and sleep, which are C).
api.ASYNC = { "find_pipeline" }
for _, ep in ipairs(api.ENDPOINTS) do api.ASYNC[#api.ASYNC + 1] = ep[1] end
for _, list in ipairs(api.LISTS) do api.ASYNC[#api.ASYNC + 1] = list[1] end

return api

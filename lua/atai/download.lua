--- atai.download: output files and presigned downloads, streamed to disk.
--
-- client:download_outputs(job_id, dir[, opts]) lists every output of a job
-- (each_output, filtered by port_name / input_id), then downloads each
-- data.ref into dir, several at once (opts.concurrency, 8; each transfer
-- also counts against the client's max_concurrency). Every file is written
-- under a temporary name and renamed once complete and size-checked
-- (data.num_bytes, Content-Length), so an interrupted run never leaves a
-- truncated file under the final name; a transfer cut short is retried
-- like any transient failure. A file already there with data.num_bytes
-- bytes is skipped (resume). URLs that expired (past expires_at, or a 403
-- or 400 from the storage) are refreshed by listing again. Names come from
-- data.filename, made safe: a hostile name never writes outside dir, and
-- outputs of the same name get distinct files.
--
-- client:download(url, dest[, opts]) fetches one presigned URL the same
-- way; client:download_file(id, dest[, opts]) a file of the Files API
-- (GET /files/download/{id}, with the key: it is the API).

local core = require("atai.core")
local check = require("atai.check")
local pages = require("atai.pages")
local stream = require("atai.stream")

local download = {}

--- Downloads in flight at once in download_outputs.
download.CONCURRENCY = 8
--- Times one output's URL may be refreshed by listing again.
download.MAX_REFRESH = 2
--- Longest file name written (bytes), before a suffix.
download.NAME_MAX = 200

local SUFFIX = stream.PART_SUFFIX
local ONE_OPTIONS = { on_progress = "function", max_bytes = "bytes", num_bytes = "count", stall_timeout = "seconds" }
local OUTPUTS_OPTIONS = { on_progress = "function", max_bytes = "bytes", stall_timeout = "seconds",
  concurrency = "limit", port_name = "string", input_id = "string" }

local function io_error(message) return stream.error("io", message) end


-- ---------------------------------------------------------------------------
-- One file: a temporary name, then the rename

-- The body of download and download_file: spec (a _stream spec) to dest.
local function fetch_to(client, st, spec, dest, o)
  local tmp = dest .. SUFFIX
  local batch = stream.batch(client, o.on_progress, 1, o.num_bytes)
  st.cleanup = function()
    batch:cancel_all()
    os.remove(tmp)
  end
  spec.sink, spec.max_bytes, spec.expect_bytes, spec.stall = tmp, o.max_bytes, o.num_bytes, o.stall_timeout
  local ok, err = batch:run({ spec }, 1, function() return client:_stream(spec) end, function(_, info, e)
    if not info then return false, e end
    batch:settle(info.bytes)
    return true
  end)
  st.cleanup = nil
  if not ok then os.remove(tmp) end
  if ok == false then error(err, 0) end -- on_progress raised
  if not ok then return nil, err end
  local renamed, why = os.rename(tmp, dest)
  if not renamed then
    os.remove(tmp)
    return nil, io_error("cannot rename the download into place: " .. tostring(why))
  end
  return true
end

-- The arguments of download and download_file: the spec, dest, options.
local function one_args(fname, spec, dest, opts)
  if type(dest) ~= "string" or dest == "" then check.fail(fname, 2, "dest: file path expected, got " .. type(dest)) end
  return stream.pack(spec, dest, check.options(fname, 3, opts, ONE_OPTIONS))
end

--- client:download(url, dest[, opts]): fetches one presigned URL into dest
--- (no API key; https only): true, or nil, err. opts: on_progress(p),
--- max_bytes, num_bytes (the size it must have), stall_timeout.
stream.define("download", function(fname, url, dest, opts)
  local why = stream.url_problem(url)
  if why then check.fail(fname, 1, "url: " .. why) end
  return one_args(fname, { method = "GET", presigned = true, url = url }, dest, opts)
end, fetch_to)

--- client:download_file(id, dest[, opts]): GET /files/download/{id} into
--- dest: true, or nil, err; opts as download.
stream.define("download_file", function(fname, id, dest, opts)
  return one_args(fname, { method = "GET", path = "/files/download/" .. stream.file_id(fname, 1, id) }, dest, opts)
end, fetch_to)


-- ---------------------------------------------------------------------------
-- Output file names

-- The name an output's data gives: data.filename, else the ref's last path
-- segment (percent-decoded), else nil.
local function raw_name(output)
  local data = type(output.data) == "table" and output.data or {}
  if type(data.filename) == "string" and data.filename ~= "" then return data.filename end
  local last = type(data.ref) == "string" and data.ref:match("^[^?#]*/([^/?#]+)")
  return last and (last:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- A name safe to create inside a folder: no '/', '\\' or control byte (each
--- becomes '_'), no "..", no leading dot or blank, at most NAME_MAX bytes,
--- never ending like a temporary file; `fallback` when nothing is left.
function download.safe_name(name, fallback)
  name = tostring(name or ""):gsub("[%c/\\]", "_"):gsub("%.%.+", "."):gsub("^[%.%s]+", ""):gsub("%s+$", "")
  if name == "" then name = fallback end
  if #name > download.NAME_MAX then
    local ext = name:match("(%.[%w]+)$") or ""
    if #ext > 16 then ext = "" end
    name = name:sub(1, download.NAME_MAX - #ext) .. ext
  end
  if name:sub(-#SUFFIX) == SUFFIX then name = name .. "_" end
  return name
end

-- name with `tag` before its extension: pred.csv, out_1 -> pred_out_1.csv.
local function with_tag(name, tag)
  local stem, ext = name:match("^(.-)(%.[%w]+)$")
  if not stem or stem == "" then stem, ext = name, "" end
  return stem .. "_" .. tag .. ext
end

-- The size an output's file must have (data.num_bytes), or nil.
local function expected_size(output)
  local n = type(output.data) == "table" and output.data.num_bytes
  if check.is_number(n) and n >= 0 and n == math.floor(n) then return n end
  return nil
end

-- The files of the outputs in dir: {output, path, tmp, expect, refreshes}.
-- Outputs sharing a name all get their id as a tag, so each has its own
-- file whatever order the listing comes in.
local function plan(outputs, dir)
  local names, count, taken, tasks = {}, {}, {}, {}
  for i, out in ipairs(outputs) do
    local id = tostring(type(out) == "table" and out.id or i):gsub("[^%w_%-]", "_"):sub(1, 64)
    names[i] = { download.safe_name(type(out) == "table" and raw_name(out), id ~= "" and id or "output"), id }
    count[names[i][1]] = (count[names[i][1]] or 0) + 1
  end
  dir = dir:gsub("(.)/+$", "%1")
  for i, out in ipairs(outputs) do
    local name = names[i][1]
    if count[name] > 1 then name = with_tag(name, names[i][2]) end
    local base, n = name, 1
    while taken[name] do
      n = n + 1
      name = with_tag(base, tostring(n))
    end
    taken[name] = true
    local path = dir .. "/" .. name
    tasks[i] = { output = type(out) == "table" and out or {}, path = path, tmp = path .. SUFFIX,
      expect = type(out) == "table" and expected_size(out) or nil, refreshes = 0 }
  end
  return tasks
end


-- ---------------------------------------------------------------------------
-- download_outputs

-- Every output of the job (the filter: port_name, input_id), or nil, err.
local function list_outputs(client, job_id, o)
  return pages.collect(client:each_output(job_id, { port_name = o.port_name, input_id = o.input_id }))
end

-- Whether the task's file is already complete (its size is data.num_bytes).
local function complete(task)
  if not task.expect then return false end
  local size, kind = core.stat(task.path)
  return kind == "file" and size == task.expect
end

-- Whether an output's URL is past its expires_at (by this machine's clock).
local function expired(output)
  local at = stream.epoch(output.expires_at)
  return at ~= nil and at <= os.time()
end

-- Whether a failed download may work with a fresh URL: the storage refused
-- the signature (403) or the request (400).
local function refreshable(err)
  return type(err) == "table" and (err.status == 403 or err.status == 400)
end

-- One run of download_outputs: its tasks, summary, batch and stale list.
local Run = {}
Run.__index = Run

function Run:fail(task, err)
  os.remove(task.tmp)
  self.summary.failed[#self.summary.failed + 1] = { output = task.output, err = err, path = task.path }
  self.batch:settle(0)
end

-- Starts a task's transfer; a URL past expires_at waits for a refresh first.
function Run:start(task)
  if task.refreshes == 0 and expired(task.output) then
    self.stale[#self.stale + 1] = task
    return nil
  end
  local data = type(task.output.data) == "table" and task.output.data or {}
  local why = stream.url_problem(data.ref)
  if why then return nil, stream.error("decode", "the output's data.ref is refused: " .. why) end
  return self.client:_stream { method = "GET", presigned = true, url = data.ref, sink = task.tmp,
    expect_bytes = task.expect, max_bytes = self.o.max_bytes, stall = self.o.stall_timeout }
end

-- A task's transfer ended: renamed into place, queued for a refresh, or failed.
function Run:finish(task, info, err)
  if info then
    local ok, why = os.rename(task.tmp, task.path)
    if ok then
      self.summary.downloaded = self.summary.downloaded + 1
      self.summary.bytes = self.summary.bytes + info.bytes
      self.batch:settle(task.expect or info.bytes)
      return true
    end
    err = io_error("cannot rename the download into place: " .. tostring(why))
  end
  os.remove(task.tmp)
  if refreshable(err) and task.refreshes < download.MAX_REFRESH then
    self.stale[#self.stale + 1] = task
  else
    self:fail(task, err)
  end
  return true
end

-- Lists the outputs again for the tasks whose URLs expired; returns those
-- to start again (the others failed).
function Run:refresh()
  local list = self.stale
  if #list == 0 then return nil end
  self.stale = {}
  local fresh, err = list_outputs(self.client, self.job_id, self.o)
  local by_id = {}
  for _, out in ipairs(fresh or {}) do
    if type(out) == "table" and out.id ~= nil then by_id[out.id] = out end
  end
  local again = {}
  for _, task in ipairs(list) do
    task.refreshes = task.refreshes + 1
    local out = task.output.id ~= nil and by_id[task.output.id]
    if out then
      task.output = out
      again[#again + 1] = task
    else
      self:fail(task, err or stream.error("not_found", "the output is no longer listed"))
    end
  end
  return again
end

-- The body of download_outputs (see the file's header).
local function download_outputs(client, st, job_id, dir, o)
  local made, why = core.mkdir(dir)
  if not made then return nil, io_error(why) end
  local outputs, err = list_outputs(client, job_id, o)
  if not outputs then return nil, err end
  local tasks, queue, total = plan(outputs, dir), {}, 0
  for _, task in ipairs(tasks) do total = total + (task.expect or 0) end
  local run = setmetatable({ client = client, job_id = job_id, o = o, stale = {},
    summary = { downloaded = 0, skipped = 0, failed = {}, bytes = 0 },
    batch = stream.batch(client, o.on_progress, #tasks, total) }, Run)
  for _, task in ipairs(tasks) do
    if complete(task) then
      run.summary.skipped = run.summary.skipped + 1
      run.batch:settle(task.expect)
    else
      queue[#queue + 1] = task
    end
  end
  st.cleanup = function()
    run.batch:cancel_all()
    for _, task in ipairs(queue) do os.remove(task.tmp) end
  end
  local ok, perr = run.batch:run(queue, o.concurrency or download.CONCURRENCY,
    function(task) return run:start(task) end,
    function(task, info, e) return run:finish(task, info, e) end,
    function() return run:refresh() end)
  if not ok then st.cleanup() end
  st.cleanup = nil
  if ok == false then error(perr, 0) end -- on_progress raised
  if not ok then return nil, perr end    -- cancelled: the client was closed
  return run.summary
end

--- client:download_outputs(job_id, dir[, opts]): every output of a job into
--- dir (see the file's header). opts: concurrency (8), port_name,
--- input_id, on_progress(p), max_bytes (per file), stall_timeout. Returns
--- {downloaded, skipped, failed = {{output, err, path}, ...}, bytes}, or
--- nil, err when listing fails.
stream.define("download_outputs", function(fname, job_id, dir, opts)
  check.id(fname, 1, job_id)
  if type(dir) ~= "string" or dir == "" then check.fail(fname, 2, "dir: folder path expected, got " .. type(dir)) end
  return stream.pack(job_id, dir, check.options(fname, 3, opts, OUTPUTS_OPTIONS))
end, download_outputs)

--- The names bound to the default client and offered async (init.lua).
download.BOUND = { "download", "download_file", "download_outputs" }

return download

--- atai.download: output files and presigned downloads, streamed to disk.
--
-- client:download_outputs(job_id, dir[, opts]) lists every output of a job
-- (each_output, filtered by port_name / input_id), then downloads each
-- data.ref into dir, several at once (opts.concurrency, 8; each transfer
-- also counts against the client's max_concurrency). Every file is written
-- to a new temporary file of its own (atai.core makes it: O_EXCL, a random
-- name) and renamed once complete and size-checked (data.num_bytes,
-- Content-Length), so an interrupted run never leaves a truncated file
-- under the final name; a body longer than declared is stopped at once; a
-- transfer cut short is retried like any transient failure. A file already
-- there with data.num_bytes bytes is skipped (resume). URLs that expired
-- (past expires_at, or a 403 or 400 from the storage) are refreshed by
-- listing again. opts.max_seconds bounds each file's wall time, retries
-- and refreshes included. Names come from data.filename, made safe: a
-- hostile name never writes outside dir, names that would collide on a
-- case-insensitive or normalizing file system get distinct files, and
-- every name with its suffixes fits in one file name. Bad server data (a
-- ref or num_bytes that cannot be used) fails that output only.
--
-- client:download(url, dest[, opts]) fetches one presigned URL the same
-- way; client:download_file(id, dest[, opts]) a file of the Files API
-- (GET /files/download/{id}, with the key: it is the API).

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local pages = require("atai.pages")
local stream = require("atai.stream")

local download = {}
-- The public methods this file makes: atai.methods puts them on atai.Client
-- and the async view (one place, once).
download.methods = { client = {}, async = {} }

--- Downloads in flight at once in download_outputs.
download.CONCURRENCY = 8
--- Times one output's URL may be refreshed by listing again.
download.MAX_REFRESH = 2
--- Longest file name written (bytes), suffixes included: the temporary
--- name (the name, '.', 8 random characters, PART_SUFFIX) must fit in the
--- 255 bytes of a file name.
download.NAME_MAX = 255 - 1 - 8 - #stream.PART_SUFFIX
--- Default opts.min_bytes_per_second: slower over the stall window fails.
download.MIN_BYTES_PER_SECOND = 1024

local SUFFIX = stream.PART_SUFFIX
local LIMITS = { on_progress = "function", max_bytes = "bytes", stall_timeout = "seconds",
  min_bytes_per_second = "rate", max_seconds = "duration", mode = "mode" }
local ONE_OPTIONS = { num_bytes = "size" }
local OUTPUTS_OPTIONS = { concurrency = "limit", port_name = "string", input_id = "string" }
for name, kind in pairs(LIMITS) do
  ONE_OPTIONS[name], OUTPUTS_OPTIONS[name] = kind, kind
end

local function io_error(message) return stream.error("io", message) end

-- The fields of a download's _stream spec that come from the options.
local function limits(spec, o)
  spec.max_bytes, spec.stall, spec.mode = o.max_bytes, o.stall_timeout, check.file_mode(o.mode)
  spec.min_speed = o.min_bytes_per_second or download.MIN_BYTES_PER_SECOND
  return spec
end

-- The error of a file that took longer than opts.max_seconds.
local function too_slow(o)
  return stream.error("timeout", ("download took longer than opts.max_seconds (%g s)"):format(o.max_seconds))
end


-- ---------------------------------------------------------------------------
-- One file: a temporary name, then the rename

-- The body of download and download_file: spec (a _stream spec) to dest
-- (atai.core writes a temporary file and renames it onto dest once
-- complete; a transfer cancelled or failed removes it).
local function fetch_to(client, st, spec, dest, o)
  local batch = stream.batch(client, o.on_progress, 1, o.num_bytes)
  st.cleanup = function() batch:cancel_all() end
  local deadline = o.max_seconds and core.now() + o.max_seconds
  batch.deadline_of = function() return deadline end
  batch.expired = function() return too_slow(o) end
  spec.sink, spec.expect_bytes = dest, o.num_bytes
  limits(spec, o)
  local ok, err = batch:run({ spec }, 1, function() return P.stream(client, spec) end, function(_, info, e)
    if not info then return false, e end
    batch:settle(info.bytes)
    return true
  end)
  st.cleanup = nil
  if ok == false then error(err, 0) end -- on_progress raised
  if not ok then return nil, err end
  return true
end

-- The arguments of download and download_file: the spec, dest, options.
local function one_args(fname, spec, dest, opts)
  if type(dest) ~= "string" or dest == "" then check.fail(fname, 2, "dest: file path expected, got " .. type(dest)) end
  if dest:find("\0", 1, true) then check.fail(fname, 2, "dest: a path without NUL expected") end
  return stream.pack(spec, dest, check.options(fname, 3, opts, ONE_OPTIONS))
end

--- client:download(url, dest[, opts]): fetches one presigned URL into dest
--- (no API key; https only): true, or nil, err. opts: on_progress(p),
--- max_bytes, num_bytes (the size it must have), stall_timeout,
--- min_bytes_per_second (1024), max_seconds, mode.
stream.define(download.methods, "download", function(fname, url, dest, opts)
  local why = stream.url_problem(url)
  if why then check.fail(fname, 1, "url: " .. why) end
  return one_args(fname, { method = "GET", presigned = true, url = url }, dest, opts)
end, fetch_to)

--- client:download_file(id, dest[, opts]): GET /files/download/{id} into
--- dest: true, or nil, err; opts as download.
stream.define(download.methods, "download_file", function(fname, id, dest, opts)
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

-- The first `max` bytes of s, cut back to a UTF-8 character boundary.
local function utf8_cut(s, max)
  if #s <= max then return s end
  local n, back = max, 0
  while n > 0 and back < 3 do
    local b = s:byte(n + 1)
    if b < 0x80 or b >= 0xC0 then break end -- n + 1 starts a character
    n, back = n - 1, back + 1
  end
  return s:sub(1, n)
end
download.utf8_cut = utf8_cut

-- A name's stem and extension (".csv": short, letters and digits).
local function split_ext(name)
  local stem, ext = name:match("^(.-)(%.[%w]+)$")
  if not stem or stem == "" or #ext > 16 then return name, "" end
  return stem, ext
end

-- stem .. tag .. ext, the stem cut (on a character boundary) so that the
-- whole fits in NAME_MAX bytes.
local function fit(stem, tag, ext)
  return utf8_cut(stem, download.NAME_MAX - #tag - #ext) .. tag .. ext
end

--- A name safe to create inside a folder: no '/', '\\' or control byte (each
--- becomes '_'), no "..", no leading dot or blank, at most NAME_MAX bytes
--- (cut on a UTF-8 character boundary, the extension kept), never ending
--- like a temporary file; `fallback` when nothing is left.
function download.safe_name(name, fallback)
  name = tostring(name or ""):gsub("[%c/\\]", "_"):gsub("%.%.+", "."):gsub("^[%.%s]+", ""):gsub("%s+$", "")
  if name == "" then name = fallback end
  if name:sub(-#SUFFIX) == SUFFIX then name = name .. "_" end
  if #name > download.NAME_MAX then
    local stem, ext = split_ext(name)
    name = fit(stem, "", ext)
  end
  return name
end

-- name with `tag` before its extension: pred.csv, out_1 -> pred_out_1.csv
-- (cut to fit NAME_MAX).
local function with_tag(name, tag)
  local stem, ext = split_ext(name)
  return fit(stem, "_" .. tag, ext)
end

-- Letters U+00C0-U+017F by their base: {first, last, base}, code points.
local LATIN_BASES = {
  { 0xC0, 0xC5, "a" }, { 0xC6, 0xC6, "ae" }, { 0xC7, 0xC7, "c" }, { 0xC8, 0xCB, "e" }, { 0xCC, 0xCF, "i" },
  { 0xD0, 0xD0, "d" }, { 0xD1, 0xD1, "n" }, { 0xD2, 0xD6, "o" }, { 0xD8, 0xD8, "o" }, { 0xD9, 0xDC, "u" },
  { 0xDD, 0xDD, "y" }, { 0xDE, 0xDE, "th" }, { 0xDF, 0xDF, "ss" },
  { 0xE0, 0xE5, "a" }, { 0xE6, 0xE6, "ae" }, { 0xE7, 0xE7, "c" }, { 0xE8, 0xEB, "e" }, { 0xEC, 0xEF, "i" },
  { 0xF0, 0xF0, "d" }, { 0xF1, 0xF1, "n" }, { 0xF2, 0xF6, "o" }, { 0xF8, 0xF8, "o" }, { 0xF9, 0xFC, "u" },
  { 0xFD, 0xFD, "y" }, { 0xFE, 0xFE, "th" }, { 0xFF, 0xFF, "y" },
  { 0x100, 0x105, "a" }, { 0x106, 0x10D, "c" }, { 0x10E, 0x111, "d" }, { 0x112, 0x11B, "e" },
  { 0x11C, 0x123, "g" }, { 0x124, 0x127, "h" }, { 0x128, 0x131, "i" }, { 0x132, 0x133, "ij" },
  { 0x134, 0x135, "j" }, { 0x136, 0x138, "k" }, { 0x139, 0x142, "l" }, { 0x143, 0x14B, "n" },
  { 0x14C, 0x151, "o" }, { 0x152, 0x153, "oe" }, { 0x154, 0x159, "r" }, { 0x15A, 0x161, "s" },
  { 0x162, 0x167, "t" }, { 0x168, 0x173, "u" }, { 0x174, 0x175, "w" }, { 0x176, 0x178, "y" },
  { 0x179, 0x17E, "z" }, { 0x17F, 0x17F, "s" },
}
-- The same by code point, and the combining marks (U+0300-U+036F) as "".
local FOLD = {}
for _, r in ipairs(LATIN_BASES) do
  for cp = r[1], r[2] do FOLD[cp] = r[3] end
end
for cp = 0x300, 0x36F do FOLD[cp] = "" end

--- The collision key of a file name: names with the same key would be one
--- file on a case-insensitive or normalizing file system (macOS, Windows,
--- FAT). ASCII lowercased, combining marks U+0300-U+036F removed, letters
--- U+00C0-U+017F as their unaccented lowercase base.
function download.collision_key(name)
  local key = name:gsub("[A-Z]", function(c) return string.char(c:byte() + 32) end)
  return (key:gsub("([\192-\223])([\128-\191])", function(a, b)
    return FOLD[(a:byte() - 0xC0) * 64 + (b:byte() - 0x80)]
  end))
end

-- The size an output's file must have (data.num_bytes): a number, nil when
-- unknown (absent or null), false when unusable (bad server data).
local function expected_size(output)
  local n = type(output.data) == "table" and output.data.num_bytes
  if n == nil or n == core.null or n == false then return nil end
  if check.is_number(n) and n >= 0 and n <= 2 ^ 52 and n == math.floor(n) then return n end
  return false
end

-- The files of the outputs in dir: {output, path, expect, refreshes}.
-- Outputs whose names collide (the same collision key) all get their id
-- as a tag, so each has its own file whatever order the listing comes in.
local function plan(outputs, dir)
  local names, count, taken, tasks = {}, {}, {}, {}
  local key = download.collision_key
  for i, out in ipairs(outputs) do
    local id = tostring(type(out) == "table" and out.id or i):gsub("[^%w_%-]", "_"):sub(1, 64)
    names[i] = { download.safe_name(type(out) == "table" and raw_name(out), id ~= "" and id or "output"), id }
    count[key(names[i][1])] = (count[key(names[i][1])] or 0) + 1
  end
  dir = dir:gsub("(.)/+$", "%1")
  for i, out in ipairs(outputs) do
    local name = names[i][1]
    if count[key(name)] > 1 then name = with_tag(name, names[i][2]) end
    local base, n = name, 1
    while taken[key(name)] do
      n = n + 1
      name = with_tag(base, tostring(n))
    end
    taken[key(name)] = true
    local expect = nil
    if type(out) == "table" then expect = expected_size(out) end
    tasks[i] = { output = type(out) == "table" and out or {}, path = dir .. "/" .. name, expect = expect or nil,
      bad_size = expect == false, refreshes = 0 }
  end
  return tasks
end


-- ---------------------------------------------------------------------------
-- download_outputs

-- Every output of the job (the filter: port_name, input_id), or nil, err.
local function list_outputs(client, job_id, o)
  return pages.collect(client:each_output(job_id, { port_name = o.port_name, input_id = o.input_id }))
end

-- Whether the task's file is already complete (a regular file, not a
-- symlink, whose size is data.num_bytes).
local function complete(task)
  if not task.expect then return false end
  local size, kind = core.stat(task.path, true)
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
  self.summary.failed[#self.summary.failed + 1] = { output = task.output, err = err, path = task.path }
  self.batch:settle(0)
end

-- Starts a task's transfer (its clock too, for opts.max_seconds); a URL
-- past expires_at waits for a refresh first. Bad server data fails the
-- task (decode).
function Run:start(task)
  local o = self.o
  task.deadline = task.deadline or (o.max_seconds and core.now() + o.max_seconds)
  if task.deadline and core.now() >= task.deadline then return nil, too_slow(o) end
  if task.bad_size then
    return nil,
      stream.error("decode", "the output's data.num_bytes is not a size: " .. tostring(task.output.data.num_bytes))
  end
  if task.refreshes == 0 and expired(task.output) then
    self.stale[#self.stale + 1] = task
    return nil
  end
  local data = type(task.output.data) == "table" and task.output.data or {}
  local why = stream.url_problem(data.ref)
  if why then return nil, stream.error("decode", "the output's data.ref is refused: " .. why) end
  return P.stream(self.client, limits({ method = "GET", presigned = true, url = data.ref, sink = task.path,
    expect_bytes = task.expect }, o))
end

-- A task's transfer ended: in place (atai.core renamed it), queued for a
-- refresh, or failed.
function Run:finish(task, info, err)
  if info then
    self.summary.downloaded = self.summary.downloaded + 1
    self.summary.bytes = self.summary.bytes + info.bytes
    self.batch:settle(task.expect or info.bytes)
    return true
  end
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
  run.batch.deadline_of = function(task) return task.deadline end
  run.batch.expired = function() return too_slow(o) end
  for _, task in ipairs(tasks) do
    if complete(task) then
      run.summary.skipped = run.summary.skipped + 1
      run.batch:settle(task.expect)
    else
      queue[#queue + 1] = task
    end
  end
  st.cleanup = function() run.batch:cancel_all() end
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
--- input_id, on_progress(p), max_bytes (per file), stall_timeout,
--- min_bytes_per_second (1024), max_seconds (per file), mode. Returns
--- {downloaded, skipped, failed = {{output, err, path}, ...}, bytes}, or
--- nil, err when listing fails.
stream.define(download.methods, "download_outputs", function(fname, job_id, dir, opts)
  check.id(fname, 1, job_id)
  if type(dir) ~= "string" or dir == "" then check.fail(fname, 2, "dir: folder path expected, got " .. type(dir)) end
  if dir:find("\0", 1, true) then check.fail(fname, 2, "dir: a path without NUL expected") end
  return stream.pack(job_id, dir, check.options(fname, 3, opts, OUTPUTS_OPTIONS))
end, download_outputs)

--- The names bound to the default client and offered async (init.lua).
download.BOUND = { "download", "download_file", "download_outputs" }

return download

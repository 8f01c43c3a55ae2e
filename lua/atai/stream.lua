--- atai.stream: what uploads and downloads share.
--
-- Their bytes move in streaming transfers of atai.core (the private P.stream:
-- a body written to a temporary file of its own and renamed into place,
-- an upload read from a file or a string, presigned URLs without the API
-- key, a low-speed limit, progress counters).
-- This file holds the rules around them: which presigned URLs are fetched,
-- how a file id becomes a path segment, the file type of an extension, a
-- set of transfers in flight with progress reports and optional deadlines
-- (Batch), and how one
-- body of code runs blocking or as a handle, with a cleanup on cancel,
-- error or Ctrl-C (stream.operation).
-- No pcall around a yield and no generic `for` over an iterator that may
-- yield: coroutines run these bodies on every Lua, 5.1 included.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local config = require("atai.config")
local handle = require("atai.handle")
local api = require("atai.api")

local unpack = table.unpack or unpack
local pack = table.pack or function(...) return { n = select("#", ...), ... } end

local stream = {}

--- Seconds between two progress reports while bytes move.
stream.TICK = 0.2
--- Seconds a blocking call interrupted by an error waits for its cleanup
--- (an upload's abort) before the error goes on.
stream.CLEANUP_WAIT = 10
--- Suffix of the temporary file a download writes before its rename
--- (atai.core names it "<dest>.<8 random characters>" .. PART_SUFFIX).
stream.PART_SUFFIX = ".atai-part"

--- File types by extension (lowercase); anything else is
--- application/octet-stream.
stream.FILE_TYPES = {
  csv = "text/csv", tsv = "text/tab-separated-values", txt = "text/plain", json = "application/json",
  jsonl = "application/x-ndjson", ndjson = "application/x-ndjson", xml = "application/xml",
  jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png", gif = "image/gif",
  mp4 = "video/mp4", wav = "audio/wav", mp3 = "audio/mpeg", pdf = "application/pdf",
  zip = "application/zip", gz = "application/gzip", parquet = "application/vnd.apache.parquet",
}

--- The file type of a file name, from its extension.
function stream.file_type(name)
  local ext = name:match("%.([%w]+)$")
  return ext and stream.FILE_TYPES[ext:lower()] or "application/octet-stream"
end

--- Why `url` may not be fetched as a presigned URL, or nil: it must be
--- https://, or http:// to a loopback host (the fake server of the tests),
--- with no user name or password, and printable ASCII only (no blank,
--- control or non-ASCII byte: atai.core refuses those too).
function stream.url_problem(url)
  if type(url) ~= "string" then return "URL string expected, got " .. type(url) end
  local bad = url:find("[^\33-\126]")
  if bad then
    return ("a URL with a blank, control or non-ASCII byte (0x%02X at %d) is refused"):format(url:byte(bad), bad)
  end
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return "not an absolute http(s) URL" end
  if authority:find("@", 1, true) then return "a URL with credentials is refused" end
  scheme = scheme:lower()
  if scheme == "https" then return nil end
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
  if scheme == "http" and config.is_loopback(host:lower()) then return nil end
  return "only https:// URLs are fetched (plain http:// only to a loopback host)"
end

--- A file id (a file name such as test_image.jpg) as one path segment,
--- percent-encoded; raises for an empty id, ".", ".." or one with NUL.
function stream.file_id(fname, n, id)
  if type(id) ~= "string" then check.fail(fname, n, "file id: string expected, got " .. type(id)) end
  if id == "" or id == "." or id == ".." or id:find("\0", 1, true) or #id > 1024 then
    check.fail(fname, n, "file id: a file name expected (not empty, '.', '..', and no NUL)")
  end
  return (id:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- An error table of `kind` (see doc/errors.md).
function stream.error(kind, message, fields)
  local e = { kind = kind, message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return core.new_error(e)
end

--- A handle of `client` already done with nil, err (a failure found before
--- any transfer, in an async method).
function stream.failed(client, err)
  local op = handle.Op.new(client, true)
  handle.complete(op, nil, err)
  return op
end

--- Seconds since the epoch of an RFC 3339 time stamp (fractions of a
--- second and a zone offset read; none is UTC), or nil.
function stream.epoch(stamp)
  local y, mo, d, h, mi, s, rest = tostring(stamp):match("^(%d+)%-(%d+)%-(%d+)[Tt ](%d+):(%d+):(%d+)(.*)$")
  if not y then return nil end
  local fraction = rest:match("^%.(%d+)")
  if fraction then rest = rest:sub(#fraction + 2) end
  local zone = 0
  local sign, zh, zm = rest:match("^([+-])(%d%d):?(%d%d)$")
  if sign then zone = (tonumber(zh) * 3600 + tonumber(zm) * 60) * (sign == "-" and -1 or 1)
  elseif rest ~= "" and rest ~= "Z" and rest ~= "z" then return nil end
  local seconds = tonumber(s) + (fraction and tonumber("0." .. fraction) or 0) - zone
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (mo + (mo > 2 and -3 or 9)) + 2) / 5) + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + seconds
end


-- ---------------------------------------------------------------------------
-- Batch: transfers in flight, at most `limit` at once, with progress

local Batch = {}
Batch.__index = Batch

--- Seconds of progress the rate (p.bytes_per_second) is averaged over.
stream.RATE_WINDOW = 5

--- A batch of transfers of `client`. on_progress(p) gets p = {bytes_done,
--- bytes_total, files_done, files_total, bytes_per_second} (and the
--- batch's `extra` fields, such as an upload's upload_id).
function stream.batch(client, on_progress, files_total, bytes_total, extra)
  return setmetatable({ client = client, active = {}, n = 0, finished = {}, on_progress = on_progress,
    files_total = files_total, bytes_total = bytes_total, files_done = 0, bytes_settled = 0,
    rate = stream.meter(), extra = extra, deadlines = setmetatable({}, { __mode = "k" }) }, Batch)
end

--- A rate meter: meter(bytes_done, now) -> bytes per second over the last
--- RATE_WINDOW seconds of reports, or nil until they span more than
--- `min_span` seconds (default 0: two reports apart in time). The batches'
--- p.bytes_per_second and the command line's transfer bars use it.
function stream.meter(min_span)
  local samples = {}
  return function(done, now)
    samples[#samples + 1] = { now, done }
    while #samples > 2 and now - samples[2][1] >= stream.RATE_WINDOW do table.remove(samples, 1) end
    local first = samples[1]
    local span = now - first[1]
    if span <= 0 or span < (min_span or 0) then return nil end
    return math.max(done - first[2], 0) / span
  end
end

-- batch.deadline_of(item) -> the core.now() time by which an item's
-- transfer must be done (nil: none). Set it to give transfers a deadline:
-- past it, a transfer is cancelled and finishes as nil, batch.expired(item)
-- (an error of kind "timeout").

--- The error of a transfer cancelled at its deadline (a batch may set its own).
function Batch.expired()
  return stream.error("timeout", "the transfer took longer than its time limit")
end

--- Cancels the transfers past their deadline; each finishes with nil,
--- self.expired(item).
function Batch:expire()
  local now, late = core.now(), {}
  for h, item in pairs(self.active) do
    local due = self.deadlines[h]
    if due and due <= now and not h:done() then late[#late + 1] = { h, item } end
  end
  for _, l in ipairs(late) do
    local h, item = l[1], l[2]
    self.active[h] = nil
    self.n = self.n - 1
    h:cancel()
    self.finished[#self.finished + 1] = { item = item, res = pack(nil, self.expired(item)) }
  end
end

--- Tracks the transfer handle h (made internal) for `item`.
function Batch:add(h, item)
  handle.internal(h)
  self.active[h] = item
  self.n = self.n + 1
  self.deadlines[h] = self.deadline_of and self.deadline_of(item) or nil
  handle.on_done(h, function(...)
    if self.active[h] == nil then return end -- cancelled by the batch
    self.active[h] = nil
    self.n = self.n - 1
    self.finished[#self.finished + 1] = { item = item, res = pack(...) }
    if self.waiter then handle.complete(self.waiter, true) end
  end)
end

--- Waits for a transfer to finish, at most stream.TICK seconds; returns
--- the item and results of one that finished ({item, res}), or nil.
function Batch:next()
  if #self.finished == 0 and self.n > 0 then
    local waiter = handle.Op.new(self.client, false)
    local timer = handle.internal(self.client.async:sleep(stream.TICK))
    handle.on_done(timer, function(ok) if ok then handle.complete(waiter, true) end end)
    self.waiter = waiter
    waiter:wait()
    self.waiter = nil
    timer:cancel()
  end
  return table.remove(self.finished, 1)
end

--- Cancels every transfer in flight (their files are closed at once);
--- returns their items.
function Batch:cancel_all()
  local handles, items = {}, {}
  for h, item in pairs(self.active) do
    handles[#handles + 1] = h
    items[#items + 1] = item
  end
  self.active, self.n = {}, 0
  for _, h in ipairs(handles) do h:cancel() end
  return items
end

--- Marks one item finished: `bytes` of it count as done.
function Batch:settle(bytes)
  self.files_done = self.files_done + 1
  self.bytes_settled = self.bytes_settled + (bytes or 0)
end

--- Calls on_progress with the counters now; returns true, or false and the
--- error it raised.
function Batch:report()
  if not self.on_progress then return true end
  local moving, total = 0, self.bytes_total or self.bytes_settled
  for h in pairs(self.active) do
    local done, all = P.progress(h)
    moving = moving + done
    total = (self.bytes_total or not all) and total or total + all
  end
  local done = self.bytes_settled + moving
  local p = { bytes_done = done, bytes_total = total, files_done = self.files_done,
    files_total = self.files_total, bytes_per_second = self.rate(done, core.now()) or 0 }
  for k, v in pairs(self.extra or {}) do p[k] = v end
  local ok, err = pcall(self.on_progress, p)
  return ok, err
end

--- Runs the batch: start(item) -> handle, or nil, err (the item failed at
--- once); finish(item, results...) -> true, or false, err to stop it all;
--- more() -> further items, when the queue and the transfers have run out
--- (or nil). At most `limit` transfers at once. Returns true, or nil, err
--- (finish's, or a transfer's "cancelled" when its client was closed), or
--- false, err when on_progress raised (everything cancelled).
function Batch:run(queue, limit, start, finish, more)
  local i = 1
  while true do
    while i <= #queue and self.n < limit do
      local item = queue[i]
      i = i + 1
      local h, err = start(item)
      if h then self:add(h, item)
      elseif err then self.finished[#self.finished + 1] = { item = item, res = pack(nil, err) } end
    end
    if i > #queue and self.n == 0 and #self.finished == 0 then
      local extra = more and more()
      if not extra or #extra == 0 then break end
      queue, i = extra, 1
    else
      self:expire()
      local done = self:next()
      local res = done and done.res
      if res and res[1] == nil and type(res[2]) == "table" and res[2].kind == "cancelled" then
        self:cancel_all() -- a transfer cancelled from outside (its client closed): all stop
        return nil, res[2]
      end
      if done then
        local ok, err = finish(done.item, unpack(res, 1, res.n))
        if not ok then
          self:cancel_all()
          return nil, err
        end
      end
      local ok, err = self:report()
      if not ok then
        self:cancel_all()
        return false, err
      end
    end
  end
  local ok, err = self:report()
  if not ok then return false, err end
  return true
end


-- ---------------------------------------------------------------------------
-- Operations: one body, blocking or a handle, with a cleanup

-- Runs st.cleanup once (it may return a handle to wait for: an abort).
local function cleanup(st)
  local fn = st.cleanup
  st.cleanup = nil
  if fn then return fn() end
end

-- A blocking call interrupted by an error (a callback's, Ctrl-C): cleans up,
-- waits a little for what the cleanup sent, and lets the error go on.
local function unwind(op, st, message)
  local pending = cleanup(st)
  if not op:done() then op:cancel() end
  if pending and not pending:done() then pcall(pending.wait, pending, stream.CLEANUP_WAIT) end
  error(message, 0)
end

--- Makes the two forms of an operation whose body is body(client, st, ...):
--- blocking(client, ...) -> its results, and start(client, ...) -> handle.
--- The body sets st.cleanup while it has something to undo (transfers in
--- flight, temporary files, an upload to abort); it runs when the handle is
--- cancelled, or when an error unwinds a blocking call (then it may return
--- a handle, waited for up to stream.CLEANUP_WAIT seconds).
function stream.operation(name, body)
  local function start(client, counted, ...)
    local st = {}
    local op = handle.spawn(client, counted, name, body, client, st, ...)
    op.cancel_on_error = true
    local cancel = op.cancel
    function op.cancel(self)
      if not self.res then cleanup(st) end
      return cancel(self)
    end
    return op, st
  end
  local function blocking(client, ...)
    local op, st = start(client, false, ...)
    if core.in_run() then return op:await() end
    local ok, a, b = pcall(op.wait, op)
    if not ok then unwind(op, st, a) end
    return a, b
  end
  local function async(client, ...)
    return (start(client, true, ...))
  end
  return blocking, async
end

--- Defines client:<name>(...) and client.async:<name>(...) in `methods`
--- ({client = {}, async = {}}, which atai.methods installs) running
--- body(client, st, ...) (see stream.operation). args(name, ...) checks the
--- arguments (raising) and returns the body's in a packed table, or nil,
--- err for a failure found before any transfer (the async form's handle
--- then completes with it).
function stream.define(methods, name, args, body)
  local blocking, async = stream.operation(name, body)
  methods.client[name] = function(self, ...)
    local a, err = args(name, ...)
    if not a then return nil, err end
    return blocking(self, unpack(a, 1, a.n))
  end
  methods.async[name] = function(view, ...)
    local client = api.view_client(view, name)
    local a, err = args(name, ...)
    if not a then return stream.failed(client, err) end
    return async(client, unpack(a, 1, a.n))
  end
end

stream.pack = pack

return stream

--- atai.files: the Files API: uploads, and the few file endpoints the API
-- reference lists.
--
-- client:upload_file(path[, opts]) sends a file streamed from disk, never
-- whole in memory: when smaller than min(opts.multipart_threshold (100 MiB),
-- 512,000,000 bytes) and not JSONL, as POST /files (multipart/form-data,
-- field "file", route "simple"); otherwise (and with opts.resume) by the
-- direct-to-cloud flow: POST /files/uploads/initiate answers every part's
-- presigned URL, offset, length and expiry; the parts go out several at
-- once as PUTs without the API key (each retried on transient failures;
-- a URL about to expire, or refused as expired, refreshed by
-- .../parts/urls), then .../complete gets each part's ETag as received
-- and, when initiate named crc32c, the file's CRC-32C (computed in C as
-- the parts are read). A failure, a cancel or Ctrl-C sends .../abort, so
-- nothing stays half uploaded, except a resumable upload (opts.resume):
-- it checkpoints its parts (.../parts/checkpoint) and is kept, so the same
-- call goes on where it stopped. upload_data does the same from a string;
-- upload_base64 sends a file by POST /files/base64, encoded as it goes.
-- All return {file_id, file_uid, num_bytes, route, ...}.
--
-- Also files_list (GET /files/metadata), file_info (GET
-- /files/metadata/{id}), delete_file (DELETE /files/delete/{id}) and
-- download_file (GET /files/download/{id}); the reference gives none of
-- their bodies a shape, so they come back as decoded. File ids are file
-- names: each goes into the path as one percent-encoded segment.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local stream = require("atai.stream")
local handle = require("atai.handle")

-- The public methods this file makes: atai.methods puts them on atai.Client
-- and the async view (one place, once); nothing here touches those tables.
local Client, Async = {}, {}
local view_client = require("atai.api").view_client
local files = {}
files.methods = { client = Client, async = Async }

--- Files of at least this many bytes go by the multipart flow.
files.MULTIPART_THRESHOLD = 100 * 1024 * 1024
--- Parts of a multipart upload in flight at once.
files.CONCURRENCY = 4
--- Seconds before a part URL's expires_at from which it is refreshed.
files.REFRESH_MARGIN = 300
--- Bytes POST /files and POST /files/base64 take at most (the reference's
--- limit): a larger file goes by parts, a larger encoding is refused.
files.SIMPLE_MAX = 512000000

local UPLOAD_OPTIONS = { name = "string", file_type = "string", on_progress = "function",
  multipart_threshold = "bytes", concurrency = "limit", stall_timeout = "seconds",
  refresh_margin = "margin", resume = "boolean" }
local BASE64_OPTIONS = { file_type = "string", on_progress = "function", stall_timeout = "seconds" }
-- MIME types of JSONL, which POST /files refuses: it goes by parts.
local JSONL_TYPES = { ["application/x-ndjson"] = true, ["application/jsonl"] = true }

local function decode_error(message) return stream.error("decode", message) end

-- Raises unless `name` can be a stored file's name.
local function check_name(fname, n, name, what)
  if type(name) ~= "string" or name == "" or name:find("/", 1, true) or name:find("\\", 1, true)
      or name:find("\0", 1, true) then
    check.fail(fname, n, what .. ": a file name expected (no '/', '\\' or NUL)")
  end
end

-- Checks upload options; fills in the defaults (name from `default_name`,
-- argument `default_arg` = {n, what}). The name and file type go into the
-- form's part header: no control bytes (they would inject headers).
local function upload_options(fname, n, opts, default_name, default_arg)
  local o = check.options(fname, n, opts, UPLOAD_OPTIONS)
  if o.name == nil then check.header_text(fname, default_arg[1], default_arg[2], default_name) end
  check.header_text(fname, n, "opts.name", o.name)
  check.header_text(fname, n, "opts.file_type", o.file_type)
  o.name = o.name or default_name
  check_name(fname, n, o.name, "opts.name")
  o.file_type = o.file_type or stream.file_type(o.name)
  o.multipart_threshold = o.multipart_threshold or files.MULTIPART_THRESHOLD
  o.concurrency = o.concurrency or files.CONCURRENCY
  o.refresh_margin = o.refresh_margin or files.REFRESH_MARGIN
  return o
end

-- Whether the upload is JSONL (by the name's extension or the MIME type).
local function is_jsonl(o)
  local ext = o.name:match("%.([%w]+)$")
  ext = ext and ext:lower()
  return ext == "jsonl" or ext == "ndjson" or JSONL_TYPES[(o.file_type:match("^%s*([^;%s]+)") or ""):lower()] == true
end


-- ---------------------------------------------------------------------------
-- POST /files and POST /files/base64: one request, the file as a form field

local function upload_simple(client, st, source, size, o, path, route)
  local batch = stream.batch(client, o.on_progress, 1, size)
  st.cleanup = function() batch:cancel_all() end
  local result
  local ok, err = batch:run({ source }, 1, function()
    source.offset, source.length = 0, size
    return P.stream(client, { method = "POST", path = path, decode = true, source = source,
      base64 = route == "base64", form = { name = "file", filename = o.name, type = o.file_type },
      stall = o.stall_timeout })
  end, function(_, body, e)
    if not body then return false, e end
    result = body
    batch:settle(size)
    return true
  end)
  st.cleanup = nil
  if ok == false then error(err, 0) end
  if not ok then return nil, err end
  if type(result) ~= "table" then return nil, decode_error("POST " .. path .. ": the reply is not a JSON object") end
  result.num_bytes = result.num_bytes or size
  result.route = route
  return result
end


-- ---------------------------------------------------------------------------
-- The multipart flow: initiate, parts (refreshed URLs, checkpoints), complete

local function is_count(v) return check.is_number(v) and v >= 0 and v == math.floor(v) end

-- One part of a reply as {part_number, url, offset, length, expires}, or
-- nil, why. An expires_at that cannot be read counts as none.
local function read_part(p, size, default_expiry)
  if type(p) ~= "table" or not is_count(p.part_number) or not is_count(p.offset) or not is_count(p.length)
      or p.length < 1 or p.offset + p.length > size then
    return nil, "is not {part_number, url, offset, length} within the file"
  end
  local why = stream.url_problem(p.url)
  if why then return nil, "url: " .. why end
  return { part_number = p.part_number, url = p.url, offset = p.offset, length = p.length,
    expires = stream.epoch(p.expires_at) or default_expiry }
end

-- The parts of an initiate reply, sorted by offset, checked not to overlap
-- and (unless resumed: then only the parts left are listed) to cover the
-- file exactly; or nil, why.
local function check_parts(init, size, resumed)
  if type(init.parts) ~= "table" or (#init.parts == 0 and not resumed) then return nil, "the reply has no parts" end
  local parts, seen, default_expiry = {}, {}, stream.epoch(init.expires_at)
  for i, p in ipairs(init.parts) do
    local part, why = read_part(p, size, default_expiry)
    if not part or seen[part.part_number] then
      return nil, ("parts[%d] %s"):format(i, why or "repeats a part_number")
    end
    seen[part.part_number] = true
    parts[i] = part
  end
  table.sort(parts, function(a, b) return a.offset < b.offset end)
  local at = 0
  for _, p in ipairs(parts) do
    if p.offset < at or (not resumed and p.offset ~= at) then
      return nil, "the parts do not cover the file byte for byte"
    end
    at = p.offset + p.length
  end
  if not resumed and at ~= size then return nil, ("the parts cover %.0f bytes, the file has %.0f"):format(at, size) end
  return parts
end

-- POST .../abort as a handle (a cleanup outside the operation's coroutine).
local function start_abort(client, upload_id)
  return P.start(client, "POST", "/files/uploads/" .. upload_id .. "/abort", nil)
end

-- A JSON array of `list`'s items.
local function array(list) return setmetatable(list, core.array_mt) end

-- POST .../parts/urls for `parts` (one call): their url and expires are
-- replaced by the fresh ones. true, or nil, err.
local function refresh_urls(client, upload_id, parts)
  local numbers = {}
  for i, p in ipairs(parts) do numbers[i] = p.part_number end
  local where = "/files/uploads/" .. upload_id .. "/parts/urls"
  local reply, err = P.call(client, "POST", where, { body = { part_numbers = array(numbers) } })
  if not reply then return nil, err end
  local fresh = type(reply) == "table" and reply.parts
  if type(fresh) ~= "table" or #fresh ~= #parts then
    return nil, decode_error(("POST %s: %d parts expected in the reply"):format(where, #parts))
  end
  for i, p in ipairs(parts) do
    local f = fresh[i]
    local why = type(f) ~= "table" and "not an object"
      or f.part_number ~= p.part_number and "another part_number" or stream.url_problem(f.url)
    if why then return nil, decode_error(("POST %s: parts[%d]: %s"):format(where, i, why)) end
    p.url, p.expires = f.url, stream.epoch(f.expires_at)
  end
  return true
end

-- Whether a failed PUT says its URL expired: 403, or 400 naming expiry.
local function expired_answer(e)
  if type(e) ~= "table" then return false end
  if e.status == 403 then return true end
  local text = (tostring(e.code or "") .. " " .. tostring(e.message or "") .. " " .. tostring(e.body or "")):lower()
  return e.status == 400 and text:find("expire") ~= nil
end

-- The checkpoints of a resumable upload: parts are checkpointed in batches,
-- at most one call in flight; `done` holds the part numbers whose
-- checkpoint succeeded.
local Checkpoints = {}
Checkpoints.__index = Checkpoints

local function checkpoints(client, upload_id)
  return setmetatable({ client = client, path = "/files/uploads/" .. upload_id .. "/parts/checkpoint",
    pending = {}, done = {}, live = true }, Checkpoints)
end

-- Takes the answer of the call in flight, if it came.
function Checkpoints:collect()
  local h = self.inflight
  if not (h and h:done()) then return end
  local reply = h:result()
  local n = type(reply) == "table" and reply.num_checkpointed
  -- a count short of the batch cannot say which parts failed: none counts
  if type(reply) == "table" and (n == nil or (check.is_number(n) and n >= #self.sent)) then
    for _, t in ipairs(self.sent) do self.done[t.part_number] = true end
  end
  self.inflight, self.sent = nil, nil
end

-- Adds a part's token (when given) and sends what waits, unless a call is
-- in flight.
function Checkpoints:pump(token)
  if token then self.pending[#self.pending + 1] = token end
  self:collect()
  if self.inflight or #self.pending == 0 then return end
  self.sent, self.pending = self.pending, {}
  local list = {}
  for i, t in ipairs(self.sent) do list[i] = t end
  self.inflight = handle.internal(P.start(self.client, "POST", self.path, { body = { parts = array(list) } }))
  -- the parts that finished meanwhile go as soon as it answers, not when the
  -- next part finishes: a long part (or a Ctrl-C during it) must not hold
  -- them back; `live` ends with the parts' transfers (a closed client: none)
  handle.on_done(self.inflight, function(_, err)
    if self.live and not (type(err) == "table" and err.kind == "cancelled") then self:pump() end
  end)
end

-- Checkpoints every part sent so far: waits for the call in flight, sends
-- the rest, waits for it.
function Checkpoints:flush()
  for _ = 1, 2 do
    if self.inflight then self.inflight:wait() end
    self:pump()
  end
  if self.inflight then self.inflight:wait() end
  self:collect()
end

-- Sends the parts, several at once, refreshing URLs about to expire (one
-- refresh per PUT attempt at most: a lifetime shorter than the margin
-- cannot spin); a part refused as expired is refreshed and sent once more.
-- Fills each part's token (and crc). Returns true, or nil, err (false, err:
-- on_progress raised).
local function send_parts(client, st, source, parts, u, o)
  local batch = stream.batch(client, o.on_progress, 1, u.size, { upload_id = u.id })
  batch.bytes_settled = u.size - u.to_send
  st.cleanup = function()
    batch:cancel_all()
    if u.checkpoints then u.checkpoints.live = false end
    if not o.resume then return start_abort(client, u.id) end
  end
  local queue, cursor = {}, 1
  for i, p in ipairs(parts) do queue[i] = p end
  local function expiring(p)
    return p.expires ~= nil and p.expires - core.wall_time() < o.refresh_margin
  end
  -- The parts about to go (this one and the next few not started) whose
  -- URLs expire within the margin, each refreshed once.
  local function refresh_before(part)
    local list = { part }
    part.refreshed = true
    while cursor <= #queue and (queue[cursor].started or queue[cursor] == part) do cursor = cursor + 1 end
    for j = cursor, #queue do
      local q = queue[j]
      if #list >= o.concurrency then break end
      if not q.started and not q.refreshed and q ~= part and expiring(q) then
        q.refreshed = true
        list[#list + 1] = q
      end
    end
    return refresh_urls(client, u.id, list)
  end
  local ok, err = batch:run(queue, o.concurrency, function(part)
    if not part.refreshed and expiring(part) then
      local done, rerr = refresh_before(part)
      if not done then return nil, rerr end
    end
    part.started = true
    return P.stream(client, { method = "PUT", presigned = true, url = part.url, stall = o.stall_timeout,
      crc = u.crc, source = { path = source.path, data = source.data, offset = part.offset, length = part.length } })
  end, function(part, info, e)
    if not info then
      if part.retried or not expired_answer(e) then return false, e end
      part.retried, part.refreshed = true, true -- once, outside the retry budget of transient failures
      local done, rerr = refresh_urls(client, u.id, { part })
      if not done then return false, rerr end
      queue[#queue + 1] = part
      return true
    end
    local etag = type(info.headers) == "table" and info.headers.etag
    if type(etag) ~= "string" or etag == "" then
      return false, decode_error(("part %d: the storage answered no ETag"):format(part.part_number))
    end
    part.token = { part_number = part.part_number, part_token = etag } -- byte for byte, quotes kept
    part.crc = info.crc32c
    if u.checkpoints then u.checkpoints:pump(part.token) end
    batch:settle(part.length)
    return true
  end)
  if not ok then return ok, err end
  return true
end

-- The whole file's CRC-32C: the parts' CRCs combined in offset order; on a
-- resume, the ranges sent by an earlier run are read again from the file.
-- The checksum (base64 of 4 big-endian bytes), or nil, err.
local function whole_crc(source, parts, size)
  local crc, at = 0, 0
  local function add(part_crc, length)
    crc = at == 0 and part_crc or core.crc32c_combine(crc, part_crc, length)
    at = at + length
  end
  for _, p in ipairs(parts) do
    if p.offset > at then
      local gap, err = core.crc32c_file(source.path, at, p.offset - at)
      if not gap then return nil, stream.error("io", err) end
      add(gap, p.offset - at)
    end
    if not p.crc then return nil, decode_error(("part %d: no CRC was computed"):format(p.part_number)) end
    add(p.crc, p.length)
  end
  if at < size then
    local gap, err = core.crc32c_file(source.path, at, size - at)
    if not gap then return nil, stream.error("io", err) end
    add(gap, size - at)
  end
  return core.base64(string.char(math.floor(crc / 16777216) % 256, math.floor(crc / 65536) % 256,
    math.floor(crc / 256) % 256, crc % 256))
end

-- Whether an error answer to complete reports a checksum mismatch.
local function integrity_answer(e)
  local text = (tostring(e.code or "") .. " " .. tostring(e.message or "")):lower()
  return text:find("integrity") or text:find("checksum") or text:find("crc")
end

-- POST .../complete with the parts not checkpointed (and the checksum);
-- the reply, or nil, err (kind integrity for a mismatch).
local function complete(client, source, parts, u)
  local tokens = {}
  for _, p in ipairs(parts) do
    if not (u.checkpoints and u.checkpoints.done[p.part_number]) then tokens[#tokens + 1] = p.token end
  end
  table.sort(tokens, function(a, b) return a.part_number < b.part_number end)
  local body = { parts = array(tokens) }
  if u.crc then
    local sum, err = whole_crc(source, parts, u.size)
    if not sum then return nil, err end
    body.integrity_checksum = sum
  end
  local done, err = P.call(client, "POST", "/files/uploads/" .. u.id .. "/complete", { body = body })
  if not done then
    if type(err) == "table" and integrity_answer(err) then err.kind = "integrity" end
    return nil, err
  end
  if type(done) ~= "table" then return nil, decode_error(".../complete: the reply is not a JSON object") end
  if done.file_status == "Corrupt" then
    return nil, stream.error("integrity", "the file arrived corrupt (file_status Corrupt): upload it again",
      { file_status = done.file_status })
  end
  return done
end

-- The body of a multipart upload (see the file's header).
local function upload_multipart(client, st, source, size, o)
  local init, err = P.call(client, "POST", "/files/uploads/initiate",
    { body = { filename = o.name, file_type = o.file_type, num_bytes = size, resume_if_started = o.resume or nil } })
  if not init then return nil, err end
  local upload_id = type(init) == "table" and init.upload_id
  if type(upload_id) ~= "string" or core.id_problem(upload_id) then
    return nil, decode_error("POST /files/uploads/initiate: no usable upload_id in the reply")
  end
  local resumed = o.resume and init.is_resume == true
  local u = { id = upload_id, size = size, crc = type(init.integrity_algorithm) == "string"
    and init.integrity_algorithm:lower() == "crc32c" or nil, checkpoints = o.resume and checkpoints(client, upload_id) }
  local parts, why = check_parts(init, size, resumed)
  local ok, perr = nil, decode_error("POST /files/uploads/initiate: " .. tostring(why))
  if parts then
    u.to_send = 0
    for _, p in ipairs(parts) do u.to_send = u.to_send + p.length end
    ok, perr = send_parts(client, st, source, parts, u, o)
    if u.checkpoints then u.checkpoints.live = false end -- flush() sends the rest
  end
  local done
  if ok then
    if u.checkpoints then u.checkpoints:flush() end
    done, perr = complete(client, source, parts, u)
  end
  st.cleanup = nil
  if not done then
    if o.resume then -- its checkpoints are what resumes it: never aborted
      if u.checkpoints and type(perr) == "table" and perr.kind ~= "cancelled" then u.checkpoints:flush() end
      if type(perr) == "table" then perr.upload_id, perr.resumable = upload_id, true end
    elseif perr.kind ~= "cancelled" then -- (cancelled: a closed client, nothing can be sent)
      P.call(client, "POST", "/files/uploads/" .. upload_id .. "/abort", nil)
    end
    if ok == false then error(perr, 0) end -- on_progress raised
    return nil, perr
  end
  done.file_id = done.file_id or done.file_name
  done.file_uid = done.file_uid or init.file_uid
  done.num_bytes = done.num_bytes or size
  done.upload_id, done.route, done.is_resume = upload_id, "multipart", resumed or nil
  return done
end

-- The body of upload_file / upload_data: by size, type and opts.resume,
-- one route or the other.
local function upload(client, st, source, size, o)
  if o.resume or is_jsonl(o) or size >= math.min(o.multipart_threshold, files.SIMPLE_MAX) then
    return upload_multipart(client, st, source, size, o)
  end
  return upload_simple(client, st, source, size, o, "/files", "simple")
end

-- The size of a regular file that can be read, or nil, err (kind "io").
local function readable_size(path)
  local size, kind = core.stat(path)
  local f = size and kind == "file" and io.open(path, "rb")
  if not f then return nil, stream.error("io", ("cannot read %s: %s"):format(path,
    size and "not a regular file" or tostring(kind))) end
  f:close()
  return size
end

-- upload_file's arguments: the source, its size and the options; nil, err
-- when the file cannot be read.
local function file_args(fname, path, opts)
  if type(path) ~= "string" or path == "" then
    check.fail(fname, 1, "path: string expected, got " .. type(path))
  end
  local o = upload_options(fname, 2, opts, path:match("([^/]+)/*$"), { 1, "path: its file name" })
  local size, err = readable_size(path)
  if not size then return nil, err end
  return stream.pack({ path = path }, size, o)
end

-- upload_data's arguments, the same way.
local function data_args(fname, name, data, opts)
  if type(name) ~= "string" then check.fail(fname, 1, "name: string expected, got " .. type(name)) end
  if type(data) ~= "string" then check.fail(fname, 2, "data: string expected, got " .. type(data)) end
  if type(opts) == "table" and opts.name ~= nil then check.fail(fname, 3, "opts.name: the name is argument #1") end
  if type(opts) == "table" and opts.resume ~= nil and opts.resume ~= false then
    check.fail(fname, 3, "opts.resume: only upload_file resumes (its checksum re-reads the file)")
  end
  return stream.pack({ data = data }, #data, upload_options(fname, 3, opts, name, { 1, "name" }))
end

-- upload_base64's arguments; nil, err when the file cannot be read or its
-- encoding would be over files.SIMPLE_MAX bytes (kind too_large).
local function base64_args(fname, name, path, opts)
  check_name(fname, 1, name, "name")
  if type(path) ~= "string" or path == "" then check.fail(fname, 2, "path: string expected, got " .. type(path)) end
  local o = check.options(fname, 3, opts, BASE64_OPTIONS)
  o.name, o.file_type = name, o.file_type or stream.file_type(name)
  local size, err = readable_size(path)
  if not size then return nil, err end
  local encoded = math.ceil(size / 3) * 4
  if encoded > files.SIMPLE_MAX then
    return nil, stream.error("too_large", ("%s in base64 would be %.0f bytes, over the %.0f bytes POST /files/base64"
      .. " takes: use upload_file, which sends large files by parts"):format(path, encoded, files.SIMPLE_MAX))
  end
  return stream.pack({ path = path }, size, o)
end

--- client:upload_file(path[, opts]): uploads a file, by POST /files or by
--- the multipart flow (from opts.multipart_threshold or 512,000,000
--- bytes, JSONL, opts.resume). opts: name (default the base name),
--- file_type (default from the extension), on_progress(p),
--- multipart_threshold, concurrency (parts at once, 4), stall_timeout,
--- refresh_margin (300 s), resume. Returns {file_id, file_uid, num_bytes,
--- route, ...} or nil, err. client.async:upload_file: the same as a handle.
stream.define(files.methods, "upload_file", file_args, upload)

--- client:upload_data(name, data[, opts]): the same for content already in
--- memory, uploaded as a file named `name` (no opts.resume).
stream.define(files.methods, "upload_data", data_args, upload)

--- client:upload_base64(name, path[, opts]): uploads the file at `path` as
--- `name` by POST /files/base64, encoded while it is sent. opts: file_type,
--- on_progress(p), stall_timeout. Returns {file_id, ..., route = "base64"}.
stream.define(files.methods, "upload_base64", base64_args, function(client, st, source, size, o)
  return upload_simple(client, st, source, size, o, "/files/base64", "base64")
end)


-- ---------------------------------------------------------------------------
-- Metadata, delete, download

-- The endpoints with a file id: name, method, path before the id.
local BY_ID = {
  { "file_info", "GET", "/files/metadata/" },
  { "delete_file", "DELETE", "/files/delete/" },
}

for _, ep in ipairs(BY_ID) do
  local name, method, prefix = ep[1], ep[2], ep[3]
  Client[name] = function(self, id)
    local body, err = P.call(self, method, prefix .. stream.file_id(name, 1, id), nil)
    return body, err
  end
  Async[name] = function(view, id)
    local client = view_client(view, name)
    return P.start(client, method, prefix .. stream.file_id(name, 1, id), nil)
  end
end

--- GET /files/metadata: the files of the organisation, as decoded.
function Client:files_list()
  local body, err = P.call(self, "GET", "/files/metadata", nil)
  return body, err
end

function Async:files_list()
  return P.start(view_client(self, "files_list"), "GET", "/files/metadata", nil)
end

--- The names bound to the default client and offered async (init.lua).
files.BOUND = { "upload_file", "upload_data", "upload_base64", "files_list", "file_info", "delete_file" }


return files

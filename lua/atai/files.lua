--- atai.files: the Files API: uploads, and the few file endpoints the API
-- reference lists.
--
-- client:upload_file(path[, opts]) sends a file streamed from disk, never
-- whole in memory: below opts.multipart_threshold (100 MiB) as
-- POST /files (multipart/form-data, field "file"); from there on by the
-- direct-to-cloud flow: POST /files/uploads/initiate answers every part's
-- presigned URL, offset and length; the parts go out several at once as
-- PUTs without the API key (each retried on transient failures), then
-- .../complete gets each part's ETag. A failure, a cancel or Ctrl-C
-- sends .../abort, so nothing stays half uploaded. upload_data does the
-- same from a string. Both return {file_id, file_uid, num_bytes, route, ...}.
--
-- Also files_list (GET /files/metadata), file_info (GET
-- /files/metadata/{id}), delete_file (DELETE /files/delete/{id}) and
-- download_file (GET /files/download/{id}); the reference gives none of
-- their bodies a shape, so they come back as decoded. File ids are file
-- names: each goes into the path as one percent-encoded segment.

local core = require("atai.core")
local check = require("atai.check")
local stream = require("atai.stream")

local Client, Async = core.Client, core.Async
local view_client = require("atai.api").view_client
local files = {}

--- Files of at least this many bytes go by the multipart flow.
files.MULTIPART_THRESHOLD = 100 * 1024 * 1024
--- Parts of a multipart upload in flight at once.
files.CONCURRENCY = 4

local UPLOAD_OPTIONS = { name = "string", file_type = "string", on_progress = "function",
  multipart_threshold = "bytes", concurrency = "limit", stall_timeout = "seconds" }

local function decode_error(message) return stream.error("decode", message) end

-- Checks upload options; fills in the defaults (name from `default_name`,
-- argument `default_arg` = {n, what}). The name and file type go into the
-- form's part header: no control bytes (they would inject headers).
local function upload_options(fname, n, opts, default_name, default_arg)
  local o = check.options(fname, n, opts, UPLOAD_OPTIONS)
  if o.name == nil then check.header_text(fname, default_arg[1], default_arg[2], default_name) end
  check.header_text(fname, n, "opts.name", o.name)
  check.header_text(fname, n, "opts.file_type", o.file_type)
  o.name = o.name or default_name
  if type(o.name) ~= "string" or o.name == "" or o.name:find("/", 1, true) or o.name:find("\\", 1, true)
      or o.name:find("\0", 1, true) then
    check.fail(fname, n, "opts.name: a file name expected (no '/', '\\' or NUL)")
  end
  o.file_type = o.file_type or stream.file_type(o.name)
  o.multipart_threshold = o.multipart_threshold or files.MULTIPART_THRESHOLD
  o.concurrency = o.concurrency or files.CONCURRENCY
  return o
end


-- ---------------------------------------------------------------------------
-- POST /files: one request, the file as a form field

local function upload_direct(client, st, source, size, o)
  local batch = stream.batch(client, o.on_progress, 1, size)
  st.cleanup = function() batch:cancel_all() end
  local result
  local ok, err = batch:run({ source }, 1, function()
    source.offset, source.length = 0, size
    return client:_stream { method = "POST", path = "/files", decode = true, source = source,
      form = { name = "file", filename = o.name, type = o.file_type }, stall = o.stall_timeout }
  end, function(_, body, e)
    if not body then return false, e end
    result = body
    batch:settle(size)
    return true
  end)
  st.cleanup = nil
  if ok == false then error(err, 0) end
  if not ok then return nil, err end
  if type(result) ~= "table" then return nil, decode_error("POST /files: the reply is not a JSON object") end
  result.num_bytes = result.num_bytes or size
  result.route = "direct"
  return result
end


-- ---------------------------------------------------------------------------
-- The multipart flow: initiate, parts, complete (or abort)

local function is_count(v) return check.is_number(v) and v >= 0 and v == math.floor(v) end

-- The parts of an initiate reply, sorted by offset, checked to cover the
-- file exactly with https URLs; or nil, why.
local function check_parts(init, size)
  if type(init.parts) ~= "table" or #init.parts == 0 then return nil, "the reply has no parts" end
  local parts, seen = {}, {}
  for i, p in ipairs(init.parts) do
    if type(p) ~= "table" or not is_count(p.part_number) or p.part_number < 1 or seen[p.part_number]
        or not is_count(p.offset) or not is_count(p.length) or p.length < 1 then
      return nil, ("parts[%d] is not {part_number, url, offset, length}"):format(i)
    end
    local why = stream.url_problem(p.url)
    if why then return nil, ("parts[%d].url: %s"):format(i, why) end
    seen[p.part_number] = true
    parts[i] = { part_number = p.part_number, url = p.url, offset = p.offset, length = p.length }
  end
  table.sort(parts, function(a, b) return a.offset < b.offset end)
  local at = 0
  for _, p in ipairs(parts) do
    if p.offset ~= at then return nil, "the parts do not cover the file byte for byte" end
    at = at + p.length
  end
  if at ~= size then return nil, ("the parts cover %.0f bytes, the file has %.0f"):format(at, size) end
  return parts
end

-- POST .../abort as a handle (a cleanup outside the operation's coroutine).
local function start_abort(client, upload_id)
  return client:_start("POST", "/files/uploads/" .. upload_id .. "/abort", nil)
end

-- Sends the parts, several at once; returns the {part_number, part_token}
-- list in part order, or nil, err (false, err: on_progress raised).
local function send_parts(client, st, source, parts, size, o, upload_id)
  local batch = stream.batch(client, o.on_progress, 1, size)
  st.cleanup = function()
    batch:cancel_all()
    return start_abort(client, upload_id)
  end
  local tokens = {}
  local ok, err = batch:run(parts, o.concurrency, function(part)
    return client:_stream { method = "PUT", presigned = true, url = part.url, stall = o.stall_timeout,
      source = { path = source.path, data = source.data, offset = part.offset, length = part.length } }
  end, function(part, info, e)
    if not info then return false, e end
    local etag = type(info.headers) == "table" and info.headers.etag
    if type(etag) ~= "string" or etag == "" then
      return false, decode_error(("part %d: the storage answered no ETag"):format(part.part_number))
    end
    tokens[#tokens + 1] = { part_number = part.part_number, part_token = (etag:gsub('^"(.*)"$', "%1")) }
    batch:settle(part.length)
    return true
  end)
  if not ok then return ok, err end
  table.sort(tokens, function(a, b) return a.part_number < b.part_number end)
  return tokens
end

-- The body of a multipart upload (see the file's header).
local function upload_multipart(client, st, source, size, o)
  local init, err = client:_call("POST", "/files/uploads/initiate",
    { body = { filename = o.name, file_type = o.file_type, num_bytes = size } })
  if not init then return nil, err end
  local upload_id = type(init) == "table" and init.upload_id
  if type(upload_id) ~= "string" or core.id_problem(upload_id) then
    return nil, decode_error("POST /files/uploads/initiate: no usable upload_id in the reply")
  end
  local parts, why = check_parts(init, size)
  local tokens, perr = nil, decode_error("POST /files/uploads/initiate: " .. tostring(why))
  if parts then tokens, perr = send_parts(client, st, source, parts, size, o, upload_id) end
  local done
  if tokens then done, perr = client:_call("POST", "/files/uploads/" .. upload_id .. "/complete", { body = { parts = tokens } }) end
  st.cleanup = nil
  if not done then
    -- (a cancelled transfer means a closed client: nothing can be sent)
    if perr.kind ~= "cancelled" then client:_call("POST", "/files/uploads/" .. upload_id .. "/abort", nil) end
    if tokens == false then error(perr, 0) end -- on_progress raised
    return nil, perr
  end
  if type(done) ~= "table" then return nil, decode_error(".../complete: the reply is not a JSON object") end
  done.file_id = done.file_id or done.file_name
  done.file_uid = done.file_uid or init.file_uid
  done.num_bytes = done.num_bytes or size
  done.upload_id, done.route = upload_id, "multipart"
  return done
end

-- The body of upload_file / upload_data: by size, one route or the other.
local function upload(client, st, source, size, o)
  if size >= o.multipart_threshold then return upload_multipart(client, st, source, size, o) end
  return upload_direct(client, st, source, size, o)
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
  return stream.pack({ data = data }, #data, upload_options(fname, 3, opts, name, { 1, "name" }))
end

--- client:upload_file(path[, opts]): uploads a file, by POST /files or, from
--- opts.multipart_threshold bytes on, by the multipart flow. opts: name
--- (default the base name), file_type (default from the extension),
--- on_progress(p), multipart_threshold, concurrency (parts at once, 4),
--- stall_timeout. Returns {file_id, file_uid, num_bytes, route, ...} or
--- nil, err. client.async:upload_file: the same as a handle.
stream.define("upload_file", file_args, upload)

--- client:upload_data(name, data[, opts]): the same for content already in
--- memory, uploaded as a file named `name`.
stream.define("upload_data", data_args, upload)


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
    local body, err = self:_call(method, prefix .. stream.file_id(name, 1, id), nil)
    return body, err
  end
  Async[name] = function(view, id)
    local client = view_client(view, name)
    return client:_start(method, prefix .. stream.file_id(name, 1, id), nil)
  end
end

--- GET /files/metadata: the files of the organisation, as decoded.
function Client:files_list()
  local body, err = self:_call("GET", "/files/metadata", nil)
  return body, err
end

function Async:files_list()
  return view_client(self, "files_list"):_start("GET", "/files/metadata", nil)
end

--- The names bound to the default client and offered async (init.lua).
files.BOUND = { "upload_file", "upload_data", "files_list", "file_info", "delete_file" }

return files

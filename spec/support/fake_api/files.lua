--[[
  fake_api/files.lua -- the Files API (/v0.5/files...), as far as the reference shows it:

    POST   /files                          multipart/form-data, field "file", streamed:
                                           {is_valid, file_id, file_uid}
    POST   /files/base64                   the same, the file part in base64
    (uploads, below: parts numbered from 0; URLs expiring after url_ttl s, 403 after)
    GET    /files/metadata                 {files: [...]} (shape undocumented: ours)
    GET    /files/metadata/{file_id}       one file's metadata (ours too)
    DELETE /files/delete/{file_id}         {file_id, deleted} (ours)
    GET    /files/download/{file_id}       the file's bytes (kept for files up to 1 MiB)
    POST   /files/uploads/initiate         {filename, file_type, num_bytes, resume_if_started?}
                                           -> upload_id, file_uid, file_name, strategy,
                                           total_bytes, num_parts, part_size, is_resume,
                                           integrity_algorithm, parts [{part_number, url,
                                           offset, length, expires_at}] (only the parts not
                                           checkpointed), expires_at (PUTs: storage.lua)
    POST   /files/uploads/{id}/parts/urls  {part_numbers} -> {parts}: fresh URLs, counted
    POST   /files/uploads/{id}/parts/checkpoint  {parts: [{part_number, part_token}]} ->
                                           {num_checkpointed}; kill_pid/kill_after_checkpoints
                                           SIGKILL a client process here (resume specs)
    POST   /files/uploads/{id}/complete    {parts: [...not checkpointed], integrity_checksum?}
                                           -> {file_uid, file_name, file_status, num_bytes,
                                           file_attributes}; a checksum that does not match the
                                           parts' CRC-32C: 400 integrity_mismatch, file Corrupt
    POST   /files/uploads/{id}/abort       an empty body; 409 once completed

  Uploads are counted, never kept whole (a 200 MiB upload passes MAX_BODY): the store
  keeps each file's size, type, its first bytes and, up to KEEP bytes, its content.
  Like the documented error, an unsupported part type is a 400 invalid_file_type and
  a file over max_upload_bytes (toggle) a 413 invalid_file_size.
]]

local socket = require("socket")
local json = require("fake_api.json")
local errors = require("fake_api.errors")
local state = require("fake_api.state")
local storage = require("fake_api.storage")
local crc32c = require("fake_api.crc32c")
local util = require("fake_api.util")

local raise = errors.raise

local files = {}

local KEEP = 1024 * 1024 -- bytes of content kept per file
local HEAD = 32          -- first bytes kept of every file
local FILE_FIELDS = { "file_id", "file_uid", "file_name", "file_type", "num_bytes", "file_status",
  "created_at" }
local SUPPORTED = { ["image/jpeg"] = true, ["image/png"] = true, ["video/mp4"] = true,
  ["text/csv"] = true, ["text/plain"] = true, ["application/json"] = true,
  ["application/jsonl"] = true }

-- Registers a file (same name: overwritten, as the API does within an org).
local function register(name, file_type, num_bytes, content, head)
  local f = json.object({ file_id = name, file_uid = util.random_alnum(22), file_name = name,
    file_type = file_type, num_bytes = num_bytes, file_status = "Registered",
    created_at = util.iso_time() }, FILE_FIELDS)
  state.files[name] = { meta = f, content = content, head = head }
  return f
end

-- ------------------------------------------------------------------ multipart parsing

-- The headers of one part ("Name: value" lines) as lowercase name -> value.
local function part_headers(text)
  local h = {}
  for line in text:gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then h[name:lower()] = value end
  end
  local disposition = h["content-disposition"] or ""
  return { name = disposition:match('[; ]name="([^"]*)"'), filename = disposition:match('filename="([^"]*)"'),
    type = h["content-type"] }
end

-- Streams a multipart/form-data body through `sink` = {part(headers), data(piece)}
-- without holding it: a window of one delimiter is all that stays between pieces.
-- Returns true, or nil and why the body is malformed.
local function parse_multipart(req, boundary, sink)
  local delim = "\r\n--" .. boundary
  local buf, mode = "\r\n", "preamble"
  while mode ~= "end" do
    local piece, err = req.reader()
    if not piece then return nil, err or "the body ended inside the form" end
    buf = buf .. piece
    while true do
      if mode == "preamble" or mode == "data" then
        local at = buf:find(delim, 1, true)
        local cut = at and at - 1 or math.max(#buf - #delim + 1, 0)
        if mode == "data" and cut > 0 then sink.data(buf:sub(1, cut)) end
        buf = buf:sub(at and at + #delim or cut + 1)
        if not at then break end
        mode = "delimiter"
      elseif mode == "delimiter" then
        if #buf < 2 then break end
        local tail = buf:sub(1, 2)
        if tail == "--" then mode = "end"; break end
        if tail ~= "\r\n" then return nil, "bad delimiter line" end
        buf, mode = buf:sub(3), "headers"
      else -- headers
        local at = buf:find("\r\n\r\n", 1, true)
        if not at then
          if #buf > 16384 then return nil, "part headers too long" end
          break
        end
        sink.part(part_headers(buf:sub(1, at - 1)))
        buf, mode = buf:sub(at + 4), "data"
      end
    end
  end
  return true
end

-- A sink keeping the "file" part: its name, type, size, first bytes, small content.
local function file_sink()
  local sink = { bytes = 0, pieces = {}, kept = 0 }
  local current
  function sink.part(h)
    current = h
    if h.name == "file" then sink.file = h end
  end
  function sink.data(piece)
    if current ~= sink.file then return end
    sink.bytes = sink.bytes + #piece
    if sink.kept <= KEEP then
      sink.pieces[#sink.pieces + 1] = piece
      sink.kept = sink.kept + #piece
    end
  end
  return sink
end

-- Decodes base64 (the kept content of a small POST /files/base64 upload).
local function b64_decode(text)
  local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out, bits, n = {}, 0, 0
  for ch in text:gmatch("[%w+/]") do
    bits, n = (bits << 6) | (A:find(ch, 1, true) - 1), n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char((bits >> n) & 0xff)
    end
  end
  return table.concat(out)
end

-- A sink for POST /files/base64: counts the decoded bytes without decoding them (a
-- 4-character group is 3 bytes, less its '=' padding); keeps the first KEEP bytes'
-- encoding. Pieces are counted: how the body came shows it was streamed.
local function base64_sink()
  local sink = file_sink()
  local data, tail = sink.data, ""
  function sink.data(piece)
    local before = sink.bytes
    data(piece)
    if sink.bytes > before then tail = (tail .. piece):sub(-2) end
  end
  function sink.decoded()
    local pad = select(2, tail:gsub("=", ""))
    sink.bytes = sink.bytes // 4 * 3 - pad
    return b64_decode(table.concat(sink.pieces):sub(1, (KEEP // 3 + 1) * 4))
  end
  return sink
end

-- POST /files: the multipart upload of one file, streamed.
function files.upload(req, base64)
  local boundary = (req.headers["content-type"] or ""):match("^multipart/form%-data;.-boundary=\"?([^\";]+)")
  if not boundary then
    raise(400, "invalid_parameter", "Expected a multipart/form-data body", "Send the file in a form field named 'file'.")
  end
  local sink = base64 and base64_sink() or file_sink()
  local ok, why = parse_multipart(req, boundary, sink)
  if not ok then raise(400, "invalid_parameter", "Malformed multipart body: " .. tostring(why), nil) end
  if not sink.file or not sink.file.filename or sink.file.filename == "" then
    raise(400, "missing_parameter", "Failed to find key: file", "Send the file in a form field named 'file'.")
  end
  local content = base64 and sink.decoded() or table.concat(sink.pieces)
  local file_type = sink.file.type or "application/octet-stream"
  if not SUPPORTED[file_type] then
    raise(400, "invalid_file_type", "Unsupported file type: " .. file_type,
      "Supported types: image/jpeg, image/png, video/mp4, text/csv, text/plain, application/json")
  end
  if sink.bytes > state.config.max_upload_bytes then
    raise(413, "invalid_file_size", ("File of %d bytes is over the limit of %d bytes"):format(sink.bytes,
      state.config.max_upload_bytes), "Use the multipart upload (POST /files/uploads/initiate).")
  end
  local f = register(sink.file.filename, file_type, sink.bytes, sink.bytes <= KEEP and content or nil,
    content:sub(1, HEAD))
  return 200, json.object({ is_valid = true, file_id = f.file_id, file_uid = f.file_uid },
    { "is_valid", "file_id", "file_uid" })
end

-- POST /files/base64: the same form, the file part in base64 (decoded as it comes).
function files.upload_base64(req) return files.upload(req, true) end

-- ------------------------------------------------------------------ metadata, delete, download

local function need_file(id)
  local f = state.files[id]
  if not f then raise(404, "not_found", "File " .. id .. " not found", "List files with GET /files/metadata.") end
  return f
end

-- GET /files/metadata
function files.list()
  local names = {}
  for name in pairs(state.files) do names[#names + 1] = name end
  table.sort(names)
  local list = json.array({})
  for i, name in ipairs(names) do list[i] = state.files[name].meta end
  return 200, json.object({ files = list, total = #list }, { "files", "total" })
end

-- GET /files/metadata/{id}
function files.metadata(_, id) return 200, need_file(id).meta end

-- DELETE /files/delete/{id}
function files.delete(_, id)
  need_file(id)
  state.files[id] = nil
  return 200, json.object({ file_id = id, deleted = true }, { "file_id", "deleted" })
end

-- GET /files/download/{id}: the bytes, as stored (only small files keep them).
function files.download(_, id)
  local f = need_file(id)
  if not f.content then raise(404, "not_found", "The fake server keeps no content of files over 1 MiB", nil) end
  return 200, json.raw(f.content), { ["Content-Type"] = f.meta.file_type }
end

-- ------------------------------------------------------------------ multipart uploads

local function parse_json_body(req) return require("fake_api.jobs").parse_json_body(req) end

local function need_upload(id)
  local upload = state.uploads[id]
  if not upload then raise(404, "upload_not_found", "Upload " .. id .. " not found", nil) end
  if upload.status ~= "open" then
    raise(409, "conflict", "Upload " .. id .. " is " .. upload.status, nil)
  end
  return upload
end

-- The algorithm initiate names for an upload of `size` bytes: the toggle, or "none" past
-- integrity_max_bytes (the fake's CRC is plain Lua: big uploads skip it).
local function algorithm_for(size)
  local cfg = state.config
  return size <= cfg.integrity_max_bytes and cfg.integrity_algorithm or "none"
end

-- The JSON of one part, with a fresh presigned URL (url_ttl seconds; fractions allowed).
local function part_json(upload, part)
  local url, expires = storage.url("/_storage/" .. upload.id .. "/" .. part.number, state.config.url_ttl)
  return json.object({ part_number = part.number, url = url, offset = part.offset, length = part.length,
    expires_at = util.iso_time(expires) }, { "part_number", "url", "offset", "length", "expires_at" })
end

-- An open upload of this file name and size (what resume_if_started resumes), or nil.
local function open_upload_of(filename, size)
  local found
  for _, u in pairs(state.uploads) do
    if u.status == "open" and u.filename == filename and u.num_bytes == size
        and (not found or u.serial > found.serial) then found = u end
  end
  return found
end

-- POST /files/uploads/initiate: parts of state.config.part_size bytes numbered from 0,
-- each with a presigned PUT URL that expires; with resume_if_started, an open upload of
-- the same name and size goes on (is_resume), listing only the parts not checkpointed.
function files.initiate(req)
  local body = parse_json_body(req)
  local size = math.tointeger(body.num_bytes)
  if type(body.filename) ~= "string" or body.filename == "" then
    raise(400, "missing_parameter", "Failed to find key: filename", nil)
  end
  if not size or size < 1 then raise(400, "invalid_parameter", "num_bytes must be a positive integer", nil) end
  local upload = body.resume_if_started == true and open_upload_of(body.filename, size)
  local is_resume = upload and true or false
  if not upload then
    local id, part_size = "upl_" .. util.random_alnum(20), state.config.part_size
    state.upload_serial = (state.upload_serial or 0) + 1
    upload = { id = id, filename = body.filename, num_bytes = size, parts = {}, status = "open",
      serial = state.upload_serial, algorithm = algorithm_for(size), initiates = 0, url_calls = 0,
      refreshes = 0, checkpoint_calls = 0, file_uid = "fil_" .. util.random_alnum(20),
      file_type = type(body.file_type) == "string" and body.file_type or "application/octet-stream" }
    for n = 1, (size + part_size - 1) // part_size do
      local offset = (n - 1) * part_size
      upload.parts[n] = { number = n - 1, offset = offset, length = math.min(part_size, size - offset) }
    end
    state.uploads[id] = upload
  end
  upload.initiates = upload.initiates + 1
  local parts = json.array({})
  for _, part in ipairs(upload.parts) do
    if not part.checkpointed then parts[#parts + 1] = part_json(upload, part) end
  end
  return 200, json.object({ upload_id = upload.id, file_uid = upload.file_uid, file_name = upload.filename,
    strategy = "multipart", total_bytes = size, num_parts = #upload.parts, part_size = state.config.part_size,
    is_resume = is_resume, integrity_algorithm = upload.algorithm, parts = parts,
    expires_at = util.iso_time(socket.gettime() + state.config.url_ttl) },
    { "upload_id", "file_uid", "file_name", "strategy", "total_bytes", "num_parts", "part_size", "is_resume",
      "integrity_algorithm", "parts", "expires_at" })
end

-- The part numbered n (from 0) of an upload, or nil.
local function part_of(upload, n)
  n = math.tointeger(n)
  return n and upload.parts[n + 1]
end

-- POST /files/uploads/{id}/parts/urls {part_numbers}: fresh URLs, same order.
function files.part_urls(req, id)
  local upload = need_upload(id)
  local body = parse_json_body(req)
  if not json.is_array(body.part_numbers) or #body.part_numbers == 0 then
    raise(400, "invalid_parameter", "part_numbers must be a non-empty array", nil)
  end
  local out = json.array({})
  for i, n in ipairs(body.part_numbers) do
    local part = part_of(upload, n)
    if not part then raise(400, "invalid_parameter", "no part " .. tostring(n), nil) end
    out[i] = part_json(upload, part)
    part.refreshes = (part.refreshes or 0) + 1
    upload.refreshes = upload.refreshes + 1
  end
  upload.url_calls = upload.url_calls + 1
  return 200, json.object({ parts = out }, { "parts" })
end

-- Kills the process the specs named (config kill_pid) once kill_after_checkpoints
-- parts of any upload are checkpointed: an upload interrupted without a chance to
-- clean up, for the resume specs.
local function maybe_kill(upload)
  local cfg, n = state.config, 0
  if cfg.kill_pid <= 0 then return end
  for _, part in ipairs(upload.parts) do if part.checkpointed then n = n + 1 end end
  if n >= cfg.kill_after_checkpoints then
    os.execute(("kill -9 %d 2>/dev/null"):format(cfg.kill_pid))
    cfg.kill_pid = 0
  end
end

-- POST /files/uploads/{id}/parts/checkpoint {parts: [{part_number, part_token}]}.
function files.checkpoint(req, id)
  local upload = need_upload(id)
  local body = parse_json_body(req)
  if not json.is_array(body.parts) then raise(400, "invalid_parameter", "parts must be an array", nil) end
  for _, p in ipairs(body.parts) do
    local part = json.is_object(p) and part_of(upload, p.part_number)
    if not part or part.etag == nil or p.part_token ~= part.etag then
      raise(400, "invalid_parameter", "part " .. tostring(json.is_object(p) and p.part_number)
        .. ": missing, not uploaded or wrong part_token (the ETag, quotes included)", nil)
    end
  end
  for _, p in ipairs(body.parts) do part_of(upload, p.part_number).checkpointed = true end
  upload.checkpoint_calls = upload.checkpoint_calls + 1
  maybe_kill(upload)
  return 200, json.object({ num_checkpointed = #body.parts }, { "num_checkpointed" })
end

-- The whole file's CRC-32C from its parts' (all must have one).
local function upload_crc(upload)
  local crc
  for _, part in ipairs(upload.parts) do
    crc = crc and crc32c.combine(crc, part.crc, part.length) or part.crc
  end
  return crc
end

-- POST /files/uploads/{id}/complete: the parts not checkpointed, each with its ETag byte
-- for byte (a checkpointed part repeated is refused), and an optional
-- integrity_checksum, checked against the parts' CRC-32C (400 integrity_mismatch, the
-- file Corrupt).
function files.complete(req, id)
  local upload = need_upload(id)
  local body = parse_json_body(req)
  if not json.is_array(body.parts) then raise(400, "invalid_parameter", "parts must be an array", nil) end
  local listed = {}
  for _, p in ipairs(body.parts) do
    local part = json.is_object(p) and part_of(upload, p.part_number)
    if not part or part.etag == nil or p.part_token ~= part.etag or listed[part] then
      raise(400, "invalid_parameter", "part " .. tostring(json.is_object(p) and p.part_number)
        .. ": missing, not uploaded or wrong part_token (the ETag, quotes included)", nil)
    end
    if part.checkpointed then
      raise(400, "invalid_parameter", ("part %d was checkpointed: complete lists only the others"):format(part.number), nil)
    end
    listed[part] = true
  end
  for _, part in ipairs(upload.parts) do
    if not listed[part] and not part.checkpointed then
      raise(400, "invalid_parameter", ("part %d is neither checkpointed nor listed"):format(part.number), nil)
    end
  end
  local checksum = body.integrity_checksum
  if checksum ~= nil then
    if upload.algorithm == "none" then
      raise(400, "invalid_parameter", "integrity_checksum given, but the upload's integrity_algorithm is none", nil)
    end
    upload.checksum = checksum
    if checksum ~= crc32c.base64(upload_crc(upload)) then
      upload.status = "corrupt"
      local f = register(upload.filename, upload.file_type, upload.num_bytes, nil, upload.parts[1].head)
      f.file_status = "Corrupt"
      raise(400, "integrity_mismatch", "Integrity check failed: the crc32c checksum does not match the parts received",
        "Upload the file again.")
    end
  end
  upload.status = "completed"
  local f = register(upload.filename, upload.file_type, upload.num_bytes, nil, upload.parts[1].head)
  f.file_uid = upload.file_uid
  return 200, json.object({ file_uid = f.file_uid, file_name = f.file_name, file_status = "Registered",
    num_bytes = upload.num_bytes, file_attributes = json.object({}, {}) },
    { "file_uid", "file_name", "file_status", "num_bytes", "file_attributes" })
end

-- POST /files/uploads/{id}/abort: an empty body (409 once completed).
function files.abort(_, id)
  local upload = need_upload(id)
  upload.status = "aborted"
  return 200, json.raw("")
end

-- Whether the request's body is streamed to its handler: POST /files.
function files.streams(req)
  return req.method == "POST" and (req.path == "/v0.5/files" or req.path == "/v0.5/files/base64")
end

return files

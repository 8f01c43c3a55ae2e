--[[
  fake_api/files.lua -- the Files API (/v0.5/files...), as far as the reference shows it:

    POST   /files                          multipart/form-data, field "file", streamed:
                                           {is_valid, file_id, file_uid}
    GET    /files/metadata                 {files: [...]} (shape undocumented: ours)
    GET    /files/metadata/{file_id}       one file's metadata (ours too)
    DELETE /files/delete/{file_id}         {file_id, deleted} (ours)
    GET    /files/download/{file_id}       the file's bytes (kept for files up to 1 MiB)
    POST   /files/uploads/initiate         {filename, file_type, num_bytes} -> upload_id,
                                           file_uid, strategy, num_parts, part_size,
                                           parts [{part_number, url, offset, length}],
                                           expires_at (presigned PUTs: storage.lua)
    POST   /files/uploads/{id}/complete    {parts: [{part_number, part_token}]} ->
                                           {file_uid, file_name, file_status, num_bytes,
                                           file_attributes}
    POST   /files/uploads/{id}/abort       {upload_id, status: "aborted"} (ours)

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

-- POST /files: the multipart upload of one file, streamed.
function files.upload(req)
  local boundary = (req.headers["content-type"] or ""):match("^multipart/form%-data;.-boundary=\"?([^\";]+)")
  if not boundary then
    raise(400, "invalid_parameter", "Expected a multipart/form-data body", "Send the file in a form field named 'file'.")
  end
  local sink = file_sink()
  local ok, why = parse_multipart(req, boundary, sink)
  if not ok then raise(400, "invalid_parameter", "Malformed multipart body: " .. tostring(why), nil) end
  if not sink.file or not sink.file.filename or sink.file.filename == "" then
    raise(400, "missing_parameter", "Failed to find key: file", "Send the file in a form field named 'file'.")
  end
  local file_type = sink.file.type or "application/octet-stream"
  if not SUPPORTED[file_type] then
    raise(400, "invalid_file_type", "Unsupported file type: " .. file_type,
      "Supported types: image/jpeg, image/png, video/mp4, text/csv, text/plain, application/json")
  end
  if sink.bytes > state.config.max_upload_bytes then
    raise(413, "invalid_file_size", ("File of %d bytes is over the limit of %d bytes"):format(sink.bytes,
      state.config.max_upload_bytes), "Use the multipart upload (POST /files/uploads/initiate).")
  end
  local content = table.concat(sink.pieces)
  local f = register(sink.file.filename, file_type, sink.bytes, sink.bytes <= KEEP and content or nil,
    content:sub(1, HEAD))
  return 200, json.object({ is_valid = true, file_id = f.file_id, file_uid = f.file_uid },
    { "is_valid", "file_id", "file_uid" })
end

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

-- POST /files/uploads/initiate: parts of state.config.part_size bytes, each with a
-- presigned PUT URL.
function files.initiate(req)
  local body = parse_json_body(req)
  local size = math.tointeger(body.num_bytes)
  if type(body.filename) ~= "string" or body.filename == "" then
    raise(400, "missing_parameter", "Failed to find key: filename", nil)
  end
  if not size or size < 1 then raise(400, "invalid_parameter", "num_bytes must be a positive integer", nil) end
  local id, part_size = "upl_" .. util.random_alnum(20), state.config.part_size
  local upload = { id = id, filename = body.filename, num_bytes = size, parts = {}, status = "open",
    file_type = type(body.file_type) == "string" and body.file_type or "application/octet-stream" }
  local parts = json.array({})
  for n = 1, (size + part_size - 1) // part_size do
    local offset = (n - 1) * part_size
    local part = { offset = offset, length = math.min(part_size, size - offset) }
    upload.parts[n] = part
    parts[n] = json.object({ part_number = n, url = storage.url("/_storage/" .. id .. "/" .. n, state.config.url_ttl),
      offset = offset, length = part.length }, { "part_number", "url", "offset", "length" })
  end
  state.uploads[id] = upload
  upload.file_uid = "fil_" .. util.random_alnum(20)
  return 200, json.object({ upload_id = id, file_uid = upload.file_uid, strategy = "multipart",
    num_parts = #parts, part_size = part_size, parts = parts,
    expires_at = util.iso_time(socket.gettime() + state.config.url_ttl) },
    { "upload_id", "file_uid", "strategy", "num_parts", "part_size", "parts", "expires_at" })
end

-- The token of a part as sent: with or without the ETag's quotes.
local function token_matches(part, token)
  return type(token) == "string" and part.etag ~= nil and (token == part.etag or '"' .. token .. '"' == part.etag)
end

-- POST /files/uploads/{id}/complete: every part, each with its ETag.
function files.complete(req, id)
  local upload = need_upload(id)
  local body = parse_json_body(req)
  if not json.is_array(body.parts) or #body.parts ~= #upload.parts then
    raise(400, "invalid_parameter", ("parts must list all %d parts"):format(#upload.parts), nil)
  end
  for _, p in ipairs(body.parts) do
    local part = json.is_object(p) and upload.parts[math.tointeger(p.part_number) or 0]
    if not part or not token_matches(part, p.part_token) then
      raise(400, "invalid_parameter", "part " .. tostring(json.is_object(p) and p.part_number)
        .. ": missing, not uploaded or wrong part_token", nil)
    end
  end
  upload.status = "completed"
  local f = register(upload.filename, upload.file_type, upload.num_bytes, nil, upload.parts[1].head)
  f.file_uid = upload.file_uid
  return 200, json.object({ file_uid = f.file_uid, file_name = f.file_name, file_status = "Registered",
    num_bytes = upload.num_bytes, file_attributes = json.object({}, {}) },
    { "file_uid", "file_name", "file_status", "num_bytes", "file_attributes" })
end

-- POST /files/uploads/{id}/abort
function files.abort(_, id)
  local upload = need_upload(id)
  upload.status = "aborted"
  return 200, json.object({ upload_id = id, status = "aborted" }, { "upload_id", "status" })
end

-- Whether the request's body is streamed to its handler: POST /files.
function files.streams(req)
  return req.method == "POST" and req.path == "/v0.5/files"
end

return files

--[[
  fake_api/storage.lua -- the cloud storage behind presigned URLs, on the same loopback
  server, outside /v0.5 and without the API key:

    PUT /_storage/<upload_id>/<part_number>?X-Amz-Expires=<epoch.ms>&X-Amz-Signature=<sig>
        one part of a multipart upload (files.lua starts them), streamed: counted and
        its first bytes kept, never the part; answers an ETag
    GET /_blob/<key>?X-Amz-Expires=<epoch>&X-Amz-Signature=<sig>
        the bytes of an output (fake_api/blob.lua), made range by range as they are sent

  A signature covers the path and the expiry; an expired or wrong one is a 403 with an
  S3-like XML body.  Whether a request carried an Authorization header shows in the
  request log ("auth": "missing" is the only right answer here); stats.storage counts
  the requests in flight at once (max_put, max_get) and the bytes received.

  Output listings (job_io.lua) get fresh URLs from here on every call, like the real
  API; the toggles expired_listings / stale_listings make the next N listings hand out
  URLs whose signature has expired (stale: with expires_at in the past too).
]]

local socket = require("socket")
local json = require("fake_api.json")
local blob = require("fake_api.blob")
local state = require("fake_api.state")
local util = require("fake_api.util")
local crc32c = require("fake_api.crc32c")

local now = socket.gettime

local storage = {}

local SECRET = util.random_alnum(24) -- signs the URLs of this server's life
local HEAD_KEEP = 32                 -- first bytes of a part kept, to check its offset

-- The signature of a path valid until `expires` (epoch seconds).
local function sign(path, expires)
  return util.fnv1a(SECRET .. "|" .. path .. "|" .. expires)
end

-- A presigned URL for `path`, valid for `ttl` seconds (negative: already expired;
-- fractions allowed: the expiry is kept to the millisecond).
function storage.url(path, ttl)
  local expires = ("%.3f"):format(now() + ttl)
  return ("http://127.0.0.1:%d%s?X-Amz-Expires=%s&X-Amz-Signature=%s"):format(state.port, path,
    expires, sign(path, expires)), tonumber(expires)
end

-- An S3-like error: status and XML body.
local function s3_error(status, code, message)
  return { status = status, headers = { ["Content-Type"] = "application/xml" },
    body = ("<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>%s</Message></Error>"):format(code, message) }
end

-- nil when the request's signature is good and unexpired, else the 403 to answer.
local function check_signature(req)
  local text = req.params["X-Amz-Expires"] or ""
  local expires = tonumber(text)
  if not expires or req.params["X-Amz-Signature"] ~= sign(req.path, text) then
    return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
  end
  if expires < now() then return s3_error(403, "AccessDenied", "Request has expired") end
  return nil
end

-- ------------------------------------------------------------------ blobs (outputs)

-- Registers the blob `key` of `size` bytes (its bytes: blob.lua).
function storage.add_blob(key, size)
  state.blobs[key] = { size = size }
end

-- The output objects of a listing page, copied, with fresh presigned refs for the
-- outputs backed by a blob (see the toggles in the header).
function storage.fresh_outputs(list)
  local cfg, ttl, shown = state.config, state.config.url_ttl, nil
  if cfg.stale_listings > 0 then
    cfg.stale_listings, ttl, shown = cfg.stale_listings - 1, -60, -60
  elseif cfg.expired_listings > 0 then
    cfg.expired_listings, ttl, shown = cfg.expired_listings - 1, -60, cfg.url_ttl
  end
  local out = json.array({})
  for i, output in ipairs(list) do
    local key = state.blob_of[output.id]
    if key then
      output = json.copy(output)
      local url, expires = storage.url("/_blob/" .. key, ttl)
      output.data.ref = url
      output.expires_at = util.iso_time(expires - ttl + (shown or ttl))
    end
    out[i] = output
  end
  return out
end

-- GET /_blob/<key>: the blob's bytes, streamed.
local function get_blob(_, key)
  local b = state.blobs[key]
  if not b then return s3_error(404, "NoSuchKey", "The specified key does not exist.") end
  return { status = 200, headers = { ["Content-Type"] = "application/octet-stream" },
    stream = { length = b.size, range = blob.maker(key) } }
end

-- ------------------------------------------------------------------ parts (uploads)

-- PUT /_storage/<upload_id>/<n>: reads the part's bytes (keeping the first few, and
-- their CRC-32C when the upload has integrity on), checks their count and answers its
-- ETag. The toggle corrupt_next_part spoils the CRC of the next part received, as if
-- its bytes had changed on the way.
local function put_part(req, upload_id, n)
  local upload = state.uploads[upload_id]
  local part = upload and upload.parts[tonumber(n) + 1]
  if not part or upload.status ~= "open" then
    return s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
  end
  local head, crc = {}, upload.algorithm == "crc32c" and 0 or nil
  while true do
    local piece, err = req.reader()
    if not piece then
      if err then return nil end -- the connection broke: nothing to answer
      break
    end
    if #head < HEAD_KEEP then head[#head + 1] = piece:sub(1, HEAD_KEEP) end
    if crc then crc = crc32c.update(crc, piece) end
    state.stats.storage.bytes_in = state.stats.storage.bytes_in + #piece
  end
  if req.bytes ~= part.length then
    return s3_error(400, "IncompleteBody", ("got %d bytes, the part has %d"):format(req.bytes, part.length))
  end
  if crc and state.config.corrupt_next_part then
    state.config.corrupt_next_part, crc = false, crc ~ 1
  end
  part.etag = '"' .. util.random_alnum(16) .. '"'
  part.crc = crc
  part.head = table.concat(head):sub(1, HEAD_KEEP)
  part.puts = (part.puts or 0) + 1
  return { status = 200, headers = { ETag = part.etag }, body = "" }
end

-- ------------------------------------------------------------------ serving

local ROUTES = {
  { "GET", "^/_blob/([^/?]+)$", get_blob, "get" },
  { "PUT", "^/_storage/([^/]+)/(%d+)$", put_part, "put" },
}

-- "put", "get" or nil: which storage request this is (for the in-flight counters).
function storage.kind(req)
  for _, route in ipairs(ROUTES) do
    if req.method == route[1] and req.path:find(route[2]) then return route[4] end
  end
  return nil
end

-- Whether the request's body is streamed to a handler (not read whole first).
function storage.streams(req)
  return req.method == "PUT" and req.path:sub(1, 10) == "/_storage/"
end

-- Counts a storage request in flight (`delta` +1 when it starts, -1 when answered).
function storage.count(kind, delta)
  local s = state.stats.storage
  local field = "inflight_" .. kind
  s[field] = s[field] + delta
  if s[field] > s["max_" .. kind] then s["max_" .. kind] = s[field] end
  if delta > 0 then s[kind .. "s"] = s[kind .. "s"] + 1 end
end

-- The response to a storage request (a path under /_blob/ or /_storage/).
function storage.serve(req)
  for _, route in ipairs(ROUTES) do
    local caps = { req.path:match(route[2]) }
    if caps[1] and req.method == route[1] then
      local refused = check_signature(req)
      if refused then return refused end
      return route[3](req, table.unpack(caps))
    end
  end
  return s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
end

-- Whether a path belongs to the storage host.
function storage.owns(path)
  return path:sub(1, 7) == "/_blob/" or path:sub(1, 10) == "/_storage/"
end

-- The counters of a fresh stats table.
function storage.new_stats()
  return json.object({ puts = 0, gets = 0, inflight_put = 0, inflight_get = 0, max_put = 0, max_get = 0,
    bytes_in = 0 }, { "puts", "gets", "max_put", "max_get", "inflight_put", "inflight_get", "bytes_in" })
end

return storage

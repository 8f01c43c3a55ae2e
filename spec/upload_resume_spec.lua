-- spec/upload_resume_spec.lua: big uploads that survive (issue 15): part URLs
-- refreshed before they expire and after a 403, resumable uploads
-- (checkpoints, a client killed with SIGKILL and resumed in a new process),
-- the CRC-32C integrity check, the simple-route rules, upload_base64.
-- Expiry runs on the fake server's clock with lifetimes under a second;
-- route tests use sparse files and stop after initiate.
local core = require("atai.core")
local cjson = require("cjson")
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")
local util = require("spec.support.util")

local MB = helpers.MB
local KB = 1024

-- The 4 big-endian bytes of a CRC in base64 (integrity_checksum).
local function checksum_of(text)
  local crc = core.crc32c(text)
  return core.base64(string.char(math.floor(crc / 16777216) % 256, math.floor(crc / 65536) % 256,
    math.floor(crc / 256) % 256, crc % 256))
end

describe("big uploads", function()
  local t = fake_api({ max_retries = 2 })
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.remove(dir) end)

  -- A file of `n` bytes that differ from part to part; returns its path and text.
  local function file(name, n)
    local chunks, i = {}, 0
    while #chunks * 64 < n do
      chunks[#chunks + 1] = ("%063d\n"):format(i * 7919 % 1000003)
      i = i + 1
    end
    local text = table.concat(chunks):sub(1, n)
    helpers.write(dir .. "/" .. name, text)
    return dir .. "/" .. name, text
  end

  local function the_upload()
    local id, upload = next(t.srv:stats().uploads)
    return upload, id
  end

  -- The decoded bodies of the POSTs to .../uploads/<id>/<what>.
  local function bodies(what)
    local out = {}
    for _, r in ipairs(helpers.requests(t.srv, "/v0.5/files/uploads/", "POST")) do
      if r.path:sub(-#what - 1) == "/" .. what then out[#out + 1] = r.body end
    end
    return out
  end

  local function puts() return #helpers.requests(t.srv, "/_storage/", "PUT") end

  -- How many POST /files (the simple route) reached the server.
  local function simple_posts()
    local n = 0
    for _, r in ipairs(t.srv:requests()) do
      if r.method == "POST" and r.path == "/v0.5/files" then n = n + 1 end
    end
    return n
  end

  describe("CRC-32C and base64 in C", function()
    it("crc32c: the check value, chaining, combine, file ranges; base64 with padding", function()
      assert.are.equal(0xe3069283, core.crc32c("123456789"))
      assert.are.equal(0, core.crc32c(""))
      local a, b = ("ab"):rep(1000), ("xyz"):rep(3333)
      assert.are.equal(core.crc32c(a .. b), core.crc32c(b, core.crc32c(a)))
      assert.are.equal(core.crc32c(a .. b), core.crc32c_combine(core.crc32c(a), core.crc32c(b), #b))
      for n = 0, 40 do -- every alignment and tail of the 8-byte loops
        local s = ("0123456789abcdefghij"):rep(3):sub(1, n)
        local slow = 0
        for i = 1, n do slow = core.crc32c(s:sub(i, i), slow) end
        assert.are.equal(slow, core.crc32c(s))
      end
      local path = dir .. "/f"
      helpers.write(path, a .. b)
      assert.are.equal(core.crc32c(b), core.crc32c_file(path, #a, #b))
      local none, why = core.crc32c_file(path, 0, #a + #b + 1)
      assert.is_nil(none)
      assert.matches("ended early", why)
      assert.is_nil((core.crc32c_file(dir .. "/missing", 0, 1)))
      assert.are.same({ "", "YQ==", "YWI=", "YWJj", "AQIDBA==" },
        { core.base64(""), core.base64("a"), core.base64("ab"), core.base64("abc"), core.base64("\1\2\3\4") })
      assert.has_error(function() core.crc32c("x", -1) end)
    end)
  end)

  describe("refreshed part URLs", function()
    it("URLs that expire while the upload runs are refreshed (before the PUT, or after a 403); it completes", function()
      t.srv:config { part_size = 16 * KB, url_ttl = 0.3 }
      local responses = {}
      for i = 1, 6 do responses[i] = { delay = 0.12, pass = true } end
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = responses }
      local path, text = file("exp.csv", 96 * KB) -- 6 parts
      local rates = {}
      local r = assert(t.client:upload_file(path, { multipart_threshold = 1, concurrency = 1, refresh_margin = 0.1,
        on_progress = function(p) rates[#rates + 1] = p.bytes_per_second end }))
      assert.are.equal("multipart", r.route)
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      assert.is_true(upload.refreshes >= 3, "refreshes: " .. upload.refreshes)
      assert.are.equal(checksum_of(text), upload.checksum)
      local moving = false
      for _, v in ipairs(rates) do moving = moving or v > 0 end
      assert.is_true(moving, "bytes_per_second stayed 0")
    end)

    it("a lifetime shorter than the margin refreshes each part once, batched, and never spins", function()
      t.srv:config { part_size = 16 * KB, url_ttl = 1 }
      local path = file("short.csv", 128 * KB) -- 8 parts, refresh_margin 300 s by default
      assert(t.client:upload_file(path, { multipart_threshold = 1, concurrency = 4 }))
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      assert.are.equal(8, upload.refreshes)
      for _, part in ipairs(upload.parts) do assert.are.equal(1, part.refreshes) end
      assert.are.equal(2, upload.url_calls) -- 4 part numbers a call: the parts about to go
      local first = cjson.decode(bodies("urls")[1])
      assert.are.same({ 0, 1, 2, 3 }, first.part_numbers)
      assert.are.equal(8, puts())
    end)

    it("a 403, or a 400 saying the URL expired, refreshes that part and sends it once more", function()
      t.srv:config { part_size = 16 * KB }
      local expired = '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>'
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = {
        { status = 403, body = expired }, { status = 400, body = expired } } }
      local path, text = file("r403.csv", 48 * KB) -- 3 parts
      assert(t.client:upload_file(path, { multipart_threshold = 1, concurrency = 1 }))
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      assert.are.equal(2, upload.url_calls)
      assert.are.equal(5, puts())
      assert.are.equal(checksum_of(text), upload.checksum)
    end)

    it("a part refused again after its refresh fails the upload (permission) and aborts it", function()
      t.srv:config { part_size = 16 * KB }
      local denied = {}
      for i = 1, 6 do denied[i] = { status = 403 } end
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = denied }
      local r, err = t.client:upload_file((file("deny.csv", 48 * KB)), { multipart_threshold = 1, concurrency = 1 })
      assert.is_nil(r)
      assert.are.equal("permission", err.kind)
      local upload = the_upload()
      assert.are.equal("aborted", upload.status)
      assert.are.equal(3, upload.url_calls) -- parts 0, 1, 2 refreshed once each; part 0 refused again
      assert.are.equal(4, puts())
    end)

    it("a 400 that is not about expiry is not refreshed", function()
      t.srv:config { part_size = 16 * KB }
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { status = 400, body = "<Error>BadDigest</Error>" } } }
      local r, err = t.client:upload_file((file("bad.csv", 32 * KB)), { multipart_threshold = 1, concurrency = 1 })
      assert.is_nil(r)
      assert.are.equal(400, err.status)
      assert.are.equal(0, the_upload().url_calls)
    end)

    it("a refresh answered with the wrong shape is a decode error", function()
      t.srv:config { part_size = 16 * KB, url_ttl = 0.2 }
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true },
        { json = { parts = {} } } } }
      local r, err = t.client:upload_file((file("shape.csv", 32 * KB)), { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("decode", err.kind)
      assert.matches("parts/urls", err.message)
    end)
  end)

  describe("integrity", function()
    it("sends integrity_checksum (CRC-32C, base64 of 4 big-endian bytes) when initiate names crc32c", function()
      t.srv:config { part_size = 16 * KB }
      local path, text = file("crc.csv", 100 * KB + 7)
      assert(t.client:upload_file(path, { multipart_threshold = 1 }))
      local body = cjson.decode(bodies("complete")[1])
      assert.are.equal(checksum_of(text), body.integrity_checksum)
      assert.are.equal(8, #body.integrity_checksum)
      assert.are.equal("completed", the_upload().status)
      t.srv:reset()
      t.srv:config { part_size = 16 * KB }
      assert(t.client:upload_data("mem.csv", text, { multipart_threshold = 1 }))
      assert.are.equal(checksum_of(text), cjson.decode(bodies("complete")[1]).integrity_checksum)
    end)

    it("sends none when the algorithm is none (or unknown)", function()
      t.srv:config { part_size = 16 * KB, integrity_algorithm = "none" }
      assert(t.client:upload_file((file("n.csv", 40 * KB)), { multipart_threshold = 1 }))
      assert.is_nil(cjson.decode(bodies("complete")[1]).integrity_checksum)
      t.srv:reset()
      t.srv:config { part_size = 16 * KB, integrity_algorithm = "sha256" }
      assert(t.client:upload_file((file("n.csv", 40 * KB)), { multipart_threshold = 1 }))
      assert.is_nil(cjson.decode(bodies("complete")[1]).integrity_checksum)
    end)

    it("a corrupted part ends in kind integrity (the server's 400 integrity_mismatch, the file Corrupt)", function()
      t.srv:config { part_size = 16 * KB, corrupt_next_part = true }
      local r, err = t.client:upload_file((file("bad.csv", 64 * KB)), { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("integrity", err.kind)
      assert.are.equal("integrity_mismatch", err.code)
      assert.are.equal("Corrupt", t.srv:stats().files["bad.csv"].file_status)
    end)

    it("a reply to complete with file_status Corrupt is kind integrity too", function()
      t.srv:config { part_size = 16 * KB }
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true },
        { json = { file_uid = "fil_1", file_name = "c.csv", file_status = "Corrupt", num_bytes = 1 } } } }
      local r, err = t.client:upload_file((file("c.csv", 32 * KB)), { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("integrity", err.kind)
    end)
  end)

  describe("resumable uploads", function()
    it("initiates with resume_if_started, checkpoints in batches, completes with the rest ([] when all were)", function()
      t.srv:config { part_size = 16 * KB }
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true },
        { delay = 0.6, pass = true } } } -- the first checkpoint takes its time: the others batch up
      local ids = {}
      local path, text = file("res.csv", 96 * KB) -- 6 parts
      local r = assert(t.client:upload_file(path, { resume = true, concurrency = 2,
        on_progress = function(p) ids[#ids + 1] = p.upload_id end }))
      assert.are.equal("multipart", r.route) -- resume forces the multipart route
      assert.is_nil(r.is_resume)
      assert.are.equal(r.upload_id, ids[1])
      assert.is_true(cjson.decode(bodies("initiate")[1]).resume_if_started)
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      assert.are.equal(2, upload.checkpoint_calls)
      for _, part in ipairs(upload.parts) do assert.is_true(part.checkpointed) end
      local complete = bodies("complete")[1]
      assert.matches('"parts":%[%]', complete)
      assert.are.equal(checksum_of(text), cjson.decode(complete).integrity_checksum)
    end)

    it("completes with the parts whose checkpoint failed, and only those", function()
      t.srv:config { part_size = 16 * KB }
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true },
        { status = 400 } } }
      assert(t.client:upload_file((file("half.csv", 64 * KB)), { resume = true, concurrency = 1 }))
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      local listed = cjson.decode(bodies("complete")[1]).parts
      assert.are.equal(1, #listed)
      assert.are.equal(0, listed[1].part_number)
      assert.is_false(upload.parts[1].checkpointed)
    end)

    it("a part's checkpoint goes when the call in flight answers, not when the next part is done", function()
      t.srv:config { part_size = 16 * KB }
      -- part 0's checkpoint answers after part 1 is done; part 2 then takes 1 s:
      -- part 1's checkpoint must not wait for it (a Ctrl-C there would lose it)
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true },
        { delay = 0.3, pass = true } } }
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { pass = true }, { pass = true },
        { delay = 1, pass = true } } }
      local seen = false -- part 1 checkpointed while part 2 was on its way
      local path = file("early.csv", 64 * KB) -- 4 parts
      assert(t.client:upload_file(path, { resume = true, concurrency = 1, on_progress = function()
        local upload = the_upload()
        seen = seen or (upload and upload.parts[2].checkpointed and not upload.parts[3].checkpointed) or false
      end }))
      assert.is_true(seen)
      assert.are.equal("completed", the_upload().status)
    end)

    it("a failed resumable upload is kept (no abort): err.upload_id, err.resumable; resuming sends only what is left", function()
      t.srv:config { part_size = 16 * KB }
      local fails = {}
      for i = 1, 3 do fails[i] = { status = 500 } end
      local path, text = file("keep.csv", 96 * KB) -- 6 parts
      t.srv:fault { method = "PUT", path = nil, path_prefix = "/_storage/", responses = { { pass = true }, { pass = true },
        fails[1], fails[2], fails[3] } }
      local r, err = t.client:upload_file(path, { resume = true, concurrency = 1 })
      assert.is_nil(r)
      assert.are.equal("server", err.kind)
      assert.is_true(err.resumable)
      local upload, id = the_upload()
      assert.are.equal(id, err.upload_id)
      assert.are.equal("open", upload.status)
      assert.are.equal(0, #bodies("abort"))
      local before = puts()
      r = assert(t.client:upload_file(path, { resume = true, concurrency = 1 }))
      assert.is_true(r.is_resume)
      assert.are.equal(id, r.upload_id)
      assert.are.equal(4, puts() - before) -- parts 2..5: 0 and 1 were checkpointed (the failure flushed them)
      upload = t.srv:stats().uploads[id]
      assert.are.equal("completed", upload.status)
      assert.are.equal(checksum_of(text), upload.checksum)
    end)

    it("a client killed with SIGKILL after some parts resumes in a new process: only the rest is sent", function()
      t.srv:config { part_size = 16 * KB, kill_after_checkpoints = 3 }
      local slow = {}
      for i = 1, 8 do slow[i] = { delay = 0.1, pass = true } end -- each checkpoint answered before the next part
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = slow }
      local path, text = file("killed.csv", 128 * KB) -- 8 parts
      local child = ([[
local atai = require("atai")
local http, ltn12 = require("socket.http"), require("ltn12")
local pid = io.open("/proc/self/stat"):read("*l"):match("^(%%d+)")
local body = '{"kill_pid": ' .. pid .. '}'
assert(http.request { url = %q, method = "POST", source = ltn12.source.string(body),
  headers = { ["content-type"] = "application/json", ["content-length"] = #body } })
local c = atai.new { endpoint = %q, api_key = %q }
local r, err = c:upload_file(%q, { resume = true, concurrency = 1 })
print("ended", r and r.route, err)
]]):format(t.srv:url("/_fake/config"), t.srv.endpoint, t.srv.key, path)
      local out, ok = util.run_lua(child)
      assert.is_false(ok, out)
      assert.is_nil(out:find("ended", 1, true), out)
      local upload, id = the_upload()
      assert.are.equal("open", upload.status)
      local kept, first, sent_before, was_kept = 0, puts(), {}, {}
      for n, part in ipairs(upload.parts) do
        if part.checkpointed then kept = kept + 1 end
        sent_before[n], was_kept[n] = part.puts, part.checkpointed
      end
      assert.is_true(kept >= 3 and kept < 8, "checkpointed: " .. kept)
      local resume = ([[
local atai = require("atai")
local c = atai.new { endpoint = %q, api_key = %q }
local r, err = c:upload_file(%q, { resume = true })
print(r and ("done %%s %%s %%s"):format(r.upload_id, tostring(r.is_resume), r.route) or tostring(err))
]]):format(t.srv.endpoint, t.srv.key, path)
      out, ok = util.run_lua(resume)
      assert.is_true(ok, out)
      assert.are.equal(("done %s true multipart\n"):format(id), out)
      -- Every part not checkpointed is sent again and no checkpointed one is
      -- (by the server's count per part); a part of the resumed run may be
      -- retried like any transient failure, so the total is a floor.
      upload = t.srv:stats().uploads[id]
      for n, part in ipairs(upload.parts) do
        if was_kept[n] then
          assert.are.equal(sent_before[n], part.puts, "checkpointed part " .. part.part_number .. " was sent again")
        else
          assert.is_true(part.puts > sent_before[n], "part " .. part.part_number .. " was not sent")
        end
      end
      assert.is_true(puts() - first >= 8 - kept, "resumed PUTs: " .. (puts() - first) .. ", parts left: " .. (8 - kept))
      assert.are.equal("completed", upload.status)
      assert.are.equal(checksum_of(text), upload.checksum)
      assert.are.equal("Registered", t.srv:stats().files["killed.csv"].file_status)
    end)

    it("the async form and atai.run resume too", function()
      t.srv:config { part_size = 16 * KB }
      local path = file("async.csv", 48 * KB)
      local r = assert(t.client.async:upload_file(path, { resume = true }):wait(10))
      assert.are.equal("completed", t.srv:stats().uploads[r.upload_id].status)
      assert.matches('"parts":%[%]', bodies("complete")[1])
      local ran = require("atai").run(function()
        return t.client:upload_file(path, { resume = true, name = "again.csv" })
      end)
      local again = assert(ran:wait(10))
      assert.are.equal("multipart", again.route)
      assert.are.equal(2, #bodies("complete"))
    end)

    it("upload_data refuses opts.resume (an argument error)", function()
      assert.has_error(function() t.client:upload_data("x.csv", "abc", { resume = true }) end)
      assert.has_error(function() t.client:upload_file(dir .. "/x", { resume = "yes" }) end)
      assert.has_error(function() t.client:upload_file(dir .. "/x", { refresh_margin = -1 }) end)
      assert.are.equal(0, #t.srv:requests())
    end)
  end)

  describe("routes", function()
    it("JSONL goes by parts whatever its size (extension or MIME type); its default type is application/x-ndjson", function()
      helpers.write(dir .. "/rows.jsonl", '{"a":1}\n')
      local r = assert(t.client:upload_file(dir .. "/rows.jsonl"))
      assert.are.equal("multipart", r.route)
      assert.are.equal("application/x-ndjson", cjson.decode(bodies("initiate")[1]).file_type)
      assert.are.equal("multipart", assert(t.client:upload_data("rows.ndjson", '{"a":1}\n')).route)
      assert.are.equal("multipart", assert(t.client:upload_data("rows.txt", '{"a":1}\n',
        { file_type = "application/jsonl" })).route)
      assert.are.equal(0, simple_posts())
    end)

    it("a file of 512,000,000 bytes goes by parts whatever multipart_threshold says (sparse; stops after initiate)", function()
      local path = dir .. "/huge.csv"
      assert(util.sh("truncate -s 512000000 '" .. path .. "'"))
      t.srv:fault { method = "POST", path = "/v0.5/files/uploads/initiate", responses = { { status = 400 } } }
      local r, err = t.client:upload_file(path, { multipart_threshold = 2 ^ 40 })
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal(512000000, cjson.decode(bodies("initiate")[1]).num_bytes)
      assert.are.equal(0, simple_posts())
    end)

    it("a file just under 512,000,000 bytes, under multipart_threshold, takes the simple route (sparse; refused at once)", function()
      local path = dir .. "/under.csv"
      assert(util.sh("truncate -s 511999999 '" .. path .. "'"))
      t.srv:fault { method = "POST", path = "/v0.5/files", responses = { { status = 400 } } }
      local r, err = t.client:upload_file(path, { multipart_threshold = 2 ^ 40 })
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal(1, simple_posts())
      assert.are.equal(0, #bodies("initiate"))
    end)
  end)

  describe("upload_base64", function()
    it("sends the file in base64 as the form's file part of POST /files/base64 (route base64)", function()
      for _, n in ipairs({ 0, 1, 2, 3, 1000, 70001 }) do
        local bytes = {}
        for i = 1, n do bytes[i] = string.char((i * 37) % 256) end
        local text = table.concat(bytes)
        helpers.write(dir .. "/b.bin", text)
        local r = assert(t.client:upload_base64("b.csv", dir .. "/b.bin"))
        assert.are.equal("base64", r.route)
        assert.are.equal("b.csv", r.file_id)
        local stored = t.srv:stats().files["b.csv"]
        assert.are.equal(n, stored.num_bytes)
        assert.are.equal(text, stored.content)
        assert.are.equal("text/csv", stored.file_type)
      end
      assert.are.equal(0, simple_posts())
    end)

    it("refuses an encoding over 512,000,000 bytes before any request (too_large, advising upload_file)", function()
      local path = dir .. "/big.bin"
      assert(util.sh("truncate -s 384000001 '" .. path .. "'"))
      local r, err = t.client:upload_base64("big.csv", path)
      assert.is_nil(r)
      assert.are.equal("too_large", err.kind)
      assert.matches("upload_file", err.message)
      local h = t.client.async:upload_base64("big.csv", path)
      assert.are.equal("too_large", select(2, h:wait(5)).kind)
      assert.are.equal(0, #t.srv:requests())
    end)

    it("raises on bad arguments before any I/O", function()
      assert.has_error(function() t.client:upload_base64(nil, dir .. "/x") end)
      assert.has_error(function() t.client:upload_base64("a/b", dir .. "/x") end)
      assert.has_error(function() t.client:upload_base64("a.csv", "") end)
      assert.has_error(function() t.client:upload_base64("a.csv", dir .. "/x", { multipart_threshold = 1 }) end)
      assert.are.equal(0, #t.srv:requests())
    end)

    it(("streams: a %d MiB file keeps peak RSS growth under 16 MiB"):format(math.min(helpers.BIG_MB, 64)), function()
      local mb = math.min(helpers.BIG_MB, 64)
      local path = dir .. "/big.csv"
      helpers.make_big(path, mb)
      t.srv:config { max_upload_bytes = (mb + 1) * MB }
      local seen = 0
      local r, err, growth = helpers.peak_growth(function()
        return t.client:upload_base64("big.csv", path, { on_progress = function(p) seen = p.bytes_done end })
      end)
      assert.is_table(r, tostring(err))
      assert.are.equal(mb * MB, seen)
      local stored = t.srv:stats().files["big.csv"]
      assert.are.equal(mb * MB, stored.num_bytes)
      assert.are.equal(("%016d"):format(0), stored.head:sub(1, 16))
      if growth then
        print(("\n[upload_resume_spec] %d MiB upload_base64: peak RSS growth %d KiB"):format(mb, growth))
        assert.is_true(growth < 16 * 1024, ("peak RSS grew by %d KiB"):format(growth))
      end
    end)
  end)
end)

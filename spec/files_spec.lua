-- spec/files_spec.lua: uploads (POST /files and the multipart flow) and the
-- file endpoints, against the fake API: what reaches the server (forms,
-- parts and their offsets, ETags, abort), presigned hygiene (no key),
-- concurrency from the server's counters, retries, cancel, errors, and the
-- peak memory of a 200 MiB upload.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")

local MB = helpers.MB

describe("uploads", function()
  local t = fake_api({ max_retries = 2 })
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.remove(dir) end)

  -- A CSV of `n` numbered lines in the test folder; returns its path and text.
  local function csv(name, n)
    local lines = {}
    for i = 1, n do lines[i] = ("%08d,some value\n"):format(i) end
    local text = table.concat(lines)
    helpers.write(dir .. "/" .. name, text)
    return dir .. "/" .. name, text
  end

  -- The fake server's multipart upload (there is one per test).
  local function the_upload()
    local id, upload = next(t.srv:stats().uploads)
    return upload, id
  end

  -- Makes every upload of `bytes` bytes or more go by parts of `part` bytes.
  local function multipart(part) t.srv:config { part_size = part } end

  describe("upload_file by POST /files", function()
    it("streams the file as the form's 'file' field and returns file_id, file_uid, num_bytes", function()
      local path, text = csv("data.csv", 100)
      local r = assert(t.client:upload_file(path))
      assert.are.equal("data.csv", r.file_id)
      assert.is_string(r.file_uid)
      assert.are.equal(#text, r.num_bytes)
      assert.are.equal("simple", r.route)
      assert.is_true(r.is_valid)
      local stored = t.srv:stats().files["data.csv"]
      assert.are.equal(text, stored.content)
      assert.are.equal("text/csv", stored.file_type)
      local posts = helpers.requests(t.srv, "/v0.5/files", "POST")
      assert.are.equal(1, #posts)
      assert.are.equal("ok", posts[1].auth)
      assert.is_truthy(posts[1].headers["content-type"]:find("^multipart/form%-data; boundary="))
      assert.is_true(posts[1].bytes > #text)
    end)

    it("takes opts.name and opts.file_type; the type defaults from the extension", function()
      local path = csv("data.csv", 3)
      assert(t.client:upload_file(path, { name = "renamed.txt", file_type = "text/plain" }))
      assert.are.equal("text/plain", t.srv:stats().files["renamed.txt"].file_type)
      helpers.write(dir .. "/doc.json", '{"a":1}')
      assert(t.client:upload_file(dir .. "/doc.json"))
      assert.are.equal("application/json", t.srv:stats().files["doc.json"].file_type)
    end)

    it("an unknown extension is application/octet-stream, which the API refuses (invalid_file_type)", function()
      helpers.write(dir .. "/blob.bin", "\0\1\2")
      local r, err = t.client:upload_file(dir .. "/blob.bin")
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal("invalid_file_type", err.code)
    end)

    it("a file over the API's limit is a too_large error (invalid_file_size)", function()
      t.srv:config { max_upload_bytes = 100 }
      local r, err = t.client:upload_file((csv("big.csv", 20)))
      assert.is_nil(r)
      assert.are.equal("too_large", err.kind)
      assert.are.equal("invalid_file_size", err.code)
    end)

    it("reports progress in one shape: bytes_done, bytes_total, files_done, files_total, bytes_per_second", function()
      local path, text = csv("p.csv", 1000)
      local seen = {}
      assert(t.client:upload_file(path, { on_progress = function(p) seen[#seen + 1] = p end }))
      assert.is_true(#seen >= 1)
      local last = seen[#seen]
      assert.is_number(last.bytes_per_second)
      assert.is_true(last.bytes_per_second >= 0)
      last.bytes_per_second = nil
      assert.are.same({ bytes_done = #text, bytes_total = #text, files_done = 1, files_total = 1 }, last)
      for _, p in ipairs(seen) do assert.is_true(p.bytes_done <= p.bytes_total) end
    end)

    it("upload_data sends a string as a named file", function()
      local r = assert(t.client:upload_data("inline.csv", "a,b\n1,2\n"))
      assert.are.equal("inline.csv", r.file_id)
      assert.are.equal("a,b\n1,2\n", t.srv:stats().files["inline.csv"].content)
    end)

    it("a server error on POST /files is retried (same-name uploads overwrite)", function()
      t.srv:fault { method = "POST", path = "/v0.5/files", responses = { { status = 503 } } }
      local r = assert(t.client:upload_file((csv("r.csv", 10))))
      assert.are.equal("r.csv", r.file_id)
      assert.are.equal(2, #helpers.requests(t.srv, "/v0.5/files", "POST"))
    end)
  end)

  describe("the multipart flow", function()
    it("initiates, PUTs every part at its offset without the key, completes with the ETags", function()
      multipart(64 * 1024)
      local path, text = csv("mp.csv", 19000) -- 380,000 bytes: 6 parts
      local r = assert(t.client:upload_file(path, { multipart_threshold = 1 }))
      assert.are.equal("multipart", r.route)
      assert.are.equal("mp.csv", r.file_id)
      assert.are.equal("mp.csv", r.file_name)
      assert.are.equal(#text, r.num_bytes)
      assert.are.equal("Registered", r.file_status)
      assert.matches("^upl_", r.upload_id)
      local upload = the_upload()
      assert.are.equal("completed", upload.status)
      assert.are.equal(6, #upload.parts)
      for _, part in ipairs(upload.parts) do
        assert.is_true(part.uploaded)
        assert.are.equal(text:sub(part.offset + 1, part.offset + 32), part.head)
      end
      for _, r2 in ipairs(helpers.requests(t.srv, "/_storage/")) do
        assert.are.equal("missing", r2.auth)
        assert.are.equal("PUT", r2.method)
      end
      local complete = helpers.requests(t.srv, "/v0.5/files/uploads/", "POST")
      assert.are.equal(2, #complete) -- initiate, complete
      local body = require("cjson").decode(complete[2].body)
      assert.are.equal(6, #body.parts)
      assert.are.equal(0, body.parts[1].part_number) -- numbered from 0, as the server numbers them
      assert.matches('^"[%w]+"$', body.parts[1].part_token) -- the ETag byte for byte, quotes kept
    end)

    it("sends parts concurrently (opts.concurrency, the server's in-flight counter)", function()
      multipart(16 * 1024)
      local responses = {}
      for i = 1, 8 do responses[i] = { delay = 0.2, pass = true } end
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = responses }
      assert(t.client:upload_file((csv("c.csv", 6000)), { multipart_threshold = 1, concurrency = 4 }))
      local stats = t.srv:stats().storage
      assert.are.equal(4, stats.max_put)
      t.srv:reset()
      multipart(16 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = responses }
      assert(t.client:upload_file((csv("c.csv", 6000)), { multipart_threshold = 1, concurrency = 1 }))
      assert.are.equal(1, t.srv:stats().storage.max_put)
    end)

    it("retries a part that failed with a transient error, and only that part", function()
      multipart(32 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { status = 503 }, { close = true } } }
      local path = csv("retry.csv", 5000)
      assert(t.client:upload_file(path, { multipart_threshold = 1 }))
      local upload = the_upload()
      local total = 0
      for _, part in ipairs(upload.parts) do total = total + part.puts end
      assert.are.equal("completed", upload.status)
      assert.are.equal(#upload.parts, total - 0) -- the failed attempts got no ETag
      assert.are.equal(#upload.parts + 2, #helpers.requests(t.srv, "/_storage/", "PUT"))
    end)

    it("aborts when a part keeps failing: nil, err and POST .../abort, no complete", function()
      multipart(32 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { status = 500 }, { status = 500 }, { status = 500 } } }
      local r, err = t.client:upload_file((csv("fail.csv", 5000)), { multipart_threshold = 1, concurrency = 1 })
      assert.is_nil(r)
      assert.are.equal("server", err.kind)
      local upload, id = the_upload()
      assert.are.equal("aborted", upload.status)
      assert.are.equal(1, #helpers.requests(t.srv, "/v0.5/files/uploads/" .. id .. "/abort", "POST"))
      assert.are.equal(0, #helpers.requests(t.srv, "/v0.5/files/uploads/" .. id .. "/complete"))
    end)

    it("aborts when the storage keeps refusing a part (403 after its one refresh)", function()
      multipart(32 * 1024)
      t.srv:config { url_ttl = -10 }
      local r, err = t.client:upload_file((csv("late.csv", 5000)), { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("permission", err.kind)
      assert.are.equal(403, err.status)
      assert.are.equal("aborted", the_upload().status)
    end)

    it("aborts when complete fails", function()
      multipart(32 * 1024)
      t.srv:fault { method = "POST", path_prefix = "/v0.5/files/uploads/", responses = { { pass = true }, { status = 400 } } }
      local r, err = t.client:upload_file((csv("nc.csv", 5000)), { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal("aborted", the_upload().status)
    end)

    it("refuses a plan that does not cover the file, or a part URL that is not https (decode), and aborts", function()
      local plans = {
        { { part_number = 1, url = "https://storage.example.com/p1", offset = 0, length = 10 } },
        { { part_number = 1, url = "http://storage.example.com/p1", offset = 0, length = 9 } },
        { { part_number = 1, url = "https://user:pw@storage.example.com/p1", offset = 0, length = 9 } },
      }
      for _, parts in ipairs(plans) do
        t.srv:reset()
        t.srv:fault { method = "POST", path = "/v0.5/files/uploads/initiate",
          responses = { { json = { upload_id = "upl_fake1", file_uid = "fil_1", strategy = "multipart", parts = parts } } } }
        local r, err = t.client:upload_data("x.csv", "123456789", { multipart_threshold = 1 })
        assert.is_nil(r)
        assert.are.equal("decode", err.kind)
        assert.are.equal(1, #helpers.requests(t.srv, "/v0.5/files/uploads/upl_fake1/abort", "POST"))
        assert.are.equal(0, #helpers.requests(t.srv, "/_storage/"))
      end
    end)

    it("a reply without an upload_id fit for a path is a decode error", function()
      t.srv:fault { method = "POST", path = "/v0.5/files/uploads/initiate", responses = { { json = { upload_id = "../x" } } } }
      local r, err = t.client:upload_data("x.csv", "123", { multipart_threshold = 1 })
      assert.is_nil(r)
      assert.are.equal("decode", err.kind)
    end)

    it("a part answered without an ETag is a decode error, and aborts", function()
      multipart(32 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { status = 200, body = "" } } }
      local r, err = t.client:upload_file((csv("noetag.csv", 5000)), { multipart_threshold = 1, concurrency = 1 })
      assert.is_nil(r)
      assert.are.equal("decode", err.kind)
      assert.matches("ETag", err.message)
      assert.are.equal("aborted", the_upload().status)
    end)

    it("upload_data goes by parts too, from memory", function()
      multipart(16 * 1024)
      local text = ("0123456789abcdef"):rep(4096) -- 64 KiB: 4 parts
      local r = assert(t.client:upload_data("mem.csv", text, { multipart_threshold = 1 }))
      assert.are.equal("multipart", r.route)
      for _, part in ipairs(the_upload().parts) do
        assert.are.equal(text:sub(part.offset + 1, part.offset + 32), part.head)
      end
    end)

    it("a cancelled upload aborts: its handle is cancelled and POST .../abort goes out", function()
      multipart(16 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { delay = 5, pass = true } } }
      local h = t.client.async:upload_file((csv("cancel.csv", 5000)), { multipart_threshold = 1, concurrency = 1 })
      for _ = 1, 100 do
        if #helpers.requests(t.srv, "/_storage/") > 0 then break end
        t.client:poll(0.05)
      end
      h:cancel()
      local v, err = h:result()
      assert.is_nil(v)
      assert.are.equal("cancelled", err.kind)
      for _ = 1, 100 do
        if t.client:pending() == 0 then break end
        t.client:poll(0.05)
      end
      assert.are.equal("aborted", the_upload().status)
    end)

    it("closing the client ends an upload: cancelled (no abort can go out any more)", function()
      multipart(16 * 1024)
      t.srv:fault { method = "PUT", path_prefix = "/_storage/", responses = { { delay = 3, pass = true } } }
      local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
      local h = c.async:upload_data("z.csv", ("x"):rep(100000), { multipart_threshold = 1 })
      for _ = 1, 100 do
        if #helpers.requests(t.srv, "/_storage/") > 0 then break end
        c:poll(0.05)
      end
      c:close()
      assert.is_true(h:done())
      assert.are.equal("cancelled", select(2, h:result()).kind)
    end)

    it("an error raised by on_progress aborts the upload and reaches the caller", function()
      multipart(16 * 1024)
      local ok, err = pcall(t.client.upload_file, t.client, (csv("cb.csv", 5000)), {
        multipart_threshold = 1, concurrency = 1, on_progress = function() error("stop here") end })
      assert.is_false(ok)
      assert.matches("stop here", tostring(err))
      assert.are.equal("aborted", the_upload().status)
    end)

    it("inside atai.run the upload awaits, and other work goes on", function()
      multipart(16 * 1024)
      local path = csv("run.csv", 3000)
      local h = atai.run(function()
        local r, err = t.client:upload_file(path, { multipart_threshold = 1 })
        return r and r.route, err
      end)
      assert.are.equal("multipart", h:wait(10))
    end)
  end)

  describe("arguments and local files", function()
    it("raises on bad arguments before any I/O", function()
      local path = csv("a.csv", 1)
      local cases = {
        { function() t.client:upload_file(nil) end, "path: string expected" },
        { function() t.client:upload_file(path, { nope = 1 }) end, "unknown option 'nope'" },
        { function() t.client:upload_file(path, { name = "a/b.csv" }) end, "opts.name" },
        { function() t.client:upload_file(path, { concurrency = 0 }) end, "concurrency" },
        { function() t.client:upload_file(path, { on_progress = 1 }) end, "on_progress" },
        { function() t.client:upload_data("a.csv", 5) end, "data: string expected" },
        { function() t.client:upload_data(nil, "x") end, "name: string expected" },
        { function() t.client:upload_data("a.csv", "x", { name = "b.csv" }) end, "argument #1" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(case[1])
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find(case[2], 1, true), tostring(err))
        assert.is_truthy(tostring(err):find("files_spec.lua", 1, true), tostring(err))
      end
      assert.are.equal(0, #t.srv:requests())
    end)

    it("a file that cannot be read is an io error, returned (and in the async handle)", function()
      local r, err = t.client:upload_file(dir .. "/missing.csv")
      assert.is_nil(r)
      assert.are.equal("io", err.kind)
      r, err = t.client:upload_file(dir)
      assert.is_nil(r)
      assert.are.equal("io", err.kind)
      r, err = t.client.async:upload_file(dir .. "/missing.csv"):wait()
      assert.is_nil(r)
      assert.are.equal("io", err.kind)
      assert.are.equal(0, #t.srv:requests())
    end)

    it("a file that shrinks while it is read is an io error, not a hang", function()
      local path = csv("shrink.csv", 10)
      local h = require("atai.core.private").stream(t.client, { method = "PUT", presigned = true, url = t.srv:url("/_blob/x"),
        source = { path = path, offset = 0, length = 10000 } })
      local v, err = h:wait(10)
      assert.is_nil(v)
      assert.are.equal("io", err.kind)
      assert.is_false(err.retryable)
    end)
  end)

  describe("file endpoints", function()
    it("files_list, file_info, delete_file: bodies as decoded; ids percent-encoded as one segment", function()
      assert(t.client:upload_data("a b&c.csv", "x\n"))
      local list = assert(t.client:files_list())
      assert.are.equal("a b&c.csv", list.files[1].file_id)
      local info = assert(t.client:file_info("a b&c.csv"))
      assert.are.equal(2, info.num_bytes)
      local gets = helpers.requests(t.srv, "/v0.5/files/metadata/")
      assert.are.equal("/v0.5/files/metadata/a%20b%26c.csv", gets[1].path)
      assert.are.same({ file_id = "a b&c.csv", deleted = true }, assert(t.client:delete_file("a b&c.csv")))
      local r, err = t.client:file_info("a b&c.csv")
      assert.is_nil(r)
      assert.are.equal("not_found", err.kind)
    end)

    it("a file id with '/' stays one segment; empty, '.', '..' and NUL are refused", function()
      local r, err = t.client:file_info("../x/y")
      assert.is_nil(r)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("/v0.5/files/metadata/..%2Fx%2Fy", helpers.requests(t.srv, "/v0.5/files/")[1].path)
      for _, bad in ipairs({ "", ".", "..", "a\0b", 5 }) do
        local ok, e = pcall(t.client.delete_file, t.client, bad)
        assert.is_false(ok)
        assert.matches("file id", tostring(e))
      end
    end)

    it("download_file streams GET /files/download/{id} (with the key) to a file", function()
      assert(t.client:upload_data("d.csv", "1,2\n3,4\n"))
      assert.is_true(t.client:download_file("d.csv", dir .. "/copy.csv"))
      assert.are.equal("1,2\n3,4\n", helpers.read(dir .. "/copy.csv"))
      assert.are.equal("ok", helpers.requests(t.srv, "/v0.5/files/download/")[1].auth)
      local ok, err = t.client:download_file("nope.csv", dir .. "/nope.csv")
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.same({ "copy.csv" }, helpers.list(dir))
    end)

    it("every method has an async form and a module-level twin", function()
      for _, name in ipairs({ "upload_file", "upload_data", "files_list", "file_info", "delete_file",
          "download_file", "download", "download_outputs" }) do
        assert.is_function(t.client.async[name], name)
        assert.is_function(atai[name], name)
        assert.is_function(atai.async[name], name)
      end
      local h = t.client.async:upload_data("h.csv", "1\n")
      assert.are.equal("h.csv", h:wait(10).file_id)
      assert.are.equal(2, h:wait().num_bytes)
      assert.are.equal("h.csv", t.client.async:file_info("h.csv"):wait(10).file_id)
      assert.are.equal(1, t.client.async:files_list():wait(10).total)
      assert.is_true(t.client.async:delete_file("h.csv"):wait(10).deleted)
    end)
  end)

  describe("memory", function()
    it(("a %d MiB upload by parts keeps peak RSS growth under 32 MiB"):format(helpers.BIG_MB), function()
      local path = dir .. "/big.csv"
      helpers.make_big(path, helpers.BIG_MB)
      t.srv:config { part_size = math.max(1, math.floor(helpers.BIG_MB / 10)) * MB }
      local r, err, growth = helpers.peak_growth(function()
        return t.client:upload_file(path, { multipart_threshold = math.min(100, helpers.BIG_MB) * MB })
      end)
      assert.is_table(r, tostring(err))
      assert.are.equal("multipart", r.route)
      assert.are.equal(helpers.BIG_MB * MB, r.num_bytes)
      local upload = the_upload()
      for _, part in ipairs(upload.parts) do
        if part.offset % MB == 0 then assert.are.equal(("%016d"):format(part.offset), part.head:sub(1, 16)) end
      end
      assert.are.equal(helpers.BIG_MB * MB, t.srv:stats().storage.bytes_in)
      if growth then
        print(("\n[files_spec] %d MiB multipart upload: peak RSS growth %d KiB"):format(helpers.BIG_MB, growth))
        assert.is_true(growth < 32 * 1024, ("peak RSS grew by %d KiB"):format(growth))
      end
    end)

    it(("a %d MiB upload by POST /files streams too (far over the fake's 32 MiB body limit)"):format(helpers.BIG_MB), function()
      local path = dir .. "/big.csv"
      helpers.make_big(path, helpers.BIG_MB)
      t.srv:config { max_upload_bytes = (helpers.BIG_MB + 1) * MB }
      local r, err, growth = helpers.peak_growth(function()
        return t.client:upload_file(path, { multipart_threshold = (helpers.BIG_MB + 1) * MB })
      end)
      assert.is_table(r, tostring(err))
      assert.are.equal("simple", r.route)
      local stored = t.srv:stats().files["big.csv"]
      assert.are.equal(helpers.BIG_MB * MB, stored.num_bytes)
      assert.are.equal(("%016d"):format(0), stored.head:sub(1, 16))
      if growth then
        print(("[files_spec] %d MiB upload by POST /files: peak RSS growth %d KiB"):format(helpers.BIG_MB, growth))
        assert.is_true(growth < 32 * 1024, ("peak RSS grew by %d KiB"):format(growth))
      end
    end)
  end)
end)

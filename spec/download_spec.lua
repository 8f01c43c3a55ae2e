-- spec/download_spec.lua: download_outputs and download against the fake
-- API, whose outputs are served by its loopback "storage" behind presigned
-- URLs: contents, names (hostile ones stay inside dir), resume, expired
-- URLs refreshed, transfers cut short or stalled, size checks, concurrency
-- from the server's counters, presigned hygiene, cancel, and the peak
-- memory of a 200 MiB download.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")

local JOB = "job_2abc3def4ghi5jkl6mno7pqr"
local MB = helpers.MB

describe("downloads", function()
  local t = fake_api({ max_retries = 2 })
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.remove(dir) end)

  -- Makes the seed job's outputs these ({filename, num_bytes, size?, ...});
  -- returns them as the fake made them (ids included).
  local function outputs(list)
    return t.srv:control("POST", "/_fake/outputs", { job_id = JOB, outputs = list }).outputs
  end

  -- `n` answers held `delay` seconds for the blob GETs.
  local function slow_blobs(n, delay)
    local responses = {}
    for i = 1, n do responses[i] = { delay = delay, pass = true } end
    t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = responses }
  end

  local function blob_gets() return helpers.requests(t.srv, "/_blob/", "GET") end
  local function listings() return helpers.requests(t.srv, "/v0.5/batch/jobs/" .. JOB .. "/outputs", "GET") end

  describe("download_outputs", function()
    it("downloads every output into dir (made with its parents), each as its filename", function()
      local made = outputs { { filename = "a.csv", num_bytes = 1000 }, { filename = "b.csv", num_bytes = 70000 },
        { filename = "c.json", num_bytes = 0 } }
      local target = dir .. "/nested/out"
      local s = assert(t.client:download_outputs(JOB, target))
      assert.are.same({ downloaded = 3, skipped = 0, failed = {}, bytes = 71000 }, s)
      assert.are.same({ "a.csv", "b.csv", "c.json" }, helpers.list(target))
      for _, o in ipairs(made) do
        assert.are.equal(helpers.blob(o.id, o.data.num_bytes), helpers.read(target .. "/" .. o.data.filename))
      end
    end)

    it("fetches presigned URLs without the API key, without Accept-Encoding, and the listing with it", function()
      outputs { { filename = "a.csv", num_bytes = 10 }, { filename = "b.csv", num_bytes = 20 } }
      assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(2, #blob_gets())
      for _, r in ipairs(blob_gets()) do
        assert.are.equal("missing", r.auth)
        assert.is_nil(r.headers["accept-encoding"])
      end
      assert.are.equal("ok", listings()[1].auth)
    end)

    it("runs opts.concurrency downloads at once, within the client's max_concurrency", function()
      local list = {}
      for i = 1, 6 do list[i] = { filename = ("f%d.csv"):format(i), num_bytes = 100 } end
      outputs(list)
      slow_blobs(6, 0.2)
      assert(t.client:download_outputs(JOB, dir, { concurrency = 3 }))
      assert.are.equal(3, t.srv:stats().storage.max_get)

      t.srv:reset()
      outputs(list)
      slow_blobs(6, 0.2)
      local narrow = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_concurrency = 2 }
      local s = assert(narrow:download_outputs(JOB, helpers.tmpdir()))
      narrow:close()
      assert.are.equal(6, s.downloaded)
      assert.are.equal(2, t.srv:stats().storage.max_get)
    end)

    it("resumes: complete files are skipped, a partial one (wrong size) is replaced", function()
      local made = outputs { { filename = "a.csv", num_bytes = 500 }, { filename = "b.csv", num_bytes = 600 } }
      assert(t.client:download_outputs(JOB, dir))
      helpers.write(dir .. "/b.csv", "truncated")
      t.srv:reset()
      outputs { { id = made[1].id, filename = "a.csv", num_bytes = 500 }, { id = made[2].id, filename = "b.csv", num_bytes = 600 } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.same({ downloaded = 1, skipped = 1, failed = {}, bytes = 600 }, s)
      assert.are.equal(1, #blob_gets())
      assert.are.equal(helpers.blob(made[2].id, 600), helpers.read(dir .. "/b.csv"))
    end)

    it("without num_bytes an output is downloaded again (nothing proves it complete)", function()
      outputs { { filename = "n.csv", num_bytes = atai.null, size = 300 } }
      assert(t.client:download_outputs(JOB, dir))
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(0, s.skipped)
      assert.are.equal(300, #helpers.read(dir .. "/n.csv"))
    end)

    it("keeps hostile names inside dir", function()
      local hostile = { "../../escape.csv", "/etc/passwd", "..\\..\\win.csv", "a/b/c.csv", "\1ctl\n.csv",
        "..", ".", "", ".hidden", "x.csv.atai-part" }
      local list = {}
      for i, name in ipairs(hostile) do list[i] = { filename = name, num_bytes = 10 } end
      outputs(list)
      local parent = helpers.tmpdir()
      local target = parent .. "/out"
      local s = assert(t.client:download_outputs(JOB, target))
      assert.are.equal(#hostile, s.downloaded)
      local top = {}
      for _, name in ipairs(helpers.list(parent)) do
        if not name:find("/", 1, true) then top[#top + 1] = name end
      end
      assert.are.same({ "out" }, top)
      local names = helpers.list(target)
      assert.are.equal(#hostile, #names)
      for _, name in ipairs(names) do
        assert.is_nil(name:find("/", 1, true), name)
        assert.is_nil(name:find("..", 1, true), name)
        assert.is_nil(name:find("%c"), name)
        assert.is_nil(name:find("^%."), name)
        assert.is_nil(name:find("%.atai%-part$"), name)
      end
      assert.is_nil(helpers.read(parent .. "/escape.csv"))
      helpers.remove(parent)
    end)

    it("outputs with the same name get distinct files (tagged with the output id), resumed by id", function()
      local made = outputs { { filename = "pred.csv", num_bytes = 100 }, { filename = "pred.csv", num_bytes = 200 },
        { filename = "other.csv", num_bytes = 5 } }
      assert(t.client:download_outputs(JOB, dir))
      local a, b = ("pred_%s.csv"):format(made[1].id), ("pred_%s.csv"):format(made[2].id)
      assert.are.equal(helpers.blob(made[1].id, 100), helpers.read(dir .. "/" .. a))
      assert.are.equal(helpers.blob(made[2].id, 200), helpers.read(dir .. "/" .. b))
      assert.are.equal(3, #helpers.list(dir))
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(3, s.skipped)
    end)

    it("the file name falls back to the ref's last path segment, then to the output id", function()
      outputs { { filename = "", num_bytes = 7 } }
      assert(t.client:download_outputs(JOB, dir))
      local names = helpers.list(dir)
      assert.are.equal(1, #names)
      assert.matches("^out_", names[1]) -- the blob's path is /_blob/<output id>
    end)

    it("refreshes URLs the storage refuses (403: expired) by listing again", function()
      outputs { { filename = "a.csv", num_bytes = 10 }, { filename = "b.csv", num_bytes = 20 } }
      t.srv:config { expired_listings = 1 }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(2, s.downloaded)
      assert.are.equal(2, #listings())
      assert.are.equal(4, #blob_gets()) -- two refused (403), two good
    end)

    it("refreshes URLs past expires_at before fetching them", function()
      outputs { { filename = "a.csv", num_bytes = 10 } }
      t.srv:config { stale_listings = 1 }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(2, #listings())
      assert.are.equal(1, #blob_gets()) -- the stale URL was never tried
    end)

    it("gives up on an output whose fresh URLs keep failing: failed, with the storage's error", function()
      local made = outputs { { filename = "a.csv", num_bytes = 10 }, { filename = "ok.csv", num_bytes = 10 } }
      t.srv:fault { method = "GET", path = "/_blob/" .. made[1].id,
        responses = { { status = 403 }, { status = 403 }, { status = 403 }, { status = 403 } } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(1, #s.failed)
      assert.are.equal(made[1].id, s.failed[1].output.id)
      assert.are.equal("permission", s.failed[1].err.kind)
      assert.are.equal(3, #listings()) -- the first and two refreshes
      assert.are.same({ "ok.csv" }, helpers.list(dir))
    end)

    it("retries a transfer cut short, and never leaves a truncated file under the final name", function()
      local made = outputs { { filename = "cut.csv", num_bytes = 300000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { close_after_bytes = 1000 } } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(2, #blob_gets())
      assert.are.equal(helpers.blob(made[1].id, 300000), helpers.read(dir .. "/cut.csv"))

      t.srv:reset()
      outputs { { filename = "cut.csv", num_bytes = 300000 } }
      helpers.remove(dir)
      dir = helpers.tmpdir()
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = {
        { close_after_bytes = 1000 }, { close_after_bytes = 1000 }, { close_after_bytes = 1000 } } }
      s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(0, s.downloaded)
      assert.are.equal("network", s.failed[1].err.kind)
      assert.are.equal(3, s.failed[1].err.attempts)
      assert.are.same({}, helpers.list(dir))
    end)

    it("checks the size against num_bytes: short bodies are retried, long ones refused (too_large)", function()
      outputs { { filename = "short.csv", num_bytes = 100, size = 90 }, { filename = "long.csv", num_bytes = 100, size = 110 } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(2, #s.failed)
      local kinds = {}
      for _, f in ipairs(s.failed) do kinds[f.output.data.filename] = f.err end
      assert.are.equal("network", kinds["short.csv"].kind)
      assert.matches("cut short: 90 of 100", kinds["short.csv"].message)
      assert.are.equal(3, kinds["short.csv"].attempts)
      assert.are.equal("too_large", kinds["long.csv"].kind)
      assert.are.equal(1, kinds["long.csv"].attempts)
      assert.are.same({}, helpers.list(dir))
    end)

    it("a body without Content-Length ended early is caught by num_bytes", function()
      outputs { { filename = "nl.csv", num_bytes = 5000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { no_content_length = true, close_after_bytes = 100 } } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(2, #blob_gets())
    end)

    it("a stalled transfer is cut by the stall limit and retried", function()
      local made = outputs { { filename = "stall.csv", num_bytes = 50000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { stall_after_bytes = 1000, stall = 5 } } }
      local s = assert(t.client:download_outputs(JOB, dir, { stall_timeout = 0.5 })) -- whole seconds: 1
      assert.are.equal(1, s.downloaded)
      assert.are.equal(2, #blob_gets())
      assert.are.equal(helpers.blob(made[1].id, 50000), helpers.read(dir .. "/stall.csv"))
    end)

    it("the client's attempt timeout does not cut a long download; nor max_response_bytes", function()
      local slow = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, timeout = 0.3, max_response_bytes = 1000 }
      local made = outputs { { filename = "long.csv", num_bytes = 100000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { stall_after_bytes = 1000, stall = 0.8 } } }
      local s = assert(slow:download_outputs(JOB, dir))
      slow:close()
      assert.are.equal(1, s.downloaded)
      assert.are.equal(1, #blob_gets())
      assert.are.equal(helpers.blob(made[1].id, 100000), helpers.read(dir .. "/long.csv"))
    end)

    it("opts.max_bytes caps each file (too_large, not retried)", function()
      outputs { { filename = "big.csv", num_bytes = 5000 }, { filename = "small.csv", num_bytes = 10 } }
      local s = assert(t.client:download_outputs(JOB, dir, { max_bytes = 1000 }))
      assert.are.equal(1, s.downloaded)
      assert.are.equal("too_large", s.failed[1].err.kind)
      assert.are.equal(1, #helpers.requests(t.srv, "/_blob/" .. s.failed[1].output.id))
      assert.are.same({ "small.csv" }, helpers.list(dir))
    end)

    it("filters by port_name and input_id", function()
      outputs { { filename = "a.csv", num_bytes = 1, port_name = "worker.results", input_id = "inp_1" },
        { filename = "b.csv", num_bytes = 1, port_name = "worker.other", input_id = "inp_1" },
        { filename = "c.csv", num_bytes = 1, port_name = "worker.results", input_id = "inp_2" } }
      local s = assert(t.client:download_outputs(JOB, dir, { port_name = "worker.results", input_id = "inp_1" }))
      assert.are.equal(1, s.downloaded)
      assert.are.same({ "a.csv" }, helpers.list(dir))
      assert.is_truthy(listings()[1].query:find("port_name=worker.results", 1, true))
      assert.is_truthy(listings()[1].query:find("input_id=inp_1", 1, true))
    end)

    it("a failed listing is nil, err; a bad job id or option raises", function()
      local s, err = t.client:download_outputs("job_missing", dir)
      assert.is_nil(s)
      assert.are.equal("not_found", err.kind)
      assert.has_error(function() t.client:download_outputs("queue", dir) end)
      assert.has_error(function() t.client:download_outputs(JOB, nil) end)
      assert.has_error(function() t.client:download_outputs(JOB, dir, { concurrency = 0 }) end)
      assert.has_error(function() t.client:download_outputs(JOB, dir, { nope = true }) end)
    end)

    it("dir that is a file is an io error", function()
      helpers.write(dir .. "/file", "x")
      local s, err = t.client:download_outputs(JOB, dir .. "/file")
      assert.is_nil(s)
      assert.are.equal("io", err.kind)
    end)

    it("an output URL that is not https is refused (decode), never fetched", function()
      t.srv:fault { method = "GET", path = "/v0.5/batch/jobs/" .. JOB .. "/outputs", responses = { { json = {
        job_id = JOB, total = 1, offset = 0, limit = 100, outputs = { { id = "out_x", data = {
          ref = "http://example.com/x.csv", filename = "x.csv", num_bytes = 1 } } } } } } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal("decode", s.failed[1].err.kind)
      assert.are.same({}, helpers.list(dir))
    end)

    it("reports progress: bytes and files, done and in all", function()
      outputs { { filename = "a.csv", num_bytes = 100 }, { filename = "b.csv", num_bytes = 300 } }
      local seen = {}
      assert(t.client:download_outputs(JOB, dir, { on_progress = function(p) seen[#seen + 1] = p end }))
      local last = seen[#seen]
      assert.is_true(last.bytes_per_second >= 0) -- a moving average (stream.RATE_WINDOW)
      last.bytes_per_second = nil
      assert.are.same({ bytes_done = 400, bytes_total = 400, files_done = 2, files_total = 2 }, last)
    end)

    it("an error raised by on_progress reaches the caller and leaves no temporary file", function()
      outputs { { filename = "a.csv", num_bytes = 200000 } }
      slow_blobs(1, 0.5)
      local ok, err = pcall(t.client.download_outputs, t.client, JOB, dir, { on_progress = function() error("no more") end })
      assert.is_false(ok)
      assert.matches("no more", tostring(err))
      assert.are.same({}, helpers.list(dir))
    end)

    it("a cancelled download_outputs removes its temporary files", function()
      outputs { { filename = "a.csv", num_bytes = 300000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { stall_after_bytes = 1000, stall = 3 } } }
      local h = t.client.async:download_outputs(JOB, dir)
      for _ = 1, 100 do
        if #helpers.list(dir) > 0 then break end
        t.client:poll(0.05)
      end
      local names = helpers.list(dir)
      assert.are.equal(1, #names)
      assert.matches("^a%.csv%.[0-9a-z]+%.atai%-part$", names[1])
      h:cancel()
      assert.are.equal("cancelled", select(2, h:result()).kind)
      assert.are.same({}, helpers.list(dir))
    end)

    it("closing the client ends download_outputs: cancelled, temporary files removed", function()
      outputs { { filename = "a.csv", num_bytes = 300000 }, { filename = "b.csv", num_bytes = 300000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = {
        { stall_after_bytes = 1000, stall = 3 }, { stall_after_bytes = 1000, stall = 3 } } }
      local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key }
      local h = c.async:download_outputs(JOB, dir)
      for _ = 1, 100 do
        if #helpers.list(dir) == 2 then break end
        c:poll(0.05)
      end
      c:close()
      assert.is_true(h:done())
      assert.are.equal("cancelled", select(2, h:result()).kind)
      assert.are.same({}, helpers.list(dir))
    end)
  end)

  describe("download(url, dest)", function()
    it("fetches one presigned URL to dest: true", function()
      local made = outputs { { filename = "one.csv", num_bytes = 1234 } }
      local page = assert(t.client:job_outputs(JOB))
      assert.is_true(t.client:download(page.outputs[1].data.ref, dir .. "/one.csv", { num_bytes = 1234 }))
      assert.are.equal(helpers.blob(made[1].id, 1234), helpers.read(dir .. "/one.csv"))
      assert.are.equal("missing", blob_gets()[1].auth)
    end)

    it("an expired URL is nil, err (permission, HTTP 403) and leaves nothing", function()
      outputs { { filename = "one.csv", num_bytes = 10 } }
      t.srv:config { expired_listings = 1 }
      local ref = assert(t.client:job_outputs(JOB)).outputs[1].data.ref
      local ok, err = t.client:download(ref, dir .. "/one.csv")
      assert.is_nil(ok)
      assert.are.equal("permission", err.kind)
      assert.are.equal(403, err.status)
      assert.is_truthy(err.body:find("expired", 1, true))
      assert.are.same({}, helpers.list(dir))
    end)

    it("refuses what is not https (or http to loopback) before any I/O", function()
      for _, url in ipairs({ "http://example.com/x", "ftp://example.com/x", "file:///etc/passwd",
          "https://user:pw@example.com/x", "x", 5 }) do
        local ok, err = pcall(t.client.download, t.client, url, dir .. "/x")
        assert.is_false(ok, tostring(url))
        assert.matches("bad argument #1 to 'download'", tostring(err))
      end
      assert.are.equal(0, #t.srv:requests())
    end)

    it("a folder that does not exist is an io error; a redirect is not followed", function()
      outputs { { filename = "one.csv", num_bytes = 10 } }
      local ref = assert(t.client:job_outputs(JOB)).outputs[1].data.ref
      local ok, err = t.client:download(ref, dir .. "/no/such/dir/x")
      assert.is_nil(ok)
      assert.are.equal("io", err.kind)
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = { { status = 302, headers = { Location = t.srv:url("/_blob/x") } } } }
      ok, err = t.client:download(ref, dir .. "/x")
      assert.is_nil(ok)
      assert.are.equal(302, err.status)
      assert.are.equal(1, #blob_gets())
    end)

    it("reports progress with the size from Content-Length when num_bytes is not given", function()
      outputs { { filename = "one.csv", num_bytes = 500000 } }
      slow_blobs(1, 0.3)
      local ref = assert(t.client:job_outputs(JOB)).outputs[1].data.ref
      local last
      assert(t.client:download(ref, dir .. "/one.csv", { on_progress = function(p) last = p end }))
      assert.is_true(last.bytes_per_second > 0) -- 0.3 s of stall: the average has two samples apart
      last.bytes_per_second = nil
      assert.are.same({ bytes_done = 500000, bytes_total = 500000, files_done = 1, files_total = 1 }, last)
    end)
  end)

  describe("memory", function()
    it(("a %d MiB download keeps peak RSS growth under 32 MiB"):format(helpers.BIG_MB), function()
      local size = helpers.BIG_MB * MB
      local made = outputs { { filename = "big.bin", num_bytes = size } }
      local s, err, growth = helpers.peak_growth(function() return t.client:download_outputs(JOB, dir) end)
      assert.is_table(s, tostring(err))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(size, s.bytes)
      local f = assert(io.open(dir .. "/big.bin", "rb"))
      assert.are.equal(size, f:seek("end"))
      f:seek("set", size - 4096)
      assert.are.equal(require("spec.support.fake_api.blob").maker(made[1].id)(size - 4096, 4096), f:read(4096))
      f:close()
      if growth then
        print(("\n[download_spec] %d MiB download: peak RSS growth %d KiB"):format(helpers.BIG_MB, growth))
        assert.is_true(growth < 32 * 1024, ("peak RSS grew by %d KiB"):format(growth))
      end
    end)
  end)
end)

--[[
  spec/hostile_storage_spec.lua -- downloads against a hostile file system and a
  hostile presigned storage host (spec/support/hostile_storage.lua), the regression
  tests of issue 14's findings 1, 2, 3, 7 and 8 and of the file mode:

    1. planted symlinks and FIFOs at the temporary or final name, two runs into one
       folder, temporary files removed on every exit;
    2. bodies past their declared size stopped at once (too_large), a trickle under
       opts.min_bytes_per_second (timeout), opts.max_seconds (timeout);
    3. bad server data (a ref with a blank, control or non-ASCII byte, an unusable
       num_bytes; a bad part URL of an upload) fails one output, never raises;
    7. long duplicate names within the 255-byte file-name limit, cut on UTF-8
       boundaries;
    8. names that collide on case-insensitive or normalizing file systems.

  Time bounds show in the error kinds, never in wall-clock asserts; the slow cases
  use a 1 s window (the smallest libcurl's low-speed time and max_seconds allow).
]]

local atai = require("atai")
local cjson = require("cjson")
local server = require("spec.support.server")
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")

local JOB = "job_2abc3def4ghi5jkl6mno7pqr"

-- ------------------------------------------------------------------ local files

-- Runs a shell command; whether it succeeded (os.execute's result on any Lua).
local function sh(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- What a path is, not following a symlink: "link", "fifo", "file", "dir" or nil.
local function kind_of(path)
  local p = io.popen("stat -c %F " .. q(path) .. " 2>/dev/null")
  local out = p:read("*l")
  p:close()
  local kinds = { ["symbolic link"] = "link", fifo = "fifo", ["regular file"] = "file",
    ["regular empty file"] = "file", directory = "dir" }
  return out and kinds[out] or nil
end

-- A file's permission bits as an octal string ("644").
local function mode_of(path)
  local p = io.popen("stat -c %a " .. q(path))
  local out = p:read("*l")
  p:close()
  return out
end

-- Whether s is valid UTF-8 (any Lua: no utf8 library on 5.1).
local function valid_utf8(s)
  local i = 1
  while i <= #s do
    local b = s:byte(i)
    local n = b < 0x80 and 0 or b >= 0xF0 and b < 0xF5 and 3 or b >= 0xE0 and 2 or b >= 0xC2 and b < 0xE0 and 1
    if not n then return false end
    for j = i + 1, i + n do
      local c = s:byte(j)
      if not c or c < 0x80 or c > 0xBF then return false end
    end
    i = i + n + 1
  end
  return true
end

-- The names in dir that are temporary files.
local function temporaries(dir)
  local out = {}
  for _, name in ipairs(helpers.list(dir)) do
    if name:find("%.atai%-part$") then out[#out + 1] = name end
  end
  return out
end

-- ------------------------------------------------------------------ the hostile host

-- Starts spec/support/hostile_storage.lua: {port, endpoint, url(path),
-- outputs(list), stats(), stop()}.
local function start_storage()
  local handle, port = server.spawn { script = "spec/support/hostile_storage.lua",
    args = { "--port", "0", "--ttl", "300" }, what = "hostile storage" }
  local host = { port = port, endpoint = "http://127.0.0.1:" .. port .. "/v0.5" }
  local function control(method, path, body)
    local conn = assert(server.connect("127.0.0.1", port))
    local resp = assert(conn:request { method = method, path = path, body = body,
      headers = { ["Content-Type"] = "application/json", Connection = "close" } })
    conn:close()
    assert(resp.status == 200, "hostile storage control: " .. tostring(resp.status))
    return resp.body ~= "" and cjson.decode(resp.body) or nil
  end
  function host.url(path) return "http://127.0.0.1:" .. port .. path end
  -- The listing's outputs: raw JSON objects (strings), kept as given.
  function host.outputs(list)
    return control("POST", "/_hostile/outputs?total=" .. #list, "[" .. table.concat(list, ",") .. "]")
  end
  function host.stats() return control("GET", "/_hostile/stats") end
  function host.stop()
    pcall(control, "POST", "/_fake/shutdown")
    handle:close()
  end
  return host
end

-- One output object as JSON: id, ref (a string put in as JSON, escaped by
-- cjson), filename, and num_bytes as raw JSON text (a number, null, "1").
local function output(id, ref, filename, num_bytes)
  return ('{"id":%s,"data":{"ref":%s,"filename":%s,"num_bytes":%s}}')
    :format(cjson.encode(id), cjson.encode(ref), cjson.encode(filename), num_bytes or "null")
end

-- The bytes of the hostile host's /blob/<n>.
local function blob_bytes(n) return ("0123456789"):rep(math.floor(n / 10) + 1):sub(1, n) end


describe("hostile storage and file system (issue 14)", function()
  local t = fake_api({ max_retries = 2 })
  local host, dir
  local clients = {}

  setup(function() host = start_storage() end)
  teardown(function() host.stop() end)
  before_each(function() dir = helpers.tmpdir() end)
  after_each(function()
    helpers.remove(dir)
    while #clients > 0 do table.remove(clients):close() end
  end)

  -- A client whose API is the hostile host (its listing), plus `extra`.
  local function hostile_client(extra)
    local opts = { endpoint = host.endpoint, api_key = "k", max_retries = 0, retry_backoff = 0.01 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = atai.new(opts)
    clients[#clients + 1] = c
    return c
  end

  -- Makes the fake API's seed job's outputs these; returns them (ids included).
  local function fake_outputs(list)
    return t.srv:control("POST", "/_fake/outputs", { job_id = JOB, outputs = list }).outputs
  end

  -- ---------------------------------------------------------------- finding 1

  describe("finding 1", function()
    it("finding 1: a planted symlink at the temporary or the final name never redirects the write", function()
      local made = fake_outputs { { filename = "a.csv", num_bytes = 1000 } }
      local outside = helpers.tmpdir()
      helpers.write(outside .. "/victim1", "precious 1")
      helpers.write(outside .. "/victim2", "precious 2")
      assert(sh("ln -s " .. q(outside .. "/victim1") .. " " .. q(dir .. "/a.csv.atai-part")))
      assert(sh("ln -s " .. q(outside .. "/victim2") .. " " .. q(dir .. "/a.csv")))
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal("precious 1", helpers.read(outside .. "/victim1"))
      assert.are.equal("precious 2", helpers.read(outside .. "/victim2"))
      assert.are.equal("file", kind_of(dir .. "/a.csv")) -- the link itself was replaced
      assert.are.equal(helpers.blob(made[1].id, 1000), helpers.read(dir .. "/a.csv"))
      assert.are.equal("link", kind_of(dir .. "/a.csv.atai-part")) -- not ours: left alone

      -- download(url, dest) and a dest that is a symlink: the same
      local ref = assert(t.client:job_outputs(JOB)).outputs[1].data.ref
      assert(sh("ln -s " .. q(outside .. "/victim2") .. " " .. q(dir .. "/one.csv")))
      assert.is_true(t.client:download(ref, dir .. "/one.csv", { num_bytes = 1000 }))
      assert.are.equal("precious 2", helpers.read(outside .. "/victim2"))
      assert.are.equal("file", kind_of(dir .. "/one.csv"))
      helpers.remove(outside)
    end)

    it("finding 1: a FIFO at the temporary or the final name does not hang the download", function()
      local made = fake_outputs { { filename = "a.csv", num_bytes = 100 }, { filename = "b.csv", num_bytes = 200 } }
      assert(sh("mkfifo " .. q(dir .. "/a.csv.atai-part")))
      assert(sh("mkfifo " .. q(dir .. "/b.csv")))
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(2, s.downloaded)
      assert.are.equal(helpers.blob(made[1].id, 100), helpers.read(dir .. "/a.csv"))
      assert.are.equal("file", kind_of(dir .. "/b.csv"))
      assert.are.equal(helpers.blob(made[2].id, 200), helpers.read(dir .. "/b.csv"))
    end)

    it("finding 1: two runs into one folder write temporary files of their own, all removed on cancel", function()
      fake_outputs { { filename = "a.csv", num_bytes = 300000 } }
      t.srv:fault { method = "GET", path_prefix = "/_blob/", responses = {
        { stall_after_bytes = 1000, stall = 3 }, { stall_after_bytes = 1000, stall = 3 } } }
      local h1 = t.client.async:download_outputs(JOB, dir)
      local h2 = t.client.async:download_outputs(JOB, dir)
      for _ = 1, 100 do
        if #temporaries(dir) >= 2 then break end
        t.client:poll(0.05)
      end
      local temps = temporaries(dir)
      assert.are.equal(2, #temps)
      assert.are_not.equal(temps[1], temps[2])
      for _, name in ipairs(temps) do assert.are.equal("file", kind_of(dir .. "/" .. name)) end
      h1:cancel()
      h2:cancel()
      assert.are.same({}, helpers.list(dir))
    end)
  end)

  -- ---------------------------------------------------------------- finding 2

  describe("finding 2", function()
    it("finding 2: a body past its declared num_bytes stops at once (too_large), the partial file removed", function()
      host.outputs { output("out_endless", host.url("/endless"), "endless.bin", "10"),
        output("out_ok", host.url("/blob/20"), "ok.bin", "20") }
      local c = hostile_client()
      local s = assert(c:download_outputs(JOB, dir))
      assert.are.equal(1, s.downloaded)
      assert.are.equal(1, #s.failed)
      assert.are.equal("out_endless", s.failed[1].output.id)
      assert.are.equal("too_large", s.failed[1].err.kind)
      assert.matches("10 declared", s.failed[1].err.message)
      assert.are.same({ "ok.bin" }, helpers.list(dir))
      -- the host kept pouring only until the client hung up: far below its 256 MiB
      assert.is_true(host.stats().endless_bytes < 64 * 1024 * 1024)
    end)

    it("finding 2: a Content-Length above the declared size is refused before a byte is written", function()
      host.outputs { output("out_long", host.url("/length/31457280"), "long.bin", "10") }
      local c = hostile_client()
      local most = 0
      local s = assert(c:download_outputs(JOB, dir, { on_progress = function(p)
        most = math.max(most, p.bytes_done)
      end }))
      assert.are.equal("too_large", s.failed[1].err.kind)
      assert.matches("31457280 bytes or more, 10 declared", s.failed[1].err.message)
      assert.is_true(most <= 10)
      assert.are.same({}, helpers.list(dir))
      -- download(url) with num_bytes: the same, nil, err
      local ok, err = c:download(host.url("/length/31457280"), dir .. "/x.bin", { num_bytes = 10 })
      assert.is_nil(ok)
      assert.are.equal("too_large", err.kind)
      assert.are.same({}, helpers.list(dir))
    end)

    it("finding 2: a trickle under opts.min_bytes_per_second over the stall window fails as timeout", function()
      -- 20 bytes a second for 3 s: 0.2.0 (one byte a second was enough) took it
      host.outputs { output("out_trickle", host.url("/trickle/60/50"), "slow.bin", "60") }
      local c = hostile_client()
      local s = assert(c:download_outputs(JOB, dir, { stall_timeout = 1 }))
      assert.are.equal(0, s.downloaded)
      assert.are.equal("timeout", s.failed[1].err.kind)
      assert.are.same({}, helpers.list(dir))
      -- the same trickle passes a floor it is above
      local ok, err = c:download(host.url("/trickle/10/50"), dir .. "/slow.bin",
        { stall_timeout = 1, min_bytes_per_second = 5 })
      assert.is_true(ok, tostring(err))
      assert.are.equal(blob_bytes(10), helpers.read(dir .. "/slow.bin"))
    end)

    it("finding 2: opts.max_seconds bounds each file's wall time (timeout), partial file removed", function()
      -- 20 bytes a second for 5 s, above a floor of 1 byte a second
      host.outputs { output("out_slow", host.url("/trickle/100/50"), "slow.bin", "100"),
        output("out_ok", host.url("/blob/30"), "ok.bin", "30") }
      local c = hostile_client()
      local s = assert(c:download_outputs(JOB, dir, { max_seconds = 1, min_bytes_per_second = 1 }))
      assert.are.equal(1, s.downloaded)
      assert.are.equal("out_slow", s.failed[1].output.id)
      assert.are.equal("timeout", s.failed[1].err.kind)
      assert.matches("max_seconds", s.failed[1].err.message)
      assert.are.same({ "ok.bin" }, helpers.list(dir))
      local ok, err = c:download(host.url("/trickle/100/50"), dir .. "/one.bin", { max_seconds = 1, min_bytes_per_second = 1 })
      assert.is_nil(ok)
      assert.are.equal("timeout", err.kind)
      assert.are.same({ "ok.bin" }, helpers.list(dir))
    end)

    it("finding 2: opts.max_seconds counts the retries too", function()
      local c = hostile_client { max_retries = 10 } -- each 503 asks for 1 s: 10 s without the bound
      local ok, err = c:download(host.url("/status/503"), dir .. "/x.bin", { max_seconds = 1 })
      assert.is_nil(ok)
      assert.are.equal("timeout", err.kind)
      assert.is_true((host.stats().requests["/status/503"] or 0) <= 3)
      assert.are.same({}, helpers.list(dir))
    end)

    it("finding 2: opts.max_seconds counts the URL refreshes too", function()
      -- each URL is refused (403: expired) after 0.6 s; two refreshes: 1.8 s without the bound
      host.outputs { output("out_stale", host.url("/late_status/403/600"), "stale.bin", "10") }
      local c = hostile_client()
      local s = assert(c:download_outputs(JOB, dir, { max_seconds = 1 }))
      assert.are.equal("timeout", s.failed[1].err.kind)
      assert.is_true(host.stats().requests["/v0.5/batch/jobs/" .. JOB .. "/outputs"] <= 2)
      assert.are.same({}, helpers.list(dir))
    end)

    it("finding 2: max_seconds, min_bytes_per_second and mode are checked like every option", function()
      local bad = { { max_seconds = 0 }, { max_seconds = 604801 }, { max_seconds = "1" },
        { min_bytes_per_second = 0 }, { min_bytes_per_second = 1.5 },
        { mode = 0600 }, { mode = -1 }, { mode = "0800" }, { mode = "rw" } }
      for _, opts in ipairs(bad) do
        local name = next(opts)
        for _, call in ipairs({
          function() return t.client:download_outputs(JOB, dir, opts) end,
          function() return t.client:download("https://example.com/x", dir .. "/x", opts) end,
          function() return t.client:download_file("x.csv", dir .. "/x", opts) end,
        }) do
          local ok, err = pcall(call)
          assert.is_false(ok, name)
          assert.matches(name, tostring(err))
        end
      end
      for _, call in ipairs({
        function() return t.client:download_outputs(JOB, dir .. "\0x") end,
        function() return t.client:download("https://example.com/x", dir .. "/x\0y") end,
        function() return t.client:download_file("x.csv", dir .. "/x\0y") end,
      }) do
        local ok, err = pcall(call)
        assert.is_false(ok)
        assert.matches("bad argument #2 .*without NUL", tostring(err))
      end
      assert.are.equal(0, #t.srv:requests())
    end)
  end)

  -- ---------------------------------------------------------------- finding 3

  describe("finding 3", function()
    it("finding 3: bad server data (ref bytes, num_bytes) fails that output (decode), the rest download", function()
      host.outputs {
        output("out_space", host.url("/blob/10") .. " x", "space.bin", "10"),
        output("out_ctl", host.url("/blob/10") .. "\1", "ctl.bin", "10"),
        output("out_utf8", host.url("/blob/10") .. "\195\169", "utf8.bin", "10"),
        output("out_huge", host.url("/blob/10"), "huge.bin", "9007199254740992"),
        output("out_negative", host.url("/blob/10"), "negative.bin", "-1"),
        output("out_fraction", host.url("/blob/10"), "fraction.bin", "2.5"),
        output("out_string", host.url("/blob/10"), "string.bin", '"10"'),
        output("out_ok", host.url("/blob/25"), "ok.bin", "25"),
        output("out_unknown", host.url("/blob/5"), "unknown.bin", "null"),
      }
      local c = hostile_client()
      local ok, s = pcall(c.download_outputs, c, JOB, dir)
      assert.is_true(ok, tostring(s))
      assert.are.equal(2, s.downloaded)
      assert.are.equal(7, #s.failed)
      for _, f in ipairs(s.failed) do assert.are.equal("decode", f.err.kind, f.output.id) end
      assert.are.same({ "ok.bin", "unknown.bin" }, helpers.list(dir))
      assert.are.equal(blob_bytes(25), helpers.read(dir .. "/ok.bin"))
    end)

    it("finding 3: an upload whose part URL has a bad byte returns nil, err (decode) after abort", function()
      for _, bad in ipairs({ " x", "\1", "\195\169" }) do
        t.srv:reset()
        t.srv:fault { method = "POST", path = "/v0.5/files/uploads/initiate", responses = { { json = {
          upload_id = "upl_hostile", file_uid = "fu_1",
          parts = { { part_number = 1, url = t.srv:url("/_storage/upl_hostile/1") .. bad, offset = 0, length = 5 } },
        } } } }
        local ok, res, err = pcall(t.client.upload_data, t.client, "x.bin", "hello", { multipart_threshold = 1 })
        assert.is_true(ok, tostring(res))
        assert.is_nil(res)
        assert.are.equal("decode", err.kind)
        assert.are.equal(1, #helpers.requests(t.srv, "/v0.5/files/uploads/upl_hostile/abort", "POST"))
        assert.are.equal(0, #helpers.requests(t.srv, "/_storage/"))
      end
    end)
  end)

  -- ---------------------------------------------------------------- finding 7

  describe("finding 7", function()
    it("finding 7: same long names get _<id> within 255 bytes, temporary name included, cut on UTF-8 boundaries", function()
      local long = ("n"):rep(196) .. ".csv"            -- 200 bytes
      local wide = "w" .. ("\195\169"):rep(124) .. "x.csv" -- 254 bytes, 2-byte characters at odd offsets
      local function id(n) return "out_" .. ("x"):rep(56) .. n end -- 61 bytes
      local made = fake_outputs { { id = id(1), filename = long, num_bytes = 10 },
        { id = id(2), filename = long, num_bytes = 20 }, { id = id(3), filename = wide, num_bytes = 30 },
        { id = id(4), filename = wide, num_bytes = 40 }, { id = id(5), filename = "single" .. wide, num_bytes = 50 } }
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(5, s.downloaded, s.failed[1] and tostring(s.failed[1].err))
      local names = helpers.list(dir)
      assert.are.equal(5, #names)
      for _, name in ipairs(names) do
        assert.is_true(#name + #".12345678.atai-part" <= 255, name)
        assert.is_true(valid_utf8(name), name)
        assert.matches("%.csv$", name)
      end
      for i, o in ipairs(made) do
        if i == 5 then break end -- the single one keeps its name (cut), no tag
        local found
        for _, name in ipairs(names) do
          if name:find("_" .. o.id .. ".csv", 1, true) then found = name end
        end
        assert.is_truthy(found, o.id)
        assert.are.equal(helpers.blob(o.id, i * 10), helpers.read(dir .. "/" .. found))
      end
    end)
  end)

  -- ---------------------------------------------------------------- finding 8

  describe("finding 8", function()
    it("finding 8: names equal by case or accents all get _<output id>, whatever the listing order", function()
      local list = { { id = "out_a1", filename = "Report.csv", num_bytes = 1 },
        { id = "out_a2", filename = "report.csv", num_bytes = 2 },
        { id = "out_b1", filename = "R\195\169sum\195\169.csv", num_bytes = 3 },   -- precomposed
        { id = "out_b2", filename = "Re\204\129sume\204\129.csv", num_bytes = 4 }, -- combining marks
        { id = "out_b3", filename = "RESUME.csv", num_bytes = 5 },
        { id = "out_c", filename = "\197\129\195\179d\197\186.csv", num_bytes = 6 }, -- alone: kept
      }
      local expected = { "RESUME_out_b3.csv", "R\195\169sum\195\169_out_b1.csv", "Re\204\129sume\204\129_out_b2.csv",
        "Report_out_a1.csv", "report_out_a2.csv", "\197\129\195\179d\197\186.csv" }
      table.sort(expected)
      fake_outputs(list)
      local s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(6, s.downloaded)
      assert.are.same(expected, helpers.list(dir))

      -- the listing in the other order: the same names, all skipped as complete
      t.srv:reset()
      local reversed = {}
      for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end
      fake_outputs(reversed)
      s = assert(t.client:download_outputs(JOB, dir))
      assert.are.equal(6, s.skipped)
      assert.are.same(expected, helpers.list(dir))
    end)

    it("finding 8: the collision key folds ASCII case, combining marks and U+00C0-U+017F", function()
      local key = require("atai.download").collision_key
      assert.are.equal("resume.csv", key("R\195\137SUM\195\137.csv"))
      assert.are.equal("resume.csv", key("Re\204\129sume\204\129.csv"))
      assert.are.equal("lodz", key("\197\129\195\179d\197\186"))
      assert.are.equal("strasse", key("Stra\195\159e"))
      assert.are.equal("\226\130\172", key("\226\130\172")) -- others unchanged
    end)
  end)

  -- ---------------------------------------------------------------- file mode

  describe("file mode", function()
    it("output files get 0666 less the umask by default, and exactly opts.mode when given", function()
      fake_outputs { { filename = "a.csv", num_bytes = 10 } }
      local p = io.popen("umask")
      local umask = tonumber(p:read("*l"), 8)
      p:close()
      assert(t.client:download_outputs(JOB, dir))
      local default_bits = 0 -- 0666 (438) without the umask's bits
      for bit = 0, 8 do
        local v = 2 ^ bit
        if math.floor(438 / v) % 2 == 1 and math.floor(umask / v) % 2 == 0 then default_bits = default_bits + v end
      end
      assert.are.equal(("%o"):format(default_bits), mode_of(dir .. "/a.csv"))

      helpers.remove(dir)
      dir = helpers.tmpdir()
      assert(t.client:download_outputs(JOB, dir, { mode = "0600" }))
      assert.are.equal("600", mode_of(dir .. "/a.csv"))
      local ref = assert(t.client:job_outputs(JOB)).outputs[1].data.ref
      assert(t.client:download(ref, dir .. "/b.csv", { mode = 416 })) -- 0640
      assert.are.equal("640", mode_of(dir .. "/b.csv"))
    end)
  end)
end)

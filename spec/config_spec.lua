-- spec/config_spec.lua: options, environment variables and security defaults.
local atai = require("atai")
local config = require("atai.config")
local server = require("spec.support.server")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("configuration", function()
  describe("endpoint", function()
    local cases = {
      { "https://api.u1.archetypeai.app/v0.5", "https://api.u1.archetypeai.app/v0.5" },
      { "https://api.u1.archetypeai.app", "https://api.u1.archetypeai.app/v0.5" },
      { "https://api.u1.archetypeai.app/", "https://api.u1.archetypeai.app/v0.5" },
      { "https://api.u1.archetypeai.app/v0.5/", "https://api.u1.archetypeai.app/v0.5" },
      { "https://api.stage.u1.archetypeai.app/v0.6", "https://api.stage.u1.archetypeai.app/v0.6" },
      { "HTTPS://host:8443", "https://host:8443/v0.5" },
      { "http://127.0.0.1:8080", "http://127.0.0.1:8080/v0.5" },
      { "http://127.1.2.3/v0.5", "http://127.1.2.3/v0.5" },
      { "http://localhost:9000/", "http://localhost:9000/v0.5" },
      { "http://[::1]:9000", "http://[::1]:9000/v0.5" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " -> " .. case[2], function()
        assert.are.equal(case[2], (config.normalize_endpoint(case[1])))
      end)
    end

    local refused = {
      "http://api.u1.archetypeai.app", "http://10.0.0.1/v0.5", "http://128.0.0.1",
      "http://localhost.evil.example", "http://127.0.0.1.evil.example", "http://[::2]",
      "ftp://host", "api.u1.archetypeai.app", "https://", "https://host/v0.5?x=1",
      "https://user:pass@host", "https://ho st",
      -- octal to some resolvers (87.0.0.1); ports out of range or not digits; junk after them
      "http://0127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:99999", "http://127.0.0.1:80x/v0.5",
      "http://127.0.0.1\\@evil.example", "http://[::1]x", "https://host:", "http://127.0.0.1:1:2",
      "https://ho\tst", "https://:443",
    }
    for _, url in ipairs(refused) do
      it("refuses " .. url, function()
        assert.is_nil((config.normalize_endpoint(url)))
        local ok, msg = pcall(atai.new, { endpoint = url, api_key = "k" })
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #1 to 'new' (option 'endpoint'", 1, true), msg)
      end)
    end

    it("defaults to the production API", function()
      assert.are.equal("https://api.u1.archetypeai.app/v0.5", config.DEFAULT_ENDPOINT)
      local c = atai.new { api_key = "k" }
      assert.is_truthy(tostring(c):find("https://api.u1.archetypeai.app/v0.5", 1, true))
      c:close()
    end)
  end)

  describe("options", function()
    it("raise on unknown names (typos)", function()
      local ok, msg = pcall(atai.new, { api_key = "k", timout = 3 })
      assert.is_false(ok)
      assert.is_truthy(msg:find("unknown option 'timout'", 1, true), msg)
    end)

    local bad = {
      { "api_key", 42 }, { "api_key", "" }, { "endpoint", true }, { "timeout", 0 },
      { "timeout", "5" }, { "connect_timeout", -1 }, { "max_retries", 1.5 }, { "max_retries", -1 },
      { "max_retries", 11 }, { "ca_file", 1 }, { "ca_path", "" }, { "proxy", {} },
      { "user_agent", "x\r\ny" }, { "max_response_bytes", 0 }, { "on_retry", "f" },
      { "retry_backoff", -0.1 }, { "timeout", 0 / 0 }, { "max_concurrency", 0 }, { "max_concurrency", 1001 },
      { "max_concurrency", 2.5 }, { "max_pages", 0 }, { "max_pages", 10 ^ 7 + 1 }, { "on_exchange", "f" },
      { "on_exchange", {} },
    }
    for _, case in ipairs(bad) do
      it(("raise on %s = %s"):format(case[1], tostring(case[2])), function()
        local opts = { api_key = "k" }
        opts[case[1]] = case[2]
        local ok, msg = pcall(atai.new, opts)
        assert.is_false(ok)
        assert.is_truthy(msg:find("option '" .. case[1] .. "'", 1, true), msg)
        ok, msg = pcall(atai.configure, opts)
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #1 to 'configure'", 1, true), msg)
      end)
    end

    it("accept the new ones: max_concurrency, max_pages, on_exchange, passed on to the core", function()
      local function on_exchange() end
      local r = config.resolve({ max_concurrency = 1000, max_pages = 1, on_exchange = on_exchange }, "new")
      assert.are.equal(1000, r.max_concurrency)
      assert.are.equal(1, r.max_pages)
      assert.are.equal(on_exchange, r.on_exchange)
      local c = atai.new { api_key = "k", max_concurrency = 1, max_pages = 10 ^ 7, on_exchange = on_exchange }
      c:close()
    end)

    it("configure() takes every option of new(), the new ones included", function()
      finally(function() atai.configure {} end)
      atai.configure { api_key = "k", max_concurrency = 4, max_pages = 5, on_exchange = function() end,
        timeout = 86400, connect_timeout = 0.001, max_retries = 10, retry_backoff = 3600,
        retry_backoff_max = 0, max_response_bytes = 2 ^ 52, user_agent = "t/1", proxy = "proxy.example:3128" }
      assert.is_truthy(tostring(atai.default_client()):find("https://api.u1.archetypeai.app/v0.5", 1, true))
    end)

    it("fill in their defaults (the C side and the Lua side read the same numbers)", function()
      local r = config.resolve({}, "new")
      local pages = require("atai.pages")
      assert.are.same({ 60, 10, 2, 0.5, 8, 64 * 1024 * 1024, 16, pages.DEFAULT_MAX_PAGES },
        { r.timeout, r.connect_timeout, r.max_retries, r.retry_backoff, r.retry_backoff_max,
          r.max_response_bytes, r.max_concurrency, r.max_pages })
      assert.are.equal(10000, pages.DEFAULT_MAX_PAGES)
      assert.is_nil(r.on_exchange)
      assert.is_nil(r.endpoint)
    end)

    it("raise on a non-table", function()
      assert.has_error(function() atai.new("k") end)
      assert.has_error(function() atai.configure(nil) end)
    end)
  end)

  describe("bounds", function()
    -- Calls atai.new with opts; returns the error message (nil when it made a client).
    local function new_error(opts)
      local ok, msg = pcall(function()
        local c = atai.new(opts)
        c:close()
      end)
      if not ok then return msg end
    end

    it("every option has a check and a description; numbers have min, max and a default inside", function()
      local names = {}
      for name, option in pairs(config.OPTIONS) do
        names[#names + 1] = name
        assert.are.equal("function", type(option.check), name)
        assert.are.equal("string", type(option.description), name)
        if option.min then
          assert.is_true(option.min <= option.default and option.default <= option.max, name)
          assert.is_true(option.check(option.default), name)
        end
      end
      table.sort(names)
      assert.are.same({ "api_key", "ca_file", "ca_path", "connect_timeout", "endpoint", "max_concurrency",
        "max_pages", "max_response_bytes", "max_retries", "on_exchange", "on_retry", "proxy",
        "retry_backoff", "retry_backoff_max", "timeout", "user_agent" }, names)
    end)

    local limits = {
      { "timeout", 0.001, 86400, "number from 0.001 to 86400 (seconds)" },
      { "connect_timeout", 0.001, 86400, "number from 0.001 to 86400 (seconds)" },
      { "max_retries", 0, 10, "integer from 0 to 10" },
      { "retry_backoff", 0, 3600, "number from 0 to 3600 (seconds)" },
      { "retry_backoff_max", 0, 3600, "number from 0 to 3600 (seconds)" },
      { "max_response_bytes", 1, 2 ^ 52, "integer from 1 to 4503599627370496 (bytes)" },
      { "max_concurrency", 1, 1000, "integer from 1 to 1000" },
      { "max_pages", 1, 10 ^ 7, "integer from 1 to 10000000" },
    }
    for _, case in ipairs(limits) do
      local name, min, max, expects = case[1], case[2], case[3], case[4]
      it(("%s: %s, both ends included"):format(name, expects), function()
        assert.are.equal(expects, config.OPTIONS[name].description)
        assert.is_nil(new_error { api_key = "k", [name] = min })
        assert.is_nil(new_error { api_key = "k", [name] = max })
      end)

      local outside = {
        { min - 1, "number out of range" }, { max + 1, "number out of range" }, { 1e300, "number out of range" },
        { 2 ^ 63, "number out of range" }, { -1e300, "number out of range" }, { 0 / 0, "nan" },
        { math.huge, "infinity" }, { -math.huge, "infinity" }, { "1", "string" }, { true, "boolean" },
      }
      it(name .. ": refuses what lies outside, naming the option and never the value", function()
        for _, bad in ipairs(outside) do
          local msg = new_error { api_key = "k", [name] = bad[1] }
          assert.are.equal(("spec/config_spec.lua:%d: bad argument #1 to 'new' (option '%s': %s expected, got %s)")
            :format(msg:match(":(%d+):"), name, expects, bad[2]), msg)
          assert.is_falsy(msg:find("e+", 1, true), msg) -- no %g rendering of the value
        end
      end)
    end

    it("timeout = 0.0001 is refused by config, before the C core sees it", function()
      local ok, msg = pcall(atai.new, { timeout = 0.0001 })
      assert.is_false(ok)
      assert.are.equal("bad argument #1 to 'new' (option 'timeout': number from 0.001 to 86400 (seconds) "
        .. "expected, got number out of range)", msg)
    end)

    it("integer options refuse fractions", function()
      for _, name in ipairs({ "max_retries", "max_response_bytes", "max_concurrency", "max_pages" }) do
        local msg = new_error { api_key = "k", [name] = 1.5 }
        assert.is_truthy(msg:find("(option '" .. name .. "': integer from ", 1, true), msg)
        assert.is_truthy(msg:find("got non-integer number)", 1, true), msg)
      end
    end)

    it("never print a refused value", function()
      local msg = new_error { api_key = "k", max_response_bytes = 123456789012345678 }
      assert.is_falsy(msg:find("12345", 1, true), msg)
      msg = new_error { api_key = "k", user_agent = "s3cret\n" }
      assert.is_falsy(msg:find("s3cret", 1, true), msg)
    end)

    describe("check_call_option", function()
      it("applies the client option's bounds to a per-call option", function()
        assert.are.equal(0.001, config.check_call_option("get_job", 2, "timeout", 0.001))
        assert.are.equal(10, config.check_call_option("request", 4, "max_retries", 10))
        local ok, msg = pcall(config.check_call_option, "get_job", 2, "timeout", 0.0001)
        assert.is_false(ok)
        assert.are.equal("bad argument #2 to 'get_job' (opts.timeout: number from 0.001 to 86400 (seconds) "
          .. "expected, got number out of range)", msg)
        ok, msg = pcall(config.check_call_option, "request", 4, "max_retries", 11)
        assert.is_false(ok)
        assert.are.equal("bad argument #4 to 'request' (opts.max_retries: integer from 0 to 10 expected, "
          .. "got number out of range)", msg)
        for _, bad in ipairs({ 0 / 0, math.huge, 1e300, "5" }) do
          assert.has_error(function() config.check_call_option("get_job", 2, "timeout", bad) end)
        end
      end)

      it("raises on a name that is no option", function()
        local ok, msg = pcall(config.check_call_option, "get_job", 2, "timout", 1)
        assert.is_false(ok)
        assert.are.equal("bad argument #2 to 'get_job' (unknown option 'timout')", msg)
      end)
    end)
  end)

  describe("against the fake server", function()
    local srv
    setup(function() srv = server.start() end)
    teardown(function() srv:stop() end)
    before_each(function() srv:reset() end)

    it("a missing API key is a config error naming ATAI_API_KEY, and sends nothing", function()
      local c = atai.new { endpoint = srv.endpoint }
      local job, err = c:get_job(SEED)
      c:close()
      assert.is_nil(job)
      assert.are.equal("config", err.kind)
      assert.is_truthy(err.message:find("ATAI_API_KEY", 1, true))
      assert.are.equal(0, #srv:requests())
    end)

    it("proxy: requests go through it, in absolute form", function()
      local c = atai.new { endpoint = "http://localhost:1/v0.5", api_key = srv.key,
        proxy = "http://127.0.0.1:" .. srv.port, max_retries = 0 }
      c:get_job(SEED) -- the fake server is no proxy: it answers 404 for the absolute URL
      c:close()
      local req = srv:requests()[1]
      assert.are.equal("http://localhost:1/v0.5/batch/jobs/" .. SEED, req.path)
    end)

    it("an http:// endpoint ignores the environment's proxy: the key stays on loopback", function()
      local out, ok = util.run_lua([[
        local atai = require("atai")
        local job, err = atai.get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(job and job.status or tostring(err))
      ]], { ATAI_API_KEY = srv.key, ATAI_API_ENDPOINT = srv.endpoint, no_proxy = false, NO_PROXY = false,
            http_proxy = "http://127.0.0.1:1", HTTP_PROXY = "http://127.0.0.1:1", ALL_PROXY = "http://127.0.0.1:1" })
      assert.is_true(ok, out)
      assert.are.equal("COMPLETED\n", out)
    end)

    it("an http:// endpoint refuses a proxy off loopback", function()
      local ok, msg = pcall(atai.new, { endpoint = srv.endpoint, api_key = "k", proxy = "http://proxy.example:3128" })
      assert.is_false(ok)
      assert.is_truthy(msg:find("option 'proxy'", 1, true), msg)
    end)

    it("trims ATAI_API_KEY (a key pasted with a newline or spaces)", function()
      local out, ok = util.run_lua([[
        local job, err = require("atai").get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(job and job.status or tostring(err))
      ]], { ATAI_API_KEY = "  " .. srv.key .. "  ", ATAI_API_ENDPOINT = srv.endpoint })
      assert.is_true(ok, out)
      assert.are.equal("COMPLETED\n", out)
    end)

    it("refuses control characters in api_key (no header injection)", function()
      local ok, msg = pcall(atai.new, { endpoint = srv.endpoint, api_key = "k\r\nX-Injected: yes" })
      assert.is_false(ok)
      assert.is_truthy(msg:find("option 'api_key'", 1, true), msg)
      assert.is_falsy(msg:find("X-Injected", 1, true))
    end)

    it("user_agent is prepended to atai's own", function()
      local c = atai.new { endpoint = srv.endpoint, api_key = srv.key, user_agent = "my-tool/2.0" }
      assert(c:get_job(SEED))
      c:close()
      local ua = srv:requests()[1].headers["user-agent"]
      assert.is_truthy(ua:find("^my%-tool/2%.0 atai%-lua/"), ua)
    end)

    it("configure() replaces the default client's options", function()
      finally(function() atai.configure {} end)
      atai.configure { endpoint = srv.endpoint, api_key = "wrong" }
      local _, err = atai.get_job(SEED)
      assert.are.equal("auth", err.kind)
      atai.configure { endpoint = srv.endpoint, api_key = srv.key }
      local job = assert(atai.get_job(SEED))
      assert.are.equal(SEED, job.id)
      assert.are.equal(atai.default_client(), atai.default_client())
    end)

    it("reads ATAI_API_KEY and ATAI_API_ENDPOINT (a bare root gains /v0.5)", function()
      local root = srv.endpoint:gsub("/v0%.5$", "")
      local out, ok = util.run_lua([[
        local atai = require("atai")
        local job, err = atai.get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(job and job.status or tostring(err))
      ]], { ATAI_API_KEY = srv.key, ATAI_API_ENDPOINT = root })
      assert.is_true(ok, out)
      assert.are.equal("COMPLETED\n", out)
    end)

    it("without ATAI_API_KEY every call is a config error", function()
      local out = util.run_lua([[
        local atai = require("atai")
        local job, err = atai.get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(err.kind, err.message)
      ]], { ATAI_API_KEY = false, ATAI_API_ENDPOINT = srv.endpoint })
      assert.is_truthy(out:find("^config\tno API key: set the ATAI_API_KEY environment variable"), out)
      assert.are.equal(0, #srv:requests())
    end)

    it("reads the key from the file named by ATAI_API_KEY_FILE; ATAI_API_KEY comes first", function()
      local file, wrong = os.tmpname(), os.tmpname()
      local f = assert(io.open(file, "w")); f:write(srv.key, "\n"); f:close()
      f = assert(io.open(wrong, "w")); f:write("sk-wrong"); f:close()
      local code = [[
        local job, err = require("atai").get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(job and job.status or (err.kind .. "\t" .. err.message))
      ]]
      local out = util.run_lua(code, { ATAI_API_KEY = false, ATAI_API_KEY_FILE = file, ATAI_API_ENDPOINT = srv.endpoint })
      assert.are.equal("COMPLETED\n", out)
      out = util.run_lua(code, { ATAI_API_KEY = srv.key, ATAI_API_KEY_FILE = wrong, ATAI_API_ENDPOINT = srv.endpoint })
      assert.are.equal("COMPLETED\n", out)
      f = assert(io.open(file, "w")); f:close()
      local requests = #srv:requests()
      out = util.run_lua(code, { ATAI_API_KEY = false, ATAI_API_KEY_FILE = file, ATAI_API_ENDPOINT = srv.endpoint })
      assert.is_truthy(out:find("^config\tATAI_API_KEY_FILE: " .. file:gsub("%p", "%%%0") .. " is empty"), out)
      os.remove(file)
      out = util.run_lua(code, { ATAI_API_KEY = false, ATAI_API_KEY_FILE = file, ATAI_API_ENDPOINT = srv.endpoint })
      assert.is_truthy(out:find("^config\tATAI_API_KEY_FILE: cannot read "), out)
      assert.is_falsy(out:find("sk-wrong", 1, true))
      os.remove(wrong)
      assert.are.equal(requests, #srv:requests())
    end)

    it("an http:// ATAI_API_ENDPOINT to another host is a config error, not a request", function()
      local out = util.run_lua([[
        local atai = require("atai")
        local job, err = atai.get_job("job_2abc3def4ghi5jkl6mno7pqr")
        print(err.kind, err.message)
      ]], { ATAI_API_KEY = "k", ATAI_API_ENDPOINT = "http://api.u1.archetypeai.app" })
      assert.is_truthy(out:find("^config\tATAI_API_ENDPOINT: endpoint must use https"), out)
    end)

    it("argument errors still raise before a config error is returned", function()
      local c = atai.new { endpoint = srv.endpoint }
      assert.has_error(function() c:get_job(42) end)
      c:close()
    end)
  end)

  describe("job helpers", function()
    it("status constants", function()
      for _, s in ipairs({ "PENDING", "ADMITTED", "RUNNING", "COMPLETED", "FAILED", "PREEMPTED", "CANCELLED" }) do
        assert.are.equal(s, atai[s])
      end
      assert.are.equal(7, #atai.STATUSES)
    end)

    it("is_terminal takes a status or a job", function()
      assert.is_true(atai.is_terminal("COMPLETED"))
      assert.is_true(atai.is_terminal("FAILED"))
      assert.is_true(atai.is_terminal({ status = "CANCELLED" }))
      for _, s in ipairs({ "PENDING", "ADMITTED", "RUNNING", "PREEMPTED", "SOMETHING_NEW" }) do
        assert.is_false(atai.is_terminal(s))
      end
      assert.has_error(function() atai.is_terminal(nil) end)
      assert.has_error(function() atai.is_terminal({}) end)
    end)

    it("exposes VERSION, null and version info", function()
      assert.is_truthy(atai.VERSION:match("^%d+%.%d+%.%d+$"))
      assert.are.equal("userdata", type(atai.null))
      local info = atai.core.version_info()
      assert.are.equal(atai.VERSION, info.version)
      assert.is_truthy(info.curl_version:match("^%d+%.%d+"))
    end)
  end)
end)

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
      { "retry_backoff", -0.1 }, { "timeout", 0 / 0 },
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

    it("raise on a non-table", function()
      assert.has_error(function() atai.new("k") end)
      assert.has_error(function() atai.configure(nil) end)
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

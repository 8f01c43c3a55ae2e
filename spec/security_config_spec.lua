-- spec/security_config_spec.lua: proxy URLs and loopback hosts, the rules
-- that keep the API key off the network in clear text and away from hosts
-- smuggled into a proxy URL's userinfo.
local atai = require("atai")
local config = require("atai.config")

local CLEAR = "http://127.0.0.1:1/v0.5" -- an http:// endpoint: the key travels in clear
local TLS = "https://api.example/v0.5"

-- Makes a client (and closes it); returns ok, message.
local function try_new(endpoint, proxy)
  local ok, c = pcall(function()
    local c = atai.new { endpoint = endpoint, api_key = "k", proxy = proxy }
    return c -- not a tail call: the error names this line
  end)
  if ok then c:close() end
  return ok, c
end

-- Asserts that the proxy is refused by atai.new and atai.configure, with
-- a message naming the option and quoting nothing of the value.
local function assert_refused(endpoint, proxy, why)
  local ok, msg = try_new(endpoint, proxy)
  assert.is_false(ok, proxy)
  assert.is_truthy(msg:find("bad argument #1 to 'new' (option 'proxy': ", 1, true), msg)
  if why then assert.is_truthy(msg:find(why, 1, true), msg) end
  assert.is_truthy(msg:find("security_config_spec.lua:", 1, true), msg) -- the caller's line
  for _, part in ipairs({ "evil", "alice", "s3cret", "u:p", "/path", "?x", "#f", "99999", "80a" }) do
    if proxy:find(part, 1, true) then assert.is_falsy(msg:find(part, 1, true), msg) end
  end
  ok, msg = pcall(atai.configure, { endpoint = endpoint, api_key = "k", proxy = proxy })
  assert.is_false(ok, proxy)
  assert.is_truthy(msg:find("bad argument #1 to 'configure' (option 'proxy': ", 1, true), msg)
end

describe("security of the configuration", function()
  describe("a proxy URL with userinfo is refused", function()
    local userinfo = {
      "alice:s3cret@host", "localhost:1@evil", "http://127.0.0.1@evil", "127.0.0.1:1@evil.example:3128",
      "socks5h://u:p@127.0.0.1", "http://[::1]@evil", "http://evil.example/@127.0.0.1", "@127.0.0.1",
      "http://alice@127.0.0.1:3128", "127.0.0.1\\@evil.example", "http://127.0.0.1:3128@",
    }
    for _, proxy in ipairs(userinfo) do
      it(proxy .. " (http:// endpoint)", function() assert_refused(CLEAR, proxy, "credentials") end)
      it(proxy .. " (https:// endpoint)", function() assert_refused(TLS, proxy, "credentials") end)
      it(proxy .. " by parse_proxy", function() assert.is_nil((config.parse_proxy(proxy))) end)
    end
  end)

  describe("a malformed proxy URL is refused", function()
    local malformed = {
      { "127.0.0.1:", "port" }, { "127.0.0.1:0", "port" }, { "127.0.0.1:65536", "port" },
      { "127.0.0.1:99999", "port" }, { "127.0.0.1:123456", "port" }, { "127.0.0.1:80a", "port" },
      { "127.0.0.1:-1", "port" }, { "127.0.0.1:+80", "port" }, { "127.0.0.1: 80", "port" },
      { "[::1]:", "port" }, { "[::1]x", "port" }, { "127.0.0.1:3128:3129", "port" },
      { "http://", "host" }, { ":3128", "host" }, { "http://:3128", "host" }, { "[::1", "host" },
      { "[]:80", "host" }, { " 127.0.0.1:3128", "host" }, { "127.0.0.1%2e:80", "port" },
      { "http://127.0.0.1:3128/path", "end after host and port" },
      { "http://127.0.0.1:3128?x", "end after host and port" },
      { "http://127.0.0.1:3128#f", "end after host and port" },
      { "http://127.0.0.1:3128//", "end after host and port" },
      { "ftp://127.0.0.1:21", "scheme" }, { "file:///etc/passwd", "scheme" }, { "socks6://127.0.0.1", "scheme" },
    }
    for _, case in ipairs(malformed) do
      it(("%q (%s)"):format(case[1], case[2]), function()
        assert_refused(CLEAR, case[1], case[2])
        assert_refused(TLS, case[1], case[2])
      end)
    end

    it("an empty string or a non-string", function()
      for _, proxy in ipairs({ "", {}, 3128, true }) do
        local ok, msg = pcall(atai.new, { endpoint = TLS, api_key = "k", proxy = proxy })
        assert.is_false(ok)
        assert.is_truthy(msg:find("option 'proxy': proxy URL string expected, got " .. type(proxy), 1, true), msg)
      end
    end)
  end)

  describe("with an http:// endpoint the proxy must be on loopback", function()
    local off_loopback = {
      "proxy.example:3128", "http://10.0.0.1:3128", "http://0127.0.0.1:3128", "http://127.0.0.1.evil.example",
      "http://localhost.evil", "socks5h://[::2]:1080", "https://128.0.0.1", "127.0.0.01:3128",
      "127.1:3128", "2130706433:3128", "[::ffff:127.0.0.1]:3128", "127.0.0.256",
    }
    for _, proxy in ipairs(off_loopback) do
      it("refuses " .. proxy, function() assert_refused(CLEAR, proxy, "on loopback") end)
    end

    local allowed = {
      { "127.0.0.1:3128", "http://127.0.0.1:3128" },
      { "socks5h://127.0.0.1:1080", "socks5h://127.0.0.1:1080" },
      { "[::1]:8080", "http://[::1]:8080" },
      { "http://[::1]:3128", "http://[::1]:3128" },
      { "http://[::1]:3128/", "http://[::1]:3128" },
      { "HTTPS://LOCALHOST:8443", "https://localhost:8443" },
      { "socks4a://localhost", "socks4a://localhost" },
      { "socks4://127.0.0.1:01080", "socks4://127.0.0.1:1080" },
      { "socks5://127.255.255.254:1080", "socks5://127.255.255.254:1080" },
      { "localhost", "http://localhost" },
    }
    for _, case in ipairs(allowed) do
      it(("allows %s, passed on as %s"):format(case[1], case[2]), function()
        assert.are.equal(case[2], config.resolve({ endpoint = CLEAR, proxy = case[1] }, "new").proxy)
        assert.is_true((try_new(CLEAR, case[1])))
      end)
    end

    it("and the environment's proxies are switched off (proxy = '')", function()
      assert.are.equal("", config.resolve({ endpoint = CLEAR }, "new").proxy)
    end)
  end)

  describe("with an https:// endpoint", function()
    it("any host may be the proxy (TLS protects the key), rebuilt from its parts", function()
      local cases = {
        { "proxy.example:3128", "http://proxy.example:3128" },
        { "https://10.0.0.1:3128/", "https://10.0.0.1:3128" },
        { "socks5h://[2001:db8::1]:1080", "socks5h://[2001:db8::1]:1080" },
        { "http://127.0.0.1:3128", "http://127.0.0.1:3128" },
      }
      for _, case in ipairs(cases) do
        assert.are.equal(case[2], config.resolve({ endpoint = TLS, proxy = case[1] }, "new").proxy)
        assert.is_true((try_new(TLS, case[1])))
      end
    end)

    it("libcurl's own *_proxy variables apply when no proxy is given", function()
      assert.is_nil(config.resolve({ endpoint = TLS }, "new").proxy)
    end)
  end)

  describe("parse_proxy", function()
    it("returns scheme, host and port", function()
      assert.are.same({ scheme = "socks5h", host = "[::1]", port = "1080", url = "socks5h://[::1]:1080" },
        config.parse_proxy("SOCKS5H://[::1]:1080"))
      assert.are.same({ scheme = "http", host = "proxy.example", url = "http://proxy.example" },
        config.parse_proxy("proxy.example"))
    end)
  end)

  describe("loopback hosts", function()
    local cases = {
      { "localhost", true }, { "[::1]", true }, { "127.0.0.1", true }, { "127.1.2.3", true },
      { "127.255.255.255", true }, { "0127.0.0.1", false }, { "127.00.0.1", false }, { "127.0.0.256", false },
      { "128.0.0.1", false }, { "127.1", false }, { "[::2]", false }, { "localhost.evil", false },
      { "127.0.0.1.evil", false }, { "1270.0.0.1", false }, { "", false },
    }
    for _, case in ipairs(cases) do
      it(("%q is %s"):format(case[1], case[2] and "loopback" or "not loopback"), function()
        assert.are.equal(case[2], config.is_loopback(case[1]))
      end)
    end
  end)

  describe("endpoints", function()
    it("never quotes the endpoint in its error (it may hold credentials)", function()
      for _, url in ipairs({ "https://user:s3cret@host", "s3cret", "ftp://s3cret", "https://s3cret:0" }) do
        local ok, msg = pcall(atai.new, { endpoint = url, api_key = "k" })
        assert.is_false(ok)
        assert.is_falsy(msg:find("s3cret", 1, true), msg)
      end
    end)

    it("lower-cases the host and drops a port's leading zeros", function()
      assert.are.equal("https://api.example:8443/v0.5", (config.normalize_endpoint("https://API.Example:08443")))
    end)
  end)
end)

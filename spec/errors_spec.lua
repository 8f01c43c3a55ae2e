-- spec/errors_spec.lua: every error kind, the error table and its tostring.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local PATH = "/v0.5/batch/jobs/" .. SEED

describe("errors", function()
  local t = fake_api({ max_retries = 0, retry_backoff = 0.5 })

  local function fail_with(response, c)
    t.srv:fault { path = PATH, responses = { response } }
    local job, err = (c or t.client):get_job(SEED)
    assert.is_nil(job)
    assert.is_true(atai.is_error(err))
    return err
  end

  describe("HTTP statuses map to kinds", function()
    local cases = {
      { 400, "invalid_request" }, { 401, "auth" }, { 403, "permission" }, { 404, "not_found" },
      { 409, "conflict" }, { 413, "too_large" }, { 422, "invalid_request" },
      { 429, "rate_limited" }, { 500, "server" }, { 502, "server" }, { 503, "server" },
      { 418, "http" }, { 301, "http" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " is " .. case[2], function()
        local err = fail_with { status = case[1], json = { errors = { {
          code = "some_code", message = "went wrong", suggestion = "try again", error_uid = "err-1",
        } } } }
        assert.are.equal(case[2], err.kind)
        assert.are.equal(case[1], err.status)
        assert.are.equal("some_code", err.code)
        assert.are.equal("went wrong", err.message)
        assert.are.equal("err-1", err.error_uid)
        assert.are.equal("try again", err.suggestion)
        assert.are.equal(1, err.attempts)
        assert.are.equal("GET", err.method)
        assert.are.equal(t.srv.endpoint .. "/batch/jobs/" .. SEED, err.url)
        assert.are.equal("table", type(err.errors))
        assert.are.equal("some_code", err.errors[1].code)
      end)
    end
  end)

  it("reads the documented 404 envelope of the fake server", function()
    local _, err = t.client:get_job("job_missing")
    assert.are.equal("not_found", err.kind)
    assert.are.equal(404, err.status)
    assert.are.equal("string", type(err.code))
    assert.are.equal("string", type(err.error_uid))
    assert.is_truthy(err.message:find("job_missing", 1, true))
    assert.is_false(err.retryable)
  end)

  it("reports every error of a multi-error envelope", function()
    local err = fail_with { status = 400, json = { errors = {
      { code = "missing_parameter", message = "Failed to find key: name", error_uid = "err-a" },
      { code = "invalid_value", message = "bad limit", error_uid = "err-b" },
    } } }
    assert.are.equal("missing_parameter", err.code)
    assert.are.equal("Failed to find key: name (and 1 more)", err.message)
    assert.are.equal(2, #err.errors)
    assert.are.equal("invalid_value", err.errors[2].code)
  end)

  it("understands the legacy {detail} body", function()
    local err = fail_with { status = 401, json = { detail = "Invalid API key" } }
    assert.are.equal("auth", err.kind)
    assert.are.equal("Invalid API key", err.message)
    assert.is_nil(err.code)
  end)

  it("understands a validation {detail: [{msg}]} body", function()
    local err = fail_with { status = 422, json = { detail = { { loc = { "body" }, msg = "field required" } } } }
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal("field required", err.message)
  end)

  it("understands the superseded {error: {...}} body", function()
    local err = fail_with { status = 429, json = {
      error = { code = "ERROR_CODE", message = "Human-readable error message", details = { retry_after = 60 } },
    } }
    assert.are.equal("rate_limited", err.kind)
    assert.are.equal("ERROR_CODE", err.code)
    assert.are.equal("Human-readable error message", err.message)
    assert.are.equal(60, err.retry_after)
  end)

  it("keeps an HTML 502 page as body, with a status message", function()
    local page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    local err = fail_with { status = 502, body = page, headers = { ["Content-Type"] = "text/html" } }
    assert.are.equal("server", err.kind)
    assert.are.equal(502, err.status)
    assert.are.equal("HTTP 502", err.message)
    assert.are.equal(page, err.body)
    assert.is_true(err.retryable)
  end)

  it("keeps at most 4 KiB of a failed body", function()
    local err = fail_with { status = 500, body = ("x"):rep(10000) }
    assert.are.equal(4096, #err.body)
  end)

  it("says a redirect is not followed", function()
    local err = fail_with { status = 302, headers = { Location = "https://elsewhere.example/" } }
    assert.are.equal("http", err.kind)
    assert.is_truthy(err.message:find("redirect not followed", 1, true))
    assert.are.equal(1, #t.srv:requests())
  end)

  it("decode: malformed JSON in a 200", function()
    local err = fail_with { status = 200, body = '{"id": "job_x", "status": ' }
    assert.are.equal("decode", err.kind)
    assert.are.equal(200, err.status)
    assert.is_truthy(err.message:find("not the JSON expected", 1, true))
    assert.are.equal('{"id": "job_x", "status": ', err.body)
  end)

  it("decode: an empty 200 body", function()
    local err = fail_with { status = 200, body = "" }
    assert.are.equal("decode", err.kind)
    assert.is_truthy(err.message:find("empty body", 1, true))
  end)

  it("decode: a 200 whose JSON is not an object", function()
    local err = fail_with { status = 200, body = "[1, 2]" }
    assert.are.equal("decode", err.kind)
  end)

  it("decode: JSON extensions such as NaN are refused", function()
    local err = fail_with { status = 200, body = '{"x": NaN}' }
    assert.are.equal("decode", err.kind)
  end)

  it("too_large: a body over max_response_bytes", function()
    local small = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_response_bytes = 100, max_retries = 0 }
    local _, err = small:get_job(SEED)
    small:close()
    assert.are.equal("too_large", err.kind)
    assert.is_truthy(err.message:find("max_response_bytes", 1, true))
    assert.is_false(err.retryable)
  end)

  it("too_large: the cap applies to the decoded size of a gzip body", function()
    t.srv:fault { path = PATH, responses = { { gzip = true } } }
    local small = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_response_bytes = 200, max_retries = 0 }
    local _, err = small:get_job(SEED)
    small:close()
    assert.are.equal("too_large", err.kind)
  end)

  it("timeout: a response slower than the timeout", function()
    local quick = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, timeout = 0.2, max_retries = 0 }
    t.srv:fault { path = PATH, responses = { { delay = 2 } } }
    local _, err = quick:get_job(SEED)
    quick:close()
    assert.are.equal("timeout", err.kind)
    assert.is_nil(err.status)
    assert.are.equal("number", type(err.curl_code))
    assert.is_true(err.retryable)
  end)

  it("network: a connection closed mid-body", function()
    local err = fail_with { close_after_bytes = 10 }
    assert.are.equal("network", err.kind)
    assert.is_true(err.retryable)
  end)

  it("network: a connection closed without a response", function()
    local err = fail_with { close = true }
    assert.are.equal("network", err.kind)
  end)

  it("network: nothing listening", function()
    local dead = atai.new { endpoint = "http://127.0.0.1:1/v0.5", api_key = "k", max_retries = 0 }
    local _, err = dead:get_job(SEED)
    dead:close()
    assert.are.equal("network", err.kind)
    assert.is_truthy(err.message:find("127.0.0.1", 1, true))
    assert.is_true(err.retryable)
  end)

  it("network: a host name that does not resolve", function()
    local c = atai.new { endpoint = "https://atai-test.invalid/v0.5", api_key = "k", max_retries = 0 }
    local _, err = c:get_job(SEED)
    c:close()
    assert.are.equal("network", err.kind)
    assert.are.equal(6, err.curl_code) -- CURLE_COULDNT_RESOLVE_HOST
    assert.is_true(err.retryable)
  end)

  it("network: TLS to a server that does not speak it", function()
    local tls = atai.new { endpoint = "https://127.0.0.1:" .. t.srv.port .. "/v0.5", api_key = "k", max_retries = 0 }
    local _, err = tls:get_job(SEED)
    tls:close()
    assert.are.equal("network", err.kind)
    assert.is_false(err.retryable)
  end)

  it("config: a ca_file that cannot be read", function()
    local c = atai.new { endpoint = "https://127.0.0.1:" .. t.srv.port .. "/v0.5", api_key = "k",
      ca_file = "/nonexistent/ca.pem", max_retries = 0 }
    local _, err = c:get_job(SEED)
    c:close()
    assert.are.equal("config", err.kind)
  end)

  it("has a readable tostring", function()
    local _, err = t.client:get_job("job_missing")
    local s = tostring(err)
    assert.is_truthy(s:find("^atai not_found error %(HTTP 404%): "), s)
    assert.is_truthy(s:find("job_missing", 1, true), s)
    assert.is_truthy(s:find("[error_uid=", 1, true), s)
  end)

  it("atai.core.new_error makes Lua-side errors of the same shape", function()
    local err = atai.core.new_error { kind = "timeout", message = "waited too long" }
    assert.is_true(atai.is_error(err))
    assert.is_false(err.retryable)
    assert.are.equal("atai timeout error: waited too long", tostring(err))
  end)

  describe("the API key never leaks", function()
    local KEY = "sk-very-secret-key-0123456789"

    local function assert_no_key(v)
      for _, s in ipairs(util.strings(v)) do
        -- the message never quotes the string: a failure must not print the key
        assert.is_falsy(s:find(KEY, 1, true), "the key leaked into a string of " .. #s .. " bytes")
      end
      if type(v) == "table" or type(v) == "userdata" then
        assert.is_falsy(tostring(v):find(KEY, 1, true))
      end
    end

    it("not in auth errors, their tostring or their body", function()
      local c = atai.new { endpoint = t.srv.endpoint, api_key = KEY, max_retries = 0 }
      local _, err = c:get_job(SEED)
      assert.are.equal("auth", err.kind)
      assert.are.equal("wrong", t.srv:requests()[1].auth)
      assert_no_key(err)
      assert_no_key(c)
      c:close()
    end)

    it("not in network, timeout or status errors", function()
      local dead = atai.new { endpoint = "http://127.0.0.1:1/v0.5", api_key = KEY, max_retries = 0 }
      local _, err = dead:get_job(SEED)
      assert_no_key(err)
      dead:close()
      local c = atai.new { endpoint = t.srv.endpoint, api_key = KEY, max_retries = 0, timeout = 0.2 }
      t.srv:fault { path = PATH, responses = { { delay = 1 }, { status = 500 } } }
      _, err = c:get_job(SEED)
      assert_no_key(err)
      _, err = c:get_job(SEED)
      assert_no_key(err)
      c:close()
    end)

    it("not in argument errors about options", function()
      local ok, msg = pcall(atai.new, { api_key = KEY, endpoint = "http://example.com" })
      assert.is_false(ok)
      assert.is_falsy(msg:find(KEY, 1, true))
      ok, msg = pcall(atai.new, { api_key = KEY, timeout = "soon" })
      assert.is_false(ok)
      assert.is_falsy(msg:find(KEY, 1, true))
    end)
  end)
end)

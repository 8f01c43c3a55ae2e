-- spec/request_spec.lua: client:request, the generic call every endpoint uses.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("request", function()
  local t = fake_api()

  it("returns the decoded body and meta {status, headers, attempts}", function()
    local body, meta = t.client:request("GET", "/batch/jobs/" .. SEED)
    assert.are.equal(SEED, body.id)
    assert.are.equal(200, meta.status)
    assert.are.equal(1, meta.attempts)
    assert.are.equal("application/json", meta.headers["content-type"]:match("^[^;]+"))
  end)

  it("encodes query values: strings, integers, booleans, lists repeat their key", function()
    local _, meta = t.client:request("GET", "/batch/jobs", { query = {
      status = "RUNNING", limit = 10, offset = 0.0, flag = true,
      q = "a b&c=d/é", multi = { "processing", "pending" },
    } })
    assert.are.equal(200, meta.status)
    local req = t.srv:requests()[1]
    local q = util.parse_query(req.query)
    assert.are.same({ "RUNNING" }, q.status)
    assert.are.same({ "10" }, q.limit)
    assert.are.same({ "0" }, q.offset)
    assert.are.same({ "true" }, q.flag)
    assert.are.same({ "a b&c=d/\195\169" }, q.q)
    assert.are.same({ "processing", "pending" }, q.multi)
    assert.is_truthy(req.query:find("q=a%20b%26c%3Dd%2F%C3%A9", 1, true), req.query)
  end)

  it("sends a Lua table as JSON with Content-Type: application/json", function()
    t.srv:fault { method = "POST", path = "/v0.5/echo", responses = { { status = 200, json = { ok = true } } } }
    local body = {
      name = "caf\195\169 \240\159\154\128 \"quoted\" \\ \n",
      nested = { a = { b = { c = { 1, 2, { d = false } } } } },
      list = { "x", "y" },
      empty_list = atai.array(),
      empty_object = {},
      nothing = atai.null,
      big = 1234567890123456,
      float = 0.1,
      negative = -42,
    }
    local res, meta = t.client:request("POST", "/echo", { body = body })
    assert.are.same({ ok = true }, res)
    assert.are.equal(200, meta.status)
    local req = t.srv:requests()[1]
    assert.are.equal("application/json", req.headers["content-type"])
    local raw = req.body
    assert.is_truthy(raw:find('"big":1234567890123456', 1, true), raw)
    assert.is_truthy(raw:find('"float":0.1', 1, true), raw)
    assert.is_truthy(raw:find('"empty_list":[]', 1, true), raw)
    assert.is_truthy(raw:find('"empty_object":{}', 1, true), raw)
    assert.is_truthy(raw:find('"nothing":null', 1, true), raw)
    assert.is_truthy(raw:find('"list":["x","y"]', 1, true), raw)
    local decoded = require("cjson").decode(raw)
    assert.are.equal(body.name, decoded.name)
    assert.are.equal(false, decoded.nested.a.b.c[3].d)
    assert.are.equal(-42, decoded.negative)
  end)

  it("escapes control characters in JSON strings", function()
    t.srv:fault { method = "POST", path = "/v0.5/echo", responses = { { status = 200, json = {} } } }
    assert(t.client:request("POST", "/echo", { body = { s = "\1\31\127" } }))
    assert.are.equal('{"s":"\\u0001\\u001F\127"}', t.srv:requests()[1].body)
  end)

  it("sends no Content-Type without a body", function()
    assert(t.client:request("GET", "/batch/jobs/" .. SEED))
    assert.is_nil(t.srv:requests()[1].headers["content-type"])
  end)

  it("sends a body-less POST without any Content-Type", function()
    t.srv:fault { method = "POST", path = "/v0.5/echo", responses = { { status = 200, json = {} } } }
    assert(t.client:request("POST", "/echo"))
    assert.is_nil(t.srv:requests()[1].headers["content-type"])
    assert.are.equal("0", t.srv:requests()[1].headers["content-length"])
  end)

  it("lets opts.headers replace atai's Accept and Content-Type, not add to them", function()
    t.srv:fault { method = "POST", path = "/v0.5/echo", responses = { { status = 200, json = {} } } }
    assert(t.client:request("POST", "/echo", { body = { a = 1 },
      headers = { accept = "text/plain", ["Content-Type"] = "application/merge-patch+json" } }))
    local h = t.srv:requests()[1].headers
    assert.are.equal("text/plain", h["accept"])
    assert.are.equal("application/merge-patch+json", h["content-type"])
  end)

  it("checks opts.query even when the client has no key", function()
    local c = atai.new { endpoint = t.srv.endpoint }
    local ok, msg = pcall(c.request, c, "GET", "/x", { query = { a = print } })
    c:close()
    assert.is_false(ok)
    assert.is_truthy(msg:find("opts.query.a", 1, true), msg)
  end)

  it("opts.timeout bounds one call's attempts", function()
    t.srv:fault { path = "/v0.5/slow", responses = { { delay = 2, status = 200, json = {} } } }
    local _, err = t.client:request("GET", "/slow", { timeout = 0.2, max_retries = 0 })
    assert.are.equal("timeout", err.kind)
    assert.are.equal(1, err.attempts)
  end)

  it("sends extra headers", function()
    assert(t.client:request("GET", "/batch/jobs/" .. SEED, { headers = { ["X-Trace"] = "abc" } }))
    assert.are.equal("abc", t.srv:requests()[1].headers["x-trace"])
    assert.are.equal("ok", t.srv:requests()[1].auth)
  end)

  it("returns an empty table for an empty 2xx body", function()
    t.srv:fault { path = "/v0.5/empty", responses = { { status = 204, body = "" } } }
    local body, meta = t.client:request("DELETE", "/empty")
    assert.are.same({}, body)
    assert.are.equal(204, meta.status)
  end)

  it("returns any JSON value, not only objects", function()
    t.srv:fault { path = "/v0.5/list", responses = { { status = 200, body = "[1, null, 3]" } } }
    local body = t.client:request("GET", "/list")
    assert.are.equal(3, #body)
    assert.are.equal(atai.null, body[2])
  end)

  it("reports failures with the same error table", function()
    local body, err = t.client:request("GET", "/batch/jobs/job_missing")
    assert.is_nil(body)
    assert.are.equal("not_found", err.kind)
    assert.are.equal(404, err.status)
  end)

  it("is on the module too", function()
    finally(function() atai.configure {} end)
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    local body = atai.request("GET", "/batch/jobs/queue")
    assert.are.equal("table", type(body.queues))
  end)

  describe("bad arguments raise before any request", function()
    local cases = {
      { "unknown method", function() t.client:request("FETCH", "/x") end, "method: one of GET POST PUT PATCH DELETE HEAD expected, got FETCH" },
      { "lowercase method", function() t.client:request("get", "/x") end, "got get" },
      { "no path", function() t.client:request("GET") end, "bad argument #2 to 'request' (path: string expected, got no value)" },
      { "relative path", function() t.client:request("GET", "batch/jobs") end, "path must start with '/'" },
      { "query in the path", function() t.client:request("GET", "/batch/jobs?x=1") end, "put the query in opts.query" },
      { "a .. segment", function() t.client:request("GET", "/batch/../../files") end, "'.' and '..' segments" },
      { "a trailing ..", function() t.client:request("GET", "/batch/..") end, "'.' and '..' segments" },
      { "a . segment", function() t.client:request("GET", "/./batch") end, "'.' and '..' segments" },
      { "finding 7 (issue 11): a %2e%2e segment", function() t.client:request("GET", "/batch/%2e%2e/files") end, "'.' and '..' segments" },
      { "finding 7 (issue 11): a .%2e segment", function() t.client:request("GET", "/batch/.%2e/files") end, "'.' and '..' segments" },
      { "finding 7 (issue 11): a %2E. segment", function() t.client:request("GET", "/batch/%2E./files") end, "'.' and '..' segments" },
      { "finding 7 (issue 11): a %2e segment", function() t.client:request("GET", "/batch/%2e/jobs") end, "'.' and '..' segments" },
      { "finding 7 (issue 11): a trailing %2E%2E", function() t.client:request("GET", "/batch/%2E%2E") end, "'.' and '..' segments" },
      { "space in the path", function() t.client:request("GET", "/batch jobs") end, "invalid byte" },
      { "opts not a table", function() t.client:request("GET", "/x", "q") end, "bad argument #3 to 'request' (opts: table expected, got string)" },
      { "query not a table", function() t.client:request("GET", "/x", { query = "a=b" }) end, "opts.query: table expected" },
      { "query value a function", function() t.client:request("GET", "/x", { query = { a = print } }) end, "opts.query.a" },
      { "query value NaN", function() t.client:request("GET", "/x", { query = { a = 0 / 0 } }) end, "opts.query.a" },
      { "query key a number", function() t.client:request("GET", "/x", { query = { "a" } }) end, "keys must be strings" },
      { "header with CRLF", function() t.client:request("GET", "/x", { headers = { X = "a\r\nB: c" } }) end, "invalid header" },
      { "header name with space", function() t.client:request("GET", "/x", { headers = { ["X Y"] = "a" } }) end, "invalid header" },
      { "Authorization header", function() t.client:request("GET", "/x", { headers = { authorization = "Bearer x" } }) end,
        "Authorization is set from api_key" },
      { "body with a function", function() t.client:request("POST", "/x", { body = { f = print } }) end, "request body: cannot encode a function" },
      { "body with NaN", function() t.client:request("POST", "/x", { body = { n = 0 / 0 } }) end, "request body: cannot encode NaN" },
      { "body with a boolean key", function() t.client:request("POST", "/x", { body = { [true] = 1 } }) end, "keys must be strings" },
      { "body with a cycle", function()
        local cyclic = {}
        cyclic.self = cyclic
        t.client:request("POST", "/x", { body = cyclic })
      end, "nested deeper than" },
      { "GET with a body", function() t.client:request("GET", "/x", { body = { a = 1 } }) end, "opts.body: a GET request has no body" },
      { "HEAD with a body", function() t.client:request("HEAD", "/x", { body = {} }) end, "opts.body: a HEAD request has no body" },
      { "timeout zero", function() t.client:request("GET", "/x", { timeout = 0 }) end, "opts.timeout" },
      { "idempotent not a boolean", function() t.client:request("POST", "/x", { idempotent = 1 }) end, "opts.idempotent" },
      { "max_retries negative", function() t.client:request("GET", "/x", { max_retries = -1 }) end, "opts.max_retries" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local ok, msg = pcall(case[2])
        assert.is_false(ok)
        assert.is_truthy(tostring(msg):find(case[3], 1, true), msg)
        assert.are.equal(0, #t.srv:requests())
      end)
    end
  end)

  describe("retry policy per method", function()
    local function retries_of(method, response, opts)
      t.srv:fault { path = "/v0.5/thing", responses = { response, { status = 200, json = { ok = true } } } }
      opts = opts or {}
      local body, err = t.client:request(method, "/thing", opts)
      return #t.srv:requests(), body, err
    end

    it("GET retries a host name that does not resolve", function()
      local c = atai.new { endpoint = "https://atai-test.invalid/v0.5", api_key = "k", retry_backoff = 0.01 }
      local _, err = c:request("GET", "/thing")
      c:close()
      assert.are.equal("network", err.kind)
      assert.are.equal(3, err.attempts)
    end)

    it("GET retries a 503", function()
      local n, body = retries_of("GET", { status = 503 })
      assert.are.equal(2, n)
      assert.is_true(body.ok)
    end)

    for _, method in ipairs({ "POST", "DELETE", "PUT", "PATCH" }) do
      it(method .. " does not retry a 503, a timeout or a cut connection", function()
        local n, body, err = retries_of(method, { status = 503 })
        assert.are.equal(1, n)
        assert.is_nil(body)
        assert.are.equal("server", err.kind)
        assert.is_false(err.retryable)
        t.srv:reset()
        n = retries_of(method, { close_after_bytes = 3 })
        assert.are.equal(1, n)
        t.srv:reset()
        n, body, err = retries_of(method, { delay = 1 }, { timeout = 0.2 })
        assert.are.equal(1, n)
        assert.is_nil(body)
        assert.are.equal("timeout", err.kind)
        assert.are.equal(1, err.attempts)
      end)

      it(method .. " is sent once even when a kept-alive connection dies unanswered", function()
        assert(t.client:request("GET", "/batch/jobs/queue")) -- warm the connection
        t.srv:reset()
        local _, _, err = retries_of(method, { close = true })
        assert.are.equal("network", err.kind)
        local sent = 0
        for _, r in ipairs(t.srv:requests()) do sent = sent + (r.method == method and 1 or 0) end
        assert.are.equal(1, sent)
      end)

      it(method .. " retries a host name that does not resolve (nothing was sent)", function()
        local c = atai.new { endpoint = "https://atai-test.invalid/v0.5", api_key = "k", retry_backoff = 0.01 }
        local _, err = c:request(method, "/thing")
        c:close()
        assert.are.equal("network", err.kind)
        assert.are.equal(3, err.attempts)
      end)

      it(method .. " retries a refused connection (nothing was sent)", function()
        local dead = atai.new { endpoint = "http://127.0.0.1:1/v0.5", api_key = "k", retry_backoff = 0.01 }
        local _, err = dead:request(method, "/thing")
        dead:close()
        assert.are.equal("network", err.kind)
        assert.are.equal(3, err.attempts)
        assert.is_true(err.retryable)
      end)
    end

    it("opts.idempotent = true lets a POST retry like a GET", function()
      local n, body = retries_of("POST", { status = 503 }, { idempotent = true })
      assert.are.equal(2, n)
      assert.is_true(body.ok)
    end)

    it("opts.idempotent = false stops a GET from retrying", function()
      local n = retries_of("GET", { status = 503 }, { idempotent = false })
      assert.are.equal(1, n)
    end)

    it("opts.max_retries overrides the client's", function()
      t.srv:fault { path = "/v0.5/thing", responses = { { status = 503 }, { status = 503 }, { status = 503 } } }
      local _, err = t.client:request("GET", "/thing", { max_retries = 1 })
      assert.are.equal(2, err.attempts)
    end)
  end)

  describe("conditional requests", function()
    it("treats 304 Not Modified as success", function()
      t.srv:fault { path = "/v0.5/cond", responses = { { status = 304, body = "" } } }
      local body, meta = t.client:request("GET", "/cond", { headers = { ["If-None-Match"] = '"x"' } })
      assert.are.same({}, body)
      assert.are.equal(304, meta.status)
      assert.are.equal('"x"', t.srv:requests()[1].headers["if-none-match"])
    end)
  end)
end)

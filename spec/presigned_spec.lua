-- spec/presigned_spec.lua: what a presigned (storage) URL may not do to the
-- rest of the client (issue 14): its 429 holds only the transfers to its
-- own host (finding 4), and its query, which holds the signature, shows in
-- no error, on_exchange or on_retry info, handle text or --verbose line
-- (finding 10). The "storage" is the fake API's loopback server answering
-- injected faults on paths outside /v0.5: not under the client's endpoint.
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE7Q%2F20261206%2Fus-east-1"
  .. "&X-Amz-Expires=3600&X-Amz-Signature=5ec2e7deadbeefcafe"

-- Polls `client` until cond() holds (at most 200 polls of 10 ms).
local function poll_until(client, cond)
  for _ = 1, 200 do
    if cond() then return end
    client:poll(0.01)
  end
  error("condition not met")
end

-- The requests the fake server got whose path starts with `prefix`.
local function hits(srv, prefix) return #helpers.requests(srv, prefix) end

-- Whether any string reachable from v (keys, values, nested tables, and
-- tostring of tables with a metatable) contains `needle`.
local function holds(v, needle, seen)
  seen = seen or {}
  if type(v) == "string" then return v:find(needle, 1, true) ~= nil end
  if type(v) ~= "table" or seen[v] then return false end
  seen[v] = true
  if getmetatable(v) and holds(tostring(v), needle, seen) then return true end
  for k, x in pairs(v) do
    if holds(k, needle, seen) or holds(x, needle, seen) then return true end
  end
  return false
end

describe("presigned URLs", function()
  local t = fake_api({ max_retries = 1 })
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.remove(dir) end)

  -- A storage path that answers `n` 429s with Retry-After: 20.
  local function rate_limited(path, n)
    local responses = {}
    for i = 1, n do responses[i] = { status = 429, headers = { ["Retry-After"] = "20" } } end
    t.srv:fault { path = path, responses = responses }
  end

  describe("finding 4", function()
    it("finding 4: a storage host's 429 with Retry-After: 20 delays no concurrent or later get_job", function()
      local retries = {}
      local c = t.new_client { on_retry = function(info) retries[#retries + 1] = info end }
      require("atai.core.private").time_scale(c, 0.2) -- the engine's clock: Retry-After 20 s lasts 4 s here (never waited out)
      rate_limited("/store/x", 2)
      local dl = c.async:download(t.srv:url("/store/x" .. SIGNED), dir .. "/x")
      poll_until(c, function() return #retries == 1 end)
      assert.are.equal(20, retries[1].delay)
      -- a reference on the same clock: half the storage host's wait
      local half = c.async:sleep(10)
      local job = assert(c:get_job(SEED)) -- concurrent with the download's backoff
      assert.are.equal(SEED, job.id)
      assert.is_false(half:done()) -- get_job did not wait for the storage host
      assert.is_false(dl:done())
      assert.are.equal(1, hits(t.srv, "/store/x"))
      dl:cancel() -- its Retry-After is over for nobody else either
      job = assert(c:get_job(SEED)) -- a later one
      assert.are.equal(SEED, job.id)
      assert.is_false(half:done())
      assert.are.equal(2, hits(t.srv, "/v0.5/batch/jobs/" .. SEED))
      half:cancel()
    end)

    it("finding 4: a storage host's 429 holds the later transfers to that host until its Retry-After", function()
      local retries = {}
      local c = t.new_client { on_retry = function(info) retries[#retries + 1] = info end }
      require("atai.core.private").time_scale(c, 0.1) -- Retry-After 20 s lasts 2 s here
      rate_limited("/store/x", 1)
      t.srv:fault { path = "/store/y", responses = { { status = 200, body = "y" } } }
      local first = c.async:download(t.srv:url("/store/x" .. SIGNED), dir .. "/x")
      poll_until(c, function() return #retries == 1 end)
      local half = c.async:sleep(10)
      local second = c.async:download(t.srv:url("/store/y" .. SIGNED), dir .. "/y")
      assert(c:get_job(SEED))
      assert.is_false(half:done())
      assert.are.equal(0, hits(t.srv, "/store/y")) -- same host: it waits
      -- once the hold is over, both go on (the first gets 404: no route)
      assert.is_true(second:wait())
      assert.are.equal("y", helpers.read(dir .. "/y"))
      assert.is_true(half:done()) -- it did wait (10 of 20 s)
      local _, err = first:wait()
      assert.are.equal("not_found", err.kind)
      assert.are.equal(2, err.attempts)
    end)

    it("finding 4: a storage host's 429 does not hold another host's transfers", function()
      local retries = {}
      local c = t.new_client { on_retry = function(info) retries[#retries + 1] = info end }
      require("atai.core.private").time_scale(c, 0.2)
      rate_limited("/store/x", 2)
      t.srv:fault { path = "/store/y", responses = { { status = 200, body = "y" } } }
      local first = c.async:download(t.srv:url("/store/x" .. SIGNED), dir .. "/x")
      poll_until(c, function() return #retries == 1 end)
      local half = c.async:sleep(10)
      -- localhost:<port> is another host (by name) than 127.0.0.1:<port>
      local other = "http://localhost:" .. t.srv.port .. "/store/y" .. SIGNED
      assert.is_true(c:download(other, dir .. "/y"))
      assert.are.equal("y", helpers.read(dir .. "/y"))
      assert.is_false(half:done())
      assert.is_false(first:done())
      first:cancel()
      half:cancel()
    end)

    it("finding 4 (kept): an API 429 still holds every new attempt of the client, downloads included", function()
      local retries = {}
      local c = t.new_client { on_retry = function(info) retries[#retries + 1] = info end }
      require("atai.core.private").time_scale(c, 0.1)
      rate_limited("/v0.5/batch/jobs/" .. SEED, 1)
      local h = c.async:get_job(SEED)
      poll_until(c, function() return #retries == 1 end)
      local half = c.async:sleep(10)
      t.srv:fault { path = "/store/y", responses = { { status = 200, body = "y" } } }
      local dl = c.async:download(t.srv:url("/store/y" .. SIGNED), dir .. "/y")
      poll_until(c, function() return half:done() end)
      assert.are.equal(0, hits(t.srv, "/store/y"))
      assert.is_false(dl:done())
      assert.are.equal(SEED, assert(h:wait()).id)
      assert.is_true(dl:wait())
    end)
  end)

  it("after a 429's hold is over, a transfer waiting for a free slot does not make timeout() 0", function()
    local c = t.new_client { max_concurrency = 1 }
    t.srv:fault { path = "/v0.5/batch/jobs/" .. SEED, responses = {
      { status = 429, headers = { ["Retry-After"] = "0" } }, { pass = true },
      { delay = 0.3, pass = true }, { pass = true } } }
    assert(c:get_job(SEED)) -- the 429 set a hold, over at once
    local a, b = c.async:get_job(SEED), c.async:get_job(SEED) -- b waits for a's slot
    c:poll(0)
    -- a's answer is 0.3 s away: nothing to do before its socket is ready
    assert.is_true(c:timeout() > 0, tostring(c:timeout()))
    assert(a:wait())
    assert(b:wait())
  end)

  describe("finding 10", function()
    it("finding 10: a presigned URL's query (its signature) is in no error, info or handle text", function()
      local exchanges, retries = {}, {}
      local c = t.new_client { on_exchange = function(info) exchanges[#exchanges + 1] = info end,
        on_retry = function(info) retries[#retries + 1] = info end }
      t.srv:fault { path = "/store/secret.csv", responses = { { status = 503 }, { status = 403 } } }
      local url = t.srv:url("/store/secret.csv" .. SIGNED)
      local ok, err = c:download(url, dir .. "/secret.csv")
      assert.is_nil(ok)
      assert.are.equal("permission", err.kind)
      local shown = t.srv:url("/store/secret.csv?REDACTED")
      assert.are.equal(shown, err.url)
      assert.are.equal(2, #exchanges)
      assert.are.equal(1, #retries)
      for _, info in ipairs(exchanges) do
        assert.are.equal(shown, info.url)
        assert.are.equal("/store/secret.csv?REDACTED", info.path)
      end
      assert.are.equal(shown, retries[1].url)
      for _, secret in ipairs({ "5ec2e7deadbeefcafe", "AKIAEXAMPLE7Q", "X-Amz-" }) do
        assert.is_false(holds({ err, tostring(err), exchanges, retries }, secret), secret)
      end
      -- the server got the whole URL: only what atai shows is cut
      local reqs = helpers.requests(t.srv, "/store/secret.csv")
      assert.is_truthy(reqs[1].query:find("X-Amz-Signature=5ec2e7deadbeefcafe", 1, true))
    end)

    it("finding 10: a core handle's text cuts a presigned query; API URLs keep theirs", function()
      local exchanges = {}
      local c = t.new_client { on_exchange = function(info) exchanges[#exchanges + 1] = info end }
      local h = require("atai.core.private").stream(c, { method = "GET", presigned = true, url = t.srv:url("/store/z" .. SIGNED) })
      local text = tostring(h)
      assert.is_truthy(text:find("/store/z?REDACTED", 1, true), text)
      assert.is_falsy(text:find("Signature", 1, true), text)
      h:cancel()
      -- an API request under the endpoint shows its query (pagination, filters)
      assert(c:request("GET", "/batch/jobs", { query = { limit = 2, offset = 1 } }))
      local api = exchanges[#exchanges]
      assert.is_truthy(api.path:find("^/v0%.5/batch/jobs%?"), api.path)
      assert.is_truthy(api.path:find("limit=2", 1, true), api.path)
      assert.is_truthy(api.url:find("offset=1", 1, true), api.url)
      local a = c.async:get_job(SEED)
      assert.is_truthy(tostring(a):find("/v0.5/batch/jobs/" .. SEED, 1, true))
      a:wait()
    end)

    it("finding 10: a URL outside the endpoint's path counts as presigned, a longer sibling path too", function()
      local c = t.new_client { max_retries = 0 }
      -- /v0.50 starts with the endpoint's text (/v0.5) but is not under it
      t.srv:fault { path = "/v0.50/x", responses = { { status = 404 } } }
      local _, err = c:download(t.srv:url("/v0.50/x?sig=1"), dir .. "/x")
      assert.are.equal(t.srv:url("/v0.50/x?REDACTED"), err.url)
    end)

    if util.lua == "lua5.4" then
      it("finding 10: bin/atai --verbose prints presigned requests without their query", function()
        t.srv:control("POST", "/_fake/outputs", { job_id = SEED,
          outputs = { { filename = "a.csv", num_bytes = 10 } } })
        local err_file = os.tmpname()
        local cmd = ("env -u ATAI_API_KEY -u ATAI_API_ENDPOINT ATAI_API_KEY='%s' ATAI_API_ENDPOINT='%s' "
          .. "LUA_CPATH='%s;;' bin/atai --verbose job outputs %s --download '%s' >/dev/null 2>'%s'; echo $?")
          :format(t.srv.key, t.srv.endpoint, util.cpath, SEED, dir .. "/out", err_file)
        local p = assert(io.popen(cmd))
        local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
        p:close()
        local stderr = helpers.read(err_file)
        os.remove(err_file)
        assert.are.equal(0, code, stderr)
        assert.is_truthy(stderr:find("GET /_blob/[^ ]*%?REDACTED %-> 200"), stderr)
        assert.is_truthy(stderr:find("GET /v0.5/batch/jobs/" .. SEED .. "/outputs", 1, true), stderr)
        assert.is_falsy(stderr:find("X-Amz-Signature", 1, true), stderr)
      end)
    end
  end)
end)

--[[
  spec/hostile_server_spec.lua -- atai against a hostile server
  (spec/support/hostile_server.lua): garbage status lines, short and long
  Content-Length, bad chunk sizes, header floods, 1 MB header lines, endless and
  trickling bodies, gzip bombs, a [] job, a CR in an ETag, alternating pages and an
  endless registry.

  Every case ends in its documented error kind; the time bound is shown by the kind
  (e.g. "timeout" for the trickle with timeout = 1, "too_large" for an endless body
  with a small max_response_bytes), never by the wall clock; memory by the growth of
  the Lua heap and of the process's peak RSS.
]]

local atai = require("atai")
local server = require("spec.support.server")
local util = require("spec.support.util")

local KB = 1024

-- Peak resident memory of this process in KiB (Linux), or nil elsewhere.
local function peak_rss_kb() return util.proc_status_kb("VmHWM") end

-- Runs fn(); returns its two results, then how much the Lua heap (after a full
-- collection, results still held) and the peak RSS grew, in KiB.
local function measure(fn)
  collectgarbage("collect")
  local heap0, rss0 = collectgarbage("count"), peak_rss_kb()
  local a, b = fn()
  collectgarbage("collect")
  local heap_growth = collectgarbage("count") - heap0
  local rss1 = peak_rss_kb()
  return a, b, heap_growth, (rss0 and rss1) and (rss1 - rss0) or 0
end

-- Asserts a bounded memory cost: under 1 MiB of Lua heap, under 32 MiB of peak RSS.
local function assert_small(heap_growth, rss_growth)
  assert.is_true(heap_growth < 1024, ("Lua heap grew by %.0f KiB"):format(heap_growth))
  assert.is_true(rss_growth < 32 * 1024, ("peak RSS grew by %.0f KiB"):format(rss_growth))
end

describe("atai against a hostile server", function()
  local srv
  local clients = {}

  setup(function() srv = server.start_hostile() end)
  teardown(function() srv:stop() end)
  after_each(function()
    for i = #clients, 1, -1 do
      clients[i]:close()
      clients[i] = nil
    end
  end)

  -- A client on the hostile server: no retries, a 2 s timeout, plus `extra`.
  local function client(extra)
    local opts = { endpoint = srv.endpoint, api_key = "k", max_retries = 0, timeout = 2 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local c = atai.new(opts)
    clients[#clients + 1] = c
    return c
  end

  -- get_job(scenario) on a fresh client; returns nil-or-job, err.
  local function get(scenario, extra) return client(extra):get_job(scenario) end

  describe("a reply that is not HTTP", function()
    for _, scenario in ipairs({ "garbage_status", "no_status", "status_negative", "status_huge" }) do
      it("(" .. scenario .. ") is a retryable network error saying so", function()
        local job, err = get(scenario)
        assert.is_nil(job)
        assert.are.equal("network", err.kind)
        assert.is_true(err.retryable)
        assert.is_truthy(err.message:lower():find("not http", 1, true), err.message)
      end)
    end
  end)

  describe("Content-Length", function()
    it("shorter body than announced: a network error", function()
      local job, err = get("short_length")
      assert.is_nil(job)
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)

    it("more bytes than announced: the announced body, never the bytes after it", function()
      local c = client()
      local first = assert(c:get_job("long_length"))
      assert.are.equal("long_length", first.id)
      -- The excess is a whole second answer; the next call must not take it.
      local second = assert(c:get_job("long_length"))
      assert.are.equal("long_length", second.id)
    end)
  end)

  describe("bad chunk sizes", function()
    for _, scenario in ipairs({ "bad_chunk_hex", "bad_chunk_negative", "bad_chunk_overflow" }) do
      it("(" .. scenario .. ") is a network error", function()
        local job, err = get(scenario)
        assert.is_nil(job)
        assert.are.equal("network", err.kind)
      end)
    end
  end)

  describe("headers", function()
    it("10,000 headers: the job, with bounded memory", function()
      local job, err, heap, rss = measure(function() return get("header_flood") end)
      assert.is_nil(err)
      assert.are.equal("header_flood", job.id)
      assert_small(heap, rss)
    end)

    it("a 1 MB header line: too_large, saying it was a header, with bounded memory", function()
      local job, err, heap, rss = measure(function() return get("huge_header") end)
      assert.is_nil(job)
      assert_small(heap, rss)
      assert.is_nil((err.message:find("Out of memory", 1, true)), err.message)
      assert.is_truthy(err.message:lower():find("header", 1, true), err.message)
      assert.are.equal("too_large", err.kind)
    end)

    it("an ETag with a CR: sanitized or refused where it comes in", function()
      local c = client()
      local traces, err = c:job_input_traces("etag_crlf")
      if traces == nil then
        assert.are.equal("decode", err.kind)   -- refused at the source
      else
        assert.is_string(traces.etag)
        assert.is_nil((traces.etag:find("%c")), ("etag %q"):format(traces.etag))  -- sanitized ...
        local again = c:job_input_traces("etag_crlf", { etag = traces.etag })
        assert.is_table(again)  -- ... at the source, so it can be passed back
      end
    end)
  end)

  describe("bodies", function()
    -- Bodies without end, as far as the client cares: scenario, what, max_response_bytes.
    local OVERSIZED = {
      { "endless_body", "endless (streamed until the client hangs up)", 64 * KB },
      { "gzip_bomb", "a gzip bomb (100 MB of zeros)", KB * KB },
    }
    for _, case in ipairs(OVERSIZED) do
      it(case[2] .. ": too_large at max_response_bytes, with bounded memory", function()
        local job, err, heap, rss = measure(function()
          return get(case[1], { max_response_bytes = case[3] })
        end)
        assert.is_nil(job)
        assert.are.equal("too_large", err.kind)
        assert_small(heap, rss)
      end)
    end

    it("trickling 1 byte per 200 ms: timeout after `timeout`", function()
      local job, err = get("trickle", { timeout = 1 })
      assert.is_nil(job)
      assert.are.equal("timeout", err.kind)
    end)

    it("[] to get_job: decode", function()
      local job, err = get("array_body")
      assert.is_nil(job)
      assert.are.equal("decode", err.kind)
    end)
  end)

  describe("endless pagination", function()
    it("alternating pages with no total end each_job after a page with no new id", function()
      local ids, last_err = {}, nil
      for job, err in client():each_job{ limit = 2 } do
        if job == false then last_err = err; break end
        ids[#ids + 1] = job.id
        if #ids >= 200 then break end   -- today's client would go on for ever
      end
      -- Pages A, B, then A again: nothing new, so the iteration stops there.
      assert.is_not_nil(last_err, #ids .. " items and no error")
      assert.are.equal("decode", last_err.kind)
      assert.are.same({ "job_page_a_1", "job_page_a_2", "job_page_b_1", "job_page_b_2" }, ids)
    end)

    it("a registry with new ids for ever: find_pipeline ends at max_pages", function()
      local p, err = client({ max_pages = 50 }):find_pipeline("wanted-key")
      assert.is_nil(p)
      assert.are.equal("decode", err.kind)
    end)

    it("a registry with new ids for ever: each_pipeline ends at max_pages", function()
      local n, last_err = 0, nil
      for p, err in client({ max_pages = 50 }):each_pipeline{ limit = 10 } do
        if p == false then last_err = err; break end
        n = n + 1
      end
      assert.are.equal(500, n)
      assert.are.equal("decode", last_err and last_err.kind)
    end)
  end)
end)

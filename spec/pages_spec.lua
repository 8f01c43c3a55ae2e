-- spec/pages_spec.lua: the each_* iterators and atai.collect.
local atai = require("atai")
local pages = require("atai.pages")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

describe("pagination", function()
  local t = fake_api({ max_retries = 0 })

  local function drain(iter)
    local items, errs = {}, {}
    for item, err in iter do
      if item == false then errs[#errs + 1] = err else items[#items + 1] = item end
    end
    return items, errs
  end

  local function offsets()
    local list = {}
    for _, r in ipairs(t.srv:requests()) do
      list[#list + 1] = tonumber(util.parse_query(r.query).offset[1])
    end
    return list
  end

  it("walks every page lazily and stops on total", function()
    local iter = t.client:each_job { limit = 2 }
    assert.are.equal(0, #t.srv:requests()) -- nothing fetched until the loop starts
    local first = iter()
    assert.are.equal("string", type(first.id))
    assert.are.equal(1, #t.srv:requests())
    local items = drain(iter)
    assert.are.equal(6, #items) -- 7 in all, one already taken
    assert.are.same({ 0, 2, 4, 6 }, offsets())
  end)

  it("makes no extra request when total is an exact multiple of the limit", function()
    local items = drain(t.client:each_output(SEED, { limit = 5 }))
    assert.are.equal(25, #items)
    assert.are.same({ 0, 5, 10, 15, 20 }, offsets())
    local ids = {}
    for _, o in ipairs(items) do
      assert.is_nil(ids[o.id])
      ids[o.id] = true
    end
  end)

  it("yields nothing for an empty list, in one request", function()
    local items, errs = drain(t.client:each_output("job_pending"))
    assert.are.equal(0, #items)
    assert.are.equal(0, #errs)
    assert.are.equal(1, #t.srv:requests())
  end)

  it("starts at filter.offset and passes the other filters on every page", function()
    local items = drain(t.client:each_event(SEED, { offset = 1, limit = 2, level = "SUCCESS" }))
    for _, e in ipairs(items) do assert.are.equal("SUCCESS", e.level) end
    for _, r in ipairs(t.srv:requests()) do
      assert.are.same({ "SUCCESS" }, util.parse_query(r.query).level)
    end
    assert.are.equal(1, offsets()[1])
  end)

  it("stops with an error on a server that ignores offset", function()
    t.srv:config { ignore_offset = true }
    local items, errs = drain(t.client:each_output(SEED, { limit = 10 }))
    assert.are.equal(10, #items)
    assert.are.equal(1, #errs)
    assert.are.equal("decode", errs[1].kind)
    assert.is_truthy(errs[1].message:find("ignore offset", 1, true))
    assert.are.equal(2, #t.srv:requests())
  end)

  it("reports an error mid-iteration as false, err and then ends", function()
    t.srv:fault { path = "/v0.5/batch/jobs/" .. SEED .. "/outputs", responses = {
      { pass = true }, { status = 500 } } }
    local seen, failure, after = 0, nil, 0
    for output, err in t.client:each_output(SEED, { limit = 10 }) do
      if output == false then
        failure = err
      elseif failure then
        after = after + 1
      else
        seen = seen + 1
      end
    end
    assert.are.equal(10, seen)
    assert.are.equal("server", failure.kind)
    assert.are.equal(500, failure.status)
    assert.are.equal(0, after)
  end)

  it("reports a failing first page", function()
    local bad = atai.new { endpoint = t.srv.endpoint, api_key = "wrong" }
    local items, errs = drain(bad:each_job())
    bad:close()
    assert.are.equal(0, #items)
    assert.are.equal("auth", errs[1].kind)
  end)

  it("reports a page without its array", function()
    t.srv:fault { path = "/v0.5/batch/jobs", responses = { { status = 200, json = { total = 3 } } } }
    local _, errs = drain(t.client:each_job())
    assert.are.equal("decode", errs[1].kind)
  end)

  -- A page of jobs with these ids and no total, as a fault response.
  local function jobs_page(...)
    local jobs = {}
    for i, id in ipairs({ ... }) do jobs[i] = { id = id, status = "RUNNING" } end
    if #jobs == 0 then return { body = '{"jobs":[],"offset":0,"limit":2}' } end
    return { json = { jobs = jobs, offset = 0, limit = 2 } }
  end

  -- Serves these pages (fault responses) for GET path, in order.
  local function serve(path, responses)
    t.srv:fault { method = "GET", path = "/v0.5" .. path, responses = responses }
  end

  -- An iterator over /batch/jobs through pages.each, with this page cap.
  local function each_job_capped(max_pages)
    return pages.each(function(q) return t.client:list_jobs(q) end, "jobs", { limit = 2 }, max_pages)
  end

  -- Asserts that an iteration gave n items, then one decode error saying
  -- `why`, after `requests` requests.
  local function assert_stopped(items, errs, n, why, requests)
    assert.are.equal(n, #items)
    assert.are.equal(1, #errs)
    assert.are.equal("decode", errs[1].kind)
    assert.is_truthy(errs[1].message:find(why, 1, true), errs[1].message)
    assert.are.equal(requests, #t.srv:requests())
  end

  describe("never runs forever", function()
    it("a server cycling through two pages without total ends with a decode error", function()
      local a, b = jobs_page("job_a1", "job_a2"), jobs_page("job_b1", "job_b2")
      serve("/batch/jobs", { a, b, a, b, a, b })
      local items, errs = drain(t.client:each_job { limit = 2 })
      assert_stopped(items, errs, 4, "brought no new item", 3)
    end)

    it("a page overlapping the ones before still counts when it brings one new item", function()
      serve("/batch/jobs", { jobs_page("job_a", "job_b"), jobs_page("job_b", "job_c"), jobs_page() })
      local items, errs = drain(t.client:each_job { limit = 2 })
      assert.are.equal(0, #errs)
      local ids = {}
      for i, job in ipairs(items) do ids[i] = job.id end
      assert.are.same({ "job_a", "job_b", "job_b", "job_c" }, ids)
    end)

    it("a server with new ids forever ends after max_pages pages", function()
      local responses = {}
      for i = 1, 5 do responses[i] = jobs_page("job_" .. i .. "a", "job_" .. i .. "b") end
      serve("/batch/jobs", responses)
      local items, errs = drain(each_job_capped(3))
      assert_stopped(items, errs, 6, "page cap reached: 3 pages", 3)
    end)

    it("items without an id cannot be told apart: the page cap ends them", function()
      local anonymous = { json = { jobs = { { status = "RUNNING" }, { status = "RUNNING" } } } }
      serve("/batch/jobs", { anonymous, anonymous, anonymous })
      local items, errs = drain(each_job_capped(2))
      assert_stopped(items, errs, 4, "page cap reached: 2 pages", 2)
    end)

    it("a list that ends on its last allowed page is no error", function()
      local items, errs = drain(each_job_capped(4)) -- 7 jobs: 4 pages of 2
      assert.are.equal(7, #items)
      assert.are.equal(0, #errs)
      items, errs = drain(each_job_capped(3))
      assert.are.equal(6, #items)
      assert.are.equal("decode", errs[1].kind)
    end)

    it("each_* and find_pipeline stop at pages.DEFAULT_MAX_PAGES", function()
      local saved = pages.DEFAULT_MAX_PAGES
      finally(function() pages.DEFAULT_MAX_PAGES = saved end)
      pages.DEFAULT_MAX_PAGES = 2
      local jobs, registry = {}, {}
      for i = 1, 4 do
        jobs[i] = jobs_page("job_" .. i .. "a", "job_" .. i .. "b")
        registry[i] = { json = { pipelines = { { id = "pip_" .. i, pipeline_key = "other" } } } }
      end
      serve("/batch/jobs", jobs)
      serve("/batch/registry/pipelines", registry)
      local items, errs = drain(t.client:each_job { limit = 2 })
      assert_stopped(items, errs, 4, "page cap reached: 2 pages", 2)
      local pipeline, err = t.client:find_pipeline("never-there")
      assert.is_nil(pipeline)
      assert.are.equal("decode", err.kind)
      assert.is_truthy(err.message:find("page cap reached", 1, true))
      assert.are.equal(4, #t.srv:requests())
    end)
  end)

  it("covers every list endpoint", function()
    local cases = {
      { "each_job", {}, 7 },
      { "each_event", { SEED }, 5 },
      { "each_progress", { SEED }, 3 },
      { "each_input", { SEED }, 2 },
      { "each_input_progress", { SEED }, 1 },
      { "each_output", { SEED }, 25 },
      { "each_pipeline", {}, 12 },
    }
    for _, case in ipairs(cases) do
      local iter = t.client[case[1]](t.client, case[2][1], { limit = 2 })
      local items, errs = drain(iter)
      assert.are.equal(0, #errs, case[1])
      assert.are.equal(case[3], #items, case[1])
    end
    finally(function() atai.configure {} end)
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    assert.are.equal(7, #drain(atai.each_job { limit = 3 }))
  end)

  describe("collect", function()
    it("drains an iterator into a list", function()
      local jobs = assert(atai.collect(t.client:each_job { limit = 3, status = "RUNNING" }))
      assert.is_true(#jobs >= 1)
      for _, job in ipairs(jobs) do assert.are.equal("RUNNING", job.status) end
    end)

    it("returns nil, err when a page fails", function()
      t.srv:fault { path = "/v0.5/batch/jobs", responses = { { pass = true }, { status = 503 } } }
      local jobs, err = atai.collect(t.client:each_job { limit = 2 })
      assert.is_nil(jobs)
      assert.are.equal("server", err.kind)
    end)

    it("returns nil, err (too_large) beyond max_items, without fetching further", function()
      local jobs, err = atai.collect(t.client:each_job { limit = 2 }, 5)
      assert.is_nil(jobs)
      assert.are.equal("too_large", err.kind)
      assert.is_truthy(err.message:find("max_items (5)", 1, true), err.message)
      assert.are.equal(3, #t.srv:requests()) -- the 6th job came with the 3rd page
      assert.are.equal(7, #assert(atai.collect(t.client:each_job { limit = 2 }, 7)))
    end)

    it("keeps at most pages.DEFAULT_MAX_ITEMS (1,000,000) items by default", function()
      assert.are.equal(1000000, pages.DEFAULT_MAX_ITEMS)
      local n = 0
      local items, err = atai.collect(function()
        n = n + 1
        if n <= 1000001 then return n end
      end)
      assert.is_nil(items)
      assert.are.equal("too_large", err.kind)
      assert.are.equal(1000001, n)
    end)

    it("raises on a bad max_items", function()
      for _, bad in ipairs({ 0, 1.5, "5", 0 / 0, math.huge, -1 }) do
        local ok, msg = pcall(atai.collect, function() end, bad)
        assert.is_false(ok)
        assert.is_truthy(msg:find("bad argument #2 to 'collect' (max_items: ", 1, true), msg)
      end
    end)

    it("lets a fetch yield from a coroutine, page after page (no for-in, no pcall: Lua 5.1 too)", function()
      local fetched = {}
      local co = coroutine.create(function()
        return atai.collect(pages.each(function(q)
          coroutine.yield(q.offset)
          return { total = 5, items = { { id = q.offset + 1 }, { id = q.offset + 2 } } }
        end, "items", { limit = 2 }))
      end)
      local ok, value, err = coroutine.resume(co)
      while coroutine.status(co) == "suspended" do
        fetched[#fetched + 1] = value
        ok, value, err = coroutine.resume(co)
      end
      assert.is_true(ok, tostring(value))
      assert.is_nil(err)
      assert.are.same({ 0, 2, 4 }, fetched)
      assert.are.equal(6, #value)
    end)

    it("raises on a non-iterator", function()
      assert.has_error(function() atai.collect({}) end)
    end)
  end)
end)

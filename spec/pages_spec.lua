-- spec/pages_spec.lua: the each_* iterators and atai.collect.
local atai = require("atai")
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

    it("raises on a non-iterator", function()
      assert.has_error(function() atai.collect({}) end)
    end)
  end)
end)

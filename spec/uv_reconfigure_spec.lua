-- spec/uv_reconfigure_spec.lua: atai.uv driving the default client
-- (attach(nil)) when a completion callback replaces it with atai.configure
-- and starts work on the new one (issue 14, finding 9): the driver must
-- follow the new client, not sync against the one it polled, or uv.run()
-- returns with the new request pending forever. Plain luv, every Lua.
local atai = require("atai")
local fake_api = require("spec.support.fake")
local uv = require("luv")
local atai_uv = require("atai.uv")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

local run_loop = require("spec.support.uv_loop").run

describe("atai.uv on the default client", function()
  local t = fake_api({ max_retries = 0 })
  local detach

  after_each(function()
    if detach then detach() end
    detach = nil
    uv.run("nowait") -- the handles finish closing (luv may crash at exit otherwise)
  end)

  it("finding 9: an on_done that calls atai.configure and starts a request on the new default client loses nothing", function()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() atai.configure {} end)
    local errors = {}
    detach = atai_uv.attach(nil, uv, { on_error = function(e) errors[#errors + 1] = e end })
    local first_client, second, second_err
    atai.async.get_job(SEED):on_done(function(job)
      assert.are.equal(SEED, job.id)
      first_client = atai.default_client()
      atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 0 }
      atai.async.get_job("job_failed"):on_done(function(j, e) second, second_err = j, e end)
    end)
    run_loop(20)
    assert.are.same({}, errors)
    assert.is_nil(second_err)
    assert.are.equal("FAILED", second and second.status)
    assert.are_not.equal(first_client, atai.default_client())
    assert.are.equal(0, atai.pending())
    assert.are.equal(2, #t.srv:requests())
  end)

  it("finding 9: atai.configure {} from an on_done, then a request: its config error is delivered", function()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() atai.configure {} end)
    detach = atai_uv.attach(nil, uv)
    local got
    atai.async.get_job(SEED):on_done(function()
      atai.configure {} -- no key in the environment (make test unsets it)
      atai.async.get_job(SEED):on_done(function(_, e) got = e end)
    end)
    run_loop(20)
    assert.are.equal("config", got and got.kind)
    assert.are.equal(0, atai.pending())
  end)
end)

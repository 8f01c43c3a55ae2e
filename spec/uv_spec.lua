-- spec/uv_spec.lua: what an event-loop driver relies on (client:timeout()
-- and client:sockets() tell it when to poll), and atai.uv driving clients
-- from a plain luv loop (the lua-luv package), on every Lua.
local atai = require("atai")
local fake_api = require("spec.support.fake")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

-- Polls `client` until `cond()` holds (bounded: 200 polls of 50 ms).
local function poll_until(client, cond)
  for _ = 1, 200 do
    if cond() then return end
    client:poll(0.05)
  end
  error("condition not met")
end

describe("client:timeout() for a loop driver", function()
  local t = fake_api({ max_retries = 0 })

  it("is 0 while a callback waits in the queue with nothing in flight", function()
    local h = t.client.async:get_job(SEED)
    poll_until(t.client, function() return h:done() end)
    assert.is_nil(t.client:timeout())
    local ran = false
    h:on_done(function() ran = true end) -- queued for the next poll
    assert.are.equal(0, t.client:timeout())
    t.client:poll(0)
    assert.is_true(ran)
    assert.is_nil(t.client:timeout())
  end)

  it("is 0 after a callback raised while the others still wait", function()
    local a, b = t.client.async:get_job(SEED), t.client.async:get_job("job_failed")
    poll_until(t.client, function() return a:done() and b:done() end)
    local b_ran = false
    a:on_done(function() error("boom") end) -- both queued, in this order
    b:on_done(function() b_ran = true end)
    local ok, msg = pcall(t.client.poll, t.client, 0)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("boom", 1, true))
    assert.is_false(b_ran)
    assert.are.equal(0, t.client:timeout())
    t.client:poll(0)
    assert.is_true(b_ran)
    assert.is_nil(t.client:timeout())
  end)
end)

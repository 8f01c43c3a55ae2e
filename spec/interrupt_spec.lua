-- spec/interrupt_spec.lua: Ctrl-C interrupts a blocking call. A child
-- interpreter (the suite's Lua) blocked in get_job (against a server that accepts and never
-- answers, and during a Retry-After backoff) gets SIGINT and must exit
-- within a second: the wait loop returns to Lua every 100 ms, where the
-- interpreter's signal hook can raise "interrupted!".
local socket = require("socket")
local fake_api = require("spec.support.fake")
local util = require("spec.support.util")

-- Runs `code` in a child interpreter, sends it SIGINT after `after` seconds and
-- returns its output, exit code and the milliseconds from signal to exit.
local function interrupt(code, after)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local sh = assert(io.open(script .. ".sh", "w"))
  sh:write(table.concat({
    "export LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH='" .. util.cpath .. ";;'",
    util.lua .. " " .. script .. " >" .. script .. ".out 2>&1 &",
    "pid=$!",
    "sleep " .. after,
    "start=$(date +%s%N)",
    "kill -INT $pid",
    -- never wait more than 5 s for it: the test must end even when it fails
    "for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done",
    "kill -KILL $pid 2>/dev/null",
    "wait $pid; rc=$?",
    "stop=$(date +%s%N)",
    "cat " .. script .. ".out",
    'echo "<rc=$rc ms=$(( (stop - start) / 1000000 ))>"',
  }, "\n"))
  sh:close()
  local p = assert(io.popen("sh " .. script .. ".sh"))
  local out = p:read("*a")
  p:close()
  for _, suffix in ipairs({ "", ".sh", ".out" }) do os.remove(script .. suffix) end
  local rc, ms = out:match("<rc=(%d+) ms=(%d+)>")
  return out, tonumber(rc), tonumber(ms)
end

local function child(endpoint)
  return ([[
local atai = require("atai")
local c = atai.new { endpoint = %q, api_key = "k" }
print("calling")
io.stdout:flush()
c:get_job("job_2abc3def4ghi5jkl6mno7pqr")
print("returned")
]]):format(endpoint)
end

describe("Ctrl-C", function()
  local t = fake_api()

  it("interrupts get_job waiting on a server that never answers", function()
    local listener = assert(socket.bind("127.0.0.1", 0))
    finally(function() listener:close() end)
    local _, port = listener:getsockname()
    local out, rc, ms = interrupt(child("http://127.0.0.1:" .. port .. "/v0.5"), 0.5)
    assert.is_truthy(out:find("calling", 1, true), out)
    assert.is_falsy(out:find("returned", 1, true), out)
    assert.is_truthy(out:find("interrupted", 1, true), out)
    assert.are_not.equal(0, rc)
    assert.is_true(ms < 1000, ms)
  end)

  it("interrupts get_job during a Retry-After backoff", function()
    t.srv:fault { path = "/v0.5/batch/jobs/job_2abc3def4ghi5jkl6mno7pqr",
      responses = { { status = 503, headers = { ["Retry-After"] = "30" } } } }
    local out, rc, ms = interrupt(child(t.srv.endpoint), 0.5)
    assert.are.equal(1, #t.srv:requests()) -- the first attempt was made; the child waits to retry
    assert.is_truthy(out:find("interrupted", 1, true), out)
    assert.are_not.equal(0, rc)
    assert.is_true(ms < 1000, ms)
  end)
end)


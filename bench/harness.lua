--- bench/harness.lua: set-up and reporting shared by the atai bench clients.
--
--   lua5.4 bench/get_job.lua PORT N WARMUP
--
-- Puts this checkout's lua/ and build/$BENCH_LUA/ (default: the running
-- Lua's name, lua5.4 for "Lua 5.4") first on package.path/cpath, creates a
-- client on http://127.0.0.1:PORT (base URL .../v0.5) and reports
--   RESULT NAME N WALL_US_PER_CALL CPU_US_PER_CALL
-- CPU is os.clock(), this process's user+sys time (clock(3)); wall is
-- atai.core.now(), a monotonic clock. Works under Lua 5.1-5.4 and LuaJIT.

local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
local lua_name = os.getenv("BENCH_LUA")
  or (rawget(_G, "jit") and "luajit")
  or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. lua_name .. "/?.so;" .. package.cpath

local atai = require("atai")

local harness = {}

harness.JOB_ID = "job_2abc3def4ghi5jkl6mno7pqr"

--- Reads PORT N WARMUP from the command line; returns the client, N, WARMUP.
function harness.setup()
  local port, n, warmup = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
  if not (port and n and n > 0 and warmup and warmup >= 0) then
    io.stderr:write("usage: ", arg[0], " PORT N WARMUP\n")
    os.exit(2)
  end
  local client = atai.new({
    api_key = "bench-key",
    endpoint = "http://127.0.0.1:" .. port,
  })
  return client, n, warmup
end

harness.cpu = os.clock
harness.now = atai.core.now

--- Fails the run (exit 1) when a call did not return what it should.
function harness.fail(name, err)
  io.stderr:write(name, ": ", tostring(err), "\n")
  os.exit(1)
end

function harness.report(name, n, wall, cpu)
  io.write(("RESULT %s %d %.3f %.3f\n"):format(name, n, wall * 1e6 / n, cpu * 1e6 / n))
end

--- Runs call() WARMUP times untimed, then N times timed, failing the run on
--- any nil, err, and prints the RESULT line. call is the bare loop body: a
--- local upvalue call, so the loop itself costs next to nothing.
function harness.measure(name, n, warmup, call)
  for _ = 1, warmup do
    local ok, err = call()
    if not ok then harness.fail(name, err) end
  end
  local wall0, cpu0 = harness.now(), harness.cpu()
  for _ = 1, n do
    local ok, err = call()
    if not ok then harness.fail(name, err) end
  end
  harness.report(name, n, harness.now() - wall0, harness.cpu() - cpu0)
end

return harness

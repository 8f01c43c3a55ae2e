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
-- The concurrent clients (get_jobs.lua, poll.lua, memory.lua) print their
-- own RESULT lines, or "SKIP NAME: why" when this build lacks the engine.

local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
local lua_name = os.getenv("BENCH_LUA")
  or (rawget(_G, "jit") and "luajit")
  or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. lua_name .. "/?.so;" .. package.cpath

local atai = require("atai")

local harness = {}

harness.JOB_ID = "job_2abc3def4ghi5jkl6mno7pqr"

harness.atai = atai

--- Reads PORT N WARMUP from the command line; returns the client, N, WARMUP.
function harness.setup()
  local port, n, warmup = harness.args("PORT N WARMUP", 1, 1, 0)
  return harness.client(port), n, warmup
end

--- Reads the whole numbers named by USAGE ("PORT N ...") from arg, each at
--- least the matching minimum (... of the arguments after USAGE); exits 2
--- with the usage line when one is missing or too small.
function harness.args(usage, ...)
  local mins, values = { ... }, {}
  for i = 1, #mins do
    local v = tonumber(arg[i])
    if not v or v ~= math.floor(v) or v < mins[i] then
      io.stderr:write("usage: ", arg[0], " ", usage, "\n")
      os.exit(2)
    end
    values[i] = v
  end
  return (table.unpack or unpack)(values, 1, #mins)
end

--- A client on http://127.0.0.1:PORT, with extra options.
function harness.client(port, opts)
  local o = { api_key = "bench-key", endpoint = "http://127.0.0.1:" .. port }
  for k, v in pairs(opts or {}) do o[k] = v end
  return atai.new(o)
end

--- Exits 0 after printing "SKIP NAME: why" when this build lacks one of
--- the engine's client methods (names: "get_jobs", "async", ...).
function harness.need_engine(name, ...)
  local probe = atai.new({ api_key = "bench-key", endpoint = "http://127.0.0.1:1" })
  for _, method in ipairs({ ... }) do
    if probe[method] == nil and atai[method] == nil then
      io.write(("SKIP %s: this build has no %s (it comes with the non-blocking engine)\n"):format(name, method))
      os.exit(0)
    end
  end
  probe:close()
end

--- n distinct job ids (the static server answers every path the same).
function harness.ids(n)
  local ids = {}
  for i = 1, n do ids[i] = ("job_bench_%03d"):format(i - 1) end
  return ids
end

--- Fails the run unless job is the static server's job.
function harness.check_job(name, job, err)
  if type(job) ~= "table" or job.id ~= harness.JOB_ID then harness.fail(name, err or "unexpected job") end
end

--- The q-quantile (nearest rank) of the sorted list xs.
function harness.quantile(xs, q)
  local rank = math.max(1, math.min(#xs, math.ceil(q * #xs)))
  return xs[rank]
end

harness.cpu = os.clock

--- This process's resident set (KiB) after two full collections; measure
--- `name` fails without /proc/self/status.
function harness.rss_kib(name)
  collectgarbage("collect")
  collectgarbage("collect")
  local f = assert(io.open("/proc/self/status"))
  local status = f:read("*a")
  f:close()
  return tonumber(status:match("VmRSS:%s*(%d+)")) or harness.fail(name, "no VmRSS in /proc/self/status")
end

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

--- Runs round() WARMUP times untimed, then ROUNDS times timed (round()
--- fails the run itself), and prints, like bench/multi_baseline.c,
---   RESULT NAME TRANSFERS ROUNDS BEST_MS MEDIAN_MS CPU_MS_PER_ROUND
function harness.rounds(name, transfers, rounds, warmup, round)
  for _ = 1, warmup do round() end
  local walls, cpu0 = {}, harness.cpu()
  for i = 1, rounds do
    local t0 = harness.now()
    round()
    walls[i] = harness.now() - t0
  end
  local cpu = harness.cpu() - cpu0
  table.sort(walls)
  io.write(("RESULT %s %d %d %.3f %.3f %.3f\n"):format(name, transfers, rounds, walls[1] * 1e3,
    harness.quantile(walls, 0.5) * 1e3, cpu * 1e3 / rounds))
end

return harness

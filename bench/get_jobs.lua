--- bench/get_jobs.lua: TRANSFERS jobs per round, fetched by one
-- client:get_jobs(ids) (client made with max_concurrency = TRANSFERS), or
-- by TRANSFERS sequential client:get_job(id) calls (see bench/run.sh).
--
--   lua5.4 bench/get_jobs.lua concurrent|sequential PORT TRANSFERS ROUNDS WARMUP
--
-- WARMUP untimed rounds (they open the connections), then ROUNDS timed
-- ones, every job checked; prints
--   RESULT get_jobs|sequential TRANSFERS ROUNDS BEST_MS MEDIAN_MS CPU_MS
-- or, for concurrent on a build without client:get_jobs, "SKIP get_jobs: why".
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local mode = table.remove(arg, 1)
local rounds_of = {}

function rounds_of.concurrent(port, n)
  harness.need_engine("get_jobs", "get_jobs")
  local client, ids = harness.client(port, { max_concurrency = n }), harness.ids(n)
  return "get_jobs", function()
    local jobs, errs = client:get_jobs(ids)
    for i = 1, n do harness.check_job("get_jobs", jobs[i], errs and errs[i]) end
  end
end

function rounds_of.sequential(port, n)
  local client, ids = harness.client(port), harness.ids(n)
  local get_job = client.get_job
  return "sequential", function()
    for i = 1, n do harness.check_job("sequential", get_job(client, ids[i])) end
  end
end

if not rounds_of[mode] then
  io.stderr:write("usage: ", arg[0], " concurrent|sequential PORT TRANSFERS ROUNDS WARMUP\n")
  os.exit(2)
end
local port, n, rounds, warmup = harness.args("PORT TRANSFERS ROUNDS WARMUP", 1, 1, 1, 0)
local name, round = rounds_of[mode](port, n)
harness.rounds(name, n, rounds, warmup, round)
os.exit(0)

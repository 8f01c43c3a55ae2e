--- bench/get_job.lua: client:get_job(id) in a loop (see bench/run.sh).
--
--   lua5.4 bench/get_job.lua PORT N WARMUP
--
-- One checked call, WARMUP untimed calls, then N timed ones; prints
--   RESULT get_job N WALL_US_PER_CALL CPU_US_PER_CALL
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local client, n, warmup = harness.setup()
local id = harness.JOB_ID
local get_job = client.get_job

local job, err = get_job(client, id)
if not job or job.id ~= id or job.input_progress.completed ~= 1 then
  harness.fail("get_job", err or "unexpected job")
end

harness.measure("get_job", n, warmup, function() return get_job(client, id) end)
client:close()
-- Exit without lua_close: it would dlclose atai.core before valgrind writes
-- the profile, losing its file/line info in build/bench/callgrind.out.*.
os.exit(0)

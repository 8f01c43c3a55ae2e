--- bench/get_job_raw.lua: the same GET through the generic
-- client:request("GET", path), which also checks the path, builds the URL
-- and the meta table (status, attempts, response headers) (see bench/run.sh).
--
--   lua5.4 bench/get_job_raw.lua PORT N WARMUP
--
-- One checked call, WARMUP untimed calls, then N timed ones; prints
--   RESULT request N WALL_US_PER_CALL CPU_US_PER_CALL
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local client, n, warmup = harness.setup()
local path = "/batch/jobs/" .. harness.JOB_ID
local request = client.request

local body, meta = request(client, "GET", path)
if not body or body.id ~= harness.JOB_ID or meta.status ~= 200 then
  harness.fail("request", body and "unexpected body" or meta)
end

harness.measure("request", n, warmup, function() return request(client, "GET", path) end)
client:close()
-- Exit without lua_close: it would dlclose atai.core before valgrind writes
-- the profile, losing its file/line info in build/bench/callgrind.out.*.
os.exit(0)

--- bench/get_job_raw.lua: the same GET through the generic
-- client:request("GET", path), which also builds the meta table (status,
-- attempts, response headers) and copies the header list (see bench/run.sh).
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

for _ = 1, warmup do
  body, meta = request(client, "GET", path)
  if not body then harness.fail("request", meta) end
end

local wall0, cpu0 = harness.now(), harness.cpu()
for _ = 1, n do
  body, meta = request(client, "GET", path)
  if not body then harness.fail("request", meta) end
end
local cpu, wall = harness.cpu() - cpu0, harness.now() - wall0

harness.report("request", n, wall, cpu)
client:close()
-- Exit without lua_close: it would dlclose atai.core before valgrind writes
-- the profile, losing its file/line info in build/bench/callgrind.out.*.
os.exit(0)

--- bench/memory.lua: does a long-lived client grow? RSS after N async
-- get_jobs next to RSS after the first MARK (see bench/run.sh).
--
--   lua5.4 bench/memory.lua PORT BATCH N MARK
--
-- In batches of BATCH: start BATCH client.async:get_job(id) handles (client
-- made with max_concurrency = BATCH), atai.wait_all them, check every job;
-- repeat until N have finished. VmRSS (/proc/self/status) is read after a
-- full garbage collection once MARK have finished and again at N; prints
--   RESULT memory N MARK RSS_AT_MARK_KIB RSS_AT_N_KIB
-- or "SKIP memory: why" on a build without client.async / atai.wait_all.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local port, batch, n, mark = harness.args("PORT BATCH N MARK", 1, 1, 2, 1)
if mark >= n then
  io.stderr:write("memory.lua: MARK must be below N\n")
  os.exit(2)
end
harness.need_engine("memory", "async", "wait_all")
local atai = harness.atai
local client, ids = harness.client(port, { max_concurrency = batch }), harness.ids(batch)

local function rss_kib() return harness.rss_kib("memory") end

local finished, rss_mark = 0, nil
while finished < n do
  local size, handles = math.min(batch, n - finished), {}
  for i = 1, size do handles[i] = client.async:get_job(ids[i]) end
  local jobs, errs = atai.wait_all(handles, 60)
  for i = 1, size do harness.check_job("memory", jobs[i], errs and errs[i]) end
  finished = finished + size
  if not rss_mark and finished >= mark then rss_mark = rss_kib() end
end
io.write(("RESULT memory %d %d %d %d\n"):format(n, mark, rss_mark, rss_kib()))
os.exit(0)

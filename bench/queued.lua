--- bench/queued.lua: what a queued handle costs. N client.async:get_job(id)
-- handles started on a client made with max_concurrency = 1, so all but
-- one wait in its queue (see bench/run.sh); nothing is polled meanwhile.
--
--   lua5.4 bench/queued.lua PORT N
--
-- VmRSS (/proc/self/status) is read after a full garbage collection before
-- the handles are started and again with all N held; then the client is
-- closed (every handle cancelled). Prints
--   RESULT queued N RSS_BEFORE_KIB RSS_WITH_N_KIB
-- or "SKIP queued: why" on a build without client.async.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local port, n = harness.args("PORT N", 1, 1)
harness.need_engine("queued", "async")
local client = harness.client(port, { max_concurrency = 1 })

local function rss_kib() return harness.rss_kib("queued") end

local ids = harness.ids(n)
local handles = {}
for i = 1, n do handles[i] = false end -- the list's own memory is not the handles'
local before = rss_kib()
for i = 1, n do handles[i] = client.async:get_job(ids[i]) end
local with_n = rss_kib()
client:close()
for i = 1, n do
  if handles[i]:done() ~= true then harness.fail("queued", "a handle outlived its client's close") end
end
io.write(("RESULT queued %d %d %d\n"):format(n, before, with_n))
os.exit(0)

--- bench/poll.lua: what one client:poll(0) costs with TRANSFERS transfers
-- in flight (see bench/run.sh).
--
--   lua5.4 bench/poll.lua PORT TRANSFERS ROUNDS WARMUP
--
-- A round starts TRANSFERS client.async:get_job(id) handles (client made
-- with max_concurrency = TRANSFERS), then calls client:poll(0) in a loop,
-- timing each call with atai.core.now(), until every handle is done; every
-- job is checked. After WARMUP untimed rounds (they open the connections),
-- the calls of ROUNDS rounds give
--   RESULT poll CALLS P50_MS P99_MS MAX_MS
-- or "SKIP poll: why" on a build without client.async / client:poll.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local port, n, rounds, warmup = harness.args("PORT TRANSFERS ROUNDS WARMUP", 1, 1, 1, 0)
harness.need_engine("poll", "async", "poll")
local client, ids = harness.client(port, { max_concurrency = n }), harness.ids(n)
local now, calls = harness.now, {}
local ROUND_LIMIT = 60 -- seconds

-- One round; appends each poll(0)'s duration to `into` when given.
local function round(into)
  local handles, first_busy = {}, 1
  for i = 1, n do handles[i] = client.async:get_job(ids[i]) end
  local deadline = now() + ROUND_LIMIT
  while first_busy <= n do
    local t0 = now()
    client:poll(0)
    local t1 = now()
    if into then into[#into + 1] = t1 - t0 end
    while first_busy <= n and handles[first_busy]:done() do first_busy = first_busy + 1 end
    if t1 > deadline then harness.fail("poll", "a round took over " .. ROUND_LIMIT .. " s") end
  end
  for i = 1, n do harness.check_job("poll", handles[i]:result()) end
end

for _ = 1, warmup do round(nil) end
for _ = 1, rounds do round(calls) end
table.sort(calls)
io.write(("RESULT poll %d %.4f %.4f %.4f\n"):format(#calls, harness.quantile(calls, 0.5) * 1e3,
  harness.quantile(calls, 0.99) * 1e3, calls[#calls] * 1e3))
os.exit(0)

-- spec/threads_spec.lua: atai in several threads of one process (luv's
-- uv.new_thread, every thread a lua_State of its own): each loads atai at
-- the same moment, makes its own client and fetches jobs. That the fetches
-- ran at once is read from the fake server's request log (every request
-- arrived before any answer was ready, the server answering after 300 ms),
-- not from a clock here.
local uv = require("luv")
local server = require("spec.support.server")
local util = require("spec.support.util")

local THREADS = 4
local IDS = { "job_2abc3def4ghi5jkl6mno7pqr", "job_failed", "job_running" }

-- A thread's work (string.dump'd into its own lua_State: no upvalues).
-- Writes "ok STATUS,STATUS,STATUS" or "error MESSAGE" to `out_path`.
local function worker(lua_path, cpath, endpoint, key, out_path, ids)
  package.path = lua_path .. package.path
  package.cpath = cpath .. package.cpath
  local ok, result = pcall(function()
    local atai = require("atai")
    local client = atai.new { endpoint = endpoint, api_key = key, max_retries = 0 }
    local list = {}
    for id in ids:gmatch("[^,]+") do list[#list + 1] = id end
    local jobs, errs = client:get_jobs(list)
    client:close()
    local statuses = {}
    for i = 1, #list do statuses[i] = jobs[i] and jobs[i].status or tostring(errs[i]) end
    return table.concat(statuses, ",")
  end)
  local f = io.open(out_path, "w")
  f:write(ok and ("ok " .. result) or ("error " .. tostring(result)))
  f:close()
end

describe("atai in several threads", function()
  local srv

  -- Every request must reach the server before the first answer leaves it:
  -- each answer waits 300 ms, 1500 ms under make memcheck (ATAI_TEST_SLOW),
  -- where valgrind runs the threads one at a time and loading atai in each
  -- can take longer than 300 ms.
  setup(function() srv = server.start { latency = os.getenv("ATAI_TEST_SLOW") and 1500 or 300 } end)
  teardown(function() srv:stop() end)

  it("each thread loads atai, makes its own client and fetches jobs, all at once", function()
    local threads, outs = {}, {}
    for i = 1, THREADS do
      outs[i] = os.tmpname()
      threads[i] = assert(uv.new_thread(worker, "./lua/?.lua;./lua/?/init.lua;", util.cpath .. ";",
        srv.endpoint, srv.key, outs[i], table.concat(IDS, ",")))
    end
    for i = 1, THREADS do threads[i]:join() end
    for i = 1, THREADS do
      local text = util.read_file(outs[i])
      os.remove(outs[i])
      assert.are.equal("ok COMPLETED,FAILED,RUNNING", text, "thread " .. i)
    end
    local requests = srv:requests()
    assert.are.equal(THREADS * #IDS, #requests)
    local last_arrival, first_answer = -math.huge, math.huge
    for _, r in ipairs(requests) do
      last_arrival = math.max(last_arrival, r.t)
      first_answer = math.min(first_answer, r.t_reply)
    end
    assert.is_true(last_arrival < first_answer, "some thread's request arrived after an answer")
  end)
end)

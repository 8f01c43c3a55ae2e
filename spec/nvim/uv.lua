-- spec/nvim/uv.lua: atai.uv inside Neovim (run by spec/nvim/run.lua, i.e.
-- make test-nvim): callbacks delivered where vim.api works, the heartbeat
-- of the UI loop while 20 slow requests complete, errors reported like any
-- scheduled callback's, detach, the default client across atai.configure,
-- :qa with requests in flight, worker threads, and the recipe
-- examples/nvim_job_status.lua.
--
-- No LuaSocket here: its connect crashes inside Neovim 0.7.2 (Neovim
-- exports a socket_connect symbol of its own), so the fake servers run as
-- separate processes (scripts/test_nvim.sh): ATAI_API_ENDPOINT answers at
-- once, ATAI_SLOW_ENDPOINT after 300 ms (--latency 300). uv.walk is not
-- used either: it aborts on Neovim's own handles.
--
-- Returns a function taking the runner's helpers {it, expect, equal, say,
-- atai, root, build}.

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local uv = vim.loop

return function(t)
  local it, expect, equal, say, atai = t.it, t.expect, t.equal, t.say, t.atai
  local atai_uv = require("atai.uv")
  local endpoint, key = os.getenv("ATAI_API_ENDPOINT"), os.getenv("ATAI_API_KEY")
  local slow_endpoint = os.getenv("ATAI_SLOW_ENDPOINT")

  local function new_client(opts)
    local o = { endpoint = endpoint, api_key = key, max_retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return atai.new(o)
  end

  -- Runs the loop until cond() holds, at most `ms` (2000); returns cond().
  local function wait_for(cond, ms)
    return vim.wait(ms or 2000, cond, 5)
  end

  it("atai.uv delivers completions; callbacks run outside fast events and may use vim.api", function()
    local client = new_client()
    local detach = atai_uv.attach(client, uv)
    local buf = vim.api.nvim_create_buf(false, true)
    local seen = {}
    for i = 1, 3 do
      client.async:get_job(SEED):on_done(function(job, err)
        local ok, api_err = pcall(vim.api.nvim_buf_set_lines, buf, i - 1, i - 1, false, { job and job.id or tostring(err) })
        seen[#seen + 1] = { fast = vim.in_fast_event(), api = ok, api_err = api_err }
      end)
    end
    expect(wait_for(function() return #seen == 3 end), "callbacks delivered: " .. #seen .. " of 3")
    for i, s in ipairs(seen) do
      equal(false, s.fast, ("callback %d: vim.in_fast_event()"):format(i))
      expect(s.api, ("callback %d: nvim_buf_set_lines failed: %s"):format(i, tostring(s.api_err)))
    end
    equal(SEED, vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1], "first buffer line")
    detach()
    client:close()
    vim.api.nvim_buf_delete(buf, { force = true })
  end)

  it("an atai.run coroutine on a driven client resumes where vim.api works", function()
    local client = new_client()
    local detach = atai_uv.attach(client, uv)
    local fast, line
    local h = atai.run(function()
      local job = client:get_job(SEED) -- awaits
      fast = vim.in_fast_event()
      line = vim.api.nvim_get_current_line()
      return job.status
    end)
    expect(wait_for(function() return h:done() end), "the coroutine did not finish")
    equal("COMPLETED", (h:result()), "the coroutine's result")
    equal(false, fast, "vim.in_fast_event() in the coroutine")
    equal("string", type(line), "vim.api.nvim_get_current_line() in the coroutine")
    detach()
    client:close()
  end)

  it("the UI loop keeps its 10 ms heartbeat while 20 get_jobs at 300 ms complete through atai.uv", function()
    expect(slow_endpoint, "ATAI_SLOW_ENDPOINT is not set (scripts/test_nvim.sh sets it)")
    local client = new_client { endpoint = slow_endpoint, max_concurrency = 20 }
    local detach = atai_uv.attach(client, uv)
    local heartbeat, ticks, worst = uv.new_timer(), 0, 0
    local last = uv.hrtime()
    heartbeat:start(10, 10, function()
      local now = uv.hrtime()
      ticks = ticks + 1
      worst = math.max(worst, (now - last) / 1e6)
      last = now
    end)
    local done, failed = 0, {}
    local started = uv.hrtime()
    for _ = 1, 20 do
      client.async:get_job(SEED):on_done(function(job, err)
        done = done + 1
        if not job then failed[#failed + 1] = tostring(err) end
      end)
    end
    local finished = wait_for(function() return done == 20 end, 5000)
    local elapsed = (uv.hrtime() - started) / 1e6
    heartbeat:stop()
    heartbeat:close()
    detach()
    client:close()
    expect(finished, ("%d of 20 completed"):format(done))
    equal(0, #failed, "failed requests (" .. table.concat(failed, "; ") .. ")")
    -- a measure, reported; speed is not asserted
    say(("report  heartbeat: largest gap %.1f ms (goal <= 30 ms: %s) over %d ticks of 10 ms, while 20 "
      .. "get_jobs answered after 300 ms completed through atai.uv in %.0f ms")
      :format(worst, worst <= 30 and "met" or "NOT met", ticks, elapsed))
    expect(elapsed >= 300, "the server answered before 300 ms: is --latency in effect?")
  end)

  it("a callback's error is reported like a scheduled callback's; the other callbacks run", function()
    local client = new_client()
    local detach = atai_uv.attach(client, uv)
    vim.v.errmsg = ""
    local a, b = client.async:get_job(SEED), client.async:get_job("job_failed")
    local b_status
    a:on_done(function() error("boom from an atai callback") end)
    b:on_done(function(job) b_status = job.status end)
    expect(wait_for(function() return b_status ~= nil and vim.v.errmsg ~= "" end), "no error reported, or b never ran")
    equal("FAILED", b_status, "the other callback's job status")
    expect(vim.v.errmsg:find("Error executing vim.schedule lua callback", 1, true), "v:errmsg: " .. vim.v.errmsg)
    expect(vim.v.errmsg:find("boom from an atai callback", 1, true), "v:errmsg: " .. vim.v.errmsg)
    vim.v.errmsg = ""
    -- the driver goes on
    local job = client.async:get_job(SEED)
    expect(wait_for(function() return job:done() end), "a later request did not complete")
    detach()
    client:close()
  end)

  it("detach() closes every handle atai.uv made, with requests in flight", function()
    local made, originals = {}, {}
    for _, name in ipairs({ "new_timer", "new_prepare", "new_socket_poll", "new_poll" }) do
      originals[name] = uv[name]
      uv[name] = function(...)
        local h, err = originals[name](...)
        made[#made + 1] = h
        return h, err
      end
    end
    local ok, err = pcall(function()
      local client = new_client { endpoint = slow_endpoint }
      local detach = atai_uv.attach(client, uv)
      local hs = {} -- luacheck: ignore 241 (keeps the handles referenced until detach)
      for i = 1, 3 do hs[i] = client.async:get_job(SEED) end
      wait_for(function() return next(client:sockets()) ~= nil end)
      vim.wait(30)
      detach()
      detach() -- idempotent
      vim.wait(20)
      client:close()
    end)
    for name, f in pairs(originals) do uv[name] = f end
    expect(ok, tostring(err))
    local kinds = {}
    for _, h in ipairs(made) do
      local kind = tostring(h):match("^uv_(%a+)_t") or "?"
      kinds[kind] = (kinds[kind] or 0) + 1
      expect(h:is_closing(), tostring(h) .. " is still open after detach()")
    end
    equal(1, kinds.timer, "timers made")
    equal(1, kinds.prepare, "prepare handles made")
    expect((kinds.poll or 0) >= 1, "no poll handle was made while requests ran")
  end)

  it("attach(nil, vim.loop) drives the default client, and the new one after atai.configure", function()
    atai.configure { endpoint = endpoint, api_key = key }
    local detach = atai_uv.attach(nil, uv)
    local first, second
    atai.async.get_job(SEED):on_done(function(job) first = job end)
    expect(wait_for(function() return first ~= nil end), "the default client's request did not complete")
    atai.configure { endpoint = endpoint, api_key = key, max_retries = 0 }
    atai.async.get_job("job_failed"):on_done(function(job) second = job end)
    expect(wait_for(function() return second ~= nil end), "the new default client's request did not complete")
    equal("FAILED", second.status, "second.status")
    detach()
    atai.configure {}
  end)

  it(":qa exits cleanly while requests are in flight", function()
    local cmd = { "timeout", "20", vim.v.progpath, "--headless", "-u", "NONE", "-i", "NONE",
      "-c", "luafile " .. t.root .. "/spec/nvim/qa_in_flight.lua" }
    local output = vim.fn.system(cmd)
    equal(0, vim.v.shell_error, "exit status of the Neovim that quit (output: " .. output .. ")")
    expect(output:find("in flight: 5", 1, true), "it did not start its requests: " .. output)
    expect(not output:find("Error", 1, true) and not output:find("atai.uv", 1, true), "output: " .. output)
  end)

  it("worker threads (vim.loop.new_work) each load atai and fetch jobs at once", function()
    local workers, results = 4, {}
    local work = uv.new_work(function(root, build, url, api_key)
      package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
      package.cpath = build .. "/?.so;" .. package.cpath
      local ok, out = pcall(function()
        local lib = require("atai")
        local client = lib.new { endpoint = url, api_key = api_key, max_retries = 0 }
        local start = lib.core.now()
        local jobs, errs = client:get_jobs { "job_2abc3def4ghi5jkl6mno7pqr", "job_failed", "job_running" }
        local finish = lib.core.now()
        client:close()
        local statuses = {}
        for i = 1, 3 do statuses[i] = jobs[i] and jobs[i].status or tostring(errs[i]) end
        return ("%.6f %.6f %s"):format(start, finish, table.concat(statuses, ","))
      end)
      return ok, out
    end, function(ok, out)
      results[#results + 1] = { ok = ok, out = out }
    end)
    for _ = 1, workers do work:queue(t.root, t.build, slow_endpoint, key) end
    expect(wait_for(function() return #results == workers end, 10000), #results .. " of " .. workers .. " workers finished")
    local spans = {}
    for i, r in ipairs(results) do
      expect(r.ok, ("worker %d: %s"):format(i, tostring(r.out)))
      local s, f, statuses = r.out:match("^(%S+) (%S+) (.*)$")
      equal("COMPLETED,FAILED,RUNNING", statuses, ("worker %d's statuses"):format(i))
      spans[i] = { tonumber(s), tonumber(f) }
    end
    -- at once: every worker started before any of them finished (300 ms answers)
    local last_start, first_finish = -math.huge, math.huge
    for _, span in ipairs(spans) do
      last_start = math.max(last_start, span[1])
      first_finish = math.min(first_finish, span[2])
    end
    expect(last_start < first_finish, "the workers' fetches did not overlap")
  end)

  it("examples/nvim_job_status.lua shows a job's status as it changes and notifies when it ends", function()
    local client = new_client()
    local job = assert(client:create_job {
      name = "nvim recipe", pipeline_type = "batch", pipeline_key = "machine-state-classification",
      inputs = { ["worker.inference"] = { { file_id = "a.csv" } } },
    })
    local notified = {}
    local real_notify = vim.notify
    vim.notify = function(msg, level) notified[#notified + 1] = { msg = msg, level = level } end
    local ok, err = pcall(function()
      local plugin = dofile(t.root .. "/examples/nvim_job_status.lua")
      plugin.setup { client = client, interval = 0.02 }
      equal("", plugin.status(), "status with nothing watched")
      vim.cmd("AtaiWatch " .. job.id)
      local statuses, seen = {}, {}
      expect(wait_for(function()
        local s = plugin.status()
        if not seen[s] then
          seen[s] = true
          statuses[#statuses + 1] = s
        end
        return #notified > 0
      end, 5000), "no notification; statuses seen: " .. table.concat(statuses, " / "))
      local text = table.concat(statuses, " / ")
      expect(text:find(job.id .. " RUNNING", 1, true), "no RUNNING status: " .. text)
      expect(text:find("%", 1, true), "no progress percentage: " .. text)
      equal(job.id .. " COMPLETED", plugin.status(), "final status")
      equal(("atai: job %s COMPLETED"):format(job.id), notified[1].msg, "notification")
      equal(vim.log.levels.INFO, notified[1].level, "notification level")
      plugin.stop()
      equal("", plugin.status(), "status after stop()")
    end)
    vim.notify = real_notify
    client:close()
    expect(ok, tostring(err))
  end)
end

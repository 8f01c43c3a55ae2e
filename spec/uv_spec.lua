-- spec/uv_spec.lua: what an event-loop driver relies on (client:timeout()
-- and client:sockets() tell it when to poll), and atai.uv driving clients
-- from a plain luv loop (the lua-luv package), on every Lua.
local atai = require("atai")
local fake_api = require("spec.support.fake")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"

-- Polls `client` until `cond()` holds (bounded: 200 polls of 50 ms).
local function poll_until(client, cond)
  for _ = 1, 200 do
    if cond() then return end
    client:poll(0.05)
  end
  error("condition not met")
end

describe("client:timeout() for a loop driver", function()
  local t = fake_api({ max_retries = 0 })

  it("is 0 while a callback waits in the queue with nothing in flight", function()
    local h = t.client.async:get_job(SEED)
    poll_until(t.client, function() return h:done() end)
    assert.is_nil(t.client:timeout())
    local ran = false
    h:on_done(function() ran = true end) -- queued for the next poll
    assert.are.equal(0, t.client:timeout())
    t.client:poll(0)
    assert.is_true(ran)
    assert.is_nil(t.client:timeout())
  end)

  it("is 0 after a callback raised while the others still wait", function()
    local a, b = t.client.async:get_job(SEED), t.client.async:get_job("job_failed")
    poll_until(t.client, function() return a:done() and b:done() end)
    local b_ran = false
    a:on_done(function() error("boom") end) -- both queued, in this order
    b:on_done(function() b_ran = true end)
    local ok, msg = pcall(t.client.poll, t.client, 0)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("boom", 1, true))
    assert.is_false(b_ran)
    assert.are.equal(0, t.client:timeout())
    t.client:poll(0)
    assert.is_true(b_ran)
    assert.is_nil(t.client:timeout())
  end)
end)

-- ---------------------------------------------------------------------------
-- atai.uv under plain luv

local uv = require("luv") -- Debian's lua-luv (scripts/deps.sh installs it)
local atai_uv = require("atai.uv")

-- `n` delayed answers for GET `path`, each held `delay` seconds.
local function slow(srv, path, n, delay)
  local responses = {}
  for i = 1, n do responses[i] = { delay = delay, pass = true } end
  srv:fault { method = "GET", path = path, responses = responses }
end

local uv_loop = require("spec.support.uv_loop")
local handles, run_loop = uv_loop.handles, uv_loop.run

-- Fds of the active poll handles, as a sorted list (error on a duplicate).
local function polled_fds()
  local fds, seen = {}, {}
  for _, h in ipairs(handles()) do
    if h.kind == "poll" and h.active then
      assert(not seen[h.fd], "two poll handles on fd " .. tostring(h.fd))
      seen[h.fd] = true
      fds[#fds + 1] = h.fd
    end
  end
  table.sort(fds)
  return fds
end

local function keys_sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("atai.uv under luv", function()
  local t = fake_api({ max_retries = 0 })
  local detach

  after_each(function()
    if detach then detach() end
    detach = nil
    uv.run("nowait") -- let the closes complete
  end)

  it("delivers completions from uv.run(), which returns once all are done", function()
    detach = atai_uv.attach(t.client, uv)
    local jobs = {}
    for i = 1, 20 do
      t.client.async:get_job(SEED):on_done(function(job) jobs[i] = job end)
    end
    run_loop()
    for i = 1, 20 do assert.are.equal(SEED, jobs[i] and jobs[i].id, "job " .. i) end
    assert.are.equal(0, t.client:pending())
    assert.are.same({}, polled_fds())
  end)

  it("picks up work started before attach", function()
    local h = t.client.async:get_job(SEED)
    detach = atai_uv.attach(t.client, uv)
    run_loop()
    assert.is_true(h:done())
    assert.are.equal(SEED, h:result().id)
  end)

  it("wakes for a request started from a luv callback while idle", function()
    detach = atai_uv.attach(t.client, uv)
    run_loop() -- idle: returns at once
    local got
    local kick = uv.new_timer()
    kick:start(20, 0, function()
      kick:close()
      t.client.async:request("GET", "/batch/jobs/" .. SEED):on_done(function(body) got = body end)
    end)
    run_loop()
    assert.are.equal(SEED, got and got.id)
  end)

  it("runs an atai.run coroutine started before uv.run() to its end", function()
    detach = atai_uv.attach(t.client, uv)
    local h = atai.run(function()
      local job = t.client:get_job(SEED) -- awaits: the coroutine yields here
      local failed = t.client:get_job("job_failed")
      return job.id, failed.status
    end)
    run_loop()
    assert.is_true(h:done())
    local id, status = h:result()
    assert.are.equal(SEED, id)
    assert.are.equal("FAILED", status)
  end)

  it("watches each socket libcurl wants with one poll handle, and nothing more", function()
    slow(t.srv, "/v0.5/batch/jobs/" .. SEED, 12, 0.05)
    detach = atai_uv.attach(t.client, uv)
    local checks, mismatches = 0, {}
    local done = 0
    for _ = 1, 12 do t.client.async:get_job(SEED):on_done(function() done = done + 1 end) end
    local probe = uv.new_timer()
    probe:start(5, 5, function()
      local want, have = keys_sorted(t.client:sockets()), polled_fds()
      checks = checks + 1
      if table.concat(want, ",") ~= table.concat(have, ",") then
        mismatches[#mismatches + 1] = ("sockets %s, polled %s"):format(table.concat(want, ","), table.concat(have, ","))
      end
      if done == 12 then probe:close() end
    end)
    run_loop()
    assert.are.equal(12, done)
    assert.is_true(checks > 3)
    assert.are.same({}, mismatches)
  end)

  it("leaves no active handle but an unref'd prepare when idle", function()
    detach = atai_uv.attach(t.client, uv)
    t.client.async:get_job(SEED)
    run_loop()
    local active = {}
    for _, h in ipairs(handles()) do
      if h.active then active[#active + 1] = h.kind .. (h.ref and " (ref)" or " (unref)") end
    end
    assert.are.same({ "prepare (unref)" }, active)
  end)

  it("fires the engine's timers with its one timer (sleep, retry backoff)", function()
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 2, retry_backoff = 0.05 }
    finally(function() c:close() end)
    t.srv:fault { method = "GET", path = "/v0.5/batch/jobs/" .. SEED, responses = { { status = 503 } } }
    detach = atai_uv.attach(c, uv)
    local slept, job, err
    c.async:sleep(0.05):on_done(function(ok) slept = ok end)
    c.async:get_job(SEED):on_done(function(j, e) job, err = j, e end)
    run_loop()
    assert.is_true(slept)
    assert.are.equal(SEED, job and job.id, tostring(err))
    local timers = 0
    for _, h in ipairs(handles()) do timers = timers + (h.kind == "timer" and 1 or 0) end
    assert.are.equal(1, timers)
  end)

  it("hands a callback's error to opts.on_error; the loop and the other callbacks go on", function()
    local errors, seen = {}, {}
    detach = atai_uv.attach(t.client, uv, { on_error = function(e) errors[#errors + 1] = e end })
    local a = t.client.async:get_job(SEED)
    local b = t.client.async:get_job("job_failed")
    a:on_done(function() error("boom from a callback") end)
    b:on_done(function(job) seen[#seen + 1] = job.status end)
    run_loop()
    assert.are.equal(1, #errors)
    assert.is_truthy(tostring(errors[1]):find("boom from a callback", 1, true))
    assert.is_truthy(tostring(errors[1]):find("traceback", 1, true))
    assert.are.same({ "FAILED" }, seen)
  end)

  it("prints a callback's error with its traceback to stderr by default", function()
    local written = {}
    local real = io.stderr
    -- luacheck: push ignore 122 (atai.uv writes to whatever io.stderr is then)
    io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end,
      flush = function() end }
    finally(function() io.stderr = real end)
    detach = atai_uv.attach(t.client, uv)
    t.client.async:get_job(SEED):on_done(function() error("unhandled in a callback") end)
    run_loop()
    io.stderr = real
    -- luacheck: pop
    local text = table.concat(written)
    assert.is_truthy(text:find("atai.uv: a callback raised: ", 1, true), text)
    assert.is_truthy(text:find("unhandled in a callback", 1, true), text)
    assert.is_truthy(text:find("stack traceback", 1, true), text)
  end)

  it("passes a broken connection on to libcurl: the request fails, nothing hangs", function()
    -- a new client: libcurl sends again by itself when a reused connection dies
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 0 }
    finally(function() c:close() end)
    t.srv:fault { method = "GET", path = "/v0.5/batch/jobs/" .. SEED, responses = { { close = true } } }
    detach = atai_uv.attach(c, uv)
    local job, err
    c.async:get_job(SEED):on_done(function(j, e) job, err = j, e end)
    run_loop()
    assert.is_nil(job)
    assert.are.equal("network", err and err.kind)
    assert.are.same({}, polled_fds())
  end)

  it("a callback may open a pipe on the fd number libcurl just closed", function()
    -- a new client: its one connection is closed by the server, then by libcurl
    local c = atai.new { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 0 }
    finally(function() c:close() end)
    t.srv:fault { method = "GET", path = "/v0.5/batch/jobs/" .. SEED, responses = { { delay = 0.05, close = true } } }
    detach = atai_uv.attach(c, uv)
    local curl_fd, pipe_fd, opened, received
    local probe = uv.new_timer()
    probe:start(1, 1, function() curl_fd = next(c:sockets()) or curl_fd end)
    probe:unref()
    c.async:get_job(SEED):on_done(function()
      local fds = uv.pipe()
      pipe_fd = fds.read
      local r, w = uv.new_pipe(), uv.new_pipe()
      opened = { r:open(fds.read) }
      w:open(fds.write)
      r:read_start(function(_, data)
        received = data
        r:close()
      end)
      w:write("ping", function() w:close() end)
    end)
    run_loop()
    probe:close()
    assert.is_number(curl_fd)
    assert.are.equal(curl_fd, pipe_fd, "the pipe did not get libcurl's old fd: the case was not tried")
    assert.are.same({ 0 }, opened)
    assert.are.equal("ping", received)
  end)

  it("notices when someone else's poll finished the work, and lets the loop end", function()
    slow(t.srv, "/v0.5/batch/jobs/" .. SEED, 1, 0.1)
    detach = atai_uv.attach(t.client, uv)
    local h = t.client.async:get_job(SEED)
    local waited
    local kick = uv.new_timer()
    kick:start(20, 0, function()
      kick:close()
      waited = h:wait() -- drives the engine outside the driver
    end)
    run_loop()
    assert.are.equal(SEED, waited and waited.id)
    assert.are.same({}, polled_fds())
  end)

  it("detach() from a callback stops everything; nothing is polled after it", function()
    slow(t.srv, "/v0.5/batch/jobs/job_failed", 1, 0.3)
    detach = atai_uv.attach(t.client, uv)
    local late = t.client.async:get_job("job_failed")
    t.client.async:get_job(SEED):on_done(function() detach() end)
    run_loop()
    assert.is_false(late:done())
    assert.are.same({}, handles())
    late:cancel()
  end)

  it("detach() closes every handle it made and is idempotent", function()
    slow(t.srv, "/v0.5/batch/jobs/" .. SEED, 3, 0.2)
    detach = atai_uv.attach(t.client, uv)
    local hs = {}
    for i = 1, 3 do hs[i] = t.client.async:get_job(SEED) end
    local stop = uv.new_timer()
    stop:start(50, 0, function() stop:close(); uv.stop() end)
    uv.run()
    assert.is_true(#polled_fds() > 0)
    local P = require("atai.core.private") -- a test of internals
    local hook = P.on_work(nil)
    P.on_work(hook)
    assert.is_function(hook) -- the engine's "work started" hook, set while attached
    detach()
    detach()
    uv.run("nowait")
    assert.are.same({}, handles())
    assert.is_nil(P.on_work(nil)) -- and unset once no driver is left
    for _, h in ipairs(hs) do h:cancel() end
  end)

  it("falls back to 10 ms polls when the loop refuses a socket, and says so once", function()
    -- collect first: earlier specs' dropped clients, freed under a slow
    -- build (make sanitize), could otherwise outlast the answer's delay
    collectgarbage()
    collectgarbage()
    slow(t.srv, "/v0.5/batch/jobs/" .. SEED, 1, 1)
    local h = t.client.async:get_job(SEED)
    for _ = 1, 200 do -- (slow builds, such as make sanitize's, take a while to connect)
      if next(t.client:sockets()) then break end
      t.client:poll(0.01)
    end
    local fd = next(t.client:sockets())
    assert.is_number(fd)
    local squatter = uv.new_socket_poll(fd) -- the loop allows one watcher per fd
    squatter:start("r", function() squatter:stop() end)
    finally(function() squatter:close(); uv.run("nowait") end)
    local errors = {}
    detach = atai_uv.attach(t.client, uv, { on_error = function(e) errors[#errors + 1] = e end })
    run_loop()
    assert.is_true(h:done())
    assert.are.equal(SEED, h:result().id)
    assert.are.equal(1, #errors)
    assert.is_truthy(errors[1]:find("cannot watch socket " .. fd .. " (EEXIST", 1, true), errors[1])
  end)

  it("raises on a client already attached, and on bad arguments", function()
    detach = atai_uv.attach(t.client, uv)
    assert.has_error(function() atai_uv.attach(t.client, uv) end,
      "bad argument #1 to 'attach' (client already attached: call its detach first)")
    assert.has_error(function() atai_uv.attach("client", uv) end,
      "bad argument #1 to 'attach' (atai client or nil expected, got string)")
    assert.has_error(function() atai_uv.attach(atai.new { endpoint = t.srv.endpoint, api_key = "k" }, {}) end,
      "bad argument #2 to 'attach' (libuv module expected: no uv.new_timer)")
    assert.has_error(function() atai_uv.attach(nil, uv, { on_eror = print }) end,
      "bad argument #3 to 'attach' (unknown option 'on_eror')")
    local closed = atai.new { endpoint = t.srv.endpoint, api_key = "k" }
    closed:close()
    assert.has_error(function() atai_uv.attach(closed, uv) end,
      "bad argument #1 to 'attach' (attempt to use a closed atai client)")
    detach()
    detach = atai_uv.attach(t.client, uv) -- again once detached
  end)

  it("keeps argument errors at the caller's line while it wraps the start functions", function()
    detach = atai_uv.attach(t.client, uv)
    local ok, msg = pcall(function() t.client.async:get_job(42) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("uv_spec.lua:%d+: bad argument #1 to 'get_job'"), msg)
    ok, msg = pcall(function() t.client:get_job(42) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("uv_spec.lua:%d+: bad argument #1 to 'get_job'"), msg)
  end)

  it("drives the default client with attach(nil), across atai.configure", function()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    finally(function() atai.configure {} end)
    local errors = {}
    detach = atai_uv.attach(nil, uv, { on_error = function(e) errors[#errors + 1] = e end })
    assert.has_error(function() atai_uv.attach(nil, uv) end,
      "bad argument #1 to 'attach' (the default client is already attached: call its detach first)")
    local first, second
    atai.async.get_job(SEED):on_done(function(job) first = job end)
    run_loop()
    assert.are.equal(SEED, first and first.id)
    local old = atai.default_client()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key, max_retries = 0 }
    atai.async.get_job("job_failed"):on_done(function(job) second = job end)
    run_loop()
    assert.are_not.equal(old, atai.default_client())
    assert.are.equal("FAILED", second and second.status)
    assert.are.same({}, errors)
  end)

  it("a client attached on its own is not driven twice by attach(nil)", function()
    atai.configure { endpoint = t.srv.endpoint, api_key = t.srv.key }
    local detach_default = atai_uv.attach(nil, uv)
    finally(function() -- (busted keeps one finally per test)
      detach_default()
      atai.configure {}
    end)
    detach = atai_uv.attach(atai.default_client(), uv)
    local got = 0
    for _ = 1, 5 do atai.async.get_job(SEED):on_done(function() got = got + 1 end) end
    local probe, dup = uv.new_timer(), nil
    probe:start(1, 1, function()
      local ok, e = pcall(polled_fds)
      if not ok then dup = e end
      if got == 5 then probe:close() end
    end)
    run_loop()
    assert.are.equal(5, got)
    assert.is_nil(dup)
  end)
end)

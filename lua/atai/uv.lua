--- atai.uv: drives an atai client from a libuv loop: Neovim's vim.uv or
-- vim.loop, or the luv module.
--
--   local detach = require("atai.uv").attach(client, vim.uv or vim.loop)
--   client.async:get_job(id):on_done(function(job, err) ... end)
--   detach() -- later: stops and closes every handle it made
--
-- How it drives. After every client:poll(0) it makes the loop's handles
-- match what the engine wants:
--   * one poll handle per socket of client:sockets(), kept while libcurl
--     keeps the socket and closed when it drops it. Each kept handle is
--     started again (uv_poll_start re-registers the fd), because libcurl may
--     have closed a socket and opened another under the same number inside
--     that poll; a socket never has two handles.
--   * one timer, re-armed to client:timeout(); stopped when that is nil.
-- No sockets and no timeout: no active handle, nothing runs. A readiness
-- or error event only asks for a poll: poll(0) polls the sockets itself,
-- so libcurl sees the error too.
--
-- Before the poll's callbacks run, the handles of the sockets libcurl
-- closed in that poll are closed too (a callback queued ahead of them), so
-- a callback that opens a pipe or socket can have the same fd number.
--
-- Where callbacks run. In Neovim, poll(0) runs from vim.schedule, so
-- completion callbacks may use vim.api; at most one poll is scheduled at a
-- time. Under plain luv it runs in the handle's callback. An error raised
-- by a callback never reaches the loop: Neovim reports it like any
-- scheduled callback's error; luv hands it to opts.on_error (default: the
-- error and its traceback on stderr). Either way the other callbacks still
-- run at the next poll.
--
-- Noticing new work: a loop sleeping on an idle client must still wake for
-- a transfer started from plain code. Two hooks, neither of which polls:
--   * a prepare handle looks at client:timeout() each time the loop is
--     about to block and arms the timer when work appeared (or a deadline
--     moved earlier, or someone else's poll left nothing to watch). It sees
--     everything started inside the loop: Neovim commands, mappings,
--     autocommands, timers, callbacks, atai.run coroutines. It is unref'd,
--     so it never keeps a luv loop alive.
--   * atai.core's "work started" hook (the private P.on_work), set while a
--     driver is attached: the engine calls it with the client just before
--     it puts any request or sleep in flight, and the driver arms the timer
--     at 0. That covers work started outside a running loop, which no loop
--     handle can see: under plain luv, requests made before uv.run().
-- A repeating "kick" timer would do either job only by waking the loop
-- when there is nothing to do, or by adding its period to every start.
--
-- Limit: when something else steps the engine while a driver is attached
-- (a blocking call, h:wait(), client:poll()), the callbacks run there may
-- still meet a handle on a socket libcurl closed in that step, so a pipe
-- or socket they open can get EEXIST. Only the engine can close that gap
-- (keep a closed socket's fd open until client:sockets() has been read).

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only

local uv_driver = {}

local drivers = {} -- client -> driver of an attached client
local default_driver -- the driver of attach(nil), or nil
local MS = 1000

-- ---------------------------------------------------------------------------
-- Noticing new work: atai.core's "work started" hook

-- Wakes the driver of `client`, or the default client's driver.
local function wake_for(client)
  local d = (client ~= nil and drivers[client]) or default_driver
  if d then d.wake() end
end

-- atai.core calls the hook before it puts any request or sleep in flight
-- (P.on_work); it is set while a driver exists.
local function watch_starts() P.on_work(wake_for) end

-- Unsets the hook once no driver is left.
local function unwatch_starts()
  if next(drivers) ~= nil or default_driver then return end
  P.on_work(nil)
end

-- ---------------------------------------------------------------------------
-- Reporting callback errors

local function traceback(err)
  if type(err) == "string" and debug and debug.traceback then return debug.traceback(err, 2) end
  return err
end

-- Default opts.on_error under plain luv: the error and its traceback on stderr.
local function print_error(err, what)
  io.stderr:write("atai.uv: ", what or "a callback raised: ", tostring(err), "\n")
  io.stderr:flush()
end

-- Neovim's scheduler, when the loop is Neovim's.
local function nvim_schedule(uv)
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and (rawequal(uv, rawget(vim, "uv")) or rawequal(uv, vim.loop)) then
    return vim.schedule
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- One driver: its handles and the steps that keep them in line

local function is_closed(client)
  return P.is_closed(client)
end

-- Makes a driver for the client `resolve()` returns (nil: nothing to drive).
local function new_driver(uv, resolve, opts)
  local d = {}
  local new_poll = uv.new_socket_poll or uv.new_poll
  local polls = {} -- fd -> poll handle
  local on_ready = {} -- fd -> its handle's callback
  local refused = {} -- fd -> true: the loop would not watch it (asked once)
  local timer, prepare = uv.new_timer(), uv.new_prepare()
  local armed -- loop time (ms) the timer fires at, or nil when stopped
  local schedule = nvim_schedule(uv)
  local on_error = opts.on_error
  local scheduled, stepping, detached, warned = false, false, false, false
  local step

  -- Arms the timer `seconds` from now (nil: stops it). `earlier_only`: keep
  -- it when it fires sooner already.
  local function arm(seconds, earlier_only)
    if seconds == nil then
      if armed then timer:stop() end
      armed = nil
      return
    end
    local ms = math.max(0, math.ceil(seconds * MS))
    local due = uv.now() + ms
    if earlier_only and armed and armed <= due then return end
    armed = due
    timer:start(ms, 0, function()
      armed = nil
      d.request()
    end)
  end

  local function close_poll(fd)
    local p = polls[fd]
    polls[fd], on_ready[fd] = nil, nil
    if not p:is_closing() then
      p:stop()
      p:close()
    end
  end

  -- A socket the loop refuses to watch (another handle has its fd): said
  -- once; the timer then polls every 10 ms.
  local function on_poll_failed(fd, err)
    if warned then return end
    warned = true
    d.report(("cannot watch socket %d (%s); polling every 10 ms instead"):format(fd, tostring(err)), "")
  end

  -- Closes the poll handles of sockets libcurl no longer wants; returns
  -- what it wants.
  local function drop_stale()
    local want = d.client and d.client:sockets() or {}
    for fd in pairs(polls) do
      if not want[fd] then close_poll(fd) end
    end
    for fd in pairs(refused) do
      if not want[fd] then refused[fd] = nil end
    end
    return want
  end

  -- Makes the handles match client:sockets() and client:timeout().
  local function sync()
    local client = d.client
    local want = drop_stale()
    local failed = false
    for fd, events in pairs(want) do
      local p, err = polls[fd], nil
      if not p and not refused[fd] then
        p, err = new_poll(fd)
        if p then
          local handle = p
          polls[fd], on_ready[fd] = p, function() d.ready(handle) end
        end
      end
      if p then
        p:start(events, on_ready[fd])
      else
        failed = true
        if not refused[fd] then on_poll_failed(fd, err) end
        refused[fd] = true
      end
    end
    local timeout = client and client:timeout()
    if failed then timeout = math.min(timeout or 0.01, 0.01) end
    arm(timeout)
  end

  -- The first callback of each poll: libcurl may have closed sockets in
  -- its I/O phase, and a callback that opens a pipe or socket may get the
  -- same fd number, which the loop refuses (EEXIST) while a stale handle
  -- holds it. Queued before the poll, this runs ahead of the callbacks.
  local function before_callbacks()
    if not detached then drop_stale() end
  end

  local function poll_once()
    P.defer(d.client, false, before_callbacks)
    return d.client:poll(0)
  end

  -- Polls the client once (when it has work), then syncs the handles;
  -- returns false, err when a callback raised.
  step = function()
    if detached then return true end
    if stepping then return true end -- a callback ran the loop: poll when it returns
    stepping = true
    local client = resolve()
    if client ~= d.client then d.forget() end
    d.client = client
    local ok, err = true, nil
    if client and client:timeout() ~= nil then
      if schedule then ok, err = pcall(poll_once)
      else ok, err = xpcall(poll_once, traceback) end
    end
    stepping = false
    if detached then return ok, err end -- a callback detached
    -- A callback may have replaced the default client (atai.configure)
    -- and started work on the new one: sync against that, or its timer
    -- would be disarmed and the loop would return with it pending.
    local now_client = resolve()
    if now_client ~= nil and now_client ~= d.client then
      d.forget()
      d.client = now_client
    end
    -- raises only on a broken loop; a callback's error leaves timeout() at 0
    sync()
    return ok, err
  end

  -- A socket is ready (or failed): poll. In Neovim the handle waits stopped
  -- until the scheduled poll, or level-triggered readiness would repeat.
  function d.ready(p)
    if schedule and not p:is_closing() then p:stop() end
    d.request()
  end

  -- Runs a step now (luv) or schedules one (Neovim, at most one at a time).
  function d.request()
    if detached then return end
    if not schedule then
      local ok, err = step()
      if not ok then d.report(err) end
      return
    end
    if scheduled then return end
    scheduled = true
    schedule(function()
      scheduled = false
      local ok, err = step()
      if not ok then d.report(err) end
    end)
  end

  -- Hands an error on: opts.on_error, else Neovim's reporting (raised from
  -- a scheduled function of its own), else stderr, after `what` (default
  -- "a callback raised: "). Never raises.
  function d.report(err, what)
    if on_error then
      local ok, err2 = pcall(on_error, err)
      if ok then return end
      print_error(err, what)
      print_error(err2, "opts.on_error raised: ")
    elseif schedule then
      schedule(function() error((what or "") .. tostring(err), 0) end)
    else
      print_error(err, what)
    end
  end

  -- Arms the timer at once: work is about to start.
  function d.wake()
    if not detached then arm(0, true) end
  end

  -- Drops the handles of the client driven until now (the default client
  -- was replaced, or attached on its own).
  function d.forget()
    for fd in pairs(polls) do close_poll(fd) end
    refused = {}
    d.client = nil
  end

  -- The loop is about to block: has work appeared, or gone, behind our back?
  local function before_block()
    if detached or stepping then return end
    local client = resolve()
    if client ~= d.client then return arm(0, true) end
    local timeout = client and client:timeout()
    if timeout == nil then
      if armed or next(polls) ~= nil then arm(0, true) end -- someone else's poll emptied it
      return
    end
    arm(timeout, true)
  end

  --- Stops and closes every handle the driver made; idempotent.
  function d.detach()
    if detached then return end
    detached = true
    d.forget()
    for _, h in ipairs({ timer, prepare }) do
      if not h:is_closing() then h:close() end
    end
    armed = nil
  end

  prepare:start(before_block)
  prepare:unref()
  d.client = resolve()
  arm(0) -- a first step picks up whatever is already in flight
  return d
end

-- ---------------------------------------------------------------------------
-- attach

local function arg_error(n, message)
  error(("bad argument #%d to 'attach' (%s)"):format(n, message), 3)
end

local UV_FUNCTIONS = { "new_timer", "new_prepare", "now" }

local function check_uv(uv)
  if type(uv) ~= "table" then arg_error(2, "libuv module expected (vim.uv, vim.loop or luv), got " .. type(uv)) end
  for _, name in ipairs(UV_FUNCTIONS) do
    if type(uv[name]) ~= "function" then arg_error(2, "libuv module expected: no uv." .. name) end
  end
  if type(uv.new_socket_poll) ~= "function" and type(uv.new_poll) ~= "function" then
    arg_error(2, "libuv module expected: no uv.new_socket_poll")
  end
end

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(3, "options table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    if k ~= "on_error" then arg_error(3, ("unknown option '%s'"):format(tostring(k))) end
    if type(v) ~= "function" then arg_error(3, "opts.on_error: function expected, got " .. type(v)) end
  end
  return opts
end

local function is_client(v)
  return type(v) == "userdata" and pcall(core.Client.pending, v)
end

-- The default client while it has work, unless attached on its own.
local function default_resolver()
  local atai = require("atai")
  return function()
    if atai.timeout() == nil then return nil end
    local client = atai.default_client()
    if drivers[client] then return nil end
    return client
  end
end

--- attach(client, uv[, opts]) -> detach: drives `client` (nil: the default
--- client, whichever atai.configure makes) from the libuv loop `uv`.
--- opts.on_error(err): where a callback's error goes (default: Neovim's
--- error reporting, or stderr under luv). Raises when already attached.
function uv_driver.attach(client, uv, opts)
  if client ~= nil and not is_client(client) then
    arg_error(1, "atai client or nil expected, got " .. type(client))
  end
  check_uv(uv)
  opts = check_opts(opts)
  local d
  if client == nil then
    if default_driver then arg_error(1, "the default client is already attached: call its detach first") end
    d = new_driver(uv, default_resolver(), opts)
    default_driver = d
  else
    if drivers[client] then arg_error(1, "client already attached: call its detach first") end
    if is_closed(client) then arg_error(1, "attempt to use a closed atai client") end
    if default_driver and default_driver.client == client then default_driver.forget() end
    d = new_driver(uv, function() return client end, opts)
    drivers[client] = d
  end
  watch_starts()
  local detached = false
  return function()
    if detached then return end
    detached = true
    d.detach()
    if default_driver == d then default_driver = nil
    else drivers[client] = nil end
    unwatch_starts()
  end
end

return uv_driver

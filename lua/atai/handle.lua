--- atai.handle: handles of operations in flight, and coroutines.
--
-- Two kinds of handle share one interface (done, result, wait, cancel,
-- on_done, await):
--   * C handles (atai.Handle, src/handle.c): one request or one sleep;
--   * Lua handles (Op, here): an operation made of several, such as
--     wait_job, get_jobs or find_pipeline, and the handles of atai.run.
-- An operation is written once as straight-line code and run in a
-- coroutine (atai.run): inside it every blocking call yields its handle,
-- and the handle's completion resumes it. So the async form of a method is
-- its blocking form run in a coroutine, and nothing is written twice.
-- Nothing here uses pcall or a generic `for` around a yield, so it works on
-- Lua 5.1 and LuaJIT, which cannot yield across those.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")

local Handle = core.Handle -- the C handles' methods table
local unpack = table.unpack or unpack
local pack = table.pack or function(...) return { n = select("#", ...), ... } end

local handle = {}

--- Lua-made handles.
---@class atai.Op
local Op = {}
Op.__index = Op
Op.__name = "atai.Op"
handle.Op = Op

local function is_handle(v)
  local mt = getmetatable(v)
  return mt == Op or (type(mt) == "table" and mt.__index == Handle)
end
handle.is_handle = is_handle

local function pending_error(what)
  return core.new_error { kind = "pending", message = what }
end

local function cancelled_error(what)
  return core.new_error { kind = "cancelled", message = what }
end

--- A new Lua handle owned by `client` (nil: ownerless). `counted`: it counts
--- in client:pending() (the handles users start, not atai's own).
function Op.new(client, counted)
  local op = setmetatable({ client = client, callbacks = {}, counted = counted and client ~= nil }, Op)
  if op.counted then P.ops(client, 1) end
  return op
end

-- Queues fn(results) on the owner's callback queue (or the global one).
local function defer(op, fn, free, res)
  if op.client then P.defer(op.client, free, fn, unpack(res, 1, res.n))
  else core.defer(nil, free, fn, unpack(res, 1, res.n)) end
end

--- Completes the Lua handle `self` with these values (once; later calls do
--- nothing). Not a method: users cannot complete a handle.
local function complete(self, ...)
  if self.res then return end
  self.res = pack(...)
  if self.counted then P.ops(self.client, -1) end
  local callbacks = self.callbacks
  self.callbacks = nil
  for i = 1, #callbacks, 2 do defer(self, callbacks[i], callbacks[i + 1], self.res) end
end

function Op:done() return self.res ~= nil end

function Op:result()
  if not self.res then return nil, pending_error("the operation is still in progress") end
  return unpack(self.res, 1, self.res.n)
end

-- The functions below take either kind of handle (a C handle: atai.core's
-- private functions do it); they are this layer's, not methods users see.

--- Registers fn(results of h), run from poll/wait; `free`: unguarded.
local function on_done(h, fn, free)
  if getmetatable(h) ~= Op then return P.on_done(h, fn, free) end
  if h.res then defer(h, fn, free, h.res)
  else
    local cbs = h.callbacks
    cbs[#cbs + 1], cbs[#cbs + 2] = fn, free and true or false
  end
  return h
end

--- Marks h as atai's own: it no longer counts in client:pending(). Returns h.
local function internal(h)
  if getmetatable(h) ~= Op then return P.internal(h) end
  if h.counted and not h.res then P.ops(h.client, -1) end
  h.counted = false
  return h
end

--- The client whose engine drives h (nil: none).
local function client_of(h)
  if getmetatable(h) ~= Op then return P.client_of(h) end
  return h.client or (h.awaiting and client_of(h.awaiting))
end

function Op:cancel()
  if self.res then return end
  self.cancelled = true
  local awaited = self.awaiting
  complete(self, nil, cancelled_error("the operation was cancelled"))
  if awaited then awaited:cancel() end
end

-- Drives the engine of whatever the handle waits on until it is done or
-- `seconds` have passed. Each step returns to Lua at least every 100 ms,
-- and as soon as a callback ran (the one that may have completed self).
local function wait_for(self, seconds)
  if getmetatable(self) ~= Op then return P.wait(self, seconds) end
  local deadline = seconds and core.now() + seconds
  while not self.res do
    local client = client_of(self)
    local left = deadline and deadline - core.now()
    if left and left <= 0 then break end
    if not client then break end
    P.step(client, left and math.min(left, 0.1) or 0.1)
  end
  if not self.res then return nil, pending_error("the wait timed out; the operation goes on") end
  return unpack(self.res, 1, self.res.n)
end

Op.__tostring = function(self)
  return ("atai.Op (%s, %s)"):format(self.name or "operation", self.res and "done" or "in flight")
end


-- ---------------------------------------------------------------------------
-- Methods of both kinds: on_done, wait, await

-- Awaits h inside a coroutine of atai.run: yields it to the driver, which
-- resumes the coroutine with its results. With `seconds`, a sleep races it.
local function await(h, seconds)
  if h:done() then return h:result() end
  if seconds == nil then return coroutine.yield(h) end
  local client = client_of(h)
  if not client then return coroutine.yield(h) end
  local race = Op.new(client, false)
  local timer = internal(client.async:sleep(seconds))
  on_done(h, function(...) timer:cancel(); complete(race, ...) end)
  on_done(timer, function(ok)
    if ok then complete(race, nil, pending_error("the wait timed out; the operation goes on")) end
  end)
  return coroutine.yield(race)
end

local function check_seconds(fname, seconds)
  if seconds ~= nil and not (check.is_number(seconds) and seconds >= 0) then
    check.fail(fname, 1, "seconds: number >= 0 expected, got " .. type(seconds))
  end
end

local shared = {}

--- Registers fn, called once with the handle's results from poll/wait.
function shared:on_done(fn)
  if type(fn) ~= "function" then check.fail("on_done", 1, "function expected, got " .. type(fn)) end
  return on_done(self, fn, false)
end

--- Waits for the handle (driving its client's engine) and returns its
--- results; after `seconds`, nil, err (kind "pending") while it goes on.
--- Inside atai.run it awaits instead.
function shared:wait(seconds)
  check_seconds("wait", seconds)
  if core.in_run() then return await(self, seconds) end
  return wait_for(self, seconds)
end

--- Inside atai.run: yields until the handle is done and returns its results.
--- Elsewhere the same as wait().
function shared:await()
  if core.in_run() then return await(self) end
  return wait_for(self)
end

for name, fn in pairs(shared) do Op[name] = fn end
--- The methods both kinds share; atai.methods puts them on atai.Handle.
handle.SHARED = shared

handle.complete, handle.on_done, handle.internal, handle.client_of = complete, on_done, internal, client_of


-- ---------------------------------------------------------------------------
-- Coroutines

local function traceback_of(co, message)
  if debug and debug.traceback then return debug.traceback(co, message) end
  return message
end

--- Runs fn(...) in a coroutine owned by `client` (nil: by no client), at
--- once until its first await; returns the handle that completes with fn's
--- results. `counted`: the handle counts in client:pending().
function handle.spawn(client, counted, name, fn, ...)
  local op = Op.new(client, counted)
  op.name = name
  local co = coroutine.create(fn)
  core.runs[co] = true
  local step
  -- Resumes the coroutine with the awaited handle's results.
  function step(...)
    if op.res then return end -- cancelled: it is never resumed again
    op.awaiting = nil
    local res = pack(coroutine.resume(co, ...))
    if not res[1] then
      local message = tostring(res[2])
      local trace = traceback_of(co, message)
      core.runs[co] = nil
      complete(op, nil, core.new_error {
        kind = op.cancel_on_error and "cancelled" or "callback",
        message = op.cancel_on_error and ("cancelled: a callback raised: " .. message) or message,
        traceback = trace,
      })
      error(trace, 0)
    end
    if coroutine.status(co) == "dead" then
      core.runs[co] = nil
      complete(op, unpack(res, 2, res.n))
      return
    end
    local h = res[2]
    if not is_handle(h) then
      core.runs[co] = nil
      complete(op, nil, core.new_error { kind = "callback",
        message = "a coroutine of atai.run yielded " .. type(h) .. ", not a handle" })
      return
    end
    op.awaiting = h
    on_done(h, step, false)
  end
  step(...)
  return op
end

--- atai.run(fn, ...) -> handle: see doc/async.md, "Coroutines".
function handle.run(fn, ...)
  if type(fn) ~= "function" then check.fail("run", 1, "function expected, got " .. type(fn)) end
  return handle.spawn(nil, false, "run", fn, ...)
end

--- Waits for handles of any clients: values[i], errs[i] from handles[i]
--- (errs[i] only when values[i] is nil). A handle still running after
--- `seconds` gives an error of kind "pending".
function handle.wait_all(handles, seconds, fname)
  fname = fname or "wait_all"
  if type(handles) ~= "table" then check.fail(fname, 1, "list of handles expected, got " .. type(handles)) end
  for i = 1, #handles do
    if not is_handle(handles[i]) then check.fail(fname, 1, ("handles[%d]: handle expected"):format(i)) end
  end
  if seconds ~= nil and not (check.is_number(seconds) and seconds >= 0) then
    check.fail(fname, 2, "seconds: number >= 0 expected")
  end
  local deadline = seconds and core.now() + seconds
  local values, errs = {}, {}
  local i = 1
  while i <= #handles do
    local h = handles[i]
    local left = deadline and math.max(deadline - core.now(), 0)
    local v, e = h:wait(left)
    values[i] = v
    if v == nil then errs[i] = e end
    i = i + 1
  end
  return values, errs
end

return handle

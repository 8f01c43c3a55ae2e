--[[
  fake_api/sched.lua -- the scheduler: one coroutine per connection over socket.select.

  A thread yields {sock, mode, wake}: it is resumed when `sock` is ready for `mode`
  ("r"/"w") or when the time `wake` has come.  sleep(d) yields until a deadline, so a
  delayed response on one connection never blocks the others.
]]

local socket = require("socket")
local util = require("fake_api.util")

local now = socket.gettime

local sched = { threads = {}, stopping = false }

-- Yield until `sock` is ready for mode "r"/"w", or until `deadline`.
-- Returns "ready" or "timeout".
function sched.wait_io(sock, mode, deadline)
  return coroutine.yield({ sock = sock, mode = mode, wake = deadline })
end

-- Yield for `seconds` without blocking the other threads.
function sched.sleep(seconds)
  coroutine.yield({ wake = now() + seconds })
end

local function resume(thread, ...)
  local ok, request = coroutine.resume(thread.co, ...)
  if not ok then
    util.log_error(debug.traceback(thread.co, tostring(request)))
    thread.dead = true
  elseif coroutine.status(thread.co) == "dead" then
    thread.dead = true
  else
    thread.sock, thread.mode, thread.wake = request.sock, request.mode, request.wake
  end
end

-- Start a thread running fn(...); it runs until its first yield.
function sched.spawn(fn, ...)
  local thread = { co = coroutine.create(fn) }
  table.insert(sched.threads, thread)
  resume(thread, ...)
end

-- One pass of the loop: wait for readiness (at most `max_wait` s), resume ready threads.
-- `on_accept` is called when `listener` has a connection waiting.
function sched.step(listener, on_accept, max_wait)
  local recvt, sendt, timeout = { listener }, {}, max_wait
  local t0 = now()
  for _, th in ipairs(sched.threads) do
    if th.sock then table.insert(th.mode == "w" and sendt or recvt, th.sock) end
    if th.wake then timeout = math.min(timeout, math.max(0, th.wake - t0)) end
  end
  local readable, writable = socket.select(recvt, sendt, timeout)
  if readable[listener] then on_accept() end
  local t1, ready = now(), {}
  for _, th in ipairs(sched.threads) do
    local io_ready = th.sock and (readable[th.sock] or writable[th.sock])
    if not th.dead and (io_ready or (th.wake and t1 >= th.wake)) then
      ready[#ready + 1] = { th, io_ready and "ready" or "timeout" }
    end
  end
  for _, r in ipairs(ready) do resume(r[1], r[2]) end
  local alive = {}
  for _, th in ipairs(sched.threads) do
    if not th.dead then alive[#alive + 1] = th end
  end
  sched.threads = alive
end

-- Close the sockets of every thread (at exit).
function sched.close_all()
  for _, th in ipairs(sched.threads) do
    if th.sock then pcall(th.sock.close, th.sock) end
  end
end

return sched

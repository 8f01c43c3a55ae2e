-- spec/support/uv_loop.lua: running a luv loop in the specs of atai.uv
-- (uv_spec.lua, uv_reconfigure_spec.lua).
local uv = require("luv")

local uv_loop = {}

--- The loop's open handles, as {kind = "poll"|"timer"|..., active, ref, fd}.
function uv_loop.handles()
  local list = {}
  uv.walk(function(h)
    if not h:is_closing() then
      local kind = tostring(h):match("^uv_(%a+)_t") or tostring(h)
      list[#list + 1] = { kind = kind, active = h:is_active(), ref = h:has_ref(),
        fd = kind == "poll" and h:fileno() or nil }
    end
  end)
  return list
end

--- Runs the loop until nothing keeps it alive; fails after `seconds` (20: a
--- bound for a hang, never reached by a passing test, even under valgrind),
--- naming the handles still active. The watchdog is unref'd: it never keeps
--- the loop alive itself.
function uv_loop.run(seconds)
  local watchdog, stuck = uv.new_timer(), nil
  watchdog:start(math.floor((seconds or 20) * 1000), 0, function()
    stuck = {}
    for _, h in ipairs(uv_loop.handles()) do
      if h.active and h.ref then stuck[#stuck + 1] = h.kind .. (h.fd and (" fd " .. h.fd) or "") end
    end
    uv.stop()
  end)
  watchdog:unref()
  uv.run()
  watchdog:close()
  uv.run("nowait")
  assert(not stuck, ("the loop was still busy after %d s (active: %s)"):format(seconds or 20,
    table.concat(stuck or {}, ", ")))
end

return uv_loop

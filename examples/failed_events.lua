-- examples/failed_events.lua: why did a job fail? Its FAILED and ERROR
-- events, oldest first.
--
--   ATAI_API_KEY=... lua5.4 examples/failed_events.lua JOB_ID
local atai = require("atai")

local id = arg[1]
if not id then
  io.stderr:write("usage: failed_events.lua JOB_ID\n")
  os.exit(2)
end

local job, err = atai.get_job(id)
if not job then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("%s  %s  failed_at=%s"):format(job.id, job.status, job.failed_at or "-"))
if type(job.error) == "table" then
  for k, v in pairs(job.error) do print(("  error.%s = %s"):format(k, tostring(v))) end
end

local events = {}
for _, level in ipairs({ "FAILED", "ERROR" }) do
  for event, e in atai.each_event(id, { level = level }) do
    if not event then
      io.stderr:write(tostring(e), "\n")
      os.exit(1)
    end
    events[#events + 1] = event
  end
end
-- The API does not document an order: sort by time, then id.
table.sort(events, function(a, b)
  if a.created_at ~= b.created_at then return a.created_at < b.created_at end
  return a.id < b.id
end)
for _, e in ipairs(events) do
  print(("%s  %-7s %-24s %s%s"):format(e.created_at, e.level, e.event_type, e.message or "",
    e.input_id and ("  (input " .. e.input_id .. ")") or ""))
end
print(("%d failure event(s)"):format(#events))

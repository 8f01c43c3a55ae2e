-- examples/failed_events.lua: why did a job fail? Its FAILED and ERROR
-- events, oldest first.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/failed_events.lua job_failed
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset): failed_events.lua JOB_ID.
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
-- The job's error object, a field a line, sorted; nested values as JSON.
if type(job.error) == "table" then
  local keys = {}
  for k in pairs(job.error) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = job.error[k]
    print(("  error.%s = %s"):format(k, type(v) == "table" and atai.json_encode(v) or tostring(v)))
  end
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

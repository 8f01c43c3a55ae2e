-- examples/get_job.lua: fetch one batch job and print it.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/get_job.lua job_2abc3def4ghi5jkl6mno7pqr
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset): get_job.lua JOB_ID.
local atai = require("atai")

local id = arg[1]
if not id then
  io.stderr:write("usage: get_job.lua JOB_ID\n")
  os.exit(2)
end

local job, err = atai.get_job(id)
if not job then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- Prints a value as indented Lua-ish text, keys sorted.
local function show(value, indent)
  indent = indent or ""
  if type(value) ~= "table" then
    if type(value) == "string" then return ("%q"):format(value) end
    if value == atai.null then return "null" end
    return tostring(value)
  end
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  if #keys == 0 then return "{}" end
  local lines = { "{" }
  for _, k in ipairs(keys) do
    local label = type(k) == "number" and ("[" .. k .. "]") or k
    lines[#lines + 1] = ("%s  %s = %s,"):format(indent, label, show(value[k], indent .. "  "))
  end
  lines[#lines + 1] = indent .. "}"
  return table.concat(lines, "\n")
end

print(("%s  %s  (%s %s)"):format(job.id, job.status, job.pipeline_key, job.pipeline_version))
if job.input_progress then
  local p = job.input_progress
  print(("inputs: %d completed, %d failed, %d processing, %d pending")
    :format(p.completed, p.failed, p.processing, p.pending))
end
print(show(job))

-- examples/create_and_wait.lua: create a batch job and wait for it with a
-- progress line.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/create_and_wait.lua machine-state-classification worker.inference volve_inference.csv
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset), and your own
--   create_and_wait.lua PIPELINE_KEY PORT FILE_ID...
-- (files uploaded before, e.g. by end_to_end.lua).
local atai = require("atai")

local key, port = arg[1], arg[2]
if not key or not port or not arg[3] then
  io.stderr:write("usage: create_and_wait.lua PIPELINE_KEY PORT FILE_ID...\n")
  os.exit(2)
end
local files = {}
for i = 3, #arg do files[#files + 1] = { file_id = arg[i] } end

-- The registry lists pipelines by id; find_pipeline matches the key.
local pipeline, err = atai.find_pipeline(key)
if not pipeline then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- On a terminal the progress line is redrawn in place (\r); in a log or a
-- pipe, each new state gets a line of its own.
local function stdout_is_tty()
  local r = os.execute("test -t 1")
  return r == true or r == 0 -- Lua 5.2+ / 5.1
end
local TTY = stdout_is_tty()
local shown -- the progress line last shown
local function show(line)
  if TTY then
    io.write("\r", line, "\027[K")
    io.flush()
  elseif line ~= shown then
    print(line)
  end
  shown = line
end
-- Ends the line drawn in place, before other output.
local function end_progress()
  if TTY and shown then io.write("\n") end
  shown = nil
end

local job
job, err = atai.create_job {
  name = "atai example " .. os.date("!%Y-%m-%dT%H:%M:%SZ"),
  pipeline_type = pipeline.pipeline_type,
  pipeline_key = key,
  inputs = { [port] = files },
}
if not job then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("created %s (%s)"):format(job.id, job.status))

local final
final, err = atai.wait_job(job.id, {
  interval = tonumber(os.getenv("POLL_INTERVAL")) or 2,
  timeout = 3600,
  on_update = function(j)
    local p = atai.progress(j)
    show(("%-10s %s"):format(j.status,
      p and ("%3.0f%%  %d done, %d failed of %d"):format(p.percent, p.done, p.failed, p.total) or ""))
  end,
})
end_progress()
if not final then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("%s finished: %s"):format(final.id, final.status))
os.exit(atai.succeeded(final) and 0 or 1)

-- examples/list_running.lua: every RUNNING job, with its input progress.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/list_running.lua RUNNING
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset): list_running.lua [STATUS]
-- (default RUNNING; any job status).
local atai = require("atai")

local status = arg[1] or atai.RUNNING
local count = 0
for job, err in atai.each_job { status = status } do
  if not job then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  count = count + 1
  local p = atai.progress(job)
  local progress = p and ("%3.0f%% (%d/%d inputs)"):format(p.percent, p.done, p.total) or "no progress yet"
  print(("%-32s %-10s %-32s %s"):format(job.id, job.status, job.name, progress))
end
print(("%d job(s) %s"):format(count, status))

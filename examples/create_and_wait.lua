-- examples/create_and_wait.lua: create a batch job and wait for it with a
-- progress line.
--
--   ATAI_API_KEY=... lua5.4 examples/create_and_wait.lua PIPELINE_KEY PORT FILE_ID...
--   e.g. machine-state-classification worker.inference tep_inference.csv
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
    io.write(("\r%-10s %s"):format(j.status,
      p and ("%3.0f%%  %d done, %d failed of %d"):format(p.percent, p.done, p.failed, p.total) or ""))
    io.flush()
  end,
})
io.write("\n")
if not final then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(("%s finished: %s"):format(final.id, final.status))
os.exit(atai.succeeded(final) and 0 or 1)

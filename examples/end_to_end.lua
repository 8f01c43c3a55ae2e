-- examples/end_to_end.lua: the whole batch workflow, as in Archetype AI's
-- example repositories: upload the sensor CSVs, create a machine-state
-- classification job that references them, wait for it with a progress
-- line, download every output.
--
--   ATAI_API_KEY=... lua5.4 examples/end_to_end.lua DATA.csv OUT_DIR [CLASS=EXAMPLE.csv ...]
--   e.g. end_to_end.lua volve_inference.csv out normal=normal.csv anomaly=anomaly.csv
--
-- DATA.csv goes to the pipeline's worker.inference port; each CLASS=FILE is
-- a labelled example for worker.n_shots. Uploads use the file's name as its
-- id (same name: overwritten), large files go by parts in parallel.
local atai = require("atai")

local data, out_dir = arg[1], arg[2]
if not data or not out_dir then
  io.stderr:write("usage: end_to_end.lua DATA.csv OUT_DIR [CLASS=EXAMPLE.csv ...]\n")
  os.exit(2)
end

local function fail(err)
  io.stderr:write("\n", tostring(err), "\n")
  os.exit(1)
end

-- One line, redrawn: "label  42%  (1.2 of 3.0 MB, 2/5 files)".
local function progress(label)
  return function(p)
    local pct = p.bytes_total and p.bytes_total > 0 and 100 * p.bytes_done / p.bytes_total or 0
    io.write(("\r%-12s %3.0f%%  (%.1f of %.1f MB, %d/%d files)"):format(label, pct, p.bytes_done / 1e6,
      (p.bytes_total or 0) / 1e6, p.files_done, p.files_total))
    io.flush()
  end
end

-- 1. Upload the files.
local function upload(path)
  local file, err = atai.upload_file(path, { on_progress = progress("uploading") })
  if not file then fail(err) end
  print(("\ruploaded %s (%d bytes, %s)"):format(file.file_id, file.num_bytes, file.route))
  return file.file_id
end

local inputs = { ["worker.inference"] = { { file_id = upload(data) } } }
for i = 3, #arg do
  local class, path = arg[i]:match("^([^=]+)=(.+)$")
  if not class then fail("bad argument " .. arg[i] .. " (expected CLASS=FILE.csv)") end
  inputs["worker.n_shots"] = inputs["worker.n_shots"] or {}
  table.insert(inputs["worker.n_shots"], { file_id = upload(path), metadata = { class = class } })
end

-- 2. Create the job.
local job, err = atai.create_job {
  name = "end-to-end " .. os.date("!%Y-%m-%dT%H:%M:%SZ"),
  pipeline_type = "batch",
  pipeline_key = "machine-state-classification",
  inputs = inputs,
}
if not job then fail(err) end
print(("created %s (%s)"):format(job.id, job.status))

-- 3. Wait for it.
local final
final, err = atai.wait_job(job.id, {
  interval = tonumber(os.getenv("POLL_INTERVAL")) or 5,
  timeout = 6 * 3600,
  on_update = function(j)
    local p = atai.progress(j)
    io.write(("\r%-12s %s"):format(j.status, p and ("%3.0f%%  %d of %d inputs done"):format(p.percent, p.done, p.total) or ""))
    io.flush()
  end,
})
if not final then fail(err) end
print(("\n%s finished: %s"):format(final.id, final.status))
if not atai.succeeded(final) then os.exit(1) end

-- 4. Download the outputs (again later: complete files are skipped).
local summary
summary, err = atai.download_outputs(final.id, out_dir, { on_progress = progress("downloading") })
if not summary then fail(err) end
print(("\rdownloaded %d, skipped %d, failed %d into %s"):format(summary.downloaded, summary.skipped,
  #summary.failed, out_dir))
for _, f in ipairs(summary.failed) do io.stderr:write(tostring(f.output.id), ": ", tostring(f.err), "\n") end
os.exit(#summary.failed == 0 and 0 or 1)

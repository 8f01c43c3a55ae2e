-- examples/end_to_end.lua: the whole batch workflow, as in Archetype AI's
-- example repositories: upload the sensor CSVs, create a machine-state
-- classification job that references them, wait for it with a progress
-- line, download every output.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/end_to_end.lua examples/data/volve_inference.csv \
--     "${TMPDIR:-/tmp}/atai-out" normal=examples/data/normal.csv
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset), and your own files:
--   end_to_end.lua DATA.csv OUT_DIR [CLASS=EXAMPLE.csv ...]
-- (examples/data/ holds three small sample CSVs, for the fake server).
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

local function fail(err)
  end_progress()
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- Transfer progress, on a terminal only (a log would get a line per
-- chunk): "label  42%  (1.2 of 3.0 MB, 2/5 files)".
local function progress(label)
  if not TTY then return nil end
  return function(p)
    local pct = p.bytes_total and p.bytes_total > 0 and 100 * p.bytes_done / p.bytes_total or 0
    show(("%-12s %3.0f%%  (%.1f of %.1f MB, %d/%d files)"):format(label, pct, p.bytes_done / 1e6,
      (p.bytes_total or 0) / 1e6, p.files_done, p.files_total))
  end
end

-- 1. Upload the files.
local function upload(path)
  local file, err = atai.upload_file(path, { on_progress = progress("uploading") })
  if not file then fail(err) end
  end_progress()
  print(("uploaded %s (%d bytes, %s)"):format(file.file_id, file.num_bytes, file.route))
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
    local done = p and ("%3.0f%%  %d of %d inputs done"):format(p.percent, p.done, p.total) or ""
    show(("%-12s %s"):format(j.status, done))
  end,
})
if not final then fail(err) end
end_progress()
print(("%s finished: %s"):format(final.id, final.status))
if not atai.succeeded(final) then os.exit(1) end

-- 4. Download the outputs (again later: complete files are skipped).
local summary
summary, err = atai.download_outputs(final.id, out_dir, { on_progress = progress("downloading") })
if not summary then fail(err) end
end_progress()
print(("downloaded %d, skipped %d, failed %d into %s"):format(summary.downloaded, summary.skipped,
  #summary.failed, out_dir))
for _, f in ipairs(summary.failed) do io.stderr:write(tostring(f.output.id), ": ", tostring(f.err), "\n") end
os.exit(#summary.failed == 0 and 0 or 1)

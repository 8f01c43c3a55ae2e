--- atai.cli.job: the `atai job` commands (get, list, wait, cancel, retry,
-- delete, create, events, inputs, outputs), each with its flags and help.

local atai = require("atai")
local args = require("atai.cli.args")
local output = require("atai.cli.output")
local progress = require("atai.cli.progress")
local list = require("atai.cli.list")

local EXIT, worst, escape, usage = output.EXIT, output.worst, output.escape, args.usage

-- A job's status as an exit code: 0 COMPLETED, 3 FAILED, 6 CANCELLED, 8 not finished.
local STATUS_EXIT = { COMPLETED = EXIT.ok, FAILED = EXIT.failed, CANCELLED = EXIT.cancelled }
local function status_exit(job) return STATUS_EXIT[job.status] or EXIT.running end

--- The cells of a job: id, status, pipeline, progress, failed count, age.
local function job_cells(job)
  local p = atai.progress(job)
  return { job.id, { status = job.status }, job.pipeline_key, progress.text(job), p and p.failed,
    output.age(job.created_at) }
end

-- --json of job get/wait: the job of one id (nothing if it failed), else an
-- array in the order given, null for the ids that failed.
local function print_jobs_json(out, ids, doc)
  if #ids > 1 then return out:print_json(atai.array(doc)) end
  if doc[1] ~= atai.null then out:print_json(doc[1]) end
end

-- job get ID...: several ids fetched together; JSON: the job, or an array.
local function job_get(ctx)
  local jobs, errs = ctx.client:get_jobs(ctx.args)
  local code, doc = EXIT.ok, {}
  for i, id in ipairs(ctx.args) do
    if jobs[i] then
      list.row(ctx, list.JOB, job_cells(jobs[i]))
      if ctx.flags["exit-status"] then code = worst(code, status_exit(jobs[i])) end
      doc[i] = jobs[i]
    else
      code = worst(code, ctx.out:report(errs[i], id))
      doc[i] = atai.null
    end
  end
  list.finish(ctx)
  if ctx.out.json then print_jobs_json(ctx.out, ctx.args, doc) end
  return code
end

local LIST_DEFAULT = 20
local KNOWN_STATUS = {}
for _, status in ipairs(atai.STATUSES) do KNOWN_STATUS[status] = true end

-- job list: the newest jobs first, --limit N of them or --all.
local function job_list(ctx)
  local f = ctx.flags
  if f.all and f.limit then usage("--all and --limit exclude each other", ctx.command) end
  if f.status and not KNOWN_STATUS[f.status] then
    usage(("--status: unknown status '%s' (%s)"):format(f.status, table.concat(atai.STATUSES, ", ")), ctx.command)
  end
  local limit = not f.all and (f.limit or LIST_DEFAULT) or nil
  local jobs = ctx.client:each_job { status = f.status, pipeline_type = f.type,
    limit = limit and math.min(limit, 100) or nil }
  local n = 0
  local function first_n()
    if limit and n >= limit then return nil end
    n = n + 1
    return jobs()
  end
  return list.command(ctx, first_n, list.JOB, job_cells)
end

-- Raised from on_update to end wait_jobs at the first FAILED/CANCELLED job.
local FAIL_FAST = {}
-- What wait_jobs may report for jobs it stopped waiting for on that error.
local STOPPED_KINDS = { callback = true, cancelled = true }

-- The exit code and the job to show for one id after wait_jobs. `last` is
-- the last job seen; `stopped`: --fail-fast ended the wait.
local function wait_outcome(out, id, job, err, last, stopped)
  if job then return status_exit(job), job end
  if not err or (stopped and STOPPED_KINDS[err.kind]) then
    return last and STATUS_EXIT[last.status] or EXIT.ok, last
  end
  if err.kind == "timeout" then
    out:err(("%s: timed out (last status: %s)"):format(id, last and last.status or "unknown"))
    return EXIT.timeout, err.job or last
  end
  return out:report(err, id), last
end

-- The jobs of `ids` not in `seen`, fetched now (--fail-fast stopped before
-- their first poll came back).
local function fetch_missing(client, ids, seen)
  local missing = {}
  for _, id in ipairs(ids) do if not seen[id] then missing[#missing + 1] = id end end
  if #missing == 0 then return end
  local fetched = client:get_jobs(missing)
  for i, id in ipairs(missing) do seen[id] = fetched[i] end
end

-- job wait ID...: polls every job concurrently until all are finished.
local function job_wait(ctx)
  local f, ids, out = ctx.flags, ctx.args, ctx.out
  local live = not out.quiet and progress.wait(out, ids, ctx.live_stderr and not f.verbose, ctx.color_stderr)
  local seen, stopped = {}, false
  local opts = {
    interval = f.interval, max_interval = f.interval, timeout = f.timeout,
    on_update = function(job)
      seen[job.id] = job
      if live then live:update(job) end
      if f["fail-fast"] and not stopped and (job.status == "FAILED" or job.status == "CANCELLED") then
        stopped = true
        error(FAIL_FAST, 0)
      end
    end,
    on_error = function(err) -- a failed poll that the wait retries
      if not out.quiet then out:err("retrying after: " .. tostring(err):gsub("^atai ", "")) end
    end,
  }
  if live and live.live then
    live:draw()
    ctx.listeners[#ctx.listeners + 1] = function() live:draw() end
  end
  local ok, jobs, errs = pcall(ctx.client.wait_jobs, ctx.client, ids, opts)
  if not ok and not stopped then error(jobs, 0) end
  if not ok then
    jobs, errs = {}, {}
    fetch_missing(ctx.client, ids, seen)
  end
  local code, doc = EXIT.ok, {}
  for i, id in ipairs(ids) do
    local c, job = wait_outcome(out, id, jobs[i], errs[i], seen[id], stopped)
    code = worst(code, c)
    if job then list.row(ctx, list.JOB, job_cells(job)) end
    doc[i] = job or atai.null
  end
  list.finish(ctx)
  if out.json then print_jobs_json(out, ids, doc) end
  return code
end

-- The API's answer to a write, printed as a row and as JSON.
local function write_result(ctx, body, err, columns, cells)
  if not body then return ctx.out:report(err, ctx.args[1]) end
  list.row(ctx, columns, cells(body))
  list.finish(ctx)
  if ctx.out.json then ctx.out:print_json(body) end
  return EXIT.ok
end

local function status_cells(body)
  return { body.id, { status = body.status }, body.retry_count }
end

-- job cancel|retry|delete ID: one write, its answer printed as `columns`
-- by `cells` (a whole job's row when the answer is a job).
local function write_command(method, columns, cells)
  return function(ctx)
    local body, err = ctx.client[method](ctx.client, ctx.args[1])
    if body and type(body.input_progress) == "table" then columns, cells = list.JOB, job_cells end
    return write_result(ctx, body, err, columns, cells)
  end
end

-- Reads the job spec of job create (a file, or standard input for "-").
local function read_spec(ctx, path)
  local f, why = ctx.out.stdin, nil
  if path ~= "-" then f, why = io.open(path, "r") end
  if not f then usage(("--file: cannot read %s"):format(why), ctx.command) end
  local text = f:read("*a")
  if f ~= ctx.out.stdin then f:close() end
  local spec, problem = require("cjson.safe").decode(text or "")
  if type(spec) ~= "table" then
    usage(("--file: %s is not a JSON object (%s)"):format(path == "-" and "standard input" or path,
      problem or type(spec)), ctx.command)
  end
  return spec
end

-- job create --file SPEC.json: POST /batch/jobs. The library checks the
-- spec before sending anything: what it refuses is the user's mistake.
local function job_create(ctx)
  if not ctx.flags.file then
    usage("job create needs --file SPEC.json (or --file - for standard input)", ctx.command)
  end
  local spec = read_spec(ctx, ctx.flags.file)
  -- the async call checks the spec and raises before it sends anything
  local started, handle = pcall(ctx.client.async.create_job, ctx.client.async, spec)
  if not started then usage("--file: the spec is refused: " .. tostring(handle), ctx.command) end
  local body, err = handle:wait()
  if not body then return ctx.out:report(err) end
  return write_result(ctx, body, nil, list.JOB, job_cells)
end

local function event_cells(e)
  return { e.created_at, e.level, e.event_type, e.message, e.input_id }
end

local FOLLOW_INTERVAL = 2

-- job events ID --follow: prints new events until the job is finished and
-- its events are drained (new events are taken to come at the end).
local function follow_events(ctx, id, level)
  local all, offset = {}, 0
  while true do
    local job, err = ctx.client:get_job(id)
    if not job then return ctx.out:report(err, id) end
    local items, ierr = list.drain(ctx.client:each_event(id, { level = level, offset = offset }), function(e)
      list.row(ctx, list.EVENT, event_cells(e))
      all[#all + 1] = e
    end)
    list.finish(ctx)
    if not items then return ctx.out:report(ierr, id) end
    offset = offset + #items
    if atai.is_terminal(job) then break end
    atai.core.sleep(ctx.flags.interval or FOLLOW_INTERVAL)
  end
  if ctx.out.json then ctx.out:print_json(atai.array(all)) end
  return EXIT.ok
end

local function job_events(ctx)
  local id, level = ctx.args[1], ctx.flags.level
  if ctx.flags.follow then return follow_events(ctx, id, level) end
  return list.command(ctx, ctx.client:each_event(id, { level = level }), list.EVENT, event_cells, id)
end

local function job_inputs(ctx)
  return list.command(ctx, ctx.client:each_input(ctx.args[1]), list.INPUT, function(i)
    return { i.id, i.status, i.port_name, i.file_id, i.error_message }
  end, ctx.args[1])
end

-- job outputs ID --download DIR: every output into DIR; a line per failure.
local function download_outputs(ctx)
  local id, dir, out = ctx.args[1], ctx.flags.download, ctx.out
  local on_progress, finish = progress.transfer(ctx, id)
  local summary, err = ctx.client:download_outputs(id, dir, { concurrency = ctx.flags.parallel,
    max_seconds = ctx.flags["max-seconds"], on_progress = on_progress })
  finish()
  if not summary then return out:report(err, id) end
  local code, failed = EXIT.ok, {}
  for i, f in ipairs(summary.failed) do
    local data = type(f.output.data) == "table" and f.output.data or {}
    code = worst(code, out:report(f.err, ("%s (%s)"):format(tostring(f.output.id), tostring(data.filename or "-"))))
    failed[i] = { output_id = f.output.id, filename = data.filename, path = f.path, kind = f.err.kind,
      error = tostring(f.err) }
  end
  out:say(("%d downloaded, %d skipped (complete), %d failed; %s into %s"):format(summary.downloaded, summary.skipped,
    #summary.failed, output.human_bytes(summary.bytes), escape(dir)))
  if out.json then
    out:print_json { downloaded = summary.downloaded, skipped = summary.skipped, bytes = summary.bytes,
      failed = atai.array(failed), dir = dir }
  end
  return code
end

local function job_outputs(ctx)
  if ctx.flags.download then return download_outputs(ctx) end
  for _, flag in ipairs({ "parallel", "max-seconds" }) do
    if ctx.flags[flag] then usage(("--%s goes with --download DIR"):format(flag), ctx.command) end
  end
  return list.command(ctx, ctx.client:each_output(ctx.args[1]), list.OUTPUT, function(o)
    local data = type(o.data) == "table" and o.data or {}
    return { o.id, o.port_name, o.input_file_id, data.filename, data.ref }
  end, ctx.args[1])
end

local INTERVAL = { "interval", "DURATION", "time between polls (wait: default 2s, growing to 30s; events: 2s)",
  parse = args.duration }

return {
  name = "job",
  summary = "jobs: get, list, wait for, cancel, retry, delete, create; their events, inputs and outputs",
  examples = {
    { "atai job list --status running", "the running jobs, newest first" },
    { "atai job wait $(atai job create --file spec.json --json | jq -r .id)", "create a job and wait for it" },
    { "atai job get job_123 --exit-status", "exit 0 when COMPLETED, 3 FAILED, 6 CANCELLED, 8 running" },
    { "atai job outputs job_123 -o results/", "download every output into results/" },
  },
  commands = {
    { name = "get", args = "ID...", min = 1, ids = true, run = job_get,
      summary = "print jobs (several ids are fetched concurrently)",
      flags = { { "exit-status", nil,
        "exit with the job's status (0 COMPLETED, 3 FAILED, 6 CANCELLED, 8 running)" } } },
    { name = "list", args = "", max = 0, run = job_list, summary = "list jobs, newest first",
      flags = {
        { "status", "S", "only jobs with this status (PENDING, RUNNING, COMPLETED, ...)", parse = args.upper,
          values = atai.STATUSES },
        { "type", "T", "only this pipeline type (batch, training)", values = { "batch", "training" },
          parse = args.nonempty },
        { "limit", "N", "print at most N jobs (default 20)", parse = args.whole(1) },
        { "all", nil, "print every job (every page)" },
      } },
    { name = "wait", args = "ID...", min = 1, ids = true, run = job_wait, live = function() return true end,
      summary = "wait until every job is finished (COMPLETED, FAILED or CANCELLED)",
      flags = {
        { "timeout", "DURATION", "give up after DURATION in all (exit 7)", parse = args.duration },
        INTERVAL,
        { "fail-fast", nil, "stop at the first job FAILED or CANCELLED" },
      } },
    { name = "cancel", args = "ID", min = 1, max = 1, ids = true, summary = "cancel a job",
      run = write_command("cancel_job", list.WRITE, status_cells) },
    { name = "retry", args = "ID", min = 1, max = 1, ids = true, summary = "re-queue a FAILED or CANCELLED job",
      run = write_command("retry_job", list.WRITE, status_cells) },
    { name = "delete", args = "ID", min = 1, max = 1, ids = true, summary = "delete a job and its data",
      run = write_command("delete_job", list.DELETE, function(b) return { b.id, "deleted" } end) },
    { name = "create", args = "--file SPEC.json", usage = "--file SPEC.json", max = 0, run = job_create,
      summary = "create a job from a JSON spec ('-': standard input)",
      flags = { { "file", "FILE", "the job spec, JSON ('-': standard input)", complete = "file",
        parse = args.nonempty } } },
    { name = "events", args = "ID", min = 1, max = 1, ids = true, run = job_events, summary = "print a job's events",
      flags = {
        { "level", "L", "only events of this level (INFO, WARN, ERROR, SUCCESS, FAILED)", parse = args.upper,
          values = { "INFO", "WARN", "ERROR", "SUCCESS", "FAILED" } },
        { "follow", nil, "print new events until the job is finished" },
        INTERVAL,
      } },
    { name = "inputs", args = "ID", min = 1, max = 1, ids = true, run = job_inputs, summary = "print a job's inputs" },
    { name = "outputs", args = "ID", min = 1, max = 1, ids = true, run = job_outputs,
      usage = "ID [--download DIR [--parallel N] [--max-seconds DURATION]]",
      summary = "print a job's outputs (with their download URLs), or download them",
      live = function(flags) return flags.download ~= nil end,
      flags = {
        { "download", "DIR", "download every output into DIR (made if needed; complete files are skipped)",
          short = "o", complete = "dir", parse = args.nonempty },
        { "parallel", "N", "transfers at once: parts of a large upload (default 4), files downloaded (default 8)",
          parse = args.whole(1, 64) },
        { "max-seconds", "DURATION", "give up on a file after DURATION (retries included; exit 1)",
          parse = args.duration_within(1, 604800) },
      } },
  },
}

--- atai.wait: waiting for a job to finish, and reading its progress.
--
-- client:wait_job polls get_job until COMPLETED, FAILED or CANCELLED. The
-- pause between polls starts at `interval` and grows by half each poll up
-- to `max_interval`; it sleeps in C (atai.core.sleep), never spins.

local core = require("atai.core")
local check = require("atai.check")

local Client = core.Client
local wait = {}

--- The statuses a job does not leave: COMPLETED, FAILED, CANCELLED.
wait.TERMINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local TERMINAL = wait.TERMINAL

local WAIT_DEFAULTS = { interval = 2, max_interval = 30, growth = 1.5 }

--- Turns a job's input_progress into {done, total, percent, completed,
--- failed, processing, pending}; nil when the job has none (write-path
--- responses such as create or cancel carry none).
function wait.progress(job)
  if type(job) ~= "table" then
    error(("bad argument #1 to 'progress' (job table expected, got %s)"):format(type(job)), 2)
  end
  local p = job.input_progress
  if type(p) ~= "table" then return nil end
  local completed, failed = tonumber(p.completed) or 0, tonumber(p.failed) or 0
  local processing, pending = tonumber(p.processing) or 0, tonumber(p.pending) or 0
  local total = completed + failed + processing + pending
  local done = completed + failed
  return {
    done = done, total = total, percent = total > 0 and done * 100 / total or 0,
    completed = completed, failed = failed, processing = processing, pending = pending,
  }
end

-- A fingerprint of what on_update reports: status and input counts.
local function fingerprint(job)
  local p = type(job.input_progress) == "table" and job.input_progress or {}
  return table.concat({ tostring(job.status), tostring(p.pending), tostring(p.processing),
    tostring(p.completed), tostring(p.failed) }, "/")
end

local function positive(v) return type(v) == "number" and v > 0 and v < math.huge end

-- Checks wait_job's options and returns them with defaults filled in.
local function wait_options(opts)
  local o = {}
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then check.fail("wait_job", 2, "options table expected, got " .. type(opts)) end
  local checks = {
    interval = positive, max_interval = positive, timeout = positive,
    on_update = function(v) return type(v) == "function" end,
    on_error = function(v) return type(v) == "function" end,
  }
  for k, v in pairs(opts) do
    if not checks[k] then check.fail("wait_job", 2, ("unknown option '%s'"):format(tostring(k))) end
    if not checks[k](v) then check.fail("wait_job", 2, ("option '%s': bad value (%s)"):format(k, type(v))) end
    o[k] = v
  end
  o.interval = o.interval or WAIT_DEFAULTS.interval
  o.max_interval = math.max(o.max_interval or WAIT_DEFAULTS.max_interval, o.interval)
  return o
end

--- Polls the job until it is terminal and returns it, whatever its status
--- (FAILED is a result, not an error). opts: interval (2 s), max_interval
--- (30 s), timeout (none), on_update(job) when status or input counts
--- change, on_error(err) for a retryable polling error, which does not end
--- the wait. Returns nil, err on a non-retryable error, or on timeout
--- (kind "timeout", err.job = the last job seen). The timeout bounds the
--- whole wait, polls included.
function Client:wait_job(id, opts)
  check.id("wait_job", 1, id)
  local o = wait_options(opts)
  local deadline = o.timeout and core.now() + o.timeout
  local pause, last_seen, last_print = o.interval, nil, nil
  while true do
    -- With a deadline, no poll may outlive it: one attempt, bounded by the
    -- time left (the wait loop itself retries).
    local poll_opts = deadline and { timeout = math.max(deadline - core.now(), 0) + 0.001, max_retries = 0 }
    local job, err = self:get_job(id, poll_opts)
    if job then
      last_seen = job
      local print_ = fingerprint(job)
      if o.on_update and print_ ~= last_print then o.on_update(job) end
      last_print = print_
      if TERMINAL[job.status] then return job end
    elseif not err.retryable then
      return nil, err
    elseif o.on_error then
      o.on_error(err)
    end
    local now = core.now()
    if deadline and now >= deadline then
      return nil, core.new_error {
        kind = "timeout", job = last_seen, retryable = true,
        message = ("job %s is not finished after %g s (last status: %s)")
          :format(id, o.timeout, last_seen and last_seen.status or "unknown"),
      }
    end
    core.sleep(deadline and math.min(pause, deadline - now) or pause)
    pause = math.min(pause * WAIT_DEFAULTS.growth, o.max_interval)
  end
end

return wait

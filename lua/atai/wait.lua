--- atai.wait: waiting for a job to finish, and reading its progress.
--
-- client:wait_job polls get_job until COMPLETED, FAILED or CANCELLED. The
-- pause between polls starts at `interval` and grows by half each poll up
-- to `max_interval`; it is a sleep handle on the client's engine, so a
-- blocking wait keeps every other transfer going, and the async form
-- (client.async:wait_job, the same code in a coroutine) blocks nobody.
-- get_jobs and wait_jobs run many of these at once.

local core = require("atai.core")
local P = require("atai.core.private") -- what atai.core offers this layer only
local check = require("atai.check")
local handle = require("atai.handle")
local config = require("atai.config")

-- The public methods this file makes: atai.methods puts them on atai.Client
-- and the async view (one place, once); nothing here touches those tables.
local Client, Async = {}, {}
local wait = {}
wait.methods = { client = Client, async = Async }

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

-- wait_job's options, checked by atai.config's one checker.
local WAIT_OPTIONS = {
  interval = "positive", max_interval = "positive", timeout = "positive",
  on_update = "function", on_error = "function",
}

-- Checks wait_job's options and returns them with defaults filled in.
local function wait_options(opts, fname, n)
  fname, n = fname or "wait_job", n or 2
  local o = config.check_table(fname, n, opts, WAIT_OPTIONS, "option", "option '%s'")
  o.interval = o.interval or WAIT_DEFAULTS.interval
  o.max_interval = math.max(o.max_interval or WAIT_DEFAULTS.max_interval, o.interval)
  return o
end

local CALL_TIMEOUT_MAX = config.OPTIONS.timeout.max -- seconds: the longest attempt

-- The wait itself, written once: blocking when called on a client, and
-- awaiting (yielding at get_job and at each sleep) inside a coroutine.
local function wait_job(self, id, o)
  local deadline = o.timeout and core.now() + o.timeout
  local pause, last_seen, last_print = o.interval, nil, nil
  while true do
    -- With a deadline, no poll may outlive it: one attempt, bounded by the
    -- time left (the wait loop itself retries).
    local poll_opts = deadline and {
      timeout = math.min(math.max(deadline - core.now(), 0) + 0.001, CALL_TIMEOUT_MAX), max_retries = 0,
    }
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
    local slept, serr = handle.internal(self.async:sleep(deadline and math.min(pause, deadline - now) or pause)):wait()
    if not slept then return nil, serr end -- cancelled: the client was closed
    pause = math.min(pause * WAIT_DEFAULTS.growth, o.max_interval)
  end
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
  return wait_job(self, id, wait_options(opts))
end

-- Starts wait_job as a handle of `client` (counted: a user's handle).
local function spawn_wait(client, counted, id, o)
  local op = handle.spawn(client, counted, "wait_job", wait_job, client, id, o)
  op.cancel_on_error = true -- a wait whose on_update raised is cancelled
  return op
end

--- client.async:wait_job(id, opts) -> handle that completes when the job is
--- terminal; its polls and pauses run on the engine, never a sleep.
function Async:wait_job(id, opts)
  local client = require("atai.api").view_client(self, "wait_job")
  P.check(client)
  check.id("wait_job", 1, id)
  return spawn_wait(client, true, id, wait_options(opts))
end

-- Checks a list of ids for `fname`.
local function check_ids(fname, ids)
  if type(ids) ~= "table" then check.fail(fname, 1, "list of ids expected, got " .. type(ids)) end
  for i = 1, #ids do check.id(fname, 1, ids[i], ("ids[%d]"):format(i)) end
end

-- The per-call options of get_job (timeout, max_retries), checked for
-- get_jobs by atai.config, as get_job's.
local CALL_FIELDS = { timeout = config.OPTIONS.timeout, max_retries = config.OPTIONS.max_retries }
local function check_call_opts(fname, opts)
  if opts == nil then return nil end
  config.check_table(fname, 2, opts, CALL_FIELDS, "option", "opts.%s")
  return opts
end

local function get_jobs(self, ids, opts)
  local handles = {}
  for i = 1, #ids do handles[i] = handle.internal(self.async:get_job(ids[i], opts)) end
  return handle.wait_all(handles)
end

--- Fetches many jobs concurrently: jobs[i] is the job of ids[i] or nil,
--- errs[i] its error.
function Client:get_jobs(ids, opts)
  P.check(self)
  check_ids("get_jobs", ids)
  return get_jobs(self, ids, check_call_opts("get_jobs", opts))
end

function Async:get_jobs(ids, opts)
  local client = require("atai.api").view_client(self, "get_jobs")
  P.check(client)
  check_ids("get_jobs", ids)
  return handle.spawn(client, true, "get_jobs", get_jobs, client, ids, check_call_opts("get_jobs", opts))
end

local function wait_jobs(self, ids, o)
  local handles = {}
  for i = 1, #ids do handles[i] = spawn_wait(self, false, ids[i], o) end
  return handle.wait_all(handles)
end

--- Waits for every job to be terminal, polling them concurrently; opts as
--- wait_job, `timeout` bounding the whole call -> jobs, errs.
function Client:wait_jobs(ids, opts)
  P.check(self)
  check_ids("wait_jobs", ids)
  return wait_jobs(self, ids, wait_options(opts, "wait_jobs", 2))
end

function Async:wait_jobs(ids, opts)
  local client = require("atai.api").view_client(self, "wait_jobs")
  P.check(client)
  check_ids("wait_jobs", ids)
  return handle.spawn(client, true, "wait_jobs", wait_jobs, client, ids, wait_options(opts, "wait_jobs", 2))
end


return wait

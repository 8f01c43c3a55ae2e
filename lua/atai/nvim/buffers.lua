--- atai.nvim.buffers: the scratch buffers of :Atai: atai://jobs (a list,
-- refreshed in place while shown), atai://job/ID (one job, live until it
-- is terminal, then its last events) and atai://events/ID.
--
-- Statuses are shown as the API spells them (RUNNING). Every buffer is
-- buftype=nofile, not modifiable, filetype atai.

local an = require("atai.nvim")

local api = vim.api
local uv = vim.uv or vim.loop
local M = {}

local LAST_EVENTS = 10 -- events shown under a finished job
local EVENTS_LIMIT = 100

-- buffer -> { ids = {line -> job id}, timer, busy, status }
local views = {}

-- ---------------------------------------------------------------------------
-- Helpers

-- The buffer named `name`, made a scratch buffer when new; shown in the
-- current window.
local function scratch(name)
  local buf = vim.fn.bufnr("^" .. vim.pesc(name):gsub("%%", "\\") .. "$")
  if buf == -1 or not api.nvim_buf_is_valid(buf) then
    buf = api.nvim_create_buf(true, true)
    api.nvim_buf_set_name(buf, name)
  end
  if not views[buf] then
    vim.bo[buf].buftype = "nofile"
    vim.bo[buf].bufhidden = "hide"
    vim.bo[buf].swapfile = false
    vim.bo[buf].modifiable = false
    vim.bo[buf].filetype = "atai"
    views[buf] = { ids = {} }
    api.nvim_create_autocmd("BufWipeout", {
      buffer = buf, once = true,
      callback = function() M.forget(buf) end,
    })
    vim.keymap.set("n", "q", function() M.close(buf) end,
      { buffer = buf, nowait = true, silent = true, desc = "atai: close" })
  end
  api.nvim_win_set_buf(0, buf)
  return buf
end

local function set_lines(buf, lines)
  if not api.nvim_buf_is_valid(buf) then return end
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
end

--- Stops what keeps buffer `buf` up to date.
function M.forget(buf)
  local v = views[buf]
  if v and v.timer and not v.timer:is_closing() then
    v.timer:stop()
    v.timer:close()
  end
  views[buf] = nil
end

--- Closes buffer `buf` (q).
function M.close(buf)
  M.forget(buf)
  if api.nvim_buf_is_valid(buf) then api.nvim_buf_delete(buf, { force = true }) end
end

-- Seconds since an ISO-8601 UTC time ("2026-04-14T10:05:00Z"), or nil.
local function age_of(iso)
  if type(iso) ~= "string" then return nil end
  local y, mo, d, h, mi, s = iso:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  local now = os.time()
  local utc_offset = os.difftime(now, os.time(os.date("!*t", now)))
  local t = os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
    min = tonumber(mi), sec = tonumber(s), isdst = false }) + utc_offset
  return math.max(0, os.difftime(now, t))
end

local function age_text(iso)
  local a = age_of(iso)
  if not a then return "-" end
  if a < 60 then return ("%ds"):format(a) end
  if a < 3600 then return ("%dm"):format(a / 60) end
  if a < 86400 then return ("%dh"):format(a / 3600) end
  return ("%dd"):format(a / 86400)
end

local function progress_text(job)
  local p = an.progress_of(job)
  if not p or p.total == 0 then return "-" end
  return ("%d%% %d/%d"):format(math.floor(p.percent), p.done, p.total)
end

local function pipeline_of(job)
  return tostring(job.pipeline_key or job.pipeline_type or "-")
end

-- ---------------------------------------------------------------------------
-- atai://jobs

local JOBS_FORMAT = "%-32s %-10s %-34s %-12s %s"

local function render_jobs(buf, page, status)
  local v = views[buf]
  if not v then return end
  local jobs = page.jobs or {}
  local lines = {
    ("atai jobs%s: %d shown of %s, updated %s  (R refresh, <CR> open, q close)"):format(
      status and (" " .. status) or "", #jobs, tostring(page.total or #jobs), os.date("%H:%M:%S")),
    JOBS_FORMAT:format("ID", "STATUS", "PIPELINE", "PROGRESS", "AGE"),
  }
  v.ids = {}
  for _, job in ipairs(jobs) do
    an.saw(job)
    lines[#lines + 1] = JOBS_FORMAT:format(tostring(job.id), tostring(job.status), pipeline_of(job),
      progress_text(job), age_text(job.created_at))
    v.ids[#lines] = job.id
  end
  set_lines(buf, lines)
end

--- Lists the jobs into `buf` now (R, and the timer).
function M.refresh_jobs(buf)
  local v = views[buf]
  if not v or v.busy then return end
  v.busy = true
  an.call("jobs", function(c)
    return c.async:list_jobs({ status = v.status, limit = 100 })
  end, function(page)
    if views[buf] ~= v then return end
    v.busy = false
    render_jobs(buf, page, v.status)
  end, function() v.busy = false end)
end

--- Opens atai://jobs (atai://jobs/STATUS with a filter), refreshed every
--- poll_interval while it is shown in a window.
function M.open_jobs(status)
  local s, err = an.settings()
  if not s then return an.notify(err, vim.log.levels.ERROR) end
  local buf = scratch("atai://jobs" .. (status and ("/" .. status) or ""))
  local v = views[buf]
  v.status = status
  if not v.timer then
    set_lines(buf, { "atai jobs: loading..." })
    vim.keymap.set("n", "R", function() M.refresh_jobs(buf) end,
      { buffer = buf, nowait = true, silent = true, desc = "atai: refresh" })
    vim.keymap.set("n", "<CR>", function()
      local id = v.ids[api.nvim_win_get_cursor(0)[1]]
      if id then M.open_job(id) end
    end, { buffer = buf, nowait = true, silent = true, desc = "atai: open the job" })
    local ms = math.floor(s.poll_interval * 1000)
    v.timer = uv.new_timer()
    v.timer:start(ms, ms, vim.schedule_wrap(function()
      if views[buf] ~= v or not api.nvim_buf_is_valid(buf) then return end
      if vim.fn.bufwinid(buf) ~= -1 then M.refresh_jobs(buf) end
    end))
  end
  v.busy = false
  M.refresh_jobs(buf)
  return buf
end

-- ---------------------------------------------------------------------------
-- atai://job/ID

local FIELDS = { "id", "name", "status", "pipeline_type", "pipeline_key", "pipeline_version", "created_at",
  "started_at", "updated_at", "completed_at", "failed_at", "cancelled_at", "queue_position" }

local function event_line(e)
  return ("  %s %-8s %-24s %s"):format(tostring(e.created_at or "-"), tostring(e.level or "-"),
    tostring(e.event_type or "-"), tostring(e.message or ""))
end

local function job_lines(job, done)
  local lines = { ("atai job %s%s"):format(tostring(job.id), done and "" or "  (live)"), "" }
  for _, k in ipairs(FIELDS) do
    if job[k] ~= nil and type(job[k]) ~= "table" and type(job[k]) ~= "userdata" then
      lines[#lines + 1] = ("%-17s %s"):format(k .. ":", tostring(job[k]))
    end
  end
  if type(job.error) == "table" then
    lines[#lines + 1] = ("%-17s %s"):format("error:", tostring(job.error.message or job.error.code or "?"))
  end
  local p = an.progress_of(job)
  lines[#lines + 1] = ""
  if p then
    lines[#lines + 1] = ("input progress:   %d%% (%d of %d done)"):format(math.floor(p.percent), p.done, p.total)
    lines[#lines + 1] = ("  completed %d, failed %d, processing %d, pending %d"):format(
      p.completed, p.failed, p.processing, p.pending)
  else
    lines[#lines + 1] = "input progress:   -"
  end
  return lines
end

-- Appends the job's last events under it.
local function add_events(buf, id, head)
  an.call("events " .. id, function(c)
    return c.async:job_events(id, { limit = EVENTS_LIMIT })
  end, function(page)
    if not api.nvim_buf_is_valid(buf) then return end
    local events = page.events or {}
    local lines = vim.list_extend({}, head)
    lines[#lines + 1] = ""
    lines[#lines + 1] = ("last events (%d of %s):"):format(math.min(#events, LAST_EVENTS),
      tostring(page.total or #events))
    for i = math.max(1, #events - LAST_EVENTS + 1), #events do lines[#lines + 1] = event_line(events[i]) end
    set_lines(buf, lines)
  end)
end

--- Opens atai://job/ID: the job's fields and input progress, live until it
--- is terminal, then its last events.
function M.open_job(id)
  local s, err = an.settings()
  if not s then return an.notify(err, vim.log.levels.ERROR) end
  local buf = scratch("atai://job/" .. id)
  local v = views[buf]
  if v.live then return buf end
  local known = an._state.jobs[id]
  set_lines(buf, known and job_lines(known, false) or { ("atai job %s: loading..."):format(id) })
  v.live = true
  an.watch(id, function(job, done)
    if views[buf] ~= v or not api.nvim_buf_is_valid(buf) then return end
    local lines = job_lines(job, done)
    set_lines(buf, lines)
    if done then
      v.live = false
      add_events(buf, id, lines)
    end
  end)
  if not an._state.watched[id] then v.live = false end -- could not start (notified)
  return buf
end

-- ---------------------------------------------------------------------------
-- atai://events/ID

--- Opens atai://events/ID: the job's events, oldest first.
function M.open_events(id)
  local s, err = an.settings()
  if not s then return an.notify(err, vim.log.levels.ERROR) end
  local buf = scratch("atai://events/" .. id)
  set_lines(buf, { ("atai events of %s: loading..."):format(id) })
  an.call("events " .. id, function(c)
    return c.async:job_events(id, { limit = EVENTS_LIMIT })
  end, function(page)
    an.remember(id) -- the API knows it
    local events = page.events or {}
    local lines = { ("atai events of %s: %d of %s"):format(id, #events, tostring(page.total or #events)) }
    for _, e in ipairs(events) do lines[#lines + 1] = event_line(e) end
    set_lines(buf, lines)
  end)
  return buf
end

-- ---------------------------------------------------------------------------

--- The job id under the cursor: the line's job in atai://jobs, else the
--- word under the cursor when it looks like an id.
function M.id_under_cursor()
  local v = views[api.nvim_get_current_buf()]
  if v and v.ids then
    local id = v.ids[api.nvim_win_get_cursor(0)[1]]
    if id then return id end
  end
  local word = vim.fn.expand("<cword>")
  if word:match("^job_[%w_%-]+$") then return word end
  local name = api.nvim_buf_get_name(0):match("^atai://job/(.+)$")
  return name
end

return M

--- atai.nvim.commands: the subcommands of :Atai and their completion.
--
-- Each subcommand is a row: its handler, its argument counts and how its
-- arguments complete. Errors are ERROR notifications with atai's message,
-- never a traceback; nothing asks for confirmation.

local an = require("atai.nvim")
local buffers = require("atai.nvim.buffers")

local LEVELS = vim.log.levels
local M = {}

local STATUSES = { "PENDING", "ADMITTED", "RUNNING", "COMPLETED", "FAILED", "PREEMPTED", "CANCELLED" }

-- The level of a job's final notification.
local FINAL_LEVEL = { COMPLETED = LEVELS.INFO, FAILED = LEVELS.ERROR, CANCELLED = LEVELS.WARN }

-- A path as typed: ~ expanded (nothing else: % or # in a name stay).
local function full_path(path)
  if path:sub(1, 1) == "~" then path = vim.fn.expand(path) end
  return vim.fn.fnamemodify(path, ":p")
end

local function percent_text(job)
  local p = an.progress_of(job)
  if not p or p.total == 0 then return "" end
  return (" %d%% (%d/%d)"):format(math.floor(p.percent), p.done, p.total)
end

-- :Atai wait ID...: one updating notification per job when vim.notify
-- returns a record to replace (nvim-notify), else one per 10 % step.
local function wait(ids)
  for _, id in ipairs(ids) do
    local record, step, last_status
    an.watch(id, function(job, done)
      local text = ("job %s %s%s"):format(id, job.status, percent_text(job))
      if done then
        local level = FINAL_LEVEL[job.status] or LEVELS.WARN
        an.notify(text, level, record and { replace = record } or nil)
        return
      end
      local p = an.progress_of(job)
      local tenth = p and math.floor(p.percent / 10) or 0
      if record == nil and step ~= nil and tenth <= step and job.status == last_status then return end
      step, last_status = tenth, job.status
      local r = an.notify(text, LEVELS.INFO, record and { replace = record } or nil)
      if type(r) == "table" then record = r end
    end)
  end
end

local function cancel(ids)
  an.call("cancel " .. ids[1], function(c) return c.async:cancel_job(ids[1]) end, function(job)
    an.saw(job)
    an.notify(("job %s %s"):format(ids[1], job.status or "cancel requested"), LEVELS.INFO)
  end)
end

local function retry(ids)
  an.call("retry " .. ids[1], function(c) return c.async:retry_job(ids[1]) end, function(job)
    an.saw(job)
    an.notify(("job %s retried: %s"):format(job.id or ids[1], job.status or "?"), LEVELS.INFO)
  end)
end

-- Progress of a transfer as notifications: "<label>: N%" replaced in place
-- when the notify function supports it (nvim-notify), else one message per
-- 10 % step; done(text, level) is the final one (replacing the last).
local function progress_notifier(label)
  local record, step
  local function notify(text, level)
    local r = an.notify(text, level, record and { replace = record } or nil)
    if type(r) == "table" then record = r end
  end
  return {
    on_progress = function(p)
      local total = p.bytes_total or 0
      local pct = total > 0 and math.floor((p.bytes_done or 0) * 100 / total) or 0
      if record == nil and step ~= nil and math.floor(pct / 10) <= step then return end
      step = math.floor(pct / 10)
      notify(("%s: %d%%"):format(label, pct), LEVELS.INFO)
    end,
    done = notify,
  }
end

-- :Atai outputs ID [DIR]: download_outputs with progress notifications.
local function outputs(args)
  local id, dir = args[1], full_path(args[2] or vim.fn.getcwd())
  local progress = progress_notifier("outputs of " .. id)
  an.call("outputs " .. id, function(c)
    return c.async:download_outputs(id, dir, { on_progress = progress.on_progress })
  end, function(summary)
    local failed = #summary.failed
    local text = ("outputs of %s into %s: %d downloaded, %d already there, %d failed"):format(
      id, dir, summary.downloaded, summary.skipped, failed)
    if failed > 0 then
      text = text .. " (first: " .. tostring(summary.failed[1].err) .. ")"
    end
    progress.done(text, failed > 0 and LEVELS.ERROR or LEVELS.INFO)
  end)
end

-- :Atai upload PATH: stored under the file's base name.
local function upload(args)
  local path = full_path(args[1])
  local name = vim.fn.fnamemodify(path, ":t")
  local progress = progress_notifier("upload " .. name)
  an.call("upload " .. name, function(c)
    return c.async:upload_file(path, { name = name, on_progress = progress.on_progress })
  end, function(file)
    progress.done(("uploaded %s as %s"):format(name, tostring(file.file_id)), LEVELS.INFO)
  end)
end

-- Argument completers.
local function complete_ids(lead)
  local out = {}
  for _, id in ipairs(an.seen_ids()) do
    if id:sub(1, #lead) == lead then out[#out + 1] = id end
  end
  return out
end

local function complete_statuses(lead)
  local out = {}
  for _, s in ipairs(STATUSES) do
    if s:sub(1, #lead) == lead:upper() then out[#out + 1] = s end
  end
  return out
end

local function complete_files(lead) return vim.fn.getcompletion(lead, "file") end
local function complete_dirs(lead) return vim.fn.getcompletion(lead, "dir") end

--- The subcommands: handler, min and max arguments (max nil: any), the
--- usage line, the completer of each argument position (the last one
--- repeats), and which arguments are job ids (checked before anything
--- opens): 1 the first, "all" every one.
M.SUBCOMMANDS = {
  jobs = { function(a) buffers.open_jobs(a[1] and a[1]:upper()) end, 0, 1, "jobs [STATUS]", { complete_statuses } },
  job = { function(a) buffers.open_job(a[1]) end, 1, 1, "job ID", { complete_ids }, 1 },
  wait = { wait, 1, nil, "wait ID...", { complete_ids }, "all" },
  cancel = { cancel, 1, 1, "cancel ID", { complete_ids }, 1 },
  retry = { retry, 1, 1, "retry ID", { complete_ids }, 1 },
  events = { function(a) buffers.open_events(a[1]) end, 1, 1, "events ID", { complete_ids }, 1 },
  outputs = { outputs, 1, 2, "outputs ID [DIR]", { complete_ids, complete_dirs }, 1 },
  upload = { upload, 1, 1, "upload PATH", { complete_files } },
}

-- The first argument that is not a job id, as a message; nil when all are.
local function bad_id(name, args, which)
  if not which then return nil end
  local lib, err = an.load_atai()
  if not lib then return err end
  for i = 1, which == "all" and #args or which do
    local why = lib.core.id_problem(args[i])
    if why then return ("%s: '%s' is not a job id (%s)"):format(name, args[i], why) end
  end
  return nil
end

local function names()
  local list = {}
  for name in pairs(M.SUBCOMMANDS) do list[#list + 1] = name end
  table.sort(list)
  return list
end

--- Runs `:Atai {fargs}`.
function M.run(fargs)
  local name = fargs[1]
  local sub = name and M.SUBCOMMANDS[name]
  if not sub then
    return an.notify(("%s: usage :Atai {%s}"):format(name and ("unknown subcommand '" .. name .. "'")
      or "a subcommand is needed", table.concat(names(), "|")), LEVELS.ERROR)
  end
  local args = { unpack(fargs, 2) }
  if #args < sub[2] or (sub[3] and #args > sub[3]) then
    return an.notify("usage: :Atai " .. sub[4], LEVELS.ERROR)
  end
  local problem = bad_id(name, args, sub[6])
  if problem then return an.notify(problem, LEVELS.ERROR) end
  return sub[1](args)
end

--- Completion of :Atai: subcommand names, then each one's arguments.
function M.complete(arglead, cmdline, cursor)
  local before = cmdline:sub(1, cursor or #cmdline)
  local words = vim.split(before, "%s+", { trimempty = false })
  -- words[1] is "Atai" (or an abbreviation); the last one is being typed
  local n = #words - 1
  if n <= 1 then
    local out = {}
    for _, name in ipairs(names()) do
      if name:sub(1, #arglead) == arglead then out[#out + 1] = name end
    end
    return out
  end
  local sub = M.SUBCOMMANDS[words[2]]
  if not sub then return {} end
  local pos = n - 1
  if sub[3] and pos > sub[3] then return {} end
  local completers = sub[5]
  local completer = completers[math.min(pos, #completers)]
  return completer and completer(arglead) or {}
end

return M

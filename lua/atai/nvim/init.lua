--- atai.nvim: atai inside Neovim; the code behind :Atai (plugin/atai.lua)
-- and its Lua API (:help atai-lua).
--
--   local an = require("atai.nvim")
--   an.watch(id)            -- follow a job: User AtaiJobUpdate / AtaiJobDone
--   an.unwatch(id)
--   an.statusline()         -- "atai 2▶ 45%", "" when nothing is watched
--
-- Loading this module loads nothing else: atai itself (and its C module
-- lua/atai/core.so, built by `make nvim`) loads on the first command that
-- needs the network. One client per Neovim, driven by atai.uv on Neovim's
-- loop, so nothing here ever waits on the network; its callbacks run from
-- vim.schedule, where vim.api may be used.

local config = require("atai.nvim.config")

local M = {}

--- While a User AtaiJobUpdate/AtaiJobDone autocommand runs on Neovim 0.7
--- (which cannot attach data to an event): the job. nil otherwise.
M.event = nil

local HAS_EVENT_DATA = vim.fn.has("nvim-0.8") == 1
local uv = vim.uv or vim.loop
local LEVELS = vim.log.levels

-- ---------------------------------------------------------------------------
-- State held for the statusline, completion and the buffers

local state = {
  seen = {},      -- ids in the order first seen
  seen_set = {},  -- id -> true
  jobs = {},      -- id -> the last job table seen
  watched = {},   -- id -> { handle, listeners = {fn...} }
  status_text = "",
}
M._state = state

--- Remembers a job (or id) the API answered for, for completion (the job
--- ids seen since Neovim started).
function M.remember(job_or_id)
  local id = type(job_or_id) == "table" and job_or_id.id or job_or_id
  if type(id) ~= "string" or state.seen_set[id] then return end
  state.seen_set[id] = true
  state.seen[#state.seen + 1] = id
end

--- The job ids seen since Neovim started, oldest first.
function M.seen_ids()
  return state.seen
end

-- ---------------------------------------------------------------------------
-- Notifications

local settings_cache -- the settings of the last successful check
local exiting = false -- Neovim quits: nothing more to say

-- vim.notify, or vim.g.atai.notify (false: only errors, through vim.notify).
function M.notify(msg, level, opts)
  if exiting then return nil end
  level = level or LEVELS.INFO
  local s = settings_cache or config.DEFAULTS
  local fn = vim.notify
  if s.notify == false and level < LEVELS.ERROR then return nil end
  if vim.is_callable(s.notify) then fn = s.notify end
  local o = { title = "atai" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return fn("atai: " .. msg, level, o)
end

local function notify_error(what, err)
  M.notify(what .. ": " .. tostring(err), LEVELS.ERROR)
end

-- ---------------------------------------------------------------------------
-- Loading atai, settings and the client

local atai_lib, load_error

-- The plugin's folder (for the advice of a missing core.so).
local function plugin_root()
  local here = debug.getinfo(1, "S").source:gsub("^@", "")
  return vim.fn.fnamemodify(here, ":p:h:h:h:h")
end

--- require("atai"), or nil, the advice: `make nvim` when core.so is missing
--- or was built for another Lua.
function M.load_atai()
  if atai_lib then return atai_lib end
  if load_error then return nil, load_error end
  local ok, lib = pcall(require, "atai")
  if ok then
    atai_lib = lib
    return lib
  end
  for name in pairs(package.loaded) do -- Lua 5.1 leaves a sentinel behind
    if name == "atai" or name:sub(1, 5) == "atai." and not name:find("^atai%.nvim") then
      package.loaded[name] = nil
    end
  end
  local message = tostring(lib)
  local root = plugin_root()
  if message:find("module 'atai.core' not found", 1, true) then
    load_error = ("atai.core (lua/atai/core.so) is missing: run `make nvim` in %s"):format(root)
  elseif message:find("atai.core", 1, true) then
    local detail = message:match("undefined symbol: [%w_]+") or message:gsub("\n.*", "")
    load_error = ("lua/atai/core.so is not built for Neovim's %s (%s): run `make nvim` in %s")
      :format(jit and jit.version or _VERSION, detail, root)
  else
    load_error = ("atai failed to load (%s): run `make nvim` in %s"):format(message, root)
  end
  return nil, load_error
end

--- The checked settings of vim.g.atai, or nil, message.
function M.settings()
  local lib, lerr = M.load_atai() -- the checks use atai.config, which needs atai.core
  if not lib then return nil, lerr end
  local s, err = config.read()
  if s then settings_cache = s end
  return s, err
end

local client, detach, client_options
local exit_hooked = false

-- Closes the client (at exit: no callback may run while Neovim quits).
local function close_client()
  if detach then detach() end
  if client then client:close() end
  detach, client, client_options = nil, nil, nil
end

--- Calls fn(client, settings) with the plugin's client, once atai is loaded,
--- vim.g.atai is valid and the key known; else one ERROR notification and
--- on_fail() (optional).
function M.with_client(fn, on_fail)
  local function fail(message)
    M.notify(message, LEVELS.ERROR)
    if on_fail then on_fail() end
  end
  local s, serr = M.settings()
  if not s then return fail(serr) end
  local lib = atai_lib
  if client and not vim.deep_equal(client_options, s.client) then M._renew_client() end
  if client then return fn(client, s) end
  config.with_key(s, function(key, kerr)
    if kerr then return fail(kerr) end
    if client and not vim.deep_equal(client_options, s.client) then close_client() end
    if not client then
      local opts = {}
      for k, v in pairs(s.client) do opts[k] = v end
      opts.api_key = key
      local ok, c = pcall(lib.new, opts)
      if not ok then return fail((tostring(c):gsub("^[^:]*:%d+: ", ""))) end
      client, client_options = c, s.client
      detach = require("atai.uv").attach(client, uv)
      if not exit_hooked then
        exit_hooked = true
        vim.api.nvim_create_autocmd("VimLeavePre", { once = true, callback = function()
          exiting = true -- what closing cancels is not news
          close_client()
        end })
      end
    end
    fn(client, s)
  end)
end

--- vim.g.atai's client options changed: closes the client (its requests
--- end as cancelled, unreported) and follows the watched jobs again with
--- the next one.
function M._renew_client()
  local moved = state.watched
  state.watched = {} -- the old watches' callbacks now return early
  close_client()
  for id, w in pairs(moved) do
    if #w.listeners == 0 then M.watch(id) end
    for _, fn in ipairs(w.listeners) do M.watch(id, fn) end
  end
end

--- The client when it exists (no I/O), for :checkhealth.
function M.current_client()
  return client
end

--- Starts an async call and routes its result: on_ok(value, client,
--- settings), or one ERROR notification "<what>: <err>" (argument errors
--- included: no traceback) and on_fail() (optional).
function M.call(what, start, on_ok, on_fail)
  local function fail(err)
    -- cancelled: the client was replaced (vim.g.atai changed); not news
    if not (type(err) == "table" and err.kind == "cancelled") then notify_error(what, err) end
    if on_fail then on_fail() end
  end
  M.with_client(function(c, s)
    local ok, h, err0 = pcall(start, c, s)
    if not ok then return fail((tostring(h):gsub("^[^:]*:%d+: ", ""))) end
    if h == nil then return fail(err0) end -- failed before any I/O (a file that cannot be read)
    h:on_done(function(value, err)
      if value == nil then return fail(err) end
      on_ok(value, c, s)
    end)
  end, on_fail)
end

-- ---------------------------------------------------------------------------
-- Events and the statusline

local function progress_of(job)
  local lib = atai_lib
  return lib and type(job) == "table" and lib.progress(job) or nil
end
M.progress_of = progress_of

-- Recomputes the statusline string: only when a watched job changes.
local function update_status()
  local running, sum, n = 0, 0, 0
  for id in pairs(state.watched) do
    local job = state.jobs[id]
    running = running + 1
    local p = progress_of(job)
    if p and p.total > 0 then
      sum, n = sum + p.percent, n + 1
    end
  end
  if running == 0 then
    state.status_text = ""
  elseif n > 0 then
    state.status_text = ("atai %d▶ %d%%"):format(running, math.floor(sum / n))
  else
    state.status_text = ("atai %d▶"):format(running)
  end
end

--- A short string for the statusline: "atai 2▶ 45%" (jobs watched, their
--- mean progress), "" when nothing is watched. Reads held state only.
function M.statusline()
  return state.status_text
end

-- Fires User <pattern> with the job: ev.data on 0.8+, M.event on 0.7.
local function fire(pattern, job)
  if HAS_EVENT_DATA then
    vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false, data = job })
  else
    M.event = job
    local ok, err = pcall(vim.api.nvim_exec_autocmds, "User", { pattern = pattern, modeline = false })
    M.event = nil
    if not ok then error(err, 0) end
  end
end

--- Records a job seen (from any command) and tells the listeners.
function M.saw(job)
  if type(job) ~= "table" or type(job.id) ~= "string" then return end
  M.remember(job)
  state.jobs[job.id] = job
end

-- ---------------------------------------------------------------------------
-- watch / unwatch

-- Calls each listener; one that raises is reported and the others run.
local function tell(w, job, done)
  for _, fn in ipairs(w.listeners) do
    local ok, err = pcall(fn, job, done)
    if not ok then notify_error("a watch listener raised", err) end
  end
end

--- Follows job `id` until it is terminal, polling every poll_interval
--- seconds: User AtaiJobUpdate on each change, User AtaiJobDone at the end.
--- `on_update(job, done)` (optional) is called too. Watching an id twice
--- adds the listener to the one watch.
function M.watch(id, on_update)
  vim.validate({ id = { id, "string" }, on_update = { on_update, "function", true } })
  local w = state.watched[id]
  if w then
    if on_update then w.listeners[#w.listeners + 1] = on_update end
    return
  end
  w = { listeners = { on_update } }
  state.watched[id] = w
  update_status()
  local function drop()
    if state.watched[id] == w then state.watched[id] = nil end
    update_status()
  end
  M.with_client(function(c, s)
    if state.watched[id] ~= w then return end -- unwatched meanwhile
    local ok, h = pcall(function()
      return c.async:wait_job(id, {
        interval = s.poll_interval, max_interval = s.poll_interval,
        on_update = function(job)
          if state.watched[id] ~= w then return end
          M.saw(job)
          update_status()
          if not atai_lib.is_terminal(job) then
            fire("AtaiJobUpdate", job)
            tell(w, job, false)
          end
        end,
      })
    end)
    if not ok then
      drop()
      return notify_error("watch " .. id, (tostring(h):gsub("^[^:]*:%d+: ", "")))
    end
    w.handle = h
    h:on_done(function(job, err)
      if state.watched[id] ~= w then return end
      drop()
      if not job then
        -- cancelled: the client was closed (Neovim quits, vim.g.atai changed)
        if type(err) == "table" and err.kind == "cancelled" then return end
        return notify_error("watch " .. id, err)
      end
      M.saw(job)
      update_status()
      fire("AtaiJobUpdate", job)
      fire("AtaiJobDone", job)
      tell(w, job, true)
    end)
  end, drop)
end

--- Stops following job `id` (nothing when it is not watched).
function M.unwatch(id)
  vim.validate({ id = { id, "string" } })
  local w = state.watched[id]
  if not w then return end
  state.watched[id] = nil
  if w.handle then w.handle:cancel() end
  update_status()
end

--- The ids watched now.
function M.watched()
  local ids = {}
  for id in pairs(state.watched) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

-- ---------------------------------------------------------------------------
-- The command and the mappings

--- :Atai {subcommand} [args]: see :help :Atai.
function M.command(opts)
  return require("atai.nvim.commands").run(opts.fargs or {})
end

--- Completion of :Atai's arguments.
function M.complete(arglead, cmdline, cursor)
  return require("atai.nvim.commands").complete(arglead, cmdline, cursor)
end

--- Opens atai://jobs (<Plug>(atai-jobs)).
function M.open_jobs(status)
  return require("atai.nvim.buffers").open_jobs(status)
end

--- Opens atai://job/ID for the job id under the cursor, in any buffer
--- (<Plug>(atai-job-under-cursor)).
function M.open_job_under_cursor()
  local id = require("atai.nvim.buffers").id_under_cursor()
  if not id then return M.notify("no job id under the cursor", LEVELS.WARN) end
  return require("atai.nvim.buffers").open_job(id)
end

return M

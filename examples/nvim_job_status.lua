-- examples/nvim_job_status.lua: a tiny Neovim plugin that watches Batch API
-- jobs without freezing the editor: a statusline-friendly string shows each
-- watched job's status and progress, and a notification says when it ends.
--
-- With atai's LuaJIT build on Neovim's paths (doc/neovim.md), in init.lua:
--
--   local jobs = dofile("/path/to/atai-lua/examples/nvim_job_status.lua")
--   jobs.setup()   -- :AtaiWatch JOB_ID, :AtaiUnwatch
--   vim.o.statusline = "%f %= %{v:lua.AtaiJobStatus()}"
--
-- (or copy it to lua/atai_job_status.lua on the runtimepath and require it).
--
-- To try it headless against the fake server: `make LUA=luajit`, paste the
-- line `make fake-server` prints, then from the checkout's root (it exits
-- 1 unless the watched job shows COMPLETED within a second):
--
--   nvim --headless -u NONE \
--     --cmd "lua package.cpath = 'build/luajit/?.so;' .. package.cpath" \
--     -c "lua dofile('examples/nvim_job_status.lua').setup()" \
--     -c "AtaiWatch job_2abc3def4ghi5jkl6mno7pqr" -c "sleep 1" -c "lua print(AtaiJobStatus())" \
--     -c "lua if not AtaiJobStatus():find('COMPLETED') then vim.cmd('cquit 1') end" -c "qa!"
-- setup{client = c, interval = s}: the client (default: atai's default
-- client, from ATAI_API_KEY and ATAI_API_ENDPOINT) and the first pause
-- between polls (default 2 s). atai.uv drives the client from Neovim's
-- loop and client.async:wait_job polls each job: nothing blocks the UI,
-- and every callback runs where vim.api is allowed.

local atai = require("atai")
local atai_uv = require("atai.uv")

local M = {}
local watched, order = {}, {} -- id -> {status, percent, handle}; ids in watch order
local settings = {}
local detach

local function redraw()
  vim.cmd("redrawstatus")
end

-- One job's part of the status string: "job_x RUNNING 40%".
local function describe(id, entry)
  local text = id .. " " .. entry.status
  if entry.percent and entry.status == "RUNNING" then text = text .. (" %d%%"):format(entry.percent) end
  return text
end

--- The statusline string: "job_x RUNNING 40% | job_y COMPLETED" ("" when
--- nothing is watched).
function M.status()
  local parts = {}
  for _, id in ipairs(order) do parts[#parts + 1] = describe(id, watched[id]) end
  return table.concat(parts, " | ")
end

-- Tells how the wait ended.
local function on_end(id, entry, job, err)
  if job then
    entry.status = job.status
    vim.notify(("atai: job %s %s"):format(id, job.status),
      atai.succeeded(job) and vim.log.levels.INFO or vim.log.levels.WARN)
  elseif err.kind ~= "cancelled" then
    entry.status = "error (" .. err.kind .. ")"
    vim.notify(("atai: job %s: %s"):format(id, tostring(err)), vim.log.levels.ERROR)
  end
  redraw()
end

--- Starts watching job `id` (again, if it was watched and ended); returns
--- its wait handle.
function M.watch(id)
  local entry = watched[id]
  if entry and not entry.handle:done() then return entry.handle end
  if not entry then order[#order + 1] = id end
  entry = { status = "..." }
  watched[id] = entry
  local client = settings.client or atai.default_client()
  entry.handle = client.async:wait_job(id, {
    interval = settings.interval,
    on_update = function(job)
      local p = atai.progress(job)
      entry.status, entry.percent = job.status, p and p.percent
      redraw()
    end,
  })
  entry.handle:on_done(function(job, err) on_end(id, entry, job, err) end)
  return entry.handle
end

--- Stops watching every job and stops driving the client.
function M.stop()
  for _, id in ipairs(order) do watched[id].handle:cancel() end
  watched, order = {}, {}
  if detach then detach() end
  detach = nil
  redraw()
end

--- Drives the client from Neovim's loop and adds :AtaiWatch JOB_ID,
--- :AtaiUnwatch and the global AtaiJobStatus() for 'statusline'.
function M.setup(opts)
  settings = opts or {}
  if not detach then detach = atai_uv.attach(settings.client, vim.uv or vim.loop) end
  vim.api.nvim_create_user_command("AtaiWatch", function(c) M.watch(c.args) end, { nargs = 1 })
  vim.api.nvim_create_user_command("AtaiUnwatch", M.stop, { nargs = 0 })
  _G.AtaiJobStatus = M.status
  return M
end

return M

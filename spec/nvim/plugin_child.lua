-- spec/nvim/plugin_child.lua: the parts of spec/nvim/plugin.lua that need a
-- Neovim of their own, started with plugins on and the checkout on the
-- runtimepath (`--cmd 'set rtp+=<checkout>'`, -u NORC). ATAI_CHILD picks one:
--   wrong_lua   a lua/atai/core.so built for Lua 5.4 comes first on the
--               runtimepath, or none is there (a copy of the plugin before
--               make nvim): what :Atai jobs notifies, what :checkhealth says
--   key_cmd     no ATAI_API_KEY: vim.g.atai.api_key_cmd gives the key; two
--               commands, the command runs once
--   key_cmd_fails  api_key_cmd exits with status 3: one ERROR per command
--   json        no cjson module can be required (LUA_CPATH empty): atai.core
--               decodes with Neovim's vim.json
--   slow        the fake server answers after 300 ms: the heartbeat while
--               :Atai wait follows 20 jobs, then :qa with requests in flight
-- Writes "RESULT <json>" lines (vim.json) for the parent to check, and
-- quits with :qa (or :cquit 3 on an error of its own).
local mode = os.getenv("ATAI_CHILD")
local uv = vim.loop
local out = io.stdout

local function result(t)
  out:write("RESULT ", vim.json.encode(t), "\n")
  out:flush()
end

local notes = {}
local real_notify = vim.notify
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

local function lines() return vim.api.nvim_buf_get_lines(0, 0, -1, false) end

local CHILDREN = {}

function CHILDREN.wrong_lua()
  vim.cmd("Atai jobs")
  vim.wait(300)
  local first = vim.deepcopy(notes)
  vim.cmd("checkhealth atai")
  result({ notes = first, health = lines(), statusline = require("atai.nvim").statusline() })
end

function CHILDREN.key_cmd()
  local counter = os.getenv("ATAI_KEY_COUNTER")
  vim.g.atai = { api_key_cmd = { "sh", "-c", "echo ran >> '" .. counter .. "'; echo \"$ATAI_CHILD_KEY\"" } }
  vim.cmd("Atai job job_running")
  vim.cmd("Atai events job_failed") -- asked while the key command still runs
  local ok = vim.wait(5000, function()
    local got = 0
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_line_count(b) > 3 then got = got + 1 end
    end
    return got >= 2
  end, 10)
  vim.cmd("Atai cancel job_pending")
  vim.wait(2000, function() return #notes > 0 end, 10)
  local bufs = {}
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    bufs[vim.api.nvim_buf_get_name(b)] = vim.api.nvim_buf_get_lines(b, 0, -1, false)
  end
  result({ ok = ok, notes = notes, buffers = bufs })
end

-- api_key_cmd fails: one ERROR per command, the command run once.
function CHILDREN.key_cmd_fails()
  local counter = os.getenv("ATAI_KEY_COUNTER")
  vim.g.atai = { api_key_cmd = { "sh", "-c", "echo ran >> '" .. counter .. "'; echo not-a-key-$$; exit 3" } }
  vim.cmd("Atai jobs")
  vim.wait(3000, function() return #notes > 0 end, 10)
  vim.cmd("Atai events job_failed")
  vim.wait(300)
  result({ notes = notes })
end

function CHILDREN.json()
  local cjson_ok = pcall(require, "cjson")
  vim.cmd("Atai job job_2abc3def4ghi5jkl6mno7pqr")
  local ok = vim.wait(3000, function() return table.concat(lines(), "\n"):find("last events", 1, true) ~= nil end, 10)
  local atai = require("atai")
  local client = atai.new({})
  local created = client:create_job({ name = "json", pipeline_type = "batch",
    pipeline_key = "machine-state-classification", inputs = { ["worker.inference"] = { { file_id = "a.csv" } } } })
  client:close()
  result({ cjson = cjson_ok, ok = ok, lines = lines(), json = atai.core.version_info().json, notes = notes,
    created_error_dropped = created and created.error == nil and created.completed_at == nil,
    created_status = created and created.status })
end

function CHILDREN.slow()
  local slow = os.getenv("ATAI_SLOW_ENDPOINT")
  vim.g.atai = { endpoint = slow, poll_interval = 0.1, max_concurrency = 20 }
  -- first use: loads the modules and makes the client
  vim.cmd("Atai jobs")
  local loaded = vim.wait(5000, function() return #lines() > 3 end, 10)
  local atai = require("atai")
  local maker = atai.new({ endpoint = slow, max_concurrency = 25 })
  local handles = {}
  for i = 1, 25 do
    handles[i] = maker.async:create_job({ name = "hb" .. i, pipeline_type = "batch",
      pipeline_key = "machine-state-classification", inputs = { ["worker.inference"] = { { file_id = "a.csv" } } } })
  end
  local jobs = atai.wait_all(handles, 10)
  maker:close()
  local ids = {}
  for i = 1, 20 do ids[i] = jobs[i] and jobs[i].id end
  notes = {}
  local heartbeat, ticks, worst = uv.new_timer(), 0, 0
  local last = uv.hrtime()
  heartbeat:start(10, 10, function()
    local now = uv.hrtime()
    ticks = ticks + 1
    worst = math.max(worst, (now - last) / 1e6)
    last = now
  end)
  local started = uv.hrtime()
  vim.cmd("Atai wait " .. table.concat(ids, " "))
  local function finals()
    local n = 0
    for _, note in ipairs(notes) do
      if note.msg:find("COMPLETED") or note.msg:find("FAILED") then n = n + 1 end
    end
    return n
  end
  local finished = vim.wait(20000, function() return finals() >= 20 end, 5)
  local elapsed = (uv.hrtime() - started) / 1e6
  heartbeat:stop()
  heartbeat:close()
  result({ loaded = loaded, created = #ids, finished = finished, finals = finals(), notes = #notes,
    worst = worst, ticks = ticks, elapsed = elapsed })
  -- :qa with requests in flight, Neovim's own vim.notify back: anything
  -- notified on the way out shows in the output
  vim.notify = real_notify
  vim.g.atai = { endpoint = slow, poll_interval = 5, max_concurrency = 20 } -- the waits sleep after a poll
  local more = {}
  for i = 21, 25 do more[#more + 1] = jobs[i] and jobs[i].id end
  vim.cmd("Atai wait " .. table.concat(more, " "))
  vim.cmd("Atai jobs")
  vim.wait(450) -- some waits sleep between polls, other requests are in flight
  result({ in_flight = require("atai.nvim").current_client():pending() })
end

local ok, err = xpcall(CHILDREN[mode], debug.traceback)
if not ok then
  result({ error = tostring(err) })
  vim.cmd("cquit 3")
end
vim.cmd("qa")

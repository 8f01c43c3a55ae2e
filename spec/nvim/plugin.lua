-- spec/nvim/plugin.lua: the Neovim plugin (plugin/atai.lua, atai.nvim,
-- atai.health, doc/atai.txt) through the runtimepath install, headless,
-- against the fake Archetype API. Run by scripts/test_nvim.sh (make
-- test-nvim) after `make nvim`:
--
--   nvim --headless -u NORC -i NONE --cmd 'set rtp+=<checkout>' \
--     -c 'luafile spec/nvim/plugin.lua' -c 'cquit 3'
--
-- -u NORC: no user config, but plugins on; no package.cpath edit: atai.core
-- is lua/atai/core.so, found by Neovim's loader. Environment: as
-- spec/nvim/run.lua (ATAI_API_ENDPOINT, ATAI_API_KEY, ATAI_SLOW_ENDPOINT,
-- ATAI_ROOT, ATAI_NVIM_OTHER_BUILD). The parts that need a Neovim of their
-- own are in spec/nvim/plugin_child.lua. Speed is reported, never asserted
-- but against a 100 ms ceiling.

local ROOT = os.getenv("ATAI_ROOT") or vim.fn.getcwd()
local OTHER_BUILD = ROOT .. "/" .. (os.getenv("ATAI_NVIM_OTHER_BUILD") or "build/lua5.4")
local KEY = os.getenv("ATAI_API_KEY")
local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local H = dofile(ROOT .. "/spec/nvim/harness.lua")
local it, expect, equal, say = H.it, H.expect, H.equal, H.say
local api = vim.api

-- ---------------------------------------------------------------------------
-- Helpers

local function atai_modules()
  local names = {}
  for name in pairs(package.loaded) do
    if name == "atai" or name:sub(1, 5) == "atai." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local function wait_for(cond, ms) return vim.wait(ms or 3000, cond, 5) end

local function buf_text(buf) return table.concat(api.nvim_buf_get_lines(buf or 0, 0, -1, false), "\n") end

local function find_buf(prefix)
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_get_name(b):sub(1, #prefix) == prefix then return b end
  end
end

-- vim.notify, captured: every call {msg, level, opts}; `replacing`: returns
-- a record like nvim-notify's.
local notes = {}
local all_notes = {}
local replacing = false
vim.notify = function(msg, level, opts)
  local n = { msg = msg, level = level, opts = opts }
  notes[#notes + 1] = n
  all_notes[#all_notes + 1] = n
  if replacing then return (opts and opts.replace) or { id = #notes } end
end
local function take_notes()
  local t = notes
  notes = {}
  return t
end
local function levels_text(list)
  local t = {}
  for _, n in ipairs(list) do t[#t + 1] = ("[%s] %s"):format(tostring(n.level), n.msg) end
  return table.concat(t, " | ")
end

local function no_traceback_nor_key(list)
  for _, n in ipairs(list) do
    expect(not n.msg:find("traceback", 1, true) and not n.msg:find("%.lua:%d+:"), "a traceback: " .. n.msg)
    expect(not n.msg:find(KEY, 1, true), "a notification shows the key")
  end
end

-- Runs a Neovim of its own (plugin_child.lua in mode `mode`), plugins on:
-- its RESULT lines decoded, its exit status, its whole output.
local function child(mode, env, rtp_first, root)
  local cmd = { "env" }
  for k, v in pairs(env or {}) do
    if v == false then vim.list_extend(cmd, { "-u", k }) end
  end
  cmd[#cmd + 1] = "ATAI_CHILD=" .. mode
  for k, v in pairs(env or {}) do
    if v ~= false then cmd[#cmd + 1] = k .. "=" .. v end
  end
  local args = { "timeout", "60", vim.v.progpath, "--headless", "-u", "NORC", "-i", "NONE" }
  if rtp_first then vim.list_extend(args, { "--cmd", "set rtp^=" .. rtp_first }) end
  vim.list_extend(args, { "--cmd", "set rtp+=" .. (root or ROOT), "-c", "luafile " .. ROOT .. "/spec/nvim/plugin_child.lua" })
  vim.list_extend(cmd, args)
  local output = vim.fn.system(cmd)
  local status = vim.v.shell_error
  local results = {}
  for line in output:gmatch("[^\n]+") do
    local json = line:match("RESULT (.*)$") -- after :checkhealth's echo, maybe
    if json then results[#results + 1] = vim.json.decode(json) end
  end
  return results, status, output
end

-- A job on the fast fake server, made by the test's own client (blocking).
local maker
local function new_job(name)
  maker = maker or require("atai").new({})
  local job = assert(maker:create_job({ name = name or "nvim", pipeline_type = "batch",
    pipeline_key = "machine-state-classification", inputs = { ["worker.inference"] = { { file_id = "a.csv" } } } }))
  return job.id
end

-- ---------------------------------------------------------------------------

local function main()
  local v = vim.version()
  say(("Neovim %d.%d.%d, %s: the plugin from the runtimepath (%s)"):format(v.major, v.minor, v.patch,
    jit and jit.version or _VERSION, ROOT))

  it("startup with plugins on loads no atai module; plugin/atai.lua defined :Atai and the <Plug> mappings", function()
    equal("", table.concat(atai_modules(), ","), "atai modules in package.loaded")
    equal(2, vim.fn.exists(":Atai"), "exists(':Atai')")
    expect(vim.fn.maparg("<Plug>(atai-jobs)", "n") ~= "" or vim.fn.hasmapto("<Plug>(atai-jobs)") >= 0, "")
    equal(1, #api.nvim_get_keymap("n") > 0 and 1 or 0, "normal mappings exist")
    local plugs = {}
    for _, m in ipairs(api.nvim_get_keymap("n")) do
      if m.lhs:find("atai", 1, true) then plugs[#plugs + 1] = m.lhs end
    end
    table.sort(plugs)
    equal("<Plug>(atai-job-under-cursor),<Plug>(atai-jobs)", table.concat(plugs, ","), "atai mappings (no default keymaps)")
    equal(nil, package.loaded["atai.nvim"], "atai.nvim loaded at startup")
  end)

  it("plugin/atai.lua's startup cost, measured with --startuptime", function()
    local log = vim.fn.tempname()
    local output = vim.fn.system({ "timeout", "30", vim.v.progpath, "--headless", "-u", "NORC", "-i", "NONE",
      "--cmd", "set rtp+=" .. ROOT, "--startuptime", log,
      "-c", "lua io.stdout:write('MODULES ', vim.inspect(vim.tbl_filter(function(n) return n:match('^atai') end,"
        .. " vim.tbl_keys(package.loaded))), '\\n')",
      "-c", "qa!" })
    equal(0, vim.v.shell_error, "exit status (" .. output .. ")")
    expect(output:find("MODULES {}", 1, true), "atai modules loaded at startup: " .. output)
    local ms
    for line in io.lines(log) do
      local self_ms = line:match("^%s*[%d.]+%s+[%d.]+%s+([%d.]+): sourcing .*/plugin/atai%.lua$")
      if self_ms then ms = tonumber(self_ms) end
    end
    os.remove(log)
    expect(ms, "no line sourcing plugin/atai.lua in the --startuptime log")
    say(("report  startup: sourcing plugin/atai.lua took %.3f ms (goal < 1 ms: %s)"):format(ms,
      ms < 1 and "met" or "NOT met"))
    expect(ms <= 100, ("plugin/atai.lua took %.1f ms"):format(ms))
  end)

  it(":helptags builds doc/atai.txt's tags; :help atai, :Atai, atai-config, atai-lua", function()
    vim.v.errmsg = ""
    vim.cmd("helptags " .. vim.fn.fnameescape(ROOT .. "/doc"))
    equal("", vim.v.errmsg, "v:errmsg after :helptags")
    for _, tag in ipairs({ "atai", ":Atai", "atai-config", "atai-lua", "atai-health", "atai-install" }) do
      vim.cmd("help " .. tag)
      equal("help", vim.bo.buftype, ":help " .. tag .. " buftype")
      expect(api.nvim_buf_get_name(0):find("atai.txt", 1, true), ":help " .. tag .. " opened " .. api.nvim_buf_get_name(0))
      vim.cmd("helpclose")
    end
  end)

  vim.g.atai = { poll_interval = 0.05 }

  it(":Atai jobs opens atai://jobs (scratch, statuses as the API spells them), refreshed as the fake jobs advance", function()
    local id = new_job("advancing")
    vim.cmd("Atai jobs")
    local buf = api.nvim_get_current_buf()
    equal("atai://jobs", api.nvim_buf_get_name(buf), "buffer name")
    equal("nofile", vim.bo[buf].buftype, "buftype")
    expect(wait_for(function() return buf_text(buf):find(id .. "%s+PENDING") ~= nil end),
      "the new job is not listed PENDING:\n" .. buf_text(buf))
    expect(buf_text(buf):find("job_running%s+RUNNING"), "job_running RUNNING:\n" .. buf_text(buf))
    expect(buf_text(buf):find("ID%s+STATUS%s+PIPELINE%s+PROGRESS%s+AGE"), "header:\n" .. buf_text(buf))
    for _ = 1, 4 do maker:get_job(id) end -- the fake job advances one step per GET
    expect(wait_for(function() return buf_text(buf):find(id .. "%s+COMPLETED") ~= nil end),
      "the buffer did not update to COMPLETED:\n" .. buf_text(buf))
    equal(0, #take_notes(), "notifications")
  end)

  it("atai://jobs: R refreshes now, <CR> opens the job under the cursor, q closes", function()
    local buf = find_buf("atai://jobs")
    api.nvim_set_current_buf(buf)
    local id = new_job("for R")
    vim.cmd("normal R")
    expect(wait_for(function() return buf_text(buf):find(id, 1, true) ~= nil end), "R: not listed:\n" .. buf_text(buf))
    local row
    for i, line in ipairs(api.nvim_buf_get_lines(buf, 0, -1, false)) do
      if line:find("^job_failed ") then row = i end
    end
    api.nvim_win_set_cursor(0, { row, 5 })
    vim.cmd("execute \"normal \\<CR>\"")
    equal("atai://job/job_failed", api.nvim_buf_get_name(0), "<CR> opened")
    api.nvim_set_current_buf(buf)
    vim.cmd("normal q")
    equal(false, api.nvim_buf_is_valid(buf), "q: atai://jobs still exists")
  end)

  it(":Atai jobs RUNNING lists only running jobs in a buffer named atai://jobs...", function()
    vim.cmd("Atai jobs RUNNING")
    local buf = api.nvim_get_current_buf()
    local name = api.nvim_buf_get_name(buf)
    expect(name:sub(1, 11) == "atai://jobs", "buffer name " .. name)
    expect(wait_for(function() return buf_text(buf):find("job_running%s+RUNNING") ~= nil end), buf_text(buf))
    expect(not buf_text(buf):find("COMPLETED", 1, true), "a COMPLETED job in the RUNNING list:\n" .. buf_text(buf))
    vim.cmd("bwipeout")
  end)

  it(":Atai job ID shows the job live until it is terminal, then its last events", function()
    local id = new_job("live")
    vim.cmd("Atai job " .. id)
    local buf = api.nvim_get_current_buf()
    equal("atai://job/" .. id, api.nvim_buf_get_name(buf), "buffer name")
    equal("nofile", vim.bo[buf].buftype, "buftype")
    local seen = {}
    expect(wait_for(function()
      local text = buf_text(buf)
      local status = text:match("\nstatus:%s+(%u+)")
      if status then seen[status] = true end
      return text:find("last events", 1, true) ~= nil
    end, 5000), "no events:\n" .. buf_text(buf))
    expect(seen.RUNNING, "RUNNING was never shown")
    local text = buf_text(buf)
    expect(text:find("status:%s+COMPLETED"), text)
    expect(text:find("input progress:%s+100%%"), text)
    expect(text:find("Job started", 1, true), "the events: " .. text)
    equal(0, #take_notes(), "notifications")
  end)

  it(":Atai wait notifies progress per 10 % step and the final status (WARN/ERROR for CANCELLED/FAILED)", function()
    local id = new_job("wait")
    take_notes()
    vim.cmd("Atai wait " .. id .. " job_failed job_cancelled")
    local function final(pattern)
      for _, n in ipairs(notes) do if n.msg:find(pattern) then return n end end
    end
    expect(wait_for(function() return final(id .. " COMPLETED") and final("job_failed FAILED")
      and final("job_cancelled CANCELLED") end, 5000), "finals: " .. levels_text(notes))
    equal(vim.log.levels.INFO, final(id .. " COMPLETED").level, "COMPLETED level")
    equal(vim.log.levels.ERROR, final("job_failed FAILED").level, "FAILED level")
    equal(vim.log.levels.WARN, final("job_cancelled CANCELLED").level, "CANCELLED level")
    expect(final(id .. " RUNNING"), "no progress message: " .. levels_text(notes))
    equal("atai: job " .. id .. " COMPLETED 100% (1/1)", final(id .. " COMPLETED").msg, "final message")
    no_traceback_nor_key(take_notes())
  end)

  it(":Atai wait with a notify that replaces (nvim-notify): one updating message per job", function()
    local id = new_job("replace")
    replacing = true
    take_notes()
    vim.cmd("Atai wait " .. id)
    local ok = wait_for(function() return notes[#notes] and notes[#notes].msg:find("COMPLETED") ~= nil end, 5000)
    replacing = false
    local got = take_notes()
    expect(ok, "no final notification: " .. levels_text(got))
    expect(#got >= 2, "expected progress then the final: " .. levels_text(got))
    equal(nil, got[1].opts.replace, "the first message replaces nothing")
    for i = 2, #got do
      equal(1, got[i].opts.replace and got[i].opts.replace.id, ("message %d replaces the first"):format(i))
    end
  end)

  it("watch/unwatch, statusline() and the User AtaiJobUpdate/AtaiJobDone events", function()
    local an = require("atai.nvim")
    equal("", an.statusline(), "statusline with nothing watched")
    local updates, dones = {}, {}
    local group = api.nvim_create_augroup("atai_spec", { clear = true })
    local function job_of(ev) return (ev and ev.data) or an.event end
    api.nvim_create_autocmd("User", { group = group, pattern = "AtaiJobUpdate",
      callback = function(ev) updates[#updates + 1] = job_of(ev) end })
    api.nvim_create_autocmd("User", { group = group, pattern = "AtaiJobDone",
      callback = function(ev) dones[#dones + 1] = job_of(ev) end })
    local id, other = new_job("watched"), new_job("unwatched")
    an.watch(id)
    an.watch(other)
    equal(2, #an.watched(), "#watched()")
    local lines = {}
    expect(wait_for(function()
      lines[an.statusline()] = true
      return lines["atai 2▶ 0%"] or lines["atai 2▶"]
    end, 5000), "statusline never counted 2 jobs")
    an.unwatch(other)
    expect(wait_for(function()
      lines[an.statusline()] = true
      return #dones > 0
    end, 5000), "no AtaiJobDone")
    equal("", an.statusline(), "statusline after the end and unwatch")
    api.nvim_del_augroup_by_id(group)
    local texts = vim.tbl_keys(lines)
    table.sort(texts)
    expect(lines["atai 2▶"] or lines["atai 2▶ 0%"] or #texts > 1, "statusline values: " .. table.concat(texts, " / "))
    local with_percent = false
    for _, t in ipairs(texts) do if t:match("^atai %d▶ %d+%%$") then with_percent = true end end
    expect(with_percent, "no 'atai N▶ P%' value: " .. table.concat(texts, " / "))
    equal(id, dones[1] and dones[1].id, "AtaiJobDone's job")
    equal("COMPLETED", dones[1].status, "AtaiJobDone's job status")
    expect(#updates >= 2 and updates[1].id, "AtaiJobUpdate events: " .. #updates)
    equal(nil, an.event, "require('atai.nvim').event outside an event")
    vim.wait(200)
    equal(1, #dones, "AtaiJobDone events (the unwatched job must not end one)")
    for _, job in ipairs(updates) do
      if job.id == other then expect(job.status ~= "COMPLETED", "an update of the unwatched job after the end") end
    end
  end)

  it(":Atai cancel ID and :Atai retry ID notify what the API answered", function()
    local id = new_job("to cancel")
    take_notes()
    vim.cmd("Atai cancel " .. id)
    expect(wait_for(function() return #notes > 0 end), "no notification")
    expect(notes[1].msg:find(id .. " CANCELLED", 1, true), levels_text(notes))
    equal(vim.log.levels.INFO, notes[1].level, "level")
    take_notes()
    vim.cmd("Atai retry job_failed")
    expect(wait_for(function() return #notes > 0 end), "no notification")
    expect(notes[1].msg:find("retried", 1, true), levels_text(notes))
    no_traceback_nor_key(take_notes())
  end)

  it(":Atai events ID lists the job's events in atai://events/ID", function()
    vim.cmd("Atai events " .. SEED)
    local buf = api.nvim_get_current_buf()
    equal("atai://events/" .. SEED, api.nvim_buf_get_name(buf), "buffer name")
    expect(wait_for(function() return buf_text(buf):find("Job completed", 1, true) ~= nil end), buf_text(buf))
    expect(buf_text(buf):find("inference.failed", 1, true), buf_text(buf))
  end)

  it(":Atai outputs ID DIR downloads the outputs with progress under safe names", function()
    local dir = vim.fn.tempname()
    local id = new_job("outputs")
    for _ = 1, 4 do maker:get_job(id) end -- COMPLETED, with outputs on the fake server
    take_notes()
    vim.cmd("Atai outputs " .. id .. " " .. dir)
    expect(wait_for(function()
      return notes[#notes] and notes[#notes].msg:find("downloaded", 1, true) ~= nil
    end, 5000), "no final notification: " .. levels_text(notes))
    local got = take_notes()
    local final = got[#got]
    equal(vim.log.levels.INFO, final.level, "final level (" .. final.msg .. ")")
    expect(final.msg:find("0 failed", 1, true), final.msg)
    local files = vim.fn.readdir(dir)
    expect(#files > 0, "no file in " .. dir)
    expect(#got >= 2 and got[1].msg:find("%d+%%"), "no progress message: " .. levels_text(got))
    vim.fn.delete(dir, "rf")
  end)

  it(":Atai upload PATH stores the file under its base name", function()
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir, "p")
    vim.fn.mkdir(dir .. "/a folder", "p")
    local path = dir .. "/a folder/readings_17.csv"
    vim.fn.writefile({ "a,b", "1,2" }, path)
    take_notes()
    vim.cmd("Atai upload " .. vim.fn.fnameescape(path))
    expect(wait_for(function() return notes[#notes] and notes[#notes].msg:find("uploaded", 1, true) ~= nil end),
      "no notification: " .. levels_text(notes))
    local msg = notes[#notes].msg
    equal(vim.log.levels.INFO, notes[#notes].level, "level of " .. msg)
    local file_id = msg:match(" as (.+)$")
    expect(msg:find("uploaded readings_17.csv as", 1, true), msg)
    local info, err = maker:file_info(file_id)
    expect(info, "file_info " .. tostring(file_id) .. ": " .. tostring(err))
    expect(vim.inspect(info):find("readings_17.csv", 1, true), "stored as: " .. vim.inspect(info))
    vim.fn.delete(dir, "rf")
    no_traceback_nor_key(take_notes())
  end)

  it("errors are one ERROR notification with atai's message: no traceback, no key", function()
    take_notes()
    local buffers = #api.nvim_list_bufs()
    vim.cmd("Atai job ../x")
    equal(buffers, #api.nvim_list_bufs(), "buffers after :Atai job with a bad id")
    equal(1, #take_notes(), "notifications of :Atai job ../x")
    vim.cmd("Atai job job_doesnotexist0000000000")
    expect(wait_for(function() return #notes > 0 end), "no notification")
    vim.wait(100)
    local got = take_notes()
    equal(1, #got, "notifications: " .. levels_text(got))
    equal(vim.log.levels.ERROR, got[1].level, "level")
    expect(got[1].msg:find("not_found", 1, true) and got[1].msg:find("404", 1, true), got[1].msg)
    vim.cmd("Atai cancel ../etc")
    vim.cmd("Atai nope")
    vim.cmd("Atai outputs")
    vim.cmd("Atai")
    vim.cmd("Atai upload /nonexistent/readings.csv")
    vim.cmd("Atai outputs " .. SEED .. " /proc/version/inside-a-file")
    expect(wait_for(function() return #notes >= 6 end), "notifications: " .. levels_text(notes))
    vim.wait(100)
    got = take_notes()
    equal(6, #got, "notifications: " .. levels_text(got))
    expect(got[5].msg:find("upload readings.csv: ", 1, true) and got[5].msg:find("io", 1, true), got[5].msg)
    expect(got[6].msg:find("outputs " .. SEED .. ": ", 1, true), got[6].msg)
    expect(got[4].msg:find("a subcommand is needed: usage :Atai {cancel|events|job|jobs|outputs|retry|upload|wait}", 1, true),
      got[4].msg)
    for _, n in ipairs(got) do equal(vim.log.levels.ERROR, n.level, "level of " .. n.msg) end
    equal("atai: cancel: '../etc' is not a job id (invalid byte at position 1 (allowed: A-Z a-z 0-9 _ -))", got[1].msg,
      "message")
    expect(got[2].msg:find("unknown subcommand 'nope'", 1, true), got[2].msg)
    expect(got[3].msg:find("usage: :Atai outputs ID [DIR]", 1, true), got[3].msg)
    no_traceback_nor_key(got)
    vim.cmd("bwipeout")
  end)

  it("vim.g.atai is checked on use: one ERROR naming the bad field; no key in the config", function()
    vim.g.atai = { poll_interval = "fast" }
    vim.cmd("Atai jobs")
    local got = take_notes()
    equal(1, #got, "notifications: " .. levels_text(got))
    equal(vim.log.levels.ERROR, got[1].level, "level")
    expect(got[1].msg:find("vim.g.atai.poll_interval", 1, true), got[1].msg)
    vim.g.atai = { api_key = "secret-in-config" }
    vim.cmd("Atai jobs")
    got = take_notes()
    equal(1, #got, "notifications: " .. levels_text(got))
    expect(got[1].msg:find("vim.g.atai.api_key", 1, true) and not got[1].msg:find("secret-in-config", 1, true), got[1].msg)
    vim.g.atai = { max_concurrency = 0 }
    vim.cmd("Atai jobs")
    got = take_notes()
    expect(#got == 1 and got[1].msg:find("vim.g.atai.max_concurrency", 1, true), levels_text(got))
    vim.g.atai = { poll_interval = 0.05 }
  end)

  it("vim.g.atai.notify: false keeps only errors; a function replaces vim.notify", function()
    vim.g.atai = { poll_interval = 0.05, notify = false }
    take_notes()
    vim.cmd("Atai wait " .. SEED)
    vim.cmd("Atai job job_doesnotexist0000000000")
    expect(wait_for(function() return #notes > 0 end), "no notification")
    vim.wait(200)
    local got = take_notes()
    equal(1, #got, "notifications: " .. levels_text(got))
    equal(vim.log.levels.ERROR, got[1].level, "level")
    local mine = {}
    vim.g.atai = { poll_interval = 0.05, notify = function(msg, level) mine[#mine + 1] = { msg = msg, level = level } end }
    vim.cmd("Atai wait " .. SEED)
    expect(wait_for(function() return #mine > 0 end), "the notify function was not called")
    equal("atai: job " .. SEED .. " COMPLETED 100% (1/1)", mine[#mine].msg, "message")
    equal(0, #take_notes(), "vim.notify calls")
    vim.g.atai = { poll_interval = 0.05 }
    vim.cmd("bwipeout")
  end)

  it("a changed vim.g.atai.endpoint takes effect: a new client, the watched jobs followed on", function()
    local an = require("atai.nvim")
    local before = an.current_client()
    expect(before, "no client yet")
    local id = new_job("moved")
    local dones = {}
    an.watch(id, function(job, done) if done then dones[#dones + 1] = job end end)
    vim.g.atai = { poll_interval = 0.05, endpoint = os.getenv("ATAI_SLOW_ENDPOINT") }
    take_notes()
    vim.cmd("Atai jobs")
    local buf = api.nvim_get_current_buf()
    expect(wait_for(function() return buf_text(buf):find("job_running", 1, true) ~= nil end), buf_text(buf))
    expect(an.current_client() ~= before, "the client was not replaced")
    -- the slow server does not know the job made on the fast one: the watch,
    -- moved to the new client, ends in not_found
    expect(wait_for(function() return #notes > 0 end, 5000), "no notification")
    expect(notes[1].msg:find("watch " .. id, 1, true) and notes[1].msg:find("not_found", 1, true), levels_text(notes))
    equal(0, #dones, "done listeners")
    vim.g.atai = { poll_interval = 0.05 }
    take_notes()
    vim.cmd("bwipeout")
  end)

  it("completion: subcommands, job ids seen since start, statuses, file paths", function()
    local subs = vim.fn.getcompletion("Atai ", "cmdline")
    equal("cancel,events,job,jobs,outputs,retry,upload,wait", table.concat(subs, ","), "subcommands")
    equal("job,jobs", table.concat(vim.fn.getcompletion("Atai jo", "cmdline"), ","), "'jo'")
    local ids = vim.fn.getcompletion("Atai job ", "cmdline")
    expect(vim.tbl_contains(ids, SEED) and vim.tbl_contains(ids, "job_running"), "ids: " .. table.concat(ids, ","))
    expect(not vim.tbl_contains(ids, "job_doesnotexist0000000000"), "an id the API did not know: " .. table.concat(ids, ","))
    local failed = vim.fn.getcompletion("Atai wait job_running job_fa", "cmdline")
    equal("job_failed", table.concat(failed, ","), "second id of wait")
    equal("RUNNING", table.concat(vim.fn.getcompletion("Atai jobs RU", "cmdline"), ","), "statuses")
    local paths = vim.fn.getcompletion("Atai upload " .. ROOT .. "/spec/nvim/plu", "cmdline")
    expect(vim.tbl_contains(paths, ROOT .. "/spec/nvim/plugin.lua"), "paths: " .. table.concat(paths, ","))
    equal(0, #vim.fn.getcompletion("Atai job " .. SEED .. " ", "cmdline"), "a second argument to job")
  end)

  it("<Plug>(atai-jobs) opens atai://jobs; <Plug>(atai-job-under-cursor) opens the job under the cursor", function()
    vim.cmd("enew")
    vim.cmd("execute \"normal \\<Plug>(atai-jobs)\"")
    local buf = api.nvim_get_current_buf()
    equal("atai://jobs", api.nvim_buf_get_name(buf), "<Plug>(atai-jobs)")
    expect(wait_for(function() return buf_text(buf):find("job_cancelled", 1, true) ~= nil end), buf_text(buf))
    vim.cmd("enew")
    api.nvim_buf_set_lines(0, 0, -1, false, { "see job_running for details" })
    api.nvim_win_set_cursor(0, { 1, 6 })
    vim.cmd("execute \"normal \\<Plug>(atai-job-under-cursor)\"")
    equal("atai://job/job_running", api.nvim_buf_get_name(0), "<Plug>(atai-job-under-cursor)")
    require("atai.nvim").unwatch("job_running")
  end)

  it(":checkhealth atai reports OK lines: version, core.so, libcurl, JSON, key, a timed request", function()
    vim.cmd("checkhealth atai")
    local text = buf_text(0)
    for _, want in ipairs({ "OK: atai 0.", "OK: atai.core loaded (" .. ROOT .. "/lua/atai/core.so), built for this LuaJIT",
      "OK: libcurl ", "HTTP/2: ", "OK: JSON: ", "OK: API key set, from the ATAI_API_KEY environment variable",
      "endpoint: " .. os.getenv("ATAI_API_ENDPOINT"), "OK: GET /batch/jobs?limit=1 answered in " }) do
      expect(text:find(want, 1, true), "missing '" .. want .. "' in:\n" .. text)
    end
    expect(not text:find("ERROR", 1, true) and not text:find(KEY, 1, true), text)
    vim.cmd("bwipeout")
  end)

  it("a lua/atai/core.so built for Lua 5.4: exactly one ERROR notification naming `make nvim`, and an ERROR in :checkhealth", function()
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir .. "/lua/atai", "p")
    vim.fn.system({ "cp", OTHER_BUILD .. "/atai/core.so", dir .. "/lua/atai/core.so" })
    local results, status, output = child("wrong_lua", nil, dir)
    vim.fn.delete(dir, "rf")
    equal(0, status, "exit status (" .. output .. ")")
    local r = results[1]
    expect(r and r.notes, "no result: " .. output)
    equal(1, #r.notes, "notifications: " .. vim.inspect(r.notes))
    equal(vim.log.levels.ERROR, r.notes[1].level, "level")
    expect(r.notes[1].msg:find("make nvim", 1, true), r.notes[1].msg)
    expect(r.notes[1].msg:find("not built for Neovim's LuaJIT", 1, true), r.notes[1].msg)
    local health = table.concat(r.health, "\n")
    expect(health:find("ERROR: lua/atai/core.so is not built for Neovim's", 1, true), health)
    expect(health:find("make nvim", 1, true), health)
    expect(not output:find("stack traceback", 1, true), output)
  end)

  it("no lua/atai/core.so (make nvim not run): exactly one ERROR notification naming `make nvim`", function()
    local dir = vim.fn.tempname()
    vim.fn.mkdir(dir, "p")
    vim.fn.system({ "cp", "-R", ROOT .. "/plugin", ROOT .. "/lua", ROOT .. "/doc", dir })
    os.remove(dir .. "/lua/atai/core.so")
    local results, status, output = child("wrong_lua", { LUA_CPATH = "/nonexistent/?.so" }, nil, dir)
    vim.fn.delete(dir, "rf")
    equal(0, status, "exit status (" .. output .. ")")
    local r = results[1]
    expect(r and r.notes, "no result: " .. output)
    equal(1, #r.notes, "notifications: " .. vim.inspect(r.notes))
    equal(vim.log.levels.ERROR, r.notes[1].level, "level")
    expect(r.notes[1].msg:find("atai.core (lua/atai/core.so) is missing: run `make nvim` in " .. dir, 1, true),
      r.notes[1].msg)
    local health = table.concat(r.health, "\n")
    expect(health:find("ERROR: atai.core (lua/atai/core.so) is missing", 1, true), health)
  end)

  it("vim.g.atai.api_key_cmd gives the key: run once, asynchronously, for every command", function()
    local counter = vim.fn.tempname()
    local results, status, output = child("key_cmd", { ATAI_API_KEY = false, ATAI_KEY_COUNTER = counter,
      ATAI_CHILD_KEY = KEY })
    equal(0, status, "exit status (" .. output .. ")")
    local r = results[1]
    expect(r and r.ok, "the buffers did not fill: " .. output)
    local ran = vim.fn.filereadable(counter) == 1 and #vim.fn.readfile(counter) or 0
    os.remove(counter)
    equal(1, ran, "times api_key_cmd ran")
    expect(table.concat(r.buffers["atai://job/job_running"] or {}, "\n"):find("status:%s+RUNNING"), output)
    expect(table.concat(r.buffers["atai://events/job_failed"] or {}, "\n"):find("events of job_failed", 1, true), output)
    expect(r.notes[1] and r.notes[1].msg:find("job_pending CANCELLED", 1, true), vim.inspect(r.notes))
    expect(not output:find(KEY, 1, true), "the key in the output")
  end)

  it("an api_key_cmd that fails: one ERROR per command, naming it, never its output; run once", function()
    local counter = vim.fn.tempname()
    local results, status, output = child("key_cmd_fails", { ATAI_API_KEY = false, ATAI_KEY_COUNTER = counter })
    equal(0, status, "exit status (" .. output .. ")")
    local r = results[1]
    expect(r, "no result: " .. output)
    local ran = vim.fn.filereadable(counter) == 1 and #vim.fn.readfile(counter) or 0
    os.remove(counter)
    equal(1, ran, "times api_key_cmd ran")
    equal(2, #r.notes, "notifications: " .. vim.inspect(r.notes))
    for _, n in ipairs(r.notes) do
      equal(vim.log.levels.ERROR, n.level, "level")
      expect(n.msg:find("vim.g.atai.api_key_cmd (sh) exited with status 3", 1, true), n.msg)
      expect(not n.msg:find("not-a-key", 1, true), "the command's output in " .. n.msg)
    end
  end)

  it("with no cjson module to require, atai.core decodes with Neovim's vim.json", function()
    local results, status, output = child("json", { LUA_CPATH = "/nonexistent/?.so" })
    equal(0, status, "exit status (" .. output .. ")")
    local r = results[1]
    expect(r, "no result: " .. output)
    equal(false, r.cjson, "require('cjson') in the child")
    expect(tostring(r.json):find("^vim%.json"), "version_info().json: " .. tostring(r.json))
    expect(r.ok, "the job buffer: " .. table.concat(r.lines or {}, "\n"))
    equal("PENDING", r.created_status, "created job's status")
    equal(true, r.created_error_dropped, "null members dropped (error, completed_at)")
    equal(0, #r.notes, "notifications: " .. vim.inspect(r.notes))
  end)

  it(":Atai wait following 20 jobs at 300 ms latency keeps the heartbeat; :qa exits cleanly with requests in flight", function()
    local results, status, output = child("slow", {})
    equal(0, status, "exit status of the Neovim that quit with :qa (output: " .. output .. ")")
    local r, q = results[1], results[2]
    expect(r and q, "results: " .. output)
    expect(r.loaded, "the first :Atai jobs did not load")
    equal(20, r.created, "jobs created")
    expect(r.finished, ("%d of 20 final notifications"):format(r.finals))
    say(("report  heartbeat: largest gap %.1f ms (goal <= 30 ms: %s) over %d ticks of 10 ms while :Atai wait "
      .. "followed 20 jobs answered after 300 ms (%d notifications, %.0f ms)")
      :format(r.worst, r.worst <= 30 and "met" or "NOT met", r.ticks, r.notes, r.elapsed))
    expect(r.worst <= 100, ("heartbeat gap %.1f ms"):format(r.worst))
    expect(q.in_flight > 0, "nothing was in flight at :qa")
    say(("report  :qa with %d requests in flight: exit status %d"):format(q.in_flight, status))
    expect(not output:find("Error", 1, true) and not output:find("E%d+:"), "output: " .. output)
  end)

  it(":qa while watches sleep between polls and requests are in flight: nothing reported on the way out", function()
    local output = vim.fn.system({ "timeout", "30", vim.v.progpath, "--headless", "-u", "NORC", "-i", "NONE",
      "--cmd", "set rtp+=" .. ROOT,
      "-c", "lua vim.g.atai = { poll_interval = 5 }",
      "-c", "Atai wait job_running job_pending",
      "-c", "Atai jobs",
      "-c", "lua vim.wait(300); require('atai.nvim').watch('job_running'); vim.cmd('Atai jobs')",
      "-c", "lua io.stdout:write('pending ', require('atai.nvim').current_client():pending(), '\\n')",
      "-c", "qa" })
    equal(0, vim.v.shell_error, "exit status (" .. output .. ")")
    expect(output:find("pending [1-9]"), "nothing in flight: " .. output)
    expect(not output:find("Error", 1, true) and not output:find("cancelled", 1, true), "output: " .. output)
  end)

  it("no notification ever showed the key", function()
    no_traceback_nor_key(all_notes)
  end)
end

H.finish("spec/nvim/plugin.lua", main)

--- atai.methods: the one place that builds the public method tables of
--- atai.Client (blocking), its async view and atai.Handle.
--
-- atai.core registers its own C methods (get_job, request, poll, close,
-- ...; the async get_job, request and sleep; done, result, cancel). The Lua
-- modules add none themselves: each hands its methods over as data
-- (`mod.methods = {client = {...}, async = {...}}`; the endpoints are rows
-- of atai.api), and this file puts them in place once, when atai is
-- required, and then seals the three tables: a later assignment raises.
-- What the Lua layer needs from C but users must not call is not a method
-- at all: it is the private table atai.core leaves at
-- package.loaded["atai.core.private"] (see src/core.c).

local core = require("atai.core")
local handle = require("atai.handle")

local SOURCES = {
  require("atai.api"),      -- the endpoints, list iterators, find_pipeline
  require("atai.wait"),     -- wait_job, get_jobs, wait_jobs
  require("atai.files"),    -- upload_*, files_list, file_info, delete_file
  (require("atai.download")), -- download, download_file, download_outputs
}

-- Puts `from`'s functions into `into`; a name defined twice is a bug.
local function install(into, from, what)
  for name, fn in pairs(from) do
    if rawget(into, name) ~= nil then error(("atai.methods: %s.%s defined twice"):format(what, name)) end
    rawset(into, name, fn)
  end
end

-- Makes a method table read-only from here on.
local function seal(t, what)
  setmetatable(t, {
    __newindex = function(_, name)
      error(("%s's methods are fixed: cannot add '%s'"):format(what, tostring(name)), 2)
    end,
    __metatable = false,
  })
end

if getmetatable(core.Client) == nil then -- once per atai.core
  for _, mod in ipairs(SOURCES) do
    install(core.Client, mod.methods.client, "atai.Client")
    install(core.Async, mod.methods.async, "client.async")
  end
  install(core.Handle, handle.SHARED, "atai.Handle")
  seal(core.Client, "atai.Client")
  seal(core.Async, "client.async")
  seal(core.Handle, "atai.Handle")
end

return true

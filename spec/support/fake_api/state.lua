--[[
  fake_api/state.lua -- the server's mutable state, shared by every module.

  state.opts holds the command-line options (set once by the entry script);
  the rest is rebuilt by POST /_fake/reset (see store.reset_all).
]]

local socket = require("socket")
local json = require("fake_api.json")

local now = socket.gettime

local state = {
  opts = {              -- command-line options, see fake_api.lua
    port = 0, key = os.getenv("ATAI_FAKE_KEY") or "test-key", ttl = 600, idle = 120,
    verbose = false, fixtures = nil,
    latency = 0,        -- ms added before every API response (not control calls)
    demo_jobs = false,  -- serve the demo jobs of demo.lua too
    user = false,       -- user mode: demo jobs and the printed listing
  },
  store = nil,          -- see store.load()
  faults = {},          -- fault rules, in registration order
  config = nil,         -- toggles, see state.default_config()
  stats = nil,          -- {connections, accepted, requests}
  generation = 0,       -- bumped by reset so reused connections count again
  serial = 0,           -- connection serial numbers (the "conn" field of logged requests)
  last_activity = now(),
}

-- The toggles of POST /_fake/config, as after a reset.
function state.default_config()
  return { full_write_bodies = false, ignore_offset = false, page_total_lies = 0 }
end

-- Clear the connection counters and the request log.
function state.reset_counters()
  state.stats = { connections = 0, accepted = 0, requests = json.array({}) }
  state.generation = state.generation + 1
end

return state

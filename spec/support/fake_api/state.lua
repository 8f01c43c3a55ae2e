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
  port = nil,           -- the port listened on (presigned URLs point back to it)
  files = {},           -- Files API: name → {meta, content, head} (files.lua)
  uploads = {},         -- multipart uploads: upload_id → {parts, status, ...} (files.lua)
  blobs = {},           -- output bytes: key → {size} (storage.lua, blob.lua)
  blob_of = {},         -- output id → blob key, for outputs served from loopback
  faults = {},          -- fault rules, in registration order
  config = nil,         -- toggles, see state.default_config()
  stats = nil,          -- {connections, accepted, requests}
  generation = 0,       -- bumped by reset so reused connections count again
  serial = 0,           -- connection serial numbers (the "conn" field of logged requests)
  last_activity = now(),
}

-- The toggles of POST /_fake/config, as after a reset.
function state.default_config()
  return { full_write_bodies = false, ignore_offset = false, page_total_lies = 0,
    part_size = 5 * 1024 * 1024,       -- bytes per part of a multipart upload
    url_ttl = 3600,                    -- seconds a presigned URL is valid (fractions allowed)
    integrity_algorithm = "crc32c",    -- what initiate names (for uploads up to:)
    integrity_max_bytes = 8 * 1024 * 1024, -- larger uploads get "none" (the CRC is plain Lua)
    corrupt_next_part = false,         -- the next part PUT gets a wrong CRC (a mismatch at complete)
    kill_pid = 0,                      -- SIGKILL this process once kill_after_checkpoints
    kill_after_checkpoints = 0,        --   parts of an upload are checkpointed (resume specs)
    expired_listings = 0,              -- next N output pages: URLs already expired
    stale_listings = 0,                -- the same, with expires_at in the past too
    max_upload_bytes = 255000000 }     -- POST /files refuses more (413)
end

-- Clear the connection counters and the request log.
function state.reset_counters()
  state.stats = { connections = 0, accepted = 0, requests = json.array({}),
    storage = require("fake_api.storage").new_stats() }
  state.generation = state.generation + 1
end

return state

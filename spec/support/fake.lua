-- spec/support/fake.lua: the usual fixture of a spec file, in one call.
--
--   local t = require("spec.support.fake")({ max_retries = 0 })
--
-- Inside a describe block: starts the fake API before its tests, resets it
-- before each test and stops it after them. `t.srv` is the server (see
-- server.lua), `t.client` an atai client on it, made with these options
-- (plus a short retry_backoff, so retries do not slow the suite), and
-- `t.new_client(extra)` another one (these options and `extra`), closed
-- after the test.
local atai = require("atai")
local busted = require("busted")
local server = require("spec.support.server")

return function(client_opts)
  local t, extra_clients = {}, {}
  local function new_client(extra)
    local opts = { endpoint = t.srv.endpoint, api_key = t.srv.key, retry_backoff = 0.01 }
    for k, v in pairs(client_opts or {}) do opts[k] = v end
    for k, v in pairs(extra or {}) do opts[k] = v end
    return atai.new(opts)
  end
  function t.new_client(extra)
    local c = new_client(extra)
    extra_clients[#extra_clients + 1] = c
    return c
  end
  busted.setup(function()
    t.srv = server.start()
    t.client = new_client()
  end)
  busted.teardown(function()
    t.client:close()
    t.srv:stop()
  end)
  busted.before_each(function() t.srv:reset() end)
  busted.after_each(function()
    while #extra_clients > 0 do table.remove(extra_clients):close() end
  end)
  return t
end

-- spec/nvim/qa_in_flight.lua: run in a Neovim of its own by spec/nvim/uv.lua.
-- Drives a client with atai.uv, starts 5 requests that the slow fake server
-- (ATAI_SLOW_ENDPOINT, 300 ms) has not answered yet, and quits with :qa!
-- while they are in flight. The parent expects exit status 0 and no output
-- but the "in flight" line.
local root = os.getenv("ATAI_ROOT")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/" .. os.getenv("ATAI_NVIM_BUILD") .. "/?.so;" .. package.cpath

local atai = require("atai")
local client = atai.new { endpoint = os.getenv("ATAI_SLOW_ENDPOINT"), api_key = os.getenv("ATAI_API_KEY") }
require("atai.uv").attach(client, vim.loop)
for _ = 1, 5 do
  client.async:get_job("job_2abc3def4ghi5jkl6mno7pqr"):on_done(function() io.stdout:write("a request completed\n") end)
end
vim.wait(50) -- let the loop open the connections
io.stdout:write("in flight: ", client:pending(), "\n")
io.stdout:flush()
vim.cmd("qa!")

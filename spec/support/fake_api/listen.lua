--[[
  fake_api/listen.lua -- the main loop of the small servers beside the fake API
  (hostile_server.lua, hostile_storage.lua).

  listen.main(name, argv, serve_connection, stopping) reads --port N and
  --ttl SECONDS from argv, binds 127.0.0.1, prints "PORT n", runs
  serve_connection(conn) for each accepted connection in a scheduler thread,
  and exits once stopping() is true or the ttl has passed.
]]

local socket = require("socket")
local http = require("fake_api.http")
local sched = require("fake_api.sched")

local listen = {}

function listen.main(name, argv, serve_connection, stopping)
  local port, ttl = 0, 300
  for i = 1, #argv, 2 do
    local value = tonumber(argv[i + 1])
    if argv[i] == "--port" and value then port = value
    elseif argv[i] == "--ttl" and value then ttl = value
    else io.stderr:write("usage: ", name, " [--port N] [--ttl SECONDS]\n"); os.exit(2) end
  end
  local listener = assert(socket.bind("127.0.0.1", port, 128))
  listener:settimeout(0)
  io.stdout:write("PORT ", select(2, listener:getsockname()), "\n")
  io.stdout:flush()
  local started = socket.gettime()
  while not stopping() and socket.gettime() - started < ttl do
    sched.step(listener, function() http.accept_all(listener, serve_connection) end, 1.0)
  end
  listener:close()
  sched.close_all()
  os.exit(0)
end

return listen

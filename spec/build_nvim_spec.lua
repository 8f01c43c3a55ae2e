-- spec/build_nvim_spec.lua: scripts/build_nvim.sh (make nvim), its failure
-- paths: it installs nothing, names each missing piece and leaves no file.
-- (The successful build is make test-nvim's, which then loads it in Neovim.)

-- Runs the script with these environment settings into a throw-away
-- output; returns its combined output, its exit status and whether the
-- output file exists.
local function build(env)
  local out = os.tmpname()
  os.remove(out)
  local p = assert(io.popen(("env %s /bin/sh scripts/build_nvim.sh %s 2>&1; echo \"<exit $?>\""):format(env, out .. "/core.so")))
  local text = p:read("*a")
  p:close()
  local status = tonumber(text:match("<exit (%d+)>"))
  local f = io.open(out .. "/core.so", "rb")
  if f then f:close() end
  os.remove(out .. "/core.so")
  os.remove(out)
  return text, status, f ~= nil
end

describe("make nvim (scripts/build_nvim.sh)", function()
  it("names a missing C compiler and builds nothing", function()
    local text, status, made = build("CC=/nonexistent/cc")
    assert.are.equal(1, status, text)
    assert.is_false(made)
    assert.is_truthy(text:find("make nvim: cannot build atai.core for Neovim; missing:", 1, true), text)
    assert.is_truthy(text:find("a C compiler: '/nonexistent/cc' is not on PATH", 1, true), text)
    assert.is_falsy(text:find("apt-get", 1, true), text)
  end)

  it("names LuaJIT's headers when LUA_INCDIR holds no lua.h", function()
    local text, status, made = build("LUA_INCDIR=/nonexistent")
    assert.are.equal(1, status, text)
    assert.is_false(made)
    assert.is_truthy(text:find("LuaJIT's headers: LUA_INCDIR=/nonexistent holds no lua.h and luajit.h", 1, true), text)
  end)

  it("names LuaJIT's and libcurl's headers when pkg-config knows neither", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    -- a PATH whose pkg-config knows nothing, and no curl-config
    local fake = assert(io.open(dir .. "/pkg-config", "w"))
    fake:write("#!/bin/sh\nexit 1\n")
    fake:close()
    assert(os.execute("chmod +x " .. dir .. "/pkg-config"))
    local cc = io.popen("command -v cc"):read("*l")
    local text, status = build(("PATH=%s CC=%s"):format(dir, cc))
    os.remove(dir .. "/pkg-config")
    os.remove(dir)
    assert.are.equal(1, status, text)
    assert.is_truthy(text:find("LuaJIT's headers (lua.h, luajit.h): pkg-config does not know luajit", 1, true), text)
    assert.is_truthy(text:find("libluajit-5.1-dev", 1, true), text)
    assert.is_truthy(text:find("libcurl's headers (curl/curl.h)", 1, true), text)
  end)
end)

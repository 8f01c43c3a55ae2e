-- spec/rockspec_spec.lua: atai-scm-1.rockspec installs every module of the
-- repository, and nothing that is not there (any Lua 5.1-5.4/LuaJIT).
local ROCKSPEC = "atai-scm-1.rockspec"

-- A rockspec is a Lua file of global assignments: run it in its own table.
local function load_rockspec(path)
  local env = {}
  local chunk, err
  if setfenv then -- 5.1, LuaJIT
    chunk, err = loadfile(path)
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = loadfile(path, "t", env)
  end
  assert(chunk, err)
  chunk()
  return env
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- Every .lua file under lua/, sorted.
local function lua_files()
  local files = {}
  local p = assert(io.popen("find lua -type f -name '*.lua' | LC_ALL=C sort"))
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

-- lua/atai/init.lua -> atai, lua/atai/x/y.lua -> atai.x.y
local function module_name(file)
  local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return name
end

describe("atai-scm-1.rockspec", function()
  local spec = load_rockspec(ROCKSPEC)
  local modules = spec.build and spec.build.modules or {}

  it("is a rockspec 3.0 for atai scm-1 from git", function()
    assert.are.equal("3.0", spec.rockspec_format)
    assert.are.equal("atai", spec.package)
    assert.are.equal("scm-1", spec.version)
    assert.is_truthy(spec.source.url:find("^git%+https://"), spec.source.url)
    assert.are.equal("MIT", spec.description.license)
    assert.are.equal("string", type(spec.description.summary))
    assert.are.equal("string", type(spec.description.detailed))
    assert.are.equal("string", type(spec.description.homepage))
    assert.are.equal("table", type(spec.description.labels))
  end)

  it("depends on Lua 5.1+ and lua-cjson, and on libcurl outside LuaRocks", function()
    assert.are.same({ "lua >= 5.1", "lua-cjson" }, spec.dependencies)
    assert.are.equal("curl", spec.external_dependencies.CURL.library)
  end)

  it("builds atai.core from src/core.c alone, linked with libcurl", function()
    assert.are.equal("builtin", spec.build.type)
    local core = modules["atai.core"]
    assert.are.equal("table", type(core))
    assert.are.same({ "src/core.c" }, core.sources)
    assert.are.same({ "curl" }, core.libraries)
    assert.are.same({ "$(CURL_INCDIR)" }, core.incdirs)
    assert.are.same({ "$(CURL_LIBDIR)" }, core.libdirs)
  end)

  it("maps every Lua file under lua/ to its module name", function()
    local files = lua_files()
    assert.is_true(#files > 0, "no .lua files found under lua/ (run from the repository root)")
    for _, file in ipairs(files) do
      local name = module_name(file)
      assert.are.equal(file, modules[name], ("%s is not mapped as build.modules[%q]"):format(file, name))
    end
  end)

  it("maps only files that exist", function()
    for name, source in pairs(modules) do
      local sources = type(source) == "table" and source.sources or { source }
      for _, file in ipairs(sources) do
        assert.is_true(exists(file), ("build.modules[%q]: %s does not exist"):format(name, file))
      end
    end
    for _, folder in ipairs(spec.build.copy_directories or {}) do
      assert.is_true(exists(folder), "copy_directories: " .. folder .. " does not exist")
    end
  end)

  it("runs the busted suite as its test", function()
    assert.are.equal("command", spec.test.type)
    assert.are.equal("busted", spec.test.command)
    assert.are.same({ "busted", "luasocket" }, spec.test_dependencies)
  end)
end)

-- spec/rockspec_spec.lua: atai-scm-1.rockspec and the release rockspec that
-- scripts/gen_rockspec.lua generates from it (make dist) install every
-- module of the repository and the atai command, and nothing that is not
-- there (any Lua 5.1-5.4/LuaJIT; the generator runs under lua5.4).

-- The generated rockspec goes to a temporary folder, removed at the end.
local function generate_release_rockspec()
  local dir = assert(io.popen("mktemp -d")):read("*l")
  local p = assert(io.popen(("lua5.4 scripts/gen_rockspec.lua '%s' %s"):format(dir, ("0"):rep(32))))
  local path = p:read("*l")
  p:close()
  assert(path, "scripts/gen_rockspec.lua wrote nothing")
  return path, dir
end

local release_path, release_dir = generate_release_rockspec()
local release_version = release_path:match("atai%-(%d+%.%d+%.%d+)%-1%.rockspec$")
teardown(function()
  os.remove(release_path)
  os.remove(release_dir) -- empty by now (remove() takes empty folders too)
end)

-- Each rockspec: its version and where its source comes from.
local ROCKSPECS = {
  { file = "atai-scm-1.rockspec", version = "scm-1", source = { branch = "main" },
    url = "^git%+https://" },
  { file = release_path, version = tostring(release_version) .. "-1",
    source = { md5 = ("0"):rep(32), dir = "atai-" .. tostring(release_version) },
    url = "^https://.*/releases/download/v" .. tostring(release_version):gsub("%.", "%%.")
      .. "/atai%-" .. tostring(release_version):gsub("%.", "%%.") .. "%.tar%.gz$" },
}

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

for _, rock in ipairs(ROCKSPECS) do
  describe(rock.file:match("[^/]*$"), function()
    local spec = load_rockspec(rock.file)
    local modules = spec.build and spec.build.modules or {}

    it("is a rockspec 3.0 for atai " .. rock.version .. " and names its source", function()
      assert.are.equal("3.0", spec.rockspec_format)
      assert.are.equal("atai", spec.package)
      assert.are.equal(rock.version, spec.version)
      assert.is_truthy(spec.source.url:find(rock.url), spec.source.url)
      for k, v in pairs(rock.source) do assert.are.equal(v, spec.source[k]) end
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

    it("copies plugin/ and doc/ (the Neovim plugin, for rocks.nvim), man/ (man -l) and examples/", function()
      assert.are.same({ "examples", "man", "plugin", "doc" }, spec.build.copy_directories)
      assert.is_true(exists("plugin/atai.lua"))
      assert.is_true(exists("doc/atai.txt"))
    end)

    it("installs bin/atai as the atai command", function()
      assert.are.same({ atai = "bin/atai" }, spec.build.install.bin)
      assert.is_true(exists("bin/atai"))
    end)

    it("runs the busted suite as its test", function()
      assert.are.equal("command", spec.test.type)
      assert.are.equal("busted", spec.test.command)
      assert.are.same({ "busted", "luasocket", "luv" }, spec.test_dependencies)
    end)
  end)
end

describe("the release rockspec", function()
  it("is the version of atai it builds (atai.VERSION)", function()
    local atai = require("atai")
    for _, rock in ipairs(ROCKSPECS) do
      local version = rock.version:match("^(%d+%.%d+%.%d+)%-%d+$")
      if version then assert.are.equal(version, atai.VERSION, rock.file) end
    end
  end)

  it("differs from the scm rockspec only in version and source", function()
    local scm, release = load_rockspec(ROCKSPECS[1].file), load_rockspec(ROCKSPECS[2].file)
    scm.version, scm.source, release.version, release.source = nil, nil, nil, nil
    assert.are.same(scm, release)
  end)
end)

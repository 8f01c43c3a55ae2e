-- spec/support/files.lua: helpers of the upload and download specs (any Lua):
-- temporary folders and files, the fake server's request log by path, the
-- expected bytes of an output blob, and peak RSS measures.
local core = require("atai.core")
local blob = require("spec.support.fake_api.blob")
local util = require("spec.support.util")

local files = {}

local MB = 1024 * 1024

--- Size of the "big" transfers, in MiB: 200, or ATAI_TEST_BIG_MB (make
--- memcheck sets it small: valgrind would take minutes).
files.BIG_MB = tonumber(os.getenv("ATAI_TEST_BIG_MB") or "") or 200
files.MB = MB

--- A new empty folder (removed by files.remove).
function files.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(core.mkdir(dir))
  return dir
end

--- Removes a folder and everything in it.
function files.remove(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

--- Writes `text` to a file.
function files.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- The content of a file, or nil when it cannot be read.
function files.read(path)
  local ok, text = pcall(util.read_file, path)
  return ok and text or nil
end

--- The names in a folder and below it (find -mindepth 1), sorted.
function files.list(dir)
  local names = {}
  local p = assert(io.popen("cd '" .. dir .. "' && find . -mindepth 1 | LC_ALL=C sort"))
  for line in p:lines() do names[#names + 1] = line:sub(3) end
  p:close()
  return names
end

--- Writes a file of `mb` MiB whose every MiB starts with its offset in 16
--- digits (so a part's first bytes tell where it came from).
function files.make_big(path, mb)
  local f = assert(io.open(path, "wb"))
  local rest = ("x"):rep(MB - 17) .. "\n"
  for i = 0, mb - 1 do f:write(("%016d"):format(i * MB), rest) end
  f:close()
end

--- The bytes of the output blob `key` of `size` bytes (fake_api/blob.lua).
files.blob = blob.content

--- The requests of a stats log whose path starts with `prefix` (and method).
function files.requests(srv, prefix, method)
  local out = {}
  for _, r in ipairs(srv:requests()) do
    if r.path:sub(1, #prefix) == prefix and (not method or r.method == method) then out[#out + 1] = r end
  end
  return out
end

local status_kb = util.proc_status_kb

--- Runs fn() and returns its results, then how far the peak RSS of this
--- process rose above its RSS at the start, in KiB. The peak is reset
--- first (/proc/self/clear_refs), so earlier specs cannot hide a growth
--- under an older, higher peak; nil on a system without /proc.
function files.peak_growth(fn)
  collectgarbage("collect")
  local reset = io.open("/proc/self/clear_refs", "w")
  local can_reset = reset and reset:write("5") and reset:close()
  local before, peak_before = status_kb("VmRSS"), status_kb("VmHWM")
  local a, b = fn()
  local peak = status_kb("VmHWM")
  if not (before and peak) then return a, b, nil end
  -- without the reset, only a new peak above the old one can be seen
  return a, b, can_reset and (peak - before) or math.max(peak - peak_before, 0)
end

return files

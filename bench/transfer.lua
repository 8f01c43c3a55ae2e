--- bench/transfer.lua: one big transfer by atai, for the transfer measure
-- of bench/run.sh (which times the whole process, as it times curl's).
--
--   lua5.4 bench/transfer.lua download URL DEST
--   lua5.4 bench/transfer.lua upload PORT PATH
--
-- download: client:download(URL, DEST). upload: client:upload_file(PATH)
-- by the multipart flow (multipart_threshold = 1) against the API on
-- 127.0.0.1:PORT (the bench's nginx answers initiate and complete; the
-- part URLs it hands out point at static_server, which answers each PUT
-- with an ETag). Prints
--   RESULT transfer_MODE BYTES RSS_GROWTH_KIB
-- where the growth is the peak RSS (VmHWM) at the end minus the RSS just
-- before the transfer, both from /proc/self/status ("-" elsewhere); or
-- "SKIP transfer: why" on a build without download / upload_file.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local harness = dofile(dir .. "/harness.lua")

local mode, a, b = arg[1], arg[2], arg[3]
if (mode ~= "download" and mode ~= "upload") or not a or not b then
  io.stderr:write("usage: ", arg[0], " download URL DEST | upload PORT PATH\n")
  os.exit(2)
end
local name = "transfer_" .. mode
local client = harness.client(mode == "upload" and a or 1)
if not (client.download and client.upload_file) then
  io.write("SKIP transfer: this build has no client:download / client:upload_file\n")
  os.exit(0)
end

-- A field of /proc/self/status in KiB, or nil (not Linux).
local function status_kib(field)
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local status = f:read("*a")
  f:close()
  return tonumber(status:match(field .. ":%s*(%d+)"))
end

collectgarbage("collect")
local rss_before = status_kib("VmRSS")
local bytes
if mode == "download" then
  local ok, err = client:download(a, b)
  if not ok then harness.fail(name, err) end
  bytes = require("atai.core").stat(b)
else
  local res, err = client:upload_file(b, { multipart_threshold = 1 })
  if not res then harness.fail(name, err) end
  if res.route ~= "multipart" then harness.fail(name, "route " .. tostring(res.route) .. ", not multipart") end
  bytes = res.num_bytes
end
local peak = status_kib("VmHWM")
io.write(("RESULT %s %d %s\n"):format(name, bytes, (rss_before and peak) and tostring(peak - rss_before) or "-"))
os.exit(0)

-- examples/output_urls.lua: the download URL of every output of a job.
-- URLs are presigned (fetch them without the API key) and expire: list
-- again after expires_at for fresh ones.
--
-- Run it from the checkout's root after pasting the line `make fake-server`
-- prints (it points atai at the fake server and finds this checkout's atai;
-- the ids and files below are ones the fake server and the checkout have):
--
--   lua5.4 examples/output_urls.lua job_2abc3def4ghi5jkl6mno7pqr
--
-- For the real API: atai installed or `eval "$(make -s env)"`, your key in
-- ATAI_API_KEY (ATAI_API_ENDPOINT unset): output_urls.lua JOB_ID [PORT_NAME].
local atai = require("atai")

local id, port = arg[1], arg[2]
if not id then
  io.stderr:write("usage: output_urls.lua JOB_ID [PORT_NAME]\n")
  os.exit(2)
end

local count = 0
for output, err in atai.each_output(id, { port_name = port, limit = 50 }) do
  if not output then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  count = count + 1
  print(("%s\t%s\t%s\t(expires %s)"):format(output.data.filename, output.port_name, output.data.ref,
    output.expires_at or "?"))
end
print(("%d output(s)"):format(count))

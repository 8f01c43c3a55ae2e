-- spec/header_values_spec.lua: every value that becomes an HTTP header or a
-- multipart part header refuses control bytes (C0, tab included, and DEL)
-- with an argument error naming it, raised before any I/O (issue 14,
-- finding 11: opts.file_type with CR/LF injected part headers).
local atai = require("atai")
local fake_api = require("spec.support.fake")
local helpers = require("spec.support.files")

local SEED = "job_2abc3def4ghi5jkl6mno7pqr"
local BAD = { "\r\nX-Injected: yes", "\n", "\r", "\0", "\t", "\1", "\27[2J", "\127" }

-- Calls fn, which must raise; returns the message.
local function raises(fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok, "no error raised")
  return tostring(msg)
end

describe("header values", function()
  local t = fake_api({ max_retries = 0 })
  local dir

  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.remove(dir) end)

  it("finding 11: opts.file_type with CR/LF (or any control byte) is refused before any request", function()
    for _, bad in ipairs(BAD) do
      local msg = raises(function() t.client:upload_data("a.csv", "1,2\n", { file_type = "text/csv" .. bad }) end)
      assert.is_truthy(msg:find("header_values_spec.lua:%d+: bad argument #3 to 'upload_data' %(opts.file_type: "
        .. "a control byte %(C0 or DEL%) is not allowed in a header value%)"), msg)
    end
    -- the multipart flow and the async form check the same, up front
    local msg = raises(function()
      t.client:upload_data("a.csv", "1,2\n", { file_type = "text/csv\r\nX-Injected: yes", multipart_threshold = 1 })
    end)
    assert.is_truthy(msg:find("opts.file_type", 1, true), msg)
    msg = raises(function() t.client.async:upload_data("a.csv", "x", { file_type = "a\nb" }) end)
    assert.is_truthy(msg:find("bad argument #3 to 'upload_data' (opts.file_type", 1, true), msg)
    assert.are.equal(0, #t.srv:requests())
  end)

  it("finding 11: file names that go into a part header are refused with a control byte", function()
    local msg = raises(function() t.client:upload_data("a\r\nX-Injected: yes.csv", "x") end)
    assert.is_truthy(msg:find("bad argument #1 to 'upload_data' (name: a control byte", 1, true), msg)
    local path = dir .. "/evil\r\nX-Injected: yes.csv"
    helpers.write(path, "1,2\n")
    msg = raises(function() t.client:upload_file(dir, { name = "b\n.csv" }) end)
    assert.is_truthy(msg:find("bad argument #2 to 'upload_file' (opts.name: a control byte", 1, true), msg)
    msg = raises(function() t.client:upload_file(path) end)
    assert.is_truthy(msg:find("bad argument #1 to 'upload_file' (path: its file name: a control byte", 1, true), msg)
    msg = raises(function() t.client:upload_file(path, { name = "ok.csv", file_type = "text/csv\n" }) end)
    assert.is_truthy(msg:find("bad argument #2 to 'upload_file' (opts.file_type: a control byte", 1, true), msg)
    -- the same file under a clean name goes up, its type as given
    assert(t.client:upload_file(path, { name = "ok.csv", file_type = "text/csv" }))
    assert.are.equal(1, #t.srv:requests())
  end)

  it("finding 11: opts.headers values with any control byte, and a bad etag, are refused", function()
    for _, bad in ipairs(BAD) do
      local msg = raises(function() t.client:request("GET", "/batch/jobs/" .. SEED, { headers = { ["X-A"] = "v" .. bad } }) end)
      assert.is_truthy(msg:find("bad argument #3 to 'request' (opts.headers: invalid header 'X-A': its value "
        .. "holds a control byte (C0 or DEL))", 1, true), msg)
    end
    local msg = raises(function() t.client:request("GET", "/batch/jobs", { headers = { ["X\r\nY"] = "v" } }) end)
    assert.is_truthy(msg:find("opts.headers: invalid header name", 1, true), msg)
    msg = raises(function() t.client:job_input_traces(SEED, { etag = '"abc"\r\nX-Injected: yes' }) end)
    assert.is_truthy(msg:find("bad argument #2 to 'job_input_traces' (etag: a control byte", 1, true), msg)
    assert.are.equal(0, #t.srv:requests())
  end)

  it("finding 11: user_agent and api_key with a control byte are refused by atai.new and core.new_client", function()
    for _, bad in ipairs(BAD) do
      local msg = raises(function() atai.new { endpoint = t.srv.endpoint, api_key = "k", user_agent = "app" .. bad } end)
      assert.is_truthy(msg:find("user_agent", 1, true), msg)
      msg = raises(function() atai.new { endpoint = t.srv.endpoint, api_key = "k" .. bad } end)
      assert.is_truthy(msg:find("api_key", 1, true), msg)
    end
    local core = require("atai.core")
    local msg = raises(function() core.new_client { base_url = t.srv.endpoint, api_key = "k", user_agent = "a\tb" } end)
    assert.is_truthy(msg:find("user_agent: must not contain control bytes", 1, true), msg)
    assert.are.equal(0, #t.srv:requests())
  end)
end)

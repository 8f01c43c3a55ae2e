--- atai.health: :checkhealth atai. Through vim.health where it exists
-- (0.8+), else the health#report_* functions of Neovim 0.7.
--
-- Reports: atai's version; lua/atai/core.so found and built for this
-- LuaJIT (an ERROR naming `make nvim` when not); libcurl, its TLS backend,
-- HTTP/2; which lua-cjson decodes; whether a key is set (never shown) and
-- where from; the endpoint; and, with a key, one timed GET /batch/jobs?limit=1.

local M = {}
local uv = vim.uv or vim.loop

-- vim.health's functions, or 0.7's health#report_*.
local function reporter()
  local h = vim.health
  if h and h.ok then
    return { start = h.start or h.report_start, ok = h.ok or h.report_ok, info = h.info or h.report_info,
      warn = h.warn or h.report_warn, error = h.error or h.report_error }
  end
  if h and h.report_ok then
    return { start = h.report_start, ok = h.report_ok, info = h.report_info, warn = h.report_warn,
      error = h.report_error }
  end
  local function vimfn(name)
    return function(msg, advice)
      if advice then return vim.fn["health#report_" .. name](msg, advice) end
      return vim.fn["health#report_" .. name](msg)
    end
  end
  return { start = vimfn("start"), ok = vimfn("ok"), info = vimfn("info"), warn = vimfn("warn"),
    error = vimfn("error") }
end

-- How long the timed request may take before :checkhealth gives up.
local REQUEST_SECONDS = 10

local function timed_request(r, client)
  local started = uv.hrtime()
  local page, err
  local ok, h = pcall(function() return client.async:list_jobs({ limit = 1 }) end)
  if not ok then return r.error("GET /batch/jobs?limit=1 could not start: " .. tostring(h)) end
  h:on_done(function(p, e) page, err = p, e end)
  -- :checkhealth is synchronous: wait here (the loop keeps running, so
  -- atai.uv drives the request).
  local finished = vim.wait(REQUEST_SECONDS * 1000, function() return h:done() end, 10)
  local ms = (uv.hrtime() - started) / 1e6
  if not finished then
    h:cancel()
    return r.error(("GET /batch/jobs?limit=1: no answer after %d s"):format(REQUEST_SECONDS))
  end
  if page then
    r.ok(("GET /batch/jobs?limit=1 answered in %.0f ms (%s jobs in total)"):format(ms, tostring(page.total or "?")))
  else
    r.error(("GET /batch/jobs?limit=1 failed after %.0f ms: %s"):format(ms, tostring(err)),
      { "check the key and vim.g.atai.endpoint (or ATAI_API_ENDPOINT)" })
  end
end

--- Runs the checks (called by :checkhealth atai).
function M.check()
  local r = reporter()
  local an = require("atai.nvim")
  r.start("atai")
  local where = vim.api.nvim_get_runtime_file("lua/atai/core.so", true)
  local lib, err = an.load_atai()
  if not lib then
    r.error(err, { "run `make nvim` in the plugin's folder (it needs a C compiler, LuaJIT's and libcurl's headers)",
      "lazy.nvim: build = \"make nvim\"; packer: run = \"make nvim\"; vim-plug: { 'do': 'make nvim' }" })
    return
  end
  r.ok("atai " .. lib.VERSION)
  local info = lib.core.version_info()
  r.ok(("atai.core loaded (%s), built for this %s"):format(where[1] or "from package.cpath",
    jit and jit.version or _VERSION))
  r.ok(("libcurl %s, TLS: %s, HTTP/2: %s"):format(info.curl_version, info.ssl_version,
    info.http2 and "yes" or "no"))
  r.ok("JSON: " .. tostring(info.json))

  local s, serr = an.settings()
  if not s then
    r.error(serr, { "fix vim.g.atai (see :help atai-config)" })
    return
  end
  r.ok("vim.g.atai is valid")
  local source = require("atai.nvim.config").key_source(s)
  if source then
    r.ok("API key set, from " .. source)
  else
    r.warn("no API key: set ATAI_API_KEY or vim.g.atai.api_key_cmd", { "see :help atai-config" })
  end
  local endpoint = s.client.endpoint or os.getenv("ATAI_API_ENDPOINT") or require("atai.config").DEFAULT_ENDPOINT
  r.info("endpoint: " .. endpoint)
  if not source then return end
  -- the client (after api_key_cmd, when it still has to run)
  local client, failed
  an.with_client(function(c) client = c end, function() failed = true end)
  vim.wait(REQUEST_SECONDS * 1000, function() return client ~= nil or failed end, 10)
  if client then
    timed_request(r, client)
  else
    r.error(failed and "atai could not make its client (see the notification)"
      or "vim.g.atai.api_key_cmd did not finish")
  end
end

return M

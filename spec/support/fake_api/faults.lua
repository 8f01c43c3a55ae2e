--[[
  fake_api/faults.lua -- injected faults (POST /_fake/faults) and applying them.

  A fault rule: {method?, path? | path_prefix?, responses = [F...], next = 1}.
  Rules are tried in registration order; the first matching rule that still has
  responses left consumes its next F. F fields:
    status, headers, body (raw string), json (encoded as body)   custom response
    delay        seconds to wait before anything else
    close        close the connection without responding (after delay)
    close_after_bytes  announce full Content-Length, send n body bytes, close
    stall_after_bytes, stall   a streamed body (an output blob) pauses `stall` seconds
                 (default 2) after n bytes, then goes on
    no_content_length  a streamed body goes without Content-Length, ended by the close
    gzip         gzip the body when Accept-Encoding allows; logged as "gzip"
    pass         serve the normal route (delay/headers/gzip/close_after_bytes still apply)
  F without status/body/json serves the normal route too. Custom status without a body
  gets an error envelope for status >= 400 (code from the status) and "" otherwise. ]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local state = require("fake_api.state")

local error_envelope, DEFAULT_CODES = errors.envelope, errors.DEFAULT_CODES

-- The next fault response F for a request (consumed), or nil.
local function take_fault(req)
  for _, rule in ipairs(state.faults) do
    local responses = rule.responses
    local matches = rule.next <= #responses
      and (rule.method == nil or rule.method == req.method)
      and (rule.path == nil or rule.path == req.path)
      and (rule.path_prefix == nil or req.path:sub(1, #rule.path_prefix) == rule.path_prefix)
    if matches then
      rule.next = rule.next + 1
      return responses[rule.next - 1]
    end
  end
  return nil
end

-- The response a fault with status/body/json stands for.
local function custom_response(f)
  local status = math.tointeger(f.status) or 200
  local body
  if type(f.body) == "string" then
    body = f.body
  elseif f.json ~= nil then
    body = json.encode(f.json)
  elseif status >= 400 then
    body = json.encode(error_envelope({ { code = DEFAULT_CODES[status] or "error",
      message = "Injected fault: HTTP " .. status } }))
  else
    body = ""
  end
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = body }
end

-- Header names from a fault replace ours case-insensitively (one index of
-- the names, so a flood of 2,000 fault headers stays linear).
local function merge_headers(resp, extra)
  if not json.is_object(extra) then return end
  local by_lower = {}
  for existing in pairs(resp.headers) do by_lower[existing:lower()] = existing end
  for name, value in pairs(extra) do
    local lower = name:lower()
    if by_lower[lower] then resp.headers[by_lower[lower]] = nil end
    resp.headers[name] = tostring(value)
    by_lower[lower] = name
  end
end

return { take = take_fault, custom_response = custom_response, merge_headers = merge_headers }

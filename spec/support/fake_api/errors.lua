--[[
  fake_api/errors.lua -- API errors and JSON responses.

  Handlers raise errors (raise, raise_errors, not_found); guarded(fn) runs a handler
  and turns its results into a response {status, headers, body}, raised errors into
  the API's error envelope and crashes into a 500.
]]

local json = require("fake_api.json")
local util = require("fake_api.util")

local errors = {}

local ApiError = {}

-- Raise an API error carrying an envelope; `list` holds {code, message, suggestion}s,
-- or `legacy_detail` makes it the legacy {"detail": ...} body.
function errors.raise_errors(status, list, legacy_detail)
  error(setmetatable({ status = status, errors = list, detail = legacy_detail }, ApiError), 0)
end

-- Raise an API error with one {code, message, suggestion}.
function errors.raise(status, code, message, suggestion)
  errors.raise_errors(status, { { code = code, message = message, suggestion = suggestion } })
end

-- The {"errors": [...]} envelope of a list of {code, message, suggestion}.
function errors.envelope(list_in)
  local list = json.array({})
  for _, e in ipairs(list_in) do
    list[#list + 1] = json.object({
      code = e.code, message = e.message,
      suggestion = e.suggestion or json.null, error_uid = util.new_error_uid(),
    }, { "code", "message", "suggestion", "error_uid" })
  end
  return { errors = list }
end

-- The error code an injected or malformed-request error gets for its status.
errors.DEFAULT_CODES = {
  [400] = "bad_request", [401] = "unauthorized", [403] = "forbidden", [404] = "not_found",
  [408] = "request_timeout", [409] = "conflict", [413] = "payload_too_large",
  [422] = "unprocessable_entity", [429] = "rate_limit_exceeded", [500] = "internal_error",
  [502] = "bad_gateway", [503] = "service_unavailable", [504] = "gateway_timeout",
}

-- Raise a 404 for a missing job or pipeline.
function errors.not_found(what, id)
  errors.raise(404, "not_found", what .. " " .. id .. " not found",
               "Check the " .. what:lower() .. " id; list endpoints show the ids that exist.")
end

-- A response table {status, headers, body} with `body` encoded as JSON.
function errors.json_response(status, body, headers)
  headers = headers or {}
  local text = nil
  if body ~= nil then
    text = json.encode(body)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  return { status = status, headers = headers, body = text }
end

local function error_response(err)
  if err.detail then return errors.json_response(err.status, { detail = err.detail }) end
  return errors.json_response(err.status, errors.envelope(err.errors))
end

-- Run `fn(...)`, turning raised ApiErrors into envelope responses and crashes into 500s.
function errors.guarded(fn, ...)
  local ok, status, body, headers = xpcall(fn, function(e)
    if getmetatable(e) == ApiError then return e end
    return debug.traceback(tostring(e), 2)
  end, ...)
  if ok then return errors.json_response(status, body, headers) end
  if getmetatable(status) == ApiError then return error_response(status) end
  util.log_error(status)
  return error_response({ status = 500, errors = { { code = "internal_error",
    message = "Fake server crashed: " .. tostring(status):match("^[^\n]*") } } })
end

return errors

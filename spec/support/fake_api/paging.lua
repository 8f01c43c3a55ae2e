--[[
  fake_api/paging.lua -- offset/limit pages and query filters of the list endpoints.
]]

local json = require("fake_api.json")
local errors = require("fake_api.errors")
local state = require("fake_api.state")

local raise = errors.raise

local paging = {}

local DEFAULT_LIMIT, MAX_LIMIT = 10, 100

-- Non-negative integer query parameter (400 otherwise).
local function int_param(req, name, default)
  local v = req.params[name]
  if v == nil or v == "" then return default end
  local n = v:match("^%d+$") and math.tointeger(tonumber(v))
  if not n then
    raise(400, "invalid_parameter",
          "Query parameter '" .. name .. "' must be a non-negative integer, got '" .. v .. "'",
          "Pass " .. name .. " as a whole number, e.g. " .. name .. "=" .. default .. ".")
  end
  return n
end

local function page_params(req)
  local offset = int_param(req, "offset", 0)
  local limit = math.min(int_param(req, "limit", DEFAULT_LIMIT), MAX_LIMIT)
  return offset, limit
end

-- Keep items whose fields equal every non-empty query filter; `fields` maps
-- query parameter → item field.
function paging.filter_items(items, req, fields)
  local out = {}
  for _, item in ipairs(items) do
    local keep = true
    for param, field in pairs(fields) do
      local want = req.params[param]
      if want and want ~= "" and tostring(item[field]) ~= want then keep = false end
    end
    if keep then out[#out + 1] = item end
  end
  return out
end

-- Build a list envelope: optional job_id, then total/offset/limit and the named array.
-- Honours the ignore_offset and page_total_lies toggles.
function paging.page_body(req, items, name, job_id)
  local offset, limit = page_params(req)
  local start = state.config.ignore_offset and 0 or offset
  local page = json.array({})
  for i = start + 1, math.min(#items, start + limit) do page[#page + 1] = items[i] end
  local body = { total = #items + state.config.page_total_lies, offset = offset,
                 limit = limit, [name] = page }
  local order = { "total", "offset", "limit", name }
  if job_id then body.job_id = job_id; table.insert(order, 1, "job_id") end
  return json.object(body, order)
end

return paging

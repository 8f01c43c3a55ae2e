--- atai.pages: the one pagination pattern of atai.
--
-- Every list endpoint answers one page: {total, offset, limit, <items>}.
-- pages.each turns a page fetcher into an iterator over all items, fetched
-- lazily, page by page:
--
--   for job, err in atai.each_job{ status = "RUNNING" } do
--     if not job then error(err) end   -- a failed page: false, err, then the loop ends
--     print(job.id)
--   end
--
-- It stops when `total` items have been seen, on an empty page, and on a
-- page that repeats the previous one (a server that ignores `offset`),
-- which it reports as an error rather than looping forever.

local core = require("atai.core")

local pages = {}

--- Page size used by the iterators unless the filter sets `limit`.
pages.DEFAULT_LIMIT = 100

-- An item's identity for repeat detection: its id, or its input's id.
local function identity(item)
  if type(item) ~= "table" then return nil end
  if item.id ~= nil then return item.id end
  if type(item.input) == "table" then return item.input.id end
  return nil
end

local function repeated_page_error(offset)
  return core.new_error {
    kind = "decode",
    message = ("the page at offset %d repeats the previous page (does the server "
      .. "ignore offset?); iteration stopped"):format(offset),
  }
end

--- Returns an iterator over the items of every page. `fetch(query)` returns
--- a page or nil, err; `field` names the page's array; `query` is the
--- checked filter (offset = where to start, limit = page size).
function pages.each(fetch, field, query)
  local offset = query.offset or 0
  local limit = query.limit or pages.DEFAULT_LIMIT
  local items, index = {}, 0
  local previous = {} -- identities of the last page's items
  local finished = false

  -- Fetches the next page into `items`; returns false, err on failure.
  local function next_page()
    query.offset, query.limit = offset, limit
    local page, err = fetch(query)
    if not page then return false, err end
    local list = page[field]
    if type(list) ~= "table" then
      return false, core.new_error {
        kind = "decode", message = ("page has no '%s' array"):format(field),
      }
    end
    local ids, repeated = {}, #list > 0
    for _, item in ipairs(list) do
      local id = identity(item)
      if id == nil or not previous[id] then repeated = false end
      if id ~= nil then ids[id] = true end
    end
    if repeated then return false, repeated_page_error(offset) end
    previous = ids
    items, index = list, 0
    offset = offset + #list
    local total = tonumber(page.total)
    finished = #list == 0 or (total ~= nil and offset >= total)
    return true
  end

  return function()
    index = index + 1
    if index <= #items then return items[index] end
    if finished then return nil end
    local ok, err = next_page()
    if not ok then
      finished, items = true, {}
      return false, err
    end
    index = 1
    return items[1] -- nil on an empty page, which has set `finished`
  end
end

--- Drains an iterator from pages.each into a list: items, or nil, err.
function pages.collect(iterator)
  if type(iterator) ~= "function" then
    error(("bad argument #1 to 'collect' (iterator function expected, got %s)"):format(type(iterator)), 2)
  end
  local all = {}
  for item, err in iterator do
    if item == false then return nil, err end
    all[#all + 1] = item
  end
  return all
end

return pages

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
-- It stops when `total` items have been seen and on an empty page. It ends
-- with `false, err` (kind "decode") rather than loop forever on a page that
-- brings no item not seen before (a server that ignores `offset`, or cycles
-- through pages), and after `max_pages` pages. pages.collect drains an
-- iterator into a list, up to `max_items` items.
--
-- No pcall and no generic `for` over a caller's iterator here: coroutines
-- must be able to yield through every function of this file, even on 5.1.

local core = require("atai.core")

local pages = {}

--- Page size used by the iterators unless the filter sets `limit`.
pages.DEFAULT_LIMIT = 100
--- Pages one iteration fetches at most, unless the client says otherwise.
pages.DEFAULT_MAX_PAGES = 10000
--- Items pages.collect keeps at most, unless its caller says otherwise.
pages.DEFAULT_MAX_ITEMS = 1000000

-- An item's identity for repeat detection: its id, or its input's id.
local function identity(item)
  if type(item) ~= "table" then return nil end
  if item.id ~= nil then return item.id end
  if type(item.input) == "table" then return item.input.id end
  return nil
end

local function decode_error(message)
  return core.new_error { kind = "decode", message = message }
end

-- Records the identities of `list` in `seen`; returns whether any was new
-- (an item without identity counts as new: it cannot be told apart).
local function note_new(list, seen)
  local fresh = false
  for _, item in ipairs(list) do
    local id = identity(item)
    if id == nil or not seen[id] then fresh = true end
    if id ~= nil then seen[id] = true end
  end
  return fresh
end

--- Returns an iterator over the items of every page. `fetch(query)` returns
--- a page or nil, err; `field` names the page's array; `query` is the
--- checked filter (offset = where to start, limit = page size);
--- `max_pages` caps the pages fetched (default pages.DEFAULT_MAX_PAGES).
function pages.each(fetch, field, query, max_pages)
  max_pages = max_pages or pages.DEFAULT_MAX_PAGES
  local offset = query.offset or 0
  local limit = query.limit or pages.DEFAULT_LIMIT
  local items, index = {}, 0
  local seen = {} -- identities of every item so far
  local fetched = 0
  local finished = false

  -- Fetches the next page into `items`; returns false, err on failure.
  local function next_page()
    if fetched >= max_pages then
      return false, decode_error(("page cap reached: %d pages fetched and the list has not ended "
        .. "(max_pages); iteration stopped"):format(fetched))
    end
    query.offset, query.limit = offset, limit
    fetched = fetched + 1
    local page, err = fetch(query)
    if not page then return false, err end
    local list = page[field]
    if type(list) ~= "table" then return false, decode_error(("page has no '%s' array"):format(field)) end
    if #list > 0 and not note_new(list, seen) then
      return false, decode_error(("the page at offset %d brought no new item, only ones seen before "
        .. "(does the server ignore offset?); iteration stopped"):format(offset))
    end
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

--- Drains an iterator from pages.each into a list: items, or nil, err
--- (the failed page's error, or kind "too_large" beyond `max_items`,
--- default pages.DEFAULT_MAX_ITEMS).
function pages.collect(iterator, max_items)
  if type(iterator) ~= "function" then
    error(("bad argument #1 to 'collect' (iterator function expected, got %s)"):format(type(iterator)), 2)
  end
  if max_items ~= nil and not (type(max_items) == "number" and max_items >= 1
      and max_items <= 2 ^ 53 and max_items == math.floor(max_items)) then
    error(("bad argument #2 to 'collect' (max_items: integer from 1 to 2^53 expected, got %s)")
      :format(type(max_items)), 2)
  end
  max_items = max_items or pages.DEFAULT_MAX_ITEMS
  local all, n = {}, 0
  while true do
    local item, err = iterator()
    if item == nil then return all end
    if item == false then return nil, err end
    if n >= max_items then
      return nil, core.new_error { kind = "too_large", message = ("more than max_items (%.0f) items; "
        .. "pass collect a larger max_items, or loop over the iterator"):format(max_items) }
    end
    n = n + 1
    all[n] = item
  end
end

return pages

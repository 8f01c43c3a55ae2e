--- atai.cli.list: rows of human output. A row is a list of cells: a value
-- (escaped when printed), { status = S } (coloured on a terminal) or
-- { text = T, pad = N } (padded to N columns).

local atai = require("atai")
local output = require("atai.cli.output")

local escape = output.escape

local list = {}

-- The text of one cell.
local function cell_text(cell, color)
  if type(cell) ~= "table" then return escape(tostring(cell)) end
  if cell.text == nil then return output.paint(tostring(cell.status), color) end
  return escape(tostring(cell.text)) .. (" "):rep((cell.pad or 0) - output.width(escape(tostring(cell.text))))
end

--- Prints one row (nothing with --quiet or --json).
function list.row(ctx, cells)
  local texts = {}
  for i, cell in ipairs(cells) do texts[i] = cell_text(cell, ctx.color) end
  ctx.out:say(table.concat(texts, "  "))
end

--- Ends a group of rows.
function list.finish(_) end

--- Drains a list iterator, calling each(item) on every item: the items (an
--- atai.array), or nil, err.
function list.drain(iterator, each)
  local items = {}
  for item, err in iterator do
    if item == false then return nil, err end
    items[#items + 1] = item
    each(item)
  end
  return atai.array(items)
end

--- Prints every item of a list (a row each, or a JSON array at the end);
--- returns the exit code.
function list.command(ctx, iterator, cells_of, context)
  local items, err = list.drain(iterator, function(item) list.row(ctx, cells_of(item)) end)
  list.finish(ctx)
  if not items then return ctx.out:report(err, context) end
  if ctx.out.json then ctx.out:print_json(items) end
  return output.EXIT.ok
end

return list

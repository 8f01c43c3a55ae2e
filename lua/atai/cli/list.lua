--- atai.cli.list: tables of human output. On a terminal, a header and
-- aligned columns (the rows of a table are kept until it ends, to measure
-- them); elsewhere the same columns tab-separated, no header, each row
-- written at once (for pipes: cut -f, awk -F'\t'). A cell is a value
-- (escaped when printed) or { status = S } (coloured on a terminal).

local atai = require("atai")
local output = require("atai.cli.output")

local escape, width = output.escape, output.width

local list = {}

--- The columns of each kind of row.
list.JOB = { "ID", "STATUS", "PIPELINE", "PROGRESS", "FAILED", "AGE" }
list.EVENT = { "TIME", "LEVEL", "TYPE", "MESSAGE", "INPUT" }
list.INPUT = { "ID", "STATUS", "PORT", "FILE", "ERROR" }
list.OUTPUT = { "ID", "PORT", "INPUT FILE", "FILENAME", "URL" }
list.PIPELINE = { "ID", "KEY", "VERSION", "STATUS", "TYPE", "NAME" }
list.QUEUE = { "TYPE", "DEPTH" }
list.UPLOAD = { "FILE ID", "SIZE", "ROUTE" }
list.WRITE = { "ID", "STATUS", "RETRY" }
list.DELETE = { "ID", "RESULT" }

-- The escaped text of a cell, and its status when it is one.
local function cell_text(cell)
  if type(cell) == "table" then return escape(tostring(cell.status)), cell.status end
  if cell == nil or cell == atai.null then return "-" end
  return escape(tostring(cell))
end

-- The state of the table being printed in ctx (rows kept on a terminal).
local function state(ctx)
  ctx.table = ctx.table or { rows = {}, header_done = false }
  return ctx.table
end

--- Adds a row of `columns` (list.JOB, ...): printed at once when piped,
--- kept for list.finish on a terminal; nothing with --quiet or --json.
function list.row(ctx, columns, cells)
  local out = ctx.out
  if out.quiet or out.json then return end
  local texts, statuses = {}, {}
  for i = 1, #columns do texts[i], statuses[i] = cell_text(cells[i]) end
  if not out.tty.stdout then
    out:say(table.concat(texts, "\t"))
    return
  end
  local t = state(ctx)
  t.columns = columns
  t.rows[#t.rows + 1] = { texts = texts, statuses = statuses }
end

-- One aligned line: cells padded to the widths (not the last), statuses coloured.
local function aligned(texts, statuses, widths, color)
  local parts = {}
  for i, text in ipairs(texts) do
    local pad = i < #texts and (" "):rep(widths[i] - width(text)) or ""
    parts[i] = statuses[i] and output.paint(statuses[i], color, text) .. pad or text .. pad
  end
  return table.concat(parts, "  ")
end

--- Prints the rows kept on a terminal: the header (once per run), then
--- the rows, aligned (columns only grow from one call to the next:
--- job events --follow prints each poll's rows as they come).
function list.finish(ctx)
  local t = ctx.table
  if not t or #t.rows == 0 then return end
  local widths = t.widths or {}
  for i, name in ipairs(t.columns) do widths[i] = math.max(widths[i] or 0, #name) end
  for _, row in ipairs(t.rows) do
    for i, text in ipairs(row.texts) do widths[i] = math.max(widths[i], width(text)) end
  end
  if not t.header_done then ctx.out:say(aligned(t.columns, {}, widths, false)) end
  for _, row in ipairs(t.rows) do ctx.out:say(aligned(row.texts, row.statuses, widths, ctx.color)) end
  t.rows, t.header_done, t.widths = {}, true, widths
end

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
function list.command(ctx, iterator, columns, cells_of, context)
  local items, err = list.drain(iterator, function(item) list.row(ctx, columns, cells_of(item)) end)
  list.finish(ctx)
  if not items then return ctx.out:report(err, context) end
  if ctx.out.json then ctx.out:print_json(items) end
  return output.EXIT.ok
end

return list

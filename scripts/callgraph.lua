#!/usr/bin/env lua5.4
-- scripts/callgraph.lua: the calls between the C files of atai.core, static
-- functions included, and a check that they only go down the layers.
--
--   lua5.4 scripts/callgraph.lua [-v] [src/core.c]
--
-- The layer order is the order in which src/core.c (the unity build)
-- includes the other .c files: a file may use a function of a file
-- included before it, or of itself, never one included after it; core.c
-- itself is the top. Prints one line per pair of files that call each
-- other ("engine.c -> transfer.c  12"), with -v also each function that
-- is used across files, then "callgraph: ok" or, for each upward use and
-- each cycle, a line naming it, and exits 1.
-- Also fails when a function is longer than MAX_LINES lines (from its
-- opening brace to its closing one), and prints the longest.
-- A use is any mention of the function's name outside comments and strings
-- (a call, or a function pointer taken), so a callback that must go up is
-- passed down at run time by the file above, not named by the file below.

local MAX_LINES = 60
local verbose = arg[1] == "-v"
local unity = (arg[verbose and 2 or 1] or ""):match("%.c$") and arg[verbose and 2 or 1] or "src/core.c"
local dir = unity:match("^(.*)/") or "."

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The text with comments, strings, character literals and preprocessor
-- lines blanked out (newlines kept, so line counts stay right): one pass,
-- so that "/*" in a string or a quote in a comment is read for what it is.
local function strip(src)
  local out, i, n, bol = {}, 1, #src, true
  local function blank(s) return (s:gsub("[^\n]", " ")) end
  while i <= n do
    local c, two = src:sub(i, i), src:sub(i, i + 1)
    local j
    if two == "/*" then
      j = (src:find("*/", i + 2, true) or n) + 1
    elseif two == "//" then
      j = (src:find("\n", i, true) or n + 1) - 1
    elseif c == '"' or c == "'" then
      j = i + 1
      while j <= n and src:sub(j, j) ~= c do j = j + (src:sub(j, j) == "\\" and 2 or 1) end
      out[#out + 1] = c .. blank(src:sub(i + 1, j - 1)) .. c
      i, bol = j + 1, false
    elseif c == "#" and bol then
      j = i
      repeat
        local e = src:find("\n", j, true) or n + 1
        local continued = src:sub(e - 1, e - 1) == "\\"
        j = e + 1
      until not continued or j > n
      j = j - 2 -- keep the newline
    end
    if j and i <= j then
      if c ~= '"' and c ~= "'" then out[#out + 1] = blank(src:sub(i, j)) end
      if c ~= '"' and c ~= "'" then i = j + 1 end
    elseif not j then
      out[#out + 1] = c
      if c == "\n" then bol = true elseif not c:match("%s") then bol = false end
      i = i + 1
    end
  end
  return table.concat(out)
end

-- The files in layer order: those core.c includes, then core.c.
local files = {}
for name in read(unity):gmatch('\n#include "([%w_]+%.c)"') do files[#files + 1] = name end
files[#files + 1] = unity:match("([^/]+)$")
local rank = {}
for i, f in ipairs(files) do rank[f] = i end

-- Pass 1: function definitions (name -> file) and each file's bodies.
local defined, bodies, toplevel = {}, {}, {}
for _, file in ipairs(files) do
  local src = strip(read(dir .. "/" .. file))
  local list, top, depth, i, last = {}, {}, 0, 1, 1
  while true do
    local j = src:find("[{}]", i)
    if not j then break end
    if src:sub(j, j) == "{" then
      if depth == 0 then
        top[#top + 1] = src:sub(last, j - 1)
        local head = src:sub(last, j - 1)
        local name = head:match("([%a_][%w_]*)%s*%b()%s*$")
        if name and not head:match("=%s*$") and not head:match("%f[%w_]struct%s+[%w_]*%s*$") then
          list[#list + 1] = { name = name, start = j }
          defined[name] = file
        else
          list[#list + 1] = { start = j } -- an initializer or a type
        end
      end
      depth = depth + 1
    else
      depth = depth - 1
      if depth == 0 then
        local b = list[#list]
        b.body = src:sub(b.start, j)
        last = j + 1
      end
    end
    i = j + 1
  end
  top[#top + 1] = src:sub(last)
  bodies[file], toplevel[file] = list, table.concat(top, "\n")
end

-- Pass 2: uses across files.
local edges, detail, upward, offered = {}, {}, {}, {}
local function use(from_file, from_fn, text)
  for pre, id in text:gmatch("([%.>]?)%s*([%a_][%w_]*)") do
    local to = pre == "" and defined[id] -- not a field after . or ->
    if to and to ~= from_file then
      local key = from_file .. " -> " .. to
      edges[key] = (edges[key] or 0) + 1
      detail[key .. "  " .. from_fn .. " -> " .. id] = true
      offered[to] = offered[to] or {}
      offered[to][id] = true
      if rank[to] > rank[from_file] then
        upward[#upward + 1] = ("upward: %s:%s uses %s:%s"):format(from_file, from_fn, to, id)
      end
    end
  end
end
for _, file in ipairs(files) do
  for _, b in ipairs(bodies[file]) do
    use(file, b.name or "(initializer)", b.body or "")
  end
  use(file, "(file scope)", toplevel[file])
end

-- Cycles between files (depth-first search over the file graph).
local out = {}
for key in pairs(edges) do
  local a, b = key:match("^(%S+) %-> (%S+)$")
  out[a] = out[a] or {}
  out[a][#out[a] + 1] = b
end
local cycles, state, path = {}, {}, {}
local function visit(f)
  state[f] = "open"
  path[#path + 1] = f
  for _, g in ipairs(out[f] or {}) do
    if state[g] == "open" then
      local s = {}
      for k = #path, 1, -1 do
        table.insert(s, 1, path[k])
        if path[k] == g then break end
      end
      s[#s + 1] = g
      cycles[#cycles + 1] = "cycle: " .. table.concat(s, " -> ")
    elseif not state[g] then
      visit(g)
    end
  end
  path[#path] = nil
  state[f] = "done"
end
for _, f in ipairs(files) do if not state[f] then visit(f) end end

local keys = {}
for k in pairs(edges) do keys[#keys + 1] = k end
table.sort(keys, function(a, b)
  local a1, a2 = a:match("^(%S+) %-> (%S+)$")
  local b1, b2 = b:match("^(%S+) %-> (%S+)$")
  if a1 ~= b1 then return rank[a1] > rank[b1] end
  return rank[a2] > rank[b2]
end)
print("layers (bottom first): " .. table.concat(files, " "))
for _, k in ipairs(keys) do print(("%-32s %3d"):format(k, edges[k])) end
if verbose then
  local d = {}
  for k in pairs(detail) do d[#d + 1] = k end
  table.sort(d)
  for _, k in ipairs(d) do print("  " .. k) end
end
local lengths = {}
for _, file in ipairs(files) do
  for _, b in ipairs(bodies[file]) do
    if b.name and not b.body then print("unclosed: " .. file .. ":" .. b.name) end
    if b.name and b.body then
      local _, lines = b.body:gsub("\n", "")
      lengths[#lengths + 1] = { file = file, name = b.name, lines = lines + 1 }
    end
  end
end
table.sort(lengths, function(a, b) return a.lines > b.lines end)
local too_long = {}
for _, l in ipairs(lengths) do
  if l.lines > MAX_LINES then
    too_long[#too_long + 1] = ("too long: %s:%s is %d lines (at most %d)"):format(l.file, l.name, l.lines, MAX_LINES)
  end
end
print(("longest functions: %s"):format(table.concat({
  ("%s:%s %d"):format(lengths[1].file, lengths[1].name, lengths[1].lines),
  ("%s:%s %d"):format(lengths[2].file, lengths[2].name, lengths[2].lines),
  ("%s:%s %d"):format(lengths[3].file, lengths[3].name, lengths[3].lines),
}, ", ")))
-- The private header lists, under "From <file>:", each function that
-- file offers the others; the list must be exactly what is used.
local header = read(dir .. "/atai.h")
local listed, unlisted = {}, {}
for file, names in header:gmatch("%*%* From ([%w_]+%.c):(.-)\n%*%*%s*\n") do
  listed[file] = {}
  for name in names:gmatch("[%a_][%w_]*") do listed[file][name] = true end
end
for _, file in ipairs(files) do
  local want = {}
  for name in pairs(offered[file] or {}) do want[#want + 1] = name end
  table.sort(want)
  if arg[#arg] == "--offers" then print(("** From %s: %s"):format(file, table.concat(want, " "))) end
  for _, name in ipairs(want) do
    if not (listed[file] and listed[file][name]) then
      unlisted[#unlisted + 1] = ("not in atai.h: %s offers %s"):format(file, name)
    end
  end
  for name in pairs(listed[file] or {}) do
    if not (offered[file] or {})[name] then
      unlisted[#unlisted + 1] = ("in atai.h but not used by another file: %s:%s"):format(file, name)
    end
  end
end
for _, l in ipairs(unlisted) do print(l) end
for _, l in ipairs(too_long) do print(l) end
for _, l in ipairs(upward) do print(l) end
for _, l in ipairs(cycles) do print(l) end
if #upward > 0 or #cycles > 0 or #too_long > 0 or #unlisted > 0 then
  print(("callgraph: FAILED (%d upward uses, %d cycles, %d functions too long, %d offers unlisted)")
    :format(#upward, #cycles, #too_long, #unlisted))
  os.exit(1)
end
print(("callgraph: ok (%d files, %d file pairs, %d functions, no upward use, no cycle, none over %d lines)")
  :format(#files, #keys, #lengths, MAX_LINES))

--- gen_reference.lua: writes doc/reference.md, atai's API reference,
-- generated from the one source of each fact: the LuaLS annotations of
-- lua/atai/types.lua (every public function, its parameters and returns,
-- every class and field, the error kinds) and the option table
-- atai.config.OPTIONS (names, kinds, bounds, units, defaults).
--
--   lua5.4 scripts/gen_reference.lua [OUT]     (make docs; OUT: doc/reference.md, - for stdout)
--
-- Run from the repository root with atai.core on package.cpath (make docs
-- passes the build's). Nothing is listed by hand here: a new annotation or
-- option shows up at the next `make docs`. The output depends on nothing
-- but those two files (no date, no path, no table order), so `make
-- docs-check` can compare the committed file with a fresh one.
--
-- Annotations understood: `--- text` (a description, for what follows),
-- `---@class Name[: Parent] [text]` with its `---@field name[?] type [text]`
-- lines and an optional `local Var = {}` after them (methods of Var are the
-- class's), `---@alias Name type` (and `---| "value" # text` lines),
-- `---@param`, `---@return`, `---@generic`, `---@type`, `function
-- Var:name(...)`/`function Var.name(...)`, and `mod.name = Var.name
-- --[[@as type]]` (a module-level twin of a method).

local TYPES = arg[2] or "lua/atai/types.lua" -- a second argument: another annotations file (to try the parser)

package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path

local function fail(message)
  io.stderr:write("gen_reference.lua: ", message, "\n")
  os.exit(1)
end

-- ================================================================ parsing

-- The end of a type expression starting at s[i]: brackets nest, and a space
-- continues the type after ':' ',' '|' or before '|' (fun(a: T): R, A|B).
local function type_end(s, i)
  local depth, j = 0, i
  while j <= #s do
    local c = s:sub(j, j)
    if c:match("[%(<{%[]") then
      depth = depth + 1
    elseif c:match("[%)>}%]]") then
      depth = depth - 1
    elseif c:match("%s") and depth <= 0 then
      local before = s:sub(i, j - 1):match("(%S)%s*$")
      local after = s:match("^%s*(%S)", j)
      if not (before == ":" or before == "," or before == "|" or after == "|") then break end
    elseif c == '"' then
      local close = s:find('"', j + 1, true)
      if close then j = close end
    end
    j = j + 1
  end
  return j - 1
end

-- "type rest" -> type, rest (rest without its leading spaces).
local function split_type(s)
  s = s:match("^%s*(.-)%s*$")
  local e = type_end(s, 1)
  return s:sub(1, e), s:sub(e + 1)
end

-- ---@return TYPE [name] [text]: a name is one word after a single space;
-- after two spaces or more, the rest is text.
local function parse_return(s)
  local type_text, rest = split_type(s)
  local name, text = rest:match("^ ([%a_][%w_]*)%s*(.*)$")
  if not name then text = rest:match("^%s*(.-)$") end
  return { type = type_text, name = name, text = text ~= "" and text or nil }
end

local function parse_param(s)
  local name, rest = s:match("^%s*(%S+)%s+(.*)$")
  if not name then return { name = s:match("^%s*(.-)%s*$"), type = "any" } end
  local optional = name:sub(-1) == "?"
  if optional then name = name:sub(1, -2) end
  local type_text, text = split_type(rest)
  return { name = name, optional = optional, type = type_text, text = text:match("^%s*(.-)$") }
end

local parse_field = parse_param

-- The whole file as: classes (in order), aliases (in order), functions (in
-- order, each with its owner class), twins (module = Var.method).
local function parse(path)
  local f = io.open(path, "r") or fail("cannot read " .. path)
  local model = { classes = {}, class_list = {}, aliases = {}, alias_list = {}, functions = {},
    twins = {}, vars = {} }
  local pending = { text = {}, params = {}, returns = {} } -- doc lines waiting for what they document
  local class, alias -- the class or alias whose continuation lines come next
  local lineno = 0

  local function reset() pending = { text = {}, params = {}, returns = {} } end
  local function text_of(lines) return #lines > 0 and table.concat(lines, " ") or nil end

  for line in f:lines() do
    lineno = lineno + 1
    local tag, rest = line:match("^%-%-%-@(%a+)%s*(.*)$")
    if tag ~= "field" then class = (tag == nil and line:match("^local ")) and class or nil end
    if tag ~= nil or not line:match("^%-%-%-|") then alias = nil end

    if tag == "class" then
      local name, parent, text = rest:match("^([%w_%.]+)%s*:%s*([%w_%.]+)%s*(.-)%s*$")
      if not name then
        name, text = rest:match("^([%w_%.]+)%s*(.-)%s*$")
      end
      local description = text_of(pending.text)
      if text ~= "" then description = description and (description .. " " .. text) or text end
      class = { name = name, parent = parent, text = description, fields = {}, methods = {} }
      if not model.classes[name] then model.class_list[#model.class_list + 1] = name end
      model.classes[name] = class
      reset()
    elseif tag == "field" then
      if not class then fail(("%s:%d: ---@field outside a ---@class"):format(path, lineno)) end
      class.fields[#class.fields + 1] = parse_field(rest)
    elseif tag == "alias" then
      local name, type_text = rest:match("^([%w_%.]+%b<>)%s*(.-)%s*$")
      if not name then name, type_text = rest:match("^([%w_%.]+)%s*(.-)%s*$") end
      alias = { name = name, type = type_text ~= "" and type_text or nil, text = text_of(pending.text), values = {} }
      if not model.aliases[name] then model.alias_list[#model.alias_list + 1] = name end
      model.aliases[name] = alias
      reset()
    elseif line:match("^%-%-%-|") and alias then
      local value, text = line:match("^%-%-%-|%s*(%S+)%s*#?%s*(.-)%s*$")
      alias.values[#alias.values + 1] = { value = value, text = text ~= "" and text or nil }
    elseif tag == "param" then
      pending.params[#pending.params + 1] = parse_param(rest)
    elseif tag == "return" then
      pending.returns[#pending.returns + 1] = parse_return(rest)
    elseif tag == "generic" then
      pending.generic = rest
    elseif tag == "type" then
      pending.type = rest
    elseif tag then -- luacheck: ignore 542
      -- ---@meta and tags this generator does not use
    elseif line:match("^%-%-%-") and not line:match("^%-%-%-%-") then
      pending.text[#pending.text + 1] = line:match("^%-%-%-%s?(.-)%s*$")
    elseif line:match("^local%s+([%w_]+)%s*=%s*{}") then
      local var = line:match("^local%s+([%w_]+)")
      local last = model.class_list[#model.class_list]
      if last then model.vars[var] = last end
      reset()
    elseif line:match("^function%s") then
      local var, sep, name, args = line:match("^function%s+([%w_]+)([:%.])([%w_]+)%s*%((.-)%)")
      if not var then fail(("%s:%d: cannot read %q"):format(path, lineno, line)) end
      local owner = model.vars[var] or fail(("%s:%d: %s is no class's table"):format(path, lineno, var))
      local fn = { owner = owner, var = var, method = sep == ":", name = name, args = args,
        text = text_of(pending.text), params = pending.params, returns = pending.returns,
        generic = pending.generic }
      model.functions[#model.functions + 1] = fn
      table.insert(model.classes[owner].methods, fn)
      reset()
    elseif line:match("^([%w_]+)%.([%w_]+)%s*=") then
      local var, name, value = line:match("^([%w_]+)%.([%w_]+)%s*=%s*(.-)%s*$")
      local owner = model.vars[var]
      local source_var, source_name, as = value:match("^([%w_]+)%.([%w_]+)%s*%-%-%[%[@as%s+(.-)%]%]$")
      if owner and source_var then
        model.twins[#model.twins + 1] = { owner = owner, var = var, name = name,
          source = model.vars[source_var], source_name = source_name, type = as }
      elseif owner and pending.type then
        local cls = model.classes[owner]
        cls.fields[#cls.fields + 1] = { name = name, type = pending.type, text = text_of(pending.text) }
      end
      reset()
    else
      -- a blank line, a -- comment or other code: what was pending documented nothing
      reset()
    end
  end
  f:close()
  return model
end

-- ================================================================ writing

local out = {}
local function put(...)
  for i = 1, select("#", ...) do out[#out + 1] = (select(i, ...)) end
end
local function line(s) put(s or "", "\n") end

-- Inline code; in a table cell, `|` must be escaped even there.
local function code(s)
  if s == nil or s == "" then return "" end
  return "`" .. tostring(s) .. "`"
end
local function code_cell(s)
  if s == nil or s == "" then return "" end
  return "`" .. tostring(s):gsub("|", "\\|") .. "`"
end
local function cell(s) return (tostring(s or ""):gsub("|", "\\|"):gsub("\n", " ")) end

-- A number as people write it: 86400, 0.001, 4503599627370496.
local function number_text(n)
  if n == math.floor(n) and math.abs(n) < 2 ^ 63 then return ("%.0f"):format(n) end
  return ("%.14g"):format(n)
end

local function value_text(v, unit)
  if v == nil then return "" end
  if type(v) == "number" then
    local text = number_text(v)
    if unit == "bytes" and v >= 1024 * 1024 and v % (1024 * 1024) == 0 then
      text = text .. (" (%s MiB)"):format(number_text(v / (1024 * 1024)))
    end
    return text
  end
  if type(v) == "string" then return ("%q"):format(v) end
  return type(v)
end

-- The heading text of a function: atai.new(opts), client:get_job(id, opts).
local function signature(fn, receiver)
  return ("%s%s%s(%s)"):format(receiver, fn.method and ":" or ".", fn.name, fn.args)
end

local function write_function(fn, receiver)
  line("### " .. signature(fn, receiver))
  line()
  if fn.text then
    line(fn.text)
    line()
  end
  if fn.generic then
    line("Generic over " .. code(fn.generic) .. ".")
    line()
  end
  if #fn.params > 0 then
    line("| Parameter | Type | |")
    line("|---|---|---|")
    for _, p in ipairs(fn.params) do
      line(("| %s%s | %s | %s |"):format(code_cell(p.name), p.optional and " (optional)" or "", code_cell(p.type),
        cell(p.text)))
    end
    line()
  end
  if #fn.returns > 0 then
    local parts = {}
    for _, r in ipairs(fn.returns) do
      local part = code(r.type)
      if r.name then part = part .. " " .. r.name end
      if r.text then part = part .. " (" .. r.text .. ")" end
      parts[#parts + 1] = part
    end
    line("Returns " .. table.concat(parts, ", ") .. ".")
    line()
  end
end

local function write_fields(cls)
  if #cls.fields == 0 then return end
  line("| Field | Type | |")
  line("|---|---|---|")
  for _, fld in ipairs(cls.fields) do
    line(("| %s%s | %s | %s |"):format(code_cell(fld.name), fld.optional and " (optional)" or "", code_cell(fld.type),
      cell(fld.text)))
  end
  line()
end

-- The receiver shown for a class's methods: the module's own name for a
-- module (atai.new), a lowercase word for an object (client:get_job).
local function receiver_of(class_name, is_module)
  if is_module then return class_name end
  local short = class_name:match("([%w_]+)$")
  return short:sub(1, 1):lower() .. short:sub(2)
end

-- Strings of an alias: "a"|"b"|... or the ---| lines.
local function alias_values(alias)
  local values = {}
  for _, v in ipairs(alias.values) do
    values[#values + 1] = { value = v.value:gsub('^"(.*)"$', "%1"), text = v.text }
  end
  if alias.type then
    for s in alias.type:gmatch('"([^"]*)"') do values[#values + 1] = { value = s } end
  end
  return values
end

local function generate(model, options)
  -- Modules: classes whose table also carries functions called with a dot
  -- (atai, atai.uv); objects: classes with methods called with a colon.
  local modules, objects, plain = {}, {}, {}
  for _, name in ipairs(model.class_list) do
    local cls = model.classes[name]
    local dotted = false
    for _, fn in ipairs(cls.methods) do if not fn.method then dotted = true end end
    if #cls.methods > 0 and dotted then modules[#modules + 1] = cls
    elseif #cls.methods > 0 then objects[#objects + 1] = cls
    else plain[#plain + 1] = cls end
  end
  local twins_of = {}
  for _, t in ipairs(model.twins) do
    twins_of[t.owner] = twins_of[t.owner] or {}
    table.insert(twins_of[t.owner], t)
  end

  line("# atai reference")
  line()
  line("<!-- Generated by `make docs` (scripts/gen_reference.lua) from lua/atai/types.lua")
  line("     and atai.config.OPTIONS. Do not edit: change those and run `make docs`;")
  line("     `make docs-check` fails while this file differs from a fresh generation. -->")
  line()
  line("Every public function, option, error kind and field of atai, generated from")
  line("the LuaLS annotations of `lua/atai/types.lua` (which editors read too) and")
  line("the option table `atai.config.OPTIONS` (which `atai.new` checks against).")
  line("Failures come back as `nil, err` with `err` an `atai.Error`; wrong argument")
  line("types or values raise.")
  line()
  line("- Modules: " .. (function()
    local t = {}
    for _, cls in ipairs(modules) do t[#t + 1] = code(cls.name) end
    return table.concat(t, ", ")
  end)())
  line("- Objects: " .. (function()
    local t = {}
    for _, cls in ipairs(objects) do t[#t + 1] = code(cls.name) end
    return table.concat(t, ", ")
  end)())
  line("- [Options](#options), [Error kinds](#error-kinds), [Types](#types)")
  line()

  local function write_class_section(cls, is_module)
    line("## " .. cls.name)
    line()
    if cls.text then
      line(cls.text)
      line()
    end
    write_fields(cls)
    local receiver = receiver_of(cls.name, is_module)
    for _, fn in ipairs(cls.methods) do write_function(fn, receiver) end
    local twins = twins_of[cls.name]
    if twins then
      line(("### Default-client functions of %s"):format(cls.name))
      line()
      line(("Each calls the method of the same name on the default client (%s with the")
        :format(code(cls.name .. ".default_client()")))
      line("options of `atai.configure`, or the environment): same arguments but the receiver, same results.")
      line()
      line("| Function | Type |")
      line("|---|---|")
      for _, t in ipairs(twins) do
        line(("| %s | %s |"):format(code_cell(cls.name .. "." .. t.name), code_cell(t.type)))
      end
      line()
    end
  end

  for _, cls in ipairs(modules) do write_class_section(cls, true) end
  for _, cls in ipairs(objects) do write_class_section(cls, false) end

  -- Options: the order of atai.Options' fields, then any other option by name.
  line("## Options")
  line()
  line("What `atai.new(opts)` and `atai.configure(opts)` accept (`atai.config.OPTIONS`).")
  line("A value outside its kind or bounds raises, naming the option. Bounds are inclusive.")
  line()
  line("| Option | Accepts | Default | |")
  line("|---|---|---|---|")
  local documented, order = {}, {}
  local options_class = model.classes["atai.Options"]
  for _, fld in ipairs(options_class and options_class.fields or {}) do documented[fld.name] = fld end
  for _, fld in ipairs(options_class and options_class.fields or {}) do
    if options[fld.name] then order[#order + 1] = fld.name end
  end
  local rest = {}
  for name in pairs(options) do if not documented[name] then rest[#rest + 1] = name end end
  table.sort(rest)
  for _, name in ipairs(rest) do order[#order + 1] = name end
  for _, name in ipairs(order) do
    local o, fld = options[name], documented[name] or {}
    local accepts = o.description or o.kind
    line(("| %s | %s | %s | %s |"):format(code_cell(name), cell(accepts), cell(value_text(o.default, o.unit)),
      cell(fld.text)))
  end
  local missing = {}
  for _, fld in ipairs(options_class and options_class.fields or {}) do
    if not options[fld.name] then missing[#missing + 1] = fld.name end
  end
  if #missing > 0 then
    fail("atai.Options fields that are not in atai.config.OPTIONS: " .. table.concat(missing, ", "))
  end
  line()

  line("## Error kinds")
  line()
  local kinds = model.aliases["atai.ErrorKind"]
  if not kinds then fail("no ---@alias atai.ErrorKind in " .. TYPES) end
  if kinds.text then
    line(kinds.text)
    line()
  end
  line("`err.kind` of an `atai.Error` (its fields: [atai.Error](#ataierror)) is one of:")
  line()
  for _, v in ipairs(alias_values(kinds)) do
    line("- " .. code(v.value) .. (v.text and (": " .. v.text) or ""))
  end
  line()

  line("## Types")
  line()
  line("The shapes of what atai takes and returns.")
  line()
  for _, name in ipairs(model.alias_list) do
    local alias = model.aliases[name]
    line("### " .. name)
    line()
    if alias.text then
      line(alias.text)
      line()
    end
    if alias.type then line("Alias of " .. code(alias.type) .. ".") end
    for _, v in ipairs(alias.values) do line("- " .. code(v.value) .. (v.text and (": " .. v.text) or "")) end
    line()
  end
  for _, cls in ipairs(plain) do
    line("### " .. cls.name)
    line()
    if cls.parent then
      line("Extends " .. code(cls.parent) .. ".")
      line()
    end
    if cls.text then
      line(cls.text)
      line()
    end
    write_fields(cls)
  end
  -- One trailing newline, no trailing blank line.
  local text = table.concat(out):gsub("\n+$", "\n")
  return text
end

-- ================================================================ main

local target = arg[1] or "doc/reference.md"
local model = parse(TYPES)
local ok, config = pcall(require, "atai.config")
if not ok then fail("cannot load atai.config (is atai.core built and on LUA_CPATH?): " .. tostring(config)) end
local text = generate(model, config.OPTIONS)

-- A function of the atai module without an annotation would be missing
-- from the reference: say so (types.lua is where it must be added).
local loaded, atai = pcall(require, "atai")
if loaded and not arg[2] then
  local documented = {}
  for _, fn in ipairs(model.functions) do if fn.owner == "atai" then documented[fn.name] = true end end
  for _, t in ipairs(model.twins) do if t.owner == "atai" then documented[t.name] = true end end
  local missing = {}
  for name, value in pairs(atai) do
    if type(value) == "function" and not name:match("^_") and not documented[name] then missing[#missing + 1] = name end
  end
  table.sort(missing)
  for _, name in ipairs(missing) do
    io.stderr:write("gen_reference.lua: warning: atai.", name, " has no annotation in ", TYPES, "\n")
  end
end
if target == "-" then
  io.write(text)
else
  local f = io.open(target, "wb") or fail("cannot write " .. target)
  f:write(text)
  f:close()
end

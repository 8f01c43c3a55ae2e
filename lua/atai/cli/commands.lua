--- atai.cli.commands: the registry of every command, built from the
-- command modules (each declares its commands, their flags and help) and
-- the global flags of atai.cli.args. Help, the man page and the shell
-- completions are all generated from this one table.

local args = require("atai.cli.args")

local registry = {}

--- The command modules, in the order help lists them.
registry.MODULES = { "atai.cli.job", "atai.cli.files", "atai.cli.pipeline", "atai.cli.meta" }

registry.groups = {}   -- the modules' tables; a named group ("job") has subcommands
registry.list = {}     -- every command, in help order
registry.by_name = {}  -- "job get" -> command
registry.flags = {}    -- flag name -> spec, global and per-command
registry.short = {}    -- one letter -> flag spec
registry.top = {}      -- the first words: "job", "files", "pipelines", ...

-- Adds a flag to the union of all flags: one name means one thing (a
-- value or a switch, read one way), whichever command declares it.
local function add_flag(spec)
  args.flag(spec)
  local known = registry.flags[spec.name]
  if known then
    assert(known.arg == spec.arg, "flag --" .. spec.name .. " declared two ways")
    return
  end
  registry.flags[spec.name] = spec
  if spec.short then registry.short[spec.short] = spec end
end

for _, spec in ipairs(args.GLOBAL) do add_flag(spec) end

for _, module in ipairs(registry.MODULES) do
  local group = require(module)
  registry.groups[#registry.groups + 1] = group
  if group.name then registry.top[#registry.top + 1] = group.name end
  for _, c in ipairs(group.commands) do
    c.group = group.name and group or nil
    c.full = group.name and (group.name .. " " .. c.name) or c.name
    c.min = c.min or 0
    c.flags = c.flags or {}
    c.flag_set = {}
    for _, spec in ipairs(c.flags) do
      add_flag(spec)
      c.flag_set[spec.name] = true
    end
    if not group.name then registry.top[#registry.top + 1] = c.name end
    registry.list[#registry.list + 1] = c
    registry.by_name[c.full] = c
  end
end

--- The named group ("job", "files"), or nil.
function registry.group(name)
  for _, group in ipairs(registry.groups) do
    if group.name and group.name == name then return group end
  end
  return nil
end

--- The subcommand names of a group.
function registry.names(group)
  local names = {}
  for i, c in ipairs(group.commands) do names[i] = c.name end
  return names
end

--- The usage line of a command after "atai ": its words, arguments and flags.
function registry.usage(c)
  if c.usage then return c.full .. " " .. c.usage end
  local parts = { c.full }
  if c.args ~= "" then parts[#parts + 1] = c.args end
  for _, spec in ipairs(c.flags) do
    parts[#parts + 1] = "[--" .. spec.name .. (spec.arg and (" " .. spec.arg) or "") .. "]"
  end
  return table.concat(parts, " ")
end

--- Whether flag `name` applies to command c.
function registry.applies(name, c)
  for _, spec in ipairs(args.GLOBAL) do
    if spec.name == name then return true end
  end
  return c.flag_set[name] == true
end

return registry

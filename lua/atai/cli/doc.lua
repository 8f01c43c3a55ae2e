--- atai.cli.doc: the man page and the shell completions, generated from
-- the registry (atai.cli.commands) that help is made from, so the three
-- never disagree. `make man` writes man/atai.1 from doc.man.

local args = require("atai.cli.args")

local doc = {}

-- ------------------------------------------------------------ man page

-- Text safe in roff: backslashes, hyphens (so copy and paste gives '-')
-- and a leading '.' or "'" (which would be a request).
local function roff(text)
  text = tostring(text):gsub("\\", "\\e"):gsub("%-", "\\-")
  return (text:gsub("^([.'])", "\\&%1"))
end

local function flag_synopsis(spec)
  local short = spec.short and ("\\fB\\-" .. spec.short .. "\\fR, ") or ""
  local value = spec.arg and (" \\fI" .. roff(spec.arg) .. "\\fR") or ""
  return short .. "\\fB\\-\\-" .. roff(spec.name) .. "\\fR" .. value
end

local function flag_items(lines, flags)
  for _, spec in ipairs(flags) do
    lines[#lines + 1] = ".TP"
    lines[#lines + 1] = flag_synopsis(spec)
    lines[#lines + 1] = roff(spec.help)
  end
end

local ENVIRONMENT = {
  { "ATAI_API_KEY", "the API key (when --api-key is not given)" },
  { "ATAI_API_KEY_FILE", "a file holding the API key, read when ATAI_API_KEY is not set "
    .. "(an unreadable or empty file exits 4)" },
  { "ATAI_API_ENDPOINT", "the API endpoint (default: Archetype AI's)" },
  { "NO_COLOR", "when set and not empty, no colours" },
}

--- The man page atai(1), in roff.
function doc.man(registry, meta, version)
  local lines = {
    ('.TH ATAI 1 "" "atai %s" "User Commands"'):format(roff(version)),
    ".SH NAME", "atai \\- the command line of atai, the client for Archetype AI's Batch API",
    ".SH SYNOPSIS", "\\fBatai\\fR \\fICOMMAND\\fR [\\fIARGS\\fR] [\\fIFLAGS\\fR]",
    ".SH DESCRIPTION",
    "Every command is one or two calls of the atai Lua library: same configuration, retries and errors.",
    "Flags may stand before or after the command words.",
    "Human output is a table: aligned with a header on a terminal, tab\\-separated without a header",
    "when piped; server text is shown with control bytes as \\e\\fBx\\fRNN.",
    "\\fB\\-\\-json\\fR prints one JSON document (indented on a terminal).",
    ".SH COMMANDS",
  }
  for _, c in ipairs(registry.list) do
    lines[#lines + 1] = ".TP"
    lines[#lines + 1] = "\\fBatai " .. roff(c.full) .. "\\fR" .. (registry.usage(c):sub(#c.full + 1) ~= ""
      and (" " .. roff(registry.usage(c):sub(#c.full + 2))) or "")
    lines[#lines + 1] = roff(c.summary) .. "."
    if #c.flags > 0 then
      lines[#lines + 1] = ".RS"
      flag_items(lines, c.flags)
      lines[#lines + 1] = ".RE"
    end
  end
  lines[#lines + 1] = ".SH GLOBAL FLAGS"
  flag_items(lines, args.GLOBAL)
  lines[#lines + 1] = ".PP"
  lines[#lines + 1] = "\\fIDURATION\\fR: seconds (90, 1.5) or with ms, s, m or h (500ms, 1.5s, 30m)."
  lines[#lines + 1] = ".SH ENVIRONMENT"
  for _, e in ipairs(ENVIRONMENT) do
    lines[#lines + 1] = ".TP"
    lines[#lines + 1] = "\\fB" .. roff(e[1]) .. "\\fR"
    lines[#lines + 1] = roff(e[2])
  end
  lines[#lines + 1] = ".SH EXIT STATUS"
  lines[#lines + 1] = ".nf"
  for line in meta.EXIT_CODES_HELP:gmatch("[^\n]+") do
    if not line:find("^Exit codes:") then lines[#lines + 1] = roff(line) end
  end
  lines[#lines + 1] = ".fi"
  lines[#lines + 1] = ".SH EXAMPLES"
  for _, group in ipairs(registry.groups) do
    for _, e in ipairs(group.examples or {}) do
      lines[#lines + 1] = ".TP"
      lines[#lines + 1] = "\\fB" .. roff(e[1]) .. "\\fR"
      lines[#lines + 1] = roff(e[2])
    end
  end
  lines[#lines + 1] = ".SH SEE ALSO"
  lines[#lines + 1] = "\\fBatai help\\fR \\fICOMMAND\\fR;"
  lines[#lines + 1] = "\\fBatai completion\\fR \\fIbash\\fR|\\fIzsh\\fR|\\fIfish\\fR;"
  lines[#lines + 1] = "the README of atai and its guides in doc/ (the Lua API)."
  return table.concat(lines, "\n") .. "\n"
end

-- ------------------------------------------------------------ completions

-- The commands whose arguments are job ids, the flags that take a value,
-- and what a flag's value completes to.
local function facts(registry)
  local f = { id_commands = {}, value_flags = {}, values = {}, dirs = {}, files = {} }
  for _, c in ipairs(registry.list) do
    if c.ids then f.id_commands[#f.id_commands + 1] = c.full end
  end
  local names = {}
  for name in pairs(registry.flags) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local spec = registry.flags[name]
    if spec.arg then
      f.value_flags[#f.value_flags + 1] = "--" .. name
      if spec.short then f.value_flags[#f.value_flags + 1] = "-" .. spec.short end
      if spec.values then f.values[#f.values + 1] = spec end
      if spec.complete == "dir" then f.dirs[#f.dirs + 1] = spec end
      if spec.complete == "file" then f.files[#f.files + 1] = spec end
    end
  end
  return f
end

-- The flags a command takes (its own, then the global ones), as words.
local function flag_words(c)
  local words = {}
  for _, spec in ipairs(c.flags) do words[#words + 1] = "--" .. spec.name end
  for _, spec in ipairs(args.GLOBAL) do words[#words + 1] = "--" .. spec.name end
  return table.concat(words, " ")
end

local function flag_patterns(specs)
  local patterns = {}
  for _, spec in ipairs(specs) do
    patterns[#patterns + 1] = "--" .. spec.name
    if spec.short then patterns[#patterns + 1] = "-" .. spec.short end
  end
  return table.concat(patterns, "|")
end

-- The job ids to offer: the newest jobs, when a key is at hand (cheap: one
-- page, a short timeout, no retry).
local IDS_COMMAND = '"${COMP_WORDS[0]}" job list --limit 50 --request-timeout 3s --retries 0 2>/dev/null | cut -f1'

--- The bash script (zsh runs it through bashcompinit).
function doc.bash(registry)
  local f = facts(registry)
  local lines = {
    "# atai completion for bash: source <(atai completion bash)",
    "_atai() {",
    "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
    "  local -a words=()",
    "  local i skip=0",
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    "    if ((skip)); then skip=0; continue; fi",
    "    case ${COMP_WORDS[i]} in",
    "      " .. table.concat(f.value_flags, "|") .. ") skip=1 ;;",
    "      -*) ;;",
    "      *) words+=(\"${COMP_WORDS[i]}\") ;;",
    "    esac",
    "  done",
    "  case $prev in",
  }
  for _, spec in ipairs(f.values) do
    lines[#lines + 1] = ("    %s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return ;;")
      :format(flag_patterns({ spec }), table.concat(spec.values, " "))
  end
  if #f.dirs > 0 then
    lines[#lines + 1] = ("    %s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;"):format(flag_patterns(f.dirs))
  end
  if #f.files > 0 then
    lines[#lines + 1] = ("    %s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;"):format(flag_patterns(f.files))
  end
  lines[#lines + 1] = "    " .. table.concat(f.value_flags, "|") .. ") COMPREPLY=(); return ;;"
  lines[#lines + 1] = "  esac"
  lines[#lines + 1] = "  if ((${#words[@]} == 0)); then"
  lines[#lines + 1] = ("    COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return"):format(table.concat(registry.top, " "))
  lines[#lines + 1] = "  fi"
  lines[#lines + 1] = "  local command=${words[0]}"
  lines[#lines + 1] = "  case $command in"
  for _, group in ipairs(registry.groups) do
    if group.name then
      lines[#lines + 1] = ("    %s) if ((${#words[@]} == 1)); then"
        .. " COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return; fi; command=\"%s ${words[1]}\" ;;")
        :format(group.name, table.concat(registry.names(group), " "), group.name)
    end
  end
  lines[#lines + 1] = "  esac"
  lines[#lines + 1] = "  local flags="
  lines[#lines + 1] = "  case $command in"
  for _, c in ipairs(registry.list) do
    lines[#lines + 1] = ("    '%s') flags='%s' ;;"):format(c.full, flag_words(c))
  end
  lines[#lines + 1] = "  esac"
  lines[#lines + 1] = "  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\")); return; fi"
  lines[#lines + 1] = "  case $command in"
  lines[#lines + 1] = ("    '%s') COMPREPLY=($(compgen -W \"$(%s)\" -- \"$cur\")) ;;"):format(
    table.concat(f.id_commands, "'|'"), IDS_COMMAND)
  lines[#lines + 1] = "    'files upload') COMPREPLY=($(compgen -f -- \"$cur\")) ;;"
  lines[#lines + 1] = "    'completion') COMPREPLY=($(compgen -W 'bash zsh fish' -- \"$cur\")) ;;"
  lines[#lines + 1] = ("    'help') COMPREPLY=($(compgen -W '%s exit-codes' -- \"$cur\")) ;;")
    :format(table.concat(registry.top, " "))
  lines[#lines + 1] = "    *) COMPREPLY=() ;;"
  lines[#lines + 1] = "  esac"
  lines[#lines + 1] = "}"
  lines[#lines + 1] = "complete -F _atai atai"
  return table.concat(lines, "\n") .. "\n"
end

--- The zsh script: zsh's bashcompinit runs the bash one.
function doc.zsh(registry)
  return "# atai completion for zsh: source <(atai completion zsh)\n"
    .. "autoload -U +X compinit && { (( ${+_comps} )) || compinit; }\n"
    .. "autoload -U +X bashcompinit && bashcompinit\n"
    .. doc.bash(registry):gsub("^[^\n]*\n", "")
end

local function fish_quote(text) return "'" .. tostring(text):gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end

-- One fish line for a flag spec under `condition`.
local function fish_flag(spec, condition)
  local parts = { "complete -c atai" }
  if condition then parts[#parts + 1] = "-n " .. fish_quote(condition) end
  parts[#parts + 1] = "-l " .. spec.name
  if spec.short then parts[#parts + 1] = "-s " .. spec.short end
  if spec.arg then
    parts[#parts + 1] = spec.complete and "-r" or "-x"
    if spec.values then parts[#parts + 1] = "-a " .. fish_quote(table.concat(spec.values, " ")) end
    if spec.complete == "dir" then parts[#parts + 1] = "-a '(__fish_complete_directories)'" end
  end
  parts[#parts + 1] = "-d " .. fish_quote(spec.help)
  return table.concat(parts, " ")
end

local FISH_IDS = "(atai job list --limit 50 --request-timeout 3s --retries 0 2>/dev/null | string split -f1 \\t)"

--- The fish script.
function doc.fish(registry)
  local lines = { "# atai completion for fish: atai completion fish | source", "complete -c atai -f" }
  for _, spec in ipairs(args.GLOBAL) do lines[#lines + 1] = fish_flag(spec) end
  for _, group in ipairs(registry.groups) do
    if group.name then
      lines[#lines + 1] = ("complete -c atai -n __fish_use_subcommand -a %s -d %s"):format(group.name,
        fish_quote(group.summary))
      local names = table.concat(registry.names(group), " ")
      for _, c in ipairs(group.commands) do
        local inside = ("__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s")
          :format(group.name, names)
        lines[#lines + 1] = ("complete -c atai -n %s -a %s -d %s")
          :format(fish_quote(inside), c.name, fish_quote(c.summary))
        local chosen = ("__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s"):format(group.name, c.name)
        for _, spec in ipairs(c.flags) do lines[#lines + 1] = fish_flag(spec, chosen) end
        if c.ids then
          lines[#lines + 1] = ("complete -c atai -n %s -a %s"):format(fish_quote(chosen),
            fish_quote(FISH_IDS))
        end
        if c.complete_args == "file" then
          lines[#lines + 1] = ("complete -c atai -n %s -F"):format(fish_quote(chosen))
        end
      end
    else
      for _, c in ipairs(group.commands) do
        lines[#lines + 1] = ("complete -c atai -n __fish_use_subcommand -a %s -d %s")
          :format(c.name, fish_quote(c.summary))
        for _, spec in ipairs(c.flags) do
          lines[#lines + 1] = fish_flag(spec, "__fish_seen_subcommand_from " .. c.name)
        end
      end
    end
  end
  lines[#lines + 1] = "complete -c atai -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'"
  return table.concat(lines, "\n") .. "\n"
end

doc.SHELLS = { "bash", "zsh", "fish" }

return doc

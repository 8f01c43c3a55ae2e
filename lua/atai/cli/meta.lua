--- atai.cli.meta: the commands about atai itself: version, help (every
-- text generated from the registry, atai.cli.commands) and completion.

local atai = require("atai")
local args = require("atai.cli.args")
local output = require("atai.cli.output")

local EXIT = output.EXIT

local meta = {}

meta.EXIT_CODES_HELP = [[
Exit codes:
  0    success (get, wait: every job COMPLETED; get without --exit-status: any status)
  1    runtime error: network, server, decode, and other kinds (config, conflict,
       invalid_request, rate_limited, too_large, timeout of a download, ...);
       also a failed write to standard output (a full disk, /dev/full)
  2    usage error: bad command, flag, value or id
  3    a job FAILED
  4    authentication or permission error (also: no API key, an unreadable
       or empty $ATAI_API_KEY_FILE)
  5    not found
  6    a job was CANCELLED
  7    job wait timed out
  8    a job is still running (job get --exit-status)
  130  interrupted (Ctrl-C)
  141  standard output closed by its reader (a pipe into head): stops at once, silently
With several jobs the most severe wins, in this order: 141, 130, 2, 4, 1, 5, 3, 6, 7, 8, 0
(one job FAILED and another timed out: 3).]]

-- Where require found a module (Lua 5.2+), for `version --verbose`.
local function module_file(name, path)
  return package.searchpath and package.searchpath(name, path) or "?"
end

local function version(ctx)
  local out = ctx.out
  local info = atai.core.version_info()
  local lua = (rawget(_G, "jit") and jit.version) or _VERSION
  local doc = { atai = atai.VERSION, libcurl = info.curl_version, lua = lua, tls = info.ssl_version,
    http2 = info.http2 == true }
  if out.json then
    out:print_json(doc)
    return EXIT.ok
  end
  out:say("atai " .. doc.atai)
  out:say(("libcurl %s (TLS: %s, HTTP/2: %s)"):format(doc.libcurl, doc.tls, doc.http2 and "yes" or "no"))
  out:say(lua)
  if ctx.flags.verbose then
    out:say("atai from " .. output.escape(module_file("atai", package.path)))
    out:say("atai.core from " .. output.escape(module_file("atai.core", package.cpath)))
  end
  return EXIT.ok
end

-- ------------------------------------------------------------ help texts

local function flag_left(spec)
  local short = spec.short and ("-" .. spec.short .. ", ") or ""
  return short .. "--" .. spec.name .. (spec.arg and (" " .. spec.arg) or "")
end

local function flag_help(spec)
  return ("  %-28s %s"):format(flag_left(spec), spec.help)
end

local function examples(lines, group)
  if not group.examples or #group.examples == 0 then return end
  lines[#lines + 1] = "\nEXAMPLES"
  for _, e in ipairs(group.examples) do
    lines[#lines + 1] = "  " .. e[1]
    lines[#lines + 1] = "      " .. e[2]
  end
end

--- The overview: every command, the global flags.
function meta.overview(registry)
  local lines = { "atai: the command line of atai, the client for Archetype AI's Batch API.", "",
    "Usage: atai COMMAND [ARGS] [FLAGS]", "", "Commands:" }
  for _, c in ipairs(registry.list) do lines[#lines + 1] = ("  %-12s %s"):format(c.full, c.summary) end
  lines[#lines + 1] = "\nGlobal flags (before or after the command words):"
  for _, spec in ipairs(args.GLOBAL) do lines[#lines + 1] = flag_help(spec) end
  lines[#lines + 1] = "\nDURATION: seconds (90, 1.5) or with ms, s, m or h (500ms, 1.5s, 30m)."
  lines[#lines + 1] = "'atai help COMMAND' shows a command's flags; 'atai help exit-codes' the exit codes."
  return table.concat(lines, "\n")
end

--- The help of a group: its subcommands and examples.
function meta.group_help(group)
  local lines = { ("Usage: atai %s SUBCOMMAND [ARGS] [FLAGS]"):format(group.name), "", group.summary .. ".", "",
    "Subcommands:" }
  for _, c in ipairs(group.commands) do lines[#lines + 1] = ("  %-10s %s"):format(c.name, c.summary) end
  examples(lines, group)
  lines[#lines + 1] = ("\n'atai help %s SUBCOMMAND' shows its flags; 'atai help' the global flags."):format(group.name)
  return table.concat(lines, "\n")
end

--- The help of one command: usage, summary, its own flags.
function meta.command_help(registry, c)
  local lines = { "Usage: atai " .. registry.usage(c), "", c.summary .. "." }
  if #c.flags > 0 then
    lines[#lines + 1] = "\nFlags:"
    for _, spec in ipairs(c.flags) do lines[#lines + 1] = flag_help(spec) end
  end
  lines[#lines + 1] = "\nGlobal flags: see 'atai help'."
  return table.concat(lines, "\n")
end

-- atai help [COMMAND | GROUP | exit-codes]
local function help(ctx)
  local registry, topic = ctx.registry, table.concat(ctx.args, " ")
  local text
  if topic == "" then
    text = meta.overview(registry)
  elseif topic == "exit-codes" then
    text = meta.EXIT_CODES_HELP
  elseif registry.group(topic) then
    text = meta.group_help(registry.group(topic))
  elseif registry.by_name[topic] then
    text = meta.command_help(registry, registry.by_name[topic])
  else
    args.usage(("no help for '%s'"):format(topic), "help")
  end
  ctx.out:write("stdout", text, "\n")
  return EXIT.ok
end

local SHELLS = { bash = true, zsh = true, fish = true }

-- atai completion bash|zsh|fish: the script to source.
local function completion(ctx)
  local shell = ctx.args[1]
  local doc = require("atai.cli.doc")
  if not SHELLS[shell] then
    args.usage(("completion: unknown shell '%s' (bash, zsh or fish)"):format(shell), "completion")
  end
  ctx.out:write("stdout", doc[shell](ctx.registry))
  return EXIT.ok
end

--- The man page atai(1) (make man writes it to man/atai.1).
function meta.man()
  return require("atai.cli.doc").man(require("atai.cli.commands"), meta, atai.VERSION)
end

return {
  summary = "about atai itself",
  examples = {
    { "source <(atai completion bash)", "Tab completion in the running bash" },
  },
  commands = {
    { name = "version", args = "", max = 0, local_ = true, run = version,
      summary = "print the versions of atai, libcurl, Lua and the TLS library" },
    { name = "help", args = "[COMMAND | exit-codes]", max = 2, local_ = true, run = help, summary = "show help" },
    { name = "completion", args = "bash|zsh|fish", min = 1, max = 1, local_ = true, run = completion,
      summary = "print a shell completion script: source <(atai completion bash)" },
  },
  meta = meta,
}

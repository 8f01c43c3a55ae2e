--- atai.cli: the command line of atai (bin/atai is a few lines around it).
--
--   local code = require("atai.cli").run(argv[, io])
--
-- runs one command line and returns its exit code (doc/cli.md,
-- "The command line"); it never calls os.exit, so tests and other programs can run it
-- in-process. `io` = { stdin, stdout, stderr } (file-like objects; default
-- the process's) and optionally `getenv` (name -> value; default os.getenv).
-- The commands live in atai.cli.job, atai.cli.files, atai.cli.pipeline and
-- atai.cli.meta, each declaring its flags and help (atai.cli.commands).

local atai = require("atai")
local config = require("atai.config")
local args = require("atai.cli.args")
local output = require("atai.cli.output")
local registry = require("atai.cli.commands")

local EXIT, usage = output.EXIT, args.usage
local unpack = table.unpack or unpack

local cli = {}

-- ------------------------------------------------------------ commands

-- The command named by the first words, and the remaining words; or nil.
local function find_command(words)
  local two = words[2] and registry.by_name[words[1] .. " " .. words[2]]
  if two then return two, { select(3, unpack(words)) } end
  local one = words[1] and registry.by_name[words[1]]
  if one and not one.group then return one, { select(2, unpack(words)) } end
  return nil
end

local did_you_mean = args.did_you_mean

-- The usage error for words that name no command.
local function unknown(words)
  if #words == 0 then usage("no command given") end
  local group = registry.group(words[1])
  if group then
    local names = registry.names(group)
    if not words[2] then
      usage(("'%s' needs a subcommand: %s"):format(group.name, table.concat(names, ", ")), group.name)
    end
    usage(("unknown command '%s %s'%s"):format(group.name, words[2], did_you_mean(words[2], names)), group.name)
  end
  usage(("unknown command '%s'%s"):format(words[1], did_you_mean(words[1], registry.top)))
end

-- The command to run and its arguments: --version, help for --help, else
-- the command words.
local function resolve(words, flags)
  if flags.version then return registry.by_name.version, {} end
  local c, rest = find_command(words)
  if flags.help then
    local topic = c and c.full or (registry.group(words[1]) and words[1]) or nil
    return registry.by_name.help, { topic }
  end
  if not c then unknown(words) end
  return c, rest
end

-- Checks the flags and argument count of a command; raises usage errors.
-- Job ids are checked before anything else (a missing key included).
local function check_command(c, rest, flags)
  for name in pairs(flags) do
    if not registry.applies(name, c) then usage(("--%s does not apply to '%s'"):format(name, c.full), c.full) end
  end
  if #rest < c.min then usage(("'%s' needs %s"):format(c.full, c.args:match("^%S+")), c.full) end
  if c.max and #rest > c.max then usage(("too many arguments for '%s'"):format(c.full), c.full) end
  if c.ids then
    for _, id in ipairs(rest) do
      local why = atai.core.id_problem(id)
      if why then usage(("id '%s': %s"):format(id, why), c.full) end
    end
  end
end

-- ------------------------------------------------------------ client

-- Logs one HTTP exchange (--verbose): never the key, which is in no field.
local function log_exchange(out, info)
  local result = info.status and tostring(info.status) or ((info.kind or "?") .. " error")
  out:err(("%s %s -> %s (%.3f s, attempt %d)"):format(tostring(info.method), tostring(info.path or info.url),
    result, tonumber(info.seconds) or 0, tonumber(info.attempt) or 1))
end

-- The API key: --api-key, else $ATAI_API_KEY, else the file named by
-- $ATAI_API_KEY_FILE. Exits 4 when there is none (or the file is
-- unreadable or empty).
local function api_key(ctx)
  local flags, out, getenv = ctx.flags, ctx.out, ctx.getenv
  local flag = flags["api-key"]
  if flag then
    if flag == "" or flag:find("%c") then
      usage("--api-key: the api_key must be a non-empty string without control characters")
    end
    out:err("warning: --api-key is visible to other users of this machine (ps, shell history); "
      .. "prefer the ATAI_API_KEY environment variable")
    return flag
  end
  local key = (getenv("ATAI_API_KEY") or ""):match("^%s*(.-)%s*$")
  if key ~= "" then return key end
  local file = getenv("ATAI_API_KEY_FILE")
  if file and file ~= "" then
    local text, why = config.read_key_file(file)
    if text then return text end
    out:err("ATAI_API_KEY_FILE: " .. why)
    output.stop(EXIT.auth)
  end
  out:err("no API key: set the ATAI_API_KEY environment variable (or ATAI_API_KEY_FILE, or pass --api-key)")
  output.stop(EXIT.auth)
end

-- The endpoint: --endpoint (a usage error when bad), else
-- $ATAI_API_ENDPOINT (a config error, exit 1, when bad), else the default.
local function endpoint(ctx)
  local flag = ctx.flags.endpoint
  local value = flag or ctx.getenv("ATAI_API_ENDPOINT")
  if not value or not value:find("%S") then return nil end
  value = value:match("^%s*(.-)%s*$")
  local _, why = config.normalize_endpoint(value)
  if not why then return value end
  if flag then usage("--endpoint: " .. why) end
  ctx.out:err("config error: ATAI_API_ENDPOINT: " .. why)
  output.stop(EXIT.runtime)
end

-- The client for this run, from the global flags.
local function make_client(ctx)
  local flags, listeners = ctx.flags, ctx.listeners
  local key = api_key(ctx)
  if flags.verbose then listeners[#listeners + 1] = function(info) log_exchange(ctx.out, info) end end
  -- atai.new does no I/O: what it raises is about the flags given
  local ok, client = pcall(atai.new, {
    api_key = key, endpoint = endpoint(ctx), timeout = flags["request-timeout"],
    max_retries = flags.retries, user_agent = "atai-cli",
    on_exchange = function(info)
      for _, listener in ipairs(listeners) do listener(info) end
    end,
  })
  if not ok then usage(tostring(client)) end
  return client
end

-- ------------------------------------------------------------ run

-- Runs argv in ctx; returns the exit code.
local function run(argv, ctx)
  local out = ctx.out
  local words, flags = args.split(argv, registry.flags, registry.short)
  out.json, out.quiet = flags.json == true, flags.quiet == true
  local c, rest = resolve(words, flags)
  check_command(c, rest, c == registry.by_name.help and {} or flags)
  local colors = not flags["no-color"] and (ctx.getenv("NO_COLOR") or "") == ""
  ctx.command, ctx.args, ctx.flags = c.full, rest, flags
  ctx.color = colors and not out.json and out.tty.stdout
  ctx.live_stderr = c.live and c.live(flags) and not out.quiet and out.tty.stderr
  ctx.color_stderr = colors and ctx.live_stderr
  if not c.local_ then ctx.client = make_client(ctx) end
  return c.run(ctx)
end

-- The command named in argv, guessed from the words that are not flags
-- (for the help hint of a usage error raised before the command was known).
local function guess_command(argv)
  local words = {}
  for _, a in ipairs(argv) do
    if a:sub(1, 1) ~= "-" then words[#words + 1] = a end
  end
  local c = find_command(words)
  return c and c.full
end

-- Turns what run() raised into a message and an exit code.
local function failure(e, ctx, argv)
  local code = output.stopped(e)
  if code then return code end
  local out = ctx.out
  if args.is_usage(e) then
    out:err(e.message)
    local command = e.command or ctx.command or guess_command(argv)
    out:write("stderr", ("Run 'atai help%s' for usage.\n"):format(command and (" " .. command) or ""))
    return EXIT.usage
  end
  local text = tostring(e)
  -- the message of the standalone interpreter's SIGINT handler (lua.c)
  if text:find("interrupted!$") then
    out:err("interrupted")
    return EXIT.interrupted
  end
  out:err("internal error: " .. text)
  return EXIT.runtime
end

--- Runs one command line (argv: the words after the program's name) and
--- returns its exit code; `streams` = { stdin, stdout, stderr, getenv }.
function cli.run(argv, streams)
  streams = streams or {}
  local ctx = { out = output.new(streams), listeners = {}, getenv = streams.getenv or os.getenv,
    registry = registry }
  local ok, code = pcall(run, argv, ctx)
  if not ok then
    local reported, failed_code = pcall(failure, code, ctx, argv)
    code = reported and failed_code or output.stopped(failed_code) or EXIT.runtime
  end
  local flushed, e = pcall(ctx.out.flush, ctx.out, "stdout")
  if not flushed then code = output.worst(code, output.stopped(e) or EXIT.runtime) end
  if ctx.client then ctx.client:close() end
  return code
end

return cli

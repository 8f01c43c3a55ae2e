--- atai.cli.args: the command line's words and flags. Usage errors are a
-- type of their own (args.usage raises one, args.is_usage knows one), so
-- nothing upstream has to recognise them by their text. Flag values are
-- read here (durations, whole numbers); the flags themselves are declared
-- by the command modules (atai.cli.job, ...) and by GLOBAL below.

local config = require("atai.config")

local args = {}

local TIMEOUT = config.OPTIONS.timeout -- the bounds of --request-timeout

local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.message end

--- Raises a usage error (exit 2): `message`, and the command whose help
--- to point at (nil: guessed from argv).
function args.usage(message, command)
  error(setmetatable({ message = message, command = command }, UsageError), 0)
end

--- Whether `e` (something raised) is a usage error.
function args.is_usage(e) return getmetatable(e) == UsageError end

local UNITS = { [""] = 1, ms = 0.001, s = 1, m = 60, h = 3600 }

--- The longest DURATION: a year (what the library's sleeps accept).
args.DURATION_MAX = 365 * 86400

--- DURATION: seconds as a number (90, 1.5) or with ms, s, m or h (500ms, 30m).
function args.duration(text, flag)
  local number, unit = text:match("^(%d*%.?%d+)(%a*)$")
  local seconds = number and UNITS[unit] and tonumber(number) * UNITS[unit]
  if not seconds or seconds <= 0 or seconds > args.DURATION_MAX then
    args.usage(("%s: bad duration '%s' (seconds as a number, or with ms, s, m or h: 90, 1.5, 500ms, 30m)")
      :format(flag, text))
  end
  return seconds
end

--- A reader of DURATIONs from `min` to `max` seconds.
function args.duration_within(min, max)
  return function(text, flag)
    local seconds = args.duration(text, flag)
    if seconds < min or seconds > max then
      args.usage(("%s: '%s' is out of range (%g to %g seconds)"):format(flag, text, min, max))
    end
    return seconds
  end
end

--- A reader of whole numbers within [min, max] (max nil: no bound).
function args.whole(min, max)
  return function(text, flag)
    local n = text:match("^%d+$") and tonumber(text)
    if not n or n < min or (max and n > max) then
      args.usage(("%s: bad value '%s' (a whole number from %d%s)"):format(flag, text, min,
        max and (" to " .. max) or ""))
    end
    return n
  end
end

--- A value that must not be empty (the library refuses empty strings).
function args.nonempty(text, flag)
  if text == "" then args.usage(("%s: empty value"):format(flag)) end
  return text
end

--- Upper case (status and level names are written in any case), not empty.
function args.upper(text, flag) return args.nonempty(text, flag):upper() end

--- Flags of every command: name, value placeholder (nil: a switch), help,
--- and optionally `short` (one letter) and `parse` (text, flag) -> value.
args.GLOBAL = {
  { "api-key", "KEY", "API key (default: $ATAI_API_KEY, then the file named by $ATAI_API_KEY_FILE; "
    .. "the environment is preferred: command lines are visible to other users)" },
  { "endpoint", "URL", "API endpoint (default: $ATAI_API_ENDPOINT, else Archetype AI's)" },
  { "request-timeout", "DURATION", "timeout of each HTTP attempt (default 60s)",
    parse = args.duration_within(TIMEOUT.min, TIMEOUT.max) },
  { "retries", "N", "retries of a failed request, 0 to 10 (default 2)", parse = args.whole(0, 10) },
  { "json", nil, "print one JSON document on stdout (keys sorted; pretty on a terminal)", short = "j" },
  { "quiet", nil, "print nothing but errors (and --json output)", short = "q" },
  { "no-color", nil, "no colours (also: the NO_COLOR environment variable)" },
  { "verbose", nil, "one line per HTTP exchange on stderr", short = "v" },
  { "help", nil, "show help", short = "h" },
  { "version", nil, "same as 'atai version'" },
}

--- Fills in a flag spec's fields (name, arg, help) from its positions.
function args.flag(spec)
  spec.name, spec.arg, spec.help = spec[1], spec[2], spec[3]
  return spec
end
for _, spec in ipairs(args.GLOBAL) do args.flag(spec) end

--- Splits argv into words and flags (flags may stand anywhere; `--` ends
--- them). `known`: name -> spec of every flag; `short`: letter -> spec.
function args.split(argv, known, short)
  local words, flags = {}, {}
  local i, only_words = 1, false
  while i <= #argv do
    local a = argv[i]
    if only_words or a == "-" or a:sub(1, 1) ~= "-" then
      words[#words + 1] = a
    elseif a == "--" then
      only_words = true
    else
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:match("^%-%-(.+)$")
      local spec = name and known[name]
      if not name and #a == 2 then spec = short[a:sub(2)] end
      if not spec then args.usage(("unknown flag '%s'%s"):format(a, args.did_you_mean(name, known, "--"))) end
      name = spec.name
      if spec.arg and value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then args.usage(("--%s needs a value (%s)"):format(name, spec.arg)) end
      elseif not spec.arg and value ~= nil then
        args.usage(("--%s takes no value"):format(name))
      end
      flags[name] = spec.arg and (spec.parse and spec.parse(value, "--" .. name) or value) or true
    end
    i = i + 1
  end
  return words, flags
end

-- Edit distance of two short words (insertions, deletions, substitutions
-- and swaps of neighbours each cost 1), for suggestions.
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- The candidate closest to `word` when it is close enough to be a typo
--- (or a prefix of exactly one candidate), else nil.
function args.suggest(word, candidates)
  local best, best_d
  local prefixed = {}
  for _, c in ipairs(candidates) do
    if c:sub(1, #word) == word then prefixed[#prefixed + 1] = c end
    local d = distance(word, c)
    if not best_d or d < best_d then best, best_d = c, d end
  end
  if #prefixed == 1 and #word >= 2 then return prefixed[1] end
  if best_d and best_d <= math.max(1, math.floor(#word / 3)) then return best end
  return nil
end

--- " (did you mean 'x'?)" when `word` looks like a typo of one of
--- `candidates` (a list, or the keys of a table), each shown after `prefix`;
--- else "".
function args.did_you_mean(word, candidates, prefix)
  if not word then return "" end
  local list = candidates
  if #candidates == 0 then
    list = {}
    for name in pairs(candidates) do list[#list + 1] = name end
    table.sort(list)
  end
  local guess = args.suggest(word, list)
  return guess and (" (did you mean '%s%s'?)"):format(prefix or "", guess) or ""
end

return args

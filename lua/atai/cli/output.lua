--- atai.cli.output: what the command line writes, and its exit codes.
--
-- An Out wraps the run's streams ({stdin, stdout, stderr}, file-like). Every
-- write and flush is checked: EPIPE (the reader went away) stops the command
-- at once and silently with exit 141; any other failure stops it with one
-- line on stderr and exit 1. Human output goes through output.escape, so a
-- server's text cannot drive the terminal; --json output is exact JSON.

local core = require("atai.core")

local output = {}

--- Exit codes (doc/cli.md, "Exit codes").
output.EXIT = { ok = 0, runtime = 1, usage = 2, failed = 3, auth = 4, not_found = 5,
  cancelled = 6, timeout = 7, running = 8, interrupted = 130, broken_pipe = 141 }
local EXIT = output.EXIT

-- With several outcomes, the first of this list wins.
output.SEVERITY = { 141, 130, 2, 4, 1, 5, 3, 6, 7, 8, 0 }
local RANK = {}
for i, code in ipairs(output.SEVERITY) do RANK[code] = i end

--- The more severe of two exit codes.
function output.worst(a, b)
  if RANK[b] < RANK[a] then return b end
  return a
end

-- Error kinds with their own exit code; every other kind is a runtime error (1).
local KIND_EXIT = { auth = EXIT.auth, permission = EXIT.auth, not_found = EXIT.not_found }

--- The exit code of a library error.
function output.kind_exit(err) return KIND_EXIT[err.kind] or EXIT.runtime end

local Stop = {}
Stop.__index = Stop
Stop.__tostring = function(s) return "exit " .. s.code end

--- Ends the command at once with exit `code` (what it had to say is said).
function output.stop(code) error(setmetatable({ code = code }, Stop), 0) end

--- The exit code of a raised output.stop, else nil.
function output.stopped(e) return getmetatable(e) == Stop and e.code or nil end

-- ------------------------------------------------------------ escaping

-- The length of the UTF-8 sequence starting at byte i of s when it is a
-- valid one (no overlong forms, no surrogates, nothing past U+10FFFF), else nil.
local function utf8_length(s, i)
  local b = s:byte(i)
  local n, low, high
  if b >= 0xC2 and b <= 0xDF then n, low, high = 2, 0x80, 0xBF
  elseif b == 0xE0 then n, low, high = 3, 0xA0, 0xBF
  elseif b == 0xED then n, low, high = 3, 0x80, 0x9F
  elseif b >= 0xE1 and b <= 0xEF then n, low, high = 3, 0x80, 0xBF
  elseif b == 0xF0 then n, low, high = 4, 0x90, 0xBF
  elseif b >= 0xF1 and b <= 0xF3 then n, low, high = 4, 0x80, 0xBF
  elseif b == 0xF4 then n, low, high = 4, 0x80, 0x8F
  else return nil end
  local second = s:byte(i + 1)
  if not second or second < low or second > high then return nil end
  for k = i + 2, i + n - 1 do
    local c = s:byte(k)
    if not c or c < 0x80 or c > 0xBF then return nil end
  end
  return n
end

local function hex(s) return (s:gsub(".", function(c) return ("\\x%02X"):format(c:byte()) end)) end

--- `text` safe for a terminal: C0 controls, DEL, C1 controls (U+0080 to
--- U+009F) and bytes that are not valid UTF-8 become \xNN; the rest of
--- UTF-8 stays as it is.
function output.escape(text)
  text = tostring(text)
  if not text:find("[^\32-\126]") then return text end
  local parts, i = {}, 1
  while i <= #text do
    local b = text:byte(i)
    local n = 1
    if b >= 0x20 and b < 0x7F then
      parts[#parts + 1] = string.char(b)
    elseif b < 0x80 then
      parts[#parts + 1] = hex(string.char(b))
    else
      n = utf8_length(text, i)
      local seq = text:sub(i, i + (n or 1) - 1)
      local c1 = n == 2 and b == 0xC2 and text:byte(i + 1) <= 0x9F
      parts[#parts + 1] = (n and not c1) and seq or hex(seq)
      n = n or 1
    end
    i = i + n
  end
  return table.concat(parts)
end

--- The columns `text` takes on a terminal (UTF-8 characters, once escaped).
function output.width(text)
  local _, continuation = text:gsub("[\128-\191]", "")
  return #text - continuation
end

-- ------------------------------------------------------------ Out

local Out = {}
Out.__index = Out

local EPIPE = 32 -- errno of a write to a pipe whose reader has gone (Linux)

-- What a standard stream is called in a message.
local STREAM_NAMES = { stdout = "standard output", stderr = "standard error" }

-- Checks the result of a write or flush on stream `which`: EPIPE stops at
-- once, silently (exit 141); another failure says so on stderr (exit 1).
function Out:check(which, ok, message, errno)
  if ok then return end
  self.failed[which] = true
  if errno == EPIPE then output.stop(EXIT.broken_pipe) end
  if which ~= "stderr" then
    local done = self.stderr:write("atai: cannot write ", STREAM_NAMES[which], ": ", tostring(message), "\n")
    if done then self.stderr:flush() end
  end
  output.stop(EXIT.runtime)
end

--- Writes the strings to stream `which` ("stdout", "stderr"), checked.
function Out:write(which, ...)
  local stream = self[which]
  self:check(which, stream:write(...))
end

--- Flushes stream `which`, checked (not again once it has failed).
function Out:flush(which)
  if self.failed[which] then return end
  self:check(which, self[which]:flush())
end

--- A line on stderr, "atai: " first; `text` is escaped.
function Out:err(text)
  self:write("stderr", "atai: ", output.escape(text), "\n")
  self:flush("stderr")
end

--- A human line on stdout (nothing with --quiet or --json), already
--- escaped by its maker; flushed, so a pipe's reader sees it at once.
function Out:say(line)
  if self.quiet or self.json then return end
  self:write("stdout", line, "\n")
  self:flush("stdout")
end

--- Compact JSON text indented by two spaces a level (for a terminal).
function output.pretty(json)
  local parts, depth, i = {}, 0, 1
  local function newline() return "\n" .. ("  "):rep(depth) end
  while i <= #json do
    local plain = json:match("^[^\"{}%[%],:]+", i)
    local c = json:sub(i, i)
    if plain then
      parts[#parts + 1], i = plain, i + #plain - 1
    elseif c == '"' then
      local close
      local from = i + 1
      repeat -- the closing quote: skip what a backslash escapes
        close = json:find('["\\]', from) or #json
        from = close + 2
      until json:sub(close, close) ~= "\\"
      parts[#parts + 1], i = json:sub(i, close), close
    elseif (c == "{" or c == "[") and json:sub(i + 1, i + 1):match("[}%]]") then
      parts[#parts + 1], i = json:sub(i, i + 1), i + 1
    elseif c == "{" or c == "[" then
      depth = depth + 1
      parts[#parts + 1] = c .. newline()
    elseif c == "}" or c == "]" then
      depth = depth - 1
      parts[#parts + 1] = newline() .. c
    else
      parts[#parts + 1] = c == "," and "," .. newline() or ": "
    end
    i = i + 1
  end
  return table.concat(parts)
end

--- One JSON document on stdout: compact, pretty on a terminal.
function Out:print_json(value)
  local text = core.json_encode(value, true)
  if self.tty.stdout then text = output.pretty(text) end
  self:write("stdout", text, "\n")
  self:flush("stdout")
end

--- Prints an error (kind, message, code, error_uid) after `context`, and
--- returns its exit code.
function Out:report(err, context)
  -- Ctrl-C while atai.core ran the JSON decoder: lua.c's SIGINT hook raised
  -- "interrupted!" inside that protected call, which made it a decode error.
  -- It is an interruption (exit 130), not a bad answer.
  if type(err) == "table" and err.kind == "decode" and tostring(err.message):find("interrupted!$") then
    self:err("interrupted")
    output.stop(EXIT.interrupted)
  end
  local text = tostring(err):gsub("^atai ", "")
  self:err((context and (context .. ": ") or "") .. text)
  return output.kind_exit(err)
end

--- A new Out on `streams` ({stdin, stdout, stderr}). Terminal state is read
--- only for the process's own streams (an in-process caller's are not).
function output.new(streams)
  local self = setmetatable({ stdin = streams.stdin or io.stdin, stdout = streams.stdout or io.stdout,
    stderr = streams.stderr or io.stderr, json = false, quiet = false, failed = {} }, Out)
  self.tty = { stdout = self.stdout == io.stdout and core.isatty(1),
    stderr = self.stderr == io.stderr and core.isatty(2) }
  return self
end

--- The columns of the terminal on stderr (80 when unknown): a live line
--- must not wrap, or the redraw would climb too few lines.
function Out:terminal_width()
  local cols = self.tty.stderr and core.terminal_size(2)
  return (cols and cols > 0) and cols or 80
end

-- ------------------------------------------------------------ formats

local COLORS = { COMPLETED = "32", FAILED = "31", CANCELLED = "33", RUNNING = "36", ADMITTED = "36",
  PENDING = "2", PREEMPTED = "35" }

--- The status (escaped) padded to one width (or `text`), coloured when
--- `color` is set.
function output.paint(status, color, text)
  text = text or ("%-9s"):format(output.escape(status))
  if color and COLORS[status] then return "\27[" .. COLORS[status] .. "m" .. text .. "\27[0m" end
  return text
end

local BYTE_UNITS = { "B", "KiB", "MiB", "GiB", "TiB" }

--- 1536 -> "1.5 KiB".
function output.human_bytes(n)
  local i = 1
  while n >= 1024 and i < #BYTE_UNITS do n, i = n / 1024, i + 1 end
  return i == 1 and ("%d B"):format(n) or ("%.1f %s"):format(n, BYTE_UNITS[i])
end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

-- Seconds since the epoch of an RFC 3339 UTC timestamp, or nil.
local function epoch(stamp)
  local y, mo, d, h, mi, s = tostring(stamp):match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + h * 3600 + mi * 60 + s
end

local AGE_UNITS = { { 86400, "d" }, { 3600, "h" }, { 60, "m" }, { 1, "s" } }

--- "5m", "3h", "12d": how long ago a timestamp was.
function output.age(stamp)
  local t = epoch(stamp)
  if not t then return "-" end
  local seconds = math.max(os.time() - t, 0)
  for _, unit in ipairs(AGE_UNITS) do
    if seconds >= unit[1] or unit[1] == 1 then return ("%d%s"):format(math.floor(seconds / unit[1]), unit[2]) end
  end
end

return output

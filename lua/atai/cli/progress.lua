--- atai.cli.progress: live progress on stderr. job wait: one line per job,
-- redrawn in place on a terminal, else one line per status change. Uploads
-- and downloads: one bar with bytes, rate and ETA, on a terminal only.

local atai = require("atai")
local output = require("atai.cli.output")
local stream = require("atai.stream")

local escape, paint = output.escape, output.paint

local progress = {}

local BAR = 16

--- "3/4 (75%)", or "-" for a job without input_progress.
function progress.text(job)
  local p = atai.progress(job)
  if not p then return "-" end
  return ("%d/%d (%d%%)"):format(p.done, p.total, math.floor(p.percent))
end

local Wait = {}
Wait.__index = Wait

--- The progress of job wait over `ids` on ctx.out; `live`: redrawn in place.
function progress.wait(out, ids, live, color)
  return setmetatable({ out = out, ids = ids, jobs = {}, printed = {}, live = live, color = color,
    width = live and out:terminal_width(), started = atai.core.now(), drawn = false }, Wait)
end

-- The plain line of a job (bar only when live), and its status.
function Wait:line(id)
  local job = self.jobs[id]
  local elapsed = ("%.1fs"):format(atai.core.now() - self.started)
  if not job then return ("%s  %s  %s"):format(escape(id), paint("...", false), elapsed) end
  local p = atai.progress(job)
  local bar = ""
  if self.live then
    local filled = p and math.floor(p.percent * BAR / 100) or 0
    bar = "[" .. ("#"):rep(filled) .. ("."):rep(BAR - filled) .. "]  "
  end
  local status = tostring(job.status)
  return ("%s  %s  %s%s  %s"):format(escape(id), paint(status, false), bar, progress.text(job), elapsed), status
end

-- A live line: cut to the terminal's width, then coloured.
function Wait:live_line(id)
  local text, status = self:line(id)
  text = text:sub(1, self.width - 1)
  local plain = status and paint(status, false)
  local at = plain and self.color and text:find(plain, #escape(id) + 1, true)
  if not at then return text end
  return text:sub(1, at - 1) .. paint(status, true) .. text:sub(at + #plain)
end

--- Redraws every line in place (a terminal).
function Wait:draw()
  local parts = {}
  if self.drawn then parts[1] = ("\27[%dA"):format(#self.ids) end
  for _, id in ipairs(self.ids) do parts[#parts + 1] = "\r\27[K" .. self:live_line(id) .. "\n" end
  self.out:write("stderr", table.concat(parts))
  self.out:flush("stderr")
  self.drawn = true
end

--- A job changed (wait_jobs' on_update).
function Wait:update(job)
  self.jobs[job.id] = job
  if self.live then return self:draw() end
  if self.printed[job.id] ~= job.status then
    self.printed[job.id] = job.status
    self.out:write("stderr", self:line(job.id), "\n")
    self.out:flush("stderr")
  end
end

-- ------------------------------------------------------------ transfers

local RATE_MIN_SPAN = 0.5 -- seconds of samples before a rate is shown (bursts)

--- "1:05", "1:02:03": an ETA in seconds.
function progress.clock(seconds)
  seconds = math.floor(seconds + 0.5)
  local h, m, s = math.floor(seconds / 3600), math.floor(seconds / 60) % 60, seconds % 60
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, s) end
  return ("%d:%02d"):format(m, s)
end

--- A rate meter (atai.stream's): feed(bytes_done, now) -> bytes per
--- second over the last 5 s, nil until the samples span RATE_MIN_SPAN.
function progress.meter() return stream.meter(RATE_MIN_SPAN) end

--- The line of an upload or download progress p = {bytes_done, bytes_total,
--- files_done, files_total}: a bar, the bytes, the files, rate and ETA.
function progress.transfer_line(label, p, rate)
  local total = p.bytes_total or 0
  local files_total = p.files_total or 1
  local frac = total > 0 and math.min(p.bytes_done / total, 1)
    or (files_total > 0 and (p.files_done or 0) / files_total or 0)
  local filled = math.floor(frac * BAR)
  local files = files_total > 1 and ("  %d/%d files"):format(p.files_done or 0, files_total) or ""
  local speed = ""
  if rate and rate > 0 then
    speed = ("  %.1f MiB/s"):format(rate / 1048576)
    if total > 0 and p.bytes_done < total then
      speed = speed .. "  ETA " .. progress.clock((total - p.bytes_done) / rate)
    end
  end
  return ("%s  [%s%s]  %s / %s  %3d%%%s%s"):format(escape(label), ("#"):rep(filled), ("."):rep(BAR - filled),
    output.human_bytes(p.bytes_done), total > 0 and output.human_bytes(total) or "?", math.floor(frac * 100),
    files, speed)
end

--- An on_progress that redraws one line on a terminal (stderr), and its
--- finish() that ends the line; nothing off a terminal. The rate is the
--- meter's (the library's p.bytes_per_second, but shown only once the
--- samples span RATE_MIN_SPAN, so that a first burst is no rate).
function progress.transfer(ctx, label)
  if not ctx.live_stderr then return nil, function() end end
  local out, width, drawn = ctx.out, ctx.out:terminal_width(), false
  local meter = progress.meter()
  local function draw(p)
    local rate = meter(p.bytes_done, atai.core.now())
    out:write("stderr", "\r\27[K", progress.transfer_line(label, p, rate):sub(1, width - 1))
    out:flush("stderr")
    drawn = true
  end
  return draw, function()
    if drawn then
      out:write("stderr", "\n")
      out:flush("stderr")
    end
  end
end

return progress

-- spec/nvim/harness.lua: the tiny test runner of the headless Neovim specs
-- (spec/nvim/run.lua, spec/nvim/plugin.lua). Lines go to stdout (Neovim's
-- `print` goes to stderr, without newlines, in headless mode); finish()
-- prints a busted-style totals line and quits Neovim: `qall!` when
-- everything passed, `cquit 1` otherwise.
local H = {}

local out = io.stdout
local counts = { successes = 0, failures = 0, errors = 0 }
local started = os.clock()

function H.say(s)
  out:write(s, "\n")
  out:flush()
end
local say = H.say

-- A failed expectation (as opposed to an unexpected error).
local Failure = {}
function H.expect(cond, message)
  if not cond then error(setmetatable({ message = message }, Failure), 2) end
end
function H.equal(expected, actual, what)
  H.expect(expected == actual, ("%s: expected %s, got %s"):format(what, tostring(expected), tostring(actual)))
end

function H.it(name, fn)
  local ok, err = xpcall(fn, function(e)
    if getmetatable(e) == Failure then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if ok then
    counts.successes = counts.successes + 1
    say("ok      " .. name)
  elseif getmetatable(err) == Failure then
    counts.failures = counts.failures + 1
    say("FAIL    " .. name .. "\n        " .. err.message)
  else
    counts.errors = counts.errors + 1
    say("ERROR   " .. name .. "\n        " .. tostring(err):gsub("\n", "\n        "))
  end
end

-- Runs main under xpcall (an error outside any `it` counts as one), prints
-- the totals line and quits.
function H.finish(name, main)
  local ok, err = xpcall(main, debug.traceback)
  if not ok then
    counts.errors = counts.errors + 1
    say("ERROR   " .. name .. "\n        " .. tostring(err))
  end
  say(("%d %s / %d %s / %d %s / 0 pending : %f seconds"):format(
    counts.successes, counts.successes == 1 and "success" or "successes",
    counts.failures, counts.failures == 1 and "failure" or "failures",
    counts.errors, counts.errors == 1 and "error" or "errors",
    os.clock() - started))
  if counts.failures + counts.errors > 0 then
    vim.cmd("cquit 1")
  else
    vim.cmd("qall!")
  end
end

return H

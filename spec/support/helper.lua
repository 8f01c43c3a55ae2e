-- spec/support/helper.lua: busted's helper (see .busted), run before every
-- spec file. A test that leaves atai.configure set would hand its options
-- to the next spec's module-level calls: such a test errors, naming the
-- fix, and the default options are reset for the next one.
local busted = require("busted")

-- The options atai.configure last set (atai keeps them in the upvalue
-- default_options of atai.configure), or nil before atai is loaded.
local function configured_options()
  local atai = package.loaded["atai"]
  if type(atai) ~= "table" or type(atai.configure) ~= "function" then return nil end
  for i = 1, 255 do
    local name, value = debug.getupvalue(atai.configure, i)
    if name == nil then break end
    if name == "default_options" then return value end
  end
  error("spec/support/helper.lua: atai.configure keeps no 'default_options' upvalue any more: "
    .. "update the check", 0)
end

busted.subscribe({ "test", "end" }, function()
  local left = configured_options()
  if left ~= nil and next(left) ~= nil then
    package.loaded["atai"].configure {}
    error("this test left atai.configure set: reset it in the test with "
      .. "finally(function() atai.configure {} end)", 0)
  end
  return nil, true
end, { priority = 1 })

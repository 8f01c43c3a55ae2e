--[[
  fake_api/blob.lua -- the bytes of a fake output blob, from its key alone.

  A blob of `size` bytes is its pattern repeated and cut at `size`, so any range can be
  made without holding the blob: the server streams 200 MiB from a few hundred KiB, and
  a spec can check what it downloaded.  Pure Lua 5.1+ (the specs require it too, as
  "spec.support.fake_api.blob").
]]

local blob = {}

local PIECE = 256 * 1024 -- the largest range blob.range is asked for at once

-- The pattern of blob `key`: one CSV-like line naming it.
function blob.pattern(key)
  return key .. ",normal,0123456789abcdefghijklmnopqrstuvwxyz\n"
end

-- A maker of ranges of blob `key`: range(offset, len) -> the bytes (len <= 256 KiB).
function blob.maker(key)
  local pattern = blob.pattern(key)
  local long = pattern:rep(math.floor(PIECE / #pattern) + 2)
  return function(offset, len)
    local start = offset % #pattern + 1
    return long:sub(start, start + len - 1)
  end
end

-- The whole content of a small blob (for checks in the specs).
function blob.content(key, size)
  local pattern = blob.pattern(key)
  return pattern:rep(math.floor(size / #pattern) + 1):sub(1, size)
end

blob.PIECE = PIECE

return blob

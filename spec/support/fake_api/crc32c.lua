--[[
  fake_api/crc32c.lua -- CRC-32C in plain Lua 5.3+, for the integrity check of multipart
  uploads (the fake storage computes each part's CRC as its bytes arrive; complete
  combines them the zlib crc32_combine way and compares with integrity_checksum).
  Independent of atai's C code, so the check means something. A byte at a time: fine
  for the few MiB the specs send with integrity on (state.config.integrity_max_bytes).
]]

local crc32c = {}

local POLY = 0x82f63b78
local T = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do c = (c & 1 == 1) and ((c >> 1) ~ POLY) or (c >> 1) end
  T[n] = c
end

-- The CRC-32C of `crc` (of earlier bytes, 0 for none) extended by the string s.
function crc32c.update(crc, s)
  local c, byte = ~crc & 0xffffffff, string.byte
  for i = 1, #s do c = T[(c ~ byte(s, i)) & 0xff] ~ (c >> 8) end
  return ~c & 0xffffffff
end

-- a * b modulo the polynomial (reflected).
local function multmodp(a, b)
  local m, p = 1 << 31, 0
  while true do
    if a & m ~= 0 then
      p = p ~ b
      if a & (m - 1) == 0 then break end
    end
    m = m >> 1
    b = (b & 1 == 1) and ((b >> 1) ~ POLY) or (b >> 1)
  end
  return p
end

local X2N = { [0] = 1 << 30 }
for k = 1, 31 do X2N[k] = multmodp(X2N[k - 1], X2N[k - 1]) end

-- The CRC of A followed by B from CRC(A), CRC(B) and #B.
function crc32c.combine(crc1, crc2, len2)
  local p, k = 1 << 31, 3
  while len2 > 0 do
    if len2 & 1 == 1 then p = multmodp(X2N[k & 31], p) end
    len2, k = len2 >> 1, k + 1
  end
  return multmodp(p, crc1) ~ crc2
end

-- The 4 big-endian bytes of a CRC in base64 (how integrity_checksum is sent).
function crc32c.base64(crc)
  local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local v = crc -- 32 bits: 6 groups of 6 bits from the top, the last padded
  local bits = v << 4 -- 36 bits
  local out = {}
  for i = 5, 0, -1 do
    local d = (bits >> (i * 6)) & 63
    out[#out + 1] = A:sub(d + 1, d + 1)
  end
  return table.concat(out) .. "=="
end

return crc32c

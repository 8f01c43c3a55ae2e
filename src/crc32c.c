/*
** crc32c.c: CRC-32C (Castagnoli, the checksum of iSCSI, ext4 and cloud
** storage), for the integrity check of multipart uploads.
**
** Uploads send their parts several at once, so each part's CRC is computed
** while libcurl reads it (files.c) and the whole file's CRC is made from
** them afterwards by crc32c_combine, the way zlib's crc32_combine does it
** (multiplication by x^(8n) modulo the polynomial): no byte is read twice.
** Software: slicing-by-8 over tables made once per process (pthread_once:
** several Lua states may open the module in several threads at once);
** on x86-64 the SSE4.2 crc32 instruction when the CPU has it, chosen at
** run time. Both give the same results (the standard reflected CRC-32C,
** initial and final XOR 0xffffffff).
**
** Lua: core.crc32c(s [, crc]), core.crc32c_combine(crc1, crc2, len2),
** core.crc32c_file(path, offset, length) (files.c registers them).
*/

#include <pthread.h>
#include <stdint.h>

#define CRC32C_POLY 0x82f63b78u /* reflected 0x1EDC6F41 */
#define CRC32C_FILE_CHUNK (64 * 1024)

static uint32_t crc32c_table[8][256];
static uint32_t crc32c_x2n[32];          /* x^(2^k) modulo the polynomial */
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static int crc32c_hw;                    /* the CPU has SSE4.2's crc32 */

/* a * b modulo the polynomial (reflected bit order). */
static uint32_t crc32c_multmodp(uint32_t a, uint32_t b) {
  uint32_t m = (uint32_t)1 << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
  }
  return p;
}

/* x^(n * 2^k) modulo the polynomial. */
static uint32_t crc32c_x2nmodp(uint64_t n, unsigned k) {
  uint32_t p = (uint32_t)1 << 31; /* x^0 */
  while (n) {
    if (n & 1) p = crc32c_multmodp(crc32c_x2n[k & 31], p);
    n >>= 1;
    k++;
  }
  return p;
}

static void crc32c_make_tables(void) {
  uint32_t n, k, c, p;
  for (n = 0; n < 256; n++) {
    c = n;
    for (k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    crc32c_table[0][n] = c;
  }
  for (n = 0; n < 256; n++) {
    c = crc32c_table[0][n];
    for (k = 1; k < 8; k++) {
      c = crc32c_table[0][c & 0xff] ^ (c >> 8);
      crc32c_table[k][n] = c;
    }
  }
  p = (uint32_t)1 << 30; /* x^1 */
  crc32c_x2n[0] = p;
  for (n = 1; n < 32; n++) crc32c_x2n[n] = p = crc32c_multmodp(p, p);
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static void crc32c_init(void) { pthread_once(&crc32c_once, crc32c_make_tables); }

/* The raw (unconditioned) CRC of n bytes, by slicing-by-8. */
static uint32_t crc32c_sw(uint32_t c, const unsigned char *p, size_t n) {
  while (n > 0 && ((uintptr_t)p & 7) != 0) {
    c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    n--;
  }
  while (n >= 8) {
    uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^ crc32c_table[5][(lo >> 16) & 0xff] ^
        crc32c_table[4][lo >> 24] ^ crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
        crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with the crc32 instruction (only called when crc32c_hw). */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t c, const unsigned char *p, size_t n) {
  uint64_t c64;
  while (n > 0 && ((uintptr_t)p & 7) != 0) {
    c = __builtin_ia32_crc32qi(c, *p++);
    n--;
  }
  c64 = c;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c64 = __builtin_ia32_crc32di(c64, word);
    p += 8;
    n -= 8;
  }
  c = (uint32_t)c64;
  while (n-- > 0) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}
#endif

/* The CRC-32C of `crc` (of the bytes before) extended by n more bytes. */
static uint32_t crc32c_update(uint32_t crc, const void *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  uint32_t c = ~crc;
  crc32c_init();
#if defined(__x86_64__) && defined(__GNUC__)
  if (crc32c_hw) return ~crc32c_sse42(c, p, n);
#endif
  return ~crc32c_sw(c, p, n);
}

/* The CRC-32C of A followed by B, from crc1 = CRC(A), crc2 = CRC(B) and len2
** = the length of B. */
static uint32_t crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2) {
  crc32c_init();
  return crc32c_multmodp(crc32c_x2nmodp(len2, 3), crc1) ^ crc2;
}

/* A Lua number argument as a CRC (0 .. 2^32 - 1). */
static uint32_t check_crc(lua_State *L, int arg) {
  lua_Number n = luaL_checknumber(L, arg);
  luaL_argcheck(L, n >= 0 && n <= 4294967295.0 && n == floor(n), arg, "CRC (0 to 2^32 - 1) expected");
  return (uint32_t)n;
}

/* A Lua number argument as a byte count (0 .. 2^52). */
static uint64_t check_bytes(lua_State *L, int arg) {
  lua_Number n = luaL_checknumber(L, arg);
  luaL_argcheck(L, n >= 0 && n <= 4503599627370496.0 && n == floor(n), arg, "byte count expected");
  return (uint64_t)n;
}

/* core.crc32c(s [, crc]) -> the CRC-32C of s, or of the bytes crc stands
** for followed by s. */
static int l_crc32c(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  uint32_t crc = lua_isnoneornil(L, 2) ? 0 : check_crc(L, 2);
  lua_pushinteger(L, (lua_Integer)crc32c_update(crc, s, len));
  return 1;
}

/* core.crc32c_combine(crc1, crc2, len2) -> the CRC-32C of both in a row. */
static int l_crc32c_combine(lua_State *L) {
  uint32_t a = check_crc(L, 1), b = check_crc(L, 2);
  lua_pushinteger(L, (lua_Integer)crc32c_combine(a, b, check_bytes(L, 3)));
  return 1;
}

/* core.crc32c_file(path, offset, length) -> the CRC-32C of that range of a
** file, or nil, message. Blocking: reads at disk speed, 64 KiB at a time
** (a resumed upload's parts sent by an earlier process). */
static int l_crc32c_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uint64_t offset = check_bytes(L, 2), left = check_bytes(L, 3);
  unsigned char chunk[CRC32C_FILE_CHUNK];
  uint32_t crc = 0;
  FILE *f = fopen(path, "rb");
  int err = 0;
  if (f == NULL || fseeko(f, (off_t)offset, SEEK_SET) != 0) err = errno ? errno : EIO;
  while (!err && left > 0) {
    size_t want = left < sizeof chunk ? (size_t)left : sizeof chunk;
    size_t got = fread(chunk, 1, want, f);
    if (got == 0) {
      err = ferror(f) ? errno : 0;
      if (!err) {
        if (f) fclose(f);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot read %s: it ended early (did it change?)", path);
        return 2;
      }
      break;
    }
    crc = crc32c_update(crc, chunk, got);
    left -= got;
  }
  if (f) fclose(f);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read %s: %s", path, strerror(err));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)crc);
  return 1;
}

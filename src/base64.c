/*
** base64.c: base64 (RFC 4648, with padding), encoded as it is sent.
**
** upload_base64 (POST /files/base64) sends a file's base64 as the form's
** file part: b64_fill encodes while libcurl asks for bytes, pulling raw
** bytes from the stream (files.c) a few KiB at a time, so neither the file
** nor its encoding is ever whole in memory. A request for fewer than 4
** bytes is served from one encoded group kept aside (B64Carry).
** Lua: core.base64(s) (the integrity checksum of an upload is 4 bytes).
*/

#define B64_RAW_CHUNK (3 * 16 * 1024) /* raw bytes encoded per step */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The encoded size of n bytes. */
static uint64_t b64_size(uint64_t n) { return (n + 2) / 3 * 4; }

/* Encodes n bytes to out (b64_size(n) bytes); returns that size. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
  char *o = out;
  for (; n >= 3; in += 3, n -= 3) {
    uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = b64_alphabet[(v >> 6) & 63];
    *o++ = b64_alphabet[v & 63];
  }
  if (n > 0) {
    uint32_t v = (uint32_t)in[0] << 16 | (n > 1 ? (uint32_t)in[1] << 8 : 0);
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  return (size_t)(o - out);
}

/* One encoded group set aside for a reader that asked for less than 4. */
typedef struct B64Carry {
  char group[4];
  int len, at;
} B64Carry;

/* Pulls raw bytes: fills dst with exactly `want` bytes and returns want, or
** returns 0 (the source failed; it recorded why). */
typedef size_t (*B64Take)(void *ud, char *dst, size_t want);

/* Fills buf (room bytes) with the next encoded bytes of a source that has
** raw_left bytes still to pull; returns the bytes written (0: the end), or
** (size_t)-1 when the source failed. */
static size_t b64_fill(B64Carry *carry, char *buf, size_t room, uint64_t raw_left, B64Take take, void *ud) {
  unsigned char raw[B64_RAW_CHUNK];
  size_t out = 0, want;
  while (out < room && carry->at < carry->len) buf[out++] = carry->group[carry->at++];
  if (out == room || raw_left == 0) return out;
  room -= out;
  if (room < 4) { /* one group, partly given now, the rest carried */
    want = raw_left < 3 ? (size_t)raw_left : 3;
    if (take(ud, (char *)raw, want) != want) return (size_t)-1;
    carry->len = (int)b64_encode(raw, want, carry->group);
    carry->at = 0;
    while (room-- > 0 && carry->at < carry->len) buf[out++] = carry->group[carry->at++];
    return out;
  }
  want = room / 4 * 3;
  if (want > sizeof raw) want = sizeof raw;
  if ((uint64_t)want > raw_left) want = (size_t)raw_left;
  if (take(ud, (char *)raw, want) != want) return (size_t)-1;
  return out + b64_encode(raw, want, buf + out);
}

/* core.base64(s) -> s in base64 (with padding), encoded 3 KiB at a time. */
static int l_base64(lua_State *L) {
  size_t len, at;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char out[4096];
  luaL_buffinit(L, &b);
  for (at = 0; at < len; at += 3072) {
    size_t n = len - at < 3072 ? len - at : 3072;
    luaL_addlstring(&b, out, b64_encode(s + at, n, out));
  }
  luaL_pushresult(&b);
  return 1;
}

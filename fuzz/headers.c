/*
** headers.c: libFuzzer harness for the response-header code: the header
** callback that keeps the last response's block, the header lookup, the
** Retry-After parser (delta-seconds or HTTP-date) and the headers table of
** request()'s meta. Reached through atai_units.h.
**
** The input is what a server sent: it is cut into lines after each LF and
** handed to the header callback one line at a time, as libcurl does.
** Properties: the kept block is the input from its last "HTTP/" line on;
** a lookup returns a trimmed value inside that block; Retry-After is -1 or
** within 0..RETRY_AFTER_MAX seconds; the table has lowercase names of
** fewer than 128 bytes and single-line values that do not start with
** blanks.
*/
#include "atai_units.h"
#include "fuzz_lua.h"

static const char *const NAMES[] = {"retry-after", "etag", "content-type", "x-request-id"};

/* Feeds the input line by line; returns where the kept block must start. */
static const uint8_t *feed(UnitsClient *c, const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size, *last_status = data;
  while (p < end) {
    const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = eol ? (size_t)(eol - p) + 1 : (size_t)(end - p);
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) last_status = p;
    FUZZ_CHECK(units_header_line(c, (const char *)p, len) == len, "every line is taken");
    p += len;
  }
  return last_status;
}

static int blank(char ch) {
  return ch == ' ' || ch == '\t';
}

static void check_lookups(UnitsClient *c) {
  size_t i, block_len, len;
  const char *block = units_header_block(c, &block_len);
  double ra = units_retry_after(c);
  FUZZ_CHECK(ra == -1 || (ra >= 0 && ra <= UNITS_RETRY_AFTER_MAX), "Retry-After in range");
  for (i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
    const char *v = units_response_header(c, NAMES[i], &len);
    if (v == NULL) continue;
    FUZZ_CHECK(v >= block && v + len <= block + block_len, "a value lies in the block");
    FUZZ_CHECK(memchr(v, '\n', len) == NULL, "a value is one line");
    FUZZ_CHECK(len == 0 || (!blank(v[0]) && !blank(v[len - 1]) && v[len - 1] != '\r'),
               "a value is trimmed");
  }
}

static void check_table(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t i, nlen, vlen;
    const char *name, *value;
    FUZZ_CHECK(lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING,
               "names and values are strings");
    name = lua_tolstring(L, -2, &nlen);
    value = lua_tolstring(L, -1, &vlen);
    FUZZ_CHECK(nlen > 0 && nlen < 128, "a name has 1..127 bytes");
    for (i = 0; i < nlen; i++)
      FUZZ_CHECK(!(name[i] >= 'A' && name[i] <= 'Z') && name[i] != ':' && name[i] != '\n',
                 "a name is lowercase, without colon or LF");
    FUZZ_CHECK(memchr(value, '\n', vlen) == NULL, "a value is one line");
    FUZZ_CHECK(vlen == 0 || !blank(value[0]), "a value does not start with a blank");
    lua_pop(L, 1);
  }
}

static void test(lua_State *L, const uint8_t *data, size_t size) {
  UnitsClient c;
  const uint8_t *start;
  const char *block;
  size_t block_len;
  units_client_init(&c, "http://127.0.0.1/v0.5");
  start = feed(&c, data, size);
  block = units_header_block(&c, &block_len);
  FUZZ_CHECK(block_len == (size_t)(data + size - start) &&
             (block_len == 0 || memcmp(block, start, block_len) == 0),
             "the block kept is the last response's");
  check_lookups(&c);
  units_push_headers(L, &c);
  units_client_free(&c); /* nothing below raises */
  check_table(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024) return 0; /* well under the 256 KiB the callback keeps */
  return fuzz_run(test, data, size);
}

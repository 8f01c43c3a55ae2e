/*
** url.c: libFuzzer harness for request()'s URL building: the path check
** and the query string (percent-encoding of keys and values, list values
** repeating their key, numbers and booleans as text). Reached through
** atai_units.h.
**
** Input: a path (length byte, bytes), then query entries until the end,
** each a tag byte and its key and value (see `add_entry`): strings of any
** bytes, integers, floats (NaN and infinities too), booleans, lists of
** those, and values or keys a query cannot hold.
** Properties: the path is refused exactly when it is not '/' followed by
** printable ASCII without '?', '#' or a "." / ".." segment (dots also as
** %2e); the query is
** refused exactly when a key is not a string or a value is not a string,
** boolean, finite number or list of them; otherwise the URL is the base,
** the path and one "key=value" per value, every byte outside A-Z a-z 0-9
** - _ . ~ written %XX, decoding back to the very key and value text.
*/
#include "atai_units.h"
#include "fuzz_lua.h"

#define BASE_URL "https://api.example.invalid/v0.5"

/* Pushes a string of up to 255 bytes: length byte, then bytes. */
static void push_chunk(lua_State *L, FuzzReader *r) {
  char s[256];
  unsigned n = fuzz_byte(r);
  fuzz_bytes(r, s, n);
  lua_pushlstring(L, s, n);
}

static int a_function(lua_State *L) {
  lua_pushnil(L);
  return 1;
}

/* Pushes a scalar of kind 0 string, 1 integer, 2 float, 3 boolean, 4 small
** integer; other kinds push a value no query holds (a table). */
static void push_scalar(lua_State *L, FuzzReader *r, unsigned kind) {
  lua_Integer i;
  double d;
  switch (kind) {
    case 0: push_chunk(L, r); break;
    case 1: fuzz_bytes(r, &i, sizeof i); lua_pushinteger(L, i); break;
    case 2: fuzz_bytes(r, &d, sizeof d); lua_pushnumber(L, d); break;
    case 3: lua_pushboolean(L, fuzz_byte(r) & 1); break;
    case 4: lua_pushinteger(L, (lua_Integer)fuzz_byte(r) - 128); break;
    default: lua_newtable(L); break;
  }
}

/* Reads one entry into the query table on top: tag % 8 is 0..4 a scalar of
** that kind, 5 a list (count, then tagged elements), 6 a function value,
** 7 an integer key. */
static void add_entry(lua_State *L, FuzzReader *r) {
  unsigned tag = fuzz_byte(r) % 8, n, i;
  luaL_checkstack(L, 4, "add_entry");
  if (tag == 7) lua_pushinteger(L, (lua_Integer)fuzz_byte(r));
  else push_chunk(L, r);
  if (tag <= 4) {
    push_scalar(L, r, tag);
  } else if (tag == 5) {
    n = fuzz_byte(r) % 8;
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
      push_scalar(L, r, fuzz_byte(r) % 6);
      lua_rawseti(L, -2, (lua_Integer)i);
    }
  } else if (tag == 6) {
    lua_pushcfunction(L, a_function);
  } else {
    push_chunk(L, r);
  }
  lua_rawset(L, -3);
}

/* ---- the independent model ------------------------------------------------ */

/* Whether the n bytes at s spell "." or "..", a dot also written %2e/%2E. */
static int dot_segment(const char *s, size_t n) {
  size_t i = 0, dots = 0;
  while (i < n) {
    if (s[i] == '.') i++;
    else if (i + 3 <= n && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) i += 3;
    else return 0;
    dots++;
  }
  return dots == 1 || dots == 2;
}

static int path_valid(const char *p, size_t len) {
  size_t i, seg = 1; /* start of the current segment */
  if (len == 0 || p[0] != '/') return 0;
  for (i = 1; i <= len; i++) {
    if (i == len || p[i] == '/') {
      if (dot_segment(p + seg, i - seg)) return 0;
      seg = i + 1;
      continue;
    }
    if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f || p[i] == '?' || p[i] == '#')
      return 0;
  }
  return 1;
}

static int scalar_valid(lua_State *L, int idx) {
  lua_Number n;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TBOOLEAN: return 1;
    case LUA_TNUMBER:
      n = lua_tonumber(L, idx);
      return n == n && n <= DBL_MAX && n >= -DBL_MAX;
    default: return 0;
  }
}

/* Whether every key of the query at q is a string and every value a
** scalar or a list of scalars. */
static int query_valid(lua_State *L, int q) {
  int ok = 1;
  lua_pushnil(L);
  while (ok && lua_next(L, q)) {
    ok = lua_type(L, -2) == LUA_TSTRING;
    if (ok && lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; ok && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        ok = scalar_valid(L, -1);
        lua_pop(L, 1);
      }
    } else if (ok) {
      ok = scalar_valid(L, -1);
    }
    lua_pop(L, 1);
  }
  if (!ok) lua_pop(L, 1);
  return ok;
}

static int hex(char ch) {
  return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

static int unreserved(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* Decodes the percent-encoded text at *p (up to `stop` or end) into out;
** aborts on anything but unreserved bytes and %XX. */
static size_t unescape(const char **p, const char *end, char stop, char *out) {
  size_t n = 0;
  while (*p < end && **p != stop && **p != '&') {
    if (**p == '%') {
      FUZZ_CHECK(end - *p >= 3 && hex((*p)[1]) >= 0 && hex((*p)[2]) >= 0, "%XX, uppercase");
      out[n++] = (char)(hex((*p)[1]) * 16 + hex((*p)[2]));
      FUZZ_CHECK(!unreserved(out[n - 1]), "unreserved bytes are not escaped");
      *p += 3;
    } else {
      FUZZ_CHECK(unreserved(**p), "only unreserved bytes are written as they are");
      out[n++] = **p;
      (*p)++;
    }
  }
  return n;
}

/* The value at idx is what the text `s` (n bytes) says. */
static void check_value(lua_State *L, int idx, const char *s, size_t n) {
  char text[512], *rest;
  size_t len;
  const char *v;
  memcpy(text, s, n);
  text[n] = '\0';
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      v = lua_tolstring(L, idx, &len);
      FUZZ_CHECK(len == n && memcmp(v, s, n) == 0, "a string value is sent as it is");
      break;
    case LUA_TBOOLEAN:
      FUZZ_CHECK(strcmp(text, lua_toboolean(L, idx) ? "true" : "false") == 0, "a boolean");
      break;
    default:
      FUZZ_CHECK(n > 0 && strspn(text, "0123456789+-.e") == n, "a number is digits");
      if (lua_isinteger(L, idx)) {
        FUZZ_CHECK(strtoll(text, &rest, 10) == (long long)lua_tointeger(L, idx) && *rest == '\0',
                   "an integer is exact");
      } else {
        FUZZ_CHECK(strtod(text, &rest) == (double)lua_tonumber(L, idx) && *rest == '\0',
                   "a float reads back exactly");
      }
  }
}

/* The next "key=value" at *p is the key at index k with the value at v. */
static void check_param(lua_State *L, const char **p, const char *end, int k, int v) {
  char buf[3 * 256 + 1];
  size_t klen, n;
  const char *key = lua_tolstring(L, k, &klen);
  FUZZ_CHECK(*p < end && (**p == '?' || **p == '&'), "one parameter per value");
  (*p)++;
  n = unescape(p, end, '=', buf);
  FUZZ_CHECK(n == klen && memcmp(buf, key, klen) == 0, "the key is sent whole");
  FUZZ_CHECK(*p < end && **p == '=', "key=value");
  (*p)++;
  n = unescape(p, end, '&', buf);
  check_value(L, v, buf, n);
}

/* The URL on top is BASE_URL .. path .. the query at q, in lua_next order. */
static void check_url(lua_State *L, const char *path, int q) {
  size_t len, head = strlen(BASE_URL) + strlen(path);
  const char *url = lua_tolstring(L, -1, &len), *p, *end = url + len;
  FUZZ_CHECK(len >= head && memcmp(url, BASE_URL, strlen(BASE_URL)) == 0 &&
             memcmp(url + strlen(BASE_URL), path, strlen(path)) == 0, "base and path first");
  p = url + head;
  lua_pushnil(L);
  while (lua_next(L, q)) { /* key value */
    int k = lua_gettop(L) - 1;
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        check_param(L, &p, end, k, k + 2);
        lua_pop(L, 1);
      }
    } else {
      check_param(L, &p, end, k, k + 1);
    }
    lua_pop(L, 1);
  }
  FUZZ_CHECK(p == end, "nothing after the last parameter");
}

/* ---- the runs ------------------------------------------------------------- */

static UnitsClient client;  /* one for the whole run, like a real client's */
static int query_expected; /* what query_valid said before push_url ran */

/* The path goes at index 3, where request() has it: "bad argument #2". */
static void run_check_path(lua_State *L, const uint8_t *data, size_t size) {
  lua_settop(L, 2);
  lua_pushlstring(L, (const char *)data, size);
  units_check_path(L, 3);
}

static void run_url(lua_State *L, const uint8_t *data, size_t size) {
  FuzzReader r;
  const char *path;
  r.p = data;
  r.end = data + size;
  push_chunk(L, &r);
  path = lua_tostring(L, 1);
  lua_newtable(L);
  while (r.p < r.end) add_entry(L, &r);
  query_expected = query_valid(L, 2);
  units_push_url(L, &client, path, 2);
  check_url(L, path, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  size_t path_len;
  int status;
  if (size == 0) return 0; /* the same as a lone 0 byte: an empty path */
  if (client.c.base_url == NULL) units_client_init(&client, BASE_URL);
  path_len = data[0] < size - 1 ? data[0] : size - 1; /* as push_chunk reads it */
  status = fuzz_pcall(L, run_check_path, data + 1, path_len);
  FUZZ_CHECK((status == LUA_OK) == path_valid((const char *)data + 1, path_len),
             "check_path refuses exactly the invalid paths");
  FUZZ_CHECK(status == LUA_OK || fuzz_error_has(L, "bad argument #2 to 'request' (path"),
             "a bad path is an argument error");
  if (status == LUA_OK) {
    status = fuzz_pcall(L, run_url, data, size);
    if (status != LUA_OK && !fuzz_error_has(L, "bad argument #3 to 'request' (opts.query"))
      fuzz_no_error(L, status);
    FUZZ_CHECK((status == LUA_OK) == query_expected, "the query is refused exactly when bad");
  }
  lua_settop(L, 0);
  return 0;
}

/*
** json_encode.c: libFuzzer harness for json_encode (src/json.c), the
** request-body encoder.
**
** An input starting with byte 0x01 is a small program that builds a Lua
** value (see `build`): any mix of tables, sparse or marked with atai.array,
** cycles, integers, floats (NaN and infinities too), strings, atai.null and
** values JSON cannot hold. Its encoding either raises one of the encoder's
** own errors or is JSON that cjson reads back to the same data: a table
** whose keys are exactly 1..n (n >= 1) as an array, another as an object
** keyed by tostring(key), numbers to the nearest double.
** Any other input is JSON: decoded and shaped by json_decode, encoded, and
** decoded again it must give the very same value (round trip).
*/
#include "atai_json.h"
#include "fuzz_lua.h"

#define STACK_MAX 64  /* values the program may keep on the stack */
#define CHECK_DEPTH 250 /* the encoder stops at JSON_MAX_DEPTH, below this */

static Buffer out; /* the encoder's output, reused like a client's payload */

static int bad_key(lua_State *L, int idx) {
  return lua_isnil(L, idx) || (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) !=
                               lua_tonumber(L, idx));
}

static int push_function(lua_State *L) {
  lua_pushnil(L);
  return 1;
}

/* Runs one instruction of the program. */
static void step(lua_State *L, FuzzReader *r) {
  unsigned op = fuzz_byte(r) % 15, n;
  int top = lua_gettop(L);
  lua_Integer i;
  double d;
  char s[256];
  if (top >= STACK_MAX && op < 7) return;
  luaL_checkstack(L, 2, "fuzz program"); /* a C function is only given LUA_MINSTACK */
  switch (op) {
    case 0: lua_pushnil(L); break;
    case 1: lua_pushboolean(L, fuzz_byte(r) & 1); break;
    case 2: fuzz_bytes(r, &i, sizeof i); lua_pushinteger(L, i); break;
    case 3: fuzz_bytes(r, &d, sizeof d); lua_pushnumber(L, d); break;
    case 4: lua_pushinteger(L, (lua_Integer)fuzz_byte(r) - 128); break;
    case 5:
      n = fuzz_byte(r);
      fuzz_bytes(r, s, n);
      lua_pushlstring(L, s, n);
      break;
    case 6: n = fuzz_byte(r); lua_createtable(L, (int)(n % 16), (int)(n / 16)); break;
    case 7: /* t k v: t[k] = v */
      if (top >= 3 && lua_istable(L, -3) && !bad_key(L, -2)) lua_rawset(L, -3);
      else if (top >= 2) lua_pop(L, 2);
      break;
    case 8: /* t v: t[#t + 1] = v */
      if (top >= 2 && lua_istable(L, -2)) lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      else if (top >= 1) lua_pop(L, 1);
      break;
    case 9: /* t v: t[byte - 8] = v */
      i = (lua_Integer)fuzz_byte(r) - 8;
      if (top >= 2 && lua_istable(L, -2)) lua_rawseti(L, -2, i);
      else if (top >= 1) lua_pop(L, 1);
      break;
    case 10:
      if (top >= 1 && lua_istable(L, -1)) luaL_setmetatable(L, ARRAY_MT);
      break;
    case 11: if (top < STACK_MAX) lua_pushlightuserdata(L, NULL); break;
    case 12: if (top < STACK_MAX) lua_pushcfunction(L, push_function); break;
    case 13: /* a copy of any value below: shares tables, makes cycles */
      if (top >= 1 && top < STACK_MAX) lua_pushvalue(L, -1 - (int)(fuzz_byte(r) % (unsigned)top));
      break;
    default: if (top >= 1) lua_pop(L, 1); break;
  }
}

/* ---- what the encoding must read back as -------------------------------- */

static void check_encoded(lua_State *L, int v, int json, int depth);

/* The number of keys of the table at t when they are exactly 1..n, else -1. */
static lua_Integer sequence_length(lua_State *L, int t) {
  lua_Integer count = 0, max = 0;
  int seq = 1;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    count++;
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) seq = 0;
    else if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
  }
  return seq && max == count ? count : -1;
}

static void check_array(lua_State *L, int v, int json, lua_Integer n, int depth) {
  lua_Integer i;
  FUZZ_CHECK(lua_type(L, json) == LUA_TTABLE && (lua_Integer)lua_rawlen(L, json) == n,
             "a sequence is written as an array of its length");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, v, i);
    lua_rawgeti(L, json, i);
    check_encoded(L, -2, -1, depth + 1);
    lua_pop(L, 2);
  }
}

/* An object: each key, as tostring() makes it, holds its value; keys that
** collide once turned into strings ({[1.5] = x, ["1.5"] = y}) are skipped,
** as JSON readers keep only one of them. */
static void check_object(lua_State *L, int v, int json, int depth) {
  int names;
  lua_Integer distinct = 0, written = 0;
  FUZZ_CHECK(lua_type(L, json) == LUA_TTABLE, "a table is written as a table");
  lua_newtable(L); /* name -> how many keys give it */
  names = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, v)) {
    FUZZ_CHECK(lua_type(L, -2) == LUA_TSTRING || lua_type(L, -2) == LUA_TNUMBER,
               "only string and number keys are encoded");
    lua_pushvalue(L, -2);
    lua_tostring(L, -1);
    lua_pushvalue(L, -1);
    lua_rawget(L, names);
    distinct += lua_isnil(L, -1);
    lua_pushinteger(L, lua_tointeger(L, -1) + 1);
    lua_remove(L, -2);
    lua_rawset(L, names);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, v)) {
    lua_pushvalue(L, -2);
    lua_tostring(L, -1); /* name */
    lua_pushvalue(L, -1);
    lua_rawget(L, names);
    if (lua_tointeger(L, -1) == 1) {
      lua_pop(L, 1);
      lua_rawget(L, json);
      FUZZ_CHECK(!lua_isnil(L, -1), "every key is written");
      check_encoded(L, -2, -1, depth + 1);
      lua_pop(L, 2);
    } else {
      lua_pop(L, 3);
    }
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, json)) {
    written++;
    lua_pop(L, 1);
  }
  FUZZ_CHECK(written == distinct, "an object gets one member per key name");
}

/* The value at v, encoded then decoded by cjson, is the one at json. */
static void check_encoded(lua_State *L, int v, int json, int depth) {
  lua_Integer n;
  v = lua_absindex(L, v);
  json = lua_absindex(L, json);
  luaL_checkstack(L, 12, "check_encoded");
  FUZZ_CHECK(depth <= CHECK_DEPTH, "nesting is bounded");
  switch (lua_type(L, v)) {
    case LUA_TNIL:
    case LUA_TLIGHTUSERDATA:
      FUZZ_CHECK(lua_touserdata(L, v) == NULL, "only atai.null of the light userdata");
      FUZZ_CHECK(lua_type(L, json) == LUA_TLIGHTUSERDATA && lua_touserdata(L, json) == NULL,
                 "nil and atai.null are written as null");
      break;
    case LUA_TBOOLEAN:
    case LUA_TSTRING: FUZZ_CHECK(lua_rawequal(L, v, json), "a scalar reads back"); break;
    case LUA_TNUMBER:
      FUZZ_CHECK(lua_type(L, json) == LUA_TNUMBER &&
                 (double)lua_tonumber(L, v) == (double)lua_tonumber(L, json),
                 "a number reads back as its nearest double");
      break;
    case LUA_TTABLE:
      n = sequence_length(L, v);
      if (n > 0) check_array(L, v, json, n, depth);
      else if (n == 0) FUZZ_CHECK(lua_istable(L, json) && lua_rawlen(L, json) == 0 &&
                                  sequence_length(L, json) == 0, "an empty table stays empty");
      else check_object(L, v, json, depth);
      break;
    default: FUZZ_CHECK(0, "encoded a value JSON cannot hold"); break;
  }
}

/* ---- the two modes -------------------------------------------------------- */

/* Whether the error on top is one the encoder raises on purpose. Decoded
** JSON can only be too deep, or hold a number beyond the double range
** (1e400), which cjson reads as an infinity. */
static int encoder_error(lua_State *L, int program) {
  return fuzz_error_has(L, "fuzz body: nested deeper than") ||
         fuzz_error_has(L, "fuzz body: cannot encode NaN or infinity") ||
         (program && (fuzz_error_has(L, "fuzz body: cannot encode") ||
                      fuzz_error_has(L, "fuzz body: object keys must be strings")));
}

static void test_program(lua_State *L, const uint8_t *data, size_t size) {
  FuzzReader r;
  r.p = data + 1;
  r.end = data + size;
  while (r.p < r.end) step(L, &r);
  lua_settop(L, 1); /* the value: the first one made, or nil */
  json_encode(L, 1, &out, "fuzz body");
  lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
  lua_pushlstring(L, out.data, out.len);
  lua_call(L, 1, 1); /* cjson reads every encoding */
  check_encoded(L, 1, 2, 0);
}

static void test_round_trip(lua_State *L, const uint8_t *data, size_t size) {
  if (!json_decode(L, (const char *)data, size)) return;
  json_encode(L, 1, &out, "fuzz body");
  FUZZ_CHECK(json_decode(L, out.data, out.len), "the encoding decodes");
  FUZZ_CHECK(fuzz_same(L, 1, 2), "decode(encode(v)) is v");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  int program = size > 0 && data[0] == 0x01;
  int status = fuzz_pcall(L, program ? test_program : test_round_trip, data, size);
  if (status != LUA_OK && !encoder_error(L, program)) fuzz_no_error(L, status);
  lua_settop(L, 0);
  return 0;
}

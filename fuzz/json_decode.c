/*
** json_decode.c: libFuzzer harness for json_decode (src/json.c): its fast
** path, or cjson's decode plus atai's shaping when the fast path gives up,
** on arbitrary bytes.
**
** Properties: exactly one value is pushed (the shaped value, or cjson's
** message when json_decode says the input is malformed); and compared with
** a plain cjson decode of the same bytes, the shaped value differs only by
** atai's rules: null object members dropped, nulls kept in arrays, and on
** 5.3+ integral numbers strictly within +-2^53 turned into integers. A bare
** top-level number is left as cjson gave it (json_shape shapes tables only).
*/
#include "atai_json.h"
#include "fuzz_lua.h"

static void check_shaped(lua_State *L, int raw, int shaped);

/* A number keeps its value; it is an integer exactly when atai's rule says. */
static void check_number(lua_State *L, int raw, int shaped) {
  lua_Number n = lua_tonumber(L, raw);
  int want_int = lua_isinteger(L, raw) ||
                 (n > -JSON_EXACT_INT && n < JSON_EXACT_INT && n == (lua_Number)(lua_Integer)n);
  FUZZ_CHECK(lua_type(L, shaped) == LUA_TNUMBER, "a number stays a number");
  FUZZ_CHECK(lua_rawequal(L, raw, shaped), "a number keeps its value");
  FUZZ_CHECK(lua_isinteger(L, shaped) == want_int, "integers exactly within +-2^53");
}

/* A JSON array: same length, elements shaped, nulls kept. */
static void check_array(lua_State *L, int raw, int shaped) {
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, raw);
  FUZZ_CHECK((lua_Integer)lua_rawlen(L, shaped) == n, "an array keeps its length");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, raw, i);
    lua_rawgeti(L, shaped, i);
    check_shaped(L, -2, -1);
    lua_pop(L, 2);
  }
}

/* A JSON object: null members gone, the others shaped, nothing added. */
static void check_object(lua_State *L, int raw, int shaped) {
  lua_Integer kept = 0, keys = 0;
  lua_pushnil(L);
  while (lua_next(L, raw)) {
    FUZZ_CHECK(lua_type(L, -2) == LUA_TSTRING, "object keys are strings");
    lua_pushvalue(L, -2);
    lua_rawget(L, shaped);
    if (lua_type(L, -2) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -2) == NULL) {
      FUZZ_CHECK(lua_isnil(L, -1), "a null member is dropped");
    } else {
      check_shaped(L, -2, -1);
      kept++;
    }
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, shaped)) {
    keys++;
    lua_pop(L, 1);
  }
  FUZZ_CHECK(keys == kept, "shaping adds no member");
}

static void check_shaped(lua_State *L, int raw, int shaped) {
  raw = lua_absindex(L, raw);
  shaped = lua_absindex(L, shaped);
  luaL_checkstack(L, 8, "check_shaped");
  switch (lua_type(L, raw)) {
    case LUA_TNUMBER: check_number(L, raw, shaped); break;
    case LUA_TTABLE:
      FUZZ_CHECK(lua_type(L, shaped) == LUA_TTABLE, "a table stays a table");
      FUZZ_CHECK(!lua_rawequal(L, raw, shaped), "two decodes, two tables");
      if (lua_rawlen(L, raw) > 0) check_array(L, raw, shaped);
      else check_object(L, raw, shaped);
      break;
    default: FUZZ_CHECK(lua_rawequal(L, raw, shaped), "a scalar is kept"); break;
  }
}

static void test(lua_State *L, const uint8_t *data, size_t size) {
  int ok = json_decode(L, (const char *)data, size);
  FUZZ_CHECK(lua_gettop(L) == 1, "json_decode pushes one value");
  if (!ok) {
    FUZZ_CHECK(lua_type(L, 1) == LUA_TSTRING, "malformed JSON gives a message");
    return;
  }
  lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
  lua_pushlstring(L, (const char *)data, size);
  lua_call(L, 1, 1); /* cjson alone accepts what json_decode accepted */
  if (lua_type(L, 2) == LUA_TNUMBER) {
    FUZZ_CHECK(lua_rawequal(L, 1, 2) && lua_isinteger(L, 1) == lua_isinteger(L, 2),
               "a bare number is cjson's");
    return;
  }
  check_shaped(L, 2, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_run(test, data, size);
}

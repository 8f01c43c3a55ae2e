/*
** fuzz_lua.h: what every harness shares. One Lua 5.4 state for the whole
** run (standard libraries, atai's metatables, and the decode function of a
** private cjson instance configured as atai.core's), each input run inside
** a C closure whose upvalue 1 is that decoder (UV_DECODE, as in atai.core),
** under lua_pcall; a broken property aborts, which libFuzzer records as a
** crash with its input. Include after atai_json.h or atai_units.h.
*/
#ifndef ATAI_FUZZ_LUA_H
#define ATAI_FUZZ_LUA_H

#include <stdint.h>
#include <lualib.h>

#define FUZZ_DECODER_KEY "atai.fuzz.decode"

/* Aborts with `what` unless `cond`. */
#define FUZZ_CHECK(cond, what) \
  do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, (what)); } while (0)

static void fuzz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: property broken: %s\n", file, line, what);
  abort();
}

/* Pushes the decode function of a new cjson instance with strict numbers,
** as atai.core's push_cjson_decode does (registering cjson.null as the
** decoder's null, which json_decode reads). */
static void fuzz_push_decoder(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "null");
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* The run's Lua state, made on first use. */
static lua_State *fuzz_state(void) {
  static lua_State *L = NULL;
  if (L) return L;
  L = luaL_newstate();
  FUZZ_CHECK(L != NULL, "luaL_newstate");
  luaL_openlibs(L);
  error_open(L);
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  fuzz_push_decoder(L);
  lua_setfield(L, LUA_REGISTRYINDEX, FUZZ_DECODER_KEY);
  return L;
}

typedef void (*FuzzTest)(lua_State *L, const uint8_t *data, size_t size);

typedef struct FuzzCall {
  FuzzTest test;
  const uint8_t *data;
  size_t size;
} FuzzCall;

static int fuzz_trampoline(lua_State *L) {
  FuzzCall *fc = (FuzzCall *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  fc->test(L, fc->data, fc->size);
  return 0;
}

/* Runs test(L, data, size) as the body of a C closure with the decoder as
** upvalue UV_DECODE, under lua_pcall, on an empty stack. Returns the pcall
** status; on an error its message is left on top of the stack. */
static int fuzz_pcall(lua_State *L, FuzzTest test, const uint8_t *data, size_t size) {
  FuzzCall fc;
  fc.test = test;
  fc.data = data;
  fc.size = size;
  lua_settop(L, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, FUZZ_DECODER_KEY);
  lua_pushcclosure(L, fuzz_trampoline, 1);
  lua_pushlightuserdata(L, &fc);
  return lua_pcall(L, 1, 0, 0);
}

/* Aborts, printing the Lua error on top, when a run raised unexpectedly. */
static void fuzz_no_error(lua_State *L, int status);

/* The usual body of LLVMFuzzerTestOneInput: runs test on the input, where
** any Lua error is a failure. */
static int fuzz_run(FuzzTest test, const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  fuzz_no_error(L, fuzz_pcall(L, test, data, size));
  lua_settop(L, 0);
  return 0;
}

/* Whether the error message on top of the stack contains `part`. */
static int fuzz_error_has(lua_State *L, const char *part) {
  const char *msg = lua_tostring(L, -1);
  return msg != NULL && strstr(msg, part) != NULL;
}

static void fuzz_no_error(lua_State *L, int status) {
  if (status == LUA_OK) return;
  fprintf(stderr, "unexpected Lua error: %s\n", lua_tostring(L, -1));
  fuzz_fail(__FILE__, __LINE__, "the unit raised");
}

/* Reads the fuzz input as a program's operands; past the end it reads
** zeros. */
typedef struct FuzzReader {
  const uint8_t *p, *end;
} FuzzReader;

static unsigned fuzz_byte(FuzzReader *r) {
  return r->p < r->end ? *r->p++ : 0;
}

/* Fills n bytes at dst (zeros past the end of the input). */
static void fuzz_bytes(FuzzReader *r, void *dst, size_t n) {
  size_t have = (size_t)(r->end - r->p), take = have < n ? have : n;
  memset(dst, 0, n);
  memcpy(dst, r->p, take);
  r->p += take;
}

/* Whether the values at a and b are the same: same types, numbers equal
** with the same integer/float subtype, tables with the same keys holding
** the same values (recursively). */
static int fuzz_same(lua_State *L, int a, int b) {
  int same = 1;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  if (lua_type(L, a) == LUA_TNUMBER)
    return lua_isinteger(L, a) == lua_isinteger(L, b) && lua_rawequal(L, a, b);
  if (lua_type(L, a) != LUA_TTABLE) return lua_rawequal(L, a, b);
  luaL_checkstack(L, 6, "fuzz_same");
  lua_pushnil(L);
  while (same && lua_next(L, a)) { /* count a's keys on the way */
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    same = fuzz_same(L, -2, -1);
    lua_pop(L, 2);
  }
  if (!same) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  while (same && lua_next(L, b)) { /* every key of b is in a */
    lua_pushvalue(L, -2);
    lua_rawget(L, a);
    same = !lua_isnil(L, -1);
    lua_pop(L, 2);
  }
  if (!same) lua_pop(L, 1);
  return same;
}

#endif

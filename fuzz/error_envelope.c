/*
** error_envelope.c: libFuzzer harness for error_read_envelope (src/error.c)
** on any JSON body, decoded by json_decode as push_status_error does.
**
** Properties: the envelope reader pops the body and leaves the error table
** where it was; message is still a string and code, error_uid, suggestion
** are strings when set, errors a table, retry_after a number; kind and
** retryable are untouched; and tostring(err) starts "atai server error
** (HTTP 503): ", built without raising.
*/
#include "atai_json.h"
#include "fuzz_lua.h"

/* err[field] is nil or of type `type`. */
static void check_field(lua_State *L, int err, const char *field, int type) {
  lua_getfield(L, err, field);
  FUZZ_CHECK(lua_isnil(L, -1) || lua_type(L, -1) == type, field);
  lua_pop(L, 1);
}

static void check_error(lua_State *L, int err) {
  static const char *const strings[] = {"code", "error_uid", "suggestion"};
  size_t i;
  lua_getfield(L, err, "message");
  FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "message is a string");
  lua_getfield(L, err, "kind");
  FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "server") == 0,
             "kind is kept");
  lua_getfield(L, err, "retryable");
  FUZZ_CHECK(lua_type(L, -1) == LUA_TBOOLEAN, "retryable is kept");
  lua_pop(L, 3);
  for (i = 0; i < sizeof strings / sizeof strings[0]; i++)
    check_field(L, err, strings[i], LUA_TSTRING);
  check_field(L, err, "errors", LUA_TTABLE);
  check_field(L, err, "retry_after", LUA_TNUMBER);
}

static void test(lua_State *L, const uint8_t *data, size_t size) {
  int err;
  const char *text;
  if (!json_decode(L, (const char *)data, size) || lua_type(L, -1) != LUA_TTABLE) return;
  error_new(L, "server", "HTTP 503");
  lua_pushinteger(L, 503);
  lua_setfield(L, -2, "status");
  lua_insert(L, -2); /* err body */
  err = lua_gettop(L) - 1;
  error_read_envelope(L, err);
  FUZZ_CHECK(lua_gettop(L) == err, "the body is popped, the error kept");
  FUZZ_CHECK(lua_type(L, err) == LUA_TTABLE, "the error is a table");
  check_error(L, err);
  lua_pushcfunction(L, error_tostring);
  lua_pushvalue(L, err);
  lua_call(L, 1, 1);
  text = lua_tostring(L, -1);
  FUZZ_CHECK(text != NULL && strncmp(text, "atai server error (HTTP 503): ", 30) == 0,
             "tostring(err) names the kind");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_run(test, data, size);
}

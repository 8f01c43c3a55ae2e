/*
** error.c: the error table returned as the second value of `nil, err`.
**
** Every runtime failure (configuration, network, TLS, timeout, HTTP status,
** JSON) becomes one table shape with the "atai.Error" metatable:
**   kind, status, message, code, error_uid, suggestion, errors, body,
**   retryable, attempts, method, url, curl_code, retry_after
** Which kind a status or a curl result gets is data, in the tables below.
*/

#define ERROR_MT "atai.Error"
#define ERROR_BODY_MAX 4096 /* bytes of a failed response kept in err.body */

/* HTTP status -> kind. Unlisted non-2xx statuses are kind "http". */
static const struct StatusKind {
  int lo, hi;
  const char *kind;
} status_kinds[] = {
  {400, 400, "invalid_request"}, {401, 401, "auth"},
  {403, 403, "permission"},      {404, 404, "not_found"},
  {409, 409, "conflict"},        {413, 413, "too_large"},
  {422, 422, "invalid_request"}, {429, 429, "rate_limited"},
  {500, 599, "server"},
};

/* Statuses worth another attempt of a request that is safe to repeat. */
static const int transient_statuses[] = {408, 429, 500, 502, 503, 504};

/* curl result -> kind. `transient`: another attempt may succeed; `unsent`:
** the request cannot have reached the server, so even a POST may be
** repeated; `message`: what happened, in words, before libcurl's detail.
** Unlisted codes are transient "network" errors that may have reached the
** server (reset, partial read...). */
static const struct CurlKind {
  CURLcode code;
  const char *kind;
  unsigned char transient, unsent;
  const char *message;
} curl_kinds[] = {
  {CURLE_OPERATION_TIMEDOUT, "timeout", 1, 0, NULL},
  {CURLE_COULDNT_RESOLVE_HOST, "network", 1, 1, NULL},
  {CURLE_COULDNT_RESOLVE_PROXY, "network", 1, 1, NULL},
  {CURLE_COULDNT_CONNECT, "network", 1, 1, NULL},
  {CURLE_PEER_FAILED_VERIFICATION, "network", 0, 1, NULL},
  {CURLE_SSL_CONNECT_ERROR, "network", 0, 1, NULL},
  {CURLE_SSL_CACERT_BADFILE, "config", 0, 1, NULL},
  {CURLE_SSL_CERTPROBLEM, "config", 0, 1, NULL},
  {CURLE_URL_MALFORMAT, "config", 0, 1, NULL},
  /* Our URLs are always http(s): this is a reply without an HTTP status
  ** line, which libcurl takes for HTTP/0.9. */
  {CURLE_UNSUPPORTED_PROTOCOL, "network", 1, 0, "the server's reply was not HTTP"},
  {CURLE_WEIRD_SERVER_REPLY, "network", 1, 0, "the server's reply was not HTTP"},
  /* libcurl says "Out of memory" for a header line over its 100 KiB limit */
  {CURLE_OUT_OF_MEMORY, "too_large", 0, 0,
   "a response header line was larger than libcurl accepts (100 KiB), or memory ran out"},
  {CURLE_BAD_CONTENT_ENCODING, "decode", 0, 0, NULL},
  {CURLE_TOO_MANY_REDIRECTS, "http", 0, 0, NULL},
};

static const char *status_kind(long status) {
  size_t i;
  for (i = 0; i < sizeof status_kinds / sizeof status_kinds[0]; i++)
    if (status >= status_kinds[i].lo && status <= status_kinds[i].hi)
      return status_kinds[i].kind;
  return "http";
}

static int status_is_transient(long status) {
  size_t i;
  for (i = 0; i < sizeof transient_statuses / sizeof transient_statuses[0]; i++)
    if (status == transient_statuses[i]) return 1;
  return 0;
}

static const struct CurlKind *curl_kind(CURLcode code) {
  static const struct CurlKind fallback = {CURLE_OK, "network", 1, 0, NULL};
  size_t i;
  for (i = 0; i < sizeof curl_kinds / sizeof curl_kinds[0]; i++)
    if (code == curl_kinds[i].code) return &curl_kinds[i];
  return &fallback;
}

/* Pushes a new error table with the metatable, `kind` and `message` set. */
static void error_new(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 12);
  luaL_setmetatable(L, ERROR_MT);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "retryable");
}

/* err[field] = src[field] when that is a string; src is the stack top. */
static void error_copy_string(lua_State *L, int err, const char *field) {
  lua_getfield(L, -1, field);
  if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, err, field);
  else lua_pop(L, 1);
}

/* The current envelope: {"errors": [{code, message, suggestion, error_uid}]}.
** The first error names the failure; all of them are kept in err.errors. */
static void error_read_errors(lua_State *L, int err, int list) {
  lua_Integer count = (lua_Integer)lua_rawlen(L, list);
  lua_pushvalue(L, list);
  lua_setfield(L, err, "errors");
  lua_rawgeti(L, list, 1);
  if (lua_type(L, -1) == LUA_TTABLE) {
    error_copy_string(L, err, "code");
    error_copy_string(L, err, "message");
    error_copy_string(L, err, "error_uid");
    error_copy_string(L, err, "suggestion");
    if (count > 1) {
      lua_getfield(L, err, "message");
      lua_pushfstring(L, "%s (and %d more)", lua_tostring(L, -1), (int)(count - 1));
      lua_setfield(L, err, "message");
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* The legacy envelope: {"detail": "..."} or FastAPI's [{"msg": ...}]. */
static void error_read_detail(lua_State *L, int err, int detail) {
  if (lua_type(L, detail) == LUA_TSTRING) {
    lua_pushvalue(L, detail);
    lua_setfield(L, err, "message");
    return;
  }
  lua_rawgeti(L, detail, 1);
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "msg");
    if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, err, "message");
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The superseded envelope: {"error": {code, message, details: {retry_after}}}. */
static void error_read_error_object(lua_State *L, int err, int object) {
  lua_pushvalue(L, object);
  error_copy_string(L, err, "code");
  error_copy_string(L, err, "message");
  lua_getfield(L, -1, "details");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "retry_after");
    if (lua_type(L, -1) == LUA_TNUMBER) lua_setfield(L, err, "retry_after");
    else lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* Fills message/code/error_uid/suggestion/errors of the error at `err`
** from the decoded body on top of the stack; pops the body. */
static void error_read_envelope(lua_State *L, int err) {
  int body = lua_gettop(L);
  lua_getfield(L, body, "errors");
  lua_getfield(L, body, "detail");
  lua_getfield(L, body, "error");
  if (lua_type(L, body + 1) == LUA_TTABLE) error_read_errors(L, err, body + 1);
  else if (lua_type(L, body + 2) == LUA_TSTRING || lua_type(L, body + 2) == LUA_TTABLE)
    error_read_detail(L, err, body + 2);
  else if (lua_type(L, body + 3) == LUA_TTABLE) error_read_error_object(L, err, body + 3);
  lua_settop(L, body - 1);
}

/* err.__tostring: "atai not_found error (HTTP 404): Job x not found [code=...]",
** plus "(after 3 attempts in 12.5 s)" when a request was repeated. Built
** from the table's fields only; the API key is never among them. */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  lua_Number status, attempts, elapsed;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "status");
  lua_getfield(L, 1, "message");
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "error_uid");
  lua_getfield(L, 1, "attempts");
  lua_getfield(L, 1, "elapsed");
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "atai ");
  luaL_addstring(&b, lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "unknown");
  luaL_addstring(&b, " error");
  status = lua_type(L, 3) == LUA_TNUMBER ? lua_tonumber(L, 3) : -1;
  if (status >= 0 && status <= 99999 && status == (lua_Number)(int)status) {
    lua_pushfstring(L, " (HTTP %d)", (int)status);
    luaL_addvalue(&b);
  }
  if (lua_type(L, 4) == LUA_TSTRING) {
    luaL_addstring(&b, ": ");
    luaL_addstring(&b, lua_tostring(L, 4));
  }
  if (lua_type(L, 5) == LUA_TSTRING) {
    luaL_addstring(&b, " [code=");
    luaL_addstring(&b, lua_tostring(L, 5));
    luaL_addstring(&b, "]");
  }
  if (lua_type(L, 6) == LUA_TSTRING) {
    luaL_addstring(&b, " [error_uid=");
    luaL_addstring(&b, lua_tostring(L, 6));
    luaL_addstring(&b, "]");
  }
  attempts = lua_type(L, 7) == LUA_TNUMBER ? lua_tonumber(L, 7) : 0;
  elapsed = lua_type(L, 8) == LUA_TNUMBER ? lua_tonumber(L, 8) : -1;
  if (attempts > 1 && attempts <= 1000 && elapsed >= 0 && elapsed < 1e9) {
    char text[80];
    snprintf(text, sizeof text, " (after %d attempts in %.1f s)", (int)attempts, (double)elapsed);
    luaL_addstring(&b, text);
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.new_error(t): gives a table (kind, message, ...) the error metatable,
** so the Lua layer's own failures (wait timeout, pagination) look the same. */
static int l_new_error(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "kind");
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'kind' must be a string");
  lua_pop(L, 1);
  lua_getfield(L, 1, "retryable");
  if (lua_isnil(L, -1)) {
    lua_pushboolean(L, 0);
    lua_setfield(L, 1, "retryable");
  }
  lua_pop(L, 1);
  luaL_setmetatable(L, ERROR_MT);
  return 1;
}

/* Creates the "atai.Error" metatable in the registry. */
static void error_open(lua_State *L) {
  luaL_newmetatable(L, ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "atai.Error");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

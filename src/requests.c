/*
** requests.c: the C entry points that start a request.
**
** Each exists once and runs three ways: blocking (start + wait on the
** client's engine), async (returns the handle at once) and, inside a
** coroutine started by atai.run, blocking-looking but yielding its handle
** so the coroutine resumes with the results. get_job and request are here
** in C because they are the hot path; every other endpoint is described in
** lua/atai/api.lua and goes through client:_call / client:_start.
*/

/* How a start returns: wait for the results, hand back the handle, or
** yield the handle to the atai.run driver. */
typedef enum { RUN_BLOCKING, RUN_ASYNC, RUN_YIELD } RunAs;

/* Replaces the async view at idx (client.async, a table {client}) by its
** client and returns it. */
static Client *view_client(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) raise_at_user(L, "client.async methods are called with ':'", NULL, NULL);
  lua_rawgeti(L, idx, 1);
  lua_replace(L, idx);
  return check_client(L, idx, 0);
}

/* What a blocking entry point does in this coroutine. */
static RunAs blocking_mode(lua_State *L) {
  return in_run(L) ? RUN_YIELD : RUN_BLOCKING;
}

/* Puts the transfer at `idx` (client at 1) in flight and returns what the
** entry point returns. */
static int launch(lua_State *L, Client *c, int idx, RunAs how) {
  Transfer *t = (Transfer *)lua_touserdata(L, idx);
  if (how == RUN_BLOCKING && client_unusable(L, c)) return 2;
  t->unusable = c->config_error != NULL;
  transfer_submit(L, c, 1, idx, how == RUN_BLOCKING, how == RUN_YIELD);
  if (how == RUN_BLOCKING) return engine_wait(L, c, idx, -1);
  lua_settop(L, idx);
  if (how == RUN_YIELD) return lua_yield(L, 1);
  return 1;
}

/* get_job with stack: client, id, opts. */
static int start_get_job(lua_State *L, Client *c, RunAs how) {
  size_t len;
  const char *id = check_id(L, 2, "get_job");
  int opts = check_opts(L, 3, "get_job");
  Transfer *t;
  lua_settop(L, 3);
  len = lua_rawlen(L, 2);
  t = transfer_new(L, c, MODE_OBJECT, "GET");
  if (opts) read_call_opts(L, opts, "get_job", t);
  if (!buffer_add(&t->url, c->base_url, c->base_url_len) ||
      !buffer_add(&t->url, "/batch/jobs/", 12) || !buffer_add(&t->url, id, len))
    return luaL_error(L, "not enough memory");
  return launch(L, c, 4, how);
}

/* client:get_job(id [, opts]) -> job | nil, err: GET {endpoint}/batch/jobs/{id}.
** opts: timeout, max_retries (for this call). */
static int l_client_get_job(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  return start_get_job(L, c, blocking_mode(L));
}

/* client.async:get_job(id [, opts]) -> handle */
static int l_async_get_job(lua_State *L) {
  return start_get_job(L, view_client(L, 1), RUN_ASYNC);
}

/* request with stack: client, method, path, opts; `fname` names it in
** argument errors. */
static int start_request(lua_State *L, Client *c, Mode mode, const char *fname, RunAs how) {
  const char *method = check_method(L, 2);
  size_t path_len;
  const char *path = check_path(L, 3);
  int opts = check_opts(L, 4, fname), query = 0, headers = 0, has_body = 0;
  Transfer *t;
  lua_settop(L, 4);
  path_len = lua_rawlen(L, 3);
  t = transfer_new(L, c, mode, method); /* at 5 */
  if (opts) {
    query = opt_table(L, opts, "query", fname);
    headers = opt_table(L, opts, "headers", fname);
    read_call_opts(L, opts, fname, t);
    lua_getfield(L, opts, "idempotent");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TBOOLEAN) arg_error(L, 4, fname, "opts.idempotent: boolean expected");
      t->policy = lua_toboolean(L, -1) ? RETRY_TRANSIENT : RETRY_UNSENT;
    }
    lua_getfield(L, opts, "body");
    if (!lua_isnil(L, -1)) {
      /* libcurl would turn a GET with a body into a POST. */
      if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        arg_error(L, 4, fname, lua_pushfstring(L, "opts.body: a %s request has no body", method));
      json_encode(L, -1, &t->payload, "request body");
      has_body = 1;
    }
  }
  if (headers || has_body) build_headers(L, c, t, headers, has_body, fname);
  build_url(L, c, t, path, path_len, query, fname);
  lua_settop(L, 5);
  return launch(L, c, 5, how);
}

/* client:request(method, path [, opts]) -> body, meta | nil, err
** opts: query, body, headers, idempotent, timeout, max_retries. */
static int l_client_request(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  return start_request(L, c, MODE_META, "request", blocking_mode(L));
}

/* client.async:request(method, path [, opts]) -> handle */
static int l_async_request(lua_State *L) {
  return start_request(L, view_client(L, 1), MODE_META, "request", RUN_ASYNC);
}

/* client:_call(method, path, opts) -> body | nil, err: the blocking form of
** an endpoint described in lua/atai/api.lua (arguments already checked). */
static int l_client_call(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  return start_request(L, c, MODE_BODY, "request", blocking_mode(L));
}

/* client:_start(method, path, opts) -> handle: its async form. */
static int l_client_start(lua_State *L) {
  Client *c = check_client(L, 1, 0);
  return start_request(L, c, MODE_BODY, "request", RUN_ASYNC);
}

/* client.async:sleep(seconds) -> handle that completes with true after
** `seconds`, on the client's engine timers (nothing sleeps). */
static int l_async_sleep(lua_State *L) {
  Client *c = view_client(L, 1);
  lua_Number s = lua_tonumber(L, 2);
  Transfer *t;
  if (!(lua_type(L, 2) == LUA_TNUMBER && s >= 0 && s <= 1e12))
    return arg_error(L, 2, "sleep", "seconds: number >= 0 expected");
  lua_settop(L, 2);
  t = transfer_new(L, c, MODE_TIMER, NULL);
  t->due = monotonic_seconds() + s * c->time_scale;
  transfer_submit(L, c, 1, 3, 0, 0);
  return 1;
}

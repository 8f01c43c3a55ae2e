/*
** client.c: layer 4, Lua bindings of one client: the "atai.Client"
** userdata, its constructor (new_client), its methods (poll, pending,
** timeout, sockets, close, get_job, request) and its async view, which this
** file registers (client_open).
**
** A client owns a libcurl multi handle (its connection cache: connections,
** TLS sessions and DNS stay warm across requests), a pool of idle
** easy handles configured once (one per max_concurrency slot), the header
** list every request sends, and
** the callback queue that poll() drains. Configuration policy (defaults,
** environment, endpoint and proxy rules, bounds) lives in
** lua/atai/config.lua, which hands new_client a resolved, checked table.
*/

/* Raises unless idx is an open client. `blocking`: the call may wait, which
** a callback run by poll/wait must not do (it would re-enter the engine). */
static Client *check_client(lua_State *L, int idx, int blocking) {
  Client *c = (Client *)luaL_checkudata(L, idx, CLIENT_MT);
  if (c->life >= LIFE_CLOSING) raise_at_user(L, "attempt to use a closed atai client", NULL, NULL);
  if (blocking && c->in_callback && !in_run(L))
    raise_at_user(L, "blocking call inside a callback: use client.async", NULL, NULL);
  return c;
}

/* Frees the strings too: only from __gc, when nothing can read them. */
static void client_free(lua_State *L, Client *c) {
  client_release(L, c);
  free(c->base_url);
  free(c->config_error);
  free(c->user_agent);
  free(c->ca_file);
  free(c->ca_path);
  free(c->proxy);
  c->base_url = c->config_error = c->user_agent = c->ca_file = c->ca_path = c->proxy = NULL;
}

/* tostring(client): the endpoint, never the key. */
static int l_client_tostring(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->life == LIFE_CLOSED) lua_pushfstring(L, "atai.Client (closed): %p", (void *)c);
  else lua_pushfstring(L, "atai.Client (%s): %p", c->base_url, (void *)c);
  return 1;
}

/* opts[field] as a string, or NULL when nil; the value stays on the stack. */
static const char *opt_string(lua_State *L, const char *field) {
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, 1, lua_pushfstring(L, "%s: string expected, got %s", field,
                                         luaL_typename(L, -1)));
  return lua_tostring(L, -1);
}

/* opts[field], or dflt; config.lua checked it, C asserts [min, max]. */
static double opt_number(lua_State *L, const char *field, double dflt, double min, double max) {
  double n = dflt;
  lua_getfield(L, 1, field);
  if (!lua_isnil(L, -1)) n = lua_tonumber(L, -1);
  ATAI_CHECKED(L, lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && n >= min && n <= max), field);
  lua_pop(L, 1);
  return n;
}

/* Stores opts[field] (a function or nil) as a registry ref. */
static int opt_function(lua_State *L, const char *field) {
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  luaL_argcheck(L, lua_type(L, -1) == LUA_TFUNCTION, 1, "callback option: function expected");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Appends a header every request of the client sends. */
static void base_header(lua_State *L, Client *c, const char *line) {
  struct curl_slist *list = curl_slist_append(c->base_headers, line);
  if (list == NULL) luaL_error(L, "not enough memory");
  c->base_headers = list;
}

/* A malloc'd copy of `s` (NULL stays NULL), stored at once in *slot so
** that __gc frees it if anything later raises. */
static int keep_string(char **slot, const char *s) {
  size_t n;
  if (s == NULL) return 1;
  n = strlen(s) + 1;
  *slot = (char *)malloc(n);
  if (*slot) memcpy(*slot, s, n);
  return *slot != NULL;
}

/* The numbers of the resolved configuration: config.lua checked them, the
** bounds here are only what C asserts (ATAI_CHECKED), never a message. */
static void client_read_numbers(lua_State *L, Client *c) {
  c->timeout_ms = (long)(opt_number(L, "timeout", 60, 0.001, CALL_TIMEOUT_MAX) * 1000);
  c->connect_timeout_ms = (long)(opt_number(L, "connect_timeout", 10, 0.001, CALL_TIMEOUT_MAX) * 1000);
  c->max_response_bytes = (curl_off_t)opt_number(L, "max_response_bytes", 64.0 * 1024 * 1024, 1,
                                                 4503599627370496.0 /* 2^52 */);
  c->max_retries = (int)opt_number(L, "max_retries", 2, 0, MAX_RETRIES_MAX);
  c->backoff = opt_number(L, "retry_backoff", 0.5, 0, 3600);
  c->backoff_max = opt_number(L, "retry_backoff_max", 8, 0, 3600);
  c->max_concurrency = (int)opt_number(L, "max_concurrency", 16, 1, 1000);
}

/* The strings of the resolved configuration, copied into c; returns 0 when
** out of memory. Sets *api_key (left on the stack, anchored). */
static int client_read_strings(lua_State *L, Client *c, const char **api_key) {
  const char *base_url, *config_error, *user_agent;
  int ok;
  /* The strings stay on the stack, anchored, until copied. */
  base_url = opt_string(L, "base_url");
  luaL_argcheck(L, base_url != NULL, 1, "base_url: string expected");
  *api_key = opt_string(L, "api_key");
  config_error = opt_string(L, "config_error");
  if (*api_key && !header_ok(*api_key, strlen(*api_key), 0))
    luaL_argerror(L, 1, "api_key: must not contain control bytes (C0 or DEL)");
  user_agent = opt_string(L, "user_agent");
  if (user_agent && !header_ok(user_agent, strlen(user_agent), 0))
    luaL_argerror(L, 1, "user_agent: must not contain control bytes (C0 or DEL)");
  if (*api_key == NULL || **api_key == '\0')
    config_error = config_error ? config_error
                                : "no API key: set the ATAI_API_KEY environment variable or "
                                  "pass api_key to atai.new()";
  ok = keep_string(&c->base_url, base_url) && keep_string(&c->config_error, config_error) &&
       keep_string(&c->user_agent, user_agent) &&
       keep_string(&c->ca_file, opt_string(L, "ca_file")) &&
       keep_string(&c->ca_path, opt_string(L, "ca_path")) &&
       keep_string(&c->proxy, opt_string(L, "proxy"));
  if (ok && c->user_agent == NULL) ok = keep_string(&c->user_agent, "atai-lua/" ATAI_VERSION);
  c->base_url_len = c->base_url ? strlen(c->base_url) : 0;
  c->secure = c->base_url && strncmp(c->base_url, "https:", 6) == 0;
  return ok;
}

/* The header list every request of c sends. "Expect:" and "Content-Type:"
** switch off what libcurl would add: 100-continue waits, and a form type
** on body-less POSTs. */
static void client_base_headers(lua_State *L, Client *c, const char *api_key) {
  if (api_key && *api_key) {
    lua_pushfstring(L, "Authorization: Bearer %s", api_key);
    base_header(L, c, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  base_header(L, c, "Accept: application/json");
  base_header(L, c, "Expect:");
  base_header(L, c, "Content-Type:");
}

/* Has atai.config judge the per-call options at stack index `opts` (its
** config.call_options: the one rule set, atai.new's bounds); an error it
** raises is positioned at the user's line, as this file's own are. */
static void check_call_opts(lua_State *L, int opts, const char *fname) {
  lua_getfield(L, LUA_REGISTRYINDEX, CALL_CHECK_KEY);
  if (lua_isnil(L, -1)) { /* first use: require("atai.config").call_options */
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "atai.config");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "call_options");
    lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, CALL_CHECK_KEY);
  }
  lua_pushstring(L, fname);
  lua_pushinteger(L, opts - 1);
  lua_pushvalue(L, opts);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      push_user_where(L);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    lua_error(L);
  }
}

/* Reads the per-call options every method takes from the table at `opts`:
** timeout (seconds per attempt), max_retries, once atai.config has
** checked them; C only asserts what it was told. */
static void read_call_opts(lua_State *L, int opts, const char *fname, Transfer *t) {
  lua_Number n;
  check_call_opts(L, opts, fname);
  lua_getfield(L, opts, "timeout");
  if (!lua_isnil(L, -1)) {
    n = lua_tonumber(L, -1);
    ATAI_CHECKED(L, n >= 0.001 && n <= CALL_TIMEOUT_MAX, "opts.timeout");
    t->timeout_ms = (long)(n * 1000);
  }
  lua_getfield(L, opts, "max_retries");
  if (!lua_isnil(L, -1)) {
    n = lua_tonumber(L, -1);
    ATAI_CHECKED(L, n >= 0 && n <= MAX_RETRIES_MAX && n == (lua_Number)(int)n, "opts.max_retries");
    t->max_retries = (int)n;
  }
  lua_pop(L, 2);
}

/* core.new_client(opts) -> client. `opts` is resolved by the Lua layer:
** base_url, user_agent, api_key, timeout, connect_timeout, max_retries,
** retry_backoff, retry_backoff_max, max_response_bytes, max_concurrency,
** ca_file, ca_path, proxy, config_error, on_retry, on_exchange. */
static int l_new_client(lua_State *L) {
  const char *api_key;
  int ok;
  Client *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Born released at index 2: if anything below raises, __gc frees what was
  ** made so far, since every allocation is stored in the struct at once. */
  c = (Client *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->on_retry_ref = c->on_exchange_ref = c->queue_ref = LUA_NOREF;
  c->life = LIFE_CLOSED;
  c->curl_due = -1;
  c->time_scale = 1;
  luaL_setmetatable(L, CLIENT_MT);
  ok = client_read_strings(L, c, &api_key);
  client_read_numbers(L, c);
  c->rng = (unsigned int)time(NULL) ^ (unsigned int)(size_t)c;
  c->on_retry_ref = opt_function(L, "on_retry");
  c->on_exchange_ref = opt_function(L, "on_exchange");
  lua_newtable(L);
  c->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->q_head = c->q_tail = 1;
  c->multi = curl_multi_init();
  c->pool = (CURL **)calloc((size_t)c->max_concurrency, sizeof *c->pool);
  c->spare_body = (Buffer *)calloc((size_t)c->max_concurrency, sizeof *c->spare_body);
  c->spare_headers = (Buffer *)calloc((size_t)c->max_concurrency, sizeof *c->spare_headers);
  if (!ok || !c->multi || !c->pool || !c->spare_body || !c->spare_headers)
    return luaL_error(L, "cannot create an atai client: out of memory or libcurl failed");
  engine_init(c);
  client_base_headers(L, c, api_key);
  c->life = LIFE_OPEN;
  lua_settop(L, 2);
  return 1;
}


/* client:close(), also __close: idempotent. From inside a callback it only
** asks: the close happens once the callback has returned to the engine. */
static int l_client_close(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->in_callback > 0 || c->in_free_callback > 0) {
    if (c->life == LIFE_OPEN) c->life = LIFE_CLOSE_ASKED;
    return 0;
  }
  engine_close(L, c);
  return 0;
}

/* __gc: nothing is in flight (in-flight transfers keep the client alive),
** so no user code runs here; whatever is still queued is dropped. */
static int l_client_gc(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  Transfer *t;
  Timer *tm;
  for (t = c->head; t; t = t->next) {
    attempt_detach(c, t);
    t->client = NULL;
  }
  c->head = c->tail = c->scan_from = NULL;
  for (tm = c->timers_head; tm; tm = tm->next) tm->handle->client = NULL;
  c->timers_head = c->timers_tail = NULL;
  client_free(L, c);
  return 0;
}

/* client:poll([seconds [, {budget = s}]]) -> handles completed in this call.
** Does all ready work and delivers completions and callbacks; when nothing
** completed yet it waits for I/O or a due time, at most `seconds`. */
static int l_client_poll(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  double seconds = luaL_optnumber(L, 2, 0), budget = 0, start, until = 0;
  if (!(seconds >= 0 && seconds <= 1e9)) return arg_error(L, 2, "poll", "seconds: number >= 0 expected");
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "budget");
    if (!lua_isnil(L, -1)) {
      budget = lua_tonumber(L, -1);
      if (!(lua_type(L, -1) == LUA_TNUMBER && budget > 0 && budget <= 1e9))
        return arg_error(L, 3, "poll", "opts.budget: number > 0 (seconds) expected");
    }
  }
  start = monotonic_seconds();
  if (budget > 0) until = start + budget;
  lua_pushinteger(L, poll_loop(L, c, start, seconds, until, 0));
  return 1;
}

/* client:_step(seconds) -> handles completed: poll(seconds) that returns as
** soon as a callback has run too. Op:_wait drives the engine with it: a Lua
** handle completes inside a callback, which poll does not count, so the
** waiter sat idle for the rest of its 0.1 s slice (on average 50 ms at the
** end of every blocking upload or download). */
static int l_client_step(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  double seconds = luaL_checknumber(L, 2);
  if (!(seconds >= 0 && seconds <= 1e9)) return arg_error(L, 2, "_step", "seconds: number >= 0 expected");
  lua_pushinteger(L, poll_loop(L, c, monotonic_seconds(), seconds, 0, 1));
  return 1;
}

/* client:pending() -> handles started and not yet completed. */
static int l_client_pending(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  lua_pushinteger(L, c->pending);
  return 1;
}

/* client:timeout() -> seconds until the engine next needs poll, or nil when
** nothing is in flight. 0 while callbacks wait to run (one on a handle
** already done, or the rest after a callback raised). */
static int l_client_timeout(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  double due, now;
  if (c->life != LIFE_CLOSED && queue_waiting(L, c)) {
    lua_pushnumber(L, 0);
    return 1;
  }
  if ((c->head == NULL && c->timers_head == NULL) || c->life == LIFE_CLOSED) {
    lua_pushnil(L);
    return 1;
  }
  now = monotonic_seconds();
  due = has_news(c) ? now : next_due(c, now);
  if (due == HUGE_VAL) {
    /* only sockets to wait for: poll when they are ready, or in a while */
    lua_pushnumber(L, 1.0);
    return 1;
  }
  lua_pushnumber(L, due > now ? due - now : 0);
  return 1;
}

/* client:sockets() -> {[fd] = "r" | "w" | "rw"}: what libcurl wants watched. */
static int l_client_sockets(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  int i;
  static const char *const what[] = {"", "r", "w", "rw"};
  lua_createtable(L, 0, c->nwatches);
  for (i = 0; i < c->nwatches; i++) {
    int w = c->watches[i].what & 3;
    if (w == 0) continue;
    lua_pushstring(L, what[w]);
    lua_rawseti(L, -2, (int)c->watches[i].fd);
  }
  return 1;
}

/* client:_defer(free, fn, ...): queues fn(...) for the next poll/wait of
** the client, or of any client when called on the module (core.defer).
** `free`: run unguarded (the callbacks of a blocking call). */
static int l_client_defer(lua_State *L) {
  Client *c = lua_type(L, 1) == LUA_TUSERDATA ? (Client *)luaL_checkudata(L, 1, CLIENT_MT) : NULL;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  enqueue_call(L, (c && c->life != LIFE_CLOSED) ? c : NULL, 3, lua_toboolean(L, 2), lua_gettop(L) - 3);
  return 0;
}

/* client:_time_scale(factor): multiplies every wait of the engine (retry
** backoffs, Retry-After, sleeps) without changing what is reported (the
** delay on_retry sees): an injectable clock for tests, which then need not
** sleep for real. Default 1. */
static int l_client_time_scale(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  lua_Number f = luaL_checknumber(L, 2);
  luaL_argcheck(L, f >= 0 && f <= 1, 2, "factor from 0 to 1 expected");
  c->time_scale = (double)f;
  return 0;
}

/* client:_check(): raises at the user's line when the client is closed; the
** Lua layer calls it before it starts a coroutine, which has no user frame. */
static int l_client_check(lua_State *L) {
  check_client(L, 1, 0);
  return 0;
}

/* client:_ops(delta): Lua-made handles (wait_job, ...) count in pending(). */
static int l_client_ops(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  c->pending += (int)luaL_checkinteger(L, 2);
  return 0;
}

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
  if (how == RUN_BLOCKING && client_unusable(L, c)) return 2;
  transfer_submit(L, c, 1, idx, how == RUN_BLOCKING, how == RUN_YIELD,
                  c->config_error != NULL ? OUTCOME_CONFIG : OUTCOME_PENDING);
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
  if (!buffer_reserve_exact(&t->x->url, c->base_url_len + 12 + len) ||
      !buffer_add(&t->x->url, c->base_url, c->base_url_len) ||
      !buffer_add(&t->x->url, "/batch/jobs/", 12) || !buffer_add(&t->x->url, id, len))
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
      json_encode(L, -1, &t->x->payload, "request body");
      buffer_fit(&t->x->payload);
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
  t->timer->due = monotonic_seconds() + s * c->time_scale;
  transfer_submit(L, c, 1, 3, 0, 0, OUTCOME_PENDING);
  return 1;
}


/* Pushes the client's user value at idx, a table made on first need:
** [1] its async view, settings = the Lua layer's settings. */
static void push_client_uv(lua_State *L, int idx) {
  if (atai_getuv(L, idx) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  atai_setuv(L, idx);
}

/* P.is_closed(client) -> whether the client is closed (close() or __gc). */
static int l_client_is_closed(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  lua_pushboolean(L, c->life == LIFE_CLOSED);
  return 1;
}

/* P.settings(client) -> the table of the Lua layer's settings for this
** client (max_pages, ...), kept in the client's user value: it lives and
** dies with the client, no side table keyed by clients. */
static int l_client_settings(lua_State *L) {
  luaL_checkudata(L, 1, CLIENT_MT);
  push_client_uv(L, 1);
  lua_getfield(L, -1, "settings");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "settings");
  }
  return 1;
}

/* P.on_work(fn | nil) -> the previous hook: fn(client) is called whenever
** a request or sleep of any client is about to be put in flight (atai.uv
** wakes its loop). */
static int l_on_work(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, ON_WORK_KEY);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, ON_WORK_KEY);
  return 1;
}

/* client.__index: its methods, or `async`: the client's async view, a
** table {client} whose methods start requests and return handles. It is
** kept in the client's user value (a cycle the collector handles). */
static int l_client_index(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  if (!lua_isnil(L, -1) || lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "async") != 0)
    return 1;
  push_client_uv(L, 1);
  lua_rawgeti(L, -1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 1);
  }
  return 1;
}

static const luaL_Reg client_methods[] = {
  {"get_job", l_client_get_job},
  {"request", l_client_request},
  {"poll", l_client_poll},
  {"pending", l_client_pending},
  {"timeout", l_client_timeout},
  {"sockets", l_client_sockets},
  {"close", l_client_close},
  {NULL, NULL}
};

/* What the Lua layer may do to a client and users may not (atai.core.private). */
static const luaL_Reg client_private[] = {
  {"call", l_client_call},
  {"start", l_client_start},
  {"step", l_client_step},
  {"defer", l_client_defer},
  {"ops", l_client_ops},
  {"time_scale", l_client_time_scale},
  {"check", l_client_check},
  {"is_closed", l_client_is_closed},
  {"settings", l_client_settings},
  {"on_work", l_on_work},
  {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", l_client_gc},
  {"__close", l_client_close},
  {"__tostring", l_client_tostring},
  {NULL, NULL}
};

static const luaL_Reg async_methods[] = {
  {"get_job", l_async_get_job},
  {"request", l_async_request},
  {"sleep", l_async_sleep},
  {NULL, NULL}
};

/* Registers metatable atai.Client, its methods (module.Client), the async
** view's metatable (module.async_mt, its methods module.Async), and the
** client's private functions in the table at `private`. */
static void client_open(lua_State *L, int module, int decode, int private) {
  lua_pushvalue(L, private);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, client_private, MODULE_UPVALUES);
  lua_pop(L, 1);
  new_type(L, CLIENT_MT, client_meta, client_methods, decode); /* methods */
  lua_pushvalue(L, -1);
  lua_setfield(L, module, "Client");
  lua_newtable(L); /* async view metatable, its __index the async methods */
  lua_newtable(L);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, async_methods, MODULE_UPVALUES);
  lua_pushvalue(L, -1);
  lua_setfield(L, module, "Async");
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1);
  lua_setfield(L, module, "async_mt");
  /* stack: ... methods async_mt */
  luaL_getmetatable(L, CLIENT_MT);
  lua_pushvalue(L, decode);
  lua_pushvalue(L, -4); /* methods */
  lua_pushvalue(L, -4); /* async_mt */
  lua_pushcclosure(L, l_client_index, 3);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 3);
}
